/**
 * The one retry policy of Proxmox calls. Each call declares once how it may be
 * repeated (a CallPolicy: the API modules keep a table of them); every failure
 * is read once, here (`failureKind`); the budgets and the backoff live here;
 * and the repeating is done here: a request (`retryDecision`, run by the
 * transport), a task refused on a lock (`taskLockRetry`), a create that lost
 * its id to another creator (`createUnderFreshIds`), a step of the provider
 * that may have happened although it failed (`converge`), and a config write
 * refused as stale (`rewriteWhileStale`).
 *
 * Under all of it one rule: a write is sent again only when the server refused
 * it before acting (a 401 with a ticket that can be renewed, a lock, a
 * connection that never reached it), or after checking that it did not happen.
 */
import {
  ProxmoxAlreadyExistsError,
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxConnectionError,
  ProxmoxLockedError,
  ProxmoxNotFoundError,
  ProxmoxResponseError,
  ProxmoxTaskError,
  ProxmoxTaskTimeoutError,
} from "./errors.ts";

/** How often, and how far apart, failed calls are repeated. */
export interface RetryBudget {
  /** Tries in all for an idempotent request (first try included). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Tries in all while the guest is locked or its config lock times out. */
  lockAttempts: number;
  lockDelayMs: number;
  /** Tries in all to create a guest when another creator took the allocated id. */
  idRaceAttempts: number;
  /** Source of jitter, [0, 1). */
  random: () => number;
}

/** Defaults: a few quick retries for reads, patient ones for locks. */
export const DEFAULT_RETRY: RetryBudget = {
  attempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 4000,
  lockAttempts: 5,
  lockDelayMs: 1000,
  idRaceAttempts: 5,
  random: Math.random,
};

/** Tries in all of a convergent step (start, stop, destroy, a guarded config write). */
const STEP_ATTEMPTS = 3;

/** How one call may be repeated; declared once per call. */
export interface CallPolicy {
  /**
   * Harmless to send twice (reads, logging in): repeated after any passing failure, even one
   * the server may have acted on. Otherwise only refusals made before acting are repeated.
   */
  readonly idempotent: boolean;
  /**
   * Starts a task whose worker checks the guest's lock before it acts (Proxmox checks only the
   * running state before the task): a task refused on a lock did nothing, and is started again.
   */
  readonly taskLocks?: boolean;
  /** Creates a guest under an id allocated just before: a lost race is repeated with a fresh id. */
  readonly idRace?: boolean;
}

/** A read: repeated after any passing failure. */
export const READ: CallPolicy = { idempotent: true };
/** Logging in changes nothing on the server, so a broken connection may be repeated. */
export const LOGIN: CallPolicy = { idempotent: true };
/** A write: repeated only when refused before the server acted. */
export const WRITE: CallPolicy = { idempotent: false };
/** A lifecycle or destroy task of a guest: a write, and started again when its task is refused on a lock. */
export const GUEST_TASK: CallPolicy = { idempotent: false, taskLocks: true };
/** A guest's create: a write, and repeated with a fresh id when it allocated one and lost it. */
export const GUEST_CREATE: CallPolicy = { idempotent: false, idRace: true };

/** The policy of a request that declares none: reads for GET, writes for the rest. */
export function defaultPolicy(method: string): CallPolicy {
  return method === "GET" ? READ : WRITE;
}

