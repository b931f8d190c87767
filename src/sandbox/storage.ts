/**
 * The storages the sandbox models and what pve-storage lets their volumes
 * do: how a container volume is named on each storage type (`lvmthin`:
 * `vm-101-disk-0`; `dir`: `101/vm-101-disk-0.raw`; `zfspool`:
 * `subvol-101-disk-0`), what a template's base volume and a linked clone
 * are called there (`create_base`, `clone_image`), which features a volume
 * has in which state (`snapshot`, `rename`, `copy`, `clone`, `template`
 * for a volume as it is, one of its snapshots, or a base volume), whether a
 * base volume is still used by linked clones, how backup archives are named
 * and read back (`vzdump-lxc-101-2025_01_31-12_00_00.tar.zst`), and which
 * backups a retention policy keeps. Pure: no I/O.
 */

/** A storage as configured on every node. */
export interface StorageDef {
  storage: string;
  /** The plugin type; it decides volume names and features. */
  type: "dir" | "lvmthin" | "zfspool";
  content: string[];
  /** Where a `dir` storage keeps its files (`dump/` holds backups). */
  path?: string;
}

/** Proxmox's default storages: `local` (dir; backups, ISOs, templates) and `local-lvm` (LVM-thin; guest volumes). */
export const DEFAULT_STORAGES: readonly StorageDef[] = [
  { storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" },
  { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] },
];

/**
 * A directory storage that holds container volumes but, like every `dir`
 * storage with raw images, cannot snapshot them: add it to a sandbox's
 * `storages` to see Proxmox refuse snapshots there.
 */
export const DIR_VOLUME_STORAGE: StorageDef = { storage: "local-dir", type: "dir", content: ["backup", "images", "rootdir"], path: "/mnt/local-dir" };

/**
 * The ZFS pool a Proxmox VE installed on ZFS has (`local-zfs`, pool
 * `rpool/data`): container volumes are subvolumes (`subvol-101-disk-0`), a
 * template's are `basevol-...`, and a linked clone's name says its base
 * (`basevol-100-disk-0/subvol-101-disk-0`), so Proxmox refuses to free a
 * base volume its clones still use.
 */
export const ZFS_VOLUME_STORAGE: StorageDef = { storage: "local-zfs", type: "zfspool", content: ["images", "rootdir"] };

/** Features pve-storage's `volume_has_feature` knows. */
export type VolumeFeature = "snapshot" | "rename" | "copy" | "clone" | "template";

/** A container volume's name on its storage, parsed (`parse_volname`). */
export interface VolumeName {
  /** The owner, from the name (`vm-<vmid>-...`; a linked clone's own part). */
  vmid: number;
  /** `raw` (LVM-thin, dir images) or `subvol` (dir of size 0, ZFS). */
  format: "raw" | "subvol";
  /** The volume's own name: the last part (`subvol-101-disk-0` of `basevol-100-disk-0/subvol-101-disk-0`). */
  name: string;
  /** A base volume (`base-...`, `basevol-...`): a template's, which linked clones start from. */
  isBase: boolean;
  /** For a linked clone whose name says so (ZFS, dir): its base volume's name and owner. */
  basename?: string;
  basevmid?: number;
}

/** The name of a new container volume: `vm-101-disk-0` (lvmthin), `subvol-101-disk-0` (zfspool), `101/vm-101-disk-0.raw` or, of size 0, `101/subvol-101-disk-0.subvol` (dir). */
export function volumeName(def: StorageDef, vmid: number, n: number, sizeBytes: number): string {
  if (def.type === "lvmthin") return `vm-${vmid}-disk-${n}`;
  // pve-container's alloc_disk always makes subvolumes on a ZFS pool.
  if (def.type === "zfspool") return `subvol-${vmid}-disk-${n}`;
  return sizeBytes > 0 ? `${vmid}/vm-${vmid}-disk-${n}.raw` : `${vmid}/subvol-${vmid}-disk-${n}.subvol`;
}

