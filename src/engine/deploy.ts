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
import { EngineRunError } from "./engine.ts";
import type { Engine, RunResult } from "./engine.ts";
import { hasChanges } from "./events.ts";
import type { Diagnostic, ResourceChange, StepProgress } from "./events.ts";
import { deletionGuard, productionGuard } from "./guards.ts";
import type { GuardViolation } from "./guards.ts";
import { describeLock, lockOwner } from "./locks.ts";
import type { StackLock } from "./locks.ts";
import { resourceSpecs, serviceProgram } from "./program.ts";
import type { CrossRefMode, SkippedResource } from "./program.ts";
import { runGraph } from "./scheduler.ts";
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

/** One service's outcome. */
export interface ServiceOutcome {
  service: string;
  stack: string;
  status: ServiceStatus;
  plan: ServicePlan | undefined;
  problems: PlanProblem[];
  /** Planned resources left out (docker:image, for now). */
  skippedResources: SkippedResource[];
  /** What the preview showed. */
  preview: ResourceChange[] | undefined;
  /** What the update did (with --dry-run: undefined). */
  applied: ResourceChange[] | undefined;
  violations: GuardViolation[];
  error: { message: string; detail: string; hint: string | undefined } | undefined;
  /** Operations an interrupted run had left in the state. */
  pending: PendingOperation[];
  /** Whether this run cleared them (not with --dry-run). */
  pendingCleared: boolean;
  /** Pending creations found to exist after all, adopted into the state: `id` → provider id. */
  adopted: AdoptedResource[];
  /** Why it was skipped: the service that failed. */
  skippedBecause: string | undefined;
  /** Known unchanged from the state alone, without an engine run (see unchanged.ts). */
  shortcut: boolean;
  /**
   * Unchanged, but deployed by other code (or before fingerprints): an update
   * with no resource change records the current fingerprint, so later runs
   * can take the shortcut.
   */
  recordFingerprint: boolean;
  /** Applied without a separate preview (`applyWithoutPreview`): the update itself reported the changes. */
  previewSkipped: boolean;
  /** True for a stack created by this run. */
  newStack: boolean;
  diagnostics: Diagnostic[];
  durationMs: number;
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

/** Deploys (or previews) the selected services. */
export async function deploy(req: DeployRequest): Promise<DeployReport> {
  const { engine, env, services } = req;
  const rep = req.reporter ?? {};
  const concurrency = req.concurrency ?? 4;
  const outcomes = new Map(req.selected.map((s) => [s, emptyOutcome(s, env.name)]));
  const states = new Map<string, StackState | undefined>();
  const interrupted = (): boolean => req.signal?.aborted === true;

  // What is deployed now, for sticky placement and pending operations.
  await Promise.all(
    req.selected.map(async (name) => {
      states.set(name, await engine.readState(stackName(env.name, name)));
    }),
  );

  // Planning is pure and quick; it runs in dependency order so placement
  // reservations are the same from one run to the next.
  for (const name of req.order ?? req.selected) {
    const o = outcomes.get(name);
    const service = services.get(name);
    if (!o || !service) continue;
    const { plan, problems } = req.planner(service, currentState(states.get(name)));
    o.plan = plan;
    o.problems = problems;
    if (plan) o.skippedResources = resourceSpecs(plan).skipped;
    if (!plan || problems.length > 0) {
      o.status = "failed";
      o.error = { message: problems.map((p) => `${p.resource ? `${p.resource}: ` : ""}${p.message}`).join("\n") || "planning failed", detail: "", hint: problems.find((p) => p.hint)?.hint };
    }
  }

  // States of the services depended on but not deployed here, for the shortcut's check that they still exist.
  const others = [...new Set([...outcomes.values()].flatMap((o) => o.plan?.dependsOnServices ?? []))].filter((s) => !states.has(s));
  await Promise.all(
    others.map(async (name) => {
      states.set(name, await engine.readState(stackName(env.name, name)));
    }),
  );
  const shortcut = req.fingerprint !== undefined && req.skipUnchanged !== false && !req.refresh;
  const depsOf = (name: string): string[] => outcomes.get(name)?.plan?.dependsOnServices ?? [];
  const names = [...(req.order ?? req.selected)].filter((n) => outcomes.has(n));

  const programOpts = { ...(req.secretInputs ? { secretInputs: req.secretInputs } : {}), ...(req.fingerprint !== undefined ? { fingerprint: req.fingerprint } : {}) };

  // ---- preview ----
  rep.phase?.("preview");
  const previewOne = async (name: string): Promise<"ok" | "stop"> => {
    const o = outcomes.get(name);
    if (!o) return "stop";
    if (!o.plan || o.status === "failed") {
      // Planning failed: say so where the preview would have been.
      rep.serviceDone?.(o, "preview");
      return "stop";
    }
    const started = Date.now();
    rep.serviceStart?.(name, "preview");
    try {
      if (!(await checkLocks(engine, o))) return "stop";
      const state = states.get(name);
      if (shortcut && req.fingerprint !== undefined) {
        const { specs } = resourceSpecs(o.plan);
        if (whyChanged({ state, specs, fingerprint: req.fingerprint, deployedIn: (s) => deployedIds(states.get(s)) }) === undefined) {
          o.preview = specs.map((s) => sameChange(o.stack, s.id, s.type, s.protect));
          o.shortcut = true;
          // The production guard is about the plan, changed or not.
          if (req.ci) o.violations = productionGuard(o.plan, env.production, env.name);
          o.status = o.violations.length > 0 ? "blocked" : "unchanged";
          return o.status === "blocked" ? "stop" : "ok";
        }
      }
      o.newStack = !(await engine.hasStack(o.stack));
      o.pending = state?.pending ?? [];
      if (state && state.pending.length > 0 && !req.dryRun) {
        const taken = new Set(state.resources.flatMap((r) => (r.physicalId !== undefined ? [r.physicalId] : [])));
        const r = await engine.resolvePendingOperations(o.stack, state, (op) => req.locatePending?.(name, op, taken));
        o.pendingCleared = true;
        o.adopted = r.adopted;
      }
      // An adopted resource's recorded outputs are a guess: read the real ones first.
      const refresh = req.refresh || o.adopted.length > 0;
      await engine.ensureStack(o.stack);
      if (req.applyWithoutPreview === true && !req.dryRun && !req.ci && req.confirm === undefined) {
        o.previewSkipped = true;
        o.status = "pending";
        return "ok";
      }
      const crossRefs = new Map<string, CrossRefMode>();
      for (const dep of o.plan.dependsOnServices) {
        // A dependency deploying earlier in this run may not exist yet: there is nothing to read during the preview.
        if (outcomes.has(dep) && !deployedIds(states.get(dep)).size) crossRefs.set(dep, "pending");
      }
      const result: RunResult = await engine.preview(o.stack, serviceProgram({ plan: o.plan, crossRefs, ...programOpts }), {
        refresh,
        ...(req.signal ? { signal: req.signal } : {}),
        onDiagnostic: (d) => rep.diagnostic?.(name, d),
      });
      o.preview = result.changes;
      o.diagnostics.push(...result.diagnostics);
      if (req.dryRun && o.newStack) await engine.removeStack(o.stack);
      if (req.ci) {
        o.violations = [...deletionGuard(name, result.changes, req.allowDelete), ...productionGuard(o.plan, env.production, env.name)];
      }
      if (o.violations.length > 0) o.status = "blocked";
      // An adopted resource is written to the state by the update even when nothing else changes.
      else o.status = hasChanges(result.changes) || o.adopted.length > 0 ? "pending" : "unchanged";
      o.recordFingerprint = o.status === "unchanged" && shortcut && !req.dryRun && recordedFingerprint(state) !== req.fingerprint;
      return o.status === "blocked" ? "stop" : "ok";
    } catch (e) {
      failWith(o, e, name);
      if (req.dryRun && o.newStack) await engine.removeStack(o.stack).catch(() => undefined);
      return "stop";
    } finally {
      o.durationMs = Date.now() - started;
      rep.serviceDone?.(o, "preview");
    }
  };
  const previewed = await runGraph(names, depsOf, previewOne, {
    concurrency,
    signal: req.signal,
    onSkip: (n, because) => {
      const o = outcomes.get(n);
      skip(o, because);
      if (o) rep.serviceDone?.(o, "preview");
    },
  });
  markCancelled(outcomes, previewed, ["unchanged"]);

  const toApply = names.filter((n) => outcomes.get(n)?.status === "pending");
  const toRecord = names.filter((n) => outcomes.get(n)?.recordFingerprint === true);
  if (req.dryRun || interrupted() || toApply.length + toRecord.length === 0) {
    return { outcomes: [...outcomes.values()], interrupted: interrupted(), declined: false };
  }
  if (toApply.length > 0 && req.confirm && !(await req.confirm([...outcomes.values()]))) {
    for (const n of toApply) {
      const o = outcomes.get(n);
      if (o) o.status = "declined";
    }
    return { outcomes: [...outcomes.values()], interrupted: false, declined: true };
  }

  // ---- apply ----
  if (toApply.length > 0) rep.phase?.("apply");
  const applyOne = async (name: string): Promise<"ok" | "stop"> => {
    const o = outcomes.get(name);
    if (!o?.plan) return "stop";
    if (o.status === "unchanged" && o.recordFingerprint) {
      // Bookkeeping only: no resource changes, so nothing to report or ask about.
      try {
        await engine.up(o.stack, serviceProgram({ plan: o.plan, ...programOpts }), { ...(req.signal ? { signal: req.signal } : {}) });
      } catch (e) {
        failWith(o, e, name);
        return "stop";
      }
      return "ok";
    }
    // Unchanged services (and those blocked or failed in the preview) are settled already.
    if (o.status !== "pending") return o.status === "unchanged" ? "ok" : "stop";
    const started = Date.now();
    rep.serviceStart?.(name, "apply");
    try {
      const result = await engine.up(o.stack, serviceProgram({ plan: o.plan, ...programOpts }), {
        refresh: req.refresh || o.adopted.length > 0,
        ...(req.signal ? { signal: req.signal } : {}),
        onStep: (s) => rep.step?.(name, s),
        onDiagnostic: (d) => rep.diagnostic?.(name, d),
      });
      o.applied = result.changes;
      o.diagnostics.push(...result.diagnostics);
      o.status = o.previewSkipped && !hasChanges(result.changes) && o.adopted.length === 0 ? "unchanged" : "applied";
      return "ok";
    } catch (e) {
      failWith(o, e, name);
      return "stop";
    } finally {
      o.durationMs += Date.now() - started;
      rep.serviceDone?.(o, "apply");
    }
  };
  const applied = await runGraph(names, depsOf, applyOne, {
    concurrency,
    signal: req.signal,
    onSkip: (n, because) => {
      // Only services with changes are held back; the others had nothing to do anyway.
      const o = outcomes.get(n);
      if (o?.status !== "pending") return;
      skip(o, because);
      rep.serviceDone?.(o, "apply");
    },
  });
  markCancelled(outcomes, applied, ["pending"]);
  return { outcomes: [...outcomes.values()], interrupted: interrupted(), declined: false };
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

function skip(o: ServiceOutcome | undefined, because: string): void {
  if (!o || o.status === "failed" || o.status === "blocked") return;
  o.status = "skipped";
  o.skippedBecause = because;
}

function markCancelled(outcomes: Map<string, ServiceOutcome>, result: Map<string, { state: string }>, from: readonly ServiceStatus[]): void {
  for (const [n, r] of result) {
    const o = outcomes.get(n);
    if (o && r.state === "cancelled" && from.includes(o.status)) o.status = "cancelled";
  }
}

/** Refuses early, with the way out, when the stack is locked (file backends). */
async function checkLocks(engine: Engine, o: ServiceOutcome): Promise<boolean> {
  const locks = await engine.locks(o.stack);
  if (locks.length === 0) return true;
  const lock = locks[0];
  if (!lock) return true;
  const owner = lockOwner(lock);
  o.status = "failed";
  o.error = {
    message: `stack ${o.stack} is locked by ${describeLock(lock, owner)}`,
    detail: lock.file ?? "",
    hint: lockHint(o.service, lock, owner),
  };
  return false;
}

function failWith(o: ServiceOutcome, e: unknown, service: string): void {
  if (e instanceof EngineRunError) {
    o.diagnostics.push(...e.diagnostics);
    if (o.applied === undefined && e.changes.some((c) => c.status !== "planned")) o.applied = e.changes;
    if (e.kind === "cancelled") {
      o.status = "cancelled";
      o.error = { message: "interrupted", detail: e.detail, hint: `run \`homelab deploy ${service}\` again to finish; operations left pending are cleared then` };
      return;
    }
    o.status = "failed";
    if (e.kind === "locked") {
      const owner = e.lock ? lockOwner(e.lock) : "unknown";
      o.error = { message: `stack ${o.stack} is locked by ${e.lock ? describeLock(e.lock, owner) : "another run"}`, detail: e.detail, hint: lockHint(service, e.lock, owner) };
      return;
    }
    o.error = { message: e.message, detail: e.detail, hint: undefined };
    return;
  }
  o.status = "failed";
  o.error = { message: e instanceof Error ? e.message : String(e), detail: e instanceof Error ? (e.stack ?? "") : "", hint: undefined };
}
