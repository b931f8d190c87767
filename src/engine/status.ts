/**
 * `homelab status`: what is deployed per service in an environment, from the
 * state (no Proxmox call): each stack with its last update and resources
 * (node, vmid, address), stacks whose service folder is gone (orphans), and
 * services never deployed.
 */
import type { Engine } from "./engine.ts";
import { describeLock, lockOwner } from "./locks.ts";
import { resourceFacts } from "./state.ts";
import { stackName } from "./stacks.ts";

/** One resource as status shows it. */
export interface StatusResource {
  id: string;
  type: string;
  node: string | undefined;
  vmid: number | undefined;
  address: string | undefined;
  /** A container's template (volid). */
  template?: string | undefined;
  /** What else there is to know: an image's pushed reference, a compose project's unit and Docker. */
  detail: string | undefined;
  protect: boolean;
}

/** One service's line in status. */
export interface ServiceStatusRow {
  service: string;
  stack: string;
  /** deployed; never-deployed (no stack, or one with no resources); orphaned (stack without service folder). */
  state: "deployed" | "never-deployed" | "orphaned";
  lastUpdate: string | undefined;
  resources: StatusResource[];
  /** Operations an interrupted run left (the next deploy clears them). */
  pendingOperations: number;
  /** Who holds the stack's lock, if anyone. */
  lock: string | undefined;
}

/** The status of an environment: every service found, every stack of the environment. */
export async function environmentStatus(engine: Engine, envName: string, serviceNames: readonly string[], only?: string): Promise<ServiceStatusRow[]> {
  const stacks = await engine.listStacks();
  const byService = new Map(stacks.map((s) => [s.service, s]));
  const names = [...new Set([...serviceNames, ...stacks.map((s) => s.service)])].filter((n) => only === undefined || n === only).sort();
  return Promise.all(
    names.map(async (service): Promise<ServiceStatusRow> => {
      const stack = stackName(envName, service);
      const info = byService.get(service);
      const inRepo = serviceNames.includes(service);
      if (!info) return { service, stack, state: "never-deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined };
      const state = await engine.readState(stack);
      const resources = (state?.resources ?? []).map((r) => ({ id: r.id, type: r.type, protect: r.protect, ...resourceFacts(r) }));
      const lock = (await engine.locks(stack))[0];
      return {
        service,
        stack,
        state: !inRepo ? "orphaned" : resources.length === 0 ? "never-deployed" : "deployed",
        lastUpdate: info.lastUpdate?.toISOString(),
        resources,
        pendingOperations: state?.pending.length ?? 0,
        lock: lock ? describeLock(lock, lockOwner(lock)) : undefined,
      };
    }),
  );
}
