import { dirname, join } from "node:path";
import { statSync } from "node:fs";
import type { Diagnostic } from "../util/diagnostics.ts";
import { didYouMean } from "../util/suggest.ts";
import type { BackendInfo } from "./state-backend.ts";
import type { EnvironmentConfig } from "./environment.ts";
import { envFileOf } from "./homelab-dir.ts";
import { commandText, expandSecretCommand, parseSecretCommand, type SecretCommand } from "./secret-command.ts";
import { checkSopsFile, SOPS_SECRETS_FILE } from "./sops-file.ts";
import { loadYamlFile, type YamlSource } from "./source.ts";

/** Where a secret's value comes from, in order of precedence. */
export type SecretOrigin = "env" | "file" | "sops" | "command" | "esc";

/** A required secret and whether it is provided (never its value). */
export interface SecretStatus {
  key: string;
  /** The environment variable that provides it, e.g. PEACH_DB_PASSWORD. */
  envVar: string;
  provided: SecretOrigin | undefined;
  /** Where it comes from, for display: a file or a command line, never a value. */
  from?: string;
}

/** A secret whose value only a deploy reads: decrypted with SOPS, or printed by a command. */
export type DeferredSecret = { key: string; kind: "sops"; file: string } | { key: string; kind: "command"; command: SecretCommand };

/** A service's secrets: status for display, values for deployment (never printed). */
export interface ServiceSecrets {
  statuses: SecretStatus[];
  /** Values by key; only those read from the environment or `.secrets.yaml`. */
  values: ReadonlyMap<string, string>;
  /** The secrets read at deploy (provider/secret-values.ts), in key order. */
  deferred: DeferredSecret[];
  diagnostics: Diagnostic[];
}

/** What the secrets depend on besides files: the state backend (ESC exists only with Pulumi Cloud). */
export interface SecretsContext {
  backend: BackendInfo;
}

const SECRETS_FILE = ".secrets.yaml";
const SECRETS_EXAMPLE_FILE = ".secrets.example.yaml";
export { SOPS_SECRETS_FILE } from "./sops-file.ts";

const EXAMPLE_FIELDS = ["description", "command", "timeout"];

