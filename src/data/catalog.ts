/**
 * What rollback points exist for an environment's services: homelab's
 * snapshots of their containers and its vzdump backups (found by their
 * notes, so backups of containers that no longer exist are found too),
 * newest first; and choosing one by name for `homelab restore --from`.
 */
import type { ProxmoxClient } from "../proxmox/client.ts";
import { deployIdOfSnapshot, parseBackupNotes } from "./safety.ts";

/** One snapshot or backup of a service's container. */
export interface CatalogEntry {
  service: string;
  resource: string;
  kind: "snapshot" | "backup";
  /** The snapshot's name, or the backup's volid. */
  name: string;
  node: string;
  vmid: number;
  /** Milliseconds since the epoch. */
  takenAt: number;
  /** Bytes (backups only). */
  size: number | undefined;
  /** Why it was taken, as its notes say. */
  why: string;
  deployId: string | undefined;
  protected: boolean;
}

/** A deployed container whose snapshots are listed. */
export interface CatalogContainer {
  service: string;
  resource: string;
  node: string;
  vmid: number;
}

/**
 * The snapshots of the given containers and the backups on `storage` of every node (once when
 * the storage is shared) that belong to `envName` (and `service`, when given), newest first.
 */
export async function catalog(client: ProxmoxClient, o: { envName: string; service?: string; storage: string; nodes: readonly string[]; sharedStorage: boolean; containers: readonly CatalogContainer[] }): Promise<CatalogEntry[]> {
  const out: CatalogEntry[] = [];
  for (const c of o.containers) {
    if (o.service !== undefined && c.service !== o.service) continue;
    const snaps = await client.lxc.snapshots(c.node, c.vmid).catch(() => []);
    for (const s of snaps) {
      const deployId = deployIdOfSnapshot(s.name);
      if (deployId === undefined) continue;
      const why = parseBackupNotes(s.description ?? "")?.why ?? "";
      out.push({ service: c.service, resource: c.resource, kind: "snapshot", name: s.name, node: c.node, vmid: c.vmid, takenAt: (s.snaptime ?? 0) * 1000, size: undefined, why, deployId, protected: false });
    }
  }
  const seen = new Set<string>();
  for (const node of o.sharedStorage ? o.nodes.slice(0, 1) : o.nodes) {
    const backups = await client.backup.list(node, o.storage).catch(() => []);
    for (const b of backups) {
      const n = parseBackupNotes(b.notes);
      if (!n || seen.has(b.volid) || n.identity.environment !== o.envName || (o.service !== undefined && n.identity.service !== o.service)) continue;
      seen.add(b.volid);
      out.push({ service: n.identity.service, resource: n.identity.resource, kind: "backup", name: b.volid, node, vmid: b.vmid ?? 0, takenAt: b.ctime * 1000, size: b.size, why: n.why, deployId: n.deployId, protected: b.protected });
    }
  }
  return out.sort((a, b) => b.takenAt - a.takenAt || a.name.localeCompare(b.name));
}

/**
 * The entry `from` names: a snapshot name, a backup volid, the backup's file name, or a deploy
 * id; without `from`, the newest. Undefined when none matches.
 */
export function pickEntry(entries: readonly CatalogEntry[], from: string | undefined): CatalogEntry | undefined {
  if (from === undefined) return entries[0];
  return entries.find((e) => e.name === from || e.name.endsWith(`/${from}`) || e.deployId === from);
}
