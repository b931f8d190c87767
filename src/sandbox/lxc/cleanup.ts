/**
 * Finding and removing what an lxc backend made on the host, whether it is
 * closing normally or a crashed one left it: guests, daemons, mounts, the
 * state folder's contents (volumes, their snapshots and backups included),
 * the tagged iptables rules, the bridge. Also the host-wide lxcfs that every
 * sandbox shares.
 */
import { access, mkdir, readFile, rm, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  dockerRuncRoot,
  iptablesSaveCommand,
  linkDeleteCommand,
  linkListCommand,
  lxcfsArgv,
  lxcfsLockFile,
  lxcfsPidFile,
  lxcKillCommand,
  lxcLsCommand,
  lxcUnfreezeCommand,
  parseRuncList,
  removeTreeCommand,
  runcDeleteCommand,
  runcListCommand,
  taggedRuleDeleteCommands,
  umountCommand,
  unmountUnderCommands,
} from "./commands.ts";
import type { Executor } from "./exec.ts";
import { isMounted, listProcesses, lxcMonitors, processMatches, readMounts, stopProcess, waitFor } from "./host.ts";
import type { ProcessInfo } from "./host.ts";
import { dockerPathsOf, dockerRunDirOf, lxcpathOf, registryConfigOf, STATE_SUBDIRS } from "./layout.ts";
import { acquireFileLock } from "./lock.ts";

/** What one backend owns: its state folder and its bridge. */
export interface BackendScope {
  ex: Executor;
  /** Absolute. */
  stateDir: string;
  bridge: string;
}

/**
 * The daemons a backend starts, found by their argv naming its state folder
 * or its docker run folder: dockerd's managed containerd and its shims name
 * only the latter.
 */
export const OWN_DAEMONS: readonly string[] = ["docker-registry", "apt-cacher-ng", "dockerd", "containerd", "containerd-shim-runc-v2"];

/** How long dockerd gets to stop its containers and containerd before SIGKILL (it takes a few seconds). */
export const DOCKERD_STOP_GRACE_MS = 30_000;

/** The scope's daemons running now, by their argv; dockerd first. */
async function scopeDaemons(s: BackendScope): Promise<Array<ProcessInfo & { exe: string }>> {
  const needles = [s.stateDir, `${dockerRunDirOf(s.bridge)}/`];
  const found: Array<ProcessInfo & { exe: string }> = [];
  for (const p of await listProcesses()) {
    if (p.pid === process.pid) continue;
    const exe = (p.argv[0] ?? "").split("/").pop() ?? "";
    if (!OWN_DAEMONS.includes(exe)) continue;
    if (!p.argv.some((a) => needles.some((n) => a.includes(n)))) continue;
    found.push({ ...p, exe });
  }
  return found.sort((a, b) => Number(b.exe === "dockerd") - Number(a.exe === "dockerd"));
}

/** The mount point LXC's lxcfs hook reads. */
const LXCFS_MOUNT = "/var/lib/lxcfs";

/** Kills the scope's guests: those under its lxcpath and any named after its bridge elsewhere. */
async function stopScopeContainers(s: BackendScope): Promise<void> {
  const lxcpath = lxcpathOf(s.stateDir);
  const monitors = lxcMonitors(await listProcesses()).filter((m) => m.lxcpath === lxcpath || m.name.startsWith(`${s.bridge}-`));
  // A guest frozen for a snapshot when the sandbox died would not die of SIGKILL until thawed.
  await Promise.all(monitors.map((m) => s.ex.run({ ...lxcUnfreezeCommand({ lxcpath: m.lxcpath, name: m.name }), okCodes: [0, 1, 2] })));
  await Promise.all(monitors.map((m) => s.ex.run({ ...lxcKillCommand({ lxcpath: m.lxcpath, name: m.name }), okCodes: [0, 1, 2] })));
  let listed = "";
  try {
    listed = (await s.ex.run({ ...lxcLsCommand(lxcpath), okCodes: [0, 1] })).stdout;
  } catch {
    // No lxcpath yet: nothing to stop.
  }
  for (const name of listed.split("\n").map((l) => l.trim()).filter(Boolean)) {
    await s.ex.run({ ...lxcKillCommand({ lxcpath, name }), okCodes: [0, 1, 2] });
  }
}

/**
 * Stops the scope's daemons (registry, package cache, Docker), found by
 * their argv; other programs that happen to name the state folder (a
 * `tail -f` of a log) are left alone. dockerd goes first, so it stops its
 * containers itself. Containers whose dockerd was killed outright live on
 * under their shims: runc kills them before the shims are stopped.
 */
async function stopScopeDaemons(s: BackendScope): Promise<void> {
  for (const p of await scopeDaemons(s)) {
    if (p.exe !== "dockerd") continue;
    s.ex.log(`stopping leftover process ${p.pid}: ${p.argv.join(" ")}`);
    await stopProcess(p.pid, p.exe, DOCKERD_STOP_GRACE_MS);
  }
  const rest = await scopeDaemons(s);
  if (rest.some((p) => p.exe === "containerd-shim-runc-v2")) {
    const root = dockerRuncRoot(dockerPathsOf(s.stateDir, s.bridge).execRoot);
    for (const id of parseRuncList((await s.ex.run(runcListCommand(root))).stdout)) {
      s.ex.log(`killing leftover container ${id}`);
      await s.ex.run(runcDeleteCommand(root, id));
    }
  }
  for (const p of rest) {
    s.ex.log(`stopping leftover process ${p.pid}: ${p.argv.join(" ")}`);
    await stopProcess(p.pid, p.exe);
  }
}