/** Parses a container volume name of a storage as its plugin does; undefined when it is not one. */
export function parseVolumeName(def: StorageDef, name: string): VolumeName | undefined {
  if (def.type === "lvmthin") {
    // LVM-thin does not record a linked clone's base in its name.
    const m = /^((vm|base)-(\d+)-disk-\d+)$/.exec(name);
    return m ? { vmid: Number(m[3]), format: "raw", name: m[1] ?? name, isBase: m[2] === "base" } : undefined;
  }
  if (def.type === "zfspool") {
    const m = /^(((base|basevol)-(\d+)-disk-\d+)\/)?((base|basevol|vm|subvol)-(\d+)-disk-\d+)$/.exec(name);
    if (!m) return undefined;
    const kind = m[6] ?? "";
    const out: VolumeName = { vmid: Number(m[7]), format: kind === "subvol" || kind === "basevol" ? "subvol" : "raw", name: m[5] ?? name, isBase: kind === "base" || kind === "basevol" };
    if (m[2] !== undefined) {
      out.basename = m[2];
      out.basevmid = Number(m[4]);
    }
    return out;
  }
  const m = /^(\d+)\/((vm|base|subvol|basevol)-(\d+)-disk-\d+\.(raw|subvol))$/.exec(name);
  if (!m || m[1] !== m[4]) return undefined;
  return { vmid: Number(m[1]), format: m[5] === "raw" ? "raw" : "subvol", name: m[2] ?? name, isBase: m[3] === "base" };
}

