/**
 * Between a container's volumes and bind mounts as service.yaml declares them
 * and its mount points (`mpN`) as Proxmox keeps them: which mount point holds
 * which volume, and what a config change must do to bring a live container to
 * the declaration (add, grow, change, detach). Volumes are matched by name
 * through the keys recorded in the state, else by mount path; mount points
 * homelab did not make are left alone. Pure.
 */
import type { LxcMountInfo, LxcMountPoint } from "../proxmox/lxc-format.ts";
import type { ContainerBindMount, ContainerVolume } from "../plan/types.ts";

/** Proxmox allows mp0 .. mp255. */
const MAX_MOUNTS = 256;

/** GiB of a Proxmox size (`8G`, `512M`, `1T`, bytes without unit); undefined when unreadable. Pure. */
export function sizeInGb(size: string | undefined): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(size ?? "");
  if (!m) return undefined;
  const n = Number(m[1]);
  switch ((m[2] ?? "").toUpperCase()) {
    case "T":
      return n * 1024;
    case "G":
      return n;
    case "M":
      return n / 1024;
    case "K":
      return n / 1024 / 1024;
    default:
      return n / 1024 ** 3;
  }
}

/** The mount point a volume is made as, for a new container or a new volume. Pure. */
export function newVolumeMount(v: ContainerVolume): LxcMountPoint {
  return { kind: "new", storage: v.storage, sizeGb: v.sizeGb, mp: v.path, backup: v.backup };
}

/** The mount point of a bind mount. Pure. */
export function bindMount(b: ContainerBindMount): LxcMountPoint {
  return { kind: "bind", host: b.host, mp: b.path, readOnly: b.readOnly };
}

/** The first `count` free mount point indexes of a config, lowest first. Pure. */
export function freeMountIndexes(taken: Iterable<number>, count: number): number[] {
  const used = new Set(taken);
  const out: number[] = [];
  for (let i = 0; i < MAX_MOUNTS && out.length < count; i++) if (!used.has(i)) out.push(i);
  if (out.length < count) throw new Error(`no free mount point left (Proxmox allows ${MAX_MOUNTS})`);
  return out;
}

/** What a config change does to a container's mount points. */
export interface MountChanges {
  /** Volumes made afresh (empty), by name and mount point index. */
  add: { name: string; index: number; mount: LxcMountPoint }[];
  /** Volumes that grow. */
  grow: { name: string; index: number; fromGb: number; toGb: number }[];
  /** Volumes asked to shrink, which Proxmox cannot do. */
  shrink: { name: string; fromGb: number; toGb: number }[];
  /** Volumes asked to move to another storage (not done by homelab: refused). */
  storageMove: { name: string; from: string; to: string }[];
  /** Volumes whose mount path or backup flag changes (applied at the next start). */
  modify: { name: string; index: number; mount: LxcMountPoint }[];
  /** Volumes no longer declared: detached, Proxmox keeps them as unused disks of the container. */
  detach: { index: number; volume: string; path: string }[];
  /** Bind mounts to add (hot-plugged), change or remove (both at the next start). */
  bindAdd: { index: number; mount: LxcMountPoint }[];
  bindModify: { index: number; mount: LxcMountPoint }[];
  bindRemove: number[];
  /** Which mount point holds each declared volume afterwards. */
  keys: Record<string, string>;
  /** Something applies only at the next start. */
  restart: boolean;
}

/** Whether nothing changes. Pure. */
export function noMountChange(c: MountChanges): boolean {
  return c.add.length + c.grow.length + c.modify.length + c.detach.length + c.bindAdd.length + c.bindModify.length + c.bindRemove.length === 0;
}

