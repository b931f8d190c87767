/**
 * Who may read the monitor's endpoint. On a loopback address nobody else
 * can connect, so no token is needed, but the Host header must name
 * loopback too (a web page elsewhere cannot then reach it through DNS
 * rebinding). On any other address a token is required: read from the file
 * or variable `homelab:monitor` references (never an argument), given as
 * `Authorization: Bearer` or once in the login form, which sets an HttpOnly
 * cookie derived from it (the token itself is never stored in the browser
 * or echoed). Failed logins are limited.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ASSETS } from "./assets.ts";
import { esc } from "./render.ts";

/** Tokens shorter than this are refused: they would not guard much. */
const MIN_TOKEN_LENGTH = 16;
/** The session cookie's name. */
export const COOKIE = "homelab_session";
/** Failed logins allowed per minute (over all clients). */
export const MAX_FAILURES_PER_MINUTE = 10;

/** Whether an address to listen on is loopback (127.0.0.0/8, ::1, localhost). Pure. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** The host name of a Host header (`[::1]:9464` → `::1`). Pure. */
export function hostOf(header: string | undefined): string {
  const h = (header ?? "").trim();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]") > 0 ? h.indexOf("]") : undefined);
  return h.replace(/:\d+$/, "");
}

/** What the endpoint asks of a request. */
export interface RequestAuth {
  /** Whether the request may read everything. */
  authorized(req: IncomingMessage): boolean;
  /** Answers a request that may not (a login page for browsers, 401 or 421 otherwise). */
  deny(req: IncomingMessage, res: ServerResponse): void;
  /** Serves /login (the form, and POST); false when logins are not a thing here. */
  login(req: IncomingMessage, res: ServerResponse): boolean;
}

/** Security headers of every page the endpoint serves. */
export const PAGE_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

/** Loopback without a token: only requests whose Host names loopback. */
export class LoopbackAuth implements RequestAuth {
  authorized(req: IncomingMessage): boolean {
    return isLoopback(hostOf(req.headers.host));
  }
  deny(_req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(421, { "content-type": "text/plain; charset=utf-8", ...PAGE_HEADERS }).end("this endpoint answers to loopback host names only (127.0.0.1, localhost, [::1]); to serve it under another name, set a token (homelab:monitor token_file or token_env)\n");
  }
  login(): boolean {
    return false;
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function wantsHtml(req: IncomingMessage): boolean {
  return (req.headers.accept ?? "").includes("text/html");
}

/** The login page. Pure. */
function loginPage(message: string | undefined): string {
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light dark">',
    `<title>homelab · sign in</title><link rel="stylesheet" href="${ASSETS.css.path}"></head><body>`,
    '<main><form class="login" method="post" action="login"><h1>homelab</h1>',
    '<p class="muted">This status page needs the token set in <code>homelab:monitor</code> (<code>token_file</code> or <code>token_env</code>).</p>',
    message ? `<p class="bad" role="alert">${esc(message)}</p>` : "",
    '<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus>',
    '<button type="submit">Sign in</button></form></main></body></html>',
    "",
  ].join("");
}

/** A token for everything: Bearer, or the cookie the login form sets. */
export class TokenAuth implements RequestAuth {
  readonly #digest: Buffer;
  readonly #session: Buffer;
  readonly #now: () => number;
  #failures: number[] = [];

  constructor(token: string, o: { now?: () => number } = {}) {
    if (token.length < MIN_TOKEN_LENGTH) throw new Error(`the token is ${token.length} characters long; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -base64 32)`);
    this.#digest = digest(token);
    // The cookie proves the token was given without being the token.
    this.#session = Buffer.from(createHmac("sha256", token).update("homelab-monitor-session/1").digest("base64url"), "utf8");
    this.#now = o.now ?? Date.now;
  }

  /** Whether `given` is the token (constant time). */
  matches(given: string): boolean {
    return timingSafeEqual(digest(given), this.#digest);
  }

  #sessionOk(value: string | undefined): boolean {
    if (value === undefined) return false;
    const v = Buffer.from(value, "utf8");
    return v.length === this.#session.length && timingSafeEqual(v, this.#session);
  }

  authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (h !== undefined && /^Bearer\s+/i.test(h)) return this.matches(h.replace(/^Bearer\s+/i, "").trim());
    return this.#sessionOk(cookieValue(req.headers.cookie, COOKIE));
  }

  deny(req: IncomingMessage, res: ServerResponse): void {
    if (wantsHtml(req) && req.method === "GET") {
      res.writeHead(401, { "content-type": "text/html; charset=utf-8", "www-authenticate": 'Bearer realm="homelab"', ...PAGE_HEADERS }).end(loginPage(undefined));
      return;
    }
    res.writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="homelab"', ...PAGE_HEADERS }).end("a token is needed: Authorization: Bearer <token>, or sign in at /login\n");
  }

  /** Whether another failed login is allowed now (a sliding minute). */
  #allowFailure(): boolean {
    const now = this.#now();
    this.#failures = this.#failures.filter((t) => t > now - 60_000);
    return this.#failures.length < MAX_FAILURES_PER_MINUTE;
  }

  login(req: IncomingMessage, res: ServerResponse): boolean {
    const html = { "content-type": "text/html; charset=utf-8", ...PAGE_HEADERS };
    if (req.method !== "POST") {
      res.writeHead(200, html).end(req.method === "HEAD" ? undefined : loginPage(undefined));
      return true;
    }
    if (!this.#allowFailure()) {
      res.writeHead(429, { ...html, "retry-after": "60" }).end(loginPage("Too many wrong tokens; try again in a minute."));
      req.resume();
      return true;
    }
    let body = "";
    let tooBig = false;
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
      if (body.length > 4096) {
        tooBig = true;
        req.destroy();
      }
    });
    req.on("end", () => {
      if (tooBig) return;
      const token = new URLSearchParams(body).get("token") ?? "";
      if (token !== "" && this.matches(token.trim())) {
        res
          .writeHead(303, { location: "./", "set-cookie": `${COOKIE}=${this.#session.toString("utf8")}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000`, ...PAGE_HEADERS })
          .end();
        return;
      }
      this.#failures.push(this.#now());
      res.writeHead(401, html).end(loginPage("That is not the token."));
    });
    return true;
  }
}

/**
 * The auth for an address: a token when one is configured (any address),
 * loopback-only without one; an error message when the address is not
 * loopback and there is no token. Pure.
 */
export function authFor(host: string, token: string | undefined): { auth: RequestAuth } | { error: string } {
  if (token !== undefined) return { auth: new TokenAuth(token) };
  if (isLoopback(host)) return { auth: new LoopbackAuth() };
  return { error: `${host} is not a loopback address, so the status page needs a token` };
}