/** The disk number in a volume name (`vm-101-disk-3` is 3). */
export function diskNumber(name: string): number | undefined {
  const m = /-disk-(\d+)(?:\.raw|\.subvol)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The state of a volume `volume_has_feature` looks up: a snapshot of it, a base volume, or one as it is. */
function featureState(parsed: VolumeName, snapshot: string | undefined): "snap" | "base" | "current" {
  if (snapshot !== undefined) return "snap";
  return parsed.isBase ? "base" : "current";
}

/**
 * Whether a container volume has a feature, as pve-storage answers for a
 * volume as it is (`snapshot` undefined), one of its snapshots, or a base
 * volume: LVM-thin snapshots, renames and copies, and clones bases and
 * snapshots; ZFS the same but clones bases only; a `dir` storage renames
 * and copies raw images but snapshots only qcow2, and would clone into
 * qcow2, which containers cannot use (`valid_target_formats`).
 */
export function volumeHasFeature(def: StorageDef, parsed: VolumeName, feature: VolumeFeature, snapshot?: string): boolean {
  const state = featureState(parsed, snapshot);
  if (def.type === "lvmthin" || def.type === "zfspool") {
    const table: Record<VolumeFeature, string[]> =
      def.type === "lvmthin"
        ? { snapshot: ["current"], clone: ["base", "snap"], template: ["current"], copy: ["base", "current", "snap"], rename: ["current"] }
        : { snapshot: ["current", "snap"], clone: ["base"], template: ["current"], copy: ["base", "current"], rename: ["current"] };
    return table[feature].includes(state);
  }
  const table: Record<VolumeFeature, Record<string, string[]>> = {
    snapshot: {},
    clone: {},
    template: { current: ["raw", "subvol"] },
    copy: { base: ["raw"], current: ["raw"] },
    rename: { current: ["raw"] },
  };
  return (table[feature][state] ?? []).includes(parsed.format);
}

/**
 * The name a volume gets when its container becomes a template
 * (`create_base`): `vm-` becomes `base-`, a ZFS subvolume's `subvol-`
 * becomes `basevol-` (a clone keeps its base's part); a `dir` subvolume
 * keeps its name, as pve-storage's rename does. Throws Proxmox's error for a
 * base volume.
 */
export function baseVolumeName(def: StorageDef, name: string): string {
  const parsed = parseVolumeName(def, name);
  if (!parsed) throw new Error(`unable to parse volume name '${name}'`);
  if (parsed.isBase) throw new Error("create_base not possible with base image");
  const own = def.type === "zfspool" && parsed.format === "subvol" ? parsed.name.replace(/^subvol-/, "basevol-") : parsed.name.replace(/^vm-/, "base-");
  if (def.type === "dir") return `${parsed.vmid}/${own}`;
  return parsed.basename !== undefined ? `${parsed.basename}/${own}` : own;
}

/**
 * The name of a linked clone of base volume `base` for `vmid`, disk number
 * `n` (`clone_image`): on LVM-thin a plain `vm-102-disk-0`, on ZFS
 * `<base>/subvol-102-disk-0`. Throws Proxmox's error when `base` is not a
 * base volume and no snapshot is cloned.
 */
export function linkedCloneName(def: StorageDef, base: string, vmid: number, n: number, snapshot?: string): string {
  const parsed = parseVolumeName(def, base);
  if (!parsed) throw new Error(`unable to parse volume name '${base}'`);
  if (def.type === "dir") throw new Error("this storage type does not support clone_image on subvolumes");
  if (snapshot === undefined && !parsed.isBase) throw new Error("clone_image only works on base images");
  if (def.type === "lvmthin") return `vm-${vmid}-disk-${n}`;
  if (snapshot !== undefined) throw new Error("clone_image only works on base images");
  return `${parsed.name}/${parsed.format === "subvol" ? "subvol" : "vm"}-${vmid}-disk-${n}`;
}

/**
 * Whether a base volume is still used by linked clones among `names` (the
 * storage's volumes), as `volume_is_base_and_used` finds out from names: it
 * cannot on LVM-thin, whose clones do not name their base (and LVM-thin
 * frees such a base without harming its clones).
 */
export function baseInUse(def: StorageDef, name: string, names: readonly string[]): boolean {
  const parsed = parseVolumeName(def, name);
  if (!parsed?.isBase || def.type === "lvmthin") return false;
  return names.some((n) => {
    const other = parseVolumeName(def, n);
    return other?.basename === parsed.name && other.basevmid === parsed.vmid;
  });
}

/** Where Proxmox keeps a volume on the node (`/dev/pve/vm-101-disk-0`, `/rpool/data/subvol-101-disk-0`, `/mnt/x/images/101/vm-101-disk-0.raw`). */
export function volumePath(def: StorageDef, name: string): string {
  if (def.type === "lvmthin") return `/dev/pve/${name}`;
  if (def.type === "zfspool") {
    const parsed = parseVolumeName(def, name);
    const own = parsed?.name ?? name;
    return parsed?.format === "raw" ? `/dev/zvol/rpool/data/${own}` : `/rpool/data/${own}`;
  }
  return `${def.path ?? `/mnt/pve/${def.storage}`}/images/${name}`;
}

// ---------------------------------------------------------------- backups

/** Compressors vzdump knows (`compress`), with the extension each gives. */
const COMPRESS_EXT: Record<string, string | undefined> = { "0": undefined, "1": "lzo", lzo: "lzo", gzip: "gz", zstd: "zst" };

/** The archive format (`tar`, `tar.zst`, ...) for a `compress` value. */
export function backupFormat(compress: string): string {
  const ext = COMPRESS_EXT[compress];
  return ext === undefined ? "tar" : `tar.${ext}`;
}

/** vzdump's archive name: `vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.<format>`, in the node's local time. */
export function backupFileName(vmid: number, time: Date, format: string): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  const stamp = `${p(time.getFullYear(), 4)}_${p(time.getMonth() + 1)}_${p(time.getDate())}-${p(time.getHours())}_${p(time.getMinutes())}_${p(time.getSeconds())}`;
  return `vzdump-lxc-${vmid}-${stamp}.${format}`;
}

/** What pve-storage's `archive_info` reads from a backup's file name. */
export interface ArchiveInfo {
  /** `lxc`, `qemu` or `openvz`. */
  type: string;
  /** `tar.zst`, `tar`, `vma.zst`, `tgz`... */
  format: string;
  /** Present for standard names only. */
  vmid?: number;
  /** Seconds since the epoch, from the name (local time); standard names only. */
  ctime?: number;
}

