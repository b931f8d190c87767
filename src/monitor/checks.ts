/**
 * The three kinds of health check, each `(check, target, signal) → result`:
 * http (undici; TLS verified as for Proxmox: system CAs, a CA file, or a
 * SHA-256 pin; `insecure` only when asked, per check, never process-wide),
 * tcp (a connection is accepted), and command (run inside the container by
 * an injected executor; exit 0 is healthy). A check never throws: every
 * failure is a result with a detail that says what went wrong.
 */
import { connect } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
import type { Dispatcher } from "undici";
import type { HealthCheck } from "../config/monitoring.ts";
import { cmd } from "../provision/shell.ts";
import { buildTlsConnector, resolveTlsPolicy } from "../net/tls.ts";

/** A check with its timing defaults filled in (as `resolveService` gives them). */
export type ResolvedCheck = HealthCheck & { interval: number; timeout: number; retries: number };
export type HttpCheck = Extract<ResolvedCheck, { type: "http" }>;
export type TcpCheck = Extract<ResolvedCheck, { type: "tcp" }>;
export type CommandCheck = Extract<ResolvedCheck, { type: "command" }>;

/** What a check is run against: the container the check is about. */
export interface CheckTarget {
  service: string;
  /** The container resource id. */
  resource: string | undefined;
  /** Its IPv4 address from the deployment; undefined when not deployed or not known yet. */
  address: string | undefined;
}

/** The outcome of one check. */
export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  detail: string;
}

/** Runs a command inside a container (the monitor's seam to SSH). */
export interface CommandExecutor {
  /** Runs `command` (a shell script) in the container at `address`; resolves with its exit code and some output. */
  run(target: CheckTarget & { address: string }, command: string, o: { timeoutMs: number; signal: AbortSignal }): Promise<{ code: number; output: string }>;
}

/** Most of a body the http check reads to look for `expect_body`. */
const MAX_BODY_BYTES = 1024 * 1024;

/** A short label for a check, e.g. `http http://{address}:80/`. Pure. */
export function checkLabel(c: HealthCheck): string {
  switch (c.type) {
    case "http":
      return `http ${c.url}`;
    case "tcp":
      return `tcp ${c.host ?? "{address}"}:${c.port}`;
    case "command": {
      const text = Array.isArray(c.command) ? c.command.join(" ") : c.command;
      return `command ${text.length > 40 ? `${text.slice(0, 39)}…` : text}`;
    }
  }
}

/** Fills `{address}` in; undefined when it is needed and not known. Pure. */
export function fillAddress(template: string, address: string | undefined): string | undefined {
  if (!template.includes("{address}")) return template;
  return address === undefined ? undefined : template.replaceAll("{address}", address);
}

/** The statuses an http check accepts: the given ones, else 2xx and 3xx. Pure. */
export function statusAccepted(status: number, expect: number | readonly number[] | undefined): boolean {
  if (expect === undefined) return status >= 200 && status < 400;
  return typeof expect === "number" ? status === expect : expect.includes(status);
}

function expectText(expect: number | readonly number[] | undefined): string {
  if (expect === undefined) return "2xx/3xx";
  return typeof expect === "number" ? String(expect) : expect.join("/");
}

/** A signal that aborts after `ms` or with `parent`; `timedOut` says which. */
function deadline(ms: number, parent: AbortSignal): { signal: AbortSignal; timedOut: () => boolean; cancel: () => void } {
  const ac = new AbortController();
  let timed = false;
  const timer = setTimeout(() => {
    timed = true;
    ac.abort(new Error(`timed out after ${ms / 1000} s`));
  }, ms);
  const onAbort = (): void => ac.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener("abort", onAbort, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => timed,
    cancel: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", onAbort);
    },
  };
}

function errorCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur !== null && typeof cur === "object" && depth < 4; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && code !== "") return code;
  }
  return undefined;
}

