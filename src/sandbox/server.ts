/**
 * The sandbox: a Proxmox-compatible HTTPS API on loopback. It wires the
 * router, parameter rules, authentication, fault injection and counters to
 * the cluster model, and serves a small admin surface under `/sandbox/`
 * (same token) so other processes can inject faults and read counters.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiRouter } from "./api/index.ts";
import type { SandboxState } from "./api/types.ts";
import { Auth } from "./auth.ts";
import { Cluster } from "./cluster.ts";
import { Counters } from "./counters.ts";
import { ApiError, reasonPhrase } from "./errors.ts";
import { Faults, parseFaults } from "./faults.ts";
import type { FaultConfig } from "./faults.ts";
import type { GuestBackend } from "./guest-backend.ts";
import { MemoryBackend } from "./memory-backend.ts";
import { checkParams } from "./params.ts";
import type { StorageDef } from "./storage.ts";
import { Tasks } from "./tasks.ts";
import { generateTls } from "./tls.ts";

export type { FaultConfig } from "./faults.ts";
export { DEFAULT_STORAGES, DIR_VOLUME_STORAGE, ZFS_VOLUME_STORAGE } from "./storage.ts";
export type { StorageDef } from "./storage.ts";

/** How to run a sandbox; everything is optional. */
export interface SandboxOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Number of nodes (default 3: pve-01, pve-02, pve-03 of different sizes). */
  nodes?: number;
  /**
   * The storages of every node (default `local` and `local-lvm`, as a fresh
   * Proxmox install has); add `DIR_VOLUME_STORAGE` for one whose container
   * volumes cannot snapshot nor be linked-cloned, `ZFS_VOLUME_STORAGE` for
   * a ZFS pool (`local-zfs`), whose linked clones name their base.
   */
  storages?: readonly StorageDef[];
  /** What backs the guests (default: a new memory backend). */
  backend?: GuestBackend;
  /** Where TLS files go (a temporary folder, removed on close, when absent). */
  stateDir?: string;
  /** Delay before every 401, as Proxmox's 3 s (default 0). */
  authDelayMs?: number;
  /** How long every task takes at least (default 250 ms). */
  taskDurationMs?: number;
  /** How long a request waits for a busy config file lock (default 10 s, as Proxmox). */
  lockTimeoutMs?: number;
  /** Memory backend only: how long DHCP guests show only link-local addresses (default 2 s). */
  dhcpDelayMs?: number;
  /** Memory backend only: how long snapshots, rollbacks, backups, restores and volume copies take (default 0). */
  dataDelayMs?: number;
  faults?: Partial<FaultConfig>;
  /** Milliseconds since the epoch (default `Date.now`); drives ticket expiry and timestamps. */
  clock?: () => number;
}

/** A running sandbox and what a client needs to use it. */
export interface RunningSandbox {
  /** `https://127.0.0.1:PORT` (no `/api2/json`). */
  url: string;
  port: number;
  tokenId: string;
  tokenSecret: string;
  /** `root@pam!homelab=SECRET`, the value after `PVEAPIToken=`. */
  token: string;
  rootPassword: string;
  fingerprint: string;
  caPem: string;
  caFile: string;
  stateDir: string;
  faults: { set(f: Partial<FaultConfig>): void; clear(): void; get(): FaultConfig };
  counters: { get(): Record<string, number>; reset(): void };
  close(): Promise<void>;
}

const API_PREFIX = "/api2/json";
const MAX_BODY = 1024 * 1024;

