/**
 * Where each service's containers are: read from the deployment (the
 * service's stack state: each `homelab:proxmox:Container` with its address
 * and protect flag), cached for a while and re-read after a remediation
 * (a recreated container may have a new address).
 */
import { CONTAINER_TYPE, resourceFacts } from "../engine/state.ts";
import type { StackState } from "../engine/state.ts";
import { stackName } from "../engine/stacks.ts";
import type { CheckTarget } from "./checks.ts";
import type { Clock } from "./clock.ts";

/** One deployed container of a service. */
export interface ResourceTarget {
  id: string;
  address: string | undefined;
  protect: boolean;
}

/** What is deployed of a service. */
export interface ServiceTarget {
  service: string;
  /** False when the stack has no container (never deployed, or destroyed). */
  deployed: boolean;
  containers: ResourceTarget[];
}

/** How the monitor learns where services are. */
export interface TargetSource {
  get(service: string): Promise<ServiceTarget>;
  /** Forget what is cached (after a restart or recreate). */
  invalidate(service: string): void;
}

/** Reads a stack's state; the engine's `Engine` is one. */
export interface StateReader {
  readState(stack: string): Promise<StackState | undefined>;
}

/** A service's containers from its stack state. Pure. */
export function serviceTarget(service: string, state: StackState | undefined): ServiceTarget {
  const containers = (state?.resources ?? [])
    .filter((r) => r.type === CONTAINER_TYPE)
    .map((r) => ({ id: r.id, address: resourceFacts(r).address, protect: r.protect }));
  return { service, deployed: containers.length > 0, containers };
}

/** The container a check is about: the one it names, else the service's only one. Pure. */
export function checkTarget(t: ServiceTarget, resource: string | undefined): CheckTarget {
  const c = resource !== undefined ? t.containers.find((x) => x.id === resource) : t.containers.length === 1 ? t.containers[0] : undefined;
  return { service: t.service, resource: resource ?? c?.id, address: c?.address };
}

/** Targets from the engine's state, cached for `ttlMs` (default 60 s). */
export class StateTargets implements TargetSource {
  readonly #reader: StateReader;
  readonly #env: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, { at: number; value: Promise<ServiceTarget> }>();

  constructor(reader: StateReader, envName: string, o: { clock: Clock; ttlMs?: number }) {
    this.#reader = reader;
    this.#env = envName;
    this.#clock = o.clock;
    this.#ttlMs = o.ttlMs ?? 60_000;
  }

  get(service: string): Promise<ServiceTarget> {
    const now = this.#clock.now();
    const hit = this.#cache.get(service);
    if (hit && now - hit.at < this.#ttlMs) return hit.value;
    const value = this.#reader.readState(stackName(this.#env, service)).then((s) => serviceTarget(service, s));
    // A failed read is not cached: the next check tries again.
    value.catch(() => {
      if (this.#cache.get(service)?.value === value) this.#cache.delete(service);
    });
    this.#cache.set(service, { at: now, value });
    return value;
  }

  invalidate(service: string): void {
    this.#cache.delete(service);
  }
}

/** Fixed targets (tests, benchmarks, `--once` against known addresses). */
export class StaticTargets implements TargetSource {
  readonly #targets: Map<string, ServiceTarget>;
  constructor(targets: readonly ServiceTarget[]) {
    this.#targets = new Map(targets.map((t) => [t.service, t]));
  }
  get(service: string): Promise<ServiceTarget> {
    return Promise.resolve(this.#targets.get(service) ?? { service, deployed: false, containers: [] });
  }
  /** Replaces a service's target (a test's "recreated with a new address"). */
  set(t: ServiceTarget): void {
    this.#targets.set(t.service, t);
  }
  invalidate(): void {}
}
