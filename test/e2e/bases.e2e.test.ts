/**
 * Docker-ready bases end to end on the lxc sandbox, through the CLI with the
 * real engine: the first deploy of a compose service builds the base of its
 * node and key once, then clones it; a second service of the same kind is a
 * clone of the same base (no second build), and the two clones share no SSH
 * host key and no machine-id with each other or with the base; a service on
 * another release needs another key, so another base is built, while the
 * containers cloned before are untouched; `homelab bases` lists both as
 * current, and `--prune` removes the one no service clones any more.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LxcWorld, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hlbase0";
const SUBNET = "10.87.101.0/24";
const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

interface BasesJson {
  bases: Array<{ node: string; vmid: number; key: string; current: boolean; removed: boolean }>;
}

void describe("[root][lxc][docker][pulumi] Docker-ready bases: built once per node and key, cloned for every compose container", { timeout: 30 * 60_000 }, () => {
  const world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-bases-e2e-" });
  const bases = async (...args: string[]): Promise<BasesJson> => {
    const r = await world.homelab("--env", "sandbox", "bases", "--json", ...args);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout) as BasesJson;
  };
  const identity = async (address: string): Promise<{ hostKey: string; machineId: string; docker: string }> => {
    const r = await world.guest(address, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2; cat /etc/machine-id; docker --version");
    const [hostKey = "", machineId = "", docker = ""] = r.stdout.trim().split("\n");
    return { hostKey, machineId, docker };
  };

  before(async () => {
    world.addHello("one", "Hello from one");
    world.addHello("two", "Hello from two");
    world.addHello("old", "Hello from the old one", { version: "^12" });
    // Every guest on one node, so the two Debian 13 services share a base.
    for (const s of ["one", "two", "old"]) world.edit(`services/${s}/service.yaml`, (t) => t.replace("      resources:\n", "      tags: [tier:1]\n      resources:\n"));
    await world.start();
    world.edit(".homelab/environments/Pulumi.sandbox.yaml", (t) => t.replace(/homelab:tier1_hosts: \[[^\]]*\]/, "homelab:tier1_hosts: [pve-01]"));
  });
  after(async () => {
    await world.close();
    process.stdout.write(`\nbases e2e figures:\n  ${world.figures.join("\n  ")}\n`);
  });

  void it("the first deploy builds the base once, then clones it; the page answers", async () => {
    const t = Date.now();
    const r = await world.deploy("one");
    world.figures.push(`first deploy, base built: ${sec(Date.now() - t)}`);
    assert.match(r.stdout, /building the Docker-ready base [0-9a-f]{16} on pve-01/);
    assert.match(r.stdout, /base CT \d+ on pve-01 built in/);
    const c = await world.container("one");
    await waitForPage(`http://${c.address}/`, "Hello from one", 60_000);
    const listed = await bases();
    assert.equal(listed.bases.length, 1);
    assert.equal(listed.bases[0]?.current, true);
    const config = await world.admin.lxc.config(c.node, c.vmid);
    assert.equal(config.template, false);
    assert.equal((await world.admin.lxc.config(c.node, listed.bases[0]?.vmid ?? 0)).template, true);
  });

  void it("a second service of the same kind is a clone of the same base: no second build; no shared host key or machine-id", async () => {
    const t = Date.now();
    const r = await world.deploy("two");
    world.figures.push(`first deploy of a second service, base there: ${sec(Date.now() - t)}`);
    assert.doesNotMatch(r.stdout, /building the Docker-ready base/);
    assert.equal((await bases()).bases.length, 1);
    const a = await world.container("one");
    const b = await world.container("two");
    await waitForPage(`http://${b.address}/`, "Hello from two", 60_000);
    const ia = await identity(a.address);
    const ib = await identity(b.address);
    assert.match(ia.hostKey, /^SHA256:/);
    assert.notEqual(ia.hostKey, ib.hostKey);
    assert.match(ia.machineId, /^[0-9a-f]{32}$/);
    assert.notEqual(ia.machineId, ib.machineId);
    assert.equal(ia.docker, ib.docker);
  });

  void it("another release is another key: a second base is built, the clones made before are untouched", async () => {
    const before1 = await world.container("one");
    const before2 = await world.container("two");
    const r = await world.deploy("old");
    assert.match(r.stdout, /building the Docker-ready base/);
    const listed = await bases();
    assert.equal(listed.bases.length, 2);
    assert.ok(listed.bases.every((b) => b.current));
    assert.equal((await world.container("one")).vmid, before1.vmid);
    assert.equal((await world.container("two")).vmid, before2.vmid);
    const again = await world.homelab("--env", "sandbox", "deploy", "one", "two", "--yes");
    assert.match(again.stdout, /0 applied, 2 unchanged/, again.stdout);
  });

  void it("homelab bases --prune removes the base no service clones any more", async () => {
    const d = await world.homelab("--env", "sandbox", "destroy", "old", "--yes");
    assert.equal(d.code, 0, d.stdout + d.stderr);
    world.edit("services/old/service.yaml", (t) => t.replace('version: "^12"', 'version: ">=12"'));
    const listed = await bases();
    const stale = listed.bases.filter((b) => !b.current);
    assert.equal(stale.length, 1, JSON.stringify(listed));
    const pruned = await bases("--prune");
    assert.deepEqual(pruned.bases.filter((b) => b.removed).map((b) => b.vmid), stale.map((b) => b.vmid));
    await assert.rejects(world.admin.lxc.config(stale[0]?.node ?? "", stale[0]?.vmid ?? 0));
    await waitForPage(`http://${(await world.container("one")).address}/`, "Hello from one", 30_000);
  });
});
