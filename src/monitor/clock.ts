/**
 * Time for the monitor, injectable: the system clock in production, a manual
 * clock in tests and benchmarks (an hour of checks in milliseconds, no
 * timed assertions).
 */

/** A cancellable timer. */
export interface TimerHandle {
  cancel(): void;
}

/** Wall-clock time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `f` after `ms` (never sooner). */
  setTimer(ms: number, f: () => void): TimerHandle;
}

/** The real clock; timers do not keep the process alive on their own (the monitor's server or loop does). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, f) {
    const t = setTimeout(f, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

interface Pending {
  at: number;
  seq: number;
  f: () => void;
  cancelled: boolean;
}

/** Lets promise continuations (and I/O callbacks already queued) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that moves only when told. `advance` fires due timers in time order
 * and lets the async work they start settle before moving on, so a test can
 * say "ten minutes pass" and count what happened.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Pending[] = [];

  constructor(start = Date.UTC(2025, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, f: () => void): TimerHandle {
    const p: Pending = { at: this.#now + Math.max(0, ms), seq: this.#seq++, f, cancelled: false };
    this.#timers.push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Runs every timer due within `ms`, in order, settling async work after each; then sets the time to now + ms. */
  async advance(ms: number, settleRounds = 3): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await this.#settle(settleRounds);
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      let next: Pending | undefined;
      for (const t of this.#timers) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = Math.max(this.#now, next.at);
      next.f();
    }
    this.#now = end;
    await this.#settle(settleRounds);
  }

  async #settle(rounds: number): Promise<void> {
    for (let i = 0; i < rounds; i++) await settle();
  }
}
