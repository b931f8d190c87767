/**
 * The health and remediation state of one service, as a pure reducer:
 * `step(state, input, now, policy)` returns the next state, the effects to
 * carry out (start a remediation) and the events to report. No clock, no I/O.
 *
 *   unknown ─► healthy ◄─► failing(n) ─► unhealthy ─► restarting ─► grace ─► healthy
 *                                          │             │ (failed /    │ still failing
 *                                          │             ▼  still bad)  ▼
 *                                          └──────────► recreating ─► grace ─► healthy
 *   Side states: backoff (waiting before the next remediation), waiting_deploy
 *   (a deploy of the service holds its stack lock), gave_up (hourly limit
 *   reached; retried when the hour allows), needs_human (protected: restart
 *   did not help and recreating is refused), unhealthy with auto_remediate off.
 */

/** Where a service is. */
export type Phase =
  | "unknown"
  | "healthy"
  | "failing"
  | "unhealthy"
  | "restarting"
  | "recreating"
  | "grace"
  | "backoff"
  | "waiting_deploy"
  | "gave_up"
  | "needs_human";

/** Every phase, for metrics (one gauge per phase). */
export const PHASES: readonly Phase[] = ["unknown", "healthy", "failing", "unhealthy", "restarting", "recreating", "grace", "backoff", "waiting_deploy", "gave_up", "needs_human"];

/** A remediation. */
export type Action = "restart" | "recreate";

/** How a remediation ended: `deferred` means it did not start because a deploy holds the stack. */
export type ActionOutcome = "ok" | "failed" | "deferred";

/** The rules for one service, from its `monitoring:` section and the environment's monitor settings. */
export interface Policy {
  /** Consecutive failures that make each check unhealthy (by check index). */
  retries: readonly number[];
  autoRemediate: boolean;
  restartFirst: boolean;
  /** The service has a `protect: true` resource: never recreate it. */
  protected: boolean;
  maxPerHour: number;
  graceMs: number;
  /** Base of the exponential backoff between remediations within an hour. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How long to wait before asking again whether a deploy still holds the stack. */
  deployRetryMs: number;
}

/** What the machine remembers of one check. */
export interface CheckMemory {
  failures: number;
  last: boolean | undefined;
  /** When the last result came (ms). */
  at: number | undefined;
}

/** The last remediation of a service. */
export interface RemediationRecord {
  action: Action;
  at: number;
  outcome: ActionOutcome | "running";
  detail: string;
}

/** One service's state. */
export interface ServiceState {
  phase: Phase;
  /** Why it is in this phase, for output. */
  reason: string;
  /** When it entered this phase. */
  since: number;
  checks: CheckMemory[];
  /** Remediations tried in the current incident (since it was last healthy). */
  attempt: number;
  /** Start times of remediations in the last hour. */
  window: number[];
  /** End of grace, backoff or a wait (grace, backoff, waiting_deploy, gave_up). */
  until: number | undefined;
  /** The remediation a grace period follows. */
  graceAfter: Action | undefined;
  /** The remediation running now (single flight). */
  inFlight: Action | undefined;
  lastRemediation: RemediationRecord | undefined;
}

/** What the machine is told. */
export type Input =
  | { kind: "check"; index: number; ok: boolean; detail: string }
  /** `stopping`: the monitor is stopping; the outcome is recorded, and no next remedy is chosen. */
  | { kind: "action_done"; action: Action; outcome: ActionOutcome; detail: string; stopping?: boolean }
  /** Time passed (a wake-up at `wakeAt`). */
  | { kind: "tick" };

/** What the caller must do. */
export interface Effect {
  kind: "remediate";
  action: Action;
  /** 0 for the first remediation of an incident. */
  attempt: number;
}

/** What happened, as data for printing, history, metrics and webhooks. */
export type MachineEvent =
  | { kind: "state"; from: Phase; to: Phase; reason: string }
  | { kind: "action"; action: Action; phase: "start" | ActionOutcome; detail: string };

/** The result of one step. */
export interface Step {
  state: ServiceState;
  effects: Effect[];
  events: MachineEvent[];
}

/** One hour, the window of `max_remediations_per_hour`. */
export const HOUR_MS = 3_600_000;

/** The state of a service nothing is known about yet. */
export function initialState(checks: number, now: number): ServiceState {
  return {
    phase: "unknown",
    reason: "no check has run yet",
    since: now,
    checks: Array.from({ length: checks }, () => ({ failures: 0, last: undefined, at: undefined })),
    attempt: 0,
    window: [],
    until: undefined,
    graceAfter: undefined,
    inFlight: undefined,
    lastRemediation: undefined,
  };
}

