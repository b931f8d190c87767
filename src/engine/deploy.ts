/**
 * `homelab deploy`: plan each selected service against one inventory
 * snapshot, preview every stack, apply the guards (CI), ask (terminal), then
 * apply the stacks that change, in dependency order with bounded
 * concurrency. A failed or blocked service stops the services that depend
 * on it, not the others.
 */
import type { EnvironmentConfig } from "../config/environment.ts";
import type { Service } from "../config/service.ts";
import type { CurrentState, PlanProblem, ServicePlan } from "../plan/types.ts";
import { problemText } from "../plan/types.ts";
import { EngineRunError } from "./engine.ts";
import type { Engine, RunResult } from "./engine.ts";
import { hasChanges } from "./events.ts";
import type { Diagnostic, ResourceChange, StepProgress } from "./events.ts";
import { dataGuard, deletionGuard, productionGuard } from "./guards.ts";
import type { GuardViolation } from "./guards.ts";
import { describeLock, lockOwner } from "./locks.ts";
import type { StackLock } from "./locks.ts";
import { resourceSpecs, serviceProgram } from "./program.ts";
import type { CrossRefMode, SkippedResource } from "./program.ts";
import { runGraph } from "./scheduler.ts";
import type { TaskResult } from "./scheduler.ts";
import { currentState } from "./state.ts";
import type { AdoptedResource, FoundResource, PendingOperation, StackState } from "./state.ts";
import { stackName } from "./stacks.ts";
import { whyChanged } from "./unchanged.ts";

/** Plans one service given what is deployed now (the CLI closes over the inventory, key and reservations). */
export type Planner = (service: Service, current: CurrentState) => { plan: ServicePlan | undefined; problems: PlanProblem[] };

/** What happened to a service. */
export type ServiceStatus =
  /** Nothing to change. */
  | "unchanged"
  /** Changes applied. */
  | "applied"
  /** --dry-run: changes would be applied. */
  | "pending"
  /** A guard refused. */
  | "blocked"
  | "failed"
  /** Not run because a service it depends on failed or was blocked. */
  | "skipped"
  /** Interrupted, or not started because of the interruption. */
  | "cancelled"
  /** The user answered no. */
  | "declined";

/** One service's outcome, built from what each phase returned (never changed afterwards: a phase returns a new one). */
export interface ServiceOutcome {
  readonly service: string;
  readonly stack: string;
  readonly status: ServiceStatus;
  readonly plan: ServicePlan | undefined;
  readonly problems: PlanProblem[];
  /** Planned resources left out (docker:image, for now). */
  readonly skippedResources: SkippedResource[];
  /** What the preview showed. */
  readonly preview: ResourceChange[] | undefined;
  /** What the update did (with --dry-run: undefined). */
  readonly applied: ResourceChange[] | undefined;
  readonly violations: GuardViolation[];
  readonly error: { message: string; detail: string; hint: string | undefined } | undefined;
  /** Operations an interrupted run had left in the state. */
  readonly pending: PendingOperation[];
  /** Whether this run cleared them (not with --dry-run). */
  readonly pendingCleared: boolean;
  /** Pending creations found to exist after all, adopted into the state: `id` → provider id. */
  readonly adopted: AdoptedResource[];
  /** Why it was skipped: the service that failed. */
  readonly skippedBecause: string | undefined;
  /** Known unchanged from the state alone, without an engine run (see unchanged.ts). */
  readonly shortcut: boolean;
  /**
   * Unchanged, but deployed by other code (or before fingerprints): an update
   * with no resource change records the current fingerprint, so later runs
   * can take the shortcut.
   */
  readonly recordFingerprint: boolean;
  /** Applied without a separate preview (`applyWithoutPreview`): the update itself reported the changes. */
  readonly previewSkipped: boolean;
  /** True for a stack created by this run. */
  readonly newStack: boolean;
  readonly diagnostics: Diagnostic[];
  readonly durationMs: number;
}

