/**
 * What the status page and `homelab status` remember of the monitor's
 * events, in fixed memory: per service, check results over the last 24 h in
 * 15-minute buckets (uptime and response time), and the last remediations
 * and state changes that matter. Fed by live events or by the history file;
 * nothing grows with time or with the number of checks.
 */
import type { MonitorEvent } from "../monitor/events.ts";
import type { Action, ActionOutcome, Phase } from "../monitor/state-machine.ts";
import { notifiable } from "../monitor/webhook.ts";

/** The window of the uptime chart. */
const WINDOW_MS = 24 * 3_600_000;
/** Buckets in the window (15 minutes each). */
export const BUCKETS = 96;
/** One bucket. */
export const BUCKET_MS = WINDOW_MS / BUCKETS;

/** One bucket of the chart. */
export interface UptimeBucket {
  /** Start of the bucket (ISO). */
  start: string;
  ok: number;
  total: number;
  /** Mean response time of the checks that passed; null when none did. */
  avgMs: number | null;
}

/** A service's uptime and response time over the window. */
export interface UptimeView {
  windowHours: number;
  bucketMinutes: number;
  checks: number;
  failed: number;
  /** Passed / run, 0..1; null before any check. */
  ratio: number | null;
  /** The oldest result the window holds (ISO): the figures cover this much. */
  since: string | null;
  /** Response time of the latest passing check. */
  lastMs: number | null;
  /** Mean response time of the passing checks in the window. */
  avgMs: number | null;
  /** Buckets with results, oldest first. */
  buckets: UptimeBucket[];
}

interface Ring {
  /** The bucket number (time / BUCKET_MS) each slot holds; -1: empty. */
  epoch: Float64Array;
  ok: Uint32Array;
  total: Uint32Array;
  /** Sum of the passing checks' response times. */
  okMs: Float64Array;
  firstAt: number;
  lastOkMs: number | null;
}

/** Uptime and response time per service, 96 buckets each. */
export class UptimeSeries {
  readonly #rings = new Map<string, Ring>();

  /** Counts one check result. Results older than the window are ignored. */
  record(service: string, at: number, ok: boolean, latencyMs: number): void {
    let r = this.#rings.get(service);
    if (!r) {
      r = { epoch: new Float64Array(BUCKETS).fill(-1), ok: new Uint32Array(BUCKETS), total: new Uint32Array(BUCKETS), okMs: new Float64Array(BUCKETS), firstAt: at, lastOkMs: null };
      this.#rings.set(service, r);
    }
    const epoch = Math.floor(at / BUCKET_MS);
    const slot = epoch % BUCKETS;
    const held = r.epoch[slot] ?? -1;
    // A slot holding an older bucket is reused; a result older than what the slot holds is out of the window.
    if (held > epoch) return;
    if (held < epoch) {
      r.epoch[slot] = epoch;
      r.ok[slot] = 0;
      r.total[slot] = 0;
      r.okMs[slot] = 0;
    }
    r.total[slot] = (r.total[slot] ?? 0) + 1;
    if (ok) {
      r.ok[slot] = (r.ok[slot] ?? 0) + 1;
      r.okMs[slot] = (r.okMs[slot] ?? 0) + latencyMs;
      r.lastOkMs = latencyMs;
    }
    if (at < r.firstAt) r.firstAt = at;
  }

  /** Counts the check events among `events`. */
  recordEvents(events: Iterable<MonitorEvent>): void {
    for (const e of events) if (e.type === "check") this.record(e.service, Date.parse(e.at), e.ok, e.latencyMs);
  }

  /** The window ending now; undefined when the service has no result in it. */
  view(service: string, now: number): UptimeView | undefined {
    const r = this.#rings.get(service);
    if (!r) return undefined;
    const newest = Math.floor(now / BUCKET_MS);
    const buckets: UptimeBucket[] = [];
    let checks = 0;
    let passed = 0;
    let okMs = 0;
    for (let epoch = newest - BUCKETS + 1; epoch <= newest; epoch++) {
      const slot = epoch % BUCKETS;
      if (r.epoch[slot] !== epoch) continue;
      const ok = r.ok[slot] ?? 0;
      const total = r.total[slot] ?? 0;
      const ms = r.okMs[slot] ?? 0;
      checks += total;
      passed += ok;
      okMs += ms;
      buckets.push({ start: new Date(epoch * BUCKET_MS).toISOString(), ok, total, avgMs: ok > 0 ? round(ms / ok) : null });
    }
    if (checks === 0) return undefined;
    const first = buckets[0];
    const since = Math.max(r.firstAt, first ? Date.parse(first.start) : r.firstAt);
    return {
      windowHours: WINDOW_MS / 3_600_000,
      bucketMinutes: BUCKET_MS / 60_000,
      checks,
      failed: checks - passed,
      ratio: passed / checks,
      since: new Date(since).toISOString(),
      lastMs: r.lastOkMs === null ? null : round(r.lastOkMs),
      avgMs: passed > 0 ? round(okMs / passed) : null,
      buckets,
    };
  }
}

function round(ms: number): number {
  return ms >= 10 ? Math.round(ms) : Math.round(ms * 10) / 10;
}

/** One remembered event: a remediation step, or a state change that matters. */
export type HistoryEntry =
  | { at: string; kind: "action"; action: Action; phase: "start" | ActionOutcome; detail: string }
  | { at: string; kind: "state"; from: Phase; to: Phase; reason: string };

/** The last `max` remediation steps and notable state changes per service. */
export class RecentHistory {
  readonly #max: number;
  readonly #entries = new Map<string, HistoryEntry[]>();

  constructor(max = 20) {
    this.#max = max;
  }

  /** Remembers the event if it is a remediation step or a notable state change. */
  record(e: MonitorEvent): boolean {
    let entry: HistoryEntry;
    if (e.type === "action") entry = { at: e.at, kind: "action", action: e.action, phase: e.phase, detail: e.detail };
    else if (e.type === "state" && notifiable(e)) entry = { at: e.at, kind: "state", from: e.from, to: e.to, reason: e.reason };
    else return false;
    let list = this.#entries.get(e.service);
    if (!list) {
      list = [];
      this.#entries.set(e.service, list);
    }
    list.push(entry);
    if (list.length > this.#max) list.splice(0, list.length - this.#max);
    return true;
  }

  /** Remembers every event of `events` that counts. */
  recordEvents(events: Iterable<MonitorEvent>): void {
    for (const e of events) this.record(e);
  }

  /** A service's entries, newest first. */
  list(service: string): HistoryEntry[] {
    return [...(this.#entries.get(service) ?? [])].reverse();
  }
}
