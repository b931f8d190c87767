/**
 * Runs jobs (one per health check) at their intervals on an injected clock:
 * first runs spread by jitter so checks do not arrive in bursts, at most
 * `concurrency` at once (the others queue), a job never overlapping itself,
 * and a job's next run movable (`runAt`, e.g. at the end of a grace period).
 */
import type { Clock, TimerHandle } from "./clock.ts";

/** Something run periodically. */
export interface Job {
  key: string;
  intervalMs: number;
  run(signal: AbortSignal): Promise<void>;
}

/** Options of the scheduler. */
export interface SchedulerOptions {
  clock: Clock;
  /** Jobs running at once (default 16). */
  concurrency?: number;
  /** Random numbers in [0, 1) for jitter (default Math.random). */
  random?: () => number;
  /** Largest delay of a first run (default 10 s, never more than the job's interval). */
  maxJitterMs?: number;
  /** Told about a job that threw (jobs should not). */
  onError?: (key: string, e: unknown) => void;
}

interface Slot {
  job: Job;
  due: number;
  timer: TimerHandle | undefined;
  running: boolean;
  queued: boolean;
  /** A `runAt` that came while it was running. */
  override: number | undefined;
}

/** Counters, for tests and the benchmark. */
export interface SchedulerStats {
  started: number;
  completed: number;
  maxActive: number;
}

/** The periodic runner. */
export class Scheduler {
  readonly #clock: Clock;
  readonly #concurrency: number;
  readonly #random: () => number;
  readonly #maxJitterMs: number;
  readonly #onError: (key: string, e: unknown) => void;
  readonly #slots = new Map<string, Slot>();
  readonly #queue: Slot[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #active = 0;
  #stopped = false;
  readonly stats: SchedulerStats = { started: 0, completed: 0, maxActive: 0 };

  constructor(o: SchedulerOptions) {
    this.#clock = o.clock;
    this.#concurrency = Math.max(1, o.concurrency ?? 16);
    this.#random = o.random ?? Math.random;
    this.#maxJitterMs = o.maxJitterMs ?? 10_000;
    this.#onError = o.onError ?? (() => undefined);
  }

  /** Adds a job; its first run comes after a jitter below min(interval, maxJitter). */
  add(job: Job): void {
    if (this.#slots.has(job.key)) throw new Error(`job ${job.key} is scheduled already`);
    const jitter = Math.floor(this.#random() * Math.min(job.intervalMs, this.#maxJitterMs));
    const slot: Slot = { job, due: this.#clock.now() + jitter, timer: undefined, running: false, queued: false, override: undefined };
    this.#slots.set(job.key, slot);
    this.#arm(slot);
  }

  /** Moves a job's next run to `at` (after its current run, if it is running). */
  runAt(key: string, at: number): void {
    const slot = this.#slots.get(key);
    if (!slot || this.#stopped) return;
    if (slot.running || slot.queued) {
      slot.override = at;
      return;
    }
    slot.due = at;
    this.#arm(slot);
  }

  /** When a job runs next (tests). */
  nextRun(key: string): number | undefined {
    return this.#slots.get(key)?.due;
  }

  #arm(slot: Slot): void {
    slot.timer?.cancel();
    if (this.#stopped) return;
    slot.timer = this.#clock.setTimer(slot.due - this.#clock.now(), () => {
      slot.timer = undefined;
      this.#enqueue(slot);
    });
  }

  #enqueue(slot: Slot): void {
    if (this.#stopped || slot.running || slot.queued) return;
    slot.queued = true;
    this.#queue.push(slot);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#active < this.#concurrency) {
      const slot = this.#queue.shift();
      if (!slot) return;
      slot.queued = false;
      this.#start(slot);
    }
  }

  #start(slot: Slot): void {
    slot.running = true;
    this.#active++;
    this.stats.started++;
    this.stats.maxActive = Math.max(this.stats.maxActive, this.#active);
    const p = (async () => {
      try {
        await slot.job.run(this.#abort.signal);
      } catch (e) {
        this.#onError(slot.job.key, e);
      }
    })().finally(() => {
      this.#running.delete(p);
      slot.running = false;
      this.#active--;
      this.stats.completed++;
      const now = this.#clock.now();
      if (slot.override !== undefined) {
        slot.due = slot.override;
        slot.override = undefined;
      } else {
        // Keep the rhythm; a run that took longer than the interval is followed at once.
        slot.due = Math.max(slot.due + slot.job.intervalMs, now);
      }
      this.#arm(slot);
      this.#pump();
    });
    this.#running.add(p);
  }

  /** Stops: no new runs, running ones are told to abort; resolves when they ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of this.#slots.values()) s.timer?.cancel();
    this.#queue.length = 0;
    this.#abort.abort(new Error("the monitor is stopping"));
    await Promise.all([...this.#running]);
  }
}

/** Runs `f` over `items`, at most `limit` at once; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, f: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await f(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}
