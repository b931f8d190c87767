/**
 * Snapshots and backups homelab takes before every destructive step, so that
 * nothing a user stored is lost by what the tool does on its own.
 *
 * Which one: a container that stays (an update that restarts it, a changed
 * compose project) gets a Proxmox snapshot, fast and rolled back in seconds,
 * where its storages support snapshots; else a vzdump backup. A container
 * whose volumes move to another container (a replace, a recreate) or are
 * deleted gets a vzdump backup: a snapshot lives and dies with its container,
 * and Proxmox refuses to move a volume a snapshot uses.
 *
 * Names follow the deploy that took them: snapshots are `homelab_<deploy id>`,
 * backups carry notes `homelab: <why> of service S, resource R, environment E
 * (deploy <id>)`, so a deploy finds its own rollback points and `homelab
 * backups` lists them by service. The newest `keep` of each are kept.
 */
import type { ProxmoxClient } from "../proxmox/client.ts";
import type { BackupVolume } from "../proxmox/backup.ts";
import { ProxmoxError } from "../proxmox/errors.ts";
import type { LxcSnapshot } from "../proxmox/lxc-types.ts";
import type { ContainerIdentity } from "./identity.ts";
import { sameIdentity } from "./identity.ts";

/** Why a rollback point was taken: the destructive step that followed. */
export type SafetyReason = "replace" | "recreate" | "restart" | "compose-update" | "delete-data" | "restore" | "adopt";

/** Words for each reason, in notes and messages. */
export const REASON_TEXT: Readonly<Record<SafetyReason, string>> = {
  replace: "before replacing the container",
  recreate: "before recreating the container",
  restart: "before a change that restarts the container",
  "compose-update": "before updating the compose project",
  "delete-data": "before deleting the container and its data",
  restore: "before restoring an earlier state",
  adopt: "before moving the volumes to a new container",
};

/** A point a container can be brought back to. */
export type RollbackPoint =
  | { kind: "snapshot"; node: string; vmid: number; name: string; takenAt: number; reused: boolean }
  | { kind: "backup"; node: string; vmid: number; volid: string; storage: string; takenAt: number; reused: boolean };

/** What the safety steps need to know: where backups go, how many to keep, and the deploy that takes them. */
export interface SafetySettings {
  backupStorage: string;
  keep: number;
  /** The run's id (newDeployId); names its snapshots and is in its backups' notes. */
  deployId: string;
}

const SNAPSHOT_PREFIX = "homelab_";
const DEPLOY_ID = /^\d{8}_\d{6}(?:_[a-z0-9]{1,8})?$/;

/** A deploy id: `YYYYMMDD_HHMMSS_xxxx` (UTC, then 4 random characters so two runs in one second differ). */
export function newDeployId(now: Date = new Date(), random: () => number = Math.random): string {
  const iso = now.toISOString();
  const tail = Array.from({ length: 4 }, () => "abcdefghijklmnopqrstuvwxyz0123456789"[Math.floor(random() * 36)] ?? "x").join("");
  return `${iso.slice(0, 10).replaceAll("-", "")}_${iso.slice(11, 19).replaceAll(":", "")}_${tail}`;
}

/** Whether a string is a deploy id. Pure. */
export function isDeployId(id: string): boolean {
  return DEPLOY_ID.test(id);
}

/** The snapshot name of a deploy (a valid Proxmox config id: a letter first, at most 40 characters). Pure. */
export function snapshotName(deployId: string): string {
  return `${SNAPSHOT_PREFIX}${deployId}`;
}

/** The deploy id of one of homelab's snapshots; undefined for others. Pure. */
export function deployIdOfSnapshot(name: string): string | undefined {
  const id = name.startsWith(SNAPSHOT_PREFIX) ? name.slice(SNAPSHOT_PREFIX.length) : undefined;
  return id !== undefined && isDeployId(id) ? id : undefined;
}

/** The notes of one of homelab's backups. Pure. */
export function backupNotes(id: ContainerIdentity, reason: SafetyReason, deployId: string): string {
  return `homelab: ${REASON_TEXT[reason]} of service ${id.service}, resource ${id.resource}, environment ${id.environment} (deploy ${deployId})`;
}

const NOTES = /^homelab: (.+) of service ([^\s,]+), resource ([^\s,]+), environment ([^\s,()]+) \(deploy ([0-9_a-z]+)\)/;

/** What one of homelab's backups was for, from its notes; undefined for backups homelab did not take. Pure. */
export function parseBackupNotes(notes: string): { identity: ContainerIdentity; why: string; deployId: string } | undefined {
  const m = NOTES.exec(notes.trim());
  if (!m) return undefined;
  return { why: m[1] ?? "", identity: { service: m[2] ?? "", resource: m[3] ?? "", environment: m[4] ?? "" }, deployId: m[5] ?? "" };
}

/** Whether Proxmox refused a snapshot because a volume's storage (or a bind mount) cannot take one. */
function snapshotsUnsupported(error: unknown): boolean {
  return error instanceof ProxmoxError && /snapshot feature is not available|does not support snapshot|mode failure/i.test(error.message + " " + JSON.stringify(error));
}

/** Takes, reuses and prunes rollback points over one Proxmox client. */
export class DataSafety {
  private readonly client: ProxmoxClient;
  private readonly settings: SafetySettings;
  private readonly say: (message: string) => void;

