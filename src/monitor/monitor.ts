/**
 * The monitor: a scheduler runs each check at its interval, results go
 * through each service's state machine, and the machine's effects (a restart
 * or a recreate) are carried out by the remediator, one at a time per
 * service. Everything with an effect is injected (clock, targets, the check
 * function, the remediator, the event sink), so the whole loop runs in tests
 * on a manual clock.
 */
import type { CheckResult, CheckTarget } from "./checks.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import type { MonitoredCheck, MonitoredService } from "./config.ts";
import type { EventSink, MonitorEvent } from "./events.ts";
import { DeployInProgressError } from "./actions.ts";
import type { Remediator } from "./actions.ts";
import { mapLimit, Scheduler } from "./scheduler.ts";
import { initialState, step, wakeAt } from "./state-machine.ts";
import type { Action, ActionOutcome, Input, Phase, RemediationRecord, ServiceState } from "./state-machine.ts";
import { checkTarget } from "./targets.ts";
import type { TargetSource } from "./targets.ts";

/** Runs one check against its target. */
export type CheckFn = (check: MonitoredCheck, target: CheckTarget, signal: AbortSignal) => Promise<CheckResult>;

/** What the monitor needs. */
export interface MonitorOptions {
  services: readonly MonitoredService[];
  clock: Clock;
  targets: TargetSource;
  runCheck: CheckFn;
  remediator: Remediator;
  sink: EventSink;
  /** Checks at once (default 16). */
  concurrency?: number;
  random?: () => number;
  maxJitterMs?: number;
}

/** The last result of one check. */
export interface CheckSnapshot {
  label: string;
  ok: boolean | undefined;
  detail: string;
  at: string | undefined;
}

/** One service's current health, for /healthz, the state file and `homelab status`. */
export interface ServiceSnapshot {
  service: string;
  phase: Phase;
  reason: string;
  since: string;
  lastRemediation: (Omit<RemediationRecord, "at"> & { at: string }) | undefined;
  remediationsLastHour: number;
  checks: CheckSnapshot[];
}

/** The outcome of `--once`. */
export interface OnceReport {
  healthy: boolean;
  services: ServiceSnapshot[];
}

interface Watched {
  svc: MonitoredService;
  state: ServiceState;
  last: CheckSnapshot[];
  wake: TimerHandle | undefined;
  action: Promise<void> | undefined;
  /** A recreate of this incident began: the stack may be gone because of us, so "not deployed" is a failure to repair, not a choice to respect. */
  recreating: boolean;
}

/** The monitoring loop over a set of services. */
export class Monitor {
  readonly #o: MonitorOptions;
  readonly #watched = new Map<string, Watched>();
  readonly #scheduler: Scheduler;
  readonly #abort = new AbortController();
  #stopped = false;

