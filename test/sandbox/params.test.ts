import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../../src/sandbox/errors.ts";
import { FEATURES_FORMAT, NET_FORMAT, ROOTFS_FORMAT, formatPropertyString, generateMac, linkLocalFor, normalizeTags, parseNewVolume } from "../../src/sandbox/formats.ts";
import { checkParams, parsePropertyString } from "../../src/sandbox/params.ts";
import type { ParamSpec } from "../../src/sandbox/params.ts";
import { Router } from "../../src/sandbox/router.ts";
import { formatUpid, parseUpid } from "../../src/sandbox/tasks.ts";

const spec: ParamSpec = {
  rules: {
    vmid: { type: "integer", minimum: 100, maximum: 999_999_999 },
    start: { type: "boolean", optional: true },
    name: { type: "string", optional: true, maxLength: 4 },
    unique: { type: "boolean", optional: true, requires: "restore" },
    restore: { type: "boolean", optional: true },
  },
  indexed: { net: { rule: { type: "string", optional: true, property: NET_FORMAT }, count: 32 } },
};

function errorsOf(f: () => unknown): Record<string, string> {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError && e.errors) return e.errors;
    throw e;
  }
  throw new Error("expected a parameter error");
}

describe("parameter rules", () => {
  it("converts checked values and accepts indexed families within their count", () => {
    assert.deepEqual(checkParams(spec, { vmid: "101", start: "1", net0: "name=eth0" }), { vmid: 101, start: true, net0: "name=eth0" });
    assert.deepEqual(checkParams(spec, { vmid: 101, start: false }), { vmid: 101, start: false });
    assert.deepEqual(errorsOf(() => checkParams(spec, { vmid: "101", net32: "name=eth0" })), {
      net32: "property is not defined in schema and the schema does not allow additional properties",
    });
    assert.ok("net01" in errorsOf(() => checkParams(spec, { vmid: "101", net01: "name=eth0" })));
  });

  it("booleans are 0/1 only, integers digits only; every error is reported", () => {
    assert.deepEqual(errorsOf(() => checkParams(spec, { vmid: "1.5", start: "true", name: "toolong" })), {
      vmid: "type check ('integer') failed - got '1.5'",
      start: "type check ('boolean') failed - got 'true'",
      name: "value may only be 4 characters long",
    });
    assert.deepEqual(errorsOf(() => checkParams(spec, { vmid: 100, unique: "1" })), { restore: "missing property - 'unique' requires this property" });
  });

  it("property strings: default keys, unknown and duplicate keys, sub-field checks", () => {
    assert.deepEqual(parsePropertyString("rootfs", ROOTFS_FORMAT, "local-lvm:8,size=8G"), { values: { volume: "local-lvm:8", size: "8G" } });
    assert.deepEqual(parsePropertyString("features", FEATURES_FORMAT, "nesting=1,keyctl=0"), { values: { nesting: true, keyctl: false } });
    const dup = parsePropertyString("net0", NET_FORMAT, "name=a,name=b");
    assert.deepEqual(dup, { errors: { net0: "invalid format - duplicate key in comma-separated list property: name" } });
    const bare = parsePropertyString("net0", NET_FORMAT, "eth0");
    assert.ok("errors" in bare);
    const gw = parsePropertyString("net0", NET_FORMAT, "name=eth0,gw=10.0.0.999");
    assert.ok("errors" in gw && /IPv4/.test(gw.errors["net0.gw"] ?? ""));
  });

  it("formats: tags, MACs, volumes, link-local addresses, property strings", () => {
    assert.equal(normalizeTags("B a;b,,c  A"), "a;b;c");
    assert.equal(normalizeTags(""), "");
    assert.match(generateMac(), /^BC:24:11(:[0-9A-F]{2}){3}$/);
    assert.equal(generateMac(Buffer.from([1, 0xab, 255])), "BC:24:11:01:AB:FF");
    assert.deepEqual(parseNewVolume("local-lvm:8"), { storage: "local-lvm", sizeGb: 8 });
    assert.equal(parseNewVolume("local-lvm:vm-100-disk-0"), undefined);
    assert.equal(linkLocalFor("BC:24:11:01:AB:FF"), "fe80::be24:11ff:fe01:abff/64");
    assert.equal(formatPropertyString({ volume: "local-lvm:vm-1-disk-0", size: "8G" }, [], "volume"), "local-lvm:vm-1-disk-0,size=8G");
    assert.equal(formatPropertyString({ type: "veth", name: "eth0", ip: "dhcp", firewall: true }, ["name"]), "name=eth0,firewall=1,ip=dhcp,type=veth");
  });

  it("UPIDs round-trip in Proxmox's format", () => {
    const parts = { node: "pve-01", pid: 0x1a2b, pstart: 0x100, starttime: 0x65000000, type: "vzcreate", id: "101", user: "root@pam!homelab" };
    const upid = formatUpid(parts);
    assert.equal(upid, "UPID:pve-01:00001A2B:00000100:65000000:vzcreate:101:root@pam!homelab:");
    assert.deepEqual(parseUpid(upid), parts);
    assert.equal(parseUpid("UPID:pve-01:1:2:3:x:y:z:"), undefined);
  });

  it("the router prefers literal segments and decodes placeholders", () => {
    const r = new Router<string>();
    r.add("GET", "/nodes/{node}/lxc/{vmid}/status/current", "current");
    r.add("GET", "/nodes/{node}/tasks/{upid}/status", "task");
    assert.equal(r.match("GET", "/nodes/pve-01/lxc/100/status/current")?.value, "current");
    assert.deepEqual(r.match("GET", "/nodes/pve-01/tasks/UPID%3Apve-01%3A/status")?.params, { node: "pve-01", upid: "UPID:pve-01:" });
    assert.equal(r.match("POST", "/nodes/pve-01/tasks/x/status"), undefined);
  });
});
