/**
 * The lxc backend's guests and their lifecycle: create (addresses taken,
 * root mounted and written, config written; undone on failure), start under
 * the host-wide lxcfs lock, stop, shutdown, reboot, live changes through the
 * cgroups, destroy, and what a running guest reports.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { GuestChange, GuestInterface, GuestMount, GuestRuntimeStatus, GuestSpec, VolumeRef } from "../guest-backend.ts";
import {
  hotplugMountCommand,
  lxcAttachCommand,
  lxcCgroupCommand,
  lxcFreezeCommand,
  lxcInfoCommand,
  lxcUnfreezeCommand,
  lxcKillCommand,
  lxcRebootCommand,
  lxcShutdownCommand,
  lxcStartCommand,
  netnsAddrCommand,
  parseLxcInfo,
} from "./commands.ts";
import type { LxcConfigParams } from "./commands.ts";
import { ensureLxcfs, withLxcfsLock } from "./cleanup.ts";
import { CommandError } from "./exec.ts";
import type { CommandResult, Executor } from "./exec.ts";
import type { GuestFiles } from "./guest-files.ts";
import { memoryCgroupPath, processUptime, waitFor } from "./host.ts";
import { guestPaths } from "./layout.ts";
import type { BackendLayout, GuestPaths } from "./layout.ts";
import { AddressPool, parseIpAddrJson } from "./net.ts";

/** One guest as the backend knows it. */
interface Guest {
  vmid: number;
  paths: GuestPaths;
  spec: GuestSpec;
  /** The addresses it took from the pool. */
  addresses: string[];
  config: LxcConfigParams;
}

/** The guests of one backend. */
export class LxcGuests {
  private readonly ex: Executor;
  private readonly layout: BackendLayout;
  private readonly files: GuestFiles;
  private readonly guests = new Map<number, Guest>();
  private readonly pool: AddressPool;
  private closed = false;

  constructor(o: { ex: Executor; layout: BackendLayout; files: GuestFiles }) {
    this.ex = o.ex;
    this.layout = o.layout;
    this.files = o.files;
    this.pool = new AddressPool(o.layout.subnet);
  }

