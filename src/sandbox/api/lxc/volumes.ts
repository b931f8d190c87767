/**
 * A container's volumes: the root volume and its mount points, which
 * storage may hold them, allocating them on create and update, and the
 * unused disk a removed mount point leaves behind, as pve-container keeps
 * them.
 */
import { STORAGES } from "../../cluster.ts";
import type { ConfigValue, GuestState } from "../../cluster.ts";
import { failure, paramError } from "../../errors.ts";
import { formatDiskSize, parseDiskSize, parseNewVolume } from "../../formats.ts";
import type { Scalar } from "../../params.ts";
import type { TaskContext } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { propertyOf, render } from "./schema.ts";

const GiB = 1024 ** 3;

/** Whether a config key holds a volume: `rootfs` or `mp[n]`. */
export function isMountKey(key: string): boolean {
  return key === "rootfs" || /^mp\d+$/.test(key);
}

/** Proxmox's mount point types: a storage volume, a bind-mounted host path, or a device. */
export function mountType(volume: string): "volume" | "bind" | "device" {
  if (volume.startsWith("/dev/")) return "device";
  return volume.startsWith("/") ? "bind" : "volume";
}

/** The `volume` of a `rootfs` or `mp[n]` value. */
export function volumeOf(key: string, text: string): string {
  return String(propertyOf(key, text)["volume"]);
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

function checkRootdirStorage(sid: string): void {
  const storage = STORAGES.find((s) => s.storage === sid);
  if (!storage) throw failure(`storage '${sid}' does not exist`);
  if (!storage.content.includes("rootdir")) throw paramError({ storage: `storage '${sid}' does not support container directories` });
}

/** Checks a create's volumes as pve-container does before forking: a root volume with them, storages that hold container volumes. */
export function checkCreateVolumes(mounts: Record<string, string>, storage: string): void {
  if (Object.keys(mounts).length > 0 && mounts["rootfs"] === undefined) throw failure("mount points configured, but 'rootfs' not set - aborting");
  for (const [key, text] of Object.entries(mounts)) {
    const volume = volumeOf(key, text);
    if (mountType(volume) === "volume") checkRootdirStorage(volume.slice(0, volume.indexOf(":")));
  }
  if (mounts["rootfs"] === undefined) checkRootdirStorage(storage);
}

/** Checks a changed `rootfs` or `mp[n]`: not while protected, a storage for container volumes, the same root volume. */
export function checkMountChange(g: GuestState, key: string, text: string): void {
  if (g.config["protection"] === 1) throw failure(`can't update CT ${g.vmid} drive '${key}' - protection mode enabled`);
  const volume = volumeOf(key, text);
  if (mountType(volume) === "volume") {
    const sid = volume.slice(0, volume.indexOf(":"));
    const def = STORAGES.find((s) => s.storage === sid);
    if (!def) throw failure(`storage '${sid}' does not exist`);
    if (!def.content.includes("rootdir")) throw failure(`storage '${sid}' does not allow content type 'rootdir' (Container)`);
  }
  if (key === "rootfs") {
    const now = volumeOf("rootfs", String(g.config["rootfs"]));
    if (volume !== now) throw failure("sandbox: replacing the root volume is not supported; change its options only");
  }
}

/** Allocates a mount volume given as `STORAGE:SIZE_GB`; existing volumes and host paths are kept as given. */
export function allocateMount(state: SandboxState, node: string, vmid: number, name: string, text: string): string {
  const values = propertyOf(name, text);
  const volume = String(values["volume"]);
  if (mountType(volume) !== "volume") return render(values, ["volume"]);
  const fresh = parseNewVolume(volume);
  if (!fresh) {
    const existing = state.cluster.volumes.get(volume);
    if (!existing || existing.vmid !== vmid) throw failure(`volume '${volume}' does not exist`);
    values["size"] ??= formatDiskSize(existing.size);
    return render(values, ["volume"]);
  }
  const vol = state.cluster.allocateVolume(node, fresh.storage, vmid, Math.round(fresh.sizeGb * GiB));
  values["volume"] = vol.volid;
  values["size"] = formatDiskSize(vol.size);
  return render(values, ["volume"]);
}

/** Allocates a new container's volumes in order, logging each as Proxmox's LVM does; their stored values by key. */
export function allocateVolumes(state: SandboxState, node: string, vmid: number, wanted: Record<string, string>, ctx: TaskContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, text] of Object.entries(wanted)) {
    out[key] = allocateMount(state, node, vmid, key, text);
    const vol = volumeOf(key, out[key]);
    if (mountType(vol) === "volume") ctx.log(`  Logical volume "${vol.replace(/^[^:]+:/, "")}" created.`);
  }
  return out;
}

/** Proxmox keeps a removed mount point's volume as the next free `unused[n]` of `config`. */
export function keepAsUnused(state: SandboxState, config: Record<string, ConfigValue>, key: string, old: ConfigValue): void {
  const volume = volumeOf(key, String(old));
  if (!state.cluster.volumes.has(volume)) return;
  let i = 0;
  while (config[`unused${i}`] !== undefined) i++;
  config[`unused${i}`] = volume;
}

/** Frees the volume an `unused[n]` names, as deleting that option does. */
export function freeUnused(state: SandboxState, old: ConfigValue): void {
  state.cluster.volumes.delete(String(old));
}

/** Frees every volume of a destroyed container, logging each. */
export function removeVolumes(state: SandboxState, vmid: number, ctx: TaskContext): void {
  for (const v of state.cluster.volumes.values()) {
    if (v.vmid === vmid) ctx.log(`  Logical volume "${v.volid.replace(/^[^:]+:/, "")}" successfully removed.`);
  }
  state.cluster.freeVolumes(vmid);
}
