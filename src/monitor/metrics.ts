/**
 * The monitor's metrics in Prometheus' text format (version 0.0.4): a check
 * latency histogram, check and failure counters, remediation counters, and
 * per-service health and phase gauges. Memory is fixed by the number of
 * checks and services: nothing grows with time.
 */
import type { MonitorEvent } from "./events.ts";
import { PHASES } from "./state-machine.ts";
import type { Phase } from "./state-machine.ts";

/** Histogram buckets for check latency, in seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

interface CheckSeries {
  service: string;
  check: string;
  type: string;
  buckets: number[];
  count: number;
  sum: number;
  failures: number;
}

/** Escapes a label value. Pure. */
export function labelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(9)));
}

/** Counts events; `render` gives the /metrics text. */
export class MonitorMetrics {
  readonly #checks = new Map<string, CheckSeries>();
  readonly #remediations = new Map<string, number>();
  readonly #phase = new Map<string, Phase>();
  readonly #webhookFailures = { n: 0 };

  /** Registers a service (so its gauges exist before its first check). */
  service(name: string, phase: Phase = "unknown"): void {
    if (!this.#phase.has(name)) this.#phase.set(name, phase);
  }

  /** The sink. */
  readonly sink = (e: MonitorEvent): void => {
    switch (e.type) {
      case "check": {
        const key = `${e.service}\0${e.index}`;
        let s = this.#checks.get(key);
        if (!s) {
          s = { service: e.service, check: e.check, type: e.check.split(" ")[0] ?? "", buckets: LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0, failures: 0 };
          this.#checks.set(key, s);
        }
        const sec = e.latencyMs / 1000;
        LATENCY_BUCKETS.forEach((b, i) => {
          if (sec <= b) s.buckets[i] = (s.buckets[i] ?? 0) + 1;
        });
        s.count++;
        s.sum += sec;
        if (!e.ok) s.failures++;
        break;
      }
      case "state":
        this.#phase.set(e.service, e.to);
        break;
      case "action":
        if (e.phase !== "start") {
          const key = `${e.service}\0${e.action}\0${e.phase}`;
          this.#remediations.set(key, (this.#remediations.get(key) ?? 0) + 1);
        }
        break;
      case "monitor":
        if (e.message.startsWith("webhook")) this.#webhookFailures.n++;
        break;
    }
  };

  /** The Prometheus text. */
  render(): string {
    const out: string[] = [];
    const checks = [...this.#checks.values()].sort((a, b) => a.service.localeCompare(b.service) || a.check.localeCompare(b.check));
    out.push("# HELP homelab_monitor_check_duration_seconds How long health checks took.", "# TYPE homelab_monitor_check_duration_seconds histogram");
    for (const s of checks) {
      const l = { service: s.service, check: s.check, type: s.type };
      LATENCY_BUCKETS.forEach((b, i) => out.push(`homelab_monitor_check_duration_seconds_bucket${labels({ ...l, le: String(b) })} ${s.buckets[i] ?? 0}`));
      out.push(`homelab_monitor_check_duration_seconds_bucket${labels({ ...l, le: "+Inf" })} ${s.count}`);
      out.push(`homelab_monitor_check_duration_seconds_sum${labels(l)} ${num(s.sum)}`);
      out.push(`homelab_monitor_check_duration_seconds_count${labels(l)} ${s.count}`);
    }
    out.push("# HELP homelab_monitor_checks_total Health checks run.", "# TYPE homelab_monitor_checks_total counter");
    for (const s of checks) out.push(`homelab_monitor_checks_total${labels({ service: s.service, check: s.check, type: s.type })} ${s.count}`);
    out.push("# HELP homelab_monitor_check_failures_total Health checks that failed.", "# TYPE homelab_monitor_check_failures_total counter");
    for (const s of checks) out.push(`homelab_monitor_check_failures_total${labels({ service: s.service, check: s.check, type: s.type })} ${s.failures}`);
    out.push("# HELP homelab_monitor_remediations_total Remediations by action and outcome (ok, failed, deferred).", "# TYPE homelab_monitor_remediations_total counter");
    for (const [key, n] of [...this.#remediations.entries()].sort()) {
      const [service = "", action = "", outcome = ""] = key.split("\0");
      out.push(`homelab_monitor_remediations_total${labels({ service, action, outcome })} ${n}`);
    }
    const services = [...this.#phase.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    out.push("# HELP homelab_monitor_service_healthy 1 when the service is healthy, else 0.", "# TYPE homelab_monitor_service_healthy gauge");
    for (const [service, phase] of services) out.push(`homelab_monitor_service_healthy${labels({ service })} ${phase === "healthy" ? 1 : 0}`);
    out.push("# HELP homelab_monitor_service_state The service's phase (1 for the current one).", "# TYPE homelab_monitor_service_state gauge");
    for (const [service, phase] of services) for (const p of PHASES) out.push(`homelab_monitor_service_state${labels({ service, state: p })} ${p === phase ? 1 : 0}`);
    out.push("# HELP homelab_monitor_webhook_failures_total Notifications that could not be sent.", "# TYPE homelab_monitor_webhook_failures_total counter");
    out.push(`homelab_monitor_webhook_failures_total ${this.#webhookFailures.n}`);
    return out.join("\n") + "\n";
  }
}
