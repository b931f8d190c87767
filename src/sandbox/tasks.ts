/**
 * Proxmox worker tasks: a UPID per task, `running` then `stopped` with an
 * `exitstatus` (`OK`, `WARNINGS: N` or the error text), and a log that ends
 * in `TASK OK` / `TASK ERROR: ...`. Tasks take time on purpose so clients
 * must poll, as they must against a real cluster.
 */
import type { Faults } from "./faults.ts";

/** One task, as `GET /nodes/{node}/tasks/{upid}/status` reports it. */
export interface TaskRecord {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
  status: "running" | "stopped";
  exitstatus?: string;
  endtime?: number;
  log: string[];
}

/** What a task's work can do besides succeed or throw. */
export interface TaskContext {
  log(line: string): void;
  /** Logs a warning; the task then ends `WARNINGS: N`. */
  warn(line: string): void;
  /** Waits, unless the sandbox is closing. */
  sleep(ms: number): Promise<void>;
}

/** The body of a task and its clean-up on failure. */
export interface TaskWork {
  /** Runs before the task's duration elapses (e.g. taking a lock, as a worker does first). */
  before?(ctx: TaskContext): Promise<void>;
  run(ctx: TaskContext): Promise<void>;
  /** Called when the task fails (injected failure included), before it is marked stopped. */
  onError?(error: Error): Promise<void> | void;
  /** Called when the task has ended either way (after `onError`). */
  finally?(): void;
  /** Put before the error text, as Proxmox's create does (`unable to create CT 100 -`). */
  errorPrefix?: string;
}

/** Formats a UPID the way Proxmox does (upper-case hex, trailing colon). */
export function formatUpid(t: { node: string; pid: number; pstart: number; starttime: number; type: string; id: string; user: string }): string {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(8, "0");
  return `UPID:${t.node}:${hex(t.pid)}:${hex(t.pstart)}:${hex(t.starttime)}:${t.type}:${t.id}:${t.user}:`;
}

const UPID = /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$/;

/** Splits a UPID into its parts, or undefined when it is not one. */
export function parseUpid(upid: string): { node: string; pid: number; pstart: number; starttime: number; type: string; id: string; user: string } | undefined {
  const m = UPID.exec(upid);
  if (!m) return undefined;
  return {
    node: m[1] ?? "",
    pid: parseInt(m[3] ?? "0", 16),
    pstart: parseInt(m[4] ?? "0", 16),
    starttime: parseInt(m[5] ?? "0", 16),
    type: m[6] ?? "",
    id: m[7] ?? "",
    user: m[8] ?? "",
  };
}

/** Raised inside a task when the sandbox closes under it. */
class Interrupted extends Error {}

/** All tasks of a sandbox. */
export class Tasks {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly stopOrder: string[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private nextPid = 1000 + Math.floor(Math.random() * 30000);
  private readonly clock: () => number;
  private readonly faults: Faults;
  private readonly bootTime: number;
  /** How long every task takes at least (ms). */
  durationMs: number;

  constructor(options: { clock: () => number; durationMs: number; faults: Faults }) {
    this.clock = options.clock;
    this.durationMs = options.durationMs;
    this.faults = options.faults;
    this.bootTime = options.clock();
  }

  /** Starts a task and returns its UPID at once, as Proxmox's fork_worker does. */
  start(node: string, type: string, id: string, user: string, work: TaskWork): string {
    const now = this.clock();
    const record: TaskRecord = {
      node,
      pid: this.nextPid++,
      // Proxmox's pstart is the process start in clock ticks since boot.
      pstart: Math.floor((now - this.bootTime) / 10) + 1000,
      starttime: Math.floor(now / 1000),
      type,
      id,
      user,
      upid: "",
      status: "running",
      log: [],
    };
    record.upid = formatUpid(record);
    this.tasks.set(record.upid, record);
    const fault = this.faults.forTask(type);
    const done = this.run(record, work, fault).finally(() => this.running.delete(record.upid));
    this.running.set(record.upid, done);
    return record.upid;
  }

  /** A task by UPID. */
  get(upid: string): TaskRecord | undefined {
    return this.tasks.get(upid);
  }

  /** The running tasks, oldest first. */
  active(): TaskRecord[] {
    return [...this.tasks.values()].filter((t) => t.status === "running");
  }

  /** The stopped tasks, the last to stop first (the order of Proxmox's task archive). */
  finished(): TaskRecord[] {
    return this.stopOrder.map((upid) => this.tasks.get(upid)).filter((t): t is TaskRecord => t !== undefined).reverse();
  }

  /** Resolves when the task has stopped (at once for unknown or stopped tasks). */
  async settled(upid: string): Promise<void> {
    await this.running.get(upid);
  }

  /** Interrupts running tasks and waits for them to stop. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.running.values()]);
  }

  private async run(record: TaskRecord, work: TaskWork, fault: { extraMs: number; fail: boolean }): Promise<void> {
    let warnings = 0;
    const ctx: TaskContext = {
      log: (line) => record.log.push(line),
      warn: (line) => {
        warnings++;
        record.log.push(`WARN: ${line}`);
      },
      sleep: (ms) => this.sleep(ms),
    };
    let error: Error | undefined;
    try {
      await work.before?.(ctx);
      await ctx.sleep(this.durationMs + fault.extraMs);
      if (fault.fail) throw new Error("sandbox: injected task failure");
      await work.run(ctx);
    } catch (e) {
      error = e instanceof Interrupted ? new Error("interrupted by signal") : e instanceof Error ? e : new Error(String(e));
      try {
        await work.onError?.(error);
      } catch (cleanup) {
        record.log.push(`clean-up failed: ${cleanup instanceof Error ? cleanup.message : String(cleanup)}`);
      }
    }
    work.finally?.();
    if (error) {
      const text = error.message.replace(/\n+$/, "");
      const message = work.errorPrefix !== undefined ? `${work.errorPrefix} ${text}` : text;
      record.log.push(`TASK ERROR: ${message}`);
      record.exitstatus = message;
    } else if (warnings > 0) {
      record.log.push(`TASK WARNINGS: ${warnings}`);
      record.exitstatus = `WARNINGS: ${warnings}`;
    } else {
      record.log.push("TASK OK");
      record.exitstatus = "OK";
    }
    record.endtime = Math.floor(this.clock() / 1000);
    record.status = "stopped";
    this.stopOrder.push(record.upid);
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.reject(new Interrupted());
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new Interrupted());
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
