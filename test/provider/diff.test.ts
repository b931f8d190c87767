import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ContainerInputs } from "../../src/plan/types.ts";
import { CHANGE_KIND, diffContainer, sameInput, staticAddress } from "../../src/provider/diff.ts";
import { CONTAINER_INPUT_KEYS, UNKNOWN, checkContainerInputs, parseContainerState } from "../../src/provider/inputs.ts";
import { configChange, createParams, eth0Address, featureChangeNeedsRoot, isSameContainer, liveState } from "../../src/provider/lxc-mapping.ts";
import { sizeInGb } from "../../src/data/mounts.ts";
import { parseLxcConfig } from "../../src/proxmox/lxc-types.ts";
import { inputs } from "./fixtures.ts";

/** A different value for each input. */
const CHANGED: { [K in keyof ContainerInputs]-?: ContainerInputs[K] } = {
  node: "pve-02",
  template: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst",
  hostname: "web-new",
  description: "other notes",
  tags: ["homelab", "web", "extra"],
  memory: 1024,
  swap: 0,
  cores: 2,
  storage: "local-zfs",
  diskGb: 8,
  volumes: [{ name: "data", sizeGb: 1, path: "/srv/data", storage: "local-lvm", backup: true }],
  bindMounts: [{ host: "/mnt/media", path: "/media", readOnly: true }],
  bridge: "vmbr1",
  ip: "10.20.0.6/24",
  gateway: "10.20.0.254",
  unprivileged: false,
  nesting: false,
  keyctl: true,
  sshPublicKeys: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey other@homelab",
  onBoot: false,
  protection: true,
  base: "0123456789abcdef",
};

const EXPECTED: Record<keyof ContainerInputs, "replace" | "update" | "ignore"> = {
  node: "replace",
  template: "replace",
  unprivileged: "replace",
  storage: "replace",
  diskGb: "update",
  volumes: "update",
  bindMounts: "update",
  hostname: "update",
  description: "update",
  tags: "update",
  memory: "update",
  swap: "update",
  cores: "update",
  bridge: "update",
  ip: "update",
  gateway: "update",
  nesting: "update",
  keyctl: "update",
  onBoot: "update",
  protection: "update",
  sshPublicKeys: "ignore",
  base: "ignore",
};

