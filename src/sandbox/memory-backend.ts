/**
 * The `memory` guest backend: guests are state only. It imitates what a
 * client can observe of real containers: interfaces are null while stopped
 * and DHCP guests show only their IPv6 link-local address for a while after
 * start, until the "lease" arrives. Volumes, snapshots and archives have no
 * data; an archive keeps the config it was given, so a restore reads it back.
 */
import type {
  BackupRef,
  BackupRequest,
  GuestBackend,
  GuestChange,
  GuestInterface,
  GuestMount,
  GuestRuntimeStatus,
  GuestSpec,
  PlacedVolume,
  TemplateInfo,
  VolumeCloneRequest,
  VolumeRef,
} from "./guest-backend.ts";
import { linkLocalFor } from "./formats.ts";

/** Options of the memory backend. */
export interface MemoryBackendOptions {
  clock?: () => number;
  /** How long a DHCP guest shows only link-local addresses after start (ms). */
  dhcpDelayMs?: number;
  templates?: TemplateInfo[];
  /** How long copying data takes: snapshots, rollbacks, backups, restores, volume copies and full clones (ms, default 0). */
  dataDelayMs?: number;
}

const MiB = 1024 * 1024;

/** The templates every node's `local` storage holds from the start. */
export function defaultTemplates(): TemplateInfo[] {
  const t = (name: string, size: number, ctime: number): TemplateInfo => ({ volid: `local:vztmpl/${name}`, size, ctime });
  return [
    t("debian-11-standard_11.7-1_amd64.tar.zst", 126_268_434, 1_685_000_000),
    t("debian-12-standard_12.2-1_amd64.tar.zst", 126_664_141, 1_701_000_000),
    t("debian-12-standard_12.7-1_amd64.tar.zst", 123_461_212, 1_726_000_000),
    // What Proxmox VE 9 offers: a `*debian*` `>=12` container gets Debian 13 on a current cluster.
    t("debian-13-standard_13.1-2_amd64.tar.zst", 129_113_090, 1_757_000_000),
    t("ubuntu-22.04-standard_22.04-1_amd64.tar.zst", 129_824_858, 1_682_000_000),
    t("ubuntu-24.04-standard_24.04-2_amd64.tar.zst", 141_102_374, 1_720_000_000),
  ];
}

interface MemoryGuest {
  spec: GuestSpec;
  running: boolean;
  startedAt: number;
  lease: string | undefined;
}

/** A state-only guest backend. */
export class MemoryBackend implements GuestBackend {
  readonly kind = "memory" as const;
  private readonly guests = new Map<number, MemoryGuest>();
  private readonly clock: () => number;
  private readonly dhcpDelayMs: number;
  private readonly templates: TemplateInfo[];
  private readonly dataDelayMs: number;
  /** Archives: their config and a size standing in for their data. */
  private readonly archives = new Map<string, { config: string; size: number }>();
  private nextLease = 100;

  constructor(options: MemoryBackendOptions = {}) {
    this.clock = options.clock ?? Date.now;
    this.dhcpDelayMs = options.dhcpDelayMs ?? 2000;
    this.templates = options.templates ?? defaultTemplates();
    this.dataDelayMs = options.dataDelayMs ?? 0;
  }

  /** Waits as long as moving data takes here. */
  private data(): Promise<void> {
    return this.dataDelayMs > 0 ? new Promise((resolve) => setTimeout(resolve, this.dataDelayMs)) : Promise.resolve();
  }

  listTemplates(): Promise<TemplateInfo[]> {
    return Promise.resolve(this.templates.map((t) => ({ ...t })));
  }

  create(spec: GuestSpec): Promise<void> {
    if (this.guests.has(spec.vmid)) return Promise.reject(new Error(`guest ${spec.vmid} already exists`));
    this.guests.set(spec.vmid, { spec: structuredClone(spec), running: false, startedAt: 0, lease: undefined });
    return Promise.resolve();
  }

  start(vmid: number): Promise<void> {
    return this.with(vmid, (g) => {
      g.running = true;
      g.startedAt = this.clock();
    });
  }

  stop(vmid: number): Promise<void> {
    return this.with(vmid, (g) => {
      g.running = false;
      g.startedAt = 0;
    });
  }

  shutdown(vmid: number): Promise<void> {
    return this.stop(vmid);
  }

  reboot(vmid: number): Promise<void> {
    return this.start(vmid);
  }

  update(vmid: number, change: GuestChange): Promise<void> {
    return this.with(vmid, (g) => {
      g.spec = { ...g.spec, ...change };
    });
  }