  constructor(o: MonitorOptions) {
    this.#o = o;
    this.#scheduler = new Scheduler({
      clock: o.clock,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.random ? { random: o.random } : {}),
      ...(o.maxJitterMs !== undefined ? { maxJitterMs: o.maxJitterMs } : {}),
      onError: (key, e) => this.#note("warning", `check ${key} crashed: ${e instanceof Error ? e.message : String(e)}`),
    });
    const now = o.clock.now();
    for (const svc of o.services) {
      this.#watched.set(svc.name, {
        svc,
        state: initialState(svc.checks.length, now),
        last: svc.checks.map((c) => ({ label: c.label, ok: undefined, detail: "not run yet", at: undefined })),
        wake: undefined,
        action: undefined,
        recreating: false,
      });
    }
  }

  /** Scheduler counters (benchmarks). */
  get stats(): Scheduler["stats"] {
    return this.#scheduler.stats;
  }

  #iso(ms: number): string {
    return new Date(ms).toISOString();
  }

  #emit(e: MonitorEvent): void {
    this.#o.sink(e);
  }

  #note(level: "info" | "warning", message: string): void {
    this.#emit({ type: "monitor", at: this.#iso(this.#o.clock.now()), level, message });
  }

  /** Starts the periodic checks. */
  start(): void {
    this.#note("info", `watching ${this.#watched.size} service(s), ${[...this.#watched.values()].reduce((n, w) => n + w.svc.checks.length, 0)} check(s)`);
    for (const w of this.#watched.values()) {
      for (const c of w.svc.checks) {
        this.#scheduler.add({ key: c.key, intervalMs: c.check.interval * 1000, run: async (signal) => void (await this.#runCheck(w, c, signal)) });
      }
    }
  }

  /** Stops checks and timers; a remediation in progress is told to abort and waited for, and its end reported. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const w of this.#watched.values()) w.wake?.cancel();
    this.#abort.abort(new Error("the monitor is stopping"));
    await this.#scheduler.stop();
    for (const w of this.#watched.values()) if (w.action) await w.action;
  }

  /** Runs one check once and feeds its result to the machine; false when it could not run (not deployed, stopped, a remediation running). */
  async #runCheck(w: Watched, c: MonitoredCheck, signal: AbortSignal): Promise<boolean> {
    // Single flight: no checks while the service is being repaired; its outcome decides.
    if (w.state.inFlight !== undefined || this.#stopped) return false;
    let result: CheckResult;
    // Whether the result says something about the service (not about the monitor's view of the deployment).
    let counts: boolean;
    let deployed = true;
    try {
      const target = await this.#o.targets.get(w.svc.name);
      deployed = target.deployed;
      counts = deployed || w.recreating;
      result = deployed
        ? await this.#o.runCheck(c, checkTarget(target, c.check.resource), signal)
        : { ok: false, latencyMs: 0, detail: `not deployed (no container in the stack of ${w.svc.name})` };
    } catch (e) {
      // An unreadable state (a deploy writing it, a backend hiccup) is no reason to repair the service.
      counts = false;
      result = { ok: false, latencyMs: 0, detail: `cannot read where ${w.svc.name} is deployed: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (signal.aborted || this.#stopped) return false;
    const at = this.#iso(this.#o.clock.now());
    w.last[c.index] = { label: c.label, ok: result.ok, detail: result.detail, at };
    this.#emit({ type: "check", at, service: w.svc.name, check: c.label, index: c.index, ok: result.ok, latencyMs: result.latencyMs, detail: result.detail });
    // A service that is not deployed is reported, never repaired: the monitor does not deploy what nobody deployed.
    if (counts) this.#apply(w, { kind: "check", index: c.index, ok: result.ok, detail: result.detail });
    return deployed && counts;
  }

  #apply(w: Watched, input: Input): void {
    const now = this.#o.clock.now();
    const r = step(w.state, input, now, w.svc.policy);
    const wasGrace = w.state.phase === "grace";
    w.state = r.state;
    const at = this.#iso(now);
    for (const e of r.events) {
      if (e.kind === "state") this.#emit({ type: "state", at, service: w.svc.name, from: e.from, to: e.to, reason: e.reason });
      else this.#emit({ type: "action", at, service: w.svc.name, action: e.action, phase: e.phase, detail: e.detail });
    }
    if (w.state.phase === "healthy") w.recreating = false;
    // Stopping: a remedy's end is still told (history, state file), and nothing new starts.
    if (this.#stopped) return;
    for (const eff of r.effects) this.#execute(w, eff.action);
    if (w.state.phase === "grace" && !wasGrace && w.state.until !== undefined) {
      // Judge with fresh results right when grace ends.
      for (const c of w.svc.checks) this.#scheduler.runAt(c.key, w.state.until);
    }
    this.#armWake(w);
  }

  #armWake(w: Watched): void {
    w.wake?.cancel();
    w.wake = undefined;
    const at = wakeAt(w.state);
    if (at === undefined || w.state.phase === "grace" || this.#stopped) return;
    w.wake = this.#o.clock.setTimer(at - this.#o.clock.now(), () => {
      w.wake = undefined;
      if (!this.#stopped) this.#apply(w, { kind: "tick" });
    });
  }

  #execute(w: Watched, action: Action): void {
    if (w.action) return;
    const service = w.svc.name;
    const run = async (): Promise<{ outcome: ActionOutcome; detail: string }> => {
      try {
        const d = await this.#o.remediator.isDeploying(service);
        if (d.deploying) return { outcome: "deferred", detail: d.detail };
        const target = await this.#o.targets.get(service);
        if (!target.deployed && !w.recreating) return { outcome: "deferred", detail: `${service} is not deployed (destroyed on purpose?); the monitor never deploys it` };
        if (action === "recreate") w.recreating = true;
        const detail = action === "restart" ? await this.#o.remediator.restart(service, this.#abort.signal) : await this.#o.remediator.recreate(service, this.#abort.signal);
        return { outcome: "ok", detail };
      } catch (e) {
        return { outcome: e instanceof DeployInProgressError ? "deferred" : "failed", detail: failureDetail(e) };
      }
    };
    w.action = run().then((r) => {
      w.action = undefined;
      // Also while stopping (stop waits for this): how the remedy ended belongs in the history.
      this.#apply(w, { kind: "action_done", action, outcome: r.outcome, detail: r.detail, stopping: this.#stopped });
    });
  }

  /** Each service's current health. */
  snapshot(): ServiceSnapshot[] {
    return [...this.#watched.values()].map((w) => ({
      service: w.svc.name,
      phase: w.state.phase,
      reason: w.state.reason,
      since: this.#iso(w.state.since),
      lastRemediation: w.state.lastRemediation ? { ...w.state.lastRemediation, at: this.#iso(w.state.lastRemediation.at) } : undefined,
      remediationsLastHour: w.state.window.filter((t) => t > this.#o.clock.now() - 3_600_000).length,
      checks: w.last.map((c) => ({ ...c })),
    }));
  }

  /**
   * `--once`: every check once (a failing one is tried again, up to its
   * `retries`, `retryDelayMs` apart, as the loop would before calling it
   * unhealthy); nothing is repaired. Healthy when every service is.
   */
  async once(o: { retryDelayMs?: number } = {}): Promise<OnceReport> {
    const delay = o.retryDelayMs ?? 1000;
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => this.#o.clock.setTimer(ms, resolve));
    const jobs = [...this.#watched.values()].flatMap((w) => w.svc.checks.map((c) => ({ w, c })));
    // Report only: the state machines run without remediation.
    for (const w of this.#watched.values()) w.svc = { ...w.svc, policy: { ...w.svc.policy, autoRemediate: false } };
    await mapLimit(jobs, this.#o.concurrency ?? 16, async ({ w, c }) => {
      for (let attempt = 1; attempt <= c.check.retries; attempt++) {
        const deployed = await this.#runCheck(w, c, this.#abort.signal);
        if (!deployed || w.last[c.index]?.ok === true) return;
        if (attempt < c.check.retries) await sleep(delay);
      }
    });
    const services = this.snapshot();
    return { healthy: services.every((s) => s.phase === "healthy" || s.checks.length === 0), services };
  }
}

/**
 * One line for a failed remedy: the error's first line, and what to do when
 * the error says (a provisioning error's hint, e.g. Docker in LXC refused by
 * the node's AppArmor: update lxc-pve), which its later lines would lose.
 */
export function failureDetail(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const first = e.message.split("\n")[0] ?? e.message;
  const hint = (e as Error & { hint?: unknown }).hint;
  return typeof hint === "string" && hint !== "" && !first.includes(hint) ? `${first} → ${hint}` : first;
}