/** The index of `mpN`; undefined for other keys. */
export function mountIndex(key: string | undefined): number | undefined {
  const m = /^mp(\d+)$/.exec(key ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * What brings `mounts` (a live container's mount points) to the declared volumes and bind
 * mounts. `known` is what the state recorded: the volumes' keys and the bind mounts homelab
 * made. Pure.
 */
export function mountChanges(
  mounts: Readonly<Record<number, LxcMountInfo>>,
  wanted: { volumes: readonly ContainerVolume[]; bindMounts: readonly ContainerBindMount[] },
  known: { volumeKeys: Readonly<Record<string, string>>; bindMounts: readonly ContainerBindMount[] },
): MountChanges {
  const out: MountChanges = { add: [], grow: [], shrink: [], storageMove: [], modify: [], detach: [], bindAdd: [], bindModify: [], bindRemove: [], keys: {}, restart: false };
  const claimed = new Set<number>();
  const volumeAt = (index: number | undefined): LxcMountInfo | undefined => (index !== undefined && mounts[index]?.type === "volume" ? mounts[index] : undefined);
  const pending: ContainerVolume[] = [];
  for (const v of wanted.volumes) {
    let index = mountIndex(known.volumeKeys[v.name]);
    if (volumeAt(index) === undefined || claimed.has(index ?? -1)) {
      index = Object.entries(mounts).map(([i, m]) => ({ i: Number(i), m })).find((x) => x.m.type === "volume" && x.m.mp === v.path && !claimed.has(x.i))?.i;
    }
    const found = volumeAt(index);
    if (index === undefined || found === undefined) {
      pending.push(v);
      continue;
    }
    claimed.add(index);
    out.keys[v.name] = `mp${index}`;
    const size = sizeInGb(found.size) ?? v.sizeGb;
    if (v.sizeGb > size) out.grow.push({ name: v.name, index, fromGb: size, toGb: v.sizeGb });
    else if (v.sizeGb < size) out.shrink.push({ name: v.name, fromGb: size, toGb: v.sizeGb });
    const storage = found.volume.slice(0, Math.max(0, found.volume.indexOf(":")));
    if (storage !== "" && storage !== v.storage) out.storageMove.push({ name: v.name, from: storage, to: v.storage });
    if (found.mp !== v.path || found.backup !== v.backup) {
      out.modify.push({ name: v.name, index, mount: { kind: "volume", volume: found.volume, mp: v.path, backup: v.backup, ...(found.size !== undefined ? { size: found.size } : {}), readOnly: found.readOnly } });
      out.restart = true;
    }
  }
  // Bind mounts are matched by their path inside.
  const binds = Object.entries(mounts).map(([i, m]) => ({ index: Number(i), m })).filter((x) => x.m.type === "bind");
  for (const b of wanted.bindMounts) {
    const found = binds.find((x) => x.m.mp === b.path && !claimed.has(x.index));
    if (!found) continue;
    claimed.add(found.index);
    if (found.m.volume !== b.host || found.m.readOnly !== b.readOnly) {
      out.bindModify.push({ index: found.index, mount: bindMount(b) });
      out.restart = true;
    }
  }
  // What homelab made before and is no longer declared; mount points made by hand stay.
  for (const [name, key] of Object.entries(known.volumeKeys)) {
    const index = mountIndex(key);
    const m = volumeAt(index);
    if (index === undefined || m === undefined || claimed.has(index) || wanted.volumes.some((v) => v.name === name)) continue;
    claimed.add(index);
    out.detach.push({ index, volume: m.volume, path: m.mp });
    out.restart = true;
  }
  for (const b of known.bindMounts) {
    const found = binds.find((x) => x.m.mp === b.path && !claimed.has(x.index));
    if (!found || wanted.bindMounts.some((w) => w.path === b.path)) continue;
    claimed.add(found.index);
    out.bindRemove.push(found.index);
    out.restart = true;
  }
  const taken = new Set([...Object.keys(mounts).map(Number), ...claimed]);
  const newBinds = wanted.bindMounts.filter((b) => !binds.some((x) => x.m.mp === b.path));
  const free = freeMountIndexes(taken, pending.length + newBinds.length);
  pending.forEach((v, i) => {
    const index = free[i] ?? 0;
    out.add.push({ name: v.name, index, mount: newVolumeMount(v) });
    out.keys[v.name] = `mp${index}`;
  });
  newBinds.forEach((b, i) => out.bindAdd.push({ index: free[pending.length + i] ?? 0, mount: bindMount(b) }));
  return out;
}

/** The volumes a container holds as data: its volume mount points and unused disks (bind mounts are the node's). Pure. */
export function dataVolumes(config: { mounts: Readonly<Record<number, LxcMountInfo>>; unused: Readonly<Record<number, string>> }): { key: string; volume: string; path: string | undefined }[] {
  const out: { key: string; volume: string; path: string | undefined }[] = [];
  for (const [i, m] of Object.entries(config.mounts)) if (m.type === "volume") out.push({ key: `mp${i}`, volume: m.volume, path: m.mp });
  for (const [i, v] of Object.entries(config.unused)) out.push({ key: `unused${i}`, volume: v, path: undefined });
  return out.sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
}