/** Live progress, for the renderer. */
export interface DeployReporter {
  note?(text: string): void;
  phase?(phase: "preview" | "apply"): void;
  serviceStart?(service: string, phase: "preview" | "apply"): void;
  step?(service: string, step: StepProgress): void;
  diagnostic?(service: string, d: Diagnostic): void;
  serviceDone?(outcome: ServiceOutcome, phase: "preview" | "apply"): void;
}

/** Everything a deployment needs. */
export interface DeployRequest {
  engine: Engine;
  env: EnvironmentConfig;
  /** Every valid service of the repository (dependencies and order). */
  services: ReadonlyMap<string, Service>;
  /** The services to deploy, by name. */
  selected: readonly string[];
  /** Service names in planning order (dependency waves); default: `selected`. */
  order?: readonly string[];
  planner: Planner;
  dryRun: boolean;
  ci: boolean;
  allowDelete: boolean;
  refresh: boolean;
  /** Stacks deployed at once (default 4). */
  concurrency?: number;
  /** Asked once after the previews when something would change; false applies nothing. */
  confirm?: (outcomes: readonly ServiceOutcome[]) => Promise<boolean>;
  reporter?: DeployReporter;
  signal?: AbortSignal;
  /** Input names made secrets in the state (see program.ts). */
  secretInputs?: ReadonlySet<string>;
  /**
   * The code's fingerprint (fingerprint.ts), recorded in every stack. With it,
   * a service whose state matches its plan exactly is reported unchanged
   * without an engine run, unless `skipUnchanged` is false or `refresh` is set.
   */
  fingerprint?: string;
  skipUnchanged?: boolean;
  /**
   * Apply services that may have changed without a separate preview first
   * (`deploy --yes` outside CI): the update lists its changes as it makes
   * them, and the engine and plugin start once instead of twice. Ignored with
   * `dryRun`, `ci` (the CI guards need the preview) or `confirm`.
   */
  applyWithoutPreview?: boolean;
  /**
   * Runs before the apply phase with the plans of the services about to be applied (never with
   * `dryRun`): builds what they need first (Docker-ready bases). Returns the services that cannot
   * be applied, with why and what to do; they fail, and their dependents are skipped.
   */
  prepare?: (plans: readonly ServicePlan[]) => Promise<ReadonlyMap<string, { message: string; hint: string }>>;
  /**
   * Finds the resource a killed run's pending creation made (a container's
   * vmid), so it is adopted rather than created twice; `taken` are the ids the
   * stack already records.
   */
  locatePending?: (service: string, op: PendingOperation, taken: ReadonlySet<string>) => FoundResource | undefined;
}

/** The whole run. */
export interface DeployReport {
  outcomes: ServiceOutcome[];
  interrupted: boolean;
  declined: boolean;
  /** Each selected stack's state as read before the run changed anything (undefined: never deployed). */
  statesBefore: ReadonlyMap<string, StackState | undefined>;
}

function emptyOutcome(service: string, env: string): ServiceOutcome {
  return {
    service,
    stack: stackName(env, service),
    status: "unchanged",
    plan: undefined,
    problems: [],
    skippedResources: [],
    preview: undefined,
    applied: undefined,
    violations: [],
    error: undefined,
    pending: [],
    pendingCleared: false,
    adopted: [],
    skippedBecause: undefined,
    shortcut: false,
    recordFingerprint: false,
    previewSkipped: false,
    newStack: false,
    diagnostics: [],
    durationMs: 0,
  };
}

/** The outcome of a service that failed before the engine was involved (invalid configuration, missing secrets). */
export function failedOutcome(service: string, env: string, message: string, hint?: string): ServiceOutcome {
  return { ...emptyOutcome(service, env), status: "failed", error: { message, detail: "", hint } };
}

