/**
 * The status model: one view of an environment that both `homelab status
 * --json` and the monitor's status page render. Per service: its state for
 * people (healthy, unhealthy with the failing check, remediating, needs a
 * human, never deployed, ...), checks, uptime and response time, where it
 * runs, its links, the last deploy, pending changes, remediation history;
 * per node: memory and guests. Pure: every input is data gathered by
 * collect.ts (status) or the page's hub (monitor).
 *
 * Nothing secret goes in: resources contribute only node, vmid, address,
 * template and short details; previews hold no string values; links are
 * origins without credentials.
 */
import type { HealthCheck } from "../config/monitoring.ts";
import type { ServiceStatusRow, StatusResource } from "../engine/status.ts";
import type { ServiceSnapshot } from "../monitor/monitor.ts";
import type { Phase, RemediationRecord } from "../monitor/state-machine.ts";
import { healthLines } from "../monitor/status.ts";
import type { InventoryGuest, InventoryNode } from "../proxmox/inventory.ts";
import { CONTAINER_TYPE } from "../provider/tokens.ts";
import type { LastDeploy } from "./deploy-history.ts";
import { lastDeployFromListing } from "./deploy-history.ts";
import type { PreviewChange, PreviewRecord } from "./previews.ts";
import type { HistoryEntry, RecentHistory, UptimeSeries, UptimeView } from "./series.ts";

/** A service's state, as people read it. */
export type StatusLevel = "unhealthy" | "needs_human" | "remediating" | "checking" | "unknown" | "never_deployed" | "orphaned" | "unmonitored" | "healthy";

/** Every level, worst first (the summary's order). */
export const LEVELS: readonly StatusLevel[] = ["unhealthy", "needs_human", "remediating", "checking", "unknown", "never_deployed", "orphaned", "unmonitored", "healthy"];

/** Words for each level. */
export const LEVEL_LABELS: Record<StatusLevel, string> = {
  unhealthy: "Unhealthy",
  needs_human: "Needs a human",
  remediating: "Remediating",
  checking: "Checking",
  unknown: "No health data",
  never_deployed: "Never deployed",
  orphaned: "Orphaned",
  unmonitored: "Not monitored",
  healthy: "Healthy",
};

/** The level of a monitor phase. Pure. */
export function levelOfPhase(p: Phase): StatusLevel {
  switch (p) {
    case "healthy":
      return "healthy";
    case "failing":
    case "unhealthy":
    case "backoff":
      return "unhealthy";
    case "restarting":
    case "recreating":
    case "grace":
    case "waiting_deploy":
      return "remediating";
    case "gave_up":
    case "needs_human":
      return "needs_human";
    case "unknown":
      return "checking";
  }
}

/** What the configuration says about a service (no secrets: descriptions and checks only). */
export interface ServiceInfo {
  name: string;
  description: string | undefined;
  checks: Array<{ label: string; type: HealthCheck["type"]; url: string | undefined; resource: string | undefined }>;
}

/** A service's info from its configuration. Pure. */
export function serviceInfo(s: { name: string; description: string | undefined; monitoring: { health_checks?: readonly HealthCheck[] | undefined } | undefined }, label: (c: HealthCheck) => string): ServiceInfo {
  return {
    name: s.name,
    description: s.description,
    checks: (s.monitoring?.health_checks ?? []).map((c) => ({ label: label(c), type: c.type, url: c.type === "http" ? c.url : undefined, resource: c.resource })),
  };
}

/** The monitor's view that a model is built from: the running monitor's, or the state file it left. */
export interface MonitorInput {
  source: "live" | "state-file";
  updatedAt: string;
  pid: number;
  hostname: string;
  /** Whether that monitor still runs; undefined when it cannot be told (another host). */
  running: boolean | undefined;
  services: readonly ServiceSnapshot[];
}

/** The cluster as last read: nodes and guests, or why it could not be read. */
export type NodesInput = { at: string; nodes: readonly InventoryNode[]; guests: readonly InventoryGuest[] } | { at: string; error: string };

/** Everything a model is built from. */
export interface ModelInput {
  environment: string;
  backend: string;
  now: number;
  /** Services of the repository (valid ones), by name. */
  config: ReadonlyMap<string, ServiceInfo>;
  /** Which services to show, in order (default: every row and every configured service, sorted). */
  names?: readonly string[];
  /** The deployment (homelab status' rows); undefined while not read yet. */
  rows: readonly ServiceStatusRow[] | undefined;
  /** Why the deployment could not be read, if it could not. */
  deploymentError?: string | undefined;
  monitor: MonitorInput | undefined;
  series: UptimeSeries | undefined;
  history: RecentHistory | undefined;
  deploys: ReadonlyMap<string, LastDeploy>;
  previews: ReadonlyMap<string, PreviewRecord>;
  /** Undefined: not read (homelab status does not ask the cluster). */
  nodes: NodesInput | undefined;
}

/** One check of a service, with its last result. */
export interface CheckView {
  label: string;
  ok: boolean | null;
  detail: string;
  at: string | null;
}

