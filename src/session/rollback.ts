/**
 * Rolling a service back after a deploy that failed, or that left it failing
 * its health checks: each container the deploy changed returns to the point
 * the deploy took before its destructive step (data/safety.ts), a snapshot
 * rolled back or a backup restored onto the same container, then the stack
 * is refreshed so its state says what runs.
 *
 * A container the deploy replaced (a new vmid, its volumes moved from the
 * old one) gets the backup of the old one restored over it: it becomes what
 * the old one was, under the new vmid; the caller then sets the template the
 * old one was made from in the state (Proxmox cannot tell it), so the next
 * deploy knows the replace did not happen.
 */
import type { ProxmoxClient } from "../proxmox/client.ts";
import { sameIdentity } from "../data/identity.ts";
import { parseBackupNotes, snapshotName } from "../data/safety.ts";
import { CONTAINER_TYPE, resourceFacts } from "../engine/state.ts";
import type { StackState } from "../engine/state.ts";

/** A point one container of the service can go back to. */
export type ServicePoint =
  | { kind: "snapshot"; resource: string; node: string; vmid: number; name: string }
  | { kind: "backup"; resource: string; node: string; vmid: number; volid: string; storage: string }
  /** A backup of a container the deploy replaced (another vmid). */
  | { kind: "replaced"; resource: string; node: string; vmid: number; volid: string; fromVmid: number | undefined };

/** What rolling one container back did. */
export interface RollbackStep {
  resource: string;
  vmid: number;
  point: ServicePoint;
  ok: boolean;
  message: string;
  durationMs: number;
}

/** The containers of a service's stack: resource id, node, vmid. Pure. */
export function stackContainers(state: StackState | undefined): { resource: string; node: string; vmid: number }[] {
  return (state?.resources ?? []).flatMap((r) => {
    if (r.type !== CONTAINER_TYPE) return [];
    const f = resourceFacts(r);
    return f.node !== undefined && f.vmid !== undefined ? [{ resource: r.id, node: f.node, vmid: f.vmid }] : [];
  });
}

/** The rollback points deploy `deployId` took for a service's containers, one per container at most. */
export async function rollbackPoints(client: ProxmoxClient, o: { deployId: string; envName: string; service: string; backupStorage: string; state: StackState | undefined }): Promise<ServicePoint[]> {
  const out: ServicePoint[] = [];
  const name = snapshotName(o.deployId);
  for (const c of stackContainers(o.state)) {
    const snaps = await client.lxc.snapshots(c.node, c.vmid).catch(() => []);
    if (snaps.some((s) => s.name === name)) {
      out.push({ kind: "snapshot", ...c, name });
      continue;
    }
    const backups = (await client.backup.list(c.node, o.backupStorage)).filter((b) => {
      const n = parseBackupNotes(b.notes);
      return n !== undefined && n.deployId === o.deployId && sameIdentity(n.identity, { service: o.service, resource: c.resource, environment: o.envName });
    });
    const own = backups.find((b) => b.vmid === c.vmid);
    if (own) out.push({ kind: "backup", ...c, volid: own.volid, storage: own.storage });
    else if (backups[0]) out.push({ kind: "replaced", ...c, volid: backups[0].volid, fromVmid: backups[0].vmid });
  }
  return out;
}

/**
 * Brings one container back to a point: a snapshot is rolled back (Proxmox stops the
 * container first) and the container started; a backup of the same container is restored
 * over it (stopped first; Proxmox protection lifted for the restore and set again).
 */
export async function rollBack(client: ProxmoxClient, point: ServicePoint, o: { storage: string; stop: (node: string, vmid: number) => Promise<void> }): Promise<RollbackStep> {
  const started = Date.now();
  const step = (ok: boolean, message: string): RollbackStep => ({ resource: point.resource, vmid: point.vmid, point, ok, message, durationMs: Date.now() - started });
  try {
    if (point.kind === "snapshot") {
      await client.lxc.rollback(point.node, point.vmid, point.name, { start: true });
      return step(true, `CT ${point.vmid} rolled back to snapshot ${point.name}`);
    }
    await restoreOver(client, point.node, point.vmid, point.volid, o);
    if (point.kind === "replaced") return step(true, `CT ${point.vmid}, which replaced CT ${point.fromVmid ?? "?"}, restored from that container's backup ${point.volid}`);
    return step(true, `CT ${point.vmid} restored from backup ${point.volid}`);
  } catch (error) {
    return step(false, `rolling CT ${point.vmid} back failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Restores a backup over an existing container (same vmid), lifting Proxmox protection for it, and starts it. */
export async function restoreOver(client: ProxmoxClient, node: string, vmid: number, volid: string, o: { storage: string; stop: (node: string, vmid: number) => Promise<void> }): Promise<void> {
  const before = await client.lxc.config(node, vmid);
  // Proxmox's force-restore destroys every volume the old config names and brings back only those in the backup.
  const unbacked = Object.values(before.mounts).filter((m) => m.type === "volume" && !m.backup);
  if (unbacked.length > 0) {
    throw new Error(
      `CT ${vmid} has volume(s) left out of backups (${unbacked.map((m) => m.mp).join(", ")}, backup: false): restoring over it would empty them; set backup: true and deploy, or restore by hand into another container (pct restore NEWID ${volid})`,
    );
  }
  await o.stop(node, vmid);
  if (before.protection) await client.lxc.updateConfig(node, vmid, { protection: false });
  await client.lxc.create(node, { vmid, ostemplate: volid, restore: true, force: true, storage: o.storage });
  if (before.protection) await client.lxc.updateConfig(node, vmid, { protection: true });
  await client.lxc.start(node, vmid);
}