/** The hint for a locked stack: wait, or clear a lock whose owner is gone. Pure. */
export function lockHint(service: string, lock: StackLock | undefined, owner: string): string {
  if (owner === "gone") return `the run that held it is gone (crashed or killed): clear the lock with \`homelab unlock ${service}\`, then deploy again`;
  if (owner === "alive") return "another homelab run is deploying this service; wait for it to finish";
  return `if no other run is deploying ${service}, clear the lock with \`homelab unlock ${service}\``;
}

/** What the phases of one run share: the request, the states read at its start, and whether the shortcut applies. */
interface Run {
  req: DeployRequest;
  states: ReadonlyMap<string, StackState | undefined>;
  /** Services deployed in this run (a dependency among them may not exist yet during the preview). */
  inRun: ReadonlySet<string>;
  /** The fingerprint, when a state matching its plan may be reported unchanged without an engine run. */
  shortcut: string | undefined;
  programOpts: { secretInputs?: ReadonlySet<string>; fingerprint?: string };
}

/** Deploys (or previews) the selected services. */
export async function deploy(req: DeployRequest): Promise<DeployReport> {
  const { engine, env, services } = req;
  const rep = req.reporter ?? {};
  const concurrency = req.concurrency ?? 4;
  // One outcome per service, replaced (never changed) as each phase returns a new one.
  const outcomes = new Map(req.selected.map((s) => [s, emptyOutcome(s, env.name)]));
  const states = new Map<string, StackState | undefined>();
  const interrupted = (): boolean => req.signal?.aborted === true;
  const report = (declined = false): DeployReport => ({ outcomes: [...outcomes.values()], interrupted: !declined && interrupted(), declined, statesBefore: before });

  // What is deployed now, for sticky placement and pending operations.
  await Promise.all(
    req.selected.map(async (name) => {
      states.set(name, await engine.readState(stackName(env.name, name)));
    }),
  );
  const before: ReadonlyMap<string, StackState | undefined> = new Map(states);

  // Planning is pure and quick; it runs in dependency order so placement
  // reservations are the same from one run to the next.
  for (const name of req.order ?? req.selected) {
    const o = outcomes.get(name);
    const service = services.get(name);
    if (!o || !service) continue;
    outcomes.set(name, plannedOutcome(o, req.planner(service, currentState(states.get(name)))));
  }

  // States of the services depended on but not deployed here, for the shortcut's check that they still exist.
  const others = [...new Set([...outcomes.values()].flatMap((o) => o.plan?.dependsOnServices ?? []))].filter((s) => !states.has(s));
  await Promise.all(
    others.map(async (name) => {
      states.set(name, await engine.readState(stackName(env.name, name)));
    }),
  );
  const run: Run = {
    req,
    states,
    inRun: new Set(outcomes.keys()),
    shortcut: req.fingerprint !== undefined && req.skipUnchanged !== false && !req.refresh ? req.fingerprint : undefined,
    programOpts: { ...(req.secretInputs ? { secretInputs: req.secretInputs } : {}), ...(req.fingerprint !== undefined ? { fingerprint: req.fingerprint } : {}) },
  };
  const depsOf = (name: string): string[] => outcomes.get(name)?.plan?.dependsOnServices ?? [];
  const names = [...(req.order ?? req.selected)].filter((n) => outcomes.has(n));

  // ---- preview ----
  rep.phase?.("preview");
  const previewOne = async (name: string): Promise<TaskResult> => {
    const planned = outcomes.get(name);
    if (!planned) return "stop";
    let o = planned;
    // Planning failed: say so where the preview would have been.
    if (planned.plan && planned.status !== "failed") {
      const started = Date.now();
      rep.serviceStart?.(name, "preview");
      o = { ...(await previewService(run, planned, planned.plan)), durationMs: Date.now() - started };
      outcomes.set(name, o);
    }
    rep.serviceDone?.(o, "preview");
    return goesOn(o);
  };
  const previewed = await runGraph(names, depsOf, previewOne, {
    concurrency,
    signal: req.signal,
    onSkip: (n, because) => {
      const o = outcomes.get(n);
      if (!o) return;
      const s = skipped(o, because);
      outcomes.set(n, s);
      rep.serviceDone?.(s, "preview");
    },
  });
  markCancelled(outcomes, previewed, ["unchanged"]);

  const toApply = names.filter((n) => outcomes.get(n)?.status === "pending");
  const toRecord = names.filter((n) => outcomes.get(n)?.recordFingerprint === true);
  if (req.dryRun || interrupted() || toApply.length + toRecord.length === 0) return report();
  if (toApply.length > 0 && req.confirm && !(await req.confirm([...outcomes.values()]))) {
    for (const n of toApply) {
      const o = outcomes.get(n);
      if (o) outcomes.set(n, { ...o, status: "declined" });
    }
    return report(true);
  }

  // ---- apply ----
  if (toApply.length > 0) rep.phase?.("apply");
  if (toApply.length > 0 && req.prepare) {
    const plans = toApply.flatMap((n) => outcomes.get(n)?.plan ?? []);
    for (const [name, why] of await req.prepare(plans)) {
      const o = outcomes.get(name);
      if (!o) continue;
      const failed: ServiceOutcome = { ...o, status: "failed", error: { message: why.message, detail: "", hint: why.hint } };
      outcomes.set(name, failed);
      rep.serviceDone?.(failed, "apply");
    }
  }
  const applyOne = async (name: string): Promise<TaskResult> => {
    const previewedOutcome = outcomes.get(name);
    if (!previewedOutcome?.plan) return "stop";
    // Only services with changes are reported; a fingerprint recorded is bookkeeping.
    const shown = previewedOutcome.status === "pending";
    const started = Date.now();
    if (shown) rep.serviceStart?.(name, "apply");
    let o = await applyService(run, previewedOutcome, previewedOutcome.plan);
    if (shown) o = { ...o, durationMs: previewedOutcome.durationMs + (Date.now() - started) };
    outcomes.set(name, o);
    if (shown) rep.serviceDone?.(o, "apply");
    return goesOn(o);
  };
  const applied = await runGraph(names, depsOf, applyOne, {
    concurrency,
    signal: req.signal,
    onSkip: (n, because) => {
      // Only services with changes are held back; the others had nothing to do anyway.
      const o = outcomes.get(n);
      if (o?.status !== "pending") return;
      const s = skipped(o, because);
      outcomes.set(n, s);
      rep.serviceDone?.(s, "apply");
    },
  });
  markCancelled(outcomes, applied, ["pending"]);
  return report();
}

