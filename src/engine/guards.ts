/**
 * The safety guards, as pure checks over a preview or a plan:
 * - CI deletion guard: a CI run applies nothing that deletes or replaces
 *   a resource unless `--allow-delete`;
 * - production guard: in a production environment, CI deploys only
 *   resources marked `protect: true`;
 * - protect guard: destroy refuses while a resource is protected;
 * - data guard: in CI or not, a container whose data cannot follow it to
 *   another node is moved only with `--allow-delete`.
 */
import type { ServicePlan } from "../plan/types.ts";
import type { ResourceChange } from "./events.ts";
import type { DeployedResource } from "./state.ts";

/** Which guard refused. */
export type GuardName = "ci-delete" | "production" | "protect" | "data";

/** One refusal: the guard, the service and resource, and what to do. */
export interface GuardViolation {
  guard: GuardName;
  service: string;
  resource: string;
  message: string;
  hint: string;
}

/** CI deletion guard: every delete or replace in a preview, unless allowed. Pure. */
export function deletionGuard(service: string, changes: readonly ResourceChange[], allowDelete: boolean): GuardViolation[] {
  if (allowDelete) return [];
  return changes
    .filter((c) => c.kind === "delete" || c.kind === "replace")
    .map((c) => {
      const why = c.kind === "replace" ? replaceReason(c) : "it is no longer in service.yaml";
      return {
        guard: "ci-delete" as const,
        service,
        resource: c.id,
        message: `${c.id} would be ${c.kind === "replace" ? "replaced (deleted and created again)" : "deleted"}: ${why}`,
        hint: "review the preview; deletions and replacements need --allow-delete in CI",
      };
    });
}

function replaceReason(c: ResourceChange): string {
  const keys = c.properties.filter((p) => p.replaces).map((p) => p.key);
  return keys.length > 0 ? `${keys.join(", ")} changed` : "the provider requires it";
}

/** Production guard: in a production environment, every deployable resource must be `protect: true`. Pure. */
export function productionGuard(plan: ServicePlan, production: boolean, envName: string): GuardViolation[] {
  if (!production) return [];
  return plan.resources
    .filter((r) => r.kind === "proxmox:container" && !r.protect)
    .map((r) => ({
      guard: "production" as const,
      service: plan.service,
      resource: r.id,
      message: `${r.id} is not protect: true, and ${envName} is a production environment`,
      hint: `add \`protect: true\` to ${r.id} in services/${plan.service}/service.yaml`,
    }));
}

/** Protect guard for destroy: the protected resources of a stack. Pure. */
export function protectGuard(service: string, resources: readonly DeployedResource[]): GuardViolation[] {
  return resources
    .filter((r) => r.protect)
    .map((r) => ({
      guard: "protect" as const,
      service,
      resource: r.id,
      message: `${r.id} is protected (protect: true)`,
      hint: `set protect: false on ${r.id} in services/${service}/service.yaml and run \`homelab deploy ${service}\`, then destroy`,
    }));
}

/**
 * Data guard: a container moving to another node while it has volumes leaves its data
 * behind (Proxmox moves volumes only between containers of one node); refused unless
 * `--allow-delete`, in CI or not. Pure.
 */
export function dataGuard(plan: ServicePlan, allowDelete: boolean): GuardViolation[] {
  if (allowDelete) return [];
  return plan.resources.flatMap((r) =>
    r.kind === "proxmox:container" && r.dataMove
      ? [
          {
            guard: "data" as const,
            service: plan.service,
            resource: r.id,
            message: `${r.id} would move from ${r.dataMove.from} to ${r.dataMove.to}, and its volumes (${r.dataMove.volumes.join(", ")}) cannot follow: Proxmox moves volumes only between containers of one node. The old container would be kept on ${r.dataMove.from} with the data, and the new one would start with empty volumes`,
            hint: `keep a tag of ${r.dataMove.from} in host.tags so it stays there; or, to move anyway, deploy with --allow-delete and copy the data across (homelab backups ${plan.service} lists its backups; homelab restore restores one)`,
          },
        ]
      : [],
  );
}
