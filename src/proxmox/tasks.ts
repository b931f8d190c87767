/**
 * Proxmox tasks (UPIDs): parsing, status, logs, and the one place where the
 * client waits for a long operation to finish.
 */
import { z } from "zod";
import { ProxmoxTaskTimeoutError, ProxmoxValidationError, classifyTaskFailure } from "./errors.ts";
import type { ApiErrorContext } from "./errors.ts";
import { apiPath } from "./http.ts";
import type { ProxmoxHttp } from "./http.ts";

/** The parts of a UPID (`UPID:node:pid:pstart:starttime:type:id:user:`). */
export interface Upid {
  node: string;
  pid: number;
  pstart: number;
  /** Seconds since the epoch. */
  starttime: number;
  /** Task type: `vzcreate`, `vzstart`, `vzdestroy`, `download`, ... */
  type: string;
  /** Usually the vmid; may be empty. */
  id: string;
  user: string;
}

const UPID = /^UPID:([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$/;

/** Parses a UPID; throws when the string is not one. Pure. */
export function parseUpid(upid: string): Upid {
  const m = UPID.exec(upid);
  if (!m) throw new ProxmoxValidationError("upid", `not a Proxmox task id: ${JSON.stringify(upid)}`, "task ids look like UPID:node:pid:pstart:starttime:type:id:user:");
  return {
    node: m[1]!,
    pid: parseInt(m[2]!, 16),
    pstart: parseInt(m[3]!, 16),
    starttime: parseInt(m[4]!, 16),
    type: m[5]!,
    id: m[6]!,
    user: m[7]!,
  };
}

const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, "0");

/** Formats UPID parts back into the string Proxmox uses. Pure. */
export function formatUpid(upid: Upid): string {
  return `UPID:${upid.node}:${hex8(upid.pid)}:${hex8(upid.pstart)}:${hex8(upid.starttime)}:${upid.type}:${upid.id}:${upid.user}:`;
}

/** Whether an `exitstatus` is success, and how many warnings it reports. Pure. */
export function taskOutcome(exitstatus: string | undefined): { ok: boolean; warnings: number } {
  if (exitstatus === "OK") return { ok: true, warnings: 0 };
  const warnings = /^WARNINGS: (\d+)$/.exec(exitstatus ?? "");
  if (warnings) return { ok: true, warnings: Number(warnings[1]) };
  return { ok: false, warnings: 0 };
}

/** The delay before poll number `n` (0-based): grows by `factor` up to `maxMs`. Pure. */
export function pollDelay(n: number, initialMs: number, factor: number, maxMs: number): number {
  return Math.min(maxMs, Math.round(initialMs * factor ** n));
}

const taskStatusSchema = z.object({
  upid: z.string(),
  node: z.string(),
  status: z.enum(["running", "stopped"]),
  exitstatus: z.string().optional(),
  type: z.string(),
  id: z.string().optional(),
  user: z.string(),
  starttime: z.coerce.number(),
  pid: z.coerce.number().optional(),
});

/** `GET /nodes/{node}/tasks/{upid}/status`. */
export type TaskStatus = z.output<typeof taskStatusSchema>;

const taskLogSchema = z.array(z.object({ n: z.coerce.number(), t: z.string() }));

/** One task log line. */
export interface TaskLogLine {
  n: number;
  t: string;
}

/** A task that finished successfully. */
export interface TaskResult {
  upid: string;
  node: string;
  type: string;
  id: string;
  exitstatus: string;
  /** From `WARNINGS: N`; 0 for `OK`. */
  warnings: number;
}

/** How to wait for a task. */
export interface WaitOptions {
  /** Overall limit; default 10 minutes. */
  timeoutMs?: number;
  /** First poll delay; default 250 ms. */
  initialDelayMs?: number;
  /** Longest delay between polls; default 2 s. */
  maxDelayMs?: number;
  /** Growth of the delay per poll; default 1.5. */
  factor?: number;
  /** Log lines attached to a failure; default 20. */
  logTailLines?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Task status, logs and waiting. */
export class TasksApi {
  private readonly http: ProxmoxHttp;

  constructor(http: ProxmoxHttp) {
    this.http = http;
  }

  /** Current status of a task (on the node named in its UPID). */
  async status(upid: string): Promise<TaskStatus> {
    const { node } = parseUpid(upid);
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/tasks/${upid}/status` }, taskStatusSchema);
  }

  /** A page of the task log. */
  async log(upid: string, page: { start?: number; limit?: number } = {}): Promise<{ lines: TaskLogLine[]; total: number | undefined }> {
    const { node } = parseUpid(upid);
    const request = { method: "GET" as const, path: apiPath`/nodes/${node}/tasks/${upid}/log`, params: { start: page.start, limit: page.limit } };
    const envelope = await this.http.send(request);
    const lines = taskLogSchema.parse(envelope.data);
    return { lines, total: envelope.total };
  }

  /** The last `count` lines of the task log (two requests at most). */
  async logTail(upid: string, count: number): Promise<string[]> {
    const first = await this.log(upid, { start: 0, limit: Math.max(count, 50) });
    let lines = first.lines;
    if (first.total !== undefined && first.total > lines.length) {
      lines = (await this.log(upid, { start: Math.max(0, first.total - count), limit: count })).lines;
    }
    return lines.slice(-count).map((line) => line.t);
  }

  /**
   * Waits until the task stops. A failure is thrown as `classifyTaskFailure` types it (with the
   * log tail): the same typed error as the API's answer where one fits, else ProxmoxTaskError.
   * `origin` is the request that started the task, named in those errors.
   */
  async wait(upid: string, options: WaitOptions = {}, origin?: ApiErrorContext): Promise<TaskResult> {
    const parsed = parseUpid(upid);
    const timeoutMs = options.timeoutMs ?? 10 * 60 * 1000;
    const initial = options.initialDelayMs ?? 250;
    const max = options.maxDelayMs ?? 2000;
    const factor = options.factor ?? 1.5;
    const tailLines = options.logTailLines ?? 20;
    const deadline = performance.now() + timeoutMs;
    const what = parsed.id ? `${parsed.type} ${parsed.id}` : parsed.type;
    for (let n = 0; ; n += 1) {
      const status = await this.status(upid);
      if (status.status === "stopped") {
        const outcome = taskOutcome(status.exitstatus);
        if (outcome.ok) {
          return { upid, node: parsed.node, type: parsed.type, id: parsed.id, exitstatus: status.exitstatus ?? "OK", warnings: outcome.warnings };
        }
        const logTail = await this.safeTail(upid, tailLines);
        throw classifyTaskFailure({ upid, node: parsed.node, type: parsed.type, id: parsed.id, exitstatus: status.exitstatus, logTail }, origin);
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        const logTail = await this.safeTail(upid, tailLines);
        throw new ProxmoxTaskTimeoutError({
          upid,
          node: parsed.node,
          exitstatus: undefined,
          logTail,
          message: `task ${what} on ${parsed.node} still running after ${Math.round(timeoutMs / 1000)} s`,
          hint: `it may still finish: watch it on node ${parsed.node} (Tasks panel), or stop it there before retrying`,
        });
      }
      await sleep(Math.min(remaining, pollDelay(n, initial, factor, max)));
    }
  }

  // A failed log read must not hide the task's own failure.
  private async safeTail(upid: string, count: number): Promise<string[]> {
    try {
      return await this.logTail(upid, count);
    } catch (error) {
      return [`(task log unavailable: ${(error as Error).message})`];
    }
  }
}