/** Health from the checks alone: unhealthy when a check failed `retries` times in a row. Pure. */
export function derivedHealth(checks: readonly CheckMemory[], retries: readonly number[]): "unknown" | "healthy" | "failing" | "unhealthy" {
  if (checks.some((c, i) => c.failures >= (retries[i] ?? 1))) return "unhealthy";
  if (checks.length > 0 && checks.every((c) => c.last === true)) return "healthy";
  if (checks.some((c) => c.failures > 0)) return "failing";
  return "unknown";
}

/** When the machine wants a `tick` (undefined: not until the next check result). Pure. */
export function wakeAt(state: ServiceState): number | undefined {
  switch (state.phase) {
    case "backoff":
    case "waiting_deploy":
    case "gave_up":
    case "grace":
      return state.until;
    default:
      return undefined;
  }
}

/** The backoff before the next remediation, given how many ran in the last hour. Pure. */
export function backoffMs(countInWindow: number, policy: Pick<Policy, "backoffBaseMs" | "backoffMaxMs">): number {
  if (countInWindow <= 0) return 0;
  return Math.min(policy.backoffBaseMs * 2 ** (countInWindow - 1), policy.backoffMaxMs);
}

/** The remediation an incident's attempt calls for; undefined when none is allowed (a protected service after its restart). Pure. */
export function ladder(attempt: number, policy: Pick<Policy, "protected" | "restartFirst">): Action | undefined {
  if (policy.protected) return attempt === 0 ? "restart" : undefined;
  return policy.restartFirst && attempt === 0 ? "restart" : "recreate";
}

class Stepper {
  readonly s: ServiceState;
  readonly effects: Effect[] = [];
  readonly events: MachineEvent[] = [];
  readonly now: number;
  readonly p: Policy;

  constructor(state: ServiceState, now: number, policy: Policy) {
    // Copied so the caller's state is never changed.
    this.s = { ...state, checks: state.checks.map((c) => ({ ...c })), window: state.window.filter((t) => t > now - HOUR_MS) };
    this.now = now;
    this.p = policy;
  }

  go(to: Phase, reason: string, until?: number): void {
    const from = this.s.phase;
    // Only a change of phase is an event; a new reason within a phase (failing 2/3) is not.
    if (from !== to) {
      this.s.since = this.now;
      this.events.push({ kind: "state", from, to, reason });
    }
    this.s.phase = to;
    this.s.reason = reason;
    this.s.until = until;
  }

  /** Back to health: the incident is over. */
  recovered(reason: string): void {
    this.s.attempt = 0;
    this.s.graceAfter = undefined;
    this.go("healthy", reason);
  }

  failingReason(): string {
    const parts = this.s.checks.flatMap((c, i) => (c.failures > 0 ? [`check ${i + 1} failed ${c.failures}/${this.p.retries[i] ?? 1}`] : []));
    return parts.join(", ") || "a check failed";
  }

  /** A remediation is due: pick it, or say why not. */
  remediate(why: string): void {
    if (!this.p.autoRemediate) {
      this.go("unhealthy", `${why}; auto_remediate is off`);
      return;
    }
    const action = ladder(this.s.attempt, this.p);
    if (action === undefined) {
      this.go("needs_human", `${why}; a resource is protect: true, so it is never recreated (data lives there): a human is needed`);
      return;
    }
    if (this.s.window.length >= this.p.maxPerHour) {
      const oldest = this.s.window[0];
      const retry = oldest !== undefined ? oldest + HOUR_MS : undefined;
      this.go("gave_up", `${why}; ${this.s.window.length} remediation(s) in the last hour, the limit is ${this.p.maxPerHour}${retry !== undefined ? "; tries again when the hour allows" : ""}: a human is needed`, retry);
      return;
    }
    const last = this.s.window[this.s.window.length - 1];
    const notBefore = last !== undefined ? last + backoffMs(this.s.window.length, this.p) : this.now;
    if (this.now < notBefore) {
      this.go("backoff", `${why}; ${action} after a backoff of ${Math.round((notBefore - this.now) / 1000)} s (${this.s.window.length} remediation(s) in the last hour)`, notBefore);
      return;
    }
    this.s.window.push(this.now);
    this.s.inFlight = action;
    this.s.lastRemediation = { action, at: this.now, outcome: "running", detail: why };
    this.go(action === "restart" ? "restarting" : "recreating", why);
    this.events.push({ kind: "action", action, phase: "start", detail: why });
    this.effects.push({ kind: "remediate", action, attempt: this.s.attempt });
  }

