import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AddressPool,
  allocateAddress,
  cidrOverlaps,
  hostRanges,
  intToIp,
  ipToInt,
  parseIpAddrJson,
  parseSubnet,
  planAddress,
  subnetConflicts,
} from "../../../src/sandbox/lxc/net.ts";

const subnet = parseSubnet("10.87.53.0/24");

test("parseSubnet takes a /24 and puts the host on .1", () => {
  assert.deepEqual(subnet, { network: "10.87.53.0", prefix: 24, hostAddress: "10.87.53.1" });
  assert.deepEqual(parseSubnet("10.87.53.77/24").network, "10.87.53.0");
  assert.throws(() => parseSubnet("10.87.0.0/16"), /\/24/);
  assert.throws(() => parseSubnet("10.87.300.0/24"), /IPv4/);
});

test("ip <-> int round trips", () => {
  assert.equal(ipToInt("10.0.0.1"), 167772161);
  assert.equal(intToIp(167772161), "10.0.0.1");
  assert.equal(intToIp(ipToInt("255.255.255.255")), "255.255.255.255");
});

test("cidrOverlaps", () => {
  assert.ok(cidrOverlaps("10.87.53.0/24", "10.0.0.0/8"));
  assert.ok(cidrOverlaps("10.87.53.7/32", "10.87.53.0/24"));
  assert.ok(!cidrOverlaps("10.87.54.0/24", "10.87.53.0/24"));
  assert.ok(cidrOverlaps("0.0.0.0/0", "192.0.2.0/24"));
});

test("allocateAddress hands out the lowest free guest address", () => {
  assert.equal(allocateAddress(subnet, new Set()), "10.87.53.2");
  assert.equal(allocateAddress(subnet, new Set(["10.87.53.2", "10.87.53.3"])), "10.87.53.4");
  const all = new Set(Array.from({ length: 253 }, (_, i) => `10.87.53.${i + 2}`));
  assert.equal(allocateAddress(subnet, all), undefined);
});

test("planAddress: dhcp draws from the pool, static is checked, manual has none", () => {
  assert.deepEqual(planAddress("dhcp", subnet, new Set(["10.87.53.2"])), { cidr: "10.87.53.3/24", gateway: "10.87.53.1" });
  assert.deepEqual(planAddress("10.87.53.50/24", subnet, new Set()), { cidr: "10.87.53.50/24", gateway: "10.87.53.1" });
  assert.deepEqual(planAddress("manual", subnet, new Set()), {});
  assert.throws(() => planAddress("192.168.1.5/24", subnet, new Set()), /outside the sandbox bridge's subnet/);
  assert.throws(() => planAddress("10.87.53.1/24", subnet, new Set()), /reserved/);
  assert.throws(() => planAddress("10.87.53.50/24", subnet, new Set(["10.87.53.50"])), /already in use/);
  assert.throws(() => planAddress("bogus", subnet, new Set()), /expected dhcp/);
});

test("AddressPool: taken addresses are not handed out again until released; a failed take takes none", () => {
  const pool = new AddressPool(subnet);
  const a = pool.take(["dhcp", "manual", "10.87.53.50/24"]);
  assert.deepEqual(a.planned, [{ cidr: "10.87.53.2/24", gateway: "10.87.53.1" }, {}, { cidr: "10.87.53.50/24", gateway: "10.87.53.1" }]);
  assert.deepEqual(a.taken, ["10.87.53.2", "10.87.53.50"]);
  // A second guest in the same tick gets the next address, not the same one.
  assert.deepEqual(pool.take(["dhcp"]).taken, ["10.87.53.3"]);
  assert.throws(() => pool.take(["dhcp", "10.87.53.50/24"]), /already in use/);
  // The dhcp address of the failed take (.4) went back.
  assert.deepEqual(pool.take(["dhcp"]).taken, ["10.87.53.4"]);
  pool.release(a.taken);
  // Like a DHCP server, a just-released address is not the next one handed out (the host's ARP cache still
  // names the old guest's MAC); a static one can be taken again at once.
  assert.deepEqual(pool.take(["dhcp", "10.87.53.50/24"]).taken, ["10.87.53.5", "10.87.53.50"]);
  pool.clear();
  assert.deepEqual(pool.take(["dhcp"]).taken, ["10.87.53.2"]);
});

test("AddressPool: a just-released address is handed out again when no other is free", () => {
  const pool = new AddressPool(subnet);
  const all = pool.take(Array.from({ length: 253 }, () => "dhcp")).taken;
  assert.equal(all.length, 253);
  assert.throws(() => pool.take(["dhcp"]), /no free address left/);
  pool.release(["10.87.53.4"]);
  assert.deepEqual(pool.take(["dhcp"]).taken, ["10.87.53.4"]);
});

test("parseIpAddrJson reports addresses only for links that are up", () => {
  const json = JSON.stringify([
    { ifname: "lo", address: "00:00:00:00:00:00", flags: ["LOOPBACK", "UP", "LOWER_UP"], addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }, { family: "inet6", local: "::1", prefixlen: 128 }] },
    { ifname: "eth0", address: "bc:24:11:00:00:01", flags: ["BROADCAST", "UP", "LOWER_UP"], addr_info: [{ family: "inet", local: "10.87.53.2", prefixlen: 24 }, { family: "inet6", local: "fe80::1", prefixlen: 64 }] },
    { ifname: "eth1", address: "bc:24:11:00:00:02", flags: ["BROADCAST"], addr_info: [{ family: "inet", local: "10.87.53.3", prefixlen: 24 }] },
  ]);
  assert.deepEqual(parseIpAddrJson(json), [
    { name: "lo", hwaddr: "00:00:00:00:00:00", inet: "127.0.0.1/8", inet6: "::1/128" },
    { name: "eth0", hwaddr: "bc:24:11:00:00:01", inet: "10.87.53.2/24", inet6: "fe80::1/64" },
    { name: "eth1", hwaddr: "bc:24:11:00:00:02" },
  ]);
});

test("hostRanges and subnetConflicts find a subnet already used on the host", () => {
  const addrs = JSON.stringify([
    { ifname: "lo", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }] },
    { ifname: "eth0", addr_info: [{ family: "inet", local: "192.0.2.2", prefixlen: 24 }] },
  ]);
  const routes = JSON.stringify([{ dst: "default" }, { dst: "10.87.0.0/16" }, { dst: "127.0.0.0/8" }, { dst: "fe80::/64" }]);
  const ranges = hostRanges(addrs, routes);
  assert.deepEqual(ranges, ["192.0.2.2/24", "10.87.0.0/16"]);
  assert.deepEqual(subnetConflicts(subnet, ranges), ["10.87.0.0/16"]);
  assert.deepEqual(subnetConflicts(parseSubnet("10.99.1.0/24"), ranges), []);
});
