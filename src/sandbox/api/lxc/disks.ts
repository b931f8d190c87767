/**
 * A container's disks beyond its config: `move_volume` (reassigning a mount
 * point's volume to another container on the same node, renamed for its new
 * owner; or copying it to another storage under `lock: disk`), `resize`
 * (grow only) and `feature`, with pve-container's checks and wording. Each
 * check runs before the task (a 500 the caller sees at once) and again in
 * the worker under the config file locks, as Proxmox does.
 */
import { guestDigest, volumeRef } from "../../cluster.ts";
import type { GuestState } from "../../cluster.ts";
import { ApiError, failure, paramError } from "../../errors.ts";
import { formatDiskSize } from "../../formats.ts";
import { baseVolumeName } from "../../storage.ts";
import type { VolumeFeature } from "../../storage.ts";
import type { TaskContext } from "../../tasks.ts";
import { NODE, STORAGE, VMID, checkNode, flag, reqNum, reqStr, str } from "../common.ts";
import type { Call, Endpoint, Reply, SandboxState } from "../types.ts";
import { checkDigest, checkLock, isRunning } from "./checks.ts";
import { applyUpdate } from "./config.ts";
import { removeLock, withFileLock } from "./locking.ts";
import { checkSnapname, propertyOf, render } from "./schema.ts";
import { hasFeature } from "./snapshots.ts";
import { addUnused, allocateVolume, dropUsedUnused, freeVolume, guestMounts, mountType, rootfsRef, usedBySnapshot, volumeFeature, volumeOf } from "./volumes.ts";

const MOUNT_KEYS = ["rootfs", ...Array.from({ length: 256 }, (_, i) => `mp${i}`)];
const VOLUME_KEYS = [...MOUNT_KEYS, ...Array.from({ length: 256 }, (_, i) => `unused${i}`)];
const DIGEST = { type: "string", optional: true, maxLength: 40 } as const;

const isUnused = (key: string): boolean => /^unused\d+$/.test(key);

/** `parse_volume` of an option that is not set: Proxmox's property-string "format error". */
function notConfigured(key: string): ApiError {
  const errors: Record<string, string> = { volume: "property is missing and it is not optional" };
  if (/^mp\d+$/.test(key)) errors["mp"] = "property is missing and it is not optional";
  return new ApiError(500, "format error", errors);
}


/** What a reassign asks for. */
interface Reassign {
  node: string;
  vmid: number;
  key: string;
  targetVmid: number;
  targetKey: string;
  digest: string | undefined;
  targetDigest: string | undefined;
}

/** `load_and_check_reassign_configs`: every check of a reassign, in pve-container's order. */
async function checkReassign(state: SandboxState, r: Reassign): Promise<{ source: GuestState; target: GuestState; volid: string }> {
  if (r.key === "rootfs" || r.targetKey === "rootfs") throw failure("Cannot move to/from 'rootfs'");
  if (isUnused(r.key) && !isUnused(r.targetKey)) throw failure("Moving an unused volume to a used one is not possible");
  const src = state.cluster.guests.get(r.vmid);
  if (!src) throw failure(`could not find CT ${r.vmid}`);
  const dst = state.cluster.guests.get(r.targetVmid);
  if (!dst) throw failure(`could not find CT ${r.targetVmid}`);
  if (src.node !== dst.node) throw failure(`Both containers need to be on the same node (${src.node} != ${dst.node})`);
  const source = state.cluster.guest(r.node, r.vmid);
  checkLock(source);
  const target = r.targetVmid === r.vmid ? source : state.cluster.guest(r.node, r.targetVmid);
  if (target !== source) checkLock(target);
  if (source.config["template"] === 1 || target.config["template"] === 1) throw failure("Can't move volumes from or to template CT");
  if (r.digest !== undefined && r.digest !== guestDigest(source)) {
    throw failure(`Container ${r.vmid}: detected modified configuration - file changed by other user? Try again.`);
  }
  if (r.targetDigest !== undefined && r.targetDigest !== guestDigest(target)) {
    throw failure(`Container ${r.targetVmid}: detected modified configuration - file changed by other user? Try again.`);
  }
  const value = source.config[r.key];
  if (value === undefined) throw failure(`volume '${r.key}' for container '${r.vmid}' does not exist`);
  if (target.config[r.targetKey] !== undefined) throw failure(`Target volume key '${r.targetKey}' is already in use for container '${r.targetVmid}'`);
  const volid = volumeOf(r.key, String(value));
  if (usedBySnapshot(source, volid)) throw failure("Cannot move volume used by a snapshot to another container");
  if (!volumeFeature(state, volid, "rename")) throw failure("Storage does not support moving of this disk to another container");
  if (mountType(volid) !== "volume") throw failure("Cannot move a bindmount or device mount to another container");
  if (!isUnused(r.key) && (await isRunning(state, source))) {
    throw failure("Cannot move in-use volume while the source CT is running - detach or shutdown first");
  }
  return { source, target, volid };
}