  destroy(vmid: number): Promise<void> {
    this.guests.delete(vmid);
    return Promise.resolve();
  }

  status(vmid: number): Promise<GuestRuntimeStatus> {
    return this.with(vmid, (g) => {
      if (!g.running) return { running: false, uptime: 0, mem: 0 };
      // A settled guest uses a fifth of its limit, never less than a small base.
      const mem = Math.min(g.spec.memoryMb * MiB, Math.max(32 * MiB, Math.round(g.spec.memoryMb * MiB * 0.2)));
      return { running: true, uptime: Math.floor((this.clock() - g.startedAt) / 1000), mem };
    });
  }

  interfaces(vmid: number): Promise<GuestInterface[] | null> {
    return this.with(vmid, (g) => this.addresses(g));
  }

  private addresses(g: MemoryGuest): GuestInterface[] | null {
    if (!g.running) return null;
    const leased = this.clock() - g.startedAt >= this.dhcpDelayMs;
    const list: GuestInterface[] = [{ name: "lo", hwaddr: "00:00:00:00:00:00", inet: "127.0.0.1/8", inet6: "::1/128" }];
    for (const net of g.spec.net) {
      const entry: GuestInterface = { name: net.name, hwaddr: net.hwaddr, inet6: linkLocalFor(net.hwaddr) };
      if (net.ip === "dhcp" && leased) {
        g.lease ??= `10.10.0.${this.nextLease++ % 250}/24`;
        entry.inet = g.lease;
      } else if (net.ip !== "dhcp" && net.ip !== "manual") {
        entry.inet = net.ip;
      }
      list.push(entry);
    }
    return list;
  }

  setMounts(vmid: number, rootfs: VolumeRef, mounts: GuestMount[]): Promise<void> {
    return this.with(vmid, (g) => {
      g.spec = { ...g.spec, rootfs, mounts: structuredClone(mounts) };
    });
  }

  allocateVolume(): Promise<void> {
    return Promise.resolve();
  }

  freeVolume(): Promise<void> {
    return Promise.resolve();
  }

  makeBaseVolume(): Promise<void> {
    return Promise.resolve();
  }

  /** A linked clone shares its base's data at once; a full copy takes as long as copying data here. */
  cloneVolume(req: VolumeCloneRequest): Promise<void> {
    return req.linked ? Promise.resolve() : this.data();
  }

  renameVolume(): Promise<void> {
    return Promise.resolve();
  }

  copyVolume(): Promise<void> {
    return this.data();
  }

  resizeVolume(): Promise<void> {
    return Promise.resolve();
  }

  snapshotVolumes(): Promise<void> {
    return this.data();
  }

  rollbackVolumes(): Promise<void> {
    return this.data();
  }

  deleteVolumeSnapshot(): Promise<void> {
    return this.data();
  }

  async writeBackup(req: BackupRequest): Promise<{ size: number }> {
    await this.data();
    // A compressed root of a template is about a hundred MiB; each volume adds a little.
    const size = 110 * MiB + req.mounts.length * 4 * MiB + req.config.length;
    this.archives.set(archiveKey(req.archive), { config: req.config, size });
    return { size };
  }

  readBackupConfig(ref: BackupRef): Promise<string> {
    const a = this.archives.get(archiveKey(ref));
    if (!a) return Promise.reject(new Error(`can't find file '${ref.storage}:backup/${ref.file}'`));
    return Promise.resolve(a.config);
  }

  async restoreBackup(ref: BackupRef, _target: { rootfs: VolumeRef; mounts: PlacedVolume[] }): Promise<void> {
    if (!this.archives.has(archiveKey(ref))) throw new Error(`can't find file '${ref.storage}:backup/${ref.file}'`);
    await this.data();
  }

  freeBackup(ref: BackupRef): Promise<void> {
    this.archives.delete(archiveKey(ref));
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.guests.clear();
    this.archives.clear();
    return Promise.resolve();
  }

  /** Runs `fn` on a guest; a missing guest is a rejection, as a real backend's failure would be. */
  private with<T>(vmid: number, fn: (g: MemoryGuest) => T): Promise<T> {
    const g = this.guests.get(vmid);
    if (!g) return Promise.reject(new Error(`no guest ${vmid}`));
    try {
      return Promise.resolve(fn(g));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

function archiveKey(ref: BackupRef): string {
  return `${ref.node}\0${ref.storage}\0${ref.file}`;
}
