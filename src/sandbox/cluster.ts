/**
 * The sandbox's cluster model: nodes with different sizes, their storages
 * (`local` for templates, `local-lvm` for container volumes), guests as
 * Proxmox config maps, id allocation and the two kinds of locks Proxmox
 * has (the `lock:` config entry and the config file lock with its timeout).
 * No HTTP here; the API layer calls it.
 */
import { createHash } from "node:crypto";
import { failure } from "./errors.ts";
import type { GuestBackend, TemplateInfo } from "./guest-backend.ts";

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

/** A storage as configured on every node. */
export interface StorageDef {
  storage: string;
  type: string;
  content: string[];
  path?: string;
}

/** The storages of every node. */
export const STORAGES: StorageDef[] = [
  { storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" },
  { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] },
];

/** A config value as Proxmox keeps it. */
export type ConfigValue = string | number;

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
  /** Whether the backend has made it (false while being created). */
  created: boolean;
  running: boolean;
}

/** A disk volume on `local-lvm`. */
export interface Volume {
  volid: string;
  node: string;
  storage: string;
  vmid: number;
  size: number;
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
  readonly volumes = new Map<string, Volume>();
  private readonly locks = new Map<number, FileLock>();
  readonly backend: GuestBackend;
  private readonly clock: () => number;

  constructor(options: { nodes: number; backend: GuestBackend; clock: () => number }) {
    this.backend = options.backend;
    this.clock = options.clock;
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

  /** Allocates a new container volume (`local-lvm:vm-101-disk-0`). */
  allocateVolume(node: string, storage: string, vmid: number, size: number): Volume {
    let n = 0;
    while (this.volumes.has(`${storage}:vm-${vmid}-disk-${n}`)) n++;
    const volume = { volid: `${storage}:vm-${vmid}-disk-${n}`, node, storage, vmid, size };
    this.volumes.set(volume.volid, volume);
    return volume;
  }

  /** Frees every volume of a vmid. */
  freeVolumes(vmid: number): void {
    for (const [volid, v] of this.volumes) if (v.vmid === vmid) this.volumes.delete(volid);
  }

  /** Bytes used on a storage of a node. */
  async storageUsed(node: string, storage: string): Promise<number> {
    if (storage === "local") {
      const templates = await this.templates(node);
      return 6 * GiB + templates.reduce((sum, t) => sum + t.size, 0);
    }
    let used = 0;
    for (const v of this.volumes.values()) if (v.node === node && v.storage === storage) used += v.size;
    return used;
  }

  /** A storage's total size on a node. */
  storageTotal(node: string, storage: string): number {
    const spec = this.node(node).spec;
    return storage === "local" ? spec.localSize : spec.lvmSize;
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

/** Proxmox's config digest: SHA-1 over the config as written to its file. */
export function configDigest(config: Record<string, ConfigValue>): string {
  const text = Object.keys(config)
    .sort()
    .map((k) => `${k}: ${String(config[k])}\n`)
    .join("");
  return createHash("sha1").update(text).digest("hex");
}
