/**
 * `homelab destroy SERVICE`: delete every resource of a service's stack and
 * then the stack. Refuses while a resource is protected (and says which);
 * works for orphaned stacks too (their service folder is gone), since it
 * needs only the state.
 */
import type { Engine } from "./engine.ts";
import { EngineRunError } from "./engine.ts";
import type { Diagnostic, ResourceChange, StepProgress } from "./events.ts";
import { protectGuard } from "./guards.ts";
import type { GuardViolation } from "./guards.ts";
import { describeLock, lockOwner } from "./locks.ts";
import type { DeployedResource, FoundResource, PendingOperation } from "./state.ts";
import { stackName } from "./stacks.ts";
import { lockHint } from "./deploy.ts";

/** How a destroy ended. */
export type DestroyStatus = "destroyed" | "nothing" | "pending" | "blocked" | "failed" | "declined" | "cancelled";

/** The outcome of destroying one service. */
export interface DestroyOutcome {
  service: string;
  stack: string;
  status: DestroyStatus;
  /** What the state records before the destroy. */
  resources: DeployedResource[];
  preview: ResourceChange[] | undefined;
  applied: ResourceChange[] | undefined;
  violations: GuardViolation[];
  error: { message: string; detail: string; hint: string | undefined } | undefined;
  diagnostics: Diagnostic[];
}

/** What a destroy needs. */
export interface DestroyRequest {
  engine: Engine;
  envName: string;
  service: string;
  dryRun: boolean;
  /** Whether the service folder still exists (for the hints). */
  orphaned: boolean;
  confirm?: (outcome: DestroyOutcome) => Promise<boolean>;
  onStep?: (s: StepProgress) => void;
  onDiagnostic?: (d: Diagnostic) => void;
  signal?: AbortSignal;
  /** Finds what a killed run's pending creation made, so the destroy removes it too (see deploy.ts). */
  locatePending?: (op: PendingOperation, taken: ReadonlySet<string>) => FoundResource | undefined;
}

/** Destroys (or previews destroying) one service. */
export async function destroyService(req: DestroyRequest): Promise<DestroyOutcome> {
  const { engine, service } = req;
  const stack = stackName(req.envName, service);
  const out: DestroyOutcome = { service, stack, status: "nothing", resources: [], preview: undefined, applied: undefined, violations: [], error: undefined, diagnostics: [] };
  const exists = await engine.hasStack(stack);
  if (!exists) return out;
  const locks = await engine.locks(stack);
  const lock = locks[0];
  if (lock) {
    const owner = lockOwner(lock);
    out.status = "failed";
    out.error = { message: `stack ${stack} is locked by ${describeLock(lock, owner)}`, detail: lock.location ?? "", hint: lockHint(service, lock, owner) };
    return out;
  }
  let state = await engine.readState(stack);
  if (state && state.pending.length > 0 && !req.dryRun) {
    // A creation a killed run left pending may have made a container: adopt it so it is deleted too.
    const taken = new Set(state.resources.flatMap((r) => (r.physicalId !== undefined ? [r.physicalId] : [])));
    await engine.resolvePendingOperations(stack, state, (op) => req.locatePending?.(op, taken));
    state = await engine.readState(stack);
  }
  out.resources = state?.resources ?? [];
  out.violations = protectGuard(service, out.resources).map((v) =>
    req.orphaned ? { ...v, hint: `the service folder is gone: restore services/${service}/service.yaml with protect: false on ${v.resource} and deploy it, then destroy` } : v,
  );
  if (out.violations.length > 0) {
    out.status = "blocked";
    return out;
  }
  if (out.resources.length === 0) {
    // Nothing to delete: only the empty stack goes.
    if (!req.dryRun) await engine.removeStack(stack);
    out.status = req.dryRun ? "pending" : "destroyed";
    out.preview = [];
    return out;
  }
  try {
    const preview = await engine.destroy(stack, { previewOnly: true, ...(req.signal ? { signal: req.signal } : {}) });
    out.preview = preview.changes;
    if (req.dryRun) {
      out.status = "pending";
      return out;
    }
    if (req.confirm && !(await req.confirm(out))) {
      out.status = "declined";
      return out;
    }
    const result = await engine.destroy(stack, {
      remove: true,
      ...(req.signal ? { signal: req.signal } : {}),
      ...(req.onStep ? { onStep: req.onStep } : {}),
      ...(req.onDiagnostic ? { onDiagnostic: req.onDiagnostic } : {}),
    });
    out.applied = result.changes;
    out.diagnostics = result.diagnostics;
    out.status = "destroyed";
  } catch (e) {
    if (e instanceof EngineRunError) {
      out.diagnostics = e.diagnostics;
      if (e.changes.some((c) => c.status !== "planned")) out.applied = e.changes;
      out.status = e.kind === "cancelled" ? "cancelled" : "failed";
      const owner = e.lock ? lockOwner(e.lock) : "unknown";
      out.error =
        e.kind === "locked"
          ? { message: `stack ${stack} is locked by ${e.lock ? describeLock(e.lock, owner) : "another run"}`, detail: e.detail, hint: lockHint(service, e.lock, owner) }
          : { message: e.kind === "cancelled" ? "interrupted" : e.message, detail: e.detail, hint: e.kind === "cancelled" ? `run \`homelab destroy ${service}\` again to finish` : undefined };
    } else {
      out.status = "failed";
      out.error = { message: e instanceof Error ? e.message : String(e), detail: "", hint: undefined };
    }
  }
  return out;
}