/** The environment variable for a service's secret: service name, then key, upper case (`PEACH_DB_PASSWORD`). */
export function secretEnvVar(service: string, key: string): string {
  return `${service}_${key}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

function readMap(file: string, what: string, diagnostics: Diagnostic[]): { source: YamlSource; map: Record<string, unknown> } | undefined {
  const loaded = loadYamlFile(file, what);
  if (!loaded.ok) {
    if (!loaded.diagnostics[0]?.message.endsWith("not found")) diagnostics.push(...loaded.diagnostics);
    return undefined;
  }
  const d = loaded.source.data;
  if (d === null || typeof d !== "object" || Array.isArray(d)) {
    diagnostics.push({ file, line: 1, col: 1, severity: "error", message: `${what} must be a mapping of key: value` });
    return undefined;
  }
  return { source: loaded.source, map: d as Record<string, unknown> };
}

/**
 * A key's `command` in `.secrets.example.yaml`: its value is then a mapping
 * (`description`, `command`, `timeout`) instead of a description.
 */
function exampleCommand(key: string, value: unknown, file: string, source: YamlSource, diagnostics: Diagnostic[]): SecretCommand | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    diagnostics.push({ file, ...source.locate([key]), severity: "error", field: key, message: `"${key}" must be a description, or a mapping with description and command`, hint: `for a command: ${key}: { description: ..., command: [program, arg, ...] }` });
    return undefined;
  }
  const spec = value as Record<string, unknown>;
  for (const k of Object.keys(spec)) {
    if (!EXAMPLE_FIELDS.includes(k)) diagnostics.push({ file, ...source.locate([key, k], { key: true }), severity: "error", field: `${key}.${k}`, message: `unknown field "${k}" of secret "${key}"`, hint: didYouMean(k, EXAMPLE_FIELDS) ?? `expected one of: ${EXAMPLE_FIELDS.join(", ")}` });
  }
  if (spec["description"] !== undefined && typeof spec["description"] !== "string") {
    diagnostics.push({ file, ...source.locate([key, "description"]), severity: "error", field: `${key}.description`, message: "description must be text" });
  }
  if (spec["command"] === undefined) return undefined;
  return parseSecretCommand(spec["command"], {
    file,
    cwd: dirname(file),
    path: [key, "command"],
    locate: (p, k) => source.locate(p, { key: k ?? false }),
    field: `${key}.command`,
    timeout: spec["timeout"],
    timeoutPath: [key, "timeout"],
  }, diagnostics);
}

/**
 * Resolves a service's secrets. `.secrets.example.yaml` says which keys are
 * required; each comes from the first of: the environment variable, the
 * git-ignored `.secrets.yaml`, the SOPS-encrypted `.secrets.sops.yaml`, the
 * key's own `command`, the environment's `homelab:secrets_command`, a Pulumi
 * ESC environment (Pulumi Cloud backends only). Reads files only: SOPS
 * values and commands are left for the deploy (`deferred`), and the SOPS
 * file is checked without its key.
 */
export function resolveSecrets(serviceName: string, serviceDir: string, env: EnvironmentConfig | undefined, processEnv: NodeJS.ProcessEnv, ctx: SecretsContext): ServiceSecrets {
  const diagnostics: Diagnostic[] = [];
  const exampleFile = join(serviceDir, SECRETS_EXAMPLE_FILE);
  const secretsFile = join(serviceDir, SECRETS_FILE);
  const sopsFile = join(serviceDir, SOPS_SECRETS_FILE);
  const example = readMap(exampleFile, SECRETS_EXAMPLE_FILE, diagnostics);
  const local = readMap(secretsFile, SECRETS_FILE, diagnostics);
  if (local) {
    const mode = statSync(secretsFile).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      diagnostics.push({ file: secretsFile, line: 1, col: 1, severity: "warning", message: `${SECRETS_FILE} is readable by others (mode ${mode.toString(8)})`, hint: `chmod 600 ${secretsFile}` });
    }
  }
  const sopsLoaded = loadYamlFile(sopsFile, SOPS_SECRETS_FILE);
  let sops: { keys: Set<string>; source: YamlSource } | undefined;
  if (sopsLoaded.ok) {
    const checked = checkSopsFile(sopsFile, sopsLoaded.source);
    diagnostics.push(...checked.diagnostics);
    sops = { keys: new Set(checked.keys), source: sopsLoaded.source };
  } else if (!sopsLoaded.diagnostics[0]?.message.endsWith("not found")) diagnostics.push(...sopsLoaded.diagnostics);

  const keys = example ? Object.keys(example.map) : [];
  const values = new Map<string, string>();
  const deferred: DeferredSecret[] = [];
  const statuses: SecretStatus[] = [];
  const escUsable = (env?.escEnvironments.length ?? 0) > 0 && ctx.backend.kind === "cloud";
  const escBlocked: string[] = [];
  for (const key of keys) {
    const envVar = secretEnvVar(serviceName, key);
    const command = example ? exampleCommand(key, example.map[key], exampleFile, example.source, diagnostics) : undefined;
    let status: SecretStatus = { key, envVar, provided: undefined };
    const fromEnv = processEnv[envVar];
    const fromFile = local?.map[key];
    if (fromEnv !== undefined && fromEnv !== "") {
      status = { key, envVar, provided: "env", from: `$${envVar}` };
      values.set(key, fromEnv);
    } else if (fromFile !== undefined && fromFile !== null && fromFile !== "") {
      if (typeof fromFile !== "string" && typeof fromFile !== "number" && typeof fromFile !== "boolean") {
        diagnostics.push({ file: secretsFile, ...(local?.source.locate([key]) ?? { line: 1, col: 1 }), severity: "error", message: `secret "${key}" must be a single value, not ${Array.isArray(fromFile) ? "a list" : "a mapping"}` });
      } else {
        status = { key, envVar, provided: "file", from: SECRETS_FILE };
        values.set(key, String(fromFile));
      }
    } else if (sops?.keys.has(key)) {
      status = { key, envVar, provided: "sops", from: SOPS_SECRETS_FILE };
      deferred.push({ key, kind: "sops", file: sopsFile });
    } else if (command) {
      const expanded = expandSecretCommand(command, { service: serviceName, key, env: env?.name ?? "" });
      status = { key, envVar, provided: "command", from: commandText(expanded.argv) };
      deferred.push({ key, kind: "command", command: expanded });
    } else if (env?.secretsCommand) {
      const expanded = expandSecretCommand(env.secretsCommand, { service: serviceName, key, env: env.name });
      status = { key, envVar, provided: "command", from: commandText(expanded.argv) };
      deferred.push({ key, kind: "command", command: expanded });
    } else if (escUsable) {
      status = { key, envVar, provided: "esc", from: `Pulumi ESC (${env?.escEnvironments.map((e) => e.name).join(", ") ?? ""})` };
    } else if ((env?.escEnvironments.length ?? 0) > 0) {
      status = { key, envVar, provided: undefined, from: "Pulumi ESC, which needs a Pulumi Cloud backend" };
      escBlocked.push(key);
    }
    statuses.push(status);
    if (status.provided === undefined && example && !escBlocked.includes(key)) {
      diagnostics.push({
        file: exampleFile,
        ...example.source.locate([key], { key: true }),
        severity: "error",
        field: key,
        message: `required secret "${key}" of service ${serviceName} is not provided`,
        hint: `set ${envVar}, add "${key}" to services/${serviceName}/${SECRETS_FILE} or (encrypted) ${SOPS_SECRETS_FILE}, or give it a command in ${SECRETS_EXAMPLE_FILE}${ctx.backend.kind === "cloud" ? ", or provide it from a Pulumi ESC environment" : ""}`,
      });
    }
  }
  if (escBlocked.length > 0 && env) diagnostics.push(escOnDiy(serviceName, escBlocked, env, ctx.backend));
  const undeclared = (file: string, from: string, source: YamlSource, present: Iterable<string>): void => {
    for (const key of present) {
      if (!keys.includes(key)) {
        diagnostics.push({ file, ...source.locate([key], { key: true }), severity: "warning", message: `secret "${key}" is not listed in ${SECRETS_EXAMPLE_FILE}, so nothing requires it`, hint: `add it to ${SECRETS_EXAMPLE_FILE} if the service uses it, or remove it from ${from}` });
      }
    }
  };
  if (local) undeclared(secretsFile, SECRETS_FILE, local.source, Object.keys(local.map));
  if (sops) undeclared(sopsFile, SOPS_SECRETS_FILE, sops.source, sops.keys);
  return { statuses, values, deferred, diagnostics };
}

/** The error for secrets that only an ESC import could provide, on a backend without ESC: located at the import. */
function escOnDiy(service: string, keys: string[], env: EnvironmentConfig, backend: BackendInfo): Diagnostic {
  const first = env.escEnvironments[0];
  const vars = keys.map((k) => secretEnvVar(service, k)).join(", ");
  return {
    file: env.file ?? envFileOf(env),
    line: first?.line ?? 1,
    col: first?.col ?? 1,
    severity: "error",
    field: keys.join(", "),
    message: `secret${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")} of service ${service} would come from the Pulumi ESC environment "${first?.name ?? "?"}" imported here, but ESC works only with Pulumi Cloud and the state backend is a self-managed one (${backend.scheme}://)`,
    hint: `provide them without ESC: ${SOPS_SECRETS_FILE} (SOPS with age keys, works offline and in teams), a command (homelab:secrets_command, or command in ${SECRETS_EXAMPLE_FILE}), ${vars}, or ${SECRETS_FILE}; see docs/secrets.md. Or use a Pulumi Cloud backend (PULUMI_BACKEND_URL=https://api.pulumi.com)`,
  };
}
