/**
 * The one way provisioning reaches inside a container: SSH as root with the
 * environment's key (ssh2, pure JavaScript). Scripts go to `sh -s` on stdin,
 * never on the command line, so secrets in them never show up in a process
 * list inside the container. Host keys are pinned on first contact in an
 * OpenSSH-format known_hosts file and checked on every later connection.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { Client } from "ssh2";
import type { ClientChannel, ConnectConfig } from "ssh2";
import { cmd, quote } from "./shell.ts";

/** A host key as OpenSSH writes it: `<type> <base64 blob>`. */
export interface HostKey {
  type: string;
  base64: string;
}

/** The host key's type and base64 from the raw blob the server sent. */
export function hostKeyFromBlob(blob: Buffer): HostKey {
  if (blob.length < 4) throw new Error("malformed host key");
  const len = blob.readUInt32BE(0);
  if (len > blob.length - 4) throw new Error("malformed host key");
  return { type: blob.subarray(4, 4 + len).toString("latin1"), base64: blob.toString("base64") };
}

/** `SHA256:...` fingerprint of a host key, as `ssh-keygen -l` prints it. */
export function fingerprint(key: HostKey): string {
  return `SHA256:${createHash("sha256").update(Buffer.from(key.base64, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** The known_hosts host field: `addr`, or `[addr]:port` for another port than 22. */
function hostField(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** One parsed known_hosts line. */
interface KnownLine {
  hosts: string[];
  key?: HostKey;
  text: string;
}

/** Parses known_hosts text; comments, blank, hashed and marker lines are kept as text and never match. */
export function parseKnownHosts(text: string): KnownLine[] {
  return text
    .split("\n")
    .filter((l, i, all) => !(l === "" && i === all.length - 1))
    .map((line) => {
      const t = line.trim();
      if (t === "" || t.startsWith("#") || t.startsWith("|") || t.startsWith("@")) return { hosts: [], text: line };
      const [hosts, type, base64] = t.split(/\s+/);
      if (!hosts || !type || !base64) return { hosts: [], text: line };
      return { hosts: hosts.split(","), key: { type, base64 }, text: line };
    });
}

/** Host-key algorithms ssh2 should ask for, so a host that has several keys shows the pinned one. */
function algorithmsFor(type: string): string[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  return [type];
}

/** The pinned host keys of one environment, in an OpenSSH known_hosts file (usable with `ssh -o UserKnownHostsFile=`). */
export class KnownHosts {
  readonly file: string;
  #queue: Promise<unknown> = Promise.resolve();

  /** A store backed by `file` (created on first pin, with its folder 0700). */
  constructor(file: string) {
    this.file = file;
  }

  async #read(): Promise<KnownLine[]> {
    try {
      return parseKnownHosts(await readFile(this.file, "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  }

  async #write(lines: KnownLine[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, lines.map((l) => `${l.text}\n`).join(""), { mode: 0o600 });
    await rename(tmp, this.file);
  }

  // Writes in one process are serialised so parallel deployments do not lose each other's pins.
  #serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(f, f);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** The pinned key of a host, if any. */
  async lookup(host: string, port = 22): Promise<HostKey | undefined> {
    const field = hostField(host, port);
    return (await this.#read()).find((l) => l.key && l.hosts.includes(field))?.key;
  }

  /** Pins a host's key (replacing any earlier pin of that host). */
  pin(host: string, port: number, key: HostKey): Promise<void> {
    const field = hostField(host, port);
    return this.#serial(async () => {
      const lines = (await this.#read()).filter((l) => !l.hosts.includes(field));
      lines.push({ hosts: [field], key, text: `${field} ${key.type} ${key.base64}` });
      await this.#write(lines);
    });
  }

  /** Forgets a host's key (every port), e.g. when its container is replaced and a new one gets the address. Returns whether one was pinned. */
  forget(host: string): Promise<boolean> {
    return this.#serial(async () => {
      const all = await this.#read();
      const matches = (h: string): boolean => h === host || h.startsWith(`[${host}]:`);
      const kept = all.filter((l) => !l.hosts.some(matches));
      if (kept.length === all.length) return false;
      await this.#write(kept);
      return true;
    });
  }
}

/** Forgets the pinned key of `address` in a known_hosts file; call it when a container is re-created. */
export function forgetHost(knownHosts: string, address: string): Promise<boolean> {
  return new KnownHosts(knownHosts).forget(address);
}

/** What went wrong reaching a container, with what to do about it. */
export class SshError extends Error {
  readonly kind: "host-key-changed" | "auth" | "unreachable" | "refused" | "timeout" | "key" | "command" | "other";
  readonly hint: string;
  constructor(kind: SshError["kind"], message: string, hint: string, options?: { cause?: unknown }) {
    super(`${message}\n  → ${hint}`, options);
    this.name = "SshError";
    this.kind = kind;
    this.hint = hint;
  }
}

/** A container to reach. */
export interface SshTarget {
  host: string;
  port?: number;
  /** Default root. */
  username?: string;
  /** OpenSSH private key text (the environment's `.homelab/ssh/<env>/id_ed25519`). */
  privateKey: string | Buffer;
  /** Where the key came from, for messages. */
  privateKeyFile?: string;
  knownHosts: KnownHosts;
}

/** How hard to try while the container is still booting. */
export interface ConnectOptions {
  /** Give up after this long (default 120 s): a fresh container's sshd may take a while. */
  timeoutMs?: number;
  /** One attempt's handshake limit (default 10 s). */
  attemptTimeoutMs?: number;
  /** Called before each retry with the reason. */
  onRetry?: (attempt: number, reason: string) => void;
}

/** What a script printed and how it ended. */
export interface RunResult {
  code: number;
  signal?: string;
  stdout: string;
  stderr: string;
}

/** How to run one script. */
export interface RunOptions {
  /** Gets output as it arrives (for --verbose). */
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Kill the session after this long (default 10 min). */
  timeoutMs?: number;
  /** Reject with the output when the exit code is not 0 (default true). */
  check?: boolean;
  /** What the script does, for error messages (its text is never shown: it may hold secrets). */
  what?: string;
}

/** Runs scripts and writes files inside one container; the seam the deploy functions are tested through. */
export interface RemoteExecutor {
  /** Where it is connected, for messages. */
  readonly address: string;
  /** Runs a POSIX shell script (sent on stdin to `sh -s`). */
  run(script: string, options?: RunOptions): Promise<RunResult>;
  /** Writes a file atomically with a mode (the content goes on stdin, never on a command line). */
  upload(path: string, content: string | Uint8Array, mode: number): Promise<void>;
  close(): Promise<void>;
}

const RETRYABLE = /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|Timed out while waiting for handshake|Connection lost before handshake|Not connected|read ECONNRESET|socket hang up|No response from server/i;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Turns an ssh2 failure into what the user should do. */
export function translateSshError(err: unknown, host: string, port: number, keyFile: string | undefined): SshError {
  if (err instanceof SshError) return err;
  const msg = describe(err);
  const where = `${host}:${port}`;
  const level = (err as { level?: string } | undefined)?.level;
  if (/All configured authentication methods failed/i.test(msg) || level === "client-authentication") {
    return new SshError(
      "auth",
      `${where} refused the SSH key${keyFile ? ` ${keyFile}` : ""} for root`,
      "the container was created with other ssh-public-keys, or the key was regenerated: re-create the container, or add the key's .pub line to /root/.ssh/authorized_keys inside it",
      { cause: err },
    );
  }
  if (/Cannot parse privateKey|Unsupported key format|Encrypted private key detected/i.test(msg)) {
    return new SshError("key", `cannot use the SSH private key${keyFile ? ` ${keyFile}` : ""}: ${msg}`, "it must be an unencrypted OpenSSH key (homelab makes one per environment in .homelab/ssh/<env>/id_ed25519)", { cause: err });
  }
  if (/ECONNREFUSED/.test(msg)) {
    return new SshError("refused", `nothing accepts SSH connections on ${where}`, "is the container running and is sshd installed and started in it (the template must have openssh-server)?", { cause: err });
  }
  if (/EHOSTUNREACH|ENETUNREACH/.test(msg)) {
    return new SshError("unreachable", `${host} is unreachable from this machine`, "is the container running, is its address right, and is its bridge reachable from here?", { cause: err });
  }
  if (/ETIMEDOUT|Timed out|timed out/i.test(msg)) {
    return new SshError("timeout", `SSH to ${where} timed out`, "the container may still be booting, or a firewall drops port 22", { cause: err });
  }
  return new SshError("other", `SSH to ${where} failed: ${msg}`, "check that the container is running and reachable", { cause: err });
}

function changedKeyError(host: string, port: number, file: string, pinned: HostKey, seen: HostKey): SshError {
  return new SshError(
    "host-key-changed",
    `the SSH host key of ${hostField(host, port)} has changed: pinned ${pinned.type} ${fingerprint(pinned)}, now ${seen.type} ${fingerprint(seen)}`,
    `if the container at ${host} was re-created outside homelab (homelab forgets the old key itself when it replaces a container), remove its line from ${file} and deploy again; otherwise something else answers at that address: do not go on`,
  );
}

interface Connection {
  client: Client;
  pinnedNow: boolean;
}

async function connectOnce(target: SshTarget, attemptTimeoutMs: number): Promise<Connection> {
  const port = target.port ?? 22;
  const pinned = await target.knownHosts.lookup(target.host, port);
  let seen: HostKey | undefined;
  let mismatch = false;
  const client = new Client();
  const config: ConnectConfig = {
    host: target.host,
    port,
    username: target.username ?? "root",
    privateKey: target.privateKey,
    readyTimeout: attemptTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    hostVerifier: (key: Buffer) => {
      seen = hostKeyFromBlob(key);
      mismatch = pinned !== undefined && (seen.type !== pinned.type || seen.base64 !== pinned.base64);
      return !mismatch;
    },
    ...(pinned ? { algorithms: { serverHostKey: algorithmsFor(pinned.type) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"] } } : {}),
  };
  await new Promise<void>((resolve, reject) => {
    let done = false;
    client.once("ready", () => {
      done = true;
      resolve();
    });
    client.once("error", (err) => {
      if (done) return;
      done = true;
      client.end();
      if (mismatch && pinned && seen) reject(changedKeyError(target.host, port, target.knownHosts.file, pinned, seen));
      else reject(err instanceof Error ? err : new Error(String(err)));
    });
    client.once("close", () => {
      if (done) return;
      done = true;
      reject(new Error("Connection lost before handshake"));
    });
    try {
      client.connect(config);
    } catch (err) {
      done = true;
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
  // Pinned only after the server proved it holds the key (the handshake signs with it).
  if (!pinned && seen) await target.knownHosts.pin(target.host, port, seen);
  return { client, pinnedNow: !pinned };
}

/** Connects, retrying while the container boots; pins the host key on first contact and refuses a changed one. */
export async function connectSsh(target: SshTarget, options: ConnectOptions = {}): Promise<SshExecutor> {
  const port = target.port ?? 22;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
  const started = Date.now();
  let attempt = 0;
  let delay = 250;
  for (;;) {
    attempt++;
    try {
      const { client } = await connectOnce(target, Math.min(attemptTimeoutMs, Math.max(1000, timeoutMs - (Date.now() - started))));
      return new SshExecutor(client, target.host);
    } catch (err) {
      const msg = describe(err);
      // sshd may close a connection it accepted while it is still starting; a key problem never heals.
      const retry = !(err instanceof SshError) && RETRYABLE.test(msg) && Date.now() - started + delay < timeoutMs;
      if (!retry) throw translateSshError(err, target.host, port, target.privateKeyFile);
      options.onRetry?.(attempt, msg);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 3000);
    }
  }
}

/** Connects, runs `f` with the executor, and always closes. */
export async function withSsh<T>(target: SshTarget, f: (ex: SshExecutor) => Promise<T>, options?: ConnectOptions): Promise<T> {
  const ex = await connectSsh(target, options);
  try {
    return await f(ex);
  } finally {
    await ex.close();
  }
}

/** A connected SSH session to one container. */
export class SshExecutor implements RemoteExecutor {
  readonly address: string;
  readonly #client: Client;
  #closed = false;

  /** Wraps a connected ssh2 client (use connectSsh). */
  constructor(client: Client, address: string) {
    this.#client = client;
    this.address = address;
  }

  #exec(command: string, input: string | Uint8Array, options: RunOptions): Promise<RunResult> {
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    const what = options.what ?? "a script";
    return new Promise((resolve, reject) => {
      this.#client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) {
          reject(translateSshError(err, this.address, 22, undefined));
          return;
        }
        let stdout = "";
        let stderr = "";
        let code: number | undefined;
        let signal: string | undefined;
        const timer = setTimeout(() => {
          stream.close();
          reject(new SshError("timeout", `${what} on ${this.address} did not finish within ${Math.round(timeoutMs / 1000)} s`, `its last output:\n${tail(stdout + stderr, 20)}`));
        }, timeoutMs);
        stream.on("data", (d: Buffer) => {
          const s = d.toString("utf8");
          stdout += s;
          options.onOutput?.(s, "stdout");
        });
        stream.stderr.on("data", (d: Buffer) => {
          const s = d.toString("utf8");
          stderr += s;
          options.onOutput?.(s, "stderr");
        });
        stream.on("exit", (c: number | null, sig?: string) => {
          code = c ?? undefined;
          signal = sig ?? undefined;
        });
        stream.on("close", () => {
          clearTimeout(timer);
          const result: RunResult = { code: code ?? (signal ? 128 : -1), stdout, stderr, ...(signal ? { signal } : {}) };
          if ((options.check ?? true) && result.code !== 0) {
            reject(new SshError("command", `${what} failed on ${this.address} (exit ${result.code}${signal ? `, signal ${signal}` : ""})`, `its output ends with:\n${tail(stderr || stdout, 30)}`));
            return;
          }
          resolve(result);
        });
        stream.end(input);
      });
    });
  }

  /** Runs a POSIX shell script, sent on stdin to `sh -s`. */
  run(script: string, options: RunOptions = {}): Promise<RunResult> {
    this.#assertOpen();
    return this.#exec("sh -s", script, options);
  }

  /** Writes a file atomically (temporary file in the same folder, then rename), created with `mode` from the start. */
  async upload(path: string, content: string | Uint8Array, mode: number): Promise<void> {
    this.#assertOpen();
    if (!path.startsWith("/")) throw new Error(`upload needs an absolute path, got ${path}`);
    const octal = (mode & 0o7777).toString(8).padStart(4, "0");
    const tmp = `${path}.homelab-tmp`;
    // umask 077 first: the file never exists with looser bits, even for an instant.
    const command = `umask 077 && mkdir -p -- ${quote(dirname(path))} && ${cmd("cat")} > ${quote(tmp)} && chmod ${octal} -- ${quote(tmp)} && mv -f -- ${quote(tmp)} ${quote(path)}`;
    await this.#exec(command, content, { what: `writing ${path}`, timeoutMs: 5 * 60_000 });
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`the SSH session to ${this.address} is closed`);
  }

  /** Ends the session. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      this.#client.once("close", () => resolve());
      this.#client.end();
      // A peer that vanished never sends close.
      setTimeout(resolve, 2000).unref();
    });
  }
}

/** The last `n` lines of some output. */
export function tail(text: string, n: number): string {
  const lines = text.replace(/\s+$/, "").split("\n");
  return lines.slice(-n).join("\n");
}
