/**
 * The sandbox's cluster model: nodes with different sizes, their storages
 * (`local` for templates and backups, `local-lvm` for container volumes),
 * the volumes and backups on them, guests as Proxmox config maps with their
 * pending changes and snapshots, id allocation and the two kinds of locks
 * Proxmox has (the `lock:` config entry and the config file lock with its
 * timeout). No HTTP here; the API layer calls it.
 */
import { failure } from "./errors.ts";
import type { GuestBackend, TemplateInfo, VolumeRef } from "./guest-backend.ts";
import { configDigest as digestOf } from "./pct-conf.ts";
import type { ConfigValue } from "./pct-conf.ts";
import { DEFAULT_STORAGES, baseInUse, diskNumber, linkedCloneName, parseVolumeName, volumeName } from "./storage.ts";
import type { StorageDef } from "./storage.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A node's fixed hardware. */
export interface NodeSpec {
  name: string;
  memory: number;
  cores: number;
  sockets: number;
  cpuModel: string;
  mhz: number;
  lvmSize: number;
  localSize: number;
}

const HARDWARE: Omit<NodeSpec, "name">[] = [
  { memory: 32 * GiB, cores: 8, sockets: 1, cpuModel: "Intel(R) Xeon(R) E-2278G CPU @ 3.40GHz", mhz: 3400, lvmSize: 400 * GiB, localSize: 100 * GiB },
  { memory: 16 * GiB, cores: 4, sockets: 1, cpuModel: "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz", mhz: 2100, lvmSize: 200 * GiB, localSize: 60 * GiB },
  { memory: 64 * GiB, cores: 16, sockets: 1, cpuModel: "AMD Ryzen 9 5950X 16-Core Processor", mhz: 3400, lvmSize: 800 * GiB, localSize: 100 * GiB },
  { memory: 8 * GiB, cores: 2, sockets: 1, cpuModel: "Intel(R) Celeron(R) J4125 CPU @ 2.00GHz", mhz: 2000, lvmSize: 100 * GiB, localSize: 40 * GiB },
];

/** The hardware of nodes `pve-01` .. `pve-NN`, each different from its neighbours. */
function nodeSpecs(count: number): NodeSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const hw = HARDWARE[i % HARDWARE.length] ?? HARDWARE[0];
    if (!hw) throw new Error("no hardware table");
    return { name: `pve-${String(i + 1).padStart(2, "0")}`, ...hw };
  });
}

export type { ConfigValue } from "./pct-conf.ts";

/** A node of the model. */
export interface NodeState {
  spec: NodeSpec;
  bootedAt: number;
  description: string | undefined;
  bridges: string[];
  /** Templates downloaded through `POST /nodes/{node}/aplinfo`. */
  downloaded: TemplateInfo[];
}

/** A container of the model. */
export interface GuestState {
  vmid: number;
  node: string;
  config: Record<string, ConfigValue>;
  /**
   * Changes to a running container that only apply at its next start, as
   * Proxmox keeps them in the config's `[pve:pending]` section.
   */
  pending: Record<string, ConfigValue>;
  pendingDelete: string[];
  /**
   * Snapshots by name: each a copy of the config when it was taken, plus
   * `snaptime`, `description` and, while being made or deleted, `snapstate`.
   */
  snapshots: Record<string, Record<string, ConfigValue>>;
  /** Whether the backend has made it (false while being created). */
  created: boolean;
  running: boolean;
}

/** A container volume on a node's storage. */
export interface Volume {
  volid: string;
  node: string;
  storage: string;
  /** The owner, as the name says (`vm-<vmid>-disk-N`). */
  vmid: number;
  /** Bytes. */
  size: number;
  format: "raw" | "subvol";
  /** Seconds since the epoch. */
  ctime: number;
  /** Names of the volume's storage snapshots. */
  snapshots: string[];
}

/** A vzdump archive on a node's backup storage. */
export interface Backup {
  /** `local:backup/vzdump-lxc-101-2025_01_31-12_00_00.tar.zst` */
  volid: string;
  node: string;
  storage: string;
  /** The file name after `backup/`. */
  file: string;
  vmid: number;
  /** `tar.zst`, `tar.gz`, `tar`... */
  format: string;
  size: number;
  ctime: number;
  notes: string | undefined;
  protected: boolean;
}

/** Proxmox's config file lock: one holder, waiters give up after a timeout. */
class FileLock {
  private held = false;
  private readonly waiters: { grant: () => void }[] = [];
  private readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** Waits up to `timeoutMs` for the lock; resolves to its release function. */
  acquire(timeoutMs: number): Promise<() => void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(failure(`can't lock file '${this.path}' - got timeout`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Whether someone holds the lock. */
  get busy(): boolean {
    return this.held;
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) next.grant();
      else this.held = false;
    };
  }
}

