/**
 * Text for people: what a deploy will do or did, per service and resource,
 * why (the inputs that changed, which force a replacement), where things go
 * (template and node, with the candidates they beat), and the summary.
 * Pure: strings in, strings out; the Style decides about colour.
 */
import type { ServiceOutcome, ServiceStatus } from "../../engine/deploy.ts";
import type { ChangeKind, PropertyChange, ResourceChange } from "../../engine/events.ts";
import type { GuardViolation } from "../../engine/guards.ts";
import { describeGuestSystem } from "../../plan/guest-system.ts";
import type { PlannedContainer, PlannedResource } from "../../plan/types.ts";
import type { Style } from "../output.ts";

const SYMBOL: Record<ChangeKind, string> = { create: "+", update: "~", replace: "+-", delete: "-", same: " ", read: ">" };

/** The symbol and coloured verb of a change kind. */
function kindLabel(kind: ChangeKind, o: Style, past = false): string {
  const verb = past
    ? { create: "created", update: "updated", replace: "replaced", delete: "deleted", same: "unchanged", read: "read" }[kind]
    : { create: "create", update: "update", replace: "replace", delete: "delete", same: "no change", read: "read" }[kind];
  const text = `${SYMBOL[kind]} ${verb}`;
  if (kind === "create") return o.green(text);
  if (kind === "update") return o.yellow(text);
  if (kind === "replace" || kind === "delete") return o.red(text);
  return o.dim(text);
}

/** A value as one short line (lists joined, long strings cut). Pure. */
export function formatValue(v: unknown): string {
  if (v === undefined) return "(none)";
  if (typeof v === "string") {
    const s = v.replace(/\s+/g, " ");
    return s.length > 60 ? `${s.slice(0, 28)}…${s.slice(-28)}` : s === "" ? '""' : s;
  }
  if (Array.isArray(v)) return `[${v.map(formatValue).join(", ")}]`;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return JSON.stringify(v) ?? "";
}

/** "memory 2048 → 4096" and friends. Pure. */
function formatProperty(p: PropertyChange, o: Style): string {
  const what = p.kind === "add" ? `${p.key} ${formatValue(p.new)}` : p.kind === "delete" ? `${p.key} ${formatValue(p.old)} removed` : `${p.key} ${formatValue(p.old)} → ${formatValue(p.new)}`;
  return p.replaces ? `${what} ${o.red("(forces replacement)")}` : what;
}

function shortTemplate(volid: string): string {
  return volid.slice(volid.indexOf("/") + 1).replace(/\.tar\.(zst|gz|xz)$/, "");
}

/** How a compose container gets Docker, as the preview says it. Pure. */
export function baseText(b: NonNullable<PlannedContainer["base"]>): string {
  if (b.mode === "install") return `installed in the container (${b.reason})`;
  return b.vmid !== undefined ? `cloned from the Docker-ready base CT ${b.vmid} (${b.key})` : `cloned from a Docker-ready base built first (${b.key}): ${b.reason}`;
}

/** Placement and template explanation of a planned container (for --dry-run and --verbose). Pure. */
export function explainPlacement(r: PlannedContainer, o: Style, indent = "      "): string[] {
  const lines: string[] = [];
  const t = r.template;
  const chosenT = t.candidates.find((c) => c.volid === t.chosen);
  lines.push(`${indent}template  ${shortTemplate(t.chosen)} ${o.dim(`— ${t.sticky ? "deployed now and still matches" : (chosenT?.reason ?? "chosen")}`)}`);
  for (const c of t.candidates.filter((c) => c.volid !== t.chosen)) {
    lines.push(`${indent}          ${o.dim(`${c.matched ? "beat" : "not"} ${shortTemplate(c.volid)}: ${c.reason}`)}`);
  }
  if (r.system) lines.push(`${indent}system    ${describeGuestSystem(r.system)}`);
  if (r.base) lines.push(`${indent}docker    ${baseText(r.base)}`);
  const p = r.placement;
  const chosenN = p.candidates.find((c) => c.node === p.chosen);
  lines.push(`${indent}node      ${p.chosen} ${o.dim(`— ${p.sticky ? "runs there now (placement is sticky)" : (chosenN?.reason ?? "chosen")}; strategy ${p.strategy}`)}`);
  for (const c of p.candidates.filter((c) => c.node !== p.chosen)) {
    lines.push(`${indent}          ${o.dim(`${c.eligible ? "beat" : "not"} ${c.node}: ${c.reason}`)}`);
  }
  return lines;
}

