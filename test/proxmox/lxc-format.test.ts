import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProxmoxValidationError } from "../../src/proxmox/errors.ts";
import { featuresNeedRoot, formatFeatures, formatNetwork, formatRootfs, formatTags, parseFeatures, parseNetwork, parsePropertyString, parseRootfs, parseTags } from "../../src/proxmox/lxc-format.ts";
import { lxcCreateForm, lxcUpdateForm, parseLxcConfig } from "../../src/proxmox/lxc-types.ts";
import { parseTemplateVolid } from "../../src/proxmox/storage.ts";

void describe("network property string", () => {
  void it("serialises name first, booleans as 1/0, trunks with ;", () => {
    assert.equal(
      formatNetwork({ name: "eth0", bridge: "vmbr0", ip: "10.0.0.5/24", gw: "10.0.0.1", firewall: true, tag: 20, trunks: [1, 2], linkDown: false }),
      "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,firewall=1,tag=20,trunks=1;2,link_down=0",
    );
  });
  void it("round-trips through parseNetwork", () => {
    const net = { name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:00:00:01", ip: "dhcp", ip6: "auto", firewall: false, mtu: 1400, type: "veth" as const };
    assert.deepEqual(parseNetwork(formatNetwork(net)), net);
  });
  void it("refuses values that would break the property string", () => {
    assert.throws(() => formatNetwork({ name: "eth0", gw: "10.0.0.1,ip=x" }), ProxmoxValidationError);
    assert.throws(() => formatNetwork({ name: "eth 0" }), ProxmoxValidationError);
    assert.throws(() => formatNetwork({ name: "eth0", ip: "10.0.0.5" }), /IPv4\/CIDR/);
  });
});

void describe("rootfs", () => {
  void it("allocates with STORAGE:SIZE, or names an existing volume", () => {
    assert.equal(formatRootfs({ storage: "local-lvm", sizeGb: 8 }), "local-lvm:8");
    assert.equal(formatRootfs({ volume: "local-lvm:vm-101-disk-0", size: "8G" }), "local-lvm:vm-101-disk-0,size=8G");
    assert.throws(() => formatRootfs({ storage: "local-lvm", sizeGb: 0 }), ProxmoxValidationError);
  });
  void it("parses the volume as the default key", () => {
    assert.deepEqual(parseRootfs("local-lvm:vm-101-disk-0,size=8G,acl=1"), { volume: "local-lvm:vm-101-disk-0", size: "8G", options: { acl: "1" } });
    assert.deepEqual(parsePropertyString("a=1,,b=2"), { a: "1", b: "2" });
  });
});

void describe("features", () => {
  void it("serialises in a fixed order and round-trips", () => {
    const features = { keyctl: true, nesting: true, mount: ["nfs", "cifs"] };
    assert.equal(formatFeatures(features), "nesting=1,keyctl=1,mount=nfs;cifs");
    assert.deepEqual(parseFeatures("nesting=1,keyctl=1,mount=nfs;cifs"), features);
  });
  void it("knows that only nesting is allowed for non-root users", () => {
    assert.equal(featuresNeedRoot({ nesting: true }), false);
    assert.equal(featuresNeedRoot({ nesting: true, keyctl: false }), false);
    assert.equal(featuresNeedRoot({ keyctl: true }), true);
    assert.equal(featuresNeedRoot({ mount: ["nfs"] }), true);
    assert.equal(featuresNeedRoot({ nesting: true }, false), true, "any feature of a privileged container");
    assert.equal(featuresNeedRoot({ nesting: true }, true), false);
  });
});

void describe("tags", () => {
  void it("lowercases, de-duplicates and sorts like Proxmox", () => {
    assert.equal(formatTags(["web", "Prod", "web", "a_b"]), "a_b;prod;web");
  });
  void it("refuses tags Proxmox would refuse, with a hint", () => {
    assert.throws(() => formatTags(["tier:1"]), (e: unknown) => e instanceof ProxmoxValidationError && /tier-1/.test(e.hint));
  });
  void it("parses any separator", () => {
    assert.deepEqual(parseTags("a;b,c d"), ["a", "b", "c", "d"]);
    assert.deepEqual(parseTags(undefined), []);
  });
});

void describe("lxcCreateForm", () => {
  void it("maps the typed parameters to Proxmox's form", () => {
    const form = lxcCreateForm(
      {
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        hostname: "peach",
        memory: 2048,
        swap: 512,
        cores: 2,
        net0: { name: "eth0", bridge: "vmbr0", ip: "dhcp" },
        net: { 1: { name: "eth1", bridge: "vmbr1", ip: "manual" } },
        rootfs: { storage: "local-lvm", sizeGb: 8 },
        tags: ["homelab", "Peach"],
        features: { nesting: true },
        sshPublicKeys: ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"],
        unprivileged: true,
        start: false,
        description: "Grüße",
        password: "hunter22",
      },
      105,
    );
    assert.deepEqual(
      Object.fromEntries(Object.entries(form).filter(([, v]) => v !== undefined)),
      {
        vmid: 105,
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        hostname: "peach",
        memory: 2048,
        swap: 512,
        cores: 2,
        description: "Grüße",
        net0: "name=eth0,bridge=vmbr0,ip=dhcp",
        net1: "name=eth1,bridge=vmbr1,ip=manual",
        tags: "homelab;peach",
        features: "nesting=1",
        rootfs: "local-lvm:8",
        "ssh-public-keys": "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n",
        password: "hunter22",
        unprivileged: true,
        start: false,
      },
    );
  });
  void it("refuses a bad hostname or vmid", () => {
    assert.throws(() => lxcCreateForm({ ostemplate: "local:vztmpl/x.tar.zst", hostname: "bad_name" }, 105), ProxmoxValidationError);
    assert.throws(() => lxcCreateForm({ ostemplate: "local:vztmpl/x.tar.zst" }, 99), ProxmoxValidationError);
  });
});

void describe("lxcUpdateForm", () => {
  void it("joins deletions and carries the digest", () => {
    assert.deepEqual(lxcUpdateForm({ memory: 1024, delete: ["net1", "description"], digest: "abc" }), {
      hostname: undefined,
      memory: 1024,
      swap: undefined,
      cores: undefined,
      cpulimit: undefined,
      description: undefined,
      onboot: undefined,
      nameserver: undefined,
      searchdomain: undefined,
      timezone: undefined,
      delete: "net1,description",
      digest: "abc",
    });
  });
  void it("refuses setting and deleting the same key", () => {
    assert.throws(() => lxcUpdateForm({ memory: 1, delete: ["memory"] }), /both set and deleted/);
  });
});

void describe("parseLxcConfig", () => {
  void it("types the fields Proxmox returns as strings and numbers", () => {
    const config = parseLxcConfig({
      hostname: "peach",
      memory: 2048,
      swap: "512",
      cores: 2,
      net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth",
      rootfs: "local-lvm:vm-105-disk-0,size=8G",
      features: "nesting=1",
      tags: "homelab;peach",
      unprivileged: 1,
      digest: "d1",
      lock: "create",
    });
    assert.equal(config.swap, 512);
    assert.equal(config.unprivileged, true);
    assert.equal(config.onboot, false);
    assert.deepEqual(config.tags, ["homelab", "peach"]);
    assert.deepEqual(config.features, { nesting: true });
    assert.equal(config.net[0]?.hwaddr, "BC:24:11:00:00:01");
    assert.equal(config.rootfs?.size, "8G");
    assert.equal(config.lock, "create");
  });
});

void describe("parseTemplateVolid", () => {
  void it("splits name, version and architecture", () => {
    assert.deepEqual(parseTemplateVolid("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"), {
      storage: "local",
      file: "debian-12-standard_12.7-1_amd64.tar.zst",
      name: "debian-12-standard",
      version: "12.7-1",
      arch: "amd64",
    });
    assert.equal(parseTemplateVolid("local:vztmpl/custom.tar.gz").name, "custom");
  });
});
