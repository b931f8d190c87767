/**
 * Container snapshots as pve-guest-common's AbstractConfig and
 * pve-container make them: `snapshot_create` (prepare under `lock:
 * snapshot`, freeze a running guest, one storage snapshot per volume,
 * commit with `parent`), `snapshot_delete` (`lock: snapshot-delete`, parent
 * links re-threaded) and `snapshot_rollback` (a running guest is stopped
 * hard, `lock: rollback`, the config becomes the snapshot's), plus the
 * feature check that refuses bind mounts and storages without snapshots.
 * vzdump's `snapshot` mode uses the same functions with the name `vzdump`.
 */
import { volumeRef } from "../../cluster.ts";
import type { ConfigValue, GuestState } from "../../cluster.ts";
import type { VolumeRef } from "../../guest-backend.ts";
import type { VolumeFeature } from "../../storage.ts";
import type { TaskContext } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { checkLock, isRunning } from "./checks.ts";
import { backendChange } from "./config.ts";
import { setLock, withFileLock } from "./locking.ts";
import { propertyOf } from "./schema.ts";
import { addUnused, dropUsedUnused, guestMounts, mountKeys, mountType, rootfsRef, usedVolumes, volumeFeature, volumeOf } from "./volumes.ts";

/** Whether a mount point goes into backups (`mountpoint_backup_enabled`), and why. */
export function backupEnabled(key: string, text: string): { enabled: boolean; reason: string } {
  if (key === "rootfs") return { enabled: true, reason: "rootfs" };
  const values = propertyOf(key, text);
  if (mountType(String(values["volume"])) !== "volume") return { enabled: false, reason: "not a volume" };
  return values["backup"] === true ? { enabled: true, reason: "enabled" } : { enabled: false, reason: "disabled" };
}

/**
 * Whether every volume of a config has a feature (`has_feature`): a bind or
 * device mount never has one; `backupOnly` looks only at mount points that
 * go into backups.
 */
export function hasFeature(state: SandboxState, node: string, config: Record<string, ConfigValue>, feature: VolumeFeature, snapname?: string, backupOnly = false): boolean {
  for (const key of mountKeys(config)) {
    const text = String(config[key]);
    if (backupOnly && !backupEnabled(key, text).enabled) continue;
    if (!volumeFeature(state, volumeOf(key, text), feature, snapname)) return false;
  }
  return true;
}

/** Copies a config into a snapshot's (`__snapshot_copy_config`): no lock, description, unused disks or snapshot bookkeeping. */
function copyConfig(source: Record<string, ConfigValue>, dest: Record<string, ConfigValue>): void {
  for (const [k, v] of Object.entries(source)) {
    if (["snapstate", "snaptime", "vmstate", "lock", "digest", "description"].includes(k) || /^unused\d+$/.test(k)) continue;
    dest[k] = v;
  }
}

/** The volumes of a snapshot's config the storage snapshots concern, as (key, volid) pairs. */
function snapshotVolumes(snap: Record<string, ConfigValue>, snapname: string): Array<{ key: string; volid: string }> {
  const out: Array<{ key: string; volid: string }> = [];
  for (const key of mountKeys(snap)) {
    const text = String(snap[key]);
    if (snapname === "vzdump" && !backupEnabled(key, text).enabled) continue;
    const volid = volumeOf(key, text);
    if (mountType(volid) === "volume") out.push({ key, volid });
  }
  return out;
}

function refsOf(state: SandboxState, g: GuestState, vols: Array<{ volid: string }>): VolumeRef[] {
  const refs: VolumeRef[] = [];
  for (const { volid } of vols) {
    const v = state.cluster.volume(g.node, volid);
    if (!v) throw new Error(`volume '${volid}' does not exist`);
    refs.push(volumeRef(v));
  }
  return refs;
}