/** A service's outcome once planned: its plan, or failed with the planner's problems. Pure. */
function plannedOutcome(o: ServiceOutcome, { plan, problems }: { plan: ServicePlan | undefined; problems: PlanProblem[] }): ServiceOutcome {
  const planned: ServiceOutcome = { ...o, plan, problems, skippedResources: plan ? resourceSpecs(plan).skipped : [] };
  if (plan && problems.length === 0) return planned;
  const message = problems.map(problemText).join("\n") || "planning failed";
  return { ...planned, status: "failed", error: { message, detail: "", hint: problems.find((p) => p.hint)?.hint } };
}

/** Whether the services that depend on this one may go on. */
function goesOn(o: ServiceOutcome): TaskResult {
  return o.status === "unchanged" || o.status === "pending" || o.status === "applied" ? "ok" : "stop";
}

/**
 * The preview of one planned service: known unchanged from the state (the
 * shortcut), else pending operations resolved, the stack made, and the
 * engine's preview with the CI guards. Returns the outcome (its duration is
 * the caller's).
 */
async function previewService(run: Run, planned: ServiceOutcome, plan: ServicePlan): Promise<ServiceOutcome> {
  const { req, states } = run;
  const { engine, env } = req;
  const name = planned.service;
  const stack = planned.stack;
  const state = states.get(name);
  // What is known so far, kept when a later step fails.
  let found: Pick<ServiceOutcome, "newStack" | "pending" | "pendingCleared" | "adopted"> = { newStack: false, pending: [], pendingCleared: false, adopted: [] };
  try {
    const locked = await lockError(engine, planned);
    if (locked) return { ...planned, status: "failed", error: locked };
    if (run.shortcut !== undefined) {
      const { specs } = resourceSpecs(plan);
      if (whyChanged({ state, specs, fingerprint: run.shortcut, deployedIn: (s) => deployedIds(states.get(s)) }) === undefined) {
        // The production guard is about the plan, changed or not.
        const violations = req.ci ? productionGuard(plan, env.production, env.name) : [];
        return { ...planned, preview: specs.map((s) => sameChange(stack, s.id, s.type, s.protect)), shortcut: true, violations, status: violations.length > 0 ? "blocked" : "unchanged" };
      }
    }
    // Data left behind on another node is refused in and out of CI, before anything runs.
    const dataViolations = dataGuard(plan, req.allowDelete);
    if (dataViolations.length > 0) return { ...planned, violations: dataViolations, status: "blocked" };
    found = { ...found, newStack: !(await engine.hasStack(stack)), pending: state?.pending ?? [] };
    if (state && state.pending.length > 0 && !req.dryRun) {
      const taken = new Set(state.resources.flatMap((r) => (r.physicalId !== undefined ? [r.physicalId] : [])));
      const r = await engine.resolvePendingOperations(stack, state, (op) => req.locatePending?.(name, op, taken));
      found = { ...found, pendingCleared: true, adopted: r.adopted };
    }
    await engine.ensureStack(stack);
    if (req.applyWithoutPreview === true && !req.dryRun && !req.ci && req.confirm === undefined) {
      return { ...planned, ...found, previewSkipped: true, status: "pending" };
    }
    const crossRefs = new Map<string, CrossRefMode>();
    for (const dep of plan.dependsOnServices) {
      // A dependency deploying earlier in this run may not exist yet: there is nothing to read during the preview.
      if (run.inRun.has(dep) && !deployedIds(states.get(dep)).size) crossRefs.set(dep, "pending");
    }
    const result: RunResult = await engine.preview(stack, serviceProgram({ plan, crossRefs, ...run.programOpts }), {
      // An adopted resource's recorded outputs are a guess: read the real ones first.
      refresh: req.refresh || found.adopted.length > 0,
      ...(req.signal ? { signal: req.signal } : {}),
      onDiagnostic: (d) => req.reporter?.diagnostic?.(name, d),
    });
    if (req.dryRun && found.newStack) await engine.removeStack(stack);
    const violations = req.ci ? [...deletionGuard(name, result.changes, req.allowDelete), ...productionGuard(plan, env.production, env.name)] : [];
    // An adopted resource is written to the state by the update even when nothing else changes.
    const status = violations.length > 0 ? "blocked" : hasChanges(result.changes) || found.adopted.length > 0 ? "pending" : "unchanged";
    return {
      ...planned,
      ...found,
      preview: result.changes,
      diagnostics: [...planned.diagnostics, ...result.diagnostics],
      violations,
      status,
      recordFingerprint: status === "unchanged" && run.shortcut !== undefined && !req.dryRun && recordedFingerprint(state) !== run.shortcut,
    };
  } catch (e) {
    if (req.dryRun && found.newStack) await engine.removeStack(stack).catch(() => undefined);
    return { ...planned, ...found, ...failure(e, planned) };
  }
}

