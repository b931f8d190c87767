/** `/version` and `/cluster/...`. */
import { paramError } from "../errors.ts";
import type { Endpoint, SandboxState } from "./types.ts";
import { VMID, num, str } from "./common.ts";
import { guestSummary } from "./lxc/views.ts";

/** The version the sandbox claims (the schema it follows is PVE 9.1). */
export const PVE_VERSION = { version: "9.1.1", release: "9.1", repoid: "42e7d1b4a5d1e1c5" };

async function nodeResources(state: SandboxState): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const [name, node] of state.cluster.nodes) {
    const usage = await state.cluster.nodeUsage(name);
    out.push({
      id: `node/${name}`,
      type: "node",
      node: name,
      status: "online",
      cpu: usage.cpu,
      maxcpu: node.spec.cores,
      mem: usage.mem,
      maxmem: node.spec.memory,
      disk: 4 * 1024 ** 3,
      maxdisk: node.spec.localSize,
      uptime: state.cluster.uptime(name),
      level: "",
      "cgroup-mode": 2,
    });
  }
  return out;
}

async function storageResources(state: SandboxState): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const name of state.cluster.nodes.keys()) {
    for (const s of state.cluster.storages) {
      out.push({
        id: `storage/${name}/${s.storage}`,
        type: "storage",
        storage: s.storage,
        node: name,
        status: "available",
        content: s.content.join(","),
        plugintype: s.type,
        shared: 0,
        disk: await state.cluster.storageUsed(name, s.storage),
        maxdisk: state.cluster.storageTotal(name, s.storage),
      });
    }
  }
  return out;
}

async function guestResources(state: SandboxState): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const guests = [...state.cluster.guests.values()].sort((a, b) => a.vmid - b.vmid);
  for (const g of guests) {
    const { cpus, ...s } = await guestSummary(state, g);
    // Cluster resources always say whether a guest is a template.
    out.push({ id: `lxc/${g.vmid}`, type: "lxc", node: g.node, ...s, maxcpu: cpus, template: g.config["template"] === 1 ? 1 : 0 });
  }
  return out;
}

/** The endpoints of this module. */
export const clusterEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/version",
    params: { rules: {} },
    handle: () => Promise.resolve({ data: { ...PVE_VERSION } }),
  },
  {
    method: "GET",
    path: "/cluster/resources",
    params: { rules: { type: { type: "string", optional: true, enum: ["vm", "storage", "node", "sdn"] } } },
    async handle({ params, state }) {
      const type = str(params, "type");
      const data: Record<string, unknown>[] = [];
      if (type === undefined || type === "vm") data.push(...(await guestResources(state)));
      if (type === undefined || type === "node") data.push(...(await nodeResources(state)));
      if (type === undefined || type === "storage") data.push(...(await storageResources(state)));
      if (type === undefined || type === "sdn") {
        for (const name of state.cluster.nodes.keys()) {
          data.push({ id: `sdn/${name}/localnetwork`, type: "sdn", sdn: "localnetwork", node: name, status: "ok" });
        }
      }
      return { data };
    },
  },
  {
    method: "GET",
    path: "/cluster/nextid",
    params: { rules: { vmid: { ...VMID, optional: true } } },
    handle({ params, state }) {
      const wanted = num(params, "vmid");
      if (wanted !== undefined) {
        if (state.cluster.guests.has(wanted)) throw paramError({ vmid: `VM ${wanted} already exists` });
        return Promise.resolve({ data: String(wanted) });
      }
      // Proxmox answers a string here although the schema says integer.
      return Promise.resolve({ data: String(state.cluster.nextFreeId()) });
    },
  },
];