void describe("diffContainer", () => {
  void it("finds no change between a state and the inputs it came from", () => {
    const d = diffContainer({ ...inputs(), vmid: 101, address: "10.20.0.5" }, inputs());
    assert.deepEqual(d, { changed: [], replaces: [], updates: [], deleteBeforeReplace: false, restart: false });
  });

  for (const key of CONTAINER_INPUT_KEYS) {
    void it(`${key}: ${EXPECTED[key]}`, () => {
      const olds = inputs();
      const news: ContainerInputs = { ...inputs(), [key]: CHANGED[key] };
      const d = diffContainer(olds, news);
      assert.equal(CHANGE_KIND[key], EXPECTED[key]);
      if (EXPECTED[key] === "ignore") {
        assert.deepEqual(d.changed, []);
        return;
      }
      assert.deepEqual(d.changed, [key]);
      assert.deepEqual(d.replaces, EXPECTED[key] === "replace" ? [key] : []);
      assert.deepEqual(d.updates, EXPECTED[key] === "update" ? [key] : []);
      // A new volume is hot-plugged; a bind mount change applies at the next start.
      assert.equal(d.restart, key === "hostname" || key === "nesting" || key === "keyctl" || key === "bindMounts");
    });
  }

  void it("takes Proxmox's tag normalisation and a trailing newline in the notes as no change", () => {
    const d = diffContainer({ ...inputs(), tags: ["web", "homelab"], description: inputs().description + "\n" }, { ...inputs(), tags: ["Homelab", "web", "web"] });
    assert.deepEqual(d.changed, []);
  });

  void it("deletes first when the old and new container would share a static address", () => {
    const sameIp = diffContainer(inputs({ ip: "10.20.0.5/24" }), inputs({ ip: "10.20.0.5/16", template: CHANGED.template }));
    assert.equal(sameIp.deleteBeforeReplace, true);
    const otherIp = diffContainer(inputs({ ip: "10.20.0.5/24" }), inputs({ ip: "10.20.0.9/24", template: CHANGED.template }));
    assert.equal(otherIp.deleteBeforeReplace, false);
    const dhcp = diffContainer(inputs({ ip: "dhcp", gateway: undefined }), inputs({ ip: "dhcp", gateway: undefined, template: CHANGED.template }));
    assert.equal(dhcp.deleteBeforeReplace, false);
    const unknownIp = diffContainer(inputs(), inputs({ template: CHANGED.template }), new Set(["ip"]));
    assert.equal(unknownIp.deleteBeforeReplace, true);
    const updateOnly = diffContainer(inputs(), inputs({ memory: 2048 }));
    assert.equal(updateOnly.deleteBeforeReplace, false);
  });

  void it("counts inputs unknown during a preview as changed, and a replacing one as a replacement", () => {
    const d = diffContainer(inputs(), inputs(), new Set(["node", "memory"]));
    assert.deepEqual(d.replaces, ["node"]);
    assert.deepEqual(d.updates, ["memory"]);
  });

  void it("treats a field missing from an old state as changed (state of an older provider)", () => {
    const { protection: _p, ...rest } = inputs();
    assert.deepEqual(diffContainer(rest, inputs()).changed, ["protection"]);
  });

  void it("volumes: no change for the same set in another order, or an old state without them; a removed or moved one restarts", () => {
    const a = { name: "a", sizeGb: 1, path: "/srv/a", storage: "local-lvm", backup: true };
    const b = { name: "b", sizeGb: 2, path: "/srv/b", storage: "local-lvm", backup: false };
    assert.deepEqual(diffContainer(inputs({ volumes: [a, b] }), inputs({ volumes: [b, a] })).changed, []);
    const { volumes: _v, bindMounts: _b, ...old } = inputs();
    assert.deepEqual(diffContainer(old, inputs()).changed, []);
    const grow = diffContainer(inputs({ volumes: [a] }), inputs({ volumes: [{ ...a, sizeGb: 5 }] }));
    assert.deepEqual([grow.updates, grow.restart], [["volumes"], false]);
    assert.equal(diffContainer(inputs({ volumes: [a, b] }), inputs({ volumes: [a] })).restart, true);
    assert.equal(diffContainer(inputs({ volumes: [a] }), inputs({ volumes: [{ ...a, path: "/srv/x" }] })).restart, true);
    const disk = diffContainer(inputs({ diskGb: 4 }), inputs({ diskGb: 16 }));
    assert.deepEqual([disk.updates, disk.replaces, disk.restart], [["diskGb"], [], false]);
  });

  void it("does not restart for a change that also replaces", () => {
    assert.equal(diffContainer(inputs(), inputs({ hostname: "x", node: "pve-02" })).restart, false);
  });
});

void describe("sameInput and staticAddress", () => {
  void it("compares gateways with absent as empty and ip without case", () => {
    assert.equal(sameInput("gateway", undefined, ""), true);
    assert.equal(sameInput("ip", "DHCP", "dhcp"), true);
    assert.equal(sameInput("memory", undefined, 512), false);
  });
  void it("reads the address of a static ip only", () => {
    assert.equal(staticAddress("10.0.0.5/24"), "10.0.0.5");
    assert.equal(staticAddress("dhcp"), undefined);
    assert.equal(staticAddress(undefined), undefined);
  });
});

