/**
 * Secrets fetched by a command, e.g. a password manager's CLI
 * (`[op, read, "op://homelab/{service}/{key}"]`): declared per key in
 * `.secrets.example.yaml` or for every key in the environment's
 * `homelab:secrets_command`. Here they are data (argv, timeout, where they
 * were declared); they run only at deploy, without a shell (see
 * provider/secret-values.ts). Pure.
 */
import type { Diagnostic } from "../util/diagnostics.ts";

/** Seconds a secrets command may run before it is stopped, unless its declaration says otherwise. */
const DEFAULT_SECRET_COMMAND_TIMEOUT_SEC = 30;
/** The longest timeout a declaration may ask for (a password manager waiting for a touch or a prompt). */
const MAX_SECRET_COMMAND_TIMEOUT_SEC = 600;

/** A command that prints one secret on its standard output. */
export interface SecretCommand {
  /** Program and arguments, run as they are (no shell, no globbing, no variables). */
  argv: string[];
  timeoutSec: number;
  /** The folder it runs in: that of the file declaring it, so `./get-secret` is found next to it. */
  cwd: string;
  /** Where it is declared, for messages. */
  declaredAt: { file: string; line: number; col: number };
}

/** `{service}`, `{key}` and `{env}` in a command's arguments stand for the secret being fetched. */
export function expandSecretCommand(command: SecretCommand, vars: { service: string; key: string; env: string }): SecretCommand {
  const argv = command.argv.map((a) => a.replace(/\{(service|key|env)\}/g, (_, name: "service" | "key" | "env") => vars[name]));
  return { ...command, argv };
}

/** How a command reads in messages: its words, quoted where they hold spaces. */
export function commandText(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./{}-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

type Locate = (path: readonly (string | number)[], key?: boolean) => { line: number; col: number };

/**
 * Reads a command declaration: a list `[program, arg, ...]`, or, when `timeoutKey` is
 * given, the `command` and `timeout` of a mapping. Problems are pushed as located errors.
 */
export function parseSecretCommand(
  value: unknown,
  o: { file: string; cwd: string; path: readonly (string | number)[]; locate: Locate; field: string; timeout?: unknown; timeoutPath?: readonly (string | number)[] },
  diagnostics: Diagnostic[],
): SecretCommand | undefined {
  const at = o.locate(o.path);
  const error = (message: string, hint: string, where = at): undefined => {
    diagnostics.push({ file: o.file, ...where, severity: "error", field: o.field, message, hint });
    return undefined;
  };
  if (typeof value === "string") {
    const words = value.trim().split(/\s+/).filter((w) => w !== "");
    return error(`${o.field} must be a list of words, not one string: it runs without a shell`, `write it as [${words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(", ")}]`);
  }
  if (!Array.isArray(value) || value.length === 0) return error(`${o.field} must be a non-empty list: [program, argument, ...]`, 'e.g. [op, read, "op://homelab/{service}/{key}"]');
  const bad = value.findIndex((w) => typeof w !== "string" || w === "");
  if (bad >= 0) return error(`${o.field}[${bad}] must be a non-empty string`, "quote numbers and flags that YAML would read otherwise", o.locate([...o.path, bad]));
  let timeoutSec = DEFAULT_SECRET_COMMAND_TIMEOUT_SEC;
  if (o.timeout !== undefined) {
    const t = o.timeout;
    if (typeof t !== "number" || !Number.isInteger(t) || t <= 0 || t > MAX_SECRET_COMMAND_TIMEOUT_SEC) {
      return error(`timeout must be a whole number of seconds from 1 to ${MAX_SECRET_COMMAND_TIMEOUT_SEC}`, `the default is ${DEFAULT_SECRET_COMMAND_TIMEOUT_SEC}`, o.locate(o.timeoutPath ?? o.path));
    }
    timeoutSec = t;
  }
  return { argv: value as string[], timeoutSec, cwd: o.cwd, declaredAt: { file: o.file, ...at } };
}