/** The reassign worker: renames the volume for its new owner and moves its config entry. */
async function reassign(state: SandboxState, r: Reassign, ctx: TaskContext): Promise<void> {
  const lockTarget = r.targetVmid === r.vmid ? <T>(f: () => Promise<T>): Promise<T> => f() : <T>(f: () => Promise<T>): Promise<T> => withFileLock(state, r.targetVmid, f);
  await withFileLock(state, r.vmid, () =>
    lockTarget(async () => {
      const { source, target, volid } = await checkReassign(state, r);
      ctx.log(`moving volume '${r.key}' from container '${r.vmid}' to '${r.targetVmid}'`);
      const vol = state.cluster.volume(r.node, volid);
      if (!vol) throw new Error(`volume '${volid}' does not exist`);
      const newVolid = state.cluster.renamedVolid(vol, r.targetVmid);
      await state.cluster.backend.renameVolume(volumeRef(vol), volumeRef({ ...vol, volid: newVolid }));
      const renamed = state.cluster.renameVolume(vol, newVolid, r.targetVmid);
      const value = String(source.config[r.key]);
      const next = { ...source.config };
      delete next[r.key];
      ctx.log(`removing volume '${r.key}' from container '${r.vmid}' config`);
      if (source.created && !isUnused(r.key)) {
        await state.cluster.backend.setMounts(r.vmid, rootfsRef(state, r.node, next), guestMounts(state, r.node, next), []);
      }
      source.config = next;
      if (isUnused(r.targetKey)) {
        target.config = { ...target.config, [r.targetKey]: renamed.volid };
      } else {
        const drive = isUnused(r.key) ? { volume: renamed.volid } : { ...propertyOf(r.key, value), volume: renamed.volid };
        const text = render(propertyOf(r.targetKey, render(drive, ["volume"])), ["volume"]);
        await applyUpdate(state, target, { changes: { [r.targetKey]: text }, removals: [], reverts: [] }, await isRunning(state, target), ctx);
      }
      ctx.log(`target container '${r.targetVmid}' updated with '${r.targetKey}'`);
    }),
  );
}

/** What a move to another storage asks for. */
interface StorageMove {
  node: string;
  vmid: number;
  key: string;
  storage: string;
  delete: boolean;
  digest: string | undefined;
}

/** `move_to_storage_checks`: before the task, under the config file lock; sets `lock: disk`. */
async function checkStorageMove(state: SandboxState, m: StorageMove): Promise<string> {
  return withFileLock(state, m.vmid, async () => {
    const g = state.cluster.guest(m.node, m.vmid);
    checkLock(g);
    if (await isRunning(state, g)) throw failure("cannot move volumes of a running container");
    if (isUnused(m.key)) throw failure(`cannot move volume '${m.key}', only configured volumes can be moved to another storage`);
    const value = g.config[m.key];
    if (value === undefined) throw notConfigured(m.key);
    if (m.delete && usedBySnapshot(g, volumeOf(m.key, String(value)))) throw failure("you can't move a volume with snapshots and delete the source");
    checkDigest(g, m.digest);
    g.config["lock"] = "disk";
    return String(value);
  });
}

