/**
 * The transport: one undici pool per client (never the global dispatcher),
 * base path `/api2/json`, form-encoded parameters, authentication, requests
 * repeated as their policy allows (retry.ts), and Proxmox error parsing. API
 * modules build on `call`; nothing else in the client does I/O.
 */
import { Pool } from "undici";
import type { z } from "zod";
import type { Authenticator } from "./auth.ts";
import { TlsPinError, buildTlsConnector } from "../net/tls.ts";
import type { TlsPolicy } from "../net/tls.ts";
import { ProxmoxConfigError, ProxmoxConnectionError, ProxmoxError, ProxmoxResponseError, ProxmoxTlsError, ProxmoxTlsPinError, classifyApiFailure, contextFromPath, redactSecrets } from "./errors.ts";
import { defaultPolicy, retryDecision, retrying } from "./retry.ts";
import type { CallPolicy, RetryBudget, RetryState } from "./retry.ts";

/** A form or query parameter value; `undefined` and `null` are left out. */
export type FormValue = string | number | boolean | undefined | null;

/** Parameters of one request. */
export type FormParams = Readonly<Record<string, FormValue>>;

/** HTTP methods the Proxmox API uses. */
export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** One API request. */
export interface ApiRequest {
  method: HttpMethod;
  /** Below `/api2/json`, already escaped (build it with `apiPath`). */
  path: string;
  params?: FormParams;
  /** Names of parameters whose values are secrets (redacted from any error text). */
  secretParams?: readonly string[];
  /** How the request may be repeated (retry.ts); defaults to `defaultPolicy(method)`: reads for GET, writes otherwise. */
  policy?: CallPolicy;
  /** False for the login request itself. */
  authenticate?: boolean;
}

/** Encodes parameters the way Proxmox reads them: booleans `1`/`0`, UTF-8 percent-encoding. Pure. */
export function encodeForm(params: FormParams | undefined): string {
  const search = new URLSearchParams();
  if (!params) return "";
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    if (typeof value === "boolean") search.append(key, value ? "1" : "0");
    else if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new ProxmoxConfigError(`parameter ${key} is not a finite number`, "check the value passed");
      search.append(key, String(value));
    } else search.append(key, value);
  }
  return search.toString();
}

// RFC 3986 pchar minus "/": what may stay literal in one path segment. Proxmox paths carry
// UPIDs (`UPID:pve-01:...:root@pam!t:`), and keeping them readable keeps logs readable.
const SEGMENT_SAFE = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/;

/** Escapes one path segment, leaving `:`, `@`, `!` and friends readable. Pure. */
export function pathSegment(value: string | number): string {
  const text = String(value);
  if (text === "" || text === "." || text === "..") {
    throw new ProxmoxConfigError(`invalid path segment ${JSON.stringify(text)}`, "pass a node, storage or id name");
  }
  let out = "";
  for (const ch of text) out += SEGMENT_SAFE.test(ch) ? ch : encodeURIComponent(ch);
  return out;
}

/** Tagged template for API paths: every interpolated value is escaped as one segment. */
export function apiPath(strings: TemplateStringsArray, ...values: readonly (string | number)[]): string {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += pathSegment(value) + (strings[i + 1] ?? "");
  });
  return out;
}

// Errors raised before a single byte of the request can have left this machine.
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "UND_ERR_CONNECT_TIMEOUT"]);
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL|EPROTO/;

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  const cause = (error as { cause?: unknown }).cause;
  return cause !== undefined && cause !== error ? errorCode(cause) : undefined;
}

