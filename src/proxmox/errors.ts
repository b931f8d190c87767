/**
 * Typed errors of the Proxmox client. Every error carries a `hint`: what the
 * user can do about it, so the CLI can print `message: hint` without knowing
 * Proxmox. Messages never contain credentials: the transport redacts every
 * secret it knows before building one.
 */

/** Base class: a failure talking to Proxmox, with advice for the user. */
export class ProxmoxError extends Error {
  /** What the user can do about it. */
  readonly hint: string;

  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }

  /** One line for the CLI: the failure, then what to do. */
  explain(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}

/** Invalid client options (endpoint, credentials shape, TLS settings). */
export class ProxmoxConfigError extends ProxmoxError {}

/** A parameter the client refused before sending anything. */
export class ProxmoxValidationError extends ProxmoxError {
  readonly param: string;

  constructor(param: string, message: string, hint: string) {
    super(message, hint);
    this.param = param;
  }
}

/** Where an API failure happened, as parsed from the request. */
export interface ApiErrorContext {
  method: string;
  /** Path below `/api2/json`, e.g. `/nodes/pve-01/lxc/105/status/start`. */
  path: string;
  node?: string;
  vmid?: number;
}

/** A task that ended in failure, as `tasks.wait` saw it. */
export interface TaskFailure {
  upid: string;
  /** The node the task ran on (from the UPID). */
  node: string;
  /** Task type from the UPID: `vzcreate`, `vzstart`, `download`, ... */
  type: string;
  /** The task's object id from the UPID, usually the vmid; may be empty. */
  id: string;
  /** `exitstatus` as Proxmox reported it: the error text. */
  exitstatus: string | undefined;
  /** The last lines of the task log. */
  logTail: readonly string[];
}

interface ApiErrorInit extends ApiErrorContext {
  status: number;
  /** The HTTP reason phrase, which Proxmox uses as its error message. */
  reason: string;
  /** Per-parameter messages of a 400 `Parameter verification failed.` */
  paramErrors?: Record<string, string>;
  message: string;
  hint: string;
  /** Raised by the client before sending, mirroring what the server would answer. */
  preflight?: boolean;
  /** The failed task that reported it, when the failure came from a task and not the HTTP answer. */
  task?: TaskFailure;
}

/**
 * The API refused a request: with an error status, or (when `task` is set) through the task
 * the request started. Proxmox runs some checks only inside the task (a start's config, lock
 * and config file lock; a create's template), so the same failure can arrive either way and
 * gets the same class. For a task, `status` is 500 (what Proxmox answers when such a check
 * fails before the task) and `reason` is the task's exit status.
 */
export class ProxmoxApiError extends ProxmoxError {
  readonly status: number;
  readonly reason: string;
  readonly paramErrors: Readonly<Record<string, string>>;
  readonly method: string;
  readonly path: string;
  readonly node: string | undefined;
  readonly vmid: number | undefined;
  readonly preflight: boolean;
  /** The failed task, when the failure was reported by a task. */
  readonly task: TaskFailure | undefined;

  constructor(init: ApiErrorInit) {
    super(init.message, init.hint);
    this.status = init.status;
    this.reason = init.reason;
    this.paramErrors = init.paramErrors ?? {};
    this.method = init.method;
    this.path = init.path;
    this.node = init.node;
    this.vmid = init.vmid;
    this.preflight = init.preflight ?? false;
    this.task = init.task;
  }
}

/** The guest (or its config file) is locked by another operation. */
export class ProxmoxLockedError extends ProxmoxApiError {
  /** `create`, `backup`, `migrate`, ... for a guest lock; undefined for a lock-file timeout. */
  readonly lock: string | undefined;
  /** `guest` for `CT N is locked (x)`, `timeout` for `can't lock file ... got timeout`. */
  readonly kind: "guest" | "timeout";

  constructor(init: ApiErrorInit & { lock: string | undefined; kind: "guest" | "timeout" }) {
    super(init);
    this.lock = init.lock;
    this.kind = init.kind;
  }
}

/** The node, guest, storage or task does not exist. */
export class ProxmoxNotFoundError extends ProxmoxApiError {}

/** The guest id is taken (two creators raced for the same `nextid`). */
export class ProxmoxAlreadyExistsError extends ProxmoxApiError {}

/** 401 (bad or expired credentials) or 403 (missing permission). */
export class ProxmoxAuthError extends ProxmoxApiError {}