const ARCHIVE = /^vzdump-(lxc|openvz|qemu)-.+\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$/;
const STD_ARCHIVE = /^vzdump-(?:lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\./;

/** Reads a backup file name as pve-storage does; undefined when it is not a vzdump archive. */
export function archiveInfo(fileName: string): ArchiveInfo | undefined {
  const m = ARCHIVE.exec(fileName);
  if (!m) return undefined;
  const info: ArchiveInfo = { type: m[1] ?? "", format: m[2] ?? "" };
  const s = STD_ARCHIVE.exec(fileName);
  if (s) {
    info.vmid = Number(s[1]);
    info.ctime = Math.floor(new Date(Number(s[2]), Number(s[3]) - 1, Number(s[4]), Number(s[5]), Number(s[6]), Number(s[7])).getTime() / 1000);
  }
  return info;
}

// ---------------------------------------------------------------- retention

/** A `prune-backups` policy: `keep-all`, or how many to keep per period. */
export type PrunePolicy = Partial<Record<"keep-all" | "keep-last" | "keep-hourly" | "keep-daily" | "keep-weekly" | "keep-monthly" | "keep-yearly", number>>;

/** A policy that keeps nothing back is `keep-all=1`; `keep-all` with another option is an error (pve-storage's rule). */
export function normalizePrunePolicy(p: PrunePolicy): PrunePolicy | string {
  const { "keep-all": keepAll, ...rest } = p;
  if (!Object.values(rest).some((v) => (v ?? 0) > 0)) return { "keep-all": 1 };
  if (keepAll) return "keep-all cannot be set together with other options.";
  return rest;
}

/** ISO 8601 week and its year of a local date. */
function isoWeek(d: Date): string {
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (t.getDay() + 6) % 7;
  t.setDate(t.getDate() - day + 3);
  const firstThursday = new Date(t.getFullYear(), 0, 4);
  const week = 1 + Math.round(((t.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
  return `${week}/${t.getFullYear()}`;
}

/** One backup of a group as the retention sees it. */
export interface PruneEntry {
  volid: string;
  ctime: number;
  protected: boolean;
}

/**
 * Marks which backups of one guest a policy keeps, as pve-storage's
 * `prune_mark_backup_group`: newest first, each option keeps one backup per
 * period for as many periods as it says, periods already kept by a shorter
 * option do not count again; protected backups are kept and count for no
 * option. Returns the volids to remove.
 */
export function pruneMarks(entries: readonly PruneEntry[], policy: PrunePolicy): string[] {
  if (policy["keep-all"] || !Object.entries(policy).some(([k, v]) => k !== "keep-all" && (v ?? 0) > 0)) return [];
  const list = [...entries].sort((a, b) => b.ctime - a.ctime);
  const mark = new Map<string, "keep" | "remove" | "protected">();
  for (const e of list) if (e.protected) mark.set(e.volid, "protected");
  const local = (e: PruneEntry): Date => new Date(e.ctime * 1000);
  const periods: Array<[keyof PrunePolicy, (e: PruneEntry) => string]> = [
    ["keep-last", (e) => String(e.ctime)],
    ["keep-hourly", (e) => { const d = local(e); return `${d.getHours()}/${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`; }],
    ["keep-daily", (e) => { const d = local(e); return `${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`; }],
    ["keep-weekly", (e) => isoWeek(local(e))],
    ["keep-monthly", (e) => { const d = local(e); return `${d.getMonth()}/${d.getFullYear()}`; }],
    ["keep-yearly", (e) => String(local(e).getFullYear())],
  ];
  for (const [option, id] of periods) {
    const count = policy[option] ?? 0;
    if (count <= 0) continue;
    const already = new Set(list.filter((e) => mark.get(e.volid) === "keep").map(id));
    const fresh = new Set<string>();
    for (const e of list) {
      if (mark.has(e.volid) || already.has(id(e))) continue;
      if (!fresh.has(id(e))) {
        if (fresh.size >= count) break;
        fresh.add(id(e));
        mark.set(e.volid, "keep");
      } else {
        mark.set(e.volid, "remove");
      }
    }
  }
  return list.filter((e) => (mark.get(e.volid) ?? "remove") === "remove").map((e) => e.volid);
}
