/**
 * Finding and removing what an lxc backend made on the host, whether it is
 * closing normally or a crashed one left it: guests, daemons, mounts, the
 * tagged iptables rules, the bridge. Also the host-wide lxcfs that every
 * sandbox shares.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  iptablesSaveCommand,
  linkDeleteCommand,
  linkListCommand,
  lxcfsArgv,
  lxcfsLockFile,
  lxcfsPidFile,
  lxcKillCommand,
  lxcLsCommand,
  removeTreeCommand,
  taggedRuleDeleteCommands,
  umountCommand,
  unmountUnderCommands,
} from "./commands.ts";
import type { Executor } from "./exec.ts";
import { isMounted, listProcesses, lxcMonitors, processesMentioning, processMatches, readMounts, stopProcess, waitFor } from "./host.ts";
import { acquireFileLock } from "./lock.ts";

/** What one backend owns: its state folder and its bridge. */
export interface BackendScope {
  ex: Executor;
  /** Absolute. */
  stateDir: string;
  bridge: string;
}

/** Where LXC containers live inside a state folder. */
export function lxcpathOf(stateDir: string): string {
  return join(stateDir, "lxc");
}

/** The daemons a backend starts with its state folder in their argv. */
export const OWN_DAEMONS: readonly string[] = ["docker-registry", "apt-cacher-ng"];

/** The folders of a state folder that close empties. */
export const STATE_SUBDIRS: readonly string[] = ["lxc", "run", "logs", "registry"];

/** The mount point LXC's lxcfs hook reads. */
export const LXCFS_MOUNT = "/var/lib/lxcfs";

/** Kills the scope's guests: those under its lxcpath and any named after its bridge elsewhere. */
export async function stopScopeContainers(s: BackendScope): Promise<void> {
  const lxcpath = lxcpathOf(s.stateDir);
  const monitors = lxcMonitors(await listProcesses()).filter((m) => m.lxcpath === lxcpath || m.name.startsWith(`${s.bridge}-`));
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
 * Stops the scope's daemons (registry, package cache), found by their argv
 * naming the state folder; other programs that happen to (a `tail -f` of a
 * log) are left alone.
 */
export async function stopScopeDaemons(s: BackendScope): Promise<void> {
  for (const p of processesMentioning(await listProcesses(), s.stateDir, new Set([process.pid]))) {
    const exe = (p.argv[0] ?? "").split("/").pop() ?? "";
    if (!OWN_DAEMONS.includes(exe)) continue;
    s.ex.log(`stopping leftover process ${p.pid}: ${p.argv.join(" ")}`);
    await stopProcess(p.pid, exe);
  }
}

/** Unmounts everything under the state folder and removes what the backend keeps there. */
export async function removeScopeFiles(s: BackendScope): Promise<void> {
  await s.ex.runAll(await unmountUnderCommands(s.stateDir));
  for (const sub of STATE_SUBDIRS) await s.ex.run(removeTreeCommand(join(s.stateDir, sub)));
  await rm(join(s.stateDir, "registry.yml"), { force: true });
}

/** Deletes the iptables rules tagged with the scope's bridge. */
export async function removeScopeRules(s: BackendScope): Promise<void> {
  const { stdout } = await s.ex.run(iptablesSaveCommand());
  for (const cmd of taggedRuleDeleteCommands(stdout, s.bridge)) await s.ex.run({ ...cmd, okCodes: [0, 1] });
}

/** Deletes the scope's bridge when it exists. */
export async function removeScopeBridge(s: BackendScope): Promise<void> {
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

/** Starts lxcfs unless it is mounted already (call under the lxcfs lock). */
export async function ensureLxcfs(ex: Executor, logFile: string): Promise<void> {
  if (isMounted(await readMounts(), LXCFS_MOUNT, "fuse.lxcfs")) return;
  await mkdir(LXCFS_MOUNT, { recursive: true });
  const pid = ex.spawnDaemon(lxcfsArgv(lxcfsPidFile(), LXCFS_MOUNT), logFile);
  await waitFor("lxcfs to mount", async () => {
    if (!(await processMatches(pid, "lxcfs"))) throw new Error(`lxcfs exited at start (see ${logFile})`);
    return isMounted(await readMounts(), LXCFS_MOUNT, "fuse.lxcfs");
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
