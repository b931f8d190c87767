/**
 * Gathers what the status model is built from: the services' configuration,
 * each stack's last deploy, the recorded previews, and the monitor's event
 * history (uptime, remediations), for `homelab status` and the status page
 * alike. Effects live here; the model itself is pure (model.ts).
 */
import { open, stat } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import type { HealthCheck } from "../config/monitoring.ts";
import { monitorDir } from "../config/homelab-dir.ts";
import type { ServiceStatusRow } from "../engine/status.ts";
import type { StackState } from "../engine/state.ts";
import type { BackendStore } from "../engine/backend-store.ts";
import type { MonitorEvent } from "../monitor/events.ts";
import { monitorAlive } from "../monitor/status.ts";
import type { MonitorStateFile } from "../monitor/status.ts";
import type { LastDeploy } from "./deploy-history.ts";
import { lastDeployFromListing, readLastDeploy } from "./deploy-history.ts";
import { buildStatusModel, serviceInfo } from "./model.ts";
import type { MonitorInput, ServiceInfo, StatusModel } from "./model.ts";
import { readPreviews } from "./previews.ts";
import { RecentHistory, UptimeSeries } from "./series.ts";

/** How much of each history file is read (its end): enough for the remembered events, bounded for huge settings. */
const HISTORY_TAIL_BYTES = 4 * 1024 * 1024;

/** What last deploys are read through (the engine is one). */
export interface DeployStateReader {
  /** The backend's objects, where homelab reads them itself (update records are there). */
  store: BackendStore | undefined;
  readState(stack: string): Promise<StackState | undefined>;
}

/** The services' info from the configuration, by name. Pure. */
export function configInfo(services: Iterable<{ name: string; description: string | undefined; monitoring: { health_checks?: readonly HealthCheck[] | undefined } | undefined }>, label: (c: HealthCheck) => string): Map<string, ServiceInfo> {
  return new Map([...services].map((s) => [s.name, serviceInfo(s, label)]));
}

/**
 * Each deployed stack's last deploy. A self-managed backend's history says
 * what changed; elsewhere only when. `cache` (by stack and update time) spares
 * re-reading stacks nothing deployed to since.
 */
export async function readLastDeploys(reader: DeployStateReader, rows: readonly ServiceStatusRow[], cache: Map<string, { key: string; value: LastDeploy | undefined }> = new Map()): Promise<Map<string, LastDeploy>> {
  const out = new Map<string, LastDeploy>();
  const store = reader.store;
  await Promise.all(
    rows.map(async (r) => {
      if (r.lastUpdate === undefined) return;
      const key = `${r.lastUpdate}`;
      let value = cache.get(r.stack)?.key === key ? cache.get(r.stack)?.value : undefined;
      if (value === undefined) {
        value = store !== undefined ? await readLastDeploy(store, r.stack, (await reader.readState(r.stack))?.deployment, r.lastUpdate).catch(() => undefined) : undefined;
        value ??= lastDeployFromListing(r.lastUpdate);
        cache.set(r.stack, { key, value });
      }
      if (value) out.set(r.service, value);
    }),
  );
  return out;
}

async function tail(file: string, max: number): Promise<string> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return "";
  }
  const start = Math.max(0, size - max);
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const text = buf.toString("utf8");
    // A cut in the middle of a line: that line is dropped.
    return start > 0 ? text.slice(text.indexOf("\n") + 1) : text;
  } finally {
    await fh.close();
  }
}

/** Feeds the monitor's history (the rotated file first, then the current one; each file's last 4 MiB) to `sink`, oldest first. */
export async function readHistory(root: string, envName: string, sink: (e: MonitorEvent) => void, maxBytes = HISTORY_TAIL_BYTES): Promise<number> {
  const file = path.join(monitorDir(root, envName), "history.jsonl");
  let n = 0;
  for (const f of [`${file}.1`, file]) {
    for (const line of (await tail(f, maxBytes)).split("\n")) {
      if (line === "") continue;
      try {
        const e = JSON.parse(line) as MonitorEvent;
        if (typeof e.type === "string" && typeof e.at === "string") {
          sink(e);
          n++;
        }
      } catch {
        // A line cut by a crash: skipped.
      }
    }
  }
  return n;
}

/** Whether a process runs here (signal 0 asks without touching it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The monitor input from a state file a monitor left. */
function monitorFromFile(s: MonitorStateFile | undefined): MonitorInput | undefined {
  if (!s) return undefined;
  return { source: "state-file", updatedAt: s.updatedAt, pid: s.pid, hostname: s.hostname, running: monitorAlive(s, hostname(), processAlive), services: s.services };
}

/** The model for `homelab status`: the deployment it read, the monitor's state file and history, last deploys and previews; the cluster is not asked. */
export async function collectStatusModel(o: {
  root: string;
  envName: string;
  backendUrl: string;
  reader: DeployStateReader;
  rows: readonly ServiceStatusRow[];
  config: ReadonlyMap<string, ServiceInfo>;
  monitor: MonitorStateFile | undefined;
  now?: number;
}): Promise<StatusModel> {
  const series = new UptimeSeries();
  const history = new RecentHistory();
  await readHistory(o.root, o.envName, (e) => {
    if (e.type === "check") series.record(e.service, Date.parse(e.at), e.ok, e.latencyMs);
    else history.record(e);
  });
  const [deploys, previews] = await Promise.all([readLastDeploys(o.reader, o.rows), readPreviews(o.root, o.envName)]);
  return buildStatusModel({
    environment: o.envName,
    backend: o.backendUrl,
    now: o.now ?? Date.now(),
    config: o.config,
    names: o.rows.map((r) => r.service),
    rows: o.rows,
    monitor: monitorFromFile(o.monitor),
    series,
    history,
    deploys,
    previews,
    nodes: undefined,
  });
}
