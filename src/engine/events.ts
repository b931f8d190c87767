/**
 * Turns the Pulumi engine's event stream into what homelab shows: per
 * resource, the change (create, update, replace, delete) with the inputs
 * that changed and which of them force a replacement, live step progress,
 * and the errors. Pure: the events are plain JSON (the shapes below are the
 * subset of `@pulumi/pulumi/automation` EngineEvent that is read), so this
 * module does not load Pulumi.
 */
import { DEPLOYMENT_TYPE } from "../provider/tokens.ts";
import { urnName } from "./stacks.ts";
import { isServiceResource } from "./state.ts";
import { isAmbientPluginNotice, stripColorMarkup } from "./pulumi-internals.ts";

/** The state of a resource in a step event. */
export interface StepStateLike {
  type?: string;
  urn?: string;
  id?: string;
  protect?: boolean;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

/** A step's metadata. */
export interface StepMetadataLike {
  op: string;
  urn: string;
  type: string;
  old?: StepStateLike;
  new?: StepStateLike;
  keys?: string[];
  diffs?: string[];
  detailedDiff?: Record<string, { diffKind: string; inputDiff: boolean }>;
}

/** The engine events read here. */
export interface EngineEventLike {
  resourcePreEvent?: { metadata: StepMetadataLike; planning?: boolean };
  resOutputsEvent?: { metadata: StepMetadataLike; planning?: boolean };
  resOpFailedEvent?: { metadata: StepMetadataLike; status: number; steps: number };
  diagnosticEvent?: { urn?: string; message: string; severity: string; ephemeral?: boolean };
  cancelEvent?: object;
  summaryEvent?: { resourceChanges?: Record<string, number> };
}

/** What happens to a resource as a whole. */
export type ChangeKind = "create" | "update" | "replace" | "delete" | "same" | "read";

/** One changed input. */
export interface PropertyChange {
  /** Top-level input name, e.g. `memory`. */
  key: string;
  kind: "add" | "delete" | "update";
  /** True when this change forces a replacement. */
  replaces: boolean;
  old: unknown;
  new: unknown;
}

/** A resource's change in one preview or update. */
export interface ResourceChange {
  urn: string;
  /** The homelab resource id. */
  id: string;
  type: string;
  kind: ChangeKind;
  properties: PropertyChange[];
  protect: boolean;
  status: "planned" | "running" | "done" | "failed";
  /** Milliseconds the steps took, once done. */
  durationMs: number | undefined;
  error: string | undefined;
  /** Outputs after the step (vmid, address, ...), when known. */
  outputs: Record<string, unknown> | undefined;
  /** What an update means, in words, where raw inputs would say little (a compose deployment: which files, secrets). */
  summary?: string[];
}

/** Says in words what an update of a resource means where its raw inputs would say little; undefined: list the inputs. */
export type ChangeDescriber = (type: string, olds: Record<string, unknown>, news: Record<string, unknown>) => string[] | undefined;

/**
 * The describer of the provider's resources: a compose deployment's update
 * names the files that changed and whether secrets did. Loaded on demand
 * (it brings the provider's input schemas), by runs that preview or update.
 */
export async function loadChangeDescriber(): Promise<ChangeDescriber> {
  const { describeDeploymentChange } = await import("../provider/deployment-inputs.ts");
  return (type, olds, news) => (type === DEPLOYMENT_TYPE ? describeDeploymentChange(olds, news) : undefined);
}

/** One step starting, finishing or failing, for live progress. */
export interface StepProgress {
  id: string;
  type: string;
  /** The engine's step (`create`, `update`, `create-replacement`, `delete-replaced`, ...). */
  op: string;
  phase: "start" | "done" | "failed";
  /** Milliseconds since the step started, for done and failed. */
  elapsedMs: number | undefined;
}

/** A diagnostic from the engine or the provider. */
export interface Diagnostic {
  severity: "error" | "warning" | "info";
  /** The resource it is about, if any. */
  id: string | undefined;
  message: string;
  ephemeral: boolean;
}

const RANK: Record<ChangeKind, number> = { same: 0, read: 1, update: 2, create: 3, delete: 3, replace: 4 };

/** Maps a step op to the resource-level change it belongs to. Pure. */
export function changeKindOf(op: string): ChangeKind | undefined {
  switch (op) {
    case "same":
      return "same";
    case "create":
    case "import":
      return "create";
    case "update":
      return "update";
    case "delete":
    case "discard":
      return "delete";
    case "replace":
    case "create-replacement":
    case "delete-replaced":
    case "discard-replaced":
    case "import-replacement":
    case "read-replacement":
      return "replace";
    case "read":
    case "refresh":
      return "read";
    default:
      return undefined;
  }
}

/** Deep equality of JSON values (key order ignored). Pure. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!sameValue(ao[k], bo[k])) return false;
  return true;
}

function topKey(path: string): string {
  const m = /^[^.[]+/.exec(path);
  return m ? m[0] : path;
}

/** The changed inputs of a step, with old and new values and whether they replace. Pure. */
export function propertyChanges(m: StepMetadataLike): PropertyChange[] {
  const oldInputs = m.old?.inputs ?? {};
  const newInputs = m.new?.inputs ?? {};
  const byKey = new Map<string, PropertyChange>();
  const replaceKeys = new Set((m.keys ?? []).map(topKey));
  const add = (key: string, kind: PropertyChange["kind"], replaces: boolean): void => {
    const existing = byKey.get(key);
    if (existing) {
      existing.replaces ||= replaces;
      if (existing.kind !== kind) existing.kind = "update";
      return;
    }
    byKey.set(key, { key, kind, replaces, old: oldInputs[key], new: newInputs[key] });
  };
  if (m.detailedDiff && Object.keys(m.detailedDiff).length > 0) {
    for (const [path, d] of Object.entries(m.detailedDiff)) {
      const key = topKey(path);
      const kind = d.diffKind.startsWith("add") ? "add" : d.diffKind.startsWith("delete") ? "delete" : "update";
      // A nested add or delete (one more tag) is an update of the top-level input.
      const topKind = key === path ? kind : "update";
      add(key, topKind, d.diffKind.endsWith("-replace") || replaceKeys.has(key));
    }
  } else {
    // The Node provider SDK passes no detailed diff to the engine, so the
    // changed inputs are found by comparing the old and new inputs.
    const keys = new Set([...(m.diffs ?? []).map(topKey), ...replaceKeys]);
    if (m.old && m.new) {
      for (const key of new Set([...Object.keys(oldInputs), ...Object.keys(newInputs)])) {
        if (!sameValue(oldInputs[key], newInputs[key])) keys.add(key);
      }
    }
    for (const key of keys) {
      const kind = !(key in oldInputs) ? "add" : !(key in newInputs) ? "delete" : "update";
      add(key, kind, replaceKeys.has(key));
    }
  }
  return [...byKey.values()].sort((a, b) => a.key.localeCompare(b.key));
}

/** Collects the changes, progress and diagnostics of one engine run. */
export class ChangeTracker {
  private readonly byUrn = new Map<string, ResourceChange>();
  private readonly started = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();
  private readonly diags: Diagnostic[] = [];
  private readonly now: () => number;
  private readonly onStep: ((s: StepProgress) => void) | undefined;
  private readonly onDiagnostic: ((d: Diagnostic) => void) | undefined;
  private readonly describe: ChangeDescriber | undefined;
  /** True once the engine reported a cancellation. */
  cancelled = false;
  /** The engine's own counts, from its summary event. */
  summary: Record<string, number> | undefined;