/**
 * The update of one previewed service: a pending one is applied; an
 * unchanged one that lacks the current fingerprint gets it recorded (an
 * update that changes no resource); any other is settled already.
 */
async function applyService(run: Run, o: ServiceOutcome, plan: ServicePlan): Promise<ServiceOutcome> {
  const { req } = run;
  const { engine } = req;
  const signal = req.signal ? { signal: req.signal } : {};
  if (o.status === "unchanged" && o.recordFingerprint) {
    try {
      await engine.up(o.stack, serviceProgram({ plan, ...run.programOpts }), signal);
      return o;
    } catch (e) {
      return { ...o, ...failure(e, o) };
    }
  }
  if (o.status !== "pending") return o;
  try {
    const result = await engine.up(o.stack, serviceProgram({ plan, ...run.programOpts }), {
      refresh: req.refresh || o.adopted.length > 0,
      ...signal,
      onStep: (s) => req.reporter?.step?.(o.service, s),
      onDiagnostic: (d) => req.reporter?.diagnostic?.(o.service, d),
    });
    const unchanged = o.previewSkipped && !hasChanges(result.changes) && o.adopted.length === 0;
    return { ...o, applied: result.changes, diagnostics: [...o.diagnostics, ...result.diagnostics], status: unchanged ? "unchanged" : "applied" };
  } catch (e) {
    return { ...o, ...failure(e, o) };
  }
}