/** Maps a low-level failure to a typed error; `phase` says whether response bytes had arrived. Pure. */
export function transportError(error: unknown, method: string, path: string, host: string, secrets: Iterable<string>): ProxmoxError {
  if (error instanceof ProxmoxError) return error;
  if (error instanceof TlsPinError) return new ProxmoxTlsPinError(error.host, error.expected, error.actual);
  const code = errorCode(error);
  const detail = redactSecrets(error instanceof Error ? error.message : String(error), secrets);
  if (code !== undefined && TLS_CODE.test(code)) {
    return new ProxmoxTlsError(
      `TLS verification of ${host} failed: ${detail} (${code})`,
      "trust the cluster's CA (tls.caFile, e.g. a copy of /etc/pve/pve-root-ca.pem) or pin the certificate's SHA-256 fingerprint (tls.fingerprint)",
      code,
      error,
    );
  }
  const notSent = code !== undefined && NOT_SENT_CODES.has(code);
  return new ProxmoxConnectionError({
    method,
    path,
    code,
    maybeApplied: !notSent,
    message: `${method} ${path} failed: ${detail}${code ? ` (${code})` : ""}`,
    hint: notSent
      ? `check that ${host} is reachable and pveproxy is running (port 8006)`
      : method === "GET"
        ? `the connection to ${host} broke; retry later, and check the network and pveproxy`
        : `the connection to ${host} broke mid-request, so it may have been applied; check the result before repeating it`,
    cause: error,
  });
}

/** Transport settings. */
export interface HttpOptions {
  endpoint: string;
  tls: TlsPolicy;
  authenticator?: Authenticator;
  retry: RetryBudget;
  /** Per request: time to the response headers, and between body chunks. */
  timeoutMs: number;
  /** Parallel connections to the endpoint. */
  connections?: number;
  logger?: (line: string) => void;
}

/** Parses an endpoint into the origin and `/api2/json` base path. Pure. */
export function parseEndpoint(endpoint: string, insecure: boolean): { origin: string; basePath: string; host: string } {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ProxmoxConfigError(`endpoint ${JSON.stringify(endpoint)} is not a URL`, "use https://HOST:8006");
  }
  if (url.username || url.password) {
    throw new ProxmoxConfigError("the endpoint must not carry credentials", "put the token or password in the environment's secrets, not in the URL");
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && insecure)) {
    throw new ProxmoxConfigError(`endpoint ${url.origin} is not https`, "Proxmox serves its API over https on port 8006: use https://HOST:8006");
  }
  if (url.search || url.hash) throw new ProxmoxConfigError("the endpoint must not have a query or fragment", "use https://HOST:8006");
  const path = url.pathname.replace(/\/+$/, "");
  const basePath = path === "" ? "/api2/json" : path;
  if (basePath !== "/api2/json") throw new ProxmoxConfigError(`endpoint path ${basePath} is not /api2/json`, "use https://HOST:8006 (the client adds /api2/json)");
  return { origin: url.origin, basePath, host: url.host };
}

/** The JSON envelope Proxmox wraps every answer in. */
export interface Envelope {
  data: unknown;
  /** Line count of a task log (and some lists). */
  total?: number;
}

/** The HTTP layer of one client. */
export class ProxmoxHttp {
  readonly origin: string;
  readonly basePath: string;
  readonly host: string;
  readonly retry: RetryBudget;
  /** Requests sent, retries included: what the API economy is measured in. */
  requestsSent = 0;
  private authenticator: Authenticator | undefined;
  private readonly pool: Pool;
  private readonly timeoutMs: number;
  private readonly logger: ((line: string) => void) | undefined;