void describe("checkContainerInputs", () => {
  void it("applies defaults and normalises tags and ip", () => {
    const r = checkContainerInputs({ node: "pve-01", template: inputs().template, hostname: "web", tags: ["Web", "homelab", "web"], ip: "DHCP" });
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.deepEqual(r.inputs.tags, ["homelab", "web"]);
    assert.equal(r.inputs.ip, "dhcp");
    assert.equal(r.inputs.memory, 512);
    assert.equal(r.inputs.unprivileged, true);
    assert.equal(r.inputs.protection, false);
    assert.equal("gateway" in r.bag, false);
  });

  void it("names the property of every failure", () => {
    const r = checkContainerInputs({ template: "debian.tar.zst", hostname: "bad_name", memory: 1.5, ip: "10.0.0.5", gateway: "x", tags: ["tier:1"], colour: "red" });
    assert.equal(r.ok, false);
    if (r.ok) return;
    const by = new Map(r.failures.map((f) => [f.property, f.reason]));
    assert.match(by.get("colour") ?? "", /unknown property/);
    assert.match(by.get("node") ?? "", /required/);
    assert.match(by.get("template") ?? "", /volid/);
    assert.match(by.get("hostname") ?? "", /DNS name/);
    assert.match(by.get("memory") ?? "", /whole number/);
    assert.match(by.get("ip") ?? "", /dhcp/);
    assert.match(by.get("gateway") ?? "", /IPv4/);
    assert.match(by.get("tags") ?? "", /tier-1/);
  });

  void it("ignores the outputs a program names as placeholders, and empty values", () => {
    const r = checkContainerInputs({ ...inputs(), vmid: 105, address: UNKNOWN, gateway: null });
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.equal("vmid" in r.bag, false);
    assert.equal("gateway" in r.bag, false);
    assert.deepEqual([...r.unknown], []);
  });

  void it("refuses a gateway with dhcp", () => {
    const r = checkContainerInputs({ ...inputs(), ip: "dhcp", gateway: "10.0.0.1" });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.failures[0]?.property, "gateway");
  });

  void it("keeps unknown values of a preview and checks the rest", () => {
    const r = checkContainerInputs({ ...inputs(), node: UNKNOWN, memory: 1 });
    assert.equal(r.ok, false);
    const ok = checkContainerInputs({ ...inputs(), node: UNKNOWN });
    assert.equal(ok.ok, true);
    if (!ok.ok) return;
    assert.deepEqual([...ok.unknown], ["node"]);
    assert.equal(ok.bag["node"], UNKNOWN);
  });

  void it("reveals secret-wrapped values", () => {
    const secret = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: "web" };
    const r = checkContainerInputs({ ...inputs(), hostname: secret });
    assert.equal(r.ok && r.inputs.hostname, "web");
  });
});

void describe("parseContainerState", () => {
  void it("keeps the fields of the right type only", () => {
    const s = parseContainerState({ vmid: 105, memory: "lots", node: "pve-01", address: null });
    assert.deepEqual(s, { vmid: 105, node: "pve-01" });
  });
});

