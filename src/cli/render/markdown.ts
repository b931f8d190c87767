/**
 * The Markdown summary of a deploy for a pull-request comment
 * (`--summary FILE`): per service, the result and each resource change with
 * its reasons; guard refusals and errors with their hints. Pure.
 */
import type { ServiceOutcome, ServiceStatus } from "../../engine/deploy.ts";
import type { ResourceChange } from "../../engine/events.ts";
import { countsText, formatValue } from "./changes.ts";

const ICON: Record<ServiceStatus, string> = {
  applied: "✅",
  unchanged: "➖",
  pending: "📝",
  blocked: "⛔",
  failed: "❌",
  skipped: "⏭️",
  cancelled: "⚠️",
  declined: "➖",
};

const WORD: Record<ServiceStatus, string> = {
  applied: "applied",
  unchanged: "no changes",
  pending: "changes to apply",
  blocked: "blocked by a guard",
  failed: "failed",
  skipped: "skipped",
  cancelled: "interrupted",
  declined: "not applied",
};

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function code(s: string): string {
  return "`" + s.replace(/`/g, "'") + "`";
}

function changeItem(c: ResourceChange, past: boolean): string {
  const verb = past ? { create: "created", update: "updated", replace: "replaced", delete: "deleted", same: "unchanged", read: "read" }[c.kind] : c.kind;
  const props = c.properties.map((p) => `${code(p.key)}: ${code(formatValue(p.old))} → ${code(formatValue(p.new))}${p.replaces ? " **(forces replacement)**" : ""}`);
  const status = c.status === "failed" ? " — **failed**" : "";
  return `- **${verb}** ${code(c.id)}${status}${props.length ? `: ${props.join(", ")}` : ""}`;
}

/** The Markdown document. */
export function markdownSummary(outcomes: readonly ServiceOutcome[], opts: { envName: string; dryRun: boolean; ci: boolean; exitCode: number }): string {
  const lines: string[] = [];
  lines.push(`### homelab ${opts.dryRun ? "deploy preview" : "deploy"}: environment ${code(opts.envName)}`);
  lines.push("");
  lines.push("| service | result | changes |");
  lines.push("|---|---|---|");
  for (const o of outcomes) {
    const changes = o.applied ? countsText(o.applied, true) : o.preview ? countsText(o.preview, false) : "";
    lines.push(`| ${cell(o.service)} | ${ICON[o.status]} ${WORD[o.status]} | ${cell(changes)} |`);
  }
  lines.push("");
  for (const o of outcomes) {
    const changes = (o.applied ?? o.preview ?? []).filter((c) => c.kind !== "same" && c.kind !== "read");
    const notes = o.skippedResources.map((s) => `- ${code(s.id)}: ${s.reason}`);
    if (changes.length === 0 && o.violations.length === 0 && !o.error && notes.length === 0) continue;
    lines.push(`#### ${o.service}`);
    lines.push("");
    for (const c of changes) lines.push(changeItem(c, o.applied !== undefined));
    for (const n of notes) lines.push(n);
    for (const v of o.violations) lines.push(`- ⛔ ${v.message}. _${v.hint}_`);
    if (o.error) {
      lines.push(`- ❌ ${o.error.message.split("\n").join(" ")}${o.error.hint ? `. _${o.error.hint}_` : ""}`);
    }
    if (o.status === "skipped" && o.skippedBecause) lines.push(`- skipped: depends on ${code(o.skippedBecause)}, which did not deploy`);
    lines.push("");
  }
  const blocked = outcomes.some((o) => o.status === "blocked");
  if (blocked) lines.push("Deletions and replacements need `--allow-delete`; in a production environment every resource needs `protect: true`.", "");
  lines.push(`<sub>exit code ${opts.exitCode}${opts.ci ? " (CI mode)" : ""}</sub>`);
  return lines.join("\n") + "\n";
}
