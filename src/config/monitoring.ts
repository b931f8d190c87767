import { z } from "zod";

const timing = {
  interval: z.int().positive().optional().describe("Seconds between checks (default 60)."),
  timeout: z.int().positive().optional().describe("Seconds before one check counts as failed (default 5)."),
  retries: z.int().positive().optional().describe("Consecutive failures before the service is unhealthy (default 3)."),
  resource: z.string().min(1).optional().describe("The proxmox:container this check is about (default: the service's only container)."),
};

const httpCheck = z.strictObject({
  type: z.literal("http"),
  url: z.string().min(1).describe("URL to GET; {address} is replaced by the container's address, e.g. http://{address}:80."),
  expect_status: z
    .union([z.int().min(100).max(599), z.array(z.int().min(100).max(599)).min(1)])
    .optional()
    .describe("Status code(s) that count as healthy (default: any 2xx or 3xx)."),
  expect_body: z.string().optional().describe("Text the response body must contain."),
  tls: z
    .strictObject({
      ca_file: z.string().optional(),
      fingerprint: z.string().regex(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/).optional(),
      insecure: z.boolean().optional(),
    })
    .optional()
    .describe("TLS verification for https URLs, as for Proxmox."),
  ...timing,
});

const tcpCheck = z.strictObject({
  type: z.literal("tcp"),
  host: z.string().min(1).optional().describe("Host to connect to (default {address})."),
  port: z.int().min(1).max(65535).describe("TCP port that must accept a connection."),
  ...timing,
});

const commandCheck = z.strictObject({
  type: z.literal("command"),
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]).describe("Command run inside the container over SSH; exit 0 is healthy."),
  ...timing,
});

/** One health check: http, tcp, or a command in the container. */
const healthCheckSchema = z.discriminatedUnion("type", [httpCheck, tcpCheck, commandCheck]);
export type HealthCheck = z.output<typeof healthCheckSchema>;

/** The `monitoring:` section of a service. */
export const monitoringSchema = z
  .strictObject({
    health_checks: z.array(healthCheckSchema).optional().describe("Checks run by `homelab monitor`."),
    auto_remediate: z.boolean().optional().describe("Repair the service when it becomes unhealthy (default false)."),
    restart_first: z.boolean().optional().describe("Restart the compose project before recreating the service (default true)."),
    max_remediations_per_hour: z.int().nonnegative().optional().describe("At most this many repairs per hour (default 3)."),
    grace_period: z.int().nonnegative().optional().describe("Seconds to wait after a restart before judging it (default 60)."),
  })
  .describe("Health checks and auto-remediation.");
export type Monitoring = z.output<typeof monitoringSchema>;

/** Check defaults, in one place for show, validation and the monitor. */
export const CHECK_DEFAULTS = { interval: 60, timeout: 5, retries: 3 } as const;
/** Monitoring defaults. */
export const MONITORING_DEFAULTS = { auto_remediate: false, restart_first: true, max_remediations_per_hour: 3, grace_period: 60 } as const;
