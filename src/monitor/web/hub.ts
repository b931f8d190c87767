/**
 * The live side of the status page: remembers what the monitor's events say
 * (uptime, remediations; seeded from the history file), reads the
 * deployment and the cluster at modest intervals, builds the status model,
 * and keeps the page's fragments rendered. A fragment is rendered again
 * only when what it shows changed (a check's verdict or reason, a state, a
 * remedy, a deploy at once; response times at most every `softMs`, 60 s), and
 * changed fragments go to every open page over server-sent events, each
 * with a version so a reconnecting page gets only what it missed.
 */
import { randomBytes } from "node:crypto";
import type { ServiceStatusRow } from "../../engine/status.ts";
import type { LastDeploy } from "../../status/deploy-history.ts";
import { buildStatusModel } from "../../status/model.ts";
import type { MonitorInput, NodesInput, ServiceInfo, StatusModel } from "../../status/model.ts";
import type { PreviewRecord } from "../../status/previews.ts";
import { RecentHistory, UptimeSeries } from "../../status/series.ts";
import type { InventoryGuest, InventoryNode } from "../../proxmox/inventory.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import type { MonitorEvent } from "../events.ts";
import type { ServiceSnapshot } from "../monitor.ts";
import type { Fragment } from "./render.ts";
import { cardId, fragmentsOf, nodesSection, serviceCard, summarySection } from "./render.ts";

/** Where the deployment comes from: rows as `homelab status` reads them, with last deploys. */
export interface DeploymentSource {
  read(): Promise<{ rows: ServiceStatusRow[]; deploys: Map<string, LastDeploy> }>;
}

/** Where nodes and guests come from (the Proxmox API). */
export interface NodesSource {
  read(): Promise<{ nodes: InventoryNode[]; guests: InventoryGuest[] }>;
  close?(): Promise<void>;
}

/** An open page's event stream. */
export interface StreamClient {
  /** Writes raw SSE text; false when the client cannot keep up (it is then dropped). */
  write(chunk: string): boolean;
  end(): void;
}

/** What the hub needs. */
export interface HubOptions {
  environment: string;
  backend: string;
  /** The services to show, in order (undefined: all deployed or configured). */
  names: readonly string[] | undefined;
  config: ReadonlyMap<string, ServiceInfo>;
  /** The running monitor's view. */
  snapshot: () => readonly ServiceSnapshot[];
  monitor: Omit<MonitorInput, "services" | "updatedAt">;
  clock: Clock;
  deployment: DeploymentSource;
  nodes: NodesSource | undefined;
  previews: () => Promise<Map<string, PreviewRecord>>;
  /** Told when a source fails (once per kind until it works again). */
  onError?: (message: string) => void;
  deploymentEveryMs?: number;
  nodesEveryMs?: number;
  flushMs?: number;
  softMs?: number;
  heartbeatMs?: number;
  maxClients?: number;
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split("\n")[0] ?? m;
}

/** The live status of a running monitor, for its page. */
export class StatusHub {
  readonly boot = randomBytes(6).toString("hex");
  readonly series = new UptimeSeries();
  readonly history = new RecentHistory();
  readonly #o: HubOptions;
  readonly #fragments = new Map<string, { html: string; version: number; at: number }>();
  #order: string[] = [];
  #version = 0;
  #rows: ServiceStatusRow[] | undefined;
  #deploys = new Map<string, LastDeploy>();
  #previews = new Map<string, PreviewRecord>();
  #deploymentError: string | undefined;
  #nodes: NodesInput | undefined;
  readonly #signatures = new Map<string, string>();
  readonly #lastCheck = new Map<string, string>();
  readonly #hard = new Set<string>();
  readonly #soft = new Set<string>();
  #flushTimer: TimerHandle | undefined;
  readonly #timers: Record<"deployment" | "nodes" | "heartbeat", TimerHandle | undefined> = { deployment: undefined, nodes: undefined, heartbeat: undefined };
  readonly #clients = new Set<StreamClient>();
  readonly #failing = new Set<string>();
  #closed = false;
  #reading: Promise<void> | undefined;
  /** Counters for benchmarks and tests. */
  readonly stats = { flushes: 0, rendered: 0, sent: 0, dropped: 0 };

  constructor(o: HubOptions) {
    this.#o = o;
  }