/** Takes a snapshot (`snapshot_create`); a failure cleans up what was made and leaves no snapshot. */
export async function snapshotCreate(state: SandboxState, node: string, vmid: number, snapname: string, description: string | undefined, ctx: TaskContext): Promise<void> {
  const snap = await withFileLock(state, vmid, () => {
    const g = state.cluster.guest(node, vmid);
    if (g.config["template"] === 1) throw new Error("you can't take a snapshot if it's a template");
    checkLock(g);
    if (g.snapshots[snapname] !== undefined) throw new Error(`snapshot name '${snapname}' already used`);
    if (!hasFeature(state, node, g.config, "snapshot", undefined, snapname === "vzdump")) throw new Error("snapshot feature is not available");
    for (const [name, s] of Object.entries(g.snapshots).sort(([a], [b]) => a.localeCompare(b))) {
      if (s["parent"] === snapname) {
        ctx.warn(`deleting parent '${snapname}' reference from '${name}' to avoid bogus snapshot cycle.`);
        delete s["parent"];
      }
    }
    g.config["lock"] = "snapshot";
    const s: Record<string, ConfigValue> = {};
    copyConfig(g.config, s);
    s["snapstate"] = "prepare";
    s["snaptime"] = Math.floor(state.clock() / 1000);
    if (description) s["description"] = description;
    g.snapshots[snapname] = s;
    return s;
  });
  const g = state.cluster.guest(node, vmid);
  const vols = snapshotVolumes(snap, snapname);
  const done = new Set<string>();
  try {
    const running = await isRunning(state, g);
    await state.cluster.backend.snapshotVolumes(running ? vmid : undefined, snapname, refsOf(state, g, vols));
    for (const { key, volid } of vols) {
      state.cluster.volume(node, volid)?.snapshots.push(snapname);
      done.add(key);
    }
  } catch (e) {
    ctx.warn("snapshot create failed: starting cleanup");
    try {
      await snapshotDelete(state, node, vmid, snapname, true, ctx, done);
    } catch (cleanup) {
      ctx.warn((cleanup as Error).message);
    }
    throw e;
  }
  await withFileLock(state, vmid, () => {
    const now = state.cluster.guest(node, vmid);
    if (now.config["lock"] !== "snapshot") throw new Error("missing snapshot lock");
    const s = now.snapshots[snapname];
    if (s === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
    if (s["snapstate"] !== "prepare") throw new Error("wrong snapshot state");
    delete s["snapstate"];
    delete now.config["lock"];
    now.config["parent"] = snapname;
  });
}

/**
 * Deletes a snapshot (`snapshot_delete`): under `lock: snapshot-delete`, each
 * volume's storage snapshot goes, then the snapshot's section, and the
 * parent links of the config and the other snapshots skip it. `made` is set
 * when a failed create cleans up (it holds `lock: snapshot` already and
 * names the volumes it snapshotted).
 */
export async function snapshotDelete(state: SandboxState, node: string, vmid: number, snapname: string, force: boolean, ctx: TaskContext, made?: Set<string>): Promise<void> {
  const g0 = state.cluster.guest(node, vmid);
  if (g0.snapshots[snapname] === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
  if (!made) await setLock(state, node, vmid, "snapshot-delete");
  const expected = made ? "snapshot" : "snapshot-delete";
  const ensureLock = (g: GuestState): void => {
    if (g.config["lock"] !== expected) throw new Error(`encountered invalid lock, expected '${expected}'`);
  };
  const snap = await withFileLock(state, vmid, () => {
    const g = state.cluster.guest(node, vmid);
    ensureLock(g);
    if (g.config["template"] === 1) throw new Error("you can't delete a snapshot if vm is a template");
    const s = g.snapshots[snapname];
    if (s === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
    s["snapstate"] = "delete";
    return s;
  });
  const unused: string[] = [];
  for (const { key, volid } of snapshotVolumes(snap, snapname)) {
    if (!made || made.has(key)) {
      try {
        const v = state.cluster.volume(node, volid);
        if (v) {
          await state.cluster.backend.deleteVolumeSnapshot(snapname, volumeRef(v));
          v.snapshots = v.snapshots.filter((n) => n !== snapname);
        }
        unused.push(volid);
      } catch (e) {
        if (!force) throw e;
        ctx.warn((e as Error).message);
      }
    }
    if (!force) {
      await withFileLock(state, vmid, () => {
        const g = state.cluster.guest(node, vmid);
        ensureLock(g);
        const s = g.snapshots[snapname];
        if (s === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
        delete s[key];
      });
    }
  }
  await withFileLock(state, vmid, () => {
    const g = state.cluster.guest(node, vmid);
    ensureLock(g);
    const s = g.snapshots[snapname];
    if (s === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
    const parent = s["parent"];
    const relink = (c: Record<string, ConfigValue>): void => {
      if (c["parent"] !== snapname) return;
      if (parent !== undefined) c["parent"] = parent;
      else delete c["parent"];
    };
    relink(g.config);
    for (const [name, other] of Object.entries(g.snapshots)) if (name !== snapname) relink(other);
    delete g.snapshots[snapname];
    delete g.config["lock"];
    for (const volid of unused) addUnused(g.config, volid);
    dropUsedUnused(g.config);
  });
}

/** `volume_rollback_is_possible`: ZFS rolls back only to a volume's most recent snapshot; LVM-thin to any. */
function rollbackPossible(state: SandboxState, node: string, volid: string, snapname: string): void {
  const v = state.cluster.volume(node, volid);
  if (!v || state.cluster.storage(v.storage).type !== "zfspool") return;
  const i = v.snapshots.indexOf(snapname);
  if (i < 0) throw new Error(`can't rollback, snapshot '${snapname}' does not exist on '${volid}'`);
  if (i < v.snapshots.length - 1) throw new Error(`can't rollback, '${snapname}' is not most recent snapshot on '${volid}'`);
}

/**
 * Rolls back to a snapshot (`snapshot_rollback`): a running guest is
 * stopped hard, the volumes go back under `lock: rollback`, and the config
 * becomes the snapshot's (keeping the description and unused disks; volumes
 * only the current config used become unused; pending changes are dropped).
 */
export async function snapshotRollback(state: SandboxState, node: string, vmid: number, snapname: string, ctx: TaskContext): Promise<void> {
  const snapshotOf = (g: GuestState): Record<string, ConfigValue> => {
    if (g.config["template"] === 1) throw new Error("you can't rollback if vm is a template");
    const s = g.snapshots[snapname];
    if (s === undefined) throw new Error(`snapshot '${snapname}' does not exist`);
    return s;
  };
  const snap = await withFileLock(state, vmid, async () => {
    const g = state.cluster.guest(node, vmid);
    const s = snapshotOf(g);
    for (const { volid } of snapshotVolumes(s, snapname)) rollbackPossible(state, node, volid, snapname);
    if (s["snapstate"] !== undefined) throw new Error(`unable to rollback to incomplete snapshot (snapstate = ${String(s["snapstate"])})`);
    checkLock(g);
    if (await isRunning(state, g)) {
      ctx.log(`stopping CT ${vmid} for the rollback`);
      await state.cluster.backend.stop(vmid);
      g.running = false;
    }
    if (await isRunning(state, g)) throw new Error(`unable to rollback vm ${vmid}: vm is running`);
    g.config["lock"] = "rollback";
    return s;
  });
  const g = state.cluster.guest(node, vmid);
  await state.cluster.backend.rollbackVolumes(vmid, snapname, refsOf(state, g, snapshotVolumes(snap, snapname)));
  await withFileLock(state, vmid, async () => {
    const now = state.cluster.guest(node, vmid);
    const s = snapshotOf(now);
    if (now.config["lock"] !== "rollback") throw new Error("got wrong lock");
    const before = now.config;
    const current = { ...before };
    delete current["lock"];
    const snapVolumes = usedVolumes(s);
    for (const volid of usedVolumes(current)) if (!snapVolumes.includes(volid)) addUnused(current, volid);
    const next: Record<string, ConfigValue> = {};
    for (const [k, v] of Object.entries(current)) if (/^unused\d+$/.test(k) || k === "description") next[k] = v;
    copyConfig(s, next);
    next["parent"] = snapname;
    dropUsedUnused(next);
    const change = backendChange(state, now, before, next);
    if (now.created && Object.keys(change).length > 0) await state.cluster.backend.update(vmid, change);
    if (now.created) await state.cluster.backend.setMounts(vmid, rootfsRef(state, node, next), guestMounts(state, node, next), []);
    now.config = next;
    now.pending = {};
    now.pendingDelete = [];
  });
}

/** `GET .../snapshot`: each snapshot and `current`, the container as it is now. */
export async function snapshotList(state: SandboxState, g: GuestState, digest: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = Object.entries(g.snapshots)
    .sort(([, a], [, b]) => Number(a["snaptime"] ?? 0) - Number(b["snaptime"] ?? 0))
    .map(([name, s]) => {
      const item: Record<string, unknown> = { name, snaptime: Number(s["snaptime"] ?? 0), description: String(s["description"] ?? "") };
      if (s["parent"] !== undefined) item["parent"] = s["parent"];
      if (s["snapstate"] !== undefined) item["snapstate"] = s["snapstate"];
      return item;
    });
  const current: Record<string, unknown> = { name: "current", digest, running: (await isRunning(state, g)) ? 1 : 0, description: "You are here!" };
  if (g.config["parent"] !== undefined) current["parent"] = g.config["parent"];
  out.push(current);
  return out;
}