/** Exponential backoff with equal jitter: half fixed, half random. Pure given `random`. */
export function backoffDelay(retryNumber: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retryNumber - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The delay before the `n`-th repeat of a call refused on a lock. Pure given the budget's `random`. */
function lockDelay(n: number, budget: RetryBudget): number {
  return backoffDelay(n, budget.lockDelayMs, budget.maxDelayMs * 4, budget.random);
}

/**
 * What a failure says about the call that met it:
 * - `expired`: a 401, refused before any effect; fresh credentials may pass;
 * - `locked`: the guest (or its config file) was locked; the lock is checked before acting;
 * - `unsent`: the connection failed before a byte of the request left this machine;
 * - `dropped`: the connection broke after the request may have arrived;
 * - `uncertain`: the server may have acted: a 5xx answer, an unreadable answer, a task that outlived its wait;
 * - `lost-race`: the guest id is taken (another creator got it first);
 * - `not-found`: the node, guest, storage or task does not exist;
 * - `stale`: a write guarded by the config digest, refused because the config changed since it was read;
 * - `task-failed`: a task ran and failed for a reason of its own;
 * - `permanent`: nothing a repeat fixes: credentials, permissions, parameters, TLS, 4xx, 501, protection.
 */
export type FailureKind = "expired" | "locked" | "unsent" | "dropped" | "uncertain" | "lost-race" | "not-found" | "stale" | "task-failed" | "permanent";

// Proxmox's answer when the digest sent with a config write no longer matches.
const STALE = /modified configuration/i;
// `can't remove CT N - protection mode enabled`: removal stays refused until protection is off.
const PROTECTED = /protection/i;

/** Reads a failure once, for every retry site. Anything not from the Proxmox client is permanent. Pure. */
export function failureKind(error: unknown): FailureKind {
  if (error instanceof ProxmoxAuthError) return error.status === 401 ? "expired" : "permanent";
  if (error instanceof ProxmoxLockedError) return "locked";
  if (error instanceof ProxmoxAlreadyExistsError) return "lost-race";
  if (error instanceof ProxmoxNotFoundError) return "not-found";
  if (error instanceof ProxmoxConnectionError) return error.maybeApplied ? "dropped" : "unsent";
  if (error instanceof ProxmoxTaskTimeoutError) return "uncertain";
  if (error instanceof ProxmoxTaskError) return /already exists/.test(error.exitstatus ?? "") ? "lost-race" : "task-failed";
  if (error instanceof ProxmoxResponseError) return "uncertain";
  if (error instanceof ProxmoxApiError) {
    if (STALE.test(error.message)) return "stale";
    if (PROTECTED.test(error.message)) return "permanent";
    if (error.status >= 500 && error.status !== 501 && Object.keys(error.paramErrors).length === 0) return "uncertain";
    return "permanent";
  }
  return "permanent";
}

/** Whether a step that failed this way may succeed when tried again (after checking it did not happen meanwhile). Pure. */
export function worthRepeating(error: unknown): boolean {
  const kind = failureKind(error);
  return kind !== "permanent" && kind !== "expired";
}

/** Whether the failure was reported by the task the call started, not by the answer to the call. Pure. */
export function reportedByTask(error: unknown): boolean {
  return (error instanceof ProxmoxTaskError && !(error instanceof ProxmoxTaskTimeoutError)) || (error instanceof ProxmoxApiError && error.task !== undefined);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` (numbered from 1) until it succeeds or `again` gives up: `again` answers a
 * failure with the delay before the next try, or undefined to throw the failure.
 */
export async function retrying<T>(attempt: (n: number) => Promise<T>, again: (error: unknown, n: number) => number | undefined): Promise<T> {
  for (let n = 1; ; n += 1) {
    try {
      return await attempt(n);
    } catch (error) {
      const delayMs = again(error, n);
      if (delayMs === undefined) throw error;
      if (delayMs > 0) await sleep(delayMs);
    }
  }
}

/** What to do after a failed request. */
export type RetryDecision = { retry: false } | { retry: true; kind: "transient" | "lock" | "reauth"; delayMs: number };

/** State of one request's retries. */
export interface RetryState {
  /** From the request's CallPolicy. */
  idempotent: boolean;
  /** Tries made so far, counting the one that just failed. */
  tries: number;
  /** Of those, tries that failed on a lock. */
  lockTries: number;
  /** Whether a fresh login was already tried for this request. */
  reauthed: boolean;
  /** Whether the credentials can be renewed (tickets can, tokens cannot). */
  canReauth: boolean;
}

/** Decides whether a failed request may be sent again: never a write that may have reached the server. Pure. */
export function retryDecision(error: unknown, state: RetryState, budget: RetryBudget): RetryDecision {
  const transientTries = state.tries - state.lockTries;
  const transient = (): RetryDecision =>
    transientTries < budget.attempts
      ? { retry: true, kind: "transient", delayMs: backoffDelay(transientTries, budget.baseDelayMs, budget.maxDelayMs, budget.random) }
      : { retry: false };
  switch (failureKind(error)) {
    case "expired":
      // A 401 is a refusal before any effect, so even a write may be sent again with a new ticket.
      return state.canReauth && !state.reauthed ? { retry: true, kind: "reauth", delayMs: 0 } : { retry: false };
    case "locked":
      // The lock check happens before the server acts, so a locked write was not applied.
      return state.lockTries + 1 < budget.lockAttempts ? { retry: true, kind: "lock", delayMs: lockDelay(state.lockTries + 1, budget) } : { retry: false };
    case "unsent":
      return transient();
    case "dropped":
    case "uncertain":
      return state.idempotent ? transient() : { retry: false };
    default:
      return { retry: false };
  }
}

/**
 * After a call of a `taskLocks` policy whose task was refused on a lock (the `refusals`-th
 * time): the delay before starting the task again, or undefined when the failure is another
 * one or the lock budget is spent. A refusal in the answer itself is the transport's. Pure.
 */
export function taskLockRetry(policy: CallPolicy, error: unknown, refusals: number, budget: RetryBudget): number | undefined {
  if (policy.taskLocks !== true || failureKind(error) !== "locked" || !reportedByTask(error)) return undefined;
  return refusals < budget.lockAttempts ? lockDelay(refusals, budget) : undefined;
}

/** Who holds a guest id after a create whose outcome the answer did not tell. */
export type IdHolder = "ours" | "other" | "absent";

/** A create under an allocated id, as `createUnderFreshIds` repeats it. */
export interface FreshIdCreate<T> {
  /** Tries in all. */
  attempts: number;
  /** The backoff between tries. */
  budget: RetryBudget;
  nextId(): Promise<number>;
  /** Sends the create for `vmid` and waits for it. */
  create(vmid: number): Promise<T>;
  /**
   * The already-done check. Given, an answer that does not tell (a dropped connection, a 5xx,
   * a task that outlived its wait) is settled by asking who holds the id: ours is success
   * (`adopt`), another's takes a fresh id, and absent after a dropped connection sends the same
   * id again (a second guest cannot come of it: had the first create arrived after all, this
   * one is refused as a lost race, which is settled the same way). Without it, only lost races
   * are repeated.
   */
  settle?: { holder(vmid: number): Promise<IdHolder>; adopt(vmid: number): T };
}

/** Creates a guest under a fresh id, allocating again when another creator takes it first. */
export async function createUnderFreshIds<T>(spec: FreshIdCreate<T>): Promise<T> {
  let vmid = await spec.nextId();
  // Whether a create with this id was sent before and may have arrived.
  let resent = false;
  for (let n = 1; ; n += 1) {
    try {
      return await spec.create(vmid);
    } catch (error) {
      const kind = failureKind(error);
      let holder: IdHolder | undefined;
      if (spec.settle !== undefined && (kind === "dropped" || kind === "uncertain" || (kind === "lost-race" && resent))) {
        holder = await spec.settle.holder(vmid);
        if (holder === "ours") return spec.settle.adopt(vmid);
      }
      const fresh = kind === "lost-race" || holder === "other";
      const again = holder === "absent" && kind === "dropped";
      if ((!fresh && !again) || n >= spec.attempts) throw error;
      await sleep(backoffDelay(n, spec.budget.baseDelayMs, spec.budget.maxDelayMs, spec.budget.random));
      if (fresh) vmid = await spec.nextId();
      resent = !fresh;
    }
  }
}

/** A step that may have happened although it failed (a start whose answer was lost, a destroy task that outlived its wait). */
export interface ConvergentStep {
  act(): Promise<unknown>;
  /** Whether the step's effect is there (the guest runs, is stopped, is gone). */
  done(): Promise<boolean>;
  /** Asks `done` before the first try too (the step may be needed not at all). */
  checkFirst?: boolean;
  /** The step removes the guest: a not-found failure is success. */
  removes?: boolean;
  /** Tries in all; default STEP_ATTEMPTS. */
  attempts?: number;
}

/**
 * Runs a step until its effect is there: after a failure that a repeat may fix, asks whether
 * the step happened after all, and only when it did not tries again. A failed `done` is thrown
 * as it is: a guest whose state cannot be read is never taken for done.
 */
export async function converge(step: ConvergentStep): Promise<void> {
  const attempts = step.attempts ?? STEP_ATTEMPTS;
  if (step.checkFirst === true && (await step.done())) return;
  for (let n = 1; ; n += 1) {
    try {
      await step.act();
      return;
    } catch (error) {
      if (step.removes === true && failureKind(error) === "not-found") return;
      if (!worthRepeating(error)) throw error;
      if (await step.done()) return;
      if (n >= attempts) throw error;
    }
  }
}

/**
 * A write guarded by the config digest, repeated when someone else wrote in between: `write`
 * gets the try number and reads the config afresh from the second try on.
 */
export function rewriteWhileStale<T>(write: (n: number) => Promise<T>, attempts = STEP_ATTEMPTS): Promise<T> {
  return retrying(write, (error, n) => (failureKind(error) === "stale" && n < attempts ? 0 : undefined));
}