  constructor(opts: { now?: () => number; onStep?: (s: StepProgress) => void; onDiagnostic?: (d: Diagnostic) => void; describe?: ChangeDescriber } = {}) {
    this.now = opts.now ?? Date.now;
    this.onStep = opts.onStep;
    this.onDiagnostic = opts.onDiagnostic;
    this.describe = opts.describe;
  }

  /** Feeds one engine event. */
  handle(e: EngineEventLike): void {
    if (e.resourcePreEvent) this.pre(e.resourcePreEvent.metadata, e.resourcePreEvent.planning === true);
    else if (e.resOutputsEvent) this.outputs(e.resOutputsEvent.metadata);
    else if (e.resOpFailedEvent) this.failed(e.resOpFailedEvent.metadata);
    else if (e.diagnosticEvent) this.diagnostic(e.diagnosticEvent);
    else if (e.cancelEvent) this.cancelled = true;
    else if (e.summaryEvent) this.summary = e.summaryEvent.resourceChanges ?? {};
  }

  private pre(m: StepMetadataLike, planning: boolean): void {
    const kind = changeKindOf(m.op);
    if (kind === undefined || !isServiceResource(m.type)) return;
    const c = this.byUrn.get(m.urn) ?? {
      urn: m.urn,
      id: urnName(m.urn),
      type: m.type,
      kind,
      properties: [],
      protect: false,
      status: "planned" as const,
      durationMs: undefined,
      error: undefined,
      outputs: undefined,
    };
    if (RANK[kind] >= RANK[c.kind]) c.kind = kind;
    const props = propertyChanges(m);
    if (props.length > 0 || c.properties.length === 0) {
      const merged = new Map(c.properties.map((p) => [p.key, p]));
      for (const p of props) merged.set(p.key, { ...p, replaces: p.replaces || (merged.get(p.key)?.replaces ?? false) });
      c.properties = [...merged.values()].sort((a, b) => a.key.localeCompare(b.key));
    }
    if (this.describe && (kind === "update" || kind === "replace") && m.old && m.new) {
      const summary = this.describe(m.type, m.old.inputs ?? {}, m.new.inputs ?? {});
      if (summary !== undefined) c.summary = summary;
    }
    c.protect ||= m.new?.protect === true || m.old?.protect === true;
    if (planning) {
      // A preview: nothing runs.
      c.status = "planned";
    } else if (kind !== "same") {
      c.status = "running";
      if (!this.started.has(m.urn)) this.started.set(m.urn, this.now());
      this.inFlight.set(m.urn, (this.inFlight.get(m.urn) ?? 0) + 1);
      this.onStep?.({ id: c.id, type: c.type, op: m.op, phase: "start", elapsedMs: undefined });
    } else {
      c.status = "done";
    }
    this.byUrn.set(m.urn, c);
  }

