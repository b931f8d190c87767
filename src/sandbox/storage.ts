/**
 * The storages the sandbox models and what pve-storage lets their volumes
 * do: how a container volume is named on each storage type (`lvmthin`:
 * `vm-101-disk-0`; `dir`: `101/vm-101-disk-0.raw`), which features a volume
 * has (`snapshot`, `rename`, `copy`, `clone`), how backup archives are named
 * and read back (`vzdump-lxc-101-2025_01_31-12_00_00.tar.zst`), and which
 * backups a retention policy keeps. Pure: no I/O.
 */

/** A storage as configured on every node. */
export interface StorageDef {
  storage: string;
  /** The plugin type; it decides volume names and features. */
  type: "dir" | "lvmthin";
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

/** Features pve-storage's `volume_has_feature` knows. */
export type VolumeFeature = "snapshot" | "rename" | "copy" | "clone" | "template";

/** A container volume's name on its storage, parsed. */
export interface VolumeName {
  /** The owner, from the name (`vm-<vmid>-...`). */
  vmid: number;
  /** `raw` (LVM-thin, dir images) or `subvol` (dir, size 0). */
  format: "raw" | "subvol";
}

/** The name of a new container volume: `vm-101-disk-0` (lvmthin), `101/vm-101-disk-0.raw` or, of size 0, `101/subvol-101-disk-0.subvol` (dir). */
export function volumeName(def: StorageDef, vmid: number, n: number, sizeBytes: number): string {
  if (def.type === "lvmthin") return `vm-${vmid}-disk-${n}`;
  return sizeBytes > 0 ? `${vmid}/vm-${vmid}-disk-${n}.raw` : `${vmid}/subvol-${vmid}-disk-${n}.subvol`;
}

/** Parses a container volume name of a storage; undefined when it is not one. */
export function parseVolumeName(def: StorageDef, name: string): VolumeName | undefined {
  if (def.type === "lvmthin") {
    const m = /^(?:vm|base)-(\d+)-disk-\d+$/.exec(name);
    return m ? { vmid: Number(m[1]), format: "raw" } : undefined;
  }
  const m = /^(\d+)\/(?:vm|base|subvol|basevol)-(\d+)-disk-\d+\.(raw|subvol)$/.exec(name);
  if (!m || m[1] !== m[2]) return undefined;
  return { vmid: Number(m[1]), format: m[3] === "raw" ? "raw" : "subvol" };
}

/** The disk number in a volume name (`vm-101-disk-3` is 3). */
export function diskNumber(name: string): number | undefined {
  const m = /-disk-(\d+)(?:\.raw|\.subvol)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Whether a volume has a feature, as pve-storage answers for the current
 * state of a volume (`snapshot` undefined) or one of its snapshots:
 * LVM-thin snapshots, renames and copies; a `dir` storage renames and copies
 * raw images but snapshots only qcow2, which containers never use.
 */
export function volumeHasFeature(def: StorageDef, format: VolumeName["format"], feature: VolumeFeature, snapshot?: string): boolean {
  const state = snapshot !== undefined ? "snap" : "current";
  if (def.type === "lvmthin") {
    const table: Record<VolumeFeature, string[]> = {
      snapshot: ["current"],
      clone: ["snap"],
      template: ["current"],
      copy: ["current", "snap"],
      rename: ["current"],
    };
    return table[feature].includes(state);
  }
  if (state === "snap") return false;
  const table: Record<VolumeFeature, string[]> = {
    snapshot: [],
    clone: [],
    template: ["raw", "subvol"],
    copy: ["raw"],
    rename: ["raw"],
  };
  return table[feature].includes(format);
}

/** Where Proxmox keeps a volume on the node (`/dev/pve/vm-101-disk-0`, `/mnt/x/images/101/vm-101-disk-0.raw`). */
export function volumePath(def: StorageDef, name: string): string {
  if (def.type === "lvmthin") return `/dev/pve/${name}`;
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
