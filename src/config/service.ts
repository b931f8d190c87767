import { dirname, basename } from "node:path";
import type { Diagnostic } from "../util/diagnostics.ts";
import { fieldPath } from "../util/diagnostics.ts";
import { didYouMean } from "../util/suggest.ts";
import type { EnvironmentConfig } from "./environment.ts";
import type { Monitoring } from "./monitoring.ts";
import { RESOURCE_TYPES } from "./resource-types/index.ts";
import type { CheckContext } from "./resource-types/index.ts";
import { serviceTopSchema } from "./service-schema.ts";
import { loadYamlFile, type YamlSource } from "./source.ts";
import { zodIssuesToDiagnostics } from "./zod-diagnostics.ts";
import { summarize, type ServiceSummary } from "./summary.ts";

/** A resource as declared, schema-valid, before defaults. */
export interface ResourceDecl {
  id: string;
  type: string;
  dependsOn: string[];
  protect: boolean;
  /** Index in `resources`, for locating it in the file. */
  index: number;
  /** The schema output of its type. */
  spec: Record<string, unknown>;
}

/** A service whose service.yaml parsed and passed its schema. */
export interface Service {
  name: string;
  description: string | undefined;
  dir: string;
  file: string;
  resources: ResourceDecl[];
  monitoring: Monitoring | undefined;
  source: YamlSource;
}

/** The outcome of loading one service: the service when valid, the diagnostics always. */
export interface ServiceLoad {
  name: string;
  file: string;
  service: Service | undefined;
  summary: ServiceSummary;
  diagnostics: Diagnostic[];
}

/**
 * Loads services/<name>/service.yaml: syntax, schema, per-type checks and the
 * checks within one service (unique ids). Cross-service checks are in repository.ts.
 */
export function loadService(file: string, env: EnvironmentConfig | undefined): ServiceLoad {
  const dir = dirname(file);
  const folder = basename(dir);
  const loaded = loadYamlFile(file, "service.yaml");
  if (!loaded.ok) return { name: folder, file, service: undefined, summary: summarize(folder, file, undefined), diagnostics: loaded.diagnostics };
  const source = loaded.source;
  const data = source.data;
  const summary = summarize(folder, file, data);
  const diagnostics: Diagnostic[] = [];
  const report = (path: readonly (string | number)[], message: string, opts?: { hint?: string | undefined; severity?: Diagnostic["severity"]; key?: boolean }): void => {
    diagnostics.push({
      file,
      ...source.locate(path, { key: opts?.key ?? false }),
      severity: opts?.severity ?? "error",
      message,
      field: fieldPath(path),
      ...(opts?.hint ? { hint: opts.hint } : {}),
    });
  };
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    report([], "service.yaml must be a mapping with `name` and `resources`");
    return { name: folder, file, service: undefined, summary, diagnostics };
  }
  const top = serviceTopSchema.safeParse(data, { reportInput: true });
  if (!top.success) diagnostics.push(...zodIssuesToDiagnostics(top.error.issues, serviceTopSchema, source));
  const obj = data as Record<string, unknown>;
  if (typeof obj["name"] === "string" && obj["name"] !== folder) {
    report(["name"], `name "${obj["name"]}" differs from its folder "${folder}"`, { hint: `set name: ${folder}, or rename the folder to services/${obj["name"]}` });
  }

  const resources: ResourceDecl[] = [];
  const rawResources = Array.isArray(obj["resources"]) ? (obj["resources"] as unknown[]) : [];
  const seenIds = new Map<string, number>();
  rawResources.forEach((raw, index) => {
    const base = ["resources", index] as const;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      report(base, `resources[${index}] must be a mapping with id and type`);
      return;
    }
    const r = raw as Record<string, unknown>;
    const type = r["type"];
    if (typeof type !== "string") {
      report(type === undefined ? base : [...base, "type"], type === undefined ? `missing required field "type" in resources[${index}]` : `resources[${index}].type must be a string`, {
        hint: `one of: ${[...RESOURCE_TYPES.keys()].join(", ")}`,
      });
      return;
    }
    const def = RESOURCE_TYPES.get(type);
    if (!def) {
      report([...base, "type"], `unknown resource type "${type}"`, { hint: didYouMean(type, RESOURCE_TYPES.keys()) ?? `known types: ${[...RESOURCE_TYPES.keys()].join(", ")}` });
      return;
    }
    const parsed = def.schema.safeParse(raw, { reportInput: true });
    if (!parsed.success) {
      diagnostics.push(...zodIssuesToDiagnostics(parsed.error.issues, def.schema, source, base));
      return;
    }
    const spec = parsed.data as Record<string, unknown> & { id: string; depends_on?: string[]; protect?: boolean };
    const first = seenIds.get(spec.id);
    if (first !== undefined) {
      report([...base, "id"], `duplicate id "${spec.id}" (also resources[${first}], line ${source.locate(["resources", first, "id"]).line})`, { hint: "ids must be unique within a service" });
      return;
    }
    seenIds.set(spec.id, index);
    const ctx: CheckContext = {
      serviceName: folder,
      serviceDir: dir,
      source,
      basePath: base,
      env,
      report: (path, message, opts) => report([...base, ...path], message, opts),
    };
    def.check(spec, ctx);
    resources.push({ id: spec.id, type, dependsOn: spec.depends_on ?? [], protect: spec.protect ?? false, index, spec });
  });

  const monitoring = top.success ? top.data.monitoring : undefined;
  if (monitoring) checkMonitoring(monitoring, resources, report);
  const errors = diagnostics.some((d) => d.severity === "error");
  const service: Service | undefined =
    errors || !top.success
      ? undefined
      : { name: top.data.name, description: top.data.description, dir, file, resources, monitoring, source };
  return { name: folder, file, service, summary, diagnostics };
}

function checkMonitoring(
  m: Monitoring,
  resources: ResourceDecl[],
  report: (path: readonly (string | number)[], message: string, opts?: { hint?: string | undefined }) => void,
): void {
  const containers = resources.filter((r) => r.type === "proxmox:container").map((r) => r.id);
  (m.health_checks ?? []).forEach((c, i) => {
    const at = ["monitoring", "health_checks", i];
    if (c.resource !== undefined && !containers.includes(c.resource)) {
      report([...at, "resource"], `resource "${c.resource}" is not a proxmox:container of this service`, { hint: didYouMean(c.resource, containers) ?? (containers.length ? `containers: ${containers.join(", ")}` : undefined) });
    }
    const needsContainer = c.type === "command" || (c.type === "http" && c.url.includes("{address}")) || (c.type === "tcp" && (c.host ?? "{address}").includes("{address}"));
    if (needsContainer && c.resource === undefined && containers.length !== 1) {
      report(at, containers.length === 0 ? `this ${c.type} check needs a container, but the service has none` : `this ${c.type} check must say which container it is about`, {
        hint: containers.length > 1 ? `add resource: one of ${containers.join(", ")}` : undefined,
      });
    }
    if (c.type === "http") {
      try {
        const u = new URL(c.url.replaceAll("{address}", "192.0.2.1"));
        if (u.protocol !== "http:" && u.protocol !== "https:") report([...at, "url"], `url must be http:// or https://, got ${u.protocol}`);
      } catch {
        report([...at, "url"], `url "${c.url}" is not a valid URL`, { hint: "e.g. http://{address}:80/" });
      }
    }
    if (c.timeout !== undefined && c.interval !== undefined && c.timeout >= c.interval) {
      report([...at, "timeout"], `timeout (${c.timeout}s) must be shorter than interval (${c.interval}s)`);
    }
  });
}