/** A failure as one line that says what went wrong. Pure. */
function describeFailure(e: unknown, timeoutMs: number, timedOut: boolean): string {
  if (timedOut) return `timed out after ${timeoutMs / 1000} s`;
  const code = errorCode(e);
  const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "";
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return `connection closed by the server (${msg})`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `name not resolved (${msg})`;
    case "ERR_TLS_PIN":
      return msg.replace(/^TLS certificate/, "TLS certificate pin mismatch:");
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "CERT_HAS_EXPIRED":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `TLS certificate not accepted (${code}): give tls.ca_file or pin tls.fingerprint`;
    default:
      return code ? `${msg} (${code})` : msg;
  }
}

async function readCapped(body: Dispatcher.ResponseData["body"], max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= max) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, max).toString("utf8");
}

/** Runs an http check: GET, status, optionally a text the body must contain. */
export async function httpCheck(check: HttpCheck, target: CheckTarget, signal: AbortSignal, dispatcher?: Dispatcher): Promise<CheckResult> {
  const url = fillAddress(check.url, target.address);
  if (url === undefined) return { ok: false, latencyMs: 0, detail: `no address for ${target.resource ?? target.service} (not deployed, or its address is not known yet)` };
  const timeoutMs = check.timeout * 1000;
  const d = deadline(timeoutMs, signal);
  const started = performance.now();
  try {
    const res = await request(url, {
      method: "GET",
      headers: { "user-agent": "homelab-monitor" },
      signal: d.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(dispatcher ? { dispatcher } : {}),
    });
    let body: string | undefined;
    if (check.expect_body !== undefined) body = await readCapped(res.body, MAX_BODY_BYTES);
    else await res.body.dump();
    const latencyMs = performance.now() - started;
    const ms = `${Math.round(latencyMs)} ms`;
    if (!statusAccepted(res.statusCode, check.expect_status)) return { ok: false, latencyMs, detail: `status ${res.statusCode}, expected ${expectText(check.expect_status)} (${ms})` };
    if (check.expect_body !== undefined && !(body ?? "").includes(check.expect_body)) {
      return { ok: false, latencyMs, detail: `status ${res.statusCode} but the body does not contain ${JSON.stringify(check.expect_body)} (${ms})` };
    }
    return { ok: true, latencyMs, detail: `status ${res.statusCode} (${ms})` };
  } catch (e) {
    return { ok: false, latencyMs: performance.now() - started, detail: describeFailure(e, timeoutMs, d.timedOut()) };
  } finally {
    d.cancel();
  }
}

/** Runs a tcp check: the port accepts a connection within the timeout. */
export function tcpCheck(check: TcpCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckResult> {
  const host = fillAddress(check.host ?? "{address}", target.address);
  if (host === undefined) return Promise.resolve({ ok: false, latencyMs: 0, detail: `no address for ${target.resource ?? target.service} (not deployed, or its address is not known yet)` });
  const timeoutMs = check.timeout * 1000;
  const d = deadline(timeoutMs, signal);
  const started = performance.now();
  return new Promise<CheckResult>((done) => {
    const socket = connect({ host, port: check.port });
    let settled = false;
    const finish = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      d.cancel();
      d.signal.removeEventListener("abort", onAbort);
      socket.destroy();
      done(r);
    };
    const onAbort = (): void => finish({ ok: false, latencyMs: performance.now() - started, detail: describeFailure(d.signal.reason, timeoutMs, d.timedOut()) });
    if (d.signal.aborted) onAbort();
    else d.signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => {
      const latencyMs = performance.now() - started;
      finish({ ok: true, latencyMs, detail: `${host}:${check.port} accepts connections (${Math.round(latencyMs)} ms)` });
    });
    socket.once("error", (e) => finish({ ok: false, latencyMs: performance.now() - started, detail: `${host}:${check.port}: ${describeFailure(e, timeoutMs, false)}` }));
  });
}

/** The script a command check runs: a string as it is, a list as one quoted command line. Pure. */
export function commandScript(command: string | readonly string[]): string {
  return typeof command === "string" ? command : cmd(...command);
}

