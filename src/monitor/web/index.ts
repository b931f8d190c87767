/**
 * The status page of `homelab monitor --listen`: wires the hub (live
 * model), the routes and the auth onto the monitor's endpoint, and builds
 * the real sources: the deployment as `homelab status` reads it (the
 * engine's state, each stack's last deploy, the recorded previews) and the
 * nodes from the Proxmox API (one `GET /cluster/resources` per read).
 */
import { hostname } from "node:os";
import type { EnvironmentConfig, SecretRef } from "../../config/environment.ts";
import type { Repository } from "../../config/repository.ts";
import { envFileOf } from "../../config/homelab-dir.ts";
import { readSecretRef } from "../../config/secret-ref.ts";
import type { Engine } from "../../engine/engine.ts";
import type { ServiceStatusRow } from "../../engine/status.ts";
import { CONTAINER_TYPE } from "../../provider/tokens.ts";
import { readHistory, readLastDeploys } from "../../status/collect.ts";
import type { LastDeploy } from "../../status/deploy-history.ts";
import type { ServiceInfo } from "../../status/model.ts";
import { readPreviews } from "../../status/previews.ts";
import type { Clock } from "../clock.ts";
import type { MonitorEvent } from "../events.ts";
import { startEndpoint } from "../http.ts";
import type { Endpoint } from "../http.ts";
import type { ServiceSnapshot } from "../monitor.ts";
import type { TargetSource } from "../targets.ts";
import { authFor } from "./auth.ts";
import type { RequestAuth } from "./auth.ts";
import { StatusHub } from "./hub.ts";
import type { DeploymentSource, NodesSource } from "./hub.ts";
import { isPublicPath, statusRoutes } from "./routes.ts";

/** A start-up problem of the page, with what to do about it. */
class StatusPageError extends Error {
  readonly hint: string;
  constructor(message: string, hint: string) {
    super(message);
    this.name = "StatusPageError";
    this.hint = hint;
  }
}

/** Where the page's data comes from. */
export interface StatusSources {
  deployment: DeploymentSource;
  nodes: NodesSource | undefined;
}

/** What the page needs from the monitor command. */
export interface StatusPageOptions {
  root: string;
  env: Pick<EnvironmentConfig, "name" | "file">;
  listen: { host: string; port: number };
  token: SecretRef | undefined;
  processEnv: NodeJS.ProcessEnv;
  backend: string;
  /** The services to show (undefined: every one deployed or configured). */
  names: readonly string[] | undefined;
  config: ReadonlyMap<string, ServiceInfo>;
  snapshot: () => readonly ServiceSnapshot[];
  clock: Clock;
  sources: StatusSources;
  health: () => unknown;
  metrics: () => string;
  onError: (message: string) => void;
  /** Intervals (tests). */
  deploymentEveryMs?: number;
  nodesEveryMs?: number;
}

/** A running page. */
export interface StatusPage {
  url: string;
  endpoint: Endpoint;
  hub: StatusHub;
  /** The event sink (add it to the monitor's). */
  sink: (e: MonitorEvent) => void;
  close(): Promise<void>;
}

/** Reads the token and picks the auth for the address; throws StatusPageError when the address needs a token that is not there. */
function pageAuth(o: Pick<StatusPageOptions, "listen" | "token" | "env" | "processEnv">): RequestAuth {
  const file = envFileOf(o.env);
  let token: string | undefined;
  if (o.token) {
    try {
      token = readSecretRef(o.token, "token", file, o.processEnv);
    } catch (e) {
      throw new StatusPageError(`homelab:monitor token: ${e instanceof Error ? e.message : String(e)}`, (e as { hint?: string }).hint ?? `fix token_file or token_env under homelab:monitor in ${file}`);
    }
  }
  let chosen: ReturnType<typeof authFor>;
  try {
    chosen = authFor(o.listen.host, token);
  } catch (e) {
    throw new StatusPageError(`homelab:monitor token: ${e instanceof Error ? e.message : String(e)}`, `put a longer token in the file or variable token_file / token_env names (${file})`);
  }
  if ("error" in chosen) {
    throw new StatusPageError(chosen.error, `add token_file: ~/.config/homelab/monitor-token (mode 0600, e.g. from openssl rand -base64 32) or token_env: HOMELAB_MONITOR_TOKEN under homelab:monitor in ${file}; or listen on 127.0.0.1`);
  }
  return chosen.auth;
}