  /** Makes a guest from its template, stopped. */
  async create(spec: GuestSpec): Promise<void> {
    if (this.closed) throw new Error("lxc backend is closed");
    if (this.guests.has(spec.vmid)) throw new Error(`CT ${spec.vmid} already exists`);
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/.test(spec.hostname)) throw new Error(`bad hostname ${spec.hostname}`);
    const { planned, taken } = this.pool.take(spec.net.map((n) => n.ip));
    const paths = guestPaths(this.layout, spec.vmid);
    const g: Guest = { vmid: spec.vmid, paths, spec: { ...spec }, addresses: taken, config: this.files.lxcParams(spec, paths, planned) };
    this.guests.set(spec.vmid, g);
    try {
      await this.files.mountRoot(paths, spec, readOnlyRoot(spec));
      await this.files.prepareRoot(paths, g.spec, g.config);
      await this.files.writeConfig(paths, g.config);
    } catch (err) {
      this.guests.delete(spec.vmid);
      this.pool.release(taken);
      await this.files.release(paths).catch(() => undefined);
      throw err;
    }
  }

  /** Starts a guest (nothing when it runs) and waits until it does. */
  async start(vmid: number): Promise<void> {
    const g = this.guest(vmid);
    if ((await this.info(g)).running) return;
    await this.files.checkBindSources(g.spec.mounts);
    const log = g.paths.startLog;
    // Under the lxcfs lock, so a sandbox closing meanwhile sees this
    // guest's monitor and leaves lxcfs running for it.
    await withLxcfsLock(async () => {
      await ensureLxcfs(this.ex, join(this.layout.logDir, "lxcfs.log"));
      try {
        await this.ex.run(lxcStartCommand(g.paths.ref, log));
      } catch (err) {
        const tail = await readFile(log, "utf8").catch(() => "");
        const errors = tail.split("\n").filter((l) => /ERROR/.test(l)).slice(-8).join("\n");
        throw new Error(`${(err as Error).message}${errors ? `\n${errors}` : ""}`, { cause: err });
      }
    });
    await waitFor(`CT ${vmid} to run`, async () => (await this.info(g)).running, 30_000);
  }

  /** Kills a running guest. */
  async stop(vmid: number): Promise<void> {
    const g = this.guest(vmid);
    if (!(await this.info(g)).running) return;
    await this.ex.run(lxcKillCommand(g.paths.ref));
  }

  /** Halts a running guest cleanly, killing it after `timeoutSec` when `forceStop`. */
  async shutdown(vmid: number, timeoutSec: number, forceStop: boolean): Promise<void> {
    const g = this.guest(vmid);
    if (!(await this.info(g)).running) return;
    await this.ex.run(lxcShutdownCommand(g.paths.ref, timeoutSec, forceStop));
  }

  /** Reboots a running guest and waits for its new init; starts a stopped one. */
  async reboot(vmid: number): Promise<void> {
    const g = this.guest(vmid);
    const before = await this.info(g);
    if (!before.running) {
      await this.start(vmid);
      return;
    }
    await this.ex.run(lxcRebootCommand(g.paths.ref));
    // Reboot is done when a new init runs.
    await waitFor(`CT ${vmid} to come back`, async () => {
      const now = await this.info(g);
      return now.running && now.pid !== before.pid;
    }, 120_000, 200);
  }

  /**
   * Applies memory, swap, cores and hostname: to the running guest's cgroups
   * and hostname, and to its files; a stopped guest that becomes a template
   * (or stops being one) gets its root mounted read-only (or writable).
   */
  async update(vmid: number, change: GuestChange): Promise<void> {
    const g = this.guest(vmid);
    const next: GuestSpec = { ...g.spec, ...change };
    const params = this.files.lxcParams(next, g.paths, g.config.nets.map((n) => ({ cidr: n.address, gateway: n.gateway })));
    const state = await this.info(g);
    if (state.running) {
      const sets: Array<[string, string]> = [["memory.limit_in_bytes", String(params.memoryBytes)]];
      if (params.memswBytes !== undefined) {
        // memsw may never drop below memory: raise it first when memory outgrows the old one.
        const sw: [string, string] = ["memory.memsw.limit_in_bytes", String(params.memswBytes)];
        if (params.memoryBytes > (g.config.memswBytes ?? 0)) sets.unshift(sw);
        else sets.push(sw);
      }
      sets.push(["cpuset.cpus", params.cpus]);
      for (const [k, v] of sets) await this.ex.run(lxcCgroupCommand(g.paths.ref, k, v));
      if (change.hostname && change.hostname !== g.spec.hostname) {
        await this.ex.run(lxcAttachCommand(g.paths.ref, ["hostname", change.hostname]));
      }
    }
    // A template's root is read-only: its files get the hostname in each clone, as Proxmox writes it at every start.
    if (change.hostname && !readOnlyRoot(next)) await this.files.writeHostname(g.paths, change.hostname, g.config);
    if (readOnlyRoot(next) !== readOnlyRoot(g.spec) && !state.running) await this.files.remountRoot(g.paths, g.spec.rootfs, readOnlyRoot(next));
    if (next.isTemplate && !g.spec.isTemplate && !state.running) {
      // A template never runs: its addresses go back to the pool, so a clone can have a static one it was given.
      this.pool.release(g.addresses);
      g.addresses = [];
    }
    g.spec = next;
    g.config = params;
    await this.files.writeConfig(g.paths, g.config);
  }

  /**
   * Takes a guest's new root volume and mount points: its LXC config says
   * them for the next start; a new root volume (the guest is stopped) is
   * mounted now; `hotplug` mount points go into the running guest at once.
   */
  async setMounts(vmid: number, rootfs: VolumeRef, mounts: GuestMount[], hotplug: GuestMount[]): Promise<void> {
    const g = this.guest(vmid);
    const state = await this.info(g);
    if (!sameRef(rootfs, g.spec.rootfs)) {
      if (state.running) throw new Error(`CT ${vmid}: the root volume cannot change while it runs`);
      await this.files.remountRoot(g.paths, rootfs, readOnlyRoot({ ...g.spec, rootfs }));
    }
    if (hotplug.length > 0) {
      if (!state.running || state.pid === undefined) throw new Error(`CT ${vmid} not running`);
      await this.files.checkBindSources(hotplug);
      for (const m of hotplug) {
        const b = this.files.bindMount(m);
        try {
          await this.ex.run(hotplugMountCommand(state.pid, b.source, b.path, b.readOnly));
        } catch (err) {
          // The command is a script: its own words say what went wrong.
          throw new Error(err instanceof CommandError ? err.stderr.trim() || err.message : String(err), { cause: err });
        }
      }
    }
    g.spec = { ...g.spec, rootfs, mounts: [...mounts] };
    g.config = { ...g.config, ...this.files.lxcParams(g.spec, g.paths, g.config.nets.map((n) => ({ cidr: n.address, gateway: n.gateway }))) };
    await this.files.writeConfig(g.paths, g.config);
  }

  /** Freezes a running guest's processes; resolves to a thaw function (nothing to thaw for a stopped guest). */
  async freeze(vmid: number): Promise<() => Promise<void>> {
    const g = this.guest(vmid);
    if (!(await this.info(g)).running) return () => Promise.resolve();
    await this.ex.run(lxcFreezeCommand(g.paths.ref));
    return async () => {
      await this.ex.run(lxcUnfreezeCommand(g.paths.ref));
    };
  }

  /** The root volume of a guest, if the backend knows the guest. */
  rootOf(vmid: number): VolumeRef | undefined {
    return this.guests.get(vmid)?.spec.rootfs;
  }

  /** Runs `body` with a (stopped) guest's root unmounted, and mounts it again. */
  async withRootUnmounted<T>(vmid: number, body: () => Promise<T>): Promise<T> {
    const g = this.guest(vmid);
    if ((await this.info(g)).running) throw new Error(`CT ${vmid} is running`);
    await this.files.unmountRoot(g.paths);
    try {
      return await body();
    } finally {
      await this.files.remountRoot(g.paths, g.spec.rootfs, readOnlyRoot(g.spec));
    }
  }

  /** Where a guest's root is mounted on this machine (its merged view). */
  rootMount(vmid: number): string {
    return this.guest(vmid).paths.rootfs;
  }

  /** Kills a guest, removes its files and gives its addresses back. */
  async destroy(vmid: number): Promise<void> {
    const g = this.guest(vmid);
    if ((await this.info(g)).running) await this.ex.run(lxcKillCommand(g.paths.ref));
    await this.files.release(g.paths);
    this.guests.delete(vmid);
    this.pool.release(g.addresses);
  }

  /** Whether a guest runs, for how long, and its memory use (from its cgroup). */
  async status(vmid: number): Promise<GuestRuntimeStatus> {
    const g = this.guest(vmid);
    const i = await this.info(g);
    if (!i.running || i.pid === undefined) return { running: false, uptime: 0, mem: 0 };
    let uptime = 0;
    let mem = 0;
    try {
      uptime = processUptime(await readFile(`/proc/${i.pid}/stat`, "utf8"), await readFile("/proc/uptime", "utf8"));
      const cg = memoryCgroupPath(await readFile(`/proc/${i.pid}/cgroup`, "utf8"));
      if (cg !== undefined) mem = Number((await readFile(join("/sys/fs/cgroup/memory", cg, "memory.usage_in_bytes"), "utf8")).trim());
    } catch {
      // It stopped while we looked.
    }
    return { running: true, uptime, mem };
  }

  /** A running guest's interfaces from inside its network namespace; null while stopped. */
  async interfaces(vmid: number): Promise<GuestInterface[] | null> {
    const g = this.guest(vmid);
    const i = await this.info(g);
    if (!i.running || i.pid === undefined) return null;
    try {
      return parseIpAddrJson((await this.ex.run(netnsAddrCommand(i.pid))).stdout);
    } catch (err) {
      // It stopped between the two looks: Proxmox answers null then too.
      if (!(await this.info(g)).running) return null;
      throw err;
    }
  }

  /** Runs a command inside a running guest as root. */
  async exec(vmid: number, argv: readonly string[], input?: string): Promise<CommandResult> {
    const g = this.guest(vmid);
    return this.ex.run(lxcAttachCommand(g.paths.ref, argv, input));
  }

  /**
   * Refuses new guests and forgets the known ones at once; the returned step
   * kills them (close runs it first among its clean-up steps).
   */
  close(): () => Promise<void> {
    this.closed = true;
    const ours = [...this.guests.values()];
    this.guests.clear();
    this.pool.clear();
    return async () => {
      await Promise.all(ours.map((g) => this.ex.run({ ...lxcKillCommand(g.paths.ref), okCodes: [0, 1, 2] })));
    };
  }

  private guest(vmid: number): Guest {
    const g = this.guests.get(vmid);
    if (!g) throw new Error(`guest ${vmid} does not exist in the lxc backend`);
    return g;
  }

  private async info(g: Guest): Promise<{ running: boolean; pid?: number }> {
    const res = await this.ex.run(lxcInfoCommand(g.paths.ref));
    const i = parseLxcInfo(res.code === 0 ? res.stdout : "");
    return i.state === "RUNNING" && i.pid !== undefined ? { running: true, pid: i.pid } : { running: false };
  }
}

/** A template's root, or one on a base volume (a template's, which linked clones stand on), is never written. */
export function readOnlyRoot(spec: Pick<GuestSpec, "isTemplate" | "rootfs">): boolean {
  return (spec.isTemplate ?? false) || /(?:^|[/+])(?:base|basevol)-\d+-disk-\d+(?:\.raw|\.subvol)?$/.test(spec.rootfs.name);
}

/** Whether two references name the same volume; `b` may be missing (a guest without a root). */
export function sameRef(a: VolumeRef, b: VolumeRef | undefined): boolean {
  return b !== undefined && a.node === b.node && a.storage === b.storage && a.name === b.name;
}