/** Where one container runs. */
export interface PlacementView {
  resource: string;
  node: string | null;
  vmid: number | null;
  address: string | null;
  template: string | null;
  protect: boolean;
}

/** Changes a recorded preview found that no deploy has applied since. */
export interface PendingView {
  at: string;
  status: PreviewRecord["status"];
  changes: PreviewChange[];
}

/** One service in the model. The first fields are those `homelab status --json` always had. */
export interface ServiceView {
  service: string;
  stack: string;
  /** From the deployment; `unknown` while it has not been read. */
  state: ServiceStatusRow["state"] | "unknown";
  lastUpdate: string | undefined;
  resources: StatusResource[];
  pendingOperations: number;
  lock: string | undefined;
  /** The monitor's health and last repair as lines (as before); null without monitor data. */
  health: { health: string; remediation: string | undefined } | null;
  description: string | null;
  level: StatusLevel;
  label: string;
  /** The monitor's phase and why; null without monitor data. */
  phase: Phase | null;
  reason: string | null;
  since: string | null;
  /** The checks that fail now, with their reasons. */
  failing: Array<{ check: string; detail: string }>;
  checks: CheckView[];
  uptime: UptimeView | null;
  placement: PlacementView[];
  /** The service's own pages (origins of its http checks). */
  links: string[];
  lastDeploy: LastDeploy | null;
  pending: PendingView | null;
  remediation: { last: (Omit<RemediationRecord, "at"> & { at: string }) | null; lastHour: number; recent: HistoryEntry[] };
}

/** A guest on a node. */
export interface GuestView {
  vmid: number;
  name: string | null;
  type: "lxc" | "qemu";
  status: string;
  /** The service it belongs to, when it is one of the shown services' containers. */
  service: string | null;
}

/** A node of the cluster. */
export interface NodeView {
  name: string;
  online: boolean;
  /** Bytes. */
  memTotal: number;
  memUsed: number;
  memFree: number;
  cpuCount: number;
  cpuUsage: number;
  guests: GuestView[];
}

/** The whole model. */
export interface StatusModel {
  environment: string;
  backend: string;
  generatedAt: string;
  monitor: { source: "live" | "state-file" | "none"; updatedAt: string | null; pid: number | null; hostname: string | null; running: boolean | null };
  deployment: { read: boolean; error: string | null };
  summary: Record<StatusLevel, number> & { total: number };
  services: ServiceView[];
  /** Null when the cluster was not asked. */
  nodes: { at: string; error: string | null; list: NodeView[] } | null;
}

function containersOf(resources: readonly StatusResource[]): StatusResource[] {
  return resources.filter((r) => r.type === CONTAINER_TYPE);
}

/** The origins of a service's http checks, with `{address}` filled from its containers; no credentials, no paths. Pure. */
export function serviceLinks(info: ServiceInfo | undefined, resources: readonly StatusResource[]): string[] {
  const containers = containersOf(resources);
  const out = new Set<string>();
  for (const c of info?.checks ?? []) {
    if (c.type !== "http" || c.url === undefined) continue;
    const container = c.resource !== undefined ? containers.find((x) => x.id === c.resource) : containers.length === 1 ? containers[0] : undefined;
    const address = container?.address;
    if (c.url.includes("{address}") && address === undefined) continue;
    try {
      const u = new URL(c.url.replaceAll("{address}", address ?? ""));
      if (u.protocol === "http:" || u.protocol === "https:") out.add(`${u.protocol}//${u.host}/`);
    } catch {
      // Not a URL once filled in: nothing to link.
    }
  }
  return [...out];
}

/** The level and its reason for one service. Pure. */
function levelOf(row: ServiceStatusRow | undefined, info: ServiceInfo | undefined, snap: ServiceSnapshot | undefined, monitor: MonitorInput | undefined): { level: StatusLevel; reason: string | null } {
  if (row?.state === "orphaned") return { level: "orphaned", reason: "its service folder is gone but its stack remains" };
  if (row?.state === "never-deployed") return { level: "never_deployed", reason: `not deployed yet (homelab deploy ${row.service})` };
  if (!info || info.checks.length === 0) return { level: info ? "unmonitored" : "unknown", reason: info ? "it has no monitoring.health_checks" : "its configuration is not valid now" };
  if (!snap) return { level: "unknown", reason: monitor ? "this monitor does not watch it" : "no monitor has run in this environment" };
  return { level: levelOfPhase(snap.phase), reason: snap.phase === "healthy" ? null : snap.reason };
}