/** Starts the endpoint with the page: reads past events into the hub first, then serves. */
export async function startStatusPage(o: StatusPageOptions): Promise<StatusPage> {
  const auth = pageAuth(o);
  const hub = new StatusHub({
    environment: o.env.name,
    backend: o.backend,
    names: o.names,
    config: o.config,
    snapshot: o.snapshot,
    monitor: { source: "live", pid: process.pid, hostname: hostname(), running: true },
    clock: o.clock,
    deployment: o.sources.deployment,
    nodes: o.sources.nodes,
    previews: () => readPreviews(o.root, o.env.name),
    onError: o.onError,
    ...(o.deploymentEveryMs !== undefined ? { deploymentEveryMs: o.deploymentEveryMs } : {}),
    ...(o.nodesEveryMs !== undefined ? { nodesEveryMs: o.nodesEveryMs } : {}),
  });
  const past: MonitorEvent[] = [];
  await readHistory(o.root, o.env.name, (e) => past.push(e)).catch(() => 0);
  hub.seed(past);
  let endpoint: Endpoint;
  try {
    endpoint = await startEndpoint(o.listen, { health: o.health, metrics: o.metrics, routes: statusRoutes(hub, o.env.name), isPublic: isPublicPath, auth });
  } catch (e) {
    await hub.close();
    throw e;
  }
  // The first reads run while the monitor starts; the page says it is reading meanwhile.
  void hub.start();
  return {
    url: endpoint.url,
    endpoint,
    hub,
    sink: hub.sink,
    close: async () => {
      await hub.close();
      await endpoint.close();
    },
  };
}

/** The deployment from the engine: `homelab status`' rows, and each stack's last deploy. */
function engineDeployment(engine: Engine, envName: string, serviceNames: readonly string[]): DeploymentSource {
  const cache = new Map<string, { key: string; value: LastDeploy | undefined }>();
  return {
    async read() {
      const { environmentStatus } = await import("../../engine/status.ts");
      const rows = await environmentStatus(engine, envName, serviceNames);
      return { rows, deploys: await readLastDeploys(engine, rows, cache) };
    },
  };
}

/** The deployment as the monitor's targets know it (when no engine is open: tests, fixed targets). */
export function targetsDeployment(targets: TargetSource, envName: string, names: readonly string[]): DeploymentSource {
  return {
    async read() {
      const rows = await Promise.all(
        names.map(async (service): Promise<ServiceStatusRow> => {
          const t = await targets.get(service);
          return {
            service,
            stack: `${envName}.${service}`,
            state: t.deployed ? "deployed" : "never-deployed",
            lastUpdate: undefined,
            resources: t.containers.map((c) => ({ id: c.id, type: CONTAINER_TYPE, node: undefined, vmid: undefined, address: c.address, detail: undefined, protect: c.protect })),
            pendingOperations: 0,
            lock: undefined,
          };
        }),
      );
      return { rows, deploys: new Map() };
    },
  };
}

/** What the page shows and where its data comes from, for `homelab monitor`: the repository's services, the engine's deployment (else the targets'), the Proxmox nodes. */
export async function pageInputs(o: {
  root: string;
  repo: Pick<Repository, "env" | "services">;
  /** The services named on the command line, if any. */
  selected: readonly string[] | undefined;
  engine: Engine | undefined;
  targets: TargetSource;
  processEnv: NodeJS.ProcessEnv;
  ci: boolean;
  sources: StatusSources | undefined;
}): Promise<Pick<StatusPageOptions, "root" | "env" | "processEnv" | "backend" | "names" | "config" | "sources">> {
  const { configInfo } = await import("../../status/collect.ts");
  const { checkLabel } = await import("../checks.ts");
  const { discoverServices } = await import("../../config/discover.ts");
  const env = o.repo.env;
  const sources = o.sources ?? {
    deployment: o.engine
      ? engineDeployment(o.engine, env.name, discoverServices(o.root).map((s) => s.name))
      : targetsDeployment(o.targets, env.name, o.selected ?? [...o.repo.services.keys()].sort()),
    nodes: await proxmoxNodes(env, o.processEnv, o.ci),
  };
  return { root: o.root, env, processEnv: o.processEnv, backend: o.engine?.backend.display ?? "", names: o.selected, config: configInfo(o.repo.services.values(), checkLabel), sources };
}

/** Nodes and guests from the environment's Proxmox API, one cluster listing per read; one connection kept. */
async function proxmoxNodes(env: EnvironmentConfig, processEnv: NodeJS.ProcessEnv, ci: boolean): Promise<NodesSource | undefined> {
  if (!env.proxmox) return undefined;
  const { connectProxmox, isRequestLogLine } = await import("../../proxmox/connect.ts");
  const { inventoryFromResources } = await import("../../proxmox/inventory.ts");
  let client: ReturnType<typeof connectProxmox> | undefined;
  return {
    async read() {
      // Request lines stay quiet; a failing read is shown on the page and reported once.
      client ??= connectProxmox(env, { processEnv, ci, logger: (l) => void (isRequestLogLine(l) || process.stderr.write(`homelab: ${l}\n`)) });
      const { nodes, guests } = inventoryFromResources(await client.cluster.resources());
      return { nodes, guests };
    },
    async close() {
      await client?.close();
    },
  };
}