/** The storage-move worker: copies the volume, points the config at the copy, keeps the old one as unused or frees it. */
async function moveToStorage(state: SandboxState, m: StorageMove, value: string, ctx: TaskContext): Promise<void> {
  try {
    const drive = propertyOf(m.key, value);
    const oldVolid = String(drive["volume"]);
    if (mountType(oldVolid) !== "volume") throw new Error(`cannot copy volumes of type ${mountType(oldVolid)}`);
    const old = state.cluster.volume(m.node, oldVolid);
    if (!old) throw new Error(`volume '${oldVolid}' does not exist`);
    state.cluster.storage(m.storage);
    let copy = await allocateVolume(state, m.node, m.storage, m.vmid, old.size);
    ctx.log(`moving volume '${oldVolid}' to '${copy.volid}'`);
    try {
      await state.cluster.backend.copyVolume(volumeRef(old), volumeRef(copy));
      // A template's volume arrives as a base volume, as pve-container's move_volume makes it.
      if (state.cluster.guest(m.node, m.vmid).config["template"] === 1) {
        const baseVolid = `${copy.storage}:${baseVolumeName(state.cluster.storage(copy.storage), volumeRef(copy).name)}`;
        await state.cluster.backend.makeBaseVolume(volumeRef(copy), volumeRef({ ...copy, volid: baseVolid }));
        copy = state.cluster.renameVolume(copy, baseVolid, copy.vmid);
      }
      const moved = copy;
      await withFileLock(state, m.vmid, async () => {
        const g = state.cluster.guest(m.node, m.vmid);
        const next = { ...g.config, [m.key]: render({ ...drive, volume: moved.volid, size: formatDiskSize(old.size) }, ["volume"]) };
        if (!m.delete) addUnused(next, oldVolid);
        dropUsedUnused(next);
        if (g.created) await state.cluster.backend.setMounts(m.vmid, rootfsRef(state, m.node, next), guestMounts(state, m.node, next), []);
        g.config = next;
      });
    } catch (e) {
      await freeVolume(state, copy).catch(() => undefined);
      throw e;
    }
    if (m.delete) {
      await freeVolume(state, old);
      ctx.log(`  Logical volume "${oldVolid.replace(/^[^:]+:/, "")}" successfully removed.`);
    }
  } finally {
    await removeLock(state, m.node, m.vmid, "disk").catch((e: unknown) => ctx.warn((e as Error).message));
  }
}

async function moveVolume(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  const key = reqStr(params, "volume");
  const targetVmid = params["target-vmid"] === undefined ? undefined : Number(params["target-vmid"]);
  const storage = str(params, "storage");
  if (storage !== undefined && targetVmid !== undefined) throw failure("either set storage or target-vmid, but not both");
  if (targetVmid !== undefined) {
    const r: Reassign = { node, vmid, key, targetVmid, targetKey: str(params, "target-volume") ?? key, digest: str(params, "digest"), targetDigest: str(params, "target-digest") };
    await checkReassign(state, r);
    const upid = state.tasks.start(node, "move_volume", `${vmid}-${key}>${targetVmid}-${r.targetKey}`, user, { run: (ctx) => reassign(state, r, ctx) });
    return { data: upid };
  }
  if (storage !== undefined) {
    const m: StorageMove = { node, vmid, key, storage, delete: flag(params, "delete") ?? false, digest: str(params, "digest") };
    const value = await checkStorageMove(state, m);
    const upid = state.tasks.start(node, "move_volume", String(vmid), user, { run: (ctx) => moveToStorage(state, m, value, ctx) });
    return { data: upid };
  }
  const msg = "both 'storage' and 'target-vmid' missing, either needs to be set";
  throw paramError({ "target-vmid": msg, storage: msg });
}

/** Bytes of a `size` value (`10G`, `512M`, bytes without a unit), as `PVE::JSONSchema::parse_size` reads it. */
function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(text);
  if (!m) throw failure("invalid size string");
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] ?? ""] ?? 1;
  return Math.floor(Number(m[1]) * unit);
}