/** The whole modelled cluster. */
export class Cluster {
  readonly name = "sandbox";
  readonly nodes = new Map<string, NodeState>();
  readonly guests = new Map<number, GuestState>();
  /** Volumes by `node` and volid (`local-lvm` is per node, as on Proxmox). */
  private readonly volumeMap = new Map<string, Volume>();
  /** Backups by `node` and volid. */
  private readonly backupMap = new Map<string, Backup>();
  readonly storages: readonly StorageDef[];
  private readonly locks = new Map<number, FileLock>();
  readonly backend: GuestBackend;
  private readonly clock: () => number;

  constructor(options: { nodes: number; backend: GuestBackend; clock: () => number; storages?: readonly StorageDef[] }) {
    this.backend = options.backend;
    this.clock = options.clock;
    this.storages = options.storages ?? DEFAULT_STORAGES;
    // Nodes booted a few days before the sandbox started.
    const booted = options.clock() - 3 * 24 * 3600 * 1000;
    for (const spec of nodeSpecs(options.nodes)) {
      this.nodes.set(spec.name, { spec, bootedAt: booted, description: undefined, bridges: ["vmbr0"], downloaded: [] });
    }
  }

  /** A node, or Proxmox's error for a name that is not in the cluster. */
  node(name: string): NodeState {
    const node = this.nodes.get(name);
    if (!node) {
      throw failure(`hostname lookup '${name}' failed - failed to get address info for: ${name}: Name or service not known`);
    }
    return node;
  }

  /** A guest on a node, or Proxmox's missing-config error. */
  guest(node: string, vmid: number): GuestState {
    const g = this.guests.get(vmid);
    if (!g || g.node !== node) {
      throw failure(`Configuration file 'nodes/${node}/lxc/${vmid}.conf' does not exist`);
    }
    return g;
  }

  /** The config file lock of a vmid. */
  fileLock(vmid: number): FileLock {
    let lock = this.locks.get(vmid);
    if (!lock) {
      lock = new FileLock(`/run/lock/lxc/pve-config-${vmid}.lock`);
      this.locks.set(vmid, lock);
    }
    return lock;
  }

  /** The lowest free id from 100, as `GET /cluster/nextid` answers. */
  nextFreeId(): number {
    let id = 100;
    while (this.guests.has(id)) id++;
    return id;
  }

  /** Templates on a node's `local` storage. */
  async templates(node: string): Promise<TemplateInfo[]> {
    const base = await this.backend.listTemplates();
    const extra = this.node(node).downloaded.filter((d) => !base.some((b) => b.volid === d.volid));
    return [...base, ...extra];
  }

  /** A storage's definition, or Proxmox's error for one that is not configured. */
  storage(sid: string): StorageDef {
    const def = this.storages.find((s) => s.storage === sid);
    if (!def) throw failure(`storage '${sid}' does not exist`);
    return def;
  }

  /** A volume on a node, if it exists. */
  volume(node: string, volid: string): Volume | undefined {
    return this.volumeMap.get(`${node}\0${volid}`);
  }

  /** All volumes (of a node, when given). */
  volumes(node?: string): Volume[] {
    return [...this.volumeMap.values()].filter((v) => node === undefined || v.node === node);
  }

  /**
   * Records a new container volume under the lowest free disk number of its
   * owner on that storage, as pve-storage's `find_free_diskname` picks it
   * (`local-lvm:vm-101-disk-0`).
   */
  addVolume(node: string, sid: string, vmid: number, size: number): Volume {
    const def = this.storage(sid);
    return this.addNamedVolume(node, sid, vmid, volumeName(def, vmid, this.freeDiskNumber(node, sid, vmid), size), size);
  }

  /** The lowest free disk number of `vmid` on a node's storage (`find_free_diskname`). */
  freeDiskNumber(node: string, sid: string, vmid: number): number {
    const used = new Set(this.volumes(node).filter((v) => v.storage === sid && v.vmid === vmid).map((v) => diskNumber(v.volid)));
    let n = 0;
    while (used.has(n)) n++;
    return n;
  }

  /** Records a linked clone of `base` (a base volume, or a volume's snapshot `snapshot`) for `vmid`, as `clone_image` names it. */
  addLinkedClone(base: Volume, vmid: number, snapshot?: string): Volume {
    const name = linkedCloneName(this.storage(base.storage), volumeRef(base).name, vmid, this.freeDiskNumber(base.node, base.storage, vmid), snapshot);
    return this.addNamedVolume(base.node, base.storage, vmid, name, base.size);
  }

  /** Whether a volume is a base volume (a template's: `base-...`, `basevol-...`). */
  isBaseVolume(v: Volume): boolean {
    return parseVolumeName(this.storage(v.storage), volumeRef(v).name)?.isBase ?? false;
  }