/** A task (UPID) ended with an error, or did not end in time. */
export class ProxmoxTaskError extends ProxmoxError {
  readonly upid: string;
  readonly node: string;
  /** `exitstatus` as Proxmox reported it; undefined while still running. */
  readonly exitstatus: string | undefined;
  /** The last lines of the task log. */
  readonly logTail: readonly string[];

  constructor(init: { upid: string; node: string; exitstatus: string | undefined; logTail: readonly string[]; message: string; hint: string }) {
    super(init.message, init.hint);
    this.upid = init.upid;
    this.node = init.node;
    this.exitstatus = init.exitstatus;
    this.logTail = init.logTail;
  }
}

/** The task was still running when the wait's overall timeout ended. */
export class ProxmoxTaskTimeoutError extends ProxmoxTaskError {}

/** The connection failed or broke; `maybeApplied` says whether the server may have acted. */
export class ProxmoxConnectionError extends ProxmoxError {
  readonly method: string;
  readonly path: string;
  /** The system or undici error code, e.g. `ECONNREFUSED`, `UND_ERR_SOCKET`. */
  readonly code: string | undefined;
  /** True when the request may have reached the server (so a write must not be repeated blindly). */
  readonly maybeApplied: boolean;

  constructor(init: { method: string; path: string; code: string | undefined; maybeApplied: boolean; message: string; hint: string; cause?: unknown }) {
    super(init.message, init.hint, { cause: init.cause });
    this.method = init.method;
    this.path = init.path;
    this.code = init.code;
    this.maybeApplied = init.maybeApplied;
  }
}

/** The server's certificate could not be verified against the CA (or the system store). */
export class ProxmoxTlsError extends ProxmoxError {
  readonly code: string | undefined;

  constructor(message: string, hint: string, code: string | undefined, cause?: unknown) {
    super(message, hint, { cause });
    this.code = code;
  }
}

/** The server's certificate does not have the pinned SHA-256 fingerprint. */
export class ProxmoxTlsPinError extends ProxmoxTlsError {
  readonly expected: string;
  readonly actual: string;

  constructor(host: string, expected: string, actual: string) {
    super(
      `TLS certificate of ${host} has fingerprint ${actual}, expected ${expected}`,
      "the certificate changed or this is another server; if it was renewed on purpose, update the pinned fingerprint in the environment config (node → System → Certificates shows it)",
      "ERR_PROXMOX_TLS_PIN",
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/** The server answered 2xx with a body the client cannot read. */
export class ProxmoxResponseError extends ProxmoxError {
  readonly method: string;
  readonly path: string;

  constructor(method: string, path: string, detail: string) {
    super(
      `unreadable answer to ${method} ${path}: ${detail}`,
      "the server does not answer like Proxmox VE; check the endpoint URL (https://HOST:8006) and the Proxmox version",
    );
    this.method = method;
    this.path = path;
  }
}

/** Replaces every occurrence of a known secret with `***`. */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) {
    // Very short values would blank out ordinary words; such secrets are refused at setup.
    if (secret.length >= 4) out = out.split(secret).join("***");
  }
  return out;
}

const GUEST_PATH = /^\/nodes\/([^/]+)\/(?:lxc|qemu)\/(\d+)(?:\/|$)/;
const NODE_PATH = /^\/nodes\/([^/]+)(?:\/|$)/;

/** The node and guest id a request path names, when it names them. */
export function contextFromPath(method: string, path: string): ApiErrorContext {
  const guest = GUEST_PATH.exec(path);
  if (guest?.[1] !== undefined && guest[2] !== undefined) {
    return { method, path, node: decodeURIComponent(guest[1]), vmid: Number(guest[2]) };
  }
  const node = NODE_PATH.exec(path);
  if (node?.[1] !== undefined) return { method, path, node: decodeURIComponent(node[1]) };
  return { method, path };
}

/** A failed answer as the transport saw it. */
export interface FailedResponse {
  status: number;
  /** The reason phrase of the status line. */
  reason: string;
  /** The parsed JSON body, when there was one. */
  body: unknown;
  /** Which credentials were used, for the hint of a 401. */
  authKind?: "token" | "ticket";
}

function bodyField(body: unknown, key: string): unknown {
  if (typeof body !== "object" || body === null) return undefined;
  return (body as Record<string, unknown>)[key];
}

/** The `errors` map of a Proxmox error body, as strings. */
function paramErrorsOf(body: unknown): Record<string, string> {
  const errors = bodyField(body, "errors");
  const out: Record<string, string> = {};
  if (typeof errors !== "object" || errors === null) return out;
  for (const [key, value] of Object.entries(errors as Record<string, unknown>)) {
    out[key] = (typeof value === "string" ? value : JSON.stringify(value)).trim();
  }
  return out;
}

const GUEST_LOCK = /\b(?:CT|VM)\s*(\d+)?\s+is locked \(([^)]+)\)/;
const LOCK_TIMEOUT = /can't lock file '[^']*' - got timeout/;
const ALREADY_EXISTS = /\b(?:CT|VM)\s+(\d+)\s+already exists/;
const NOT_FOUND = /does not exist|\bno such\b|\bnot found\b|unable to find|hostname lookup '[^']*' failed/i;
const ROOT_ONLY_FEATURES = /feature flags? .*only allowed for root@pam/i;
const DIGEST_MISMATCH = /detected modified configuration/i;