/** `resize`'s `load_and_check`: the mount point, its owner and its new size. */
function checkResize(state: SandboxState, node: string, vmid: number, disk: string, sizeText: string, digest: string | undefined): { g: GuestState; newSize: number; volid: string } {
  const ext = sizeText.startsWith("+");
  const request = parseSize(ext ? sizeText.slice(1) : sizeText);
  const g = state.cluster.guest(node, vmid);
  checkLock(g);
  checkDigest(g, digest);
  const value = g.config[disk];
  if (value === undefined) throw notConfigured(disk);
  const volid = volumeOf(disk, String(value));
  if (mountType(volid) !== "volume") throw failure(`unable to parse volume ID '${volid}'`);
  const vol = state.cluster.volume(node, volid);
  if (!vol) throw failure(`Could not determine current size of volume '${volid}'`);
  if (vol.vmid !== vmid) throw failure(`can't resize mount point owned by another container (${vol.vmid})`);
  const newSize = Math.floor(ext ? vol.size + request : request);
  if (newSize < vol.size) throw failure("unable to shrink disk size");
  if (newSize === vol.size) throw failure("disk is already at specified size");
  return { g, newSize, volid };
}

function resize(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  const disk = reqStr(params, "disk");
  const size = reqStr(params, "size");
  const digest = str(params, "digest");
  checkResize(state, node, vmid, disk, size, digest);
  const upid = state.tasks.start(node, "resize", String(vmid), user, {
    run: (ctx) =>
      withFileLock(state, vmid, async () => {
        const { g, newSize, volid } = checkResize(state, node, vmid, disk, size, digest);
        const vol = state.cluster.volume(node, volid);
        if (!vol) throw new Error(`volume '${volid}' does not exist`);
        // pve-storage pads the volume to whole KiB; the config records the size asked for.
        const padded = newSize + ((1024 - (newSize % 1024)) % 1024);
        await state.cluster.backend.resizeVolume(volumeRef(vol), padded);
        vol.size = padded;
        g.config = { ...g.config, [disk]: render({ ...propertyOf(disk, String(g.config[disk])), size: formatDiskSize(newSize) }, ["volume"]) };
        ctx.log(`  Size of logical volume pve/${volid.replace(/^[^:]+:/, "")} changed to ${formatDiskSize(padded)}.`);
        ctx.log(`  Logical volume pve/${volid.replace(/^[^:]+:/, "")} successfully resized.`);
      }),
  });
  return Promise.resolve({ data: upid });
}

/** The endpoints of this module. */
export const diskEndpoints: Endpoint[] = [
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/move_volume",
    params: {
      rules: {
        node: NODE,
        vmid: VMID,
        volume: { type: "string", enum: VOLUME_KEYS },
        "target-vmid": { ...VMID, optional: true },
        "target-volume": { type: "string", optional: true, enum: VOLUME_KEYS },
        storage: { ...STORAGE, optional: true },
        delete: { type: "boolean", optional: true },
        digest: DIGEST,
        "target-digest": DIGEST,
        bwlimit: { type: "number", optional: true, minimum: 0 },
      },
    },
    handle: moveVolume,
  },
  {
    method: "PUT",
    path: "/nodes/{node}/lxc/{vmid}/resize",
    params: {
      rules: {
        node: NODE,
        vmid: VMID,
        disk: { type: "string", enum: MOUNT_KEYS },
        size: { type: "string", pattern: /^\+?\d+(\.\d+)?[KMGT]?$/ },
        digest: DIGEST,
      },
    },
    handle: resize,
  },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/feature",
    params: {
      rules: {
        node: NODE,
        vmid: VMID,
        feature: { type: "string", enum: ["snapshot", "clone", "copy"] },
        snapname: { type: "string", optional: true, maxLength: 40, format: checkSnapname },
      },
    },
    handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const snapname = str(params, "snapname");
      let config = g.config;
      if (snapname !== undefined) {
        const snap = g.snapshots[snapname];
        if (snap === undefined) throw failure(`snapshot '${snapname}' does not exist`);
        config = snap;
      }
      const feature = reqStr(params, "feature") as VolumeFeature;
      return Promise.resolve({ data: { hasFeature: hasFeature(state, node, config, feature, snapname) ? 1 : 0 } });
    },
  },
];