/** Unmounts everything under the state folder and the docker run folder, and removes what the backend keeps there. */
async function removeScopeFiles(s: BackendScope): Promise<void> {
  const dockerRun = dockerRunDirOf(s.bridge);
  await s.ex.runAll(await unmountUnderCommands(s.stateDir));
  await s.ex.runAll(await unmountUnderCommands(dockerRun));
  for (const sub of STATE_SUBDIRS) await s.ex.run(removeTreeCommand(join(s.stateDir, sub)));
  await rm(registryConfigOf(s.stateDir), { force: true });
  await s.ex.run(removeTreeCommand(dockerRun));
  // Their common parent goes with the last sandbox.
  await rmdir(dirname(dockerRun)).catch(() => undefined);
}

/** Deletes the iptables rules tagged with the scope's bridge. */
async function removeScopeRules(s: BackendScope): Promise<void> {
  const { stdout } = await s.ex.run(iptablesSaveCommand());
  for (const cmd of taggedRuleDeleteCommands(stdout, s.bridge)) await s.ex.run({ ...cmd, okCodes: [0, 1] });
}

/** Deletes the scope's bridge when it exists. */
async function removeScopeBridge(s: BackendScope): Promise<void> {
  const { stdout } = await s.ex.run(linkListCommand());
  const exists = (JSON.parse(stdout) as Array<{ ifname?: string }>).some((l) => l.ifname === s.bridge);
  if (exists) await s.ex.run(linkDeleteCommand(s.bridge));
}

/**
 * Removes everything of the scope, running `first` before the standard
 * steps. Every step runs even when an earlier one failed, so one stuck piece
 * does not keep the rest in place; the failures are reported together.
 */
export async function cleanUpScope(s: BackendScope, first: Array<() => Promise<void>> = []): Promise<void> {
  const steps = [
    ...first,
    () => stopScopeContainers(s),
    () => stopScopeDaemons(s),
    () => removeScopeFiles(s),
    () => removeScopeRules(s),
    () => removeScopeBridge(s),
  ];
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `clean-up failed: ${errors.map((e) => (e as Error).message).join("; ")}`);
}

// lxcfs serves every container on the host, so it is shared: the first
// sandbox that needs it starts it (its pid in lxcfsPidFile), and the last one
// to close, seeing no container left on the host, stops it. A host-wide file
// lock orders "start lxcfs + start a guest" against "no guest left? stop
// lxcfs" across sandboxes.

/** Runs `fn` holding the host-wide lxcfs lock. */
export async function withLxcfsLock<T>(fn: () => Promise<T>): Promise<T> {
  const lock = await acquireFileLock(lxcfsLockFile());
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Whether the lxcfs mount answers. A killed lxcfs leaves its FUSE mount in
 * /proc/mounts, where every access fails with ENOTCONN; LXC's hook then
 * skips it silently and guests see the host's CPUs and memory.
 */
async function lxcfsAnswers(): Promise<boolean> {
  try {
    await access(join(LXCFS_MOUNT, "proc", "cpuinfo"));
    return true;
  } catch {
    return false;
  }
}

/** Starts lxcfs unless a live one is mounted already; a dead mount is cleared first (call under the lxcfs lock). */
export async function ensureLxcfs(ex: Executor, logFile: string): Promise<void> {
  if (isMounted(await readMounts(), LXCFS_MOUNT, "fuse.lxcfs")) {
    if (await lxcfsAnswers()) return;
    ex.log(`lxcfs at ${LXCFS_MOUNT} does not answer (its process died): mounting a new one`);
    await ex.run(umountCommand(LXCFS_MOUNT));
    await rm(lxcfsPidFile(), { force: true });
  }
  await mkdir(LXCFS_MOUNT, { recursive: true });
  const pid = ex.spawnDaemon(lxcfsArgv(lxcfsPidFile(), LXCFS_MOUNT), logFile);
  await waitFor("lxcfs to mount", async () => {
    if (!(await processMatches(pid, "lxcfs"))) throw new Error(`lxcfs exited at start (see ${logFile})`);
    return isMounted(await readMounts(), LXCFS_MOUNT, "fuse.lxcfs") && (await lxcfsAnswers());
  }, 20_000);
}

/** Stops the lxcfs a sandbox started, when no container is left on the host (call under the lxcfs lock). */
export async function stopSharedLxcfs(ex: Executor): Promise<void> {
  const pid = Number((await readFile(lxcfsPidFile(), "utf8").catch(() => "")).trim());
  if (!pid || !(await processMatches(pid, "lxcfs"))) return;
  const others = lxcMonitors(await listProcesses());
  if (others.length > 0) {
    ex.log(`leaving lxcfs running: ${others.length} other container(s) use it`);
    return;
  }
  await stopProcess(pid, "lxcfs");
  if (isMounted(await readMounts(), LXCFS_MOUNT, "fuse.lxcfs")) await ex.run(umountCommand(LXCFS_MOUNT));
  await rm(lxcfsPidFile(), { force: true });
}