type ApiErrorBase = Omit<ApiErrorInit, "message" | "hint">;

/**
 * A lost id race or a lock, from the first text that names one (the failure text, then the
 * parameter errors; a lock only from the failure text). Shared by the API and task classifiers,
 * so a refusal reads the same whichever way it arrived.
 */
function conflictError(base: ApiErrorBase, texts: readonly string[]): ProxmoxApiError | undefined {
  const where = base.node ? ` on node ${base.node}` : "";
  const exists = texts.map((t) => ALREADY_EXISTS.exec(t)).find((m) => m !== null);
  if (exists) {
    return new ProxmoxAlreadyExistsError({
      ...base,
      vmid: Number(exists[1]),
      message: exists[0] + where,
      hint: "another guest already uses that id; choose another id, or let the tool allocate one",
    });
  }
  const text = texts[0] ?? "";
  const locked = GUEST_LOCK.exec(text);
  if (locked) {
    const vmid = locked[1] !== undefined ? Number(locked[1]) : base.vmid;
    const lock = locked[2];
    const subject = vmid !== undefined ? `CT ${vmid}` : "the guest";
    return new ProxmoxLockedError({
      ...base,
      vmid,
      lock,
      kind: "guest",
      message: `${subject} is locked (${lock})`,
      hint: `another operation is running on it; retry, or check the task log${where}`,
    });
  }
  if (LOCK_TIMEOUT.test(text)) {
    const subject = base.vmid !== undefined ? `CT ${base.vmid}` : "the guest";
    return new ProxmoxLockedError({
      ...base,
      lock: undefined,
      kind: "timeout",
      message: `${subject}: timed out waiting for its config lock${where}`,
      hint: "another operation held the guest's configuration for too long; retry when it finishes",
    });
  }
  return undefined;
}

/** Turns a Proxmox error answer into the most specific typed error. Pure. */
export function classifyApiFailure(response: FailedResponse, ctx: ApiErrorContext): ProxmoxApiError {
  const { status } = response;
  const reason = response.reason.trim();
  const bodyMessage = bodyField(response.body, "message");
  // Newer servers repeat the reason in `message` (with a trailing newline); older ones only send the reason phrase.
  const text = (typeof bodyMessage === "string" && bodyMessage.trim() !== "" ? bodyMessage : reason).trim() || `HTTP ${status}`;
  const paramErrors = paramErrorsOf(response.body);
  const paramEntries = Object.entries(paramErrors);
  const base = { ...ctx, status, reason, paramErrors };
  const where = ctx.node ? ` on node ${ctx.node}` : "";

  if (status === 401) {
    const hint =
      response.authKind === "ticket"
        ? "check the username and password in the environment's secrets; the ticket may have expired"
        : "check the API token id and secret in the environment's secrets; the token may be expired or deleted";
    return new ProxmoxAuthError({ ...base, message: `authentication failed (${text})`, hint });
  }
  if (status === 403) {
    if (ROOT_ONLY_FEATURES.test(text)) {
      return new ProxmoxAuthError({
        ...base,
        message: text,
        hint: /privileged/.test(text)
          ? "on a privileged container only root@pam itself may change features, even nesting: make the container unprivileged, or use password credentials for root@pam"
          : "only root@pam itself may set features other than nesting (an API token cannot, even root's): use password credentials for root@pam, or set the features on the node with `pct set`",
      });
    }
    return new ProxmoxAuthError({
      ...base,
      message: `permission denied: ${text}`,
      hint: "grant the user or token the missing privilege on that path (for a token with privilege separation, grant it to the token too)",
    });
  }

  const conflict = conflictError(base, [text, ...paramEntries.map(([, m]) => m)]);
  if (conflict) return conflict;

  if (status === 400 || paramEntries.length > 0) {
    const details = paramEntries.map(([k, m]) => `${k}: ${m}`).join("; ");
    return new ProxmoxApiError({
      ...base,
      message: details ? `${text.replace(/\.$/, "")}: ${details}` : text,
      hint: paramEntries.length > 0 ? `fix the parameter${paramEntries.length > 1 ? "s" : ""} ${paramEntries.map(([k]) => k).join(", ")}` : "the request was refused as invalid; check the values sent",
    });
  }
  if (status === 404 || NOT_FOUND.test(text)) {
    return new ProxmoxNotFoundError({
      ...base,
      message: text,
      hint: "check the node, storage or guest id; it may have been removed since the last inventory",
    });
  }
  if (DIGEST_MISMATCH.test(text)) {
    return new ProxmoxApiError({ ...base, message: text, hint: "someone else changed the configuration since it was read; read it again and reapply the change" });
  }
  if (status === 501) {
    return new ProxmoxApiError({ ...base, message: text, hint: "this Proxmox VE version does not offer that call; check the server version" });
  }
  return new ProxmoxApiError({
    ...base,
    message: text,
    hint: `the Proxmox API failed${where}; retry, or read the node's logs (journalctl -u pveproxy -u pvedaemon)`,
  });
}

