/**
 * Reads the secrets that only a deploy reads (config/secrets.ts leaves them
 * `deferred`): SOPS files decrypted with `sops --decrypt`, and commands
 * such as a password manager's CLI. Every such process runs here, through
 * one executor: no shell, the argv as declared, a timeout, the secret read
 * from its stdout pipe into memory and never written anywhere. Its output
 * never reaches a message; failures say what ran and how it ended.
 */
import { spawn } from "node:child_process";
import { dirname, relative } from "node:path";
import type { DeferredSecret } from "../config/secrets.ts";
import { commandText, type SecretCommand } from "../config/secret-command.ts";
import { ProviderError } from "./errors.ts";

/** The most a secrets process may print (a secrets file, a certificate); more is refused. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Of stderr only the start is kept, to recognise a tool's known failures; it is never shown. */
const MAX_STDERR_BYTES = 16 * 1024;
/** Seconds sops may take to decrypt a file. */
const SOPS_TIMEOUT_SEC = 60;

/** How a secrets process ended; `stdout` holds the secret. */
export interface SecretProcessResult {
  stdout: Buffer;
  /** The start of its stderr, to classify failures; never shown. */
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  tooLarge: boolean;
  spawnError: NodeJS.ErrnoException | undefined;
}

/** Runs a program for a secret; tests pass their own to see the argv. */
export type SecretRunner = (argv: readonly string[], o: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }) => Promise<SecretProcessResult>;

/** The executor: spawns `argv` without a shell, stdin closed, and collects stdout in memory. */
export const runSecretProcess: SecretRunner = (argv, o) =>
  new Promise((resolve) => {
    const [file, ...args] = argv;
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = "";
    let timedOut = false;
    let tooLarge = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    let settled = false;
    const child = spawn(file ?? "", args, { cwd: o.cwd, env: o.env, stdio: ["ignore", "pipe", "pipe"], shell: false });
    const stop = (): void => {
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 2000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, o.timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > MAX_OUTPUT_BYTES) {
        if (!tooLarge) stop();
        tooLarge = true;
        return;
      }
      out.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      if (err.length < MAX_STDERR_BYTES) err += chunk.toString("utf8");
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      for (const b of out) b.fill(0);
      resolve({ stdout, stderr: err.slice(0, MAX_STDERR_BYTES), code, signal, timedOut, tooLarge, spawnError });
    };
    child.on("error", (e: NodeJS.ErrnoException) => {
      spawnError = e;
      // A program that could not start never emits "close" on some versions.
      if (child.pid === undefined) finish(null, null);
    });
    child.on("close", finish);
  });

function ended(r: SecretProcessResult, timeoutSec: number): string {
  if (r.timedOut) return `did not finish within ${timeoutSec} s and was stopped`;
  if (r.tooLarge) return `printed more than ${MAX_OUTPUT_BYTES / 1024} KiB and was stopped`;
  if (r.signal !== null) return `was killed by ${r.signal}`;
  return `exited with code ${r.code ?? "?"}`;
}

/** Strips the one line break a command prints after its value (`op read` does). */
function value(stdout: Buffer): string {
  const text = stdout.toString("utf8");
  stdout.fill(0);
  return text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
}

async function fromCommand(service: string, key: string, c: SecretCommand, env: NodeJS.ProcessEnv, run: SecretRunner): Promise<string> {
  const where = `${c.declaredAt.file}:${c.declaredAt.line}:${c.declaredAt.col}`;
  const what = `the command for secret "${key}" of service ${service} (\`${commandText(c.argv)}\`, from ${where})`;
  const r = await run(c.argv, { cwd: c.cwd, env, timeoutMs: c.timeoutSec * 1000 });
  if (r.spawnError) {
    const code = r.spawnError.code ?? "error";
    const hint = code === "ENOENT" ? `install ${c.argv[0] ?? "it"} or put it on PATH, or fix the command at ${where}` : `check the command at ${where}`;
    r.stdout.fill(0);
    throw new ProviderError(`${what} could not start (${code})`, hint);
  }
  if (r.timedOut || r.tooLarge || r.code !== 0) {
    r.stdout.fill(0);
    // Its output is not shown: a failing password manager may still have printed a secret.
    throw new ProviderError(`${what} ${ended(r, c.timeoutSec)}; its output is not shown`, `run it yourself to see why (is the password manager signed in?), or raise its timeout at ${where}`);
  }
  const v = value(r.stdout);
  if (v === "") throw new ProviderError(`${what} printed nothing`, "a secrets command must print the value on its standard output");
  return v;
}

