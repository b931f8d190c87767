/**
 * The status page's routes on the monitor's endpoint: `/` (the page),
 * `/api/status` (the status model as JSON, as `homelab status --json`
 * prints it), `/events` (server-sent events: changed fragments) and
 * `/assets/*` (stylesheet, script, icon; public, they hold no data). All
 * GET/HEAD: the page changes nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import { ASSETS, assetAt } from "./assets.ts";
import { PAGE_HEADERS } from "./auth.ts";
import type { StatusHub, StreamClient } from "./hub.ts";
import { renderPage } from "./render.ts";

/** Bytes an event stream may have waiting before its page counts as gone. */
const MAX_STREAM_BUFFER = 2 * 1024 * 1024;

/** Sends a body, gzipped when the client takes it (a page of 200 services is a few hundred KiB of HTML). */
function send(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, body: string): void {
  const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? "")) && body.length > 1024;
  const bytes = gzip ? gzipSync(body, { level: 6 }) : Buffer.from(body, "utf8");
  res.writeHead(200, { ...headers, vary: "accept-encoding", ...(gzip ? { "content-encoding": "gzip" } : {}), "content-length": String(bytes.length) }).end(req.method === "HEAD" ? undefined : bytes);
}

/** Whether anyone may fetch a path (the assets). Pure. */
export function isPublicPath(path: string): boolean {
  return path.startsWith("/assets/");
}

/** Handles the page's paths; false for any other. */
export function statusRoutes(hub: StatusHub, environment: string): (req: IncomingMessage, res: ServerResponse, path: string) => boolean {
  return (req, res, path) => {
    const head = req.method === "HEAD";
    if (path === "/" || path === "/index.html") {
      const { fragments, version } = hub.page();
      const html = renderPage(fragments, { environment, css: ASSETS.css.path, js: ASSETS.js.path, icon: ASSETS.icon.path, boot: hub.boot, version });
      send(req, res, { "content-type": "text/html; charset=utf-8", ...PAGE_HEADERS }, html);
      return true;
    }
    if (path === "/api/status") {
      send(req, res, { "content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff" }, JSON.stringify(hub.model(), null, 2) + "\n");
      return true;
    }
    if (path === "/events") {
      events(hub, req, res);
      return true;
    }
    const asset = isPublicPath(path) ? assetAt(path.slice(1)) : undefined;
    if (asset) {
      if (req.headers["if-none-match"] === asset.etag) {
        res.writeHead(304, { etag: asset.etag }).end();
        return true;
      }
      res.writeHead(200, { "content-type": asset.type, "cache-control": "public, max-age=31536000, immutable", etag: asset.etag, "x-content-type-options": "nosniff" }).end(head ? undefined : asset.body);
      return true;
    }
    return false;
  };
}

function events(hub: StatusHub, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://localhost");
  const since = Math.max(Number(url.searchParams.get("since")) || 0, Number(req.headers["last-event-id"]) || 0);
  if (req.method === "HEAD") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" }).end();
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no", "x-content-type-options": "nosniff" });
  const client: StreamClient = {
    write: (chunk) => {
      if (res.destroyed || res.writableLength > MAX_STREAM_BUFFER) return false;
      res.write(chunk);
      return true;
    },
    end: () => res.end(),
  };
  if (!hub.subscribe(client, url.searchParams.get("boot") ?? undefined, since)) {
    res.end("event: busy\ndata: {}\n\n");
    return;
  }
  res.on("close", () => hub.unsubscribe(client));
}