/** One line per resource change, with the reasons beneath. Pure. */
export function changeLines(changes: readonly ResourceChange[], planned: readonly PlannedResource[], o: Style, opts: { past: boolean; explain: boolean; showSame: boolean }): string[] {
  const lines: string[] = [];
  const width = Math.max(0, ...changes.map((c) => c.id.length));
  for (const c of changes) {
    if (c.kind === "same" && !opts.showSame && !opts.explain) continue;
    const extra: string[] = [];
    const plannedR = planned.find((p) => p.id === c.id);
    if (c.kind === "create" && plannedR?.kind === "proxmox:container") {
      const sys = plannedR.system;
      const what = sys ? `, ${sys.release.label}${sys.docker ? `, Compose ${sys.docker.compose}` : ""}` : "";
      const base = plannedR.base?.mode === "clone" ? `, clone of ${plannedR.base.vmid !== undefined ? `base CT ${plannedR.base.vmid}` : "a base built first"}` : "";
      extra.push(o.dim(`on ${plannedR.inputs.node}, ${shortTemplate(plannedR.inputs.template)}, ${plannedR.inputs.memory} MB, ${plannedR.inputs.cores} core(s)${what}${base}`));
    }
    const vmid = c.outputs?.["vmid"];
    if (opts.past && typeof vmid === "number") extra.push(o.dim(`vmid ${vmid}`));
    if (c.protect) extra.push(o.yellow("protected"));
    if (c.status === "failed") extra.push(o.red("FAILED"));
    lines.push(`  ${kindLabel(c.kind, o, opts.past && c.status === "done")}  ${c.id.padEnd(width)}  ${extra.join(", ")}`.trimEnd());
    if (c.summary !== undefined && c.summary.length > 0) {
      for (const l of c.summary) lines.push(`      ${l}`);
    } else if (c.kind === "update" || c.kind === "replace") {
      for (const p of c.properties) lines.push(`      ${formatProperty(p, o)}`);
      if (c.kind === "replace" && !c.properties.some((p) => p.replaces)) lines.push(`      ${o.dim("the provider requires a replacement")}`);
    }
    if (opts.explain && plannedR?.kind === "proxmox:container" && c.kind !== "delete") lines.push(...explainPlacement(plannedR, o));
    if (c.error) for (const l of c.error.split("\n")) lines.push(`      ${o.red(l)}`);
  }
  return lines;
}

/** Counts as "1 to create, 2 to update" (or "1 created"). Pure. */
export function countsText(changes: readonly ResourceChange[], past: boolean): string {
  const n: Record<string, number> = {};
  for (const c of changes) if (c.kind !== "same" && c.kind !== "read") n[c.kind] = (n[c.kind] ?? 0) + 1;
  const order: ChangeKind[] = ["create", "update", "replace", "delete"];
  const verbs: Record<string, [string, string]> = { create: ["to create", "created"], update: ["to update", "updated"], replace: ["to replace", "replaced"], delete: ["to delete", "deleted"] };
  const parts = order.filter((k) => (n[k] ?? 0) > 0).map((k) => `${n[k] ?? 0} ${(verbs[k] ?? ["", ""])[past ? 1 : 0]}`);
  return parts.length > 0 ? parts.join(", ") : "no changes";
}

/** A status word for a service. */
function statusLabel(s: ServiceStatus, o: Style): string {
  switch (s) {
    case "applied":
      return o.green("applied");
    case "unchanged":
      return o.dim("unchanged");
    case "pending":
      return o.yellow("changes pending");
    case "blocked":
      return o.red("BLOCKED");
    case "failed":
      return o.red("FAILED");
    case "skipped":
      return o.yellow("skipped");
    case "cancelled":
      return o.yellow("interrupted");
    case "declined":
      return o.dim("not applied");
  }
}

function violationLines(vs: readonly GuardViolation[], o: Style): string[] {
  return vs.flatMap((v) => [`  ${o.red("✗")} ${v.message}`, `    ${o.dim(`hint: ${v.hint}`)}`]);
}