  /** The event sink: checks feed the chart, remedies and state changes the history; the cards they touch are marked. */
  readonly sink = (e: MonitorEvent): void => {
    if (e.type === "monitor") return;
    if (e.type === "check") {
      // "Not deployed" is no outage of a service nobody deployed.
      if (this.#rows?.find((r) => r.service === e.service)?.state !== "never-deployed") this.series.record(e.service, Date.parse(e.at), e.ok, e.latencyMs);
      const key = `${e.service}#${e.index}`;
      // The detail ends in the response time ("status 200 (4 ms)"): only a new verdict or reason is a change to show at once.
      const verdict = `${e.ok}\0${e.detail.replace(/ \([\d.]+ m?s\)$/, "")}`;
      const changed = this.#lastCheck.get(key) !== verdict;
      this.#lastCheck.set(key, verdict);
      this.#mark(e.service, changed);
      return;
    }
    this.history.record(e);
    this.#mark(e.service, true);
    // A remedy's end may have moved the service (a recreate): read the deployment again soon.
    if (e.type === "action" && e.phase !== "start") this.#arm("deployment", 2000);
  };

  /** Seeds uptime and history from past events (the history file), before the monitor starts. */
  seed(events: Iterable<MonitorEvent>): void {
    for (const e of events) {
      if (e.type === "check") this.series.record(e.service, Date.parse(e.at), e.ok, e.latencyMs);
      else this.history.record(e);
    }
  }

  /** Starts reading the deployment and the cluster; resolves when the first reads are done. */
  async start(): Promise<void> {
    this.#arm("heartbeat", this.#o.heartbeatMs ?? 20_000);
    await Promise.all([this.#readDeployment(), this.#readNodes()]);
  }

  #arm(kind: "deployment" | "nodes" | "heartbeat", ms: number): void {
    this.#timers[kind]?.cancel();
    if (this.#closed) return;
    this.#timers[kind] = this.#o.clock.setTimer(ms, () => {
      this.#timers[kind] = undefined;
      if (kind === "heartbeat") {
        this.#broadcast(": ping\n\n");
        this.#arm("heartbeat", this.#o.heartbeatMs ?? 20_000);
      } else if (kind === "deployment") void this.#readDeployment();
      else void this.#readNodes();
    });
  }

  #problem(kind: string, message: string | undefined): void {
    if (message === undefined) {
      this.#failing.delete(kind);
      return;
    }
    if (!this.#failing.has(kind)) this.#o.onError?.(`status page: ${message}`);
    this.#failing.add(kind);
  }

  async #readDeployment(): Promise<void> {
    // One read at a time; a read asked for meanwhile waits for the next turn.
    if (this.#reading) return this.#reading;
    this.#reading = (async () => {
      try {
        const [d, previews] = await Promise.all([this.#o.deployment.read(), this.#o.previews()]);
        this.#rows = d.rows;
        this.#deploys = d.deploys;
        this.#previews = previews;
        this.#deploymentError = undefined;
        this.#problem("deployment", undefined);
      } catch (e) {
        this.#deploymentError = firstLine(e);
        this.#problem("deployment", `cannot read the deployment: ${this.#deploymentError}`);
      } finally {
        this.#reading = undefined;
      }
      // Only the services whose deployment facts changed are drawn again.
      for (const name of this.#names()) {
        const sig = JSON.stringify([this.#rows?.find((r) => r.service === name) ?? null, this.#deploys.get(name) ?? null, this.#previews.get(name) ?? null]);
        if (this.#signatures.get(name) !== sig) this.#mark(name, true);
        this.#signatures.set(name, sig);
      }
      this.#markSummary();
      if (this.#names().join("\0") !== this.#order.filter((id) => id.startsWith("svc-")).map((id) => id.slice(4)).join("\0") && this.#order.length > 0) this.#reset();
      this.#arm("deployment", this.#o.deploymentEveryMs ?? 60_000);
    })();
    return this.#reading;
  }

  async #readNodes(): Promise<void> {
    if (!this.#o.nodes) return;
    const at = new Date(this.#o.clock.now()).toISOString();
    let next: NodesInput;
    try {
      const n = await this.#o.nodes.read();
      next = { at, nodes: n.nodes, guests: n.guests };
      this.#problem("nodes", undefined);
    } catch (e) {
      next = { at, error: firstLine(e) };
      this.#problem("nodes", `cannot read the cluster: ${next.error}`);
    }
    const { at: _a, ...before } = this.#nodes ?? { at: "" };
    const { at: _b, ...after } = next;
    const changed = JSON.stringify(before) !== JSON.stringify(after);
    this.#nodes = next;
    if (changed) this.#mark("nodes", true);
    this.#arm("nodes", this.#o.nodesEveryMs ?? 30_000);
  }

  #names(): string[] {
    return this.#o.names ? [...this.#o.names] : [...new Set([...(this.#rows ?? []).map((r) => r.service), ...this.#o.config.keys()])].sort();
  }

  /** The status model now. */
  model(): StatusModel {
    const now = this.#o.clock.now();
    return buildStatusModel({
      environment: this.#o.environment,
      backend: this.#o.backend,
      now,
      config: this.#o.config,
      names: this.#names(),
      rows: this.#rows,
      deploymentError: this.#deploymentError,
      monitor: { ...this.#o.monitor, updatedAt: new Date(now).toISOString(), services: this.#o.snapshot() },
      series: this.series,
      history: this.history,
      deploys: this.#deploys,
      previews: this.#previews,
      nodes: this.#nodes,
    });
  }

  #mark(what: string, hard: boolean): void {
    if (hard) this.#hard.add(what);
    else this.#soft.add(what);
    if (hard && what !== "nodes") this.#markSummary();
    if (!this.#flushTimer && !this.#closed) this.#flushTimer = this.#o.clock.setTimer(this.#o.flushMs ?? 500, () => this.flush());
  }

  #markSummary(): void {
    this.#hard.add("summary");
  }

  /** Everything rendered anew (the set of services changed): pages reload. */
  #reset(): void {
    this.#fragments.clear();
    this.#order = [];
    this.#broadcast(`event: reload\ndata: {}\n\n`);
  }

  #ensureRendered(model: StatusModel, now: number): void {
    if (this.#order.length > 0) return;
    const all = fragmentsOf(model, now);
    for (const f of all) this.#fragments.set(f.id, { html: f.html, version: ++this.#version, at: now });
    this.stats.rendered += all.length;
    this.#order = all.map((f) => f.id);
  }

  /** Renders what changed and sends it to open pages. */
  flush(): void {
    this.#flushTimer = undefined;
    if (this.#closed) return;
    this.stats.flushes++;
    const now = this.#o.clock.now();
    const model = this.model();
    if (this.#order.length === 0) {
      this.#ensureRendered(model, now);
      this.#hard.clear();
      this.#soft.clear();
      return;
    }
    const softMs = this.#o.softMs ?? 60_000;
    const due = new Set(this.#hard);
    for (const s of this.#soft) {
      const f = this.#fragments.get(cardId(s));
      if (!f || now - f.at >= softMs) due.add(s);
    }
    for (const s of due) {
      this.#hard.delete(s);
      this.#soft.delete(s);
    }
    // Soft changes not yet due are looked at again later.
    if (this.#soft.size > 0 && !this.#flushTimer) this.#flushTimer = this.#o.clock.setTimer(Math.max(this.#o.flushMs ?? 500, 1000), () => this.flush());
    const changed: Fragment[] = [];
    for (const what of due) {
      let f: Fragment | undefined;
      if (what === "summary") f = { id: "summary", html: summarySection(model) };
      else if (what === "nodes") f = { id: "nodes", html: nodesSection(model, now) };
      else {
        const s = model.services.find((x) => x.service === what);
        if (s) f = { id: cardId(what), html: serviceCard(s, now) };
      }
      if (!f) continue;
      this.stats.rendered++;
      const old = this.#fragments.get(f.id);
      if (old && old.html === f.html) {
        old.at = now;
        continue;
      }
      if (!old) continue;
      this.#fragments.set(f.id, { html: f.html, version: ++this.#version, at: now });
      changed.push(f);
    }
    for (const f of changed) this.#broadcast(this.#event(f, this.#fragments.get(f.id)?.version ?? this.#version));
  }

  #event(f: Fragment, version: number): string {
    return `event: html\nid: ${version}\ndata: ${JSON.stringify({ id: f.id, html: f.html })}\n\n`;
  }

  #broadcast(chunk: string): void {
    for (const c of this.#clients) {
      if (c.write(chunk)) this.stats.sent++;
      else {
        this.stats.dropped++;
        this.#clients.delete(c);
        c.end();
      }
    }
  }

  /** The page's fragments in order, with the version they add up to. */
  page(): { fragments: Fragment[]; version: number } {
    if (this.#order.length === 0) this.#ensureRendered(this.model(), this.#o.clock.now());
    // What changed since the last flush is drawn now, so a page is never behind the model.
    else if (this.#hard.size > 0) {
      this.#flushTimer?.cancel();
      this.flush();
    }
    return { fragments: this.#order.map((id) => ({ id, html: this.#fragments.get(id)?.html ?? "" })), version: this.#version };
  }

  /**
   * Adds an open page's stream: it first gets the fragments changed after
   * `since` (or a reload when it comes from another run of the monitor or
   * from the future), then every change. False when there are too many.
   */
  subscribe(client: StreamClient, boot: string | undefined, since: number): boolean {
    if (this.#closed || this.#clients.size >= (this.#o.maxClients ?? 64)) return false;
    this.page();
    client.write("retry: 2000\n\n");
    if (boot !== this.boot || since > this.#version) {
      client.write(`event: reload\ndata: {}\n\n`);
    } else {
      for (const id of this.#order) {
        const f = this.#fragments.get(id);
        if (f && f.version > since) client.write(this.#event({ id, html: f.html }, f.version));
      }
    }
    this.#clients.add(client);
    return true;
  }

  /** Removes a stream (the page went away). */
  unsubscribe(client: StreamClient): void {
    this.#clients.delete(client);
  }

  /** Open streams. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Stops reading and closes every stream. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flushTimer?.cancel();
    for (const t of Object.values(this.#timers)) t?.cancel();
    for (const c of this.#clients) c.end();
    this.#clients.clear();
    await this.#reading;
    await this.#o.nodes?.close?.();
  }
}
