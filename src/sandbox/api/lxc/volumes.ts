/**
 * A container's volumes: the root volume and its mount points, which
 * storage may hold them, allocating and freeing them (model and backend
 * together), the unused disks a removed mount point leaves behind, who owns
 * a volume, and the mount points as the backend makes them, as
 * pve-container keeps them.
 */
import { volumeRef } from "../../cluster.ts";
import type { ConfigValue, GuestState, Volume } from "../../cluster.ts";
import { failure, paramError } from "../../errors.ts";
import { formatDiskSize, parseDiskSize, parseNewVolume } from "../../formats.ts";
import type { GuestMount, VolumeRef } from "../../guest-backend.ts";
import { parseVolumeName, volumeHasFeature } from "../../storage.ts";
import type { VolumeFeature } from "../../storage.ts";
import type { Scalar } from "../../params.ts";
import type { TaskContext } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { propertyOf, render } from "./schema.ts";

const GiB = 1024 ** 3;
/** pve-container's limit on `unused[n]` entries. */
const MAX_UNUSED = 256;

/** Whether a config key holds a volume: `rootfs` or `mp[n]`. */
export function isMountKey(key: string): boolean {
  return key === "rootfs" || /^mp\d+$/.test(key);
}

/** Proxmox's mount point types: a storage volume, a bind-mounted host path, or a device. */
export function mountType(volume: string): "volume" | "bind" | "device" {
  if (volume.startsWith("/dev/")) return "device";
  return volume.startsWith("/") ? "bind" : "volume";
}

/** The `volume` of a `rootfs`, `mp[n]` or `unused[n]` value. */
export function volumeOf(key: string, text: string): string {
  if (/^unused\d+$/.test(key)) return text;
  return String(propertyOf(key, text)["volume"]);
}

/** Whether a volume id's storage gives it a feature, as it is or in snapshot `snapname` (`volume_has_feature`; a host path never has one). */
export function volumeFeature(state: SandboxState, volid: string, feature: VolumeFeature, snapname?: string): boolean {
  if (mountType(volid) !== "volume") return false;
  const def = state.cluster.storages.find((s) => s.storage === storageOf(volid));
  const parsed = def ? parseVolumeName(def, volid.slice(volid.indexOf(":") + 1)) : undefined;
  return def !== undefined && parsed !== undefined && volumeHasFeature(def, parsed, feature, snapname);
}

/** The storage of a volume id (`local-lvm` of `local-lvm:vm-101-disk-0`). */
export function storageOf(volid: string): string {
  return volid.slice(0, volid.indexOf(":"));
}

/** The root volume's size in bytes (0 when it has none). */
export function rootfsSize(config: Record<string, ConfigValue>): number {
  const m = /(?:^|,)size=([^,]+)/.exec(String(config["rootfs"] ?? ""));
  return m ? parseDiskSize(m[1] ?? "0") : 0;
}

/** The `rootfs` and `mp[n]` a create asks for; a bare number means a new volume of that many GiB on `storage`. */
export function requestedMounts(params: Record<string, Scalar>, storage: string): Record<string, string> {
  const mounts: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (!isMountKey(key)) continue;
    mounts[key] = /^\d+(\.\d+)?$/.test(String(value)) ? `${storage}:${String(value)}` : String(value);
  }
  return mounts;
}

/** The mount keys of a config in pve-container's order (`rootfs`, `mp0`, `mp1`, ...). */
export function mountKeys(config: Record<string, ConfigValue>): string[] {
  const mps = Object.keys(config)
    .filter((k) => /^mp\d+$/.test(k))
    .sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
  return [...(config["rootfs"] !== undefined ? ["rootfs"] : []), ...mps];
}

function checkRootdirStorage(state: SandboxState, sid: string): void {
  const storage = state.cluster.storage(sid);
  if (!storage.content.includes("rootdir")) throw paramError({ storage: `storage '${sid}' does not support container directories` });
}

/** Checks a create's volumes as pve-container does before forking: a root volume with them, storages that hold container volumes. */
export function checkCreateVolumes(state: SandboxState, mounts: Record<string, string>, storage: string): void {
  if (Object.keys(mounts).length > 0 && mounts["rootfs"] === undefined) throw failure("mount points configured, but 'rootfs' not set - aborting");
  for (const [key, text] of Object.entries(mounts)) {
    const volume = volumeOf(key, text);
    if (mountType(volume) === "volume") checkRootdirStorage(state, storageOf(volume));
  }
  if (mounts["rootfs"] === undefined) checkRootdirStorage(state, storage);
}

