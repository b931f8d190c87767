/**
 * The monitor's optional HTTP endpoint: `/healthz` (the monitor runs; each
 * service's phase as JSON), `/metrics` (Prometheus) and further routes (the
 * status page, src/monitor/web/). Off by default; bound to 127.0.0.1 unless
 * an address is given. GET and HEAD only, but for the login form's POST.
 * With `auth`, only `/healthz` (liveness alone), `/login` and public paths
 * answer without it.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** `PORT` or `ADDR:PORT` (`[v6]:PORT`); ADDR defaults to 127.0.0.1. Throws on anything else. Pure. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9A-Fa-f:]+\]|[^:]+):)?(\d{1,5})$/.exec(s.trim());
  const port = Number(m?.[2]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--listen takes PORT or ADDR:PORT (e.g. 127.0.0.1:9464), got "${s}"`);
  const host = (m[1] ?? "127.0.0.1").replace(/^\[|\]$/g, "");
  return { host, port };
}

/** What the endpoint serves. */
export interface EndpointSource {
  /** JSON for /healthz. */
  health(): unknown;
  /** Prometheus text for /metrics. */
  metrics(): string;
  /** Further routes: answers and returns true, or returns false for a path it does not serve. */
  routes?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
  /** Paths anyone may fetch through `routes` (assets that hold no data). */
  isPublic?: (path: string) => boolean;
  /** Who may read. */
  auth?: {
    authorized(req: IncomingMessage): boolean;
    deny(req: IncomingMessage, res: ServerResponse): void;
    login(req: IncomingMessage, res: ServerResponse): boolean;
  };
}

/** A running endpoint. */
export interface Endpoint {
  /** `http://host:port`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the endpoint. */
export async function startEndpoint(listen: { host: string; port: number }, source: EndpointSource): Promise<Endpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const login = path === "/login" && source.auth !== undefined;
    if (req.method !== "GET" && req.method !== "HEAD" && !(login && req.method === "POST")) {
      res.writeHead(405, { allow: login ? "GET, HEAD, POST" : "GET, HEAD" }).end();
      req.resume();
      return;
    }
    try {
      const authorized = source.auth === undefined || source.auth.authorized(req);
      if (path === "/healthz") {
        // Without credentials: that the monitor runs, nothing about the services.
        const body = JSON.stringify(authorized ? source.health() : { status: "ok" }) + "\n";
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(req.method === "HEAD" ? undefined : body);
      } else if (login && source.auth?.login(req, res)) {
        // The login form answered.
      } else if (source.isPublic?.(path) && source.routes?.(req, res, path)) {
        // A public asset.
      } else if (!authorized) {
        source.auth?.deny(req, res);
      } else if (path === "/metrics") {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(req.method === "HEAD" ? undefined : source.metrics());
      } else if (!source.routes?.(req, res, path)) {
        res.writeHead(404, { "content-type": "text/plain" }).end(`not found: try ${source.routes ? "/, " : ""}/healthz or /metrics\n`);
      }
    } catch (e) {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { "content-type": "text/plain" }).end(`${e instanceof Error ? e.message : String(e)}\n`);
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