/** Runs a command check through the executor; exit 0 is healthy. */
export async function commandCheck(check: CommandCheck, target: CheckTarget, signal: AbortSignal, executor: CommandExecutor): Promise<CheckResult> {
  const address = target.address;
  if (address === undefined) return { ok: false, latencyMs: 0, detail: `no address for ${target.resource ?? target.service} (not deployed, or its address is not known yet)` };
  const timeoutMs = check.timeout * 1000;
  const d = deadline(timeoutMs, signal);
  const started = performance.now();
  try {
    const r = await Promise.race([
      executor.run({ ...target, address }, commandScript(check.command), { timeoutMs, signal: d.signal }),
      new Promise<never>((_, reject) => {
        if (d.signal.aborted) reject(d.signal.reason as Error);
        d.signal.addEventListener("abort", () => reject(d.signal.reason as Error), { once: true });
      }),
    ]);
    const latencyMs = performance.now() - started;
    const last = r.output.trim().split("\n").pop()?.slice(0, 200) ?? "";
    return r.code === 0 ? { ok: true, latencyMs, detail: `exit 0 (${Math.round(latencyMs)} ms)` } : { ok: false, latencyMs, detail: `exit ${r.code}${last ? `: ${last}` : ""}` };
  } catch (e) {
    return { ok: false, latencyMs: performance.now() - started, detail: describeFailure(e, timeoutMs, d.timedOut()) };
  } finally {
    d.cancel();
  }
}

/** Options of the check runner. */
export interface CheckRunnerOptions {
  /** Runs command checks (the SSH executor in production). */
  executor?: CommandExecutor;
  /** Told once per check with `tls.insecure`. */
  warn?: (line: string) => void;
  /** Refuse `tls.insecure` (CI). */
  ci?: boolean;
}

/**
 * Runs checks by kind, keeping one dispatcher per http check with its own TLS
 * policy (built once by `prepare`, which throws on bad TLS settings so they
 * are reported at start-up, not as a failing service).
 */
export class CheckRunner {
  readonly #o: CheckRunnerOptions;
  readonly #agents = new Map<string, Agent>();

  constructor(o: CheckRunnerOptions = {}) {
    this.#o = o;
  }

  /** Builds what check `key` needs (its TLS dispatcher); `baseDir` resolves a relative `tls.ca_file`. Throws on invalid TLS settings. */
  prepare(key: string, check: ResolvedCheck, baseDir: string): void {
    if (check.type !== "http" || this.#agents.has(key)) return;
    const tls = check.tls;
    const policy = resolveTlsPolicy(
      tls ? { ...(tls.ca_file !== undefined ? { caFile: isAbsolute(tls.ca_file) ? tls.ca_file : resolve(baseDir, tls.ca_file) } : {}), ...(tls.fingerprint !== undefined ? { fingerprint: tls.fingerprint } : {}), ...(tls.insecure !== undefined ? { insecure: tls.insecure } : {}) } : undefined,
      { ci: this.#o.ci ?? false, warn: this.#o.warn ?? (() => undefined), endpoint: check.url },
    );
    // Keep-alive as undici does it (idle sockets closed after 4 s): checks less than that apart reuse a
    // connection (8x the throughput in bench/monitor-checks.ts); the usual intervals connect afresh.
    this.#agents.set(key, new Agent({ connect: buildTlsConnector(policy, check.timeout * 1000), allowH2: false, connections: 2 }));
  }

  /** Runs one check. */
  run(key: string, check: ResolvedCheck, target: CheckTarget, signal: AbortSignal): Promise<CheckResult> {
    switch (check.type) {
      case "http":
        return httpCheck(check, target, signal, this.#agents.get(key));
      case "tcp":
        return tcpCheck(check, target, signal);
      case "command":
        if (!this.#o.executor) return Promise.resolve({ ok: false, latencyMs: 0, detail: "command checks need SSH access to the container, which is not set up" });
        return commandCheck(check, target, signal, this.#o.executor);
    }
  }

  /** Closes the dispatchers. */
  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((a) => a.close()));
  }
}
