/**
 * The sandbox's `lxc` guest backend: every guest is a real LXC container on a
 * bridge of its own, started from the template tarball the request named.
 *
 * Guests run privileged underneath, whatever `unprivileged` the API was
 * given (the API still reports what was asked). Each guest's root is an
 * overlay over the template's unpacked tree, so creating one copies nothing.
 * Next to the guests the backend runs what a homelab has next to Proxmox: an
 * image registry and a package cache, both on the bridge's host address, so
 * guests only ever talk to this machine; and, when asked, a Docker Engine of
 * its own on the host that may push to that plain-HTTP registry, for image
 * builds.
 *
 * This module wires the parts, which share one `BackendLayout` (where things
 * are) and one executor: `HostServices` (bridge, rules, daemons),
 * `GuestFiles` (what is written for a guest) and `LxcGuests` (the guests'
 * lifecycle).
 */
import { access, mkdir, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { BackupRequest, GuestBackend, VolumeRef } from "../guest-backend.ts";
import { backupCommand, readConfigCommand, restoreCommand } from "./archive.ts";
import type { StagedMount } from "./archive.ts";
import { removeTreeCommand } from "./commands.ts";
import { cleanUpScope, stopSharedLxcfs, withLxcfsLock } from "./cleanup.ts";
import type { BackendScope } from "./cleanup.ts";
import { createExecutor } from "./exec.ts";
import type { CommandResult, Executor } from "./exec.ts";
import { GuestFiles } from "./guest-files.ts";
import { LxcGuests, sameRef } from "./guests.ts";
import { onPath } from "./host.ts";
import { HostServices } from "./host-services.ts";
import { backendLayout, containerName } from "./layout.ts";
import { parseSubnet } from "./net.ts";
import { defaultTemplateDir, ensureTemplates, listTemplates } from "./templates.ts";
import type { TemplateBuildReport } from "./templates.ts";
import { VolumeStore } from "./volumes.ts";

/** Options of `createLxcBackend`. */
export interface LxcBackendOptions {
  /** Everything the backend makes lives here (containers, registry data, logs); emptied on close. */
  stateDir: string;
  /** Bridge name (default `hlsbx0`); at most 15 characters. */
  bridge?: string;
  /** The bridge's /24 (default `10.87.53.0/24`); the host is `.1`. */
  subnet?: string;
  verbose?: boolean;
  /** Template cache (default `${HOMELAB_CACHE:-~/.cache/homelab}/templates`). */
  templateDir?: string;
  /** Package cache storage, kept across runs (default next to the template cache). */
  packageCacheDir?: string;
  /** Runs host commands (default: the real executor). */
  executor?: Executor;
  /** Told about slow one-time steps (template build, unpack), even when not verbose. */
  progress?: (message: string) => void;
  /**
   * Also run a Docker Engine on the host (default false) that trusts the
   * registry, for building and pushing images: see `dockerHost`.
   */
  docker?: boolean;
}

/** The lxc backend, with the addresses the provisioning step needs. */
export interface LxcGuestBackend extends GuestBackend {
  readonly kind: "lxc";
  readonly bridge: string;
  /** e.g. `10.87.53.0/24`. */
  readonly subnet: string;
  /** The host's address on the bridge, e.g. `10.87.53.1`. */
  readonly hostAddress: string;
  /** The image registry, `host:port` (plain HTTP: an insecure registry for Docker). */
  readonly registry: string;
  /** The package cache as an apt HTTP proxy URL, e.g. `http://10.87.53.1:3142`. */
  readonly packageCache: string;
  /**
   * The backend's Docker Engine (`docker: true`), as a DOCKER_HOST value
   * (`unix:///run/homelab-sandbox/<bridge>/docker.sock`); it lists the
   * registry as insecure. Undefined without `docker`.
   */
  readonly dockerHost: string | undefined;
  readonly stateDir: string;
  /** How getting the templates went when the backend started. */
  readonly templateBuild: TemplateBuildReport;
  /** The LXC name of a guest (`<bridge>-<vmid>`). */
  containerName(vmid: number): string;
  /** Runs a command inside a running guest as root (like `pct exec`). */
  exec(vmid: number, argv: readonly string[], input?: string): Promise<CommandResult>;
}

const DEFAULT_BRIDGE = "hlsbx0";
const DEFAULT_SUBNET = "10.87.53.0/24";

/** The host programs the backend runs. */
const REQUIRED_PROGRAMS: readonly string[] = [
  "lxc-start",
  "lxc-stop",
  "lxc-attach",
  "lxc-info",
  "lxc-cgroup",
  "lxc-ls",
  "debootstrap",
  "tar",
  "zstd",
  "lxcfs",
  "ip",
  "iptables",
  "iptables-save",
  "nsenter",
  "flock",
  "ssh-keygen",
  "mount",
  "umount",
  "docker-registry",
  "apt-cacher-ng",
  "lxc-freeze",
  "lxc-unfreeze",
  "unshare",
  "perl",
  "cp",
];

/** Whether this machine can run the lxc backend, and if not, why. */
export async function lxcAvailable(): Promise<{ ok: boolean; reason?: string }> {
  if (process.platform !== "linux") return { ok: false, reason: "the lxc backend needs Linux" };
  if (process.getuid?.() !== 0) return { ok: false, reason: "the lxc backend needs root" };
  const missing: string[] = [];
  for (const p of REQUIRED_PROGRAMS) if (!(await onPath(p))) missing.push(p);
  if (missing.length > 0) {
    return { ok: false, reason: `missing programs: ${missing.join(", ")} (run scripts/setup-sandbox-host.sh)` };
  }
  try {
    await access("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  } catch {
    return { ok: false, reason: "the lxc backend needs the cgroup v1 memory controller at /sys/fs/cgroup/memory" };
  }
  try {
    await access("/dev/fuse");
  } catch {
    return { ok: false, reason: "/dev/fuse is missing (lxcfs needs it)" };
  }
  return { ok: true };
}

function assertBridgeName(bridge: string): void {
  if (!/^[a-zA-Z][a-zA-Z0-9_-]{0,14}$/.test(bridge)) throw new Error(`bad bridge name ${bridge} (letters, digits, - and _, at most 15)`);
}

/**
 * Removes everything an lxc backend with this state folder and bridge made
 * (guests, daemons, mounts, rules, bridge), e.g. for `homelab sandbox stop`
 * after the sandbox process died. `createLxcBackend` does the same first.
 */
export async function cleanUpLxcBackend(options: { stateDir: string; bridge?: string; verbose?: boolean; executor?: Executor }): Promise<void> {
  const ex = options.executor ?? createExecutor({ verbose: options.verbose ?? false });
  const bridge = options.bridge ?? DEFAULT_BRIDGE;
  assertBridgeName(bridge);
  await cleanUpScope({ ex, stateDir: resolve(options.stateDir), bridge });
  await withLxcfsLock(() => stopSharedLxcfs(ex));
}

/** Creates the lxc backend: cleans up leftovers of an earlier run, makes the bridge, rules, registry and package cache. */
export async function createLxcBackend(options: LxcBackendOptions): Promise<LxcGuestBackend> {
  const avail = await lxcAvailable();
  if (!avail.ok) throw new Error(`lxc backend unavailable: ${avail.reason ?? "unknown reason"}`);
  const ex = options.executor ?? createExecutor({ verbose: options.verbose ?? false });
  const bridge = options.bridge ?? DEFAULT_BRIDGE;
  assertBridgeName(bridge);
  const subnet = parseSubnet(options.subnet ?? DEFAULT_SUBNET);
  const templateDir = options.templateDir ?? defaultTemplateDir();
  const layout = backendLayout({
    stateDir: resolve(options.stateDir),
    bridge,
    subnet,
    templateDir,
    packageCacheDir: options.packageCacheDir ?? join(dirname(templateDir), "apt-cacher-ng", bridge),
    docker: options.docker === true,
  });
  const services = new HostServices(ex, layout);
  if (layout.docker && !(await onPath("dockerd"))) throw new Error("docker: true needs dockerd (Debian's docker.io; run scripts/setup-sandbox-host.sh)");
  const memsw = await stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").then(
    () => true,
    () => false,
  );
  const progress = options.progress ? { progress: options.progress } : {};
  const store = new VolumeStore(ex, layout.storageDir);
  const files = new GuestFiles({ ex, layout, host: { cpus: availableParallelism(), memsw }, store, ...progress });
  const guests = new LxcGuests({ ex, layout, files });

  /** Writes an archive: from the volumes themselves (a running guest frozen when asked) or from their snapshot. */
  async function writeBackup(req: BackupRequest): Promise<{ size: number }> {
    const out = store.backupPath(req.archive);
    await mkdir(dirname(out), { recursive: true });
    const scratch = `${out.replace(/\.tar(\.\w+)?$/, "")}.tmp`;
    const root = store.rootLayout(req.rootfs);
    let rootLayers: string[];
    let docker: string;
    let volumeDir: (ref: VolumeRef) => string;
    if (req.snapshot !== undefined) {
      const snap = req.snapshot;
      const copy = store.snapshotDir(req.rootfs, snap);
      const lowers = await store.snapshotLowers(req.rootfs, snap);
      rootLayers = lowers !== undefined ? [`${copy}/upper`, ...lowers] : [`${copy}/root`];
      docker = `${copy}/docker`;
      volumeDir = (ref) => store.snapshotDir(ref, snap);
    } else {
      // The guest's root as mounted on this machine: its merged view.
      rootLayers = [guests.rootMount(req.vmid)];
      docker = root.docker;
      volumeDir = (ref) => store.dir(ref);
    }
    const mounts: StagedMount[] = [{ path: "/var/lib/docker", source: docker }, ...req.mounts.map((m) => ({ path: m.path, source: volumeDir(m.volume) }))];
    const thaw = req.freeze ? await guests.freeze(req.vmid) : () => Promise.resolve();
    try {
      await ex.run({ ...backupCommand({ rootLayers, mounts, scratch, out, compress: req.compress }), input: req.config });
    } catch (e) {
      await ex.run(removeTreeCommand(`${out}.dat`)).catch(() => undefined);
      throw e;
    } finally {
      await thaw();
      // Only now: the mounts lived in the command's own namespace and are gone with it.
      await ex.run(removeTreeCommand(scratch));
    }
    return { size: (await stat(out)).size };
  }
  const scope: BackendScope = { ex, stateDir: layout.stateDir, bridge };
  let templateBuild: TemplateBuildReport = { built: false, ms: 0 };
  let closed = false;

  const backend: LxcGuestBackend = {
    kind: "lxc",
    bridge,
    subnet: `${subnet.network}/${subnet.prefix}`,
    hostAddress: subnet.hostAddress,
    registry: layout.registry,
    packageCache: layout.packageCacheUrl,
    dockerHost: layout.docker ? `unix://${layout.docker.socket}` : undefined,
    stateDir: layout.stateDir,
    get templateBuild() {
      return templateBuild;
    },
    containerName: (vmid) => containerName(bridge, vmid),
    listTemplates: () => listTemplates(templateDir),
    create: (spec) => guests.create(spec),
    start: (vmid) => guests.start(vmid),
    stop: (vmid) => guests.stop(vmid),
    shutdown: (vmid, timeoutSec, forceStop) => guests.shutdown(vmid, timeoutSec, forceStop),
    reboot: (vmid) => guests.reboot(vmid),
    update: (vmid, change) => guests.update(vmid, change),
    destroy: (vmid) => guests.destroy(vmid),
    status: (vmid) => guests.status(vmid),
    interfaces: (vmid) => guests.interfaces(vmid),
    setMounts: (vmid, rootfs, mounts, hotplug) => guests.setMounts(vmid, rootfs, mounts, hotplug),
    allocateVolume: (ref) => store.allocate(ref),
    freeVolume: (ref) => store.free(ref),
    renameVolume: (from, to) => store.rename(from, to),
    // The template's guest already mounts its root read-only: the base's data is not written again.
    makeBaseVolume: (from, to) => store.rename(from, to),
    cloneVolume: (req) => store.clone(req),
    copyVolume: (from, to) => store.copy(from, to),
    // Folders have no size of their own: the API records it.
    resizeVolume: () => Promise.resolve(),
    async snapshotVolumes(freezeVmid, snap, refs) {
      const thaw = freezeVmid !== undefined ? await guests.freeze(freezeVmid) : () => Promise.resolve();
      const done: VolumeRef[] = [];
      try {
        for (const ref of refs) {
          await store.snapshot(ref, snap);
          done.push(ref);
        }
      } catch (e) {
        for (const ref of done) await store.deleteSnapshot(ref, snap).catch(() => undefined);
        throw e;
      } finally {
        await thaw();
      }
    },
    async rollbackVolumes(vmid, snap, refs) {
      for (const ref of refs) {
        if (sameRef(ref, guests.rootOf(vmid))) await guests.withRootUnmounted(vmid, () => store.rollback(ref, snap));
        else await store.rollback(ref, snap);
      }
    },
    deleteVolumeSnapshot: (snap, ref) => store.deleteSnapshot(ref, snap),
    writeBackup,
    async readBackupConfig(ref) {
      return (await ex.run(readConfigCommand(store.backupPath(ref)))).stdout;
    },
    async restoreBackup(ref, target) {
      const l = await store.initPlainRoot(target.rootfs);
      const scratch = `${l.dir}.restore`;
      const mounts: StagedMount[] = [{ path: "/var/lib/docker", source: l.docker }, ...target.mounts.map((m) => ({ path: m.path, source: store.dir(m.volume) }))];
      try {
        await ex.run(restoreCommand({ archive: store.backupPath(ref), root: l.root, mounts, scratch }));
      } finally {
        await ex.run(removeTreeCommand(scratch));
      }
    },
    freeBackup: (ref) => store.freeBackup(ref),
    exec: (vmid, argv, input) => guests.exec(vmid, argv, input),
    async close() {
      if (closed) return;
      closed = true;
      const killGuests = guests.close();
      await cleanUpScope(scope, [killGuests, () => services.stopDaemons()]);
      await withLxcfsLock(() => stopSharedLxcfs(ex));
    },
  };

  try {
    await cleanUpScope(scope);
    await services.checkSubnetFree();
    await services.makeFolders();
    templateBuild = (await ensureTemplates({ executor: ex, dir: templateDir, ...progress })).report;
    await services.startNetwork();
    await services.startRegistry();
    await services.startDocker();
    await services.startPackageCache();
    return backend;
  } catch (err) {
    await backend.close().catch((e: unknown) => ex.log(`cleanup after a failed start failed too: ${(e as Error).message}`));
    throw err;
  }
}
