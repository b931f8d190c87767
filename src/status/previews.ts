/**
 * The last preview of each service, recorded by `homelab deploy --dry-run`
 * in `.homelab/previews/<env>/<service>.json` (mode 0600), so the status page
 * and `homelab status` can show changes waiting to be applied. A record is
 * pending only while it is newer than the service's last deploy. It holds
 * what changes and why in words (input names, numbers and flags, the
 * describer's lines), never a string value of an input: those may be secret.
 */
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { previewsDir } from "../config/homelab-dir.ts";

/** One resource change of a preview. */
export interface PreviewChange {
  resource: string;
  type: string;
  kind: string;
  /** Changed inputs: `memory 512 → 1024` for numbers and flags, the name alone for anything else. */
  inputs: string[];
  replaces: boolean;
  /** What the change means, where the provider says (compose files changed, secrets changed). */
  summary: string[];
}

/** What `deploy --dry-run` found for one service. */
export interface PreviewRecord {
  service: string;
  environment: string;
  at: string;
  /** pending: changes would be applied; unchanged; blocked: a guard would refuse. */
  status: "pending" | "unchanged" | "blocked";
  changes: PreviewChange[];
}

/** The parts of a deploy outcome a preview record is made from (the engine's ServiceOutcome fits). */
export interface PreviewOutcome {
  service: string;
  status: string;
  preview:
    | ReadonlyArray<{
        id: string;
        type: string;
        kind: string;
        properties: ReadonlyArray<{ key: string; kind: string; replaces: boolean; old: unknown; new: unknown }>;
        summary?: readonly string[] | undefined;
      }>
    | undefined;
}

function shown(v: unknown): string | undefined {
  return typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
}

/** The record of one outcome; undefined for outcomes that previewed nothing (failed, skipped). Pure. */
export function previewRecord(o: PreviewOutcome, environment: string, at: Date): PreviewRecord | undefined {
  if (o.status !== "pending" && o.status !== "unchanged" && o.status !== "blocked") return undefined;
  const changes = (o.preview ?? [])
    .filter((c) => c.kind !== "same" && c.kind !== "read")
    .map((c): PreviewChange => ({
      resource: c.id,
      type: c.type,
      kind: c.kind,
      inputs: c.properties.map((p) => {
        const before = shown(p.old);
        const after = shown(p.new);
        if (p.kind === "update" && before !== undefined && after !== undefined) return `${p.key} ${before} → ${after}`;
        if (p.kind === "add" && after !== undefined) return `${p.key} ${after}`;
        return p.kind === "delete" ? `${p.key} removed` : p.key;
      }),
      replaces: c.kind === "replace" || c.properties.some((p) => p.replaces),
      summary: [...(c.summary ?? [])],
    }));
  return { service: o.service, environment, at: at.toISOString(), status: o.status, changes };
}

/** Writes the records of a dry run (one file per service, replaced atomically). */
export async function recordPreviews(root: string, environment: string, outcomes: readonly PreviewOutcome[], at = new Date()): Promise<void> {
  const dir = previewsDir(root, environment);
  const records = outcomes.map((o) => previewRecord(o, environment, at)).filter((r) => r !== undefined);
  if (records.length === 0) return;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const r of records) {
    const file = path.join(dir, `${r.service}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(r, null, 2) + "\n", { mode: 0o600 });
    await rename(tmp, file);
  }
}

/** Every preview record of an environment, by service; unreadable files are skipped. */
export async function readPreviews(root: string, environment: string): Promise<Map<string, PreviewRecord>> {
  const dir = previewsDir(root, environment);
  const out = new Map<string, PreviewRecord>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    try {
      const r = JSON.parse(await readFile(path.join(dir, name), "utf8")) as PreviewRecord;
      if (typeof r.service === "string" && typeof r.at === "string" && Array.isArray(r.changes)) out.set(r.service, r);
    } catch {
      // A record being replaced, or damaged: the next dry run writes it again.
    }
  }
  return out;
}