  constructor(client: ProxmoxClient, settings: SafetySettings, say: (message: string) => void = () => undefined) {
    this.client = client;
    this.settings = settings;
    this.say = say;
  }

  /**
   * Before a change of a container that stays: this deploy's snapshot (taken once, reused by
   * later steps of the same deploy: it is the state before all of them), or a backup where
   * snapshots are not possible.
   */
  async beforeChange(node: string, vmid: number, identity: ContainerIdentity, reason: SafetyReason): Promise<RollbackPoint> {
    const name = snapshotName(this.settings.deployId);
    const existing = (await this.client.lxc.snapshots(node, vmid)).find((s) => s.name === name);
    if (existing) return { kind: "snapshot", node, vmid, name, takenAt: (existing.snaptime ?? 0) * 1000, reused: true };
    const started = Date.now();
    try {
      await this.client.lxc.snapshot(node, vmid, name, { description: backupNotes(identity, reason, this.settings.deployId) });
    } catch (error) {
      if (!snapshotsUnsupported(error)) throw error;
      this.say(`CT ${vmid}: a snapshot is not possible (${error instanceof Error ? error.message : String(error)}); taking a backup instead`);
      return this.backupBefore(node, vmid, identity, reason);
    }
    this.say(`CT ${vmid}: snapshot ${name} taken ${REASON_TEXT[reason]} (${Date.now() - started} ms)`);
    await this.pruneSnapshots(node, vmid);
    return { kind: "snapshot", node, vmid, name, takenAt: started, reused: false };
  }

  /** Before the container's volumes move away or are deleted: this deploy's backup of it (taken once). */
  async backupBefore(node: string, vmid: number, identity: ContainerIdentity, reason: SafetyReason): Promise<RollbackPoint> {
    const storage = this.settings.backupStorage;
    const mine = (b: BackupVolume): boolean => {
      const n = parseBackupNotes(b.notes);
      return n !== undefined && n.deployId === this.settings.deployId && sameIdentity(n.identity, identity) && b.vmid === vmid;
    };
    const existing = (await this.client.backup.list(node, storage, vmid)).find(mine);
    if (existing) return { kind: "backup", node, vmid, volid: existing.volid, storage, takenAt: existing.ctime * 1000, reused: true };
    const started = Date.now();
    const notesTemplate = backupNotes(identity, reason, this.settings.deployId);
    let taken: BackupVolume | undefined;
    try {
      taken = (await this.client.backup.vzdump(node, { vmid, storage, mode: "snapshot", notesTemplate })).backup;
    } catch (error) {
      if (!snapshotsUnsupported(error)) throw error;
      // vzdump's snapshot mode needs snapshots of every backed-up volume; suspend mode does not.
      taken = (await this.client.backup.vzdump(node, { vmid, storage, mode: "suspend", notesTemplate })).backup;
    }
    if (!taken) throw new ProxmoxError(`the backup of CT ${vmid} ended, but no new backup is listed on storage ${storage} of ${node}`, `look at the vzdump task log on ${node}`);
    this.say(`CT ${vmid}: backup ${taken.volid} taken ${REASON_TEXT[reason]} (${Math.round(taken.size / 1024 / 1024)} MiB, ${Date.now() - started} ms)`);
    await this.pruneBackups(node, identity);
    return { kind: "backup", node, vmid, volid: taken.volid, storage, takenAt: taken.ctime * 1000, reused: false };
  }

  /** Removes homelab's snapshots of a container: its volumes are about to move, which Proxmox refuses while a snapshot uses them. */
  async dropSnapshots(node: string, vmid: number): Promise<number> {
    const mine = (await this.client.lxc.snapshots(node, vmid)).filter((s) => deployIdOfSnapshot(s.name) !== undefined);
    for (const s of mine) await this.client.lxc.deleteSnapshot(node, vmid, s.name);
    return mine.length;
  }

  /** Snapshots of a container that are not homelab's (they too keep its volumes from moving). */
  async foreignSnapshots(node: string, vmid: number): Promise<LxcSnapshot[]> {
    return (await this.client.lxc.snapshots(node, vmid)).filter((s) => deployIdOfSnapshot(s.name) === undefined);
  }

  private async pruneSnapshots(node: string, vmid: number): Promise<void> {
    const mine = (await this.client.lxc.snapshots(node, vmid)).filter((s) => deployIdOfSnapshot(s.name) !== undefined);
    for (const old of mine.slice(0, Math.max(0, mine.length - this.settings.keep))) {
      await this.client.lxc.deleteSnapshot(node, vmid, old.name);
      this.say(`CT ${vmid}: snapshot ${old.name} removed (keeping the newest ${this.settings.keep})`);
    }
  }

  private async pruneBackups(node: string, identity: ContainerIdentity): Promise<void> {
    const mine = (await this.client.backup.list(node, this.settings.backupStorage)).filter((b) => {
      const n = parseBackupNotes(b.notes);
      return n !== undefined && sameIdentity(n.identity, identity);
    });
    for (const old of mine.slice(this.settings.keep)) {
      if (old.protected) continue;
      await this.client.backup.remove(node, this.settings.backupStorage, old.volid);
      this.say(`backup ${old.volid} removed (keeping the newest ${this.settings.keep} of ${identity.service}/${identity.resource})`);
    }
  }
}