function recordedFingerprint(state: StackState | undefined): unknown {
  const h = state?.outputs["homelab"];
  return h !== null && typeof h === "object" ? (h as Record<string, unknown>)["fingerprint"] : undefined;
}

/** A resource the shortcut found unchanged, as a preview would have reported it. */
function sameChange(stack: string, id: string, type: string, protect: boolean): ResourceChange {
  return { urn: `urn:pulumi:${stack}::homelab::${type}::${id}`, id, type, kind: "same", properties: [], protect, status: "done", durationMs: undefined, error: undefined, outputs: undefined };
}

function deployedIds(state: StackState | undefined): Set<string> {
  return new Set((state?.resources ?? []).map((r) => r.id));
}

/** Skipped because `because` did not deploy; a failure or refusal of its own stays what it is. */
function skipped(o: ServiceOutcome, because: string): ServiceOutcome {
  return o.status === "failed" || o.status === "blocked" ? o : { ...o, status: "skipped", skippedBecause: because };
}

function markCancelled(outcomes: Map<string, ServiceOutcome>, result: Map<string, { state: string }>, from: readonly ServiceStatus[]): void {
  for (const [n, r] of result) {
    const o = outcomes.get(n);
    if (o && r.state === "cancelled" && from.includes(o.status)) outcomes.set(n, { ...o, status: "cancelled" });
  }
}

/** The error that refuses early, with the way out, when the stack is locked (file backends). */
async function lockError(engine: Engine, o: ServiceOutcome): Promise<ServiceOutcome["error"]> {
  const lock = (await engine.locks(o.stack))[0];
  if (!lock) return undefined;
  const owner = lockOwner(lock);
  return { message: `stack ${o.stack} is locked by ${describeLock(lock, owner)}`, detail: lock.location ?? "", hint: lockHint(o.service, lock, owner) };
}

/** What a failure adds to an outcome: its status and error, the diagnostics and any changes made before it. */
function failure(e: unknown, o: ServiceOutcome): Pick<ServiceOutcome, "status" | "error" | "diagnostics" | "applied"> {
  if (!(e instanceof EngineRunError)) {
    return { status: "failed", error: { message: e instanceof Error ? e.message : String(e), detail: e instanceof Error ? (e.stack ?? "") : "", hint: undefined }, diagnostics: o.diagnostics, applied: o.applied };
  }
  const diagnostics = [...o.diagnostics, ...e.diagnostics];
  const applied = o.applied === undefined && e.changes.some((c) => c.status !== "planned") ? e.changes : o.applied;
  if (e.kind === "cancelled") {
    return { status: "cancelled", diagnostics, applied, error: { message: "interrupted", detail: e.detail, hint: `run \`homelab deploy ${o.service}\` again to finish; operations left pending are cleared then` } };
  }
  if (e.kind === "locked") {
    const owner = e.lock ? lockOwner(e.lock) : "unknown";
    return { status: "failed", diagnostics, applied, error: { message: `stack ${o.stack} is locked by ${e.lock ? describeLock(e.lock, owner) : "another run"}`, detail: e.detail, hint: lockHint(o.service, e.lock, owner) } };
  }
  return { status: "failed", diagnostics, applied, error: { message: e.message, detail: e.detail, hint: undefined } };
}