const CONFIG_MISSING = /Configuration file 'nodes\/([^/']+)\/(lxc|qemu-server)\/(\d+)\.conf' does not exist/;
// A dir storage's activate_volume says `volume '...' does not exist`; abs_filesystem_path says `can't find file '...'`.
const VOLUME_MISSING = /volume '([^']+)' does not exist|can't find file '([^']+)'/;

/**
 * Turns a failed task into the most specific typed error: the typed error the same refusal gets
 * as an API answer where one fits (a guest that does not exist, a lock, a lost id race, a missing
 * template), else a ProxmoxTaskError. Only failures that name their cause exactly are typed, so a
 * start that fails on, say, a missing bridge stays a task error and is never taken for a missing
 * guest. `origin` is the request that started the task. Pure.
 */
export function classifyTaskFailure(failure: TaskFailure, origin?: ApiErrorContext): ProxmoxApiError | ProxmoxTaskError {
  const text = (failure.exitstatus ?? "").trim();
  const taskVmid = /^\d+$/.test(failure.id) ? Number(failure.id) : undefined;
  const ctx = origin ?? { method: "GET", path: `/nodes/${failure.node}/tasks/${failure.upid}/status` };
  const node = ctx.node ?? failure.node;
  const base: ApiErrorBase = { ...ctx, node, vmid: ctx.vmid ?? taskVmid, status: 500, reason: text, task: failure };

  const missing = CONFIG_MISSING.exec(text);
  if (missing) {
    const kind = missing[2] === "lxc" ? "CT" : "VM";
    return new ProxmoxNotFoundError({
      ...base,
      node: missing[1],
      vmid: Number(missing[3]),
      message: `${kind} ${missing[3]} does not exist on node ${missing[1]}`,
      hint: "check the node and the guest id; it may have been removed, or moved to another node, since the last inventory",
    });
  }

  const volume = VOLUME_MISSING.exec(text);
  const volid = volume?.[1] ?? volume?.[2];
  const template = volid !== undefined ? /^([^:]+):vztmpl\/(.+)$/.exec(volid) : null;
  if (template) {
    const [, storage, file] = template;
    return new ProxmoxNotFoundError({
      ...base,
      message: `template ${volid} does not exist on node ${node}`,
      hint:
        `download it to storage ${storage} on ${node} first: \`pveam update && pveam download ${storage} ${file}\` on the node ` +
        `(through the API: POST /nodes/${node}/aplinfo); \`pveam available\` lists the templates that can be downloaded, \`pveam list ${storage}\` those already there`,
    });
  }

  const conflict = conflictError(base, [text]);
  if (conflict) return conflict;

  const what = failure.id ? `${failure.type} ${failure.id}` : failure.type;
  return new ProxmoxTaskError({
    upid: failure.upid,
    node: failure.node,
    exitstatus: failure.exitstatus,
    logTail: failure.logTail,
    message: `task ${what} on ${failure.node} failed: ${failure.exitstatus ?? "no exit status"}`,
    hint: `read the log tail, or the full log on node ${failure.node} (Tasks panel, or \`pvenode task log ${failure.upid}\`)`,
  });
}