  constructor(options: HttpOptions) {
    const { origin, basePath, host } = parseEndpoint(options.endpoint, options.tls.insecure);
    this.origin = origin;
    this.basePath = basePath;
    this.host = host;
    this.retry = options.retry;
    this.authenticator = options.authenticator;
    this.timeoutMs = options.timeoutMs;
    this.logger = options.logger;
    this.pool = new Pool(origin, {
      connect: buildTlsConnector(options.tls, Math.min(options.timeoutMs, 10_000)),
      connections: options.connections ?? 6,
      pipelining: 1,
      allowH2: false,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  /** Sets the credentials after construction (ticket login needs the transport first). */
  setAuthenticator(authenticator: Authenticator): void {
    this.authenticator = authenticator;
  }

  /** The authenticator in use, if any. */
  get auth(): Authenticator | undefined {
    return this.authenticator;
  }

  /** Sends a request (with retries) and validates `data` against a schema. */
  async call<S extends z.ZodType>(request: ApiRequest, schema: S): Promise<z.output<S>> {
    const envelope = await this.send(request);
    return parseData(schema, envelope.data, request);
  }

  /** Sends a request, repeated as its policy allows; returns the whole JSON envelope. */
  async send(request: ApiRequest): Promise<Envelope> {
    const policy = request.policy ?? defaultPolicy(request.method);
    const canReauth = this.authenticator?.kind === "ticket" && request.authenticate !== false;
    const state: RetryState = { idempotent: policy.idempotent, tries: 0, lockTries: 0, reauthed: false, canReauth };
    return retrying(
      (n) => {
        state.tries = n;
        return this.once(request, policy);
      },
      (error) => {
        const decision = retryDecision(error, state, this.retry);
        if (!decision.retry) return undefined;
        if (decision.kind === "lock") state.lockTries += 1;
        if (decision.kind === "reauth") {
          state.reauthed = true;
          this.authenticator?.invalidate();
        }
        this.log(`retry ${request.method} ${request.path} in ${decision.delayMs} ms (${decision.kind}): ${(error as Error).message}`);
        return decision.delayMs;
      },
    );
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private secrets(request: ApiRequest): string[] {
    const secrets = this.authenticator?.secrets() ?? [];
    for (const name of request.secretParams ?? []) {
      const value = request.params?.[name];
      if (typeof value === "string") secrets.push(value, encodeURIComponent(value));
    }
    return secrets;
  }

  private async once(request: ApiRequest, policy: CallPolicy): Promise<Envelope> {
    const { method, path } = request;
    const headers: Record<string, string> = { accept: "application/json" };
    if (request.authenticate !== false && this.authenticator) Object.assign(headers, await this.authenticator.headers(method));
    const form = encodeForm(request.params);
    const inQuery = method === "GET" || method === "DELETE";
    let body: string | undefined;
    if (!inQuery && form !== "") {
      body = form;
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const fullPath = `${this.basePath}${path}${inQuery && form !== "" ? `?${form}` : ""}`;
    const started = performance.now();
    this.requestsSent += 1;
    let statusCode: number;
    let statusText: string;
    let text: string;
    try {
      const response = await this.pool.request({ method, path: fullPath, headers, body, idempotent: policy.idempotent });
      statusCode = response.statusCode;
      statusText = response.statusText;
      text = await response.body.text();
    } catch (error) {
      const typed = transportError(error, method, path, this.host, this.secrets(request));
      this.log(`${method} ${path} failed after ${Math.round(performance.now() - started)} ms: ${typed.message}`);
      throw typed;
    }
    const secrets = this.secrets(request);
    // A reason phrase is server text and may echo what was sent.
    this.log(`${method} ${path} ${statusCode} ${redactSecrets(statusText, secrets)} ${Math.round(performance.now() - started)} ms`);
    if (statusCode >= 200 && statusCode < 300) return parseEnvelope(text, request);
    let parsed: unknown;
    try {
      parsed = JSON.parse(redactSecrets(text, secrets));
    } catch {
      parsed = undefined;
    }
    throw classifyApiFailure(
      { status: statusCode, reason: redactSecrets(statusText, secrets), body: parsed, ...(this.authenticator ? { authKind: this.authenticator.kind } : {}) },
      contextFromPath(method, path),
    );
  }

  /** Writes a line to the client's logger, if it has one. */
  log(line: string): void {
    this.logger?.(line);
  }
}

function parseEnvelope(text: string, request: ApiRequest): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ProxmoxResponseError(request.method, request.path, text === "" ? "empty body" : "not JSON (truncated?)");
  }
  if (typeof parsed !== "object" || parsed === null || !("data" in parsed)) {
    throw new ProxmoxResponseError(request.method, request.path, "no `data` in the answer");
  }
  const envelope = parsed as { data: unknown; total?: unknown };
  return typeof envelope.total === "number" ? { data: envelope.data, total: envelope.total } : { data: envelope.data };
}

/** Validates `data` against a schema, as a typed error. */
function parseData<S extends z.ZodType>(schema: S, data: unknown, request: Pick<ApiRequest, "method" | "path">): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
    throw new ProxmoxResponseError(request.method, request.path, `unexpected data${where}: ${issue?.message ?? "invalid"}`);
  }
  return result.data;
}
