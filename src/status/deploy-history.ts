/**
 * A service's last deploy, from its Pulumi stack: when, whether it
 * succeeded, and what changed. The file backend keeps each update's record
 * in `.pulumi/history/<project>/<stack>/<stack>-<time>.history.json` (kind,
 * start and end, result, counts of resource changes) and each resource's
 * `created` / `modified` times in the state, so both are read from the
 * backend's store (a folder, a PostgreSQL table, an S3 bucket: every
 * self-managed backend keeps the same keys), as `homelab status` reads the
 * state. Other backends give only the time of the last update (from the stack
 * listing).
 */
import path from "node:path";
import { gunzipSync } from "node:zlib";
import type { BackendStore } from "../engine/backend-store.ts";
import { PROJECT } from "../engine/stacks.ts";

/** One resource the last deploy created or updated. */
export interface ChangedResource {
  resource: string;
  change: "created" | "updated";
}

/** A service's last deploy. */
export interface LastDeploy {
  /** When it ended (ISO). */
  at: string;
  startedAt: string | null;
  /** update, destroy, refresh, ...; null when the backend does not say. */
  kind: string | null;
  /** succeeded, failed, in-progress; null when the backend does not say. */
  result: string | null;
  durationMs: number | null;
  /** The engine's counts: create, update, delete, replace, same. */
  counts: Record<string, number> | null;
  /** Resources it created or updated, from the state; null when the backend does not say. */
  changed: ChangedResource[] | null;
}

interface HistoryRecord {
  kind?: unknown;
  startTime?: unknown;
  endTime?: unknown;
  result?: unknown;
  resourceChanges?: unknown;
}

/** The key prefix of a stack's update records in a self-managed backend. */
function historyPrefix(stack: string): string {
  return `.pulumi/history/${PROJECT}/${stack}/`;
}

/** The history folder of a stack in a file backend. */
export function historyDir(backendDir: string, stack: string): string {
  return path.join(backendDir, ...historyPrefix(stack).split("/"));
}

/** The newest update record's file name in a listing (names end in `-<nanoseconds>.history.json`). Pure. */
export function newestHistoryFile(names: readonly string[]): string | undefined {
  let best: { name: string; t: bigint } | undefined;
  for (const name of names) {
    const m = /-(\d+)\.history\.json(\.gz)?$/.exec(name);
    if (!m?.[1]) continue;
    const t = BigInt(m[1]);
    if (!best || t > best.t) best = { name, t };
  }
  return best?.name;
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * The resources an update starting at `startMs` created or updated: those
 * whose state says they were modified since (Pulumi records times in
 * nanoseconds, the history in whole seconds, hence the second of slack). Pure.
 */
export function changedSince(deployment: Record<string, unknown>, startMs: number): ChangedResource[] {
  const out: ChangedResource[] = [];
  const resources = Array.isArray(deployment["resources"]) ? (deployment["resources"] as unknown[]) : [];
  for (const raw of resources) {
    const r = record(raw);
    const type = typeof r["type"] === "string" ? r["type"] : "";
    const urn = typeof r["urn"] === "string" ? r["urn"] : "";
    if (type.startsWith("pulumi:") || urn === "" || r["delete"] === true) continue;
    const modified = typeof r["modified"] === "string" ? Date.parse(r["modified"]) : NaN;
    const created = typeof r["created"] === "string" ? Date.parse(r["created"]) : NaN;
    if (!(modified >= startMs - 1000)) continue;
    out.push({ resource: urn.slice(urn.lastIndexOf("::") + 2), change: created >= startMs - 1000 ? "created" : "updated" });
  }
  return out.sort((a, b) => (a.resource < b.resource ? -1 : a.resource > b.resource ? 1 : 0));
}

/** A last deploy from an update record and the current deployment. Pure. */
function lastDeployOf(h: HistoryRecord, deployment: Record<string, unknown> | undefined, fallbackAt: string | undefined): LastDeploy | undefined {
  const start = typeof h.startTime === "number" ? h.startTime * 1000 : undefined;
  const end = typeof h.endTime === "number" && h.endTime > 0 ? h.endTime * 1000 : undefined;
  const at = end !== undefined ? new Date(end).toISOString() : fallbackAt;
  if (at === undefined) return undefined;
  const counts: Record<string, number> = {};
  for (const [k, v] of Object.entries(record(h.resourceChanges))) if (typeof v === "number") counts[k] = v;
  return {
    at,
    startedAt: start !== undefined ? new Date(start).toISOString() : null,
    kind: typeof h.kind === "string" ? h.kind : null,
    result: typeof h.result === "string" ? h.result : null,
    durationMs: start !== undefined && end !== undefined ? Math.max(0, end - start) : null,
    counts,
    changed: deployment && start !== undefined ? changedSince(deployment, start) : null,
  };
}

/**
 * Reads the last deploy of a stack from its backend's store; undefined when
 * the stack has no update record. `deployment` is its current state (the raw
 * deployment the engine's reader returns).
 */
export async function readLastDeploy(store: BackendStore, stack: string, deployment: Record<string, unknown> | undefined, fallbackAt: string | undefined): Promise<LastDeploy | undefined> {
  const prefix = historyPrefix(stack);
  const names = (await store.list(prefix)).map((k) => k.slice(prefix.length)).filter((n) => !n.includes("/"));
  const newest = newestHistoryFile(names);
  if (!newest) return undefined;
  const bytes = await store.read(prefix + newest);
  if (bytes === undefined) return undefined;
  const text = newest.endsWith(".gz") ? gunzipSync(bytes).toString("utf8") : bytes.toString("utf8");
  return lastDeployOf(JSON.parse(text) as HistoryRecord, deployment, fallbackAt);
}

/** What is known without a history: the time of the last update. Pure. */
export function lastDeployFromListing(lastUpdate: string | undefined): LastDeploy | undefined {
  return lastUpdate === undefined ? undefined : { at: lastUpdate, startedAt: null, kind: null, result: null, durationMs: null, counts: null, changed: null };
}