  /** Whether a base volume is still used by linked clones whose names say so (`volume_is_base_and_used`; never on LVM-thin). */
  baseVolumeInUse(v: Volume): boolean {
    const def = this.storage(v.storage);
    const names = this.volumes(v.node).filter((x) => x.storage === v.storage && x !== v).map((x) => volumeRef(x).name);
    return baseInUse(def, volumeRef(v).name, names);
  }

  /** Records a volume under a given name on a storage (`POST .../content` names its volume). */
  addNamedVolume(node: string, sid: string, vmid: number, name: string, size: number): Volume {
    const def = this.storage(sid);
    const volume: Volume = { volid: `${sid}:${name}`, node, storage: sid, vmid, size, format: parseVolumeName(def, name)?.format ?? "raw", ctime: Math.floor(this.clock() / 1000), snapshots: [] };
    this.volumeMap.set(`${node}\0${volume.volid}`, volume);
    return volume;
  }

  /** The name a volume gets when it is reassigned to `targetVmid`: the owner's lowest free disk number on that storage. */
  renamedVolid(v: Volume, targetVmid: number): string {
    const def = this.storage(v.storage);
    return `${v.storage}:${volumeName(def, targetVmid, this.freeDiskNumber(v.node, v.storage, targetVmid), v.size)}`;
  }

  /** Records a volume under a new name and owner (a reassign), keeping its size. */
  renameVolume(v: Volume, volid: string, targetVmid: number): Volume {
    this.volumeMap.delete(`${v.node}\0${v.volid}`);
    const renamed: Volume = { ...v, volid, vmid: targetVmid, snapshots: [] };
    this.volumeMap.set(`${v.node}\0${renamed.volid}`, renamed);
    return renamed;
  }

  /** Forgets a volume. */
  removeVolume(v: Volume): void {
    this.volumeMap.delete(`${v.node}\0${v.volid}`);
  }

  /** A backup on a node, if it exists. */
  backup(node: string, volid: string): Backup | undefined {
    return this.backupMap.get(`${node}\0${volid}`);
  }

  /** All backups (of a node, when given). */
  backups(node?: string): Backup[] {
    return [...this.backupMap.values()].filter((b) => node === undefined || b.node === node);
  }

  /** Records a backup. */
  addBackup(b: Backup): void {
    this.backupMap.set(`${b.node}\0${b.volid}`, b);
  }

  /** Forgets a backup. */
  removeBackup(b: Backup): void {
    this.backupMap.delete(`${b.node}\0${b.volid}`);
  }

  /** Bytes used on a storage of a node. */
  async storageUsed(node: string, storage: string): Promise<number> {
    let used = 0;
    if (storage === "local") {
      const templates = await this.templates(node);
      used += 6 * GiB + templates.reduce((sum, t) => sum + t.size, 0);
    }
    for (const v of this.volumes(node)) if (v.storage === storage) used += v.size;
    for (const b of this.backups(node)) if (b.storage === storage) used += b.size;
    return used;
  }

  /** A storage's total size on a node. */
  storageTotal(node: string, storage: string): number {
    const spec = this.node(node).spec;
    return this.storage(storage).type === "dir" ? spec.localSize : spec.lvmSize;
  }

  /** Memory and CPU use of a node from its running guests (over-commit allowed). */
  async nodeUsage(node: string): Promise<{ mem: number; cpu: number; guests: number }> {
    const spec = this.node(node).spec;
    let mem = 1200 * MiB;
    let cpu = 0.004;
    let guests = 0;
    for (const g of this.guests.values()) {
      if (g.node !== node || !g.created) continue;
      const st = await this.backend.status(g.vmid);
      if (!st.running) continue;
      guests++;
      mem += st.mem;
      cpu += (0.01 * guestCores(g, spec.cores)) / spec.cores;
    }
    return { mem: Math.min(mem, spec.memory), cpu: Math.min(1, cpu), guests };
  }

  /** Seconds since the node booted. */
  uptime(node: string): number {
    return Math.floor((this.clock() - this.node(node).bootedAt) / 1000);
  }
}

/** The cores a guest may use: its `cores`, else all of the node's. */
export function guestCores(g: GuestState, nodeCores: number): number {
  const cores = g.config["cores"];
  return typeof cores === "number" ? cores : nodeCores;
}

/** The digest of a guest's config file (its options, pending changes and snapshots), as `GET .../config` reports it. */
export function guestDigest(g: GuestState): string {
  return digestOf(g.config, { pending: g.pending, pendingDelete: g.pendingDelete, snapshots: g.snapshots });
}

/** Where a volume is, for the backend. */
export function volumeRef(v: Pick<Volume, "node" | "storage" | "volid">): VolumeRef {
  return { node: v.node, storage: v.storage, name: v.volid.slice(v.volid.indexOf(":") + 1) };
}