  /** Health changed outside any remediation. */
  judgeIdle(): void {
    const d = derivedHealth(this.s.checks, this.p.retries);
    if (d === "unhealthy") {
      const why = this.failingReason();
      this.s.attempt = 0;
      if (!this.p.autoRemediate) {
        this.go("unhealthy", `${why}; auto_remediate is off`);
        return;
      }
      this.go("unhealthy", why);
      this.remediate(why);
    } else if (d === "healthy") {
      if (this.s.phase !== "healthy") this.recovered(this.s.phase === "unknown" ? "every check passes" : "every check passes again");
    } else if (d === "failing") {
      this.go("failing", this.failingReason());
    }
  }

  /** After a restart or recreate: decided by the first results at or after the end of grace. */
  judgeGrace(): void {
    const until = this.s.until ?? this.now;
    const fresh = this.s.checks.map((c) => (c.at !== undefined && c.at >= until ? c.last : undefined));
    const after = this.s.graceAfter ?? "restart";
    if (fresh.some((r) => r === false)) {
      this.s.graceAfter = undefined;
      this.remediate(`still unhealthy ${Math.round(this.p.graceMs / 1000)} s after the ${after}`);
    } else if (fresh.every((r) => r === true)) {
      this.recovered(`healthy again after the ${after}`);
    }
  }

  check(index: number, ok: boolean): void {
    const c = this.s.checks[index];
    if (!c) return;
    // Results while a remediation runs say nothing about its outcome.
    if (this.s.inFlight !== undefined) return;
    c.failures = ok ? 0 : c.failures + 1;
    c.last = ok;
    c.at = this.now;
    switch (this.s.phase) {
      case "unknown":
      case "healthy":
      case "failing":
        this.judgeIdle();
        break;
      case "grace":
        if (this.now >= (this.s.until ?? 0)) this.judgeGrace();
        break;
      case "unhealthy":
      case "backoff":
      case "waiting_deploy":
      case "gave_up":
      case "needs_human":
        if (derivedHealth(this.s.checks, this.p.retries) === "healthy") this.recovered("every check passes again");
        break;
      default:
        break;
    }
  }

  tick(): void {
    const due = this.s.until !== undefined && this.now >= this.s.until;
    if (!due) return;
    switch (this.s.phase) {
      case "backoff":
      case "waiting_deploy":
      case "gave_up":
        this.remediate("still unhealthy");
        break;
      default:
        break;
    }
  }

  done(action: Action, outcome: ActionOutcome, detail: string, stopping: boolean): void {
    if (this.s.inFlight !== action) return;
    this.s.inFlight = undefined;
    this.events.push({ kind: "action", action, phase: outcome, detail });
    const started = this.s.lastRemediation?.at ?? this.now;
    this.s.lastRemediation = { action, at: started, outcome, detail };
    if (outcome === "deferred") {
      // It never ran: it does not count against the hour, and the incident stays at its step.
      const i = this.s.window.lastIndexOf(started);
      if (i >= 0) this.s.window.splice(i, 1);
      this.go("waiting_deploy", `waiting: ${detail}`, this.now + this.p.deployRetryMs);
      return;
    }
    this.s.attempt += 1;
    if (outcome === "ok") {
      for (const c of this.s.checks) Object.assign(c, { failures: 0, last: undefined, at: undefined });
      this.s.graceAfter = action;
      this.go("grace", `${action} done; judging health after a grace period of ${Math.round(this.p.graceMs / 1000)} s`, this.now + this.p.graceMs);
      return;
    }
    if (stopping) {
      this.go("unhealthy", `the ${action} failed: ${detail}; no further remedy: the monitor is stopping`);
      return;
    }
    this.remediate(`the ${action} failed: ${detail}`);
  }
}

/** One transition. Pure: the input state is not changed. */
export function step(state: ServiceState, input: Input, now: number, policy: Policy): Step {
  const st = new Stepper(state, now, policy);
  if (input.kind === "check") st.check(input.index, input.ok);
  else if (input.kind === "action_done") st.done(input.action, input.outcome, input.detail, input.stopping === true);
  else st.tick();
  return { state: st.s, effects: st.effects, events: st.events };
}