  private outputs(m: StepMetadataLike): void {
    const c = this.byUrn.get(m.urn);
    if (!c) return;
    if (m.new?.outputs) c.outputs = m.new.outputs;
    if (changeKindOf(m.op) === "same" || c.status === "planned") return;
    const left = (this.inFlight.get(m.urn) ?? 1) - 1;
    this.inFlight.set(m.urn, left);
    const elapsed = this.now() - (this.started.get(m.urn) ?? this.now());
    if (left <= 0 && c.status !== "failed") {
      c.status = "done";
      c.durationMs = elapsed;
    }
    this.onStep?.({ id: c.id, type: c.type, op: m.op, phase: "done", elapsedMs: elapsed });
  }

  private failed(m: StepMetadataLike): void {
    const c = this.byUrn.get(m.urn);
    if (!c) return;
    c.status = "failed";
    c.durationMs = this.now() - (this.started.get(m.urn) ?? this.now());
    c.error ??= this.diags.filter((d) => d.severity === "error" && d.id === c.id).map((d) => d.message).join("\n") || undefined;
    this.onStep?.({ id: c.id, type: c.type, op: m.op, phase: "failed", elapsedMs: c.durationMs });
  }

  private diagnostic(d: { urn?: string; message: string; severity: string; ephemeral?: boolean }): void {
    if (d.severity === "debug" || isNoise(d.message)) return;
    const severity = d.severity === "error" ? "error" : d.severity === "warning" ? "warning" : "info";
    const id = d.urn ? urnName(d.urn) : undefined;
    const diag: Diagnostic = { severity, id, message: cleanMessage(d.message), ephemeral: d.ephemeral === true };
    if (diag.message === "") return;
    this.diags.push(diag);
    if (severity === "error" && d.urn) {
      const c = this.byUrn.get(d.urn);
      if (c) c.error = c.error ? `${c.error}\n${diag.message}` : diag.message;
    }
    this.onDiagnostic?.(diag);
  }

  /** Every resource change, in the order the engine first mentioned them. */
  changes(): ResourceChange[] {
    return [...this.byUrn.values()];
  }

  /** The diagnostics seen so far. */
  diagnostics(): Diagnostic[] {
    return [...this.diags];
  }
}

/** Engine chatter that says nothing to a homelab user. Pure. */
function isNoise(message: string): boolean {
  // The provider plugin is found on PATH by design (an ambient plugin), on every run.
  return isAmbientPluginNotice(message);
}

/** Strips colour codes and the engine's trailing newline from a diagnostic. Pure. */
function cleanMessage(s: string): string {
  return stripColorMarkup(s)
    // eslint-disable-next-line no-control-regex
    .replace(/\u001b\[[0-9;]*m/g, "")
    .trimEnd();
}

/** Counts of changes by kind, `same` included. Pure. */
export function countChanges(changes: readonly ResourceChange[]): Record<ChangeKind, number> {
  const out: Record<ChangeKind, number> = { create: 0, update: 0, replace: 0, delete: 0, same: 0, read: 0 };
  for (const c of changes) out[c.kind]++;
  return out;
}

/** True when anything would be created, updated, replaced or deleted. Pure. */
export function hasChanges(changes: readonly ResourceChange[]): boolean {
  return changes.some((c) => c.kind !== "same" && c.kind !== "read");
}