/** Checks a changed `rootfs` or `mp[n]`: not while protected, a storage for container volumes, the same root volume. */
export function checkMountChange(state: SandboxState, g: GuestState, key: string, text: string): void {
  if (g.config["protection"] === 1) throw failure(`can't update CT ${g.vmid} drive '${key}' - protection mode enabled`);
  const volume = volumeOf(key, text);
  if (mountType(volume) === "volume") {
    const sid = storageOf(volume);
    if (!state.cluster.storage(sid).content.includes("rootdir")) throw failure(`storage '${sid}' does not allow content type 'rootdir' (Container)`);
  }
  if (key === "rootfs") {
    const now = volumeOf("rootfs", String(g.config["rootfs"]));
    if (volume !== now) throw failure("sandbox: replacing the root volume is not supported; change its options only");
  }
}

/** Allocates a volume on a node's storage for `vmid`: in the model and in the backend. */
export async function allocateVolume(state: SandboxState, node: string, sid: string, vmid: number, size: number): Promise<Volume> {
  const def = state.cluster.storage(sid);
  if (!def.content.includes("rootdir")) throw new Error(`content type 'rootdir' is not available or configured on storage '${sid}'`);
  const vol = state.cluster.addVolume(node, sid, vmid, size);
  try {
    await state.cluster.backend.allocateVolume(volumeRef(vol), size);
  } catch (e) {
    state.cluster.removeVolume(vol);
    throw e;
  }
  return vol;
}

/** Frees a volume (`vdisk_free`): refused for a base volume linked clones still use; its data (and snapshots) in the backend, then the model. */
export async function freeVolume(state: SandboxState, vol: Volume): Promise<void> {
  checkBaseUnused(state, vol);
  await state.cluster.backend.freeVolume(volumeRef(vol));
  state.cluster.removeVolume(vol);
}

/** pve-storage's refusal to free a base volume its linked clones still use (ZFS, dir; LVM-thin cannot tell and allows it). */
export function checkBaseUnused(state: SandboxState, vol: Volume): void {
  if (state.cluster.baseVolumeInUse(vol)) throw new Error(`base volume '${volumeRef(vol).name}' is still in use by linked clones`);
}

/**
 * Turns a mount value into its stored form: `STORAGE:SIZE_GB` becomes a new
 * volume of `vmid` (`local-lvm:vm-101-disk-1,mp=/data,size=2G`); an existing
 * volume gets its size from the storage, as Proxmox rescans it; host paths
 * stay as given. Returns the volume it allocated, if any.
 */
export async function allocateMount(state: SandboxState, node: string, vmid: number, key: string, text: string): Promise<{ value: string; allocated?: Volume }> {
  const values = propertyOf(key, text);
  const volume = String(values["volume"]);
  if (mountType(volume) !== "volume") return { value: render(values, ["volume"]) };
  const fresh = parseNewVolume(volume);
  if (!fresh) {
    const existing = state.cluster.volume(node, volume);
    if (!existing) throw new Error(`volume '${volume}' does not exist`);
    values["size"] = formatDiskSize(existing.size);
    return { value: render(values, ["volume"]) };
  }
  const vol = await allocateVolume(state, node, fresh.storage, vmid, Math.floor(fresh.sizeGb * 1024) * 1024 * 1024);
  values["volume"] = vol.volid;
  values["size"] = formatDiskSize(vol.size);
  return { value: render(values, ["volume"]), allocated: vol };
}

/** Allocates a new container's volumes in pve-container's order, logging each as Proxmox's LVM does; undoes them all on failure. */
export async function allocateVolumes(state: SandboxState, node: string, vmid: number, wanted: Record<string, string>, ctx: TaskContext): Promise<{ values: Record<string, string>; allocated: Volume[] }> {
  const values: Record<string, string> = {};
  const allocated: Volume[] = [];
  try {
    for (const key of mountKeys(wanted)) {
      const text = wanted[key];
      if (text === undefined) continue;
      const r = await allocateMount(state, node, vmid, key, text);
      values[key] = r.value;
      if (r.allocated) {
        allocated.push(r.allocated);
        ctx.log(`  Logical volume "${r.allocated.volid.replace(/^[^:]+:/, "")}" created.`);
      }
    }
  } catch (e) {
    for (const v of allocated) await freeVolume(state, v).catch(() => undefined);
    throw e;
  }
  return { values, allocated };
}

/** The volume ids a config's `rootfs` and `mp[n]` use (storage volumes only), as `get_vm_volumes` lists them. */
export function usedVolumes(config: Record<string, ConfigValue>): string[] {
  const out: string[] = [];
  for (const key of mountKeys(config)) {
    const volume = volumeOf(key, String(config[key]));
    if (mountType(volume) === "volume" && !out.includes(volume)) out.push(volume);
  }
  return out;
}

/** Whether a volume is used by a config, its snapshots or its pending changes (`is_volume_in_use`). */
export function isVolumeInUse(g: GuestState, config: Record<string, ConfigValue>, volid: string, withSnapshots: boolean, withPending: boolean): boolean {
  if (usedVolumes(config).includes(volid)) return true;
  if (withSnapshots && Object.values(g.snapshots).some((s) => usedVolumes(s).includes(volid))) return true;
  if (withPending && usedVolumes(g.pending).includes(volid)) return true;
  return false;
}