void describe("lxc mapping", () => {
  const config = (raw: Record<string, string | number>) =>
    parseLxcConfig({
      hostname: "web",
      memory: 512,
      swap: 256,
      cores: 1,
      description: inputs().description + "\n",
      tags: "homelab;web",
      features: "nesting=1",
      unprivileged: 1,
      onboot: 1,
      net0: "name=eth0,bridge=vmbr0,gw=10.20.0.1,hwaddr=BC:24:11:00:00:01,ip=10.20.0.5/24,type=veth",
      rootfs: "local-lvm:vm-105-disk-0,size=4G",
      digest: "d",
      ...raw,
    });

  void it("creates with only the features that are on, and without protection", () => {
    const p = createParams(inputs({ protection: true, nesting: false }), 105);
    assert.equal(p.features, undefined);
    assert.equal("protection" in p, false);
    assert.deepEqual(p.net0, { name: "eth0", bridge: "vmbr0", ip: "10.20.0.5/24", gw: "10.20.0.1" });
    assert.deepEqual(p.rootfs, { storage: "local-lvm", sizeGb: 4 });
    assert.deepEqual(createParams(inputs({ keyctl: true }), 105).features, { nesting: true, keyctl: true });
  });

  void it("changes nothing on a container that matches", () => {
    assert.deepEqual(configChange(config({}), inputs()).keys, []);
  });

  void it("sets what differs, deletes what was cleared, keeps the MAC and hand-set features", () => {
    const c = configChange(config({ features: "nesting=1,fuse=1" }), inputs({ memory: 1024, description: "", tags: [], ip: "dhcp", gateway: undefined, nesting: false, protection: true }));
    assert.deepEqual(c.update.delete, ["description", "tags"]);
    assert.equal(c.update.memory, 1024);
    assert.equal(c.update.protection, true);
    assert.deepEqual(c.update.features, { fuse: true });
    assert.deepEqual(c.update.net0, { name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:00:00:01", ip: "dhcp", type: "veth" });
    assert.equal(c.restart, true);
    assert.equal(c.network, true);
  });

  void it("deletes features when none is left, and restarts for a hostname", () => {
    const c = configChange(config({}), inputs({ nesting: false, hostname: "web2" }));
    assert.deepEqual(c.update.delete, ["features"]);
    assert.equal(c.update.hostname, "web2");
    assert.equal(c.restart, true);
  });

  void it("reads the state back from a config, keeping what Proxmox cannot report", () => {
    const s = liveState(config({ memory: 2048 }), { template: "local:vztmpl/x.tar.zst", sshPublicKeys: "k", description: inputs().description }, { node: "pve-02", vmid: 105, address: "10.20.0.5" });
    assert.equal(s.memory, 2048);
    assert.equal(s.node, "pve-02");
    assert.equal(s.template, "local:vztmpl/x.tar.zst");
    assert.equal(s.sshPublicKeys, "k");
    assert.equal(s.description, inputs().description);
    assert.equal(s.storage, "local-lvm");
    assert.equal(s.diskGb, 4);
    assert.equal(s.gateway, "10.20.0.1");
    assert.equal(s.nesting, true);
    assert.equal(s.keyctl, false);
    assert.equal(s.onBoot, true);
    assert.equal(s.protection, false);
  });

  void it("reads sizes and addresses", () => {
    assert.equal(sizeInGb("8G"), 8);
    assert.equal(sizeInGb("512M"), 0.5);
    assert.equal(sizeInGb("1T"), 1024);
    assert.equal(sizeInGb("lots"), undefined);
    assert.equal(eth0Address(null), undefined);
    assert.equal(eth0Address([{ name: "eth0", hwaddr: "", inet: "169.254.3.4/16", inet6: undefined }]), undefined);
    assert.equal(eth0Address([{ name: "eth1", hwaddr: "", inet: "10.0.0.9/24", inet6: undefined }]), undefined);
    assert.equal(eth0Address([{ name: "eth0", hwaddr: "", inet: "10.0.0.9/24", inet6: undefined }]), "10.0.0.9");
  });

  void it("knows which feature changes only root@pam may make", () => {
    assert.equal(featureChangeNeedsRoot(undefined, inputs({ nesting: true, keyctl: false }), false), false);
    assert.equal(featureChangeNeedsRoot(undefined, inputs({ keyctl: true }), false), true);
    assert.equal(featureChangeNeedsRoot(undefined, inputs({ unprivileged: false, nesting: true }), false), true);
    assert.equal(featureChangeNeedsRoot(inputs({ keyctl: true }), inputs({ keyctl: true, memory: 2048 }), false), false);
    assert.equal(featureChangeNeedsRoot(inputs({ keyctl: true }), inputs({ keyctl: true }), true), true);
    assert.equal(featureChangeNeedsRoot(inputs({ keyctl: true }), inputs({ keyctl: false }), false), true);
    assert.equal(featureChangeNeedsRoot(inputs({ nesting: false }), inputs({ nesting: true }), false), false);
    assert.equal(featureChangeNeedsRoot(inputs({ unprivileged: false, nesting: false }), inputs({ unprivileged: false, nesting: true }), false), true);
  });

  void it("recognises its container by hostname or notes, not a stranger with the same id", () => {
    assert.equal(isSameContainer(config({}), { hostname: "web" }), true);
    assert.equal(isSameContainer(config({ hostname: "renamed" }), { hostname: "web", description: inputs().description }), true);
    assert.equal(isSameContainer(config({ hostname: "db", description: "someone else's" }), { hostname: "web", description: inputs().description }), false);
    assert.equal(isSameContainer(config({}), {}), true);
  });
});
