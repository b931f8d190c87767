/**
 * Reading a service's deployed state: its resources (with protect flags and
 * outputs such as node, vmid, address), the operations a crash left pending,
 * and the current placement the planner keeps sticky. Parsing is pure; the
 * file backend's state is read straight from disk (no CLI start), other
 * backends through `pulumi stack export` (see engine.ts).
 */
import type { CurrentResource, CurrentState } from "../plan/types.ts";
import { urnName, urnType } from "./stacks.ts";

import { CONTAINER_TYPE, DEPLOYMENT_TYPE, IMAGE_TYPE } from "../provider/tokens.ts";

export { CONTAINER_TYPE, DEPLOYMENT_TYPE, IMAGE_TYPE } from "../provider/tokens.ts";

/** One resource of a stack, as the state records it. */
export interface DeployedResource {
  urn: string;
  /** The homelab resource id (the Pulumi resource name). */
  id: string;
  type: string;
  /** The provider's id of the resource (for a container, its vmid as text). */
  physicalId: string | undefined;
  protect: boolean;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

/** An operation a killed run left unfinished. */
export interface PendingOperation {
  urn: string;
  id: string;
  type: string;
  /** `creating`, `updating`, `deleting`, `reading`, ... */
  op: string;
  /** The inputs the operation was started with. */
  inputs: Record<string, unknown>;
}

/** What a killed run's pending creation turned out to have made. */
export interface FoundResource {
  /** The provider's id (a container's vmid). */
  physicalId: string;
  /** False for a half-made resource (a container not running, or still locked): it is replaced. */
  complete: boolean;
}

/** A pending creation adopted into the state. */
export interface AdoptedResource {
  id: string;
  physicalId: string;
  complete: boolean;
}

/** A stack's state, reduced to what homelab shows and plans with. */
export interface StackState {
  /** Resources that are ours (not the stack itself or providers). */
  resources: DeployedResource[];
  pending: PendingOperation[];
  /** The stack's exports (see program.ts), as last deployed. */
  outputs: Record<string, unknown>;
  /** The raw deployment (version 3), for editing and re-import. */
  deployment: Record<string, unknown>;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Whether a resource of the state is one of ours rather than Pulumi's bookkeeping. */
export function isServiceResource(type: string): boolean {
  return !type.startsWith("pulumi:");
}

/** Parses a deployment (`{version, deployment}` or the inner `deployment`). Pure. */
export function parseDeployment(input: unknown): StackState {
  const outer = asRecord(input);
  const deployment = "deployment" in outer ? asRecord(outer["deployment"]) : outer;
  const resources: DeployedResource[] = [];
  let outputs: Record<string, unknown> = {};
  for (const raw of Array.isArray(deployment["resources"]) ? (deployment["resources"] as unknown[]) : []) {
    const r = asRecord(raw);
    const urn = typeof r["urn"] === "string" ? r["urn"] : "";
    const type = typeof r["type"] === "string" ? r["type"] : urnType(urn);
    if (type === "pulumi:pulumi:Stack") outputs = asRecord(r["outputs"]);
    if (urn === "" || !isServiceResource(type) || r["delete"] === true) continue;
    resources.push({
      urn,
      id: urnName(urn),
      type,
      physicalId: typeof r["id"] === "string" && r["id"] !== "" ? r["id"] : undefined,
      protect: r["protect"] === true,
      inputs: asRecord(r["inputs"]),
      outputs: asRecord(r["outputs"]),
    });
  }
  const pending: PendingOperation[] = [];
  for (const raw of Array.isArray(deployment["pending_operations"]) ? (deployment["pending_operations"] as unknown[]) : []) {
    const p = asRecord(raw);
    const r = asRecord(p["resource"]);
    const urn = typeof r["urn"] === "string" ? r["urn"] : "";
    pending.push({ urn, id: urnName(urn), type: typeof r["type"] === "string" ? r["type"] : urnType(urn), op: typeof p["type"] === "string" ? p["type"] : "unknown", inputs: asRecord(r["inputs"]) });
  }
  return { resources, pending, outputs, deployment };
}

/** A deployment with its pending operations removed (what `pulumi stack import` takes). Pure. */
export function withoutPendingOperations(deployment: Record<string, unknown>): { version: number; deployment: Record<string, unknown> } {
  const copy: Record<string, unknown> = { ...deployment };
  delete copy["pending_operations"];
  return { version: 3, deployment: copy };
}

/**
 * A deployment with its pending operations resolved: a `creating` operation
 * whose resource exists after all (`locate` finds its provider id, e.g. the
 * container a killed run had created) is recorded as a resource, so the next
 * update adopts it instead of creating a duplicate; every other pending
 * operation is dropped. A half-made resource is adopted tainted (and
 * unprotected), so the next update replaces it: created anew, the remains
 * deleted. Pure.
 */
export function resolvePendingOperations(
  deployment: Record<string, unknown>,
  locate: (op: PendingOperation) => FoundResource | undefined,
): { deployment: { version: number; deployment: Record<string, unknown> }; adopted: AdoptedResource[]; dropped: PendingOperation[] } {
  const { pending } = parseDeployment(deployment);
  const raw = Array.isArray(deployment["pending_operations"]) ? (deployment["pending_operations"] as unknown[]) : [];
  const resources = Array.isArray(deployment["resources"]) ? [...(deployment["resources"] as unknown[])] : [];
  const taken = new Set(resources.map((r) => asRecord(r)["urn"]));
  const adopted: AdoptedResource[] = [];
  const dropped: PendingOperation[] = [];
  pending.forEach((op, i) => {
    const found = op.op === "creating" && !taken.has(op.urn) ? locate(op) : undefined;
    if (found === undefined) {
      dropped.push(op);
      return;
    }
    const { physicalId, complete } = found;
    const resource = asRecord(asRecord(raw[i])["resource"]);
    // Outputs are the inputs plus the id: enough for the next update's diff;
    // that update refreshes the stack, which reads the real container.
    resources.push({
      ...resource,
      id: physicalId,
      outputs: { ...op.inputs, vmid: Number.isFinite(Number(physicalId)) ? Number(physicalId) : physicalId },
      ...(complete ? {} : { taint: true, protect: false }),
    });
    taken.add(op.urn);
    adopted.push({ id: op.id, physicalId, complete });
  });
  const out = withoutPendingOperations(deployment);
  out.deployment["resources"] = resources;
  return { deployment: out, adopted, dropped };
}

/**
 * A deployment with fields of one live resource (by URN) set in both its inputs and its outputs:
 * for a rollback that brought back what an earlier state recorded and Proxmox cannot tell (the
 * template a container was made from). Pure.
 */
export function withResourceFields(deployment: Record<string, unknown>, urn: string, fields: Readonly<Record<string, unknown>>): { version: number; deployment: Record<string, unknown> } {
  const resources = (Array.isArray(deployment["resources"]) ? (deployment["resources"] as unknown[]) : []).map((raw) => {
    const r = asRecord(raw);
    if (r["urn"] !== urn || r["delete"] === true) return raw;
    return { ...r, inputs: { ...asRecord(r["inputs"]), ...fields }, outputs: { ...asRecord(r["outputs"]), ...fields } };
  });
  return { version: 3, deployment: { ...deployment, resources } };
}

function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^\d+$/.test(v)) return Number(v);
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** What the planner needs from the state: each container's node, template and vmid. Pure. */
export function currentState(state: StackState | undefined): CurrentState {
  const out = new Map<string, CurrentResource>();
  for (const r of state?.resources ?? []) {
    if (r.type !== CONTAINER_TYPE) continue;
    const node = str(r.outputs["node"]) ?? str(r.inputs["node"]);
    const template = str(r.outputs["template"]) ?? str(r.inputs["template"]);
    const vmid = num(r.outputs["vmid"]) ?? num(r.physicalId);
    const recorded = r.outputs["volumes"] ?? r.inputs["volumes"];
    const volumes = Array.isArray(recorded) ? recorded.flatMap((v) => (v !== null && typeof v === "object" && typeof (v as Record<string, unknown>)["name"] === "string" ? [String((v as Record<string, unknown>)["name"])] : [])) : [];
    out.set(r.id, { ...(node !== undefined ? { node } : {}), ...(template !== undefined ? { template } : {}), ...(vmid !== undefined ? { vmid } : {}), ...(volumes.length > 0 ? { volumes } : {}) });
  }
  return out;
}

/** A container's facts for `status`: node, vmid, address, template. Pure. */
export function resourceFacts(r: DeployedResource): { node: string | undefined; vmid: number | undefined; address: string | undefined; template?: string | undefined; detail: string | undefined } {
  if (r.type === IMAGE_TYPE) return { node: undefined, vmid: undefined, address: undefined, detail: str(r.outputs["ref"]) };
  if (r.type === DEPLOYMENT_TYPE) {
    const unit = str(r.outputs["unit"]);
    const docker = str(r.outputs["docker"]);
    const drift = Array.isArray(r.outputs["drift"]) && r.outputs["drift"].length > 0 ? `drift: ${r.outputs["drift"].map(String).join("; ")}` : undefined;
    const detail = [unit !== undefined ? `compose via ${unit}` : undefined, docker, drift].filter((x) => x !== undefined).join(", ");
    return { node: undefined, vmid: undefined, address: undefined, detail: detail || undefined };
  }
  return {
    node: str(r.outputs["node"]) ?? str(r.inputs["node"]),
    vmid: num(r.outputs["vmid"]) ?? (r.type === CONTAINER_TYPE ? num(r.physicalId) : undefined),
    address: str(r.outputs["address"]),
    template: str(r.outputs["template"]) ?? str(r.inputs["template"]),
    detail: undefined,
  };
}
