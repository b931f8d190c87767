import { statSync } from "node:fs";
import { join } from "node:path";
import type { Diagnostic } from "../util/diagnostics.ts";
import type { EnvironmentConfig } from "./environment.ts";
import { loadYamlFile, type YamlSource } from "./source.ts";

/** Where a secret's value comes from, in order of precedence. */
export type SecretOrigin = "env" | "file" | "esc";

/** A required secret and whether it is provided (never its value). */
export interface SecretStatus {
  key: string;
  /** The environment variable that provides it, e.g. PEACH_DB_PASSWORD. */
  envVar: string;
  provided: SecretOrigin | undefined;
}

/** A service's secrets: status for display, values for deployment (never printed). */
export interface ServiceSecrets {
  statuses: SecretStatus[];
  /** Values by key; only those provided locally (env or file). */
  values: ReadonlyMap<string, string>;
  diagnostics: Diagnostic[];
}

export const SECRETS_FILE = ".secrets.yaml";
export const SECRETS_EXAMPLE_FILE = ".secrets.example.yaml";

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
 * Resolves a service's secrets from, in order: environment variables,
 * services/X/.secrets.yaml, and Pulumi ESC environments (checked at deploy).
 * `.secrets.example.yaml` says which keys are required.
 */
export function resolveSecrets(serviceName: string, serviceDir: string, env: EnvironmentConfig | undefined, processEnv: NodeJS.ProcessEnv): ServiceSecrets {
  const diagnostics: Diagnostic[] = [];
  const exampleFile = join(serviceDir, SECRETS_EXAMPLE_FILE);
  const secretsFile = join(serviceDir, SECRETS_FILE);
  const example = readMap(exampleFile, SECRETS_EXAMPLE_FILE, diagnostics);
  const local = readMap(secretsFile, SECRETS_FILE, diagnostics);
  if (local) {
    const mode = statSync(secretsFile).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      diagnostics.push({ file: secretsFile, line: 1, col: 1, severity: "warning", message: `${SECRETS_FILE} is readable by others (mode ${mode.toString(8)})`, hint: `chmod 600 ${secretsFile}` });
    }
  }
  const keys = example ? Object.keys(example.map) : [];
  const values = new Map<string, string>();
  const statuses: SecretStatus[] = [];
  const esc = (env?.escEnvironments.length ?? 0) > 0;
  for (const key of keys) {
    const envVar = secretEnvVar(serviceName, key);
    let provided: SecretOrigin | undefined;
    const fromEnv = processEnv[envVar];
    const fromFile = local?.map[key];
    if (fromEnv !== undefined && fromEnv !== "") {
      provided = "env";
      values.set(key, fromEnv);
    } else if (fromFile !== undefined && fromFile !== null && fromFile !== "") {
      if (typeof fromFile !== "string" && typeof fromFile !== "number" && typeof fromFile !== "boolean") {
        diagnostics.push({ file: secretsFile, ...(local?.source.locate([key]) ?? { line: 1, col: 1 }), severity: "error", message: `secret "${key}" must be a single value, not ${Array.isArray(fromFile) ? "a list" : "a mapping"}` });
      } else {
        provided = "file";
        values.set(key, String(fromFile));
      }
    } else if (esc) {
      provided = "esc";
    }
    statuses.push({ key, envVar, provided });
    if (provided === undefined && example) {
      diagnostics.push({
        file: exampleFile,
        ...example.source.locate([key], { key: true }),
        severity: "error",
        field: key,
        message: `required secret "${key}" of service ${serviceName} is not provided`,
        hint: `set ${envVar}, or add "${key}" to services/${serviceName}/${SECRETS_FILE}, or provide it from a Pulumi ESC environment`,
      });
    }
  }
  if (local) {
    for (const key of Object.keys(local.map)) {
      if (!keys.includes(key)) {
        diagnostics.push({ file: secretsFile, ...local.source.locate([key], { key: true }), severity: "warning", message: `secret "${key}" is not listed in ${SECRETS_EXAMPLE_FILE}, so nothing requires it`, hint: `add it to ${SECRETS_EXAMPLE_FILE} if the service uses it` });
      }
    }
  }
  return { statuses, values, diagnostics };
}
