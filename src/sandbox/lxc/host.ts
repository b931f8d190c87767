/**
 * Reading the host's state (/proc, sockets) for the lxc backend: which
 * processes run, what is mounted, whether a port answers. Parsing is pure and
 * exported for tests; the readers are thin.
 */
import { constants } from "node:fs";
import { access, readdir, readFile } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";

/** A process and its argv. */
export interface ProcessInfo {
  pid: number;
  argv: string[];
}

/** Every process on the host with its argv (kernel threads, which have none, are left out). */
export async function listProcesses(): Promise<ProcessInfo[]> {
  const out: ProcessInfo[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const raw = await readFile(`/proc/${entry}/cmdline`, "utf8");
      if (!raw) continue;
      out.push({ pid: Number(entry), argv: raw.replace(/\0$/, "").split("\0") });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** An LXC monitor process, as its argv names it: `[lxc monitor] LXCPATH NAME`. */
export interface LxcMonitor {
  pid: number;
  lxcpath: string;
  name: string;
}

/** Finds LXC monitor processes (one per running container) in a process list. */
export function lxcMonitors(procs: readonly ProcessInfo[]): LxcMonitor[] {
  const out: LxcMonitor[] = [];
  for (const p of procs) {
    const line = p.argv.join(" ").trim();
    const m = /^\[lxc monitor\] (\S+) (\S+)$/.exec(line);
    if (m?.[1] && m[2]) out.push({ pid: p.pid, lxcpath: m[1], name: m[2] });
  }
  return out;
}

/** Processes whose argv mentions `needle` (e.g. the state folder), leaving out `exceptPids`. */
export function processesMentioning(procs: readonly ProcessInfo[], needle: string, exceptPids: ReadonlySet<number> = new Set()): ProcessInfo[] {
  return procs.filter((p) => !exceptPids.has(p.pid) && p.argv.some((a) => a.includes(needle)));
}

/** Whether process `pid` is alive and its argv[0] ends with `exe` (guards against a reused pid). */
export async function processMatches(pid: number, exe: string): Promise<boolean> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    const argv0 = raw.split("\0")[0] ?? "";
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // A zombie still has /proc entries but is gone for our purposes.
    if (/\) Z /.test(stat)) return false;
    return argv0 === exe || argv0.endsWith(`/${exe}`);
  } catch {
    return false;
  }
}

/** Stops a process: SIGTERM, then SIGKILL after `graceMs`; waits until it is gone. */
export async function stopProcess(pid: number, exe: string, graceMs = 5000): Promise<void> {
  if (!(await processMatches(pid, exe))) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await processMatches(pid, exe))) return;
    await sleep(50);
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  const killDeadline = Date.now() + 5000;
  while (Date.now() < killDeadline && (await processMatches(pid, exe))) await sleep(50);
}

/** Whether a mount of file system type `fstype` is at `target` in a /proc/mounts text. */
export function isMounted(procMounts: string, target: string, fstype?: string): boolean {
  return procMounts.split("\n").some((line) => {
    const f = line.split(" ");
    return f[1] === target && (fstype === undefined || f[2] === fstype);
  });
}

/** The host's /proc/mounts. */
export function readMounts(): Promise<string> {
  return readFile("/proc/mounts", "utf8");
}

/** Whether something accepts TCP connections at host:port. */
export function tcpAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/** Whether a Docker Engine answers `GET /_ping` with `OK` on the unix socket `socketPath`. */
export function dockerAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 && body === "OK"));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Polls `check` until it is true or `timeoutMs` passes; throws `what` on timeout. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Seconds a process has run, from its /proc/PID/stat line and /proc/uptime (clock ticks at `hz`). */
export function processUptime(statLine: string, procUptime: string, hz = 100): number {
  // Field 22 (starttime) counts from after the `(comm)` field, which may hold spaces.
  const afterComm = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
  const startTicks = Number(afterComm[19]);
  const up = Number(procUptime.split(" ")[0]);
  if (!Number.isFinite(startTicks) || !Number.isFinite(up)) return 0;
  return Math.max(0, Math.floor(up - startTicks / hz));
}

/** The memory cgroup (v1) path of a process from its /proc/PID/cgroup text. */
export function memoryCgroupPath(procCgroup: string): string | undefined {
  for (const line of procCgroup.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (controllers?.split(",").includes("memory") && path !== undefined) return path;
  }
  return undefined;
}

/** Whether an executable `program` is on PATH. */
export async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      await access(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}
