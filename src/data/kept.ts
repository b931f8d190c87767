/**
 * Containers a destroy kept for their data (tag `homelab-kept`): finding
 * them for `status` and `backups`, and deleting them (after a backup) for
 * `destroy --delete-data`.
 */
import type { ProxmoxClient } from "../proxmox/client.ts";
import { parseTags } from "../proxmox/lxc-format.ts";
import { identityOf, KEPT_TAG, keptDescription } from "./identity.ts";
import type { ContainerIdentity } from "./identity.ts";
import { dataVolumes, mountIndex, sizeInGb } from "./mounts.ts";
import type { DataSafety } from "./safety.ts";

/** A kept container: whose data it holds, where, and its volumes. */
export interface KeptContainer {
  identity: ContainerIdentity;
  node: string;
  vmid: number;
  hostname: string | undefined;
  /** The volumes it holds (mount points and unused disks), with their sizes in GB where known. */
  volumes: { key: string; volume: string; path: string | undefined; sizeGb: number | undefined }[];
  /** When it was kept, as its notes say. */
  keptAt: string | undefined;
}

/**
 * Marks a container as kept for its data: notes saying whose data it is and how to reattach
 * or delete it, the kept tag, not started at boot, protected. `config.digest`, when given,
 * refuses the change if the config changed meanwhile.
 */
export async function markKept(client: ProxmoxClient, node: string, vmid: number, config: { tags: readonly string[]; digest?: string | undefined }, identity: ContainerIdentity, why: string): Promise<void> {
  await client.lxc.updateConfig(node, vmid, {
    description: keptDescription(identity, why, new Date()),
    // The form lowercases, de-duplicates and sorts them (formatTags).
    tags: [...config.tags, KEPT_TAG],
    onboot: false,
    protection: true,
    ...(config.digest !== undefined ? { digest: config.digest } : {}),
  });
}

/** The kept containers of an environment (of one service when given), by node then vmid. */
export async function listKept(client: ProxmoxClient, envName: string, service?: string): Promise<KeptContainer[]> {
  const guests = (await client.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc" && r.node !== undefined && r.vmid !== undefined && parseTags(r.tags).includes(KEPT_TAG));
  const out: KeptContainer[] = [];
  for (const g of guests) {
    const node = g.node ?? "";
    const vmid = Number(g.vmid);
    const config = await client.lxc.config(node, vmid).catch(() => undefined);
    const id = identityOf(config?.description);
    if (!config || !id?.kept || id.identity.environment !== envName || (service !== undefined && id.identity.service !== service)) continue;
    const sizeOf = (key: string): number | undefined => {
      const index = mountIndex(key);
      return sizeInGb(index !== undefined ? config.mounts[index]?.size : undefined);
    };
    out.push({
      identity: id.identity,
      node,
      vmid,
      hostname: config.hostname,
      volumes: dataVolumes(config).map((v) => ({ ...v, sizeGb: sizeOf(v.key) })),
      keptAt: / on (\d{4}-\d\d-\d\dT[\d:.]+Z)\./.exec(config.description ?? "")?.[1],
    });
  }
  return out.sort((a, b) => a.node.localeCompare(b.node) || a.vmid - b.vmid);
}

/** Deletes a kept container with its volumes, after a backup of it. */
export async function deleteKept(client: ProxmoxClient, kept: KeptContainer, safety: DataSafety, destroy: (node: string, vmid: number) => Promise<void>): Promise<string> {
  const backup = await safety.backupBefore(kept.node, kept.vmid, kept.identity, "delete-data");
  await client.lxc.updateConfig(kept.node, kept.vmid, { protection: false });
  await destroy(kept.node, kept.vmid);
  return backup.kind === "backup" ? backup.volid : backup.name;
}
