/**
 * Stack locks: who holds one, and whether that run is still alive. A
 * self-managed backend's lock objects (a crash leaves them behind) are read
 * and removed in pulumi-internals.ts; `homelab unlock` never removes one whose
 * owner runs.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/** A lock on a stack. */
export interface StackLock {
  /** The lock's key in the backend's store (undefined when the lock was read from an error message). */
  key: string | undefined;
  /** Where it is, for messages: a file's path, or the object in a database or bucket. */
  location: string | undefined;
  pid: number | undefined;
  username: string | undefined;
  hostname: string | undefined;
  since: Date | undefined;
}

/** Whether a lock's owner is running: `alive`, `gone`, or `unknown` (another host). */
export type LockOwner = "alive" | "gone" | "unknown";

/** Whether a process runs on this machine (an ended one not yet reaped, a zombie, does not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * Whether a process has ended but was not reaped. A `pulumi` whose homelab
 * was killed is reparented to PID 1, and where PID 1 does not reap (a
 * container without an init, some VM agents) it stays a zombie, which signal
 * 0 still reaches: its lock would look held for ever. Linux only (`/proc`);
 * elsewhere, or when the process is gone by now, false.
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // `pid (comm) state ...`; comm may itself hold parentheses.
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
}

/** Whether a lock's owner still runs; only decidable for locks taken on this host. */
export function lockOwner(lock: StackLock, thisHost: string = hostname(), alive: (pid: number) => boolean = processAlive): LockOwner {
  if (lock.pid === undefined || lock.hostname === undefined || lock.hostname !== thisHost) return "unknown";
  return alive(lock.pid) ? "alive" : "gone";
}

/** One line about who holds a lock. Pure. */
export function describeLock(lock: StackLock, owner: LockOwner): string {
  const who = lock.pid !== undefined ? `pid ${lock.pid}${lock.hostname ? ` on ${lock.hostname}` : ""}${lock.username ? ` (${lock.username})` : ""}` : "an unknown process";
  const since = lock.since && !Number.isNaN(lock.since.getTime()) ? ` since ${lock.since.toISOString().replace(/\.\d+Z$/, "Z")}` : "";
  const state = owner === "alive" ? "still running" : owner === "gone" ? "no longer running" : "on another machine, or unknown";
  return `${who}${since}, ${state}`;
}
