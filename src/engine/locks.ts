/**
 * Stack locks. The file backend locks a stack with a file
 * `.pulumi/locks/organization/homelab/<stack>/<uuid>.json` holding the pid and
 * host of the `pulumi` process; a crash (kill -9) leaves it behind. This
 * module finds those files, says whether their owner is alive, and removes
 * them for `homelab unlock` (never while the owner runs).
 */
import { hostname } from "node:os";
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { PROJECT } from "./stacks.ts";

/** A lock on a stack. */
export interface StackLock {
  /** The lock file (undefined when the lock was read from an error message). */
  file: string | undefined;
  pid: number | undefined;
  username: string | undefined;
  hostname: string | undefined;
  since: Date | undefined;
}

/** Whether a lock's owner is running: `alive`, `gone`, or `unknown` (another host). */
export type LockOwner = "alive" | "gone" | "unknown";

/** The folder holding a stack's lock files in a file backend. */
export function lockDir(backendDir: string, stack: string): string {
  return path.join(backendDir, ".pulumi", "locks", "organization", PROJECT, stack);
}

/** Reads the lock files of a stack; empty when none. */
export async function readLocks(backendDir: string, stack: string): Promise<StackLock[]> {
  const dir = lockDir(backendDir, stack);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out: StackLock[] = [];
  for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
    const file = path.join(dir, name);
    let data: Record<string, unknown> = {};
    try {
      data = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    } catch {
      // A half-written or foreign file is still a lock; its owner is unknown.
    }
    out.push({
      file,
      pid: typeof data["pid"] === "number" ? data["pid"] : undefined,
      username: typeof data["username"] === "string" ? data["username"] : undefined,
      hostname: typeof data["hostname"] === "string" ? data["hostname"] : undefined,
      since: typeof data["timestamp"] === "string" ? new Date(data["timestamp"]) : undefined,
    });
  }
  return out;
}

/** Whether a process runs on this machine. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether a lock's owner still runs; only decidable for locks taken on this host. */
export function lockOwner(lock: StackLock, thisHost: string = hostname(), alive: (pid: number) => boolean = processAlive): LockOwner {
  if (lock.pid === undefined || lock.hostname === undefined || lock.hostname !== thisHost) return "unknown";
  return alive(lock.pid) ? "alive" : "gone";
}

/** Removes a lock file and the metadata file the backend writes next to it. */
export async function removeLock(lock: StackLock): Promise<void> {
  if (lock.file === undefined) return;
  await rm(lock.file, { force: true });
  await rm(`${lock.file}.attrs`, { force: true });
}

/** Reads the lock owner out of Pulumi's "the stack is currently locked" error text. Pure. */
export function parseLockError(text: string): StackLock | undefined {
  if (!/currently locked|another update is currently in progress|Conflict/i.test(text)) return undefined;
  const m = /created by ([^@\s]+)@(\S+) \(pid (\d+)\) at (\S+)/.exec(text);
  if (!m) return { file: undefined, pid: undefined, username: undefined, hostname: undefined, since: undefined };
  const url = /(file:\/\/\S+?\.json)/.exec(text)?.[1];
  return { file: url?.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : undefined, username: m[1], hostname: m[2], pid: Number(m[3]), since: new Date(m[4] ?? "") };
}

/** One line about who holds a lock. Pure. */
export function describeLock(lock: StackLock, owner: LockOwner): string {
  const who = lock.pid !== undefined ? `pid ${lock.pid}${lock.hostname ? ` on ${lock.hostname}` : ""}${lock.username ? ` (${lock.username})` : ""}` : "an unknown process";
  const since = lock.since && !Number.isNaN(lock.since.getTime()) ? ` since ${lock.since.toISOString().replace(/\.\d+Z$/, "Z")}` : "";
  const state = owner === "alive" ? "still running" : owner === "gone" ? "no longer running" : "on another machine, or unknown";
  return `${who}${since}, ${state}`;
}