/** Starts a sandbox and resolves once it listens. */
export async function startSandboxServer(options: SandboxOptions = {}): Promise<RunningSandbox> {
  const clock = options.clock ?? Date.now;
  const ownDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), "homelab-sandbox-")));
  const tls = await generateTls(join(stateDir, "tls"));
  const backend =
    options.backend ??
    new MemoryBackend({ clock, ...(options.dhcpDelayMs !== undefined ? { dhcpDelayMs: options.dhcpDelayMs } : {}), ...(options.dataDelayMs !== undefined ? { dataDelayMs: options.dataDelayMs } : {}) });
  const faults = new Faults(options.faults);
  const counters = new Counters();
  const tokenId = "root@pam!homelab";
  const tokenSecret = randomUUID();
  const rootPassword = randomBytes(18).toString("base64url");
  const auth = new Auth({ tokenId, tokenSecret, rootPassword, clock });
  const state: SandboxState = {
    cluster: new Cluster({ nodes: options.nodes ?? 3, backend, clock, ...(options.storages ? { storages: options.storages } : {}) }),
    tasks: new Tasks({ clock, durationMs: options.taskDurationMs ?? 250, faults }),
    auth,
    clock,
    lockTimeoutMs: options.lockTimeoutMs ?? 10_000,
  };
  const authDelayMs = options.authDelayMs ?? 0;
  const router = apiRouter();

  const server = createServer({ key: tls.key, cert: tls.cert });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    void serve(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, e instanceof ApiError ? e : new ApiError(500, String(e)));
      else res.destroy();
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "https://sandbox.invalid");
    const path = url.pathname;
    if (path === "/sandbox" || path.startsWith("/sandbox/")) return admin(req, res, method, path);
    const body = await readBody(req);
    const rel = path === API_PREFIX ? "/" : path.startsWith(`${API_PREFIX}/`) ? path.slice(API_PREFIX.length) : undefined;
    const match = rel === undefined ? undefined : router.match(method, rel);
    const key = match ? `${method} ${match.template}` : `${method} ${rel ?? path}`;
    counters.add(key);
    const fault = faults.forRequest(key);
    if (fault.latencyMs > 0) await sleep(fault.latencyMs);
    if (fault.action === "drop") {
      req.socket.destroy();
      return;
    }
    if (fault.action === "error") throw new ApiError(fault.status, "sandbox: injected fault");
    let user = "";
    if (!match?.value.public) {
      const result = auth.check(
        { authorization: req.headers.authorization, cookie: req.headers.cookie, csrf: header(req, "csrfpreventiontoken") },
        method,
      );
      if (!result.ok) {
        if (authDelayMs > 0) await sleep(authDelayMs);
        throw new ApiError(401, result.message);
      }
      user = result.user;
    }
    if (!match || rel === undefined) throw new ApiError(501, `Method '${method} ${rel ?? path}' not implemented`);
    const input: Record<string, unknown> = {};
    for (const [k, v] of url.searchParams) input[k] = v;
    Object.assign(input, parseBody(req, body), match.params);
    const params = checkParams(match.value.params, input);
    const reply = await match.value.handle({ params, user, state });
    sendJson(res, 200, "OK", { data: reply.data, ...reply.attributes });
  }

  async function admin(req: IncomingMessage, res: ServerResponse, method: string, path: string): Promise<void> {
    const body = await readBody(req);
    const result = auth.check({ authorization: req.headers.authorization }, "GET");
    if (!result.ok || result.kind !== "token") throw new ApiError(401, "authentication failure");
    const route = `${method} ${path}`;
    switch (route) {
      case "GET /sandbox/faults":
        return sendJson(res, 200, "OK", { data: faults.get() });
      case "PUT /sandbox/faults": {
        let parsed: Partial<FaultConfig>;
        try {
          parsed = parseFaults(JSON.parse(body.toString("utf8") || "{}"));
        } catch (e) {
          throw new ApiError(400, e instanceof Error ? e.message : String(e));
        }
        faults.set(parsed);
        return sendJson(res, 200, "OK", { data: faults.get() });
      }
      case "DELETE /sandbox/faults":
        faults.clear();
        return sendJson(res, 200, "OK", { data: faults.get() });
      case "GET /sandbox/counters":
        return sendJson(res, 200, "OK", { data: counters.get() });
      case "DELETE /sandbox/counters":
        counters.reset();
        return sendJson(res, 200, "OK", { data: null });
      case "GET /sandbox/info":
        return sendJson(res, 200, "OK", {
          data: { nodes: [...state.cluster.nodes.keys()], backend: backend.kind, taskDurationMs: state.tasks.durationMs, authDelayMs, lockTimeoutMs: state.lockTimeoutMs },
        });
      default:
        throw new ApiError(404, `no sandbox admin route '${route}'`);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host ?? "127.0.0.1";
  let closed: Promise<void> | undefined;

  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    tokenId,
    tokenSecret,
    token: `${tokenId}=${tokenSecret}`,
    rootPassword,
    fingerprint: tls.fingerprint,
    caPem: tls.caPem,
    caFile: tls.caFile,
    stateDir,
    faults: { set: (f) => faults.set(f), clear: () => faults.clear(), get: () => faults.get() },
    counters: { get: () => counters.get(), reset: () => counters.reset() },
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await stopped;
        await state.tasks.close();
        await backend.close();
        if (ownDir) await rm(stateDir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY) throw new ApiError(413, "request too large");
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Reads a form-encoded or JSON body into raw parameters. */
function parseBody(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  const text = body.toString("utf8");
  if (type === "application/json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ApiError(400, "malformed JSON body");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ApiError(400, "JSON body must be an object");
    return parsed as Record<string, unknown>;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

function sendJson(res: ServerResponse, status: number, reason: string, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, reasonPhrase(reason), {
    "content-type": "application/json;charset=UTF-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "max-age=0",
    pragma: "no-cache",
    server: "pve-api-daemon/3.0",
  });
  res.end(text);
}

/** Renders an ApiError as pveproxy does: the message as reason phrase, 400s with `errors`. */
function sendError(res: ServerResponse, e: ApiError): void {
  if (e.status === 401) {
    // pveproxy answers 401 with the reason phrase only.
    res.writeHead(401, reasonPhrase(e.message), { "content-length": 0, server: "pve-api-daemon/3.0" });
    res.end();
    return;
  }
  const body: Record<string, unknown> = { data: null };
  if (e.errors) body["errors"] = e.errors;
  if (e.status !== 501) body["message"] = e.message;
  sendJson(res, e.status, e.message, body);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