/** The preview of one service: header, notes, changes, guard refusals, errors. Pure. */
export function servicePreviewText(out: ServiceOutcome, o: Style, opts: { explain: boolean; verbose: boolean }): string {
  const lines: string[] = [];
  const counts = out.preview
    ? countsText(out.preview, false) + (out.shortcut ? o.dim(" (as deployed: state and plan match)") : "")
    : out.previewSkipped
      ? o.dim("applied without a separate preview (--yes): changes are listed as they are made")
      : "";
  lines.push(`${o.bold(out.service)} ${o.dim(`(${out.stack})`)}${counts ? `  ${counts}` : ""}${out.status === "failed" || out.status === "blocked" || out.status === "skipped" ? `  ${statusLabel(out.status, o)}` : ""}`);
  for (const s of out.skippedResources) lines.push(`  ${o.yellow("!")} ${s.id}  ${o.yellow(s.reason)}`);
  if (out.pending.length > 0) {
    lines.push(`  ${o.yellow("!")} an interrupted run left ${out.pending.length} operation(s) pending (${out.pending.map((p) => `${p.id}: ${p.op}`).join(", ")}): ${out.pendingCleared ? "cleared" : "cleared by the next deploy"}`);
  }
  for (const a of out.adopted) {
    lines.push(`  ${o.yellow("!")} ${a.id}: adopted ${a.physicalId}, which the interrupted run had created ${a.complete ? "(its real state is read before the update)" : "half-way (it is replaced: created anew, the remains deleted)"}`);
  }
  if (out.preview) lines.push(...changeLines(out.preview, out.plan?.resources ?? [], o, { past: false, explain: opts.explain, showSame: opts.verbose }));
  else if (opts.explain && out.plan) {
    for (const r of out.plan.resources) if (r.kind === "proxmox:container") lines.push(`  ${r.id}`, ...explainPlacement(r, o));
  }
  if (out.plan) for (const n of out.plan.notes) lines.push(`  ${o.dim(`note: ${n}`)}`);
  lines.push(...violationLines(out.violations, o));
  lines.push(...errorLines(out, o));
  return lines.join("\n");
}

/** The error of a service with its hint. Pure. */
export function errorLines(out: ServiceOutcome, o: Style): string[] {
  const lines: string[] = [];
  if (out.status === "skipped" && out.skippedBecause) lines.push(`  ${o.yellow(`not deployed: it depends on ${out.skippedBecause}, which did not deploy`)}`);
  if (out.error) {
    for (const l of out.error.message.split("\n")) lines.push(`  ${o.red(l)}`);
    if (out.error.hint) lines.push(`  ${o.dim(`hint: ${out.error.hint}`)}`);
  }
  return lines;
}

/** The closing summary of a run: one line per service and a total. Pure. */
export function summaryText(outcomes: readonly ServiceOutcome[], o: Style, opts: { envName: string; dryRun: boolean; durationMs: number }): string {
  const lines: string[] = [];
  const width = Math.max(0, ...outcomes.map((x) => x.service.length));
  for (const x of outcomes) {
    const detail = x.applied ? countsText(x.applied, true) : x.preview ? countsText(x.preview, false) : "";
    lines.push(`  ${x.service.padEnd(width)}  ${statusLabel(x.status, o)}${detail && detail !== "no changes" ? `  ${o.dim(detail)}` : ""}`);
  }
  const by = (s: ServiceStatus): number => outcomes.filter((x) => x.status === s).length;
  const parts = [
    opts.dryRun ? `${by("pending")} with changes` : `${by("applied")} applied`,
    `${by("unchanged")} unchanged`,
    ...(by("blocked") ? [`${by("blocked")} blocked`] : []),
    ...(by("failed") ? [`${by("failed")} failed`] : []),
    ...(by("skipped") ? [`${by("skipped")} skipped`] : []),
    ...(by("cancelled") ? [`${by("cancelled")} interrupted`] : []),
    ...(by("declined") ? [`${by("declined")} not applied`] : []),
  ];
  lines.push(`${o.bold(opts.dryRun ? "Preview" : "Deploy")} of ${outcomes.length} service(s) to ${opts.envName}: ${parts.join(", ")} ${o.dim(`(${(opts.durationMs / 1000).toFixed(1)} s)`)}`);
  return lines.join("\n");
}