/** One service of the model. Pure. */
function serviceView(name: string, input: ModelInput, rowsByName: ReadonlyMap<string, ServiceStatusRow>): ServiceView {
  const row = rowsByName.get(name);
  const info = input.config.get(name);
  const snap = input.monitor?.services.find((s) => s.service === name);
  const { level, reason } = levelOf(row, info, snap, input.monitor);
  const resources = row?.resources ?? [];
  const lastDeploy = input.deploys.get(name) ?? lastDeployFromListing(row?.lastUpdate) ?? null;
  const preview = input.previews.get(name);
  const pending = preview && preview.status !== "unchanged" && preview.changes.length > 0 && (lastDeploy === null || Date.parse(preview.at) > Date.parse(lastDeploy.at)) ? { at: preview.at, status: preview.status, changes: preview.changes } : null;
  // A service nobody deployed has nothing to check: its checks' "not deployed" results are no outage.
  const checked = snap && level !== "never_deployed";
  const checks: CheckView[] = checked
    ? snap.checks.map((c) => ({ label: c.label, ok: c.ok ?? null, detail: c.detail, at: c.at ?? null }))
    : (info?.checks ?? []).map((c) => ({ label: c.label, ok: null, detail: level === "never_deployed" ? "not deployed" : "no result", at: null }));
  const monitorFile = input.monitor ? { environment: input.environment, updatedAt: input.monitor.updatedAt, pid: input.monitor.pid, hostname: input.monitor.hostname, services: [...input.monitor.services] } : undefined;
  return {
    service: name,
    stack: row?.stack ?? `${input.environment}.${name}`,
    state: row?.state ?? (input.rows ? "never-deployed" : "unknown"),
    lastUpdate: row?.lastUpdate,
    resources,
    pendingOperations: row?.pendingOperations ?? 0,
    lock: row?.lock,
    health: healthLines(monitorFile, name) ?? null,
    description: info?.description ?? null,
    level,
    label: LEVEL_LABELS[level],
    phase: snap?.phase ?? null,
    reason,
    since: snap?.since ?? null,
    failing: level === "healthy" ? [] : checks.filter((c) => c.ok === false).map((c) => ({ check: c.label, detail: c.detail })),
    checks,
    uptime: level === "never_deployed" ? null : (input.series?.view(name, input.now) ?? null),
    placement: containersOf(resources).map((r) => ({ resource: r.id, node: r.node ?? null, vmid: r.vmid ?? null, address: r.address ?? null, template: r.template ?? null, protect: r.protect })),
    links: serviceLinks(info, resources),
    lastDeploy,
    pending,
    remediation: { last: snap?.lastRemediation ?? null, lastHour: snap?.remediationsLastHour ?? 0, recent: input.history?.list(name) ?? [] },
  };
}

/** The names a model shows: the given ones, else every deployed or configured service. Pure. */
function modelNames(input: Pick<ModelInput, "names" | "rows" | "config">): string[] {
  if (input.names) return [...input.names];
  return [...new Set([...(input.rows ?? []).map((r) => r.service), ...input.config.keys()])].sort();
}

/** The nodes part of the model. Pure. */
function nodesView(nodes: NodesInput | undefined, services: readonly ServiceView[]): StatusModel["nodes"] {
  if (!nodes) return null;
  if ("error" in nodes) return { at: nodes.at, error: nodes.error, list: [] };
  const owner = new Map<string, string>();
  for (const s of services) for (const p of s.placement) if (p.vmid !== null && p.node !== null) owner.set(`${p.node}/${p.vmid}`, s.service);
  const list = [...nodes.nodes]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => ({
      name: n.name,
      online: n.online,
      memTotal: n.memTotal,
      memUsed: n.memUsed,
      memFree: n.memFree,
      cpuCount: n.cpuCount,
      cpuUsage: n.cpuUsage,
      guests: nodes.guests
        .filter((g) => g.node === n.name && !g.template)
        .sort((a, b) => a.vmid - b.vmid)
        .map((g) => ({ vmid: g.vmid, name: g.name ?? null, type: g.type, status: g.status, service: owner.get(`${g.node}/${g.vmid}`) ?? null })),
    }));
  return { at: nodes.at, error: null, list };
}

/** Counts per level. Pure. */
function summaryOf(services: readonly Pick<ServiceView, "level">[]): StatusModel["summary"] {
  const summary = { total: services.length } as StatusModel["summary"];
  for (const l of LEVELS) summary[l] = 0;
  for (const s of services) summary[s.level]++;
  return summary;
}

/** A URL without credentials, query or fragment (a backend URL may carry a password). Pure. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    return u.href;
  } catch {
    return (url.split("?")[0] ?? "").replace(/\/\/[^@/]*@/, "//");
  }
}

/** The model. Pure. */
export function buildStatusModel(input: ModelInput): StatusModel {
  const rowsByName = new Map((input.rows ?? []).map((r) => [r.service, r]));
  const services = modelNames(input).map((n) => serviceView(n, input, rowsByName));
  const m = input.monitor;
  return {
    environment: input.environment,
    backend: safeUrl(input.backend),
    generatedAt: new Date(input.now).toISOString(),
    monitor: m ? { source: m.source, updatedAt: m.updatedAt, pid: m.pid, hostname: m.hostname, running: m.running ?? null } : { source: "none", updatedAt: null, pid: null, hostname: null, running: null },
    deployment: { read: input.rows !== undefined, error: input.deploymentError ?? null },
    summary: summaryOf(services),
    services,
    nodes: nodesView(input.nodes, services),
  };
}
