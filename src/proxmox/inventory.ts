/**
 * One snapshot of the cluster for a whole run: nodes with free memory and
 * CPU, guests, storages and templates. Planning works on the snapshot, so
 * planning N services costs the same requests as planning one:
 * `GET /cluster/resources` once, then one template listing per storage that
 * holds templates (per node for local storages, once for shared ones).
 */
import type { ClusterApi, ClusterResource } from "./cluster.ts";
import type { ProxmoxHttp } from "./http.ts";
import { parseTags } from "./lxc-format.ts";
import { parseTemplateVolid } from "./storage.ts";
import type { StorageApi, StorageContent, TemplateName } from "./storage.ts";

/** A node as the planner sees it. */
export interface InventoryNode {
  name: string;
  online: boolean;
  /** Bytes. */
  memTotal: number;
  memUsed: number;
  memFree: number;
  cpuCount: number;
  /** Fraction of all CPUs busy, 0..1. */
  cpuUsage: number;
  /** CPUs' worth of idle capacity: `cpuCount * (1 - cpuUsage)`. */
  cpuFree: number;
}

/** A guest (container or VM). */
export interface InventoryGuest {
  vmid: number;
  node: string;
  type: "lxc" | "qemu";
  name: string | undefined;
  status: string;
  tags: string[];
  template: boolean;
  lock: string | undefined;
  /** Bytes. */
  memMax: number;
}

/** A storage on a node. */
export interface InventoryStorage {
  storage: string;
  node: string;
  type: string | undefined;
  content: string[];
  shared: boolean;
  available: boolean;
  /** Bytes. */
  total: number;
  used: number;
}

/** A container template on a storage, visible from `nodes`. */
export interface InventoryTemplate extends TemplateName {
  volid: string;
  size: number;
  ctime: number | undefined;
  /** Nodes that can use it (all nodes that see a shared storage). */
  nodes: string[];
}

/** The snapshot. */
export interface Inventory {
  takenAt: Date;
  nodes: InventoryNode[];
  guests: InventoryGuest[];
  storages: InventoryStorage[];
  templates: InventoryTemplate[];
  /** Requests the snapshot cost. */
  requests: number;
}

const n = (v: number | undefined): number => v ?? 0;

/** Splits the cluster resource list into nodes, guests and storages. Pure. */
export function inventoryFromResources(resources: readonly ClusterResource[]): Pick<Inventory, "nodes" | "guests" | "storages"> {
  const nodes: InventoryNode[] = [];
  const guests: InventoryGuest[] = [];
  const storages: InventoryStorage[] = [];
  for (const r of resources) {
    if (r.type === "node" && r.node !== undefined) {
      const memTotal = n(r.maxmem);
      const memUsed = n(r.mem);
      const cpuCount = n(r.maxcpu);
      const cpuUsage = n(r.cpu);
      nodes.push({
        name: r.node,
        online: r.status === "online",
        memTotal,
        memUsed,
        memFree: Math.max(0, memTotal - memUsed),
        cpuCount,
        cpuUsage,
        cpuFree: Math.max(0, cpuCount * (1 - cpuUsage)),
      });
    } else if ((r.type === "lxc" || r.type === "qemu") && r.node !== undefined && r.vmid !== undefined) {
      guests.push({
        vmid: r.vmid,
        node: r.node,
        type: r.type,
        name: r.name,
        status: r.status ?? "unknown",
        tags: parseTags(r.tags),
        template: r.template ?? false,
        lock: r.lock,
        memMax: n(r.maxmem),
      });
    } else if (r.type === "storage" && r.node !== undefined && r.storage !== undefined) {
      storages.push({
        storage: r.storage,
        node: r.node,
        type: r.plugintype,
        content: (r.content ?? "").split(",").filter((c) => c !== ""),
        shared: r.shared ?? false,
        available: r.status === undefined || r.status === "available",
        total: n(r.maxdisk),
        used: n(r.disk),
      });
    }
  }
  nodes.sort((a, b) => a.name.localeCompare(b.name));
  guests.sort((a, b) => a.vmid - b.vmid);
  return { nodes, guests, storages };
}

/** Which (node, storage) pairs to list templates from: one per local storage per online node, one per shared storage. Pure. */
export function templateSources(nodes: readonly InventoryNode[], storages: readonly InventoryStorage[]): { node: string; storage: string; shared: boolean }[] {
  const online = new Set(nodes.filter((node) => node.online).map((node) => node.name));
  const seenShared = new Set<string>();
  const out: { node: string; storage: string; shared: boolean }[] = [];
  for (const s of storages) {
    if (!s.available || !online.has(s.node) || !s.content.includes("vztmpl")) continue;
    if (s.shared) {
      if (seenShared.has(s.storage)) continue;
      seenShared.add(s.storage);
    }
    out.push({ node: s.node, storage: s.storage, shared: s.shared });
  }
  return out;
}

/** Merges template listings: the same volid on several nodes becomes one entry with all of them. Pure. */
export function mergeTemplates(
  listings: readonly { node: string; storage: string; shared: boolean; content: readonly StorageContent[] }[],
  storages: readonly InventoryStorage[],
): InventoryTemplate[] {
  const byVolid = new Map<string, InventoryTemplate>();
  for (const listing of listings) {
    const nodes = listing.shared ? storages.filter((s) => s.storage === listing.storage).map((s) => s.node) : [listing.node];
    for (const item of listing.content) {
      if (item.content !== "vztmpl") continue;
      const existing = byVolid.get(item.volid);
      if (existing) {
        for (const node of nodes) if (!existing.nodes.includes(node)) existing.nodes.push(node);
        continue;
      }
      byVolid.set(item.volid, { ...parseTemplateVolid(item.volid), volid: item.volid, size: item.size, ctime: item.ctime, nodes: [...nodes] });
    }
  }
  const out = [...byVolid.values()];
  for (const t of out) t.nodes.sort();
  return out.sort((a, b) => a.volid.localeCompare(b.volid));
}

/**
 * The calls a snapshot is read through (the client has them), named here rather than as the
 * client's type, which offers `loadInventory` itself.
 */
export interface InventorySource {
  readonly http: Pick<ProxmoxHttp, "requestsSent">;
  readonly cluster: Pick<ClusterApi, "resources">;
  readonly storage: Pick<StorageApi, "templates">;
}

/** Takes one inventory snapshot; its request count does not depend on how many services are planned. */
export async function loadInventory(client: InventorySource): Promise<Inventory> {
  const before = client.http.requestsSent;
  const resources = await client.cluster.resources();
  const { nodes, guests, storages } = inventoryFromResources(resources);
  const sources = templateSources(nodes, storages);
  const listings = await Promise.all(
    sources.map(async (source) => ({ ...source, content: await client.storage.templates(source.node, source.storage) })),
  );
  return {
    takenAt: new Date(),
    nodes,
    guests,
    storages,
    templates: mergeTemplates(listings, storages),
    requests: client.http.requestsSent - before,
  };
}

/** Templates usable on a node. Pure. */
export function templatesOnNode(inventory: Inventory, node: string): InventoryTemplate[] {
  return inventory.templates.filter((t) => t.nodes.includes(node));
}
