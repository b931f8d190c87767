import { relative } from "node:path";
import type { EnvironmentConfig } from "./environment.ts";
import { CHECK_DEFAULTS, MONITORING_DEFAULTS, type HealthCheck } from "./monitoring.ts";
import { RESOURCE_TYPES } from "./resource-types/index.ts";
import { parseDependency } from "./repository.ts";
import type { SecretStatus } from "./secrets.ts";
import type { Service } from "./service.ts";

/** A resource with every default filled in. */
export interface ResolvedResource {
  id: string;
  type: string;
  protect: boolean;
  depends_on: { service: string; id: string; ref: string }[];
  spec: Record<string, unknown>;
}

/** A service as `show` presents it: defaults from the environment, dependencies, secrets, checks. */
export interface ResolvedService {
  name: string;
  description: string | undefined;
  path: string;
  environment: { name: string; kind: string; file: string | undefined };
  resources: ResolvedResource[];
  /** Other services this one depends on. */
  depends_on_services: string[];
  secrets: SecretStatus[];
  monitoring: {
    health_checks: (HealthCheck & { interval: number; timeout: number; retries: number })[];
    auto_remediate: boolean;
    restart_first: boolean;
    max_remediations_per_hour: number;
    grace_period: number;
  };
}

/** Fills in defaults (environment, then built-in) and gathers what `show` displays. */
export function resolveService(service: Service, env: EnvironmentConfig, secrets: SecretStatus[], root: string): ResolvedService {
  const resources = service.resources.map((r): ResolvedResource => {
    const def = RESOURCE_TYPES.get(r.type);
    const spec: Record<string, unknown> = def ? { ...def.resolve(r.spec, env, service.dir) } : { ...r.spec };
    for (const k of ["id", "type", "protect", "depends_on"]) delete spec[k];
    for (const [k, v] of Object.entries(spec)) if (typeof v === "string" && v.startsWith(service.dir + "/")) spec[k] = relative(root, v);
    const docker = spec["docker"] as { compose_files?: string[] } | undefined;
    if (docker?.compose_files) docker.compose_files = docker.compose_files.map((f) => relative(root, f));
    return {
      id: r.id,
      type: r.type,
      protect: r.protect,
      depends_on: r.dependsOn.map((ref) => ({ ...parseDependency(ref, service.name), ref })),
      spec,
    };
  });
  const m = service.monitoring;
  return {
    name: service.name,
    description: service.description,
    path: relative(root, service.file),
    environment: { name: env.name, kind: env.kind, file: env.file ? relative(root, env.file) : undefined },
    resources,
    depends_on_services: [...new Set(resources.flatMap((r) => r.depends_on.map((d) => d.service)).filter((s) => s !== service.name))].sort(),
    secrets,
    monitoring: {
      health_checks: (m?.health_checks ?? []).map((c) => ({ ...c, interval: c.interval ?? CHECK_DEFAULTS.interval, timeout: c.timeout ?? CHECK_DEFAULTS.timeout, retries: c.retries ?? CHECK_DEFAULTS.retries })),
      auto_remediate: m?.auto_remediate ?? MONITORING_DEFAULTS.auto_remediate,
      restart_first: m?.restart_first ?? MONITORING_DEFAULTS.restart_first,
      max_remediations_per_hour: m?.max_remediations_per_hour ?? MONITORING_DEFAULTS.max_remediations_per_hour,
      grace_period: m?.grace_period ?? MONITORING_DEFAULTS.grace_period,
    },
  };
}