/** Whether a snapshot of the guest uses a volume (`is_volume_in_use_by_snapshots`). */
export function usedBySnapshot(g: GuestState, volid: string): boolean {
  return Object.values(g.snapshots).some((s) => usedVolumes(s).includes(volid));
}

/** Adds a volume as the lowest free `unused[n]`, unless it is there already (`add_unused_volume`). */
export function addUnused(config: Record<string, ConfigValue>, volid: string): string | undefined {
  let key: string | undefined;
  for (let i = MAX_UNUSED - 1; i >= 0; i--) {
    const v = config[`unused${i}`];
    if (v === volid) return undefined;
    if (v === undefined) key = `unused${i}`;
  }
  if (key === undefined) throw new Error("Too many unused volumes - please delete them first.");
  config[key] = volid;
  return key;
}

/** Drops `unused[n]` entries whose volume a mount point uses again, as writing the config file does. */
export function dropUsedUnused(config: Record<string, ConfigValue>): void {
  const used = new Set(usedVolumes(config));
  for (const key of Object.keys(config)) if (/^unused\d+$/.test(key) && used.has(String(config[key]))) delete config[key];
}

/** Frees a volume a container lets go of, if it owns it (`delete_mountpoint_volume`); a volume of another owner is only warned about. */
export async function deleteMountVolume(state: SandboxState, node: string, vmid: number, volid: string, ctx?: TaskContext): Promise<void> {
  if (mountType(volid) !== "volume") return;
  const vol = state.cluster.volume(node, volid);
  if (vol === undefined) return;
  if (vol.vmid !== vmid) {
    ctx?.log(`ignore deletion of '${volid}', CT ${vmid} isn't the owner!`);
    return;
  }
  await freeVolume(state, vol);
}

/** The volumes a container's config names (current and pending; mount points and unused disks), once each, in order. */
export function namedVolumes(g: GuestState): string[] {
  const named = [g.config, g.pending].flatMap((c) => [...usedVolumes(c), ...Object.keys(c).filter((k) => /^unused\d+$/.test(k)).map((k) => String(c[k]))]);
  return [...new Set(named)];
}

/**
 * Frees what a destroyed container owns, as `destroy_lxc_container` does:
 * each volume its config (current and pending) names, `unused[n]` included;
 * with `unreferenced`, every other volume of its id on the node's storages
 * too. Volumes of the id that the config does not name survive otherwise.
 */
export async function destroyVolumes(state: SandboxState, g: GuestState, ctx: TaskContext, unreferenced: boolean): Promise<void> {
  for (const volid of namedVolumes(g)) {
    const vol = state.cluster.volume(g.node, volid);
    if (vol && vol.vmid === g.vmid) ctx.log(`  Logical volume "${volid.replace(/^[^:]+:/, "")}" successfully removed.`);
    await deleteMountVolume(state, g.node, g.vmid, volid, ctx);
  }
  if (unreferenced) {
    for (const vol of state.cluster.volumes(g.node).filter((v) => v.vmid === g.vmid)) {
      ctx.log(`  Logical volume "${vol.volid.replace(/^[^:]+:/, "")}" successfully removed.`);
      await freeVolume(state, vol);
    }
  }
}

/** Where the backend finds a volume named in a config; undefined for one that is not in the model. */
export function refOf(state: SandboxState, node: string, volid: string): VolumeRef | undefined {
  const vol = state.cluster.volume(node, volid);
  return vol ? volumeRef(vol) : undefined;
}

/** A config's root volume, for the backend. */
export function rootfsRef(state: SandboxState, node: string, config: Record<string, ConfigValue>): VolumeRef {
  const volid = volumeOf("rootfs", String(config["rootfs"]));
  const ref = refOf(state, node, volid);
  if (!ref) throw new Error(`volume '${volid}' does not exist`);
  return ref;
}

/** One `mp[n]` as the backend mounts it. */
export function guestMount(state: SandboxState, node: string, key: string, text: string): GuestMount {
  const values = propertyOf(key, text);
  const volume = String(values["volume"]);
  const base = { key, path: String(values["mp"]), readOnly: values["ro"] === true };
  if (mountType(volume) !== "volume") return { ...base, hostPath: volume };
  const ref = refOf(state, node, volume);
  if (!ref) throw new Error(`volume '${volume}' does not exist`);
  return { ...base, volume: ref };
}

/** A config's mount points (not the root) as the backend mounts them. */
export function guestMounts(state: SandboxState, node: string, config: Record<string, ConfigValue>): GuestMount[] {
  return mountKeys(config)
    .filter((k) => k !== "rootfs")
    .map((k) => guestMount(state, node, k, String(config[k])));
}

/** Size in GiB as a create wants it (`STORAGE:SIZE_GB`). */
export function sizeGb(bytes: number): string {
  return String(bytes / GiB);
}