/** Why sops failed, from its own messages (which name keys and files, never values). */
function sopsFailure(stderr: string): { reason: string; hint: string } | undefined {
  if (/failed to load age identities|did not find keys|no identity matched|no age identit/i.test(stderr)) {
    return { reason: "no age key here can decrypt it", hint: "set SOPS_AGE_KEY_FILE to your age key file (absolute path), or SOPS_AGE_KEY to the key, as sops reads them; the file must be encrypted for its public key (sops updatekeys)" };
  }
  if (/MAC mismatch/i.test(stderr)) return { reason: "the file was changed without SOPS (MAC mismatch)", hint: "restore it from git, or edit it with `sops edit` so it is re-encrypted" };
  return undefined;
}

async function fromSops(service: string, file: string, env: NodeJS.ProcessEnv, run: SecretRunner): Promise<Map<string, string>> {
  const shown = relative(dirname(dirname(dirname(file))), file);
  const argv = ["sops", "--decrypt", "--input-type", "yaml", "--output-type", "json", file];
  const r = await run(argv, { cwd: dirname(file), env, timeoutMs: SOPS_TIMEOUT_SEC * 1000 });
  if (r.spawnError) {
    throw new ProviderError(
      `cannot decrypt ${shown} of service ${service}: sops ${r.spawnError.code === "ENOENT" ? "is not installed or not on PATH" : `could not start (${r.spawnError.code ?? "error"})`}`,
      "install sops 3.x (see docs/secrets.md: go install github.com/getsops/sops/v3/cmd/sops@v3.13.3) and put it on PATH",
    );
  }
  if (r.timedOut || r.tooLarge || r.code !== 0) {
    r.stdout.fill(0);
    const known = r.timedOut || r.tooLarge ? undefined : sopsFailure(r.stderr);
    throw new ProviderError(
      `cannot decrypt ${shown} of service ${service}: ${known?.reason ?? `sops --decrypt ${ended(r, SOPS_TIMEOUT_SEC)}`}`,
      known?.hint ?? `run \`sops --decrypt ${shown} > /dev/null\` yourself to see why`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(r.stdout.toString("utf8"));
  } catch {
    data = undefined;
  } finally {
    r.stdout.fill(0);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ProviderError(`cannot decrypt ${shown} of service ${service}: sops did not print a mapping`, "check the file with `sops --decrypt`");
  }
  const values = new Map<string, string>();
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") values.set(k, String(v));
  }
  return values;
}

/**
 * Reads deferred secrets: each SOPS file decrypted once, commands one after
 * another (a password manager may ask its user). Fails on the first problem,
 * naming the key and the source, never a value.
 */
export async function readDeferredSecrets(service: string, deferred: readonly DeferredSecret[], env: NodeJS.ProcessEnv, run: SecretRunner = runSecretProcess): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  const decrypted = new Map<string, Map<string, string>>();
  for (const d of deferred) {
    if (d.kind === "command") {
      values.set(d.key, await fromCommand(service, d.key, d.command, env, run));
      continue;
    }
    let file = decrypted.get(d.file);
    if (!file) {
      file = await fromSops(service, d.file, env, run);
      decrypted.set(d.file, file);
    }
    const v = file.get(d.key);
    if (v === undefined) throw new ProviderError(`secret "${d.key}" of service ${service} is not a single value in ${d.file} once decrypted`, "edit it with `sops edit`");
    values.set(d.key, v);
  }
  return values;
}
