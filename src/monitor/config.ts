/**
 * What the monitor watches, from the configuration: each service's checks
 * (defaults filled in), its remediation policy, which containers run its
 * compose project, whether it is protected; and the environment's monitor
 * settings (`homelab:monitor`) with the monitor's defaults. Pure.
 */
import type { EnvironmentConfig, MonitorConfig, SecretRef } from "../config/environment.ts";
import { CHECK_DEFAULTS, MONITORING_DEFAULTS } from "../config/monitoring.ts";
import type { Service } from "../config/service.ts";
import type { ResolvedCheck } from "./checks.ts";
import { checkLabel } from "./checks.ts";
import type { Policy } from "./state-machine.ts";

/** One check of one service. */
export interface MonitoredCheck {
  /** `<service>#<index>`, unique. */
  key: string;
  index: number;
  label: string;
  check: ResolvedCheck;
}

/** One service as the monitor sees it. */
export interface MonitoredService {
  name: string;
  /** The service folder (relative TLS files are found from it). */
  dir: string;
  checks: MonitoredCheck[];
  policy: Policy;
  /** Containers with `docker.compose: true`: where a restart happens. */
  composeContainers: string[];
  /** Resources with `protect: true`: the service is never recreated. */
  protectedResources: string[];
}

/** The environment-wide monitor settings, defaults applied. */
export interface MonitorSettings {
  listen: string | undefined;
  /** The status page's token, referenced (read when the endpoint starts). */
  token: SecretRef | undefined;
  concurrency: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How often to ask again whether a deploy still holds a stack. */
  deployRetryMs: number;
  historyMaxBytes: number;
  webhook: MonitorConfig["webhook"];
}

/** The monitor's own defaults. */
const MONITOR_DEFAULTS = { concurrency: 16, backoffSec: 60, maxBackoffSec: 1800, deployRetrySec: 30, historyMaxKb: 1024 } as const;

/** The environment's monitor settings with defaults. Pure. */
export function monitorSettings(env: Pick<EnvironmentConfig, "monitor">): MonitorSettings {
  const m = env.monitor;
  return {
    listen: m?.listen,
    token: m?.token,
    concurrency: m?.concurrency ?? MONITOR_DEFAULTS.concurrency,
    backoffBaseMs: (m?.backoffSec ?? MONITOR_DEFAULTS.backoffSec) * 1000,
    backoffMaxMs: (m?.maxBackoffSec ?? MONITOR_DEFAULTS.maxBackoffSec) * 1000,
    deployRetryMs: MONITOR_DEFAULTS.deployRetrySec * 1000,
    historyMaxBytes: (m?.historyMaxKb ?? MONITOR_DEFAULTS.historyMaxKb) * 1024,
    webhook: m?.webhook,
  };
}

/** A service's checks and policy. Pure. */
export function monitoredService(service: Pick<Service, "name" | "dir" | "resources" | "monitoring">, settings: Pick<MonitorSettings, "backoffBaseMs" | "backoffMaxMs" | "deployRetryMs">): MonitoredService {
  const m = service.monitoring;
  const checks = (m?.health_checks ?? []).map((c, index): MonitoredCheck => {
    const check = { ...c, interval: c.interval ?? CHECK_DEFAULTS.interval, timeout: c.timeout ?? CHECK_DEFAULTS.timeout, retries: c.retries ?? CHECK_DEFAULTS.retries };
    return { key: `${service.name}#${index}`, index, label: checkLabel(check), check };
  });
  const protectedResources = service.resources.filter((r) => r.protect).map((r) => r.id);
  const composeContainers = service.resources
    .filter((r) => r.type === "proxmox:container" && (r.spec["docker"] as { compose?: boolean } | undefined)?.compose === true)
    .map((r) => r.id);
  return {
    name: service.name,
    dir: service.dir,
    checks,
    composeContainers,
    protectedResources,
    policy: {
      retries: checks.map((c) => c.check.retries),
      autoRemediate: m?.auto_remediate ?? MONITORING_DEFAULTS.auto_remediate,
      restartFirst: m?.restart_first ?? MONITORING_DEFAULTS.restart_first,
      protected: protectedResources.length > 0,
      maxPerHour: m?.max_remediations_per_hour ?? MONITORING_DEFAULTS.max_remediations_per_hour,
      graceMs: (m?.grace_period ?? MONITORING_DEFAULTS.grace_period) * 1000,
      backoffBaseMs: settings.backoffBaseMs,
      backoffMaxMs: settings.backoffMaxMs,
      deployRetryMs: settings.deployRetryMs,
    },
  };
}
