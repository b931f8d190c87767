import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterResource } from "../../src/proxmox/cluster.ts";
import { inventoryFromResources, mergeTemplates, templateSources } from "../../src/proxmox/inventory.ts";

const GiB = 1024 ** 3;
const resources: ClusterResource[] = [
  { id: "node/pve-02", type: "node", node: "pve-02", status: "online", maxmem: 16 * GiB, mem: 4 * GiB, maxcpu: 8, cpu: 0.25 },
  { id: "node/pve-01", type: "node", node: "pve-01", status: "online", maxmem: 8 * GiB, mem: 6 * GiB, maxcpu: 4, cpu: 0.5 },
  { id: "node/pve-03", type: "node", node: "pve-03", status: "offline" },
  { id: "lxc/101", type: "lxc", node: "pve-01", vmid: 101, name: "peach", status: "running", tags: "homelab;web", maxmem: GiB },
  { id: "storage/pve-01/local", type: "storage", node: "pve-01", storage: "local", content: "vztmpl,iso", shared: false, status: "available", maxdisk: 100, disk: 10, plugintype: "dir" },
  { id: "storage/pve-02/local", type: "storage", node: "pve-02", storage: "local", content: "vztmpl,iso", shared: false, status: "available" },
  { id: "storage/pve-03/local", type: "storage", node: "pve-03", storage: "local", content: "vztmpl", shared: false, status: "unknown" },
  { id: "storage/pve-01/nfs", type: "storage", node: "pve-01", storage: "nfs", content: "vztmpl", shared: true, status: "available" },
  { id: "storage/pve-02/nfs", type: "storage", node: "pve-02", storage: "nfs", content: "vztmpl", shared: true, status: "available" },
  { id: "storage/pve-01/local-lvm", type: "storage", node: "pve-01", storage: "local-lvm", content: "rootdir,images", shared: false, status: "available" },
];

void describe("inventoryFromResources", () => {
  void it("computes free memory and CPU per node, sorted by name", () => {
    const { nodes } = inventoryFromResources(resources);
    assert.deepEqual(nodes.map((n) => n.name), ["pve-01", "pve-02", "pve-03"]);
    assert.equal(nodes[0]!.memFree, 2 * GiB);
    assert.equal(nodes[1]!.cpuFree, 6);
    assert.equal(nodes[2]!.online, false);
  });
  void it("reads guests with their tags and storages with their content", () => {
    const { guests, storages } = inventoryFromResources(resources);
    assert.deepEqual(guests.map((g) => [g.vmid, g.node, g.tags]), [[101, "pve-01", ["homelab", "web"]]]);
    assert.deepEqual(storages[0]?.content, ["vztmpl", "iso"]);
  });
});

void describe("templateSources", () => {
  void it("lists local template storages per online node and shared ones once", () => {
    const { nodes, storages } = inventoryFromResources(resources);
    assert.deepEqual(templateSources(nodes, storages), [
      { node: "pve-01", storage: "local", shared: false },
      { node: "pve-02", storage: "local", shared: false },
      { node: "pve-01", storage: "nfs", shared: true },
    ]);
  });
});

void describe("mergeTemplates", () => {
  void it("gives each volid the nodes that can use it", () => {
    const { storages } = inventoryFromResources(resources);
    const deb = { volid: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", content: "vztmpl", size: 100 };
    const alp = { volid: "nfs:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz", content: "vztmpl", size: 5 };
    const merged = mergeTemplates(
      [
        { node: "pve-02", storage: "local", shared: false, content: [deb] },
        { node: "pve-01", storage: "local", shared: false, content: [deb] },
        { node: "pve-01", storage: "nfs", shared: true, content: [alp] },
      ],
      storages,
    );
    assert.deepEqual(merged.map((t) => [t.volid, t.nodes, t.version]), [
      [deb.volid, ["pve-01", "pve-02"], "12.7-1"],
      [alp.volid, ["pve-01", "pve-02"], "20240908"],
    ]);
  });
});
