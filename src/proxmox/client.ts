/**
 * The Proxmox VE client: one transport (its own connection pool and TLS
 * policy) shared by one module per API area (version, nodes, cluster,
 * storage, lxc, backup, tasks).
 */
import { z } from "zod";
import { isTokenCredentials, ticketAuthenticator, tokenAuthenticator, validateCredentials } from "./auth.ts";
import type { PasswordCredentials, ProxmoxCredentials, Ticket } from "./auth.ts";
import { TlsSettingsError, resolveTlsPolicy } from "../net/tls.ts";
import type { TlsOptions, TlsPolicy } from "../net/tls.ts";
import { BackupApi } from "./backup.ts";
import { ClusterApi } from "./cluster.ts";
import { ProxmoxConfigError } from "./errors.ts";
import { ProxmoxHttp } from "./http.ts";
import { loadInventory } from "./inventory.ts";
import type { Inventory } from "./inventory.ts";
import { LxcApi } from "./lxc.ts";
import { NodesApi } from "./nodes.ts";
import { DEFAULT_RETRY, LOGIN } from "./retry.ts";
import type { RetryBudget } from "./retry.ts";
import { StorageApi } from "./storage.ts";
import { TasksApi } from "./tasks.ts";
import { VersionApi } from "./version.ts";

/** Options of `createProxmoxClient`. Credentials come from the environment config and secrets, never argv. */
export interface ProxmoxClientOptions {
  /** `https://HOST:8006` (with or without `/api2/json`). */
  endpoint: string;
  auth: ProxmoxCredentials;
  tls?: TlsOptions;
  /** CI mode: refuses `tls.insecure`. */
  ci?: boolean;
  retry?: Partial<RetryBudget>;
  /** Per request, to headers and between body chunks; default 30 s. */
  timeoutMs?: number;
  /** Parallel connections; default 6. */
  connections?: number;
  /** Receives one line per request and retry, and warnings; never secrets. */
  logger?: (line: string) => void;
  /** Ticket renewal tuning (tests); defaults: 2 h lifetime, renew 15 min before. */
  ticket?: { lifetimeMs?: number; renewBeforeMs?: number; now?: () => number };
}

/** The client: `client.lxc.create(...)`, `client.tasks.wait(...)`, `client.loadInventory()`. */
export interface ProxmoxClient {
  readonly http: ProxmoxHttp;
  readonly version: VersionApi;
  readonly nodes: NodesApi;
  readonly cluster: ClusterApi;
  readonly storage: StorageApi;
  readonly lxc: LxcApi;
  readonly backup: BackupApi;
  readonly tasks: TasksApi;
  /** One snapshot of nodes, guests, storages and templates. */
  loadInventory(): Promise<Inventory>;
  /** Closes the connections. */
  close(): Promise<void>;
}

const ticketSchema = z.object({ ticket: z.string(), CSRFPreventionToken: z.string(), username: z.string() });

/** Creates a client; validates options and TLS settings up front (throws ProxmoxConfigError). */
export function createProxmoxClient(options: ProxmoxClientOptions): ProxmoxClient {
  const warn = options.logger ?? ((line: string) => process.emitWarning(line));
  validateCredentials(options.auth);
  let tls: TlsPolicy;
  try {
    tls = resolveTlsPolicy(options.tls, { ci: options.ci ?? false, warn, endpoint: options.endpoint });
  } catch (error) {
    throw error instanceof TlsSettingsError ? new ProxmoxConfigError(error.message, error.hint) : error;
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!(timeoutMs > 0)) throw new ProxmoxConfigError("timeoutMs must be positive", "give milliseconds, e.g. 30000");
  const retry: RetryBudget = { ...DEFAULT_RETRY, ...options.retry };
  if (retry.attempts < 1 || retry.lockAttempts < 1 || retry.idRaceAttempts < 1) {
    throw new ProxmoxConfigError("retry attempts must be at least 1", "1 means no retry");
  }
  const http = new ProxmoxHttp({
    endpoint: options.endpoint,
    tls,
    retry,
    timeoutMs,
    ...(options.connections !== undefined ? { connections: options.connections } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const auth = options.auth;
  if (isTokenCredentials(auth)) {
    http.setAuthenticator(tokenAuthenticator(auth));
  } else {
    const login = async (credentials: PasswordCredentials): Promise<Ticket> => {
      const data = await http.call(
        {
          method: "POST",
          path: "/access/ticket",
          params: { username: credentials.username, password: credentials.password },
          secretParams: ["password"],
          authenticate: false,
          policy: LOGIN,
        },
        ticketSchema,
      );
      return { ticket: data.ticket, csrfToken: data.CSRFPreventionToken, username: data.username };
    };
    http.setAuthenticator(ticketAuthenticator(auth, login, options.ticket ?? {}));
  }
  const tasks = new TasksApi(http);
  const cluster = new ClusterApi(http);
  const client: ProxmoxClient = {
    http,
    version: new VersionApi(http),
    nodes: new NodesApi(http),
    cluster,
    storage: new StorageApi(http, tasks),
    lxc: new LxcApi(http, tasks, cluster),
    backup: new BackupApi(http, tasks),
    tasks,
    loadInventory: () => loadInventory(client),
    close: () => http.close(),
  };
  return client;
}
