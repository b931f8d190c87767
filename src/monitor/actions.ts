/**
 * Remediations. The monitor sees one interface, `Remediator`; the real one
 * restarts a service's compose project through its systemd unit over SSH
 * (provision's `restartCompose`), and recreates it (destroy, then deploy its
 * stack alone) through a `ServiceDeployer` that the CLI wires to the same
 * engine `homelab deploy` uses. A deploy holding the stack's lock makes the
 * monitor wait: `isDeploying` is asked before every remediation, and a run
 * refused for the lock is reported as `DeployInProgressError`.
 */
import { readFileSync } from "node:fs";
import type { StackLock } from "../engine/locks.ts";
import { describeLock, lockOwner } from "../engine/locks.ts";
import { stackName } from "../engine/stacks.ts";
import { knownHostsFile, sshKeyFile } from "../config/homelab-dir.ts";
import type { TargetSource } from "./targets.ts";

/** What the monitor can do to a service. Each resolves with a one-line detail, or throws. */
export interface Remediator {
  /** Restarts the service's compose project(s) and waits until they run. */
  restart(service: string, signal: AbortSignal): Promise<string>;
  /** Destroys and redeploys the service (its stack only). Never called for a protected service. */
  recreate(service: string, signal: AbortSignal): Promise<string>;
  /** Whether a deploy (or destroy) of the service holds its stack now, and who. */
  isDeploying(service: string): Promise<{ deploying: boolean; detail: string }>;
}

/** A remediation refused because a deploy of the same service holds its stack: the monitor waits. */
export class DeployInProgressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeployInProgressError";
  }
}

/** Recreates services through the engine (wired by the CLI). */
export interface ServiceDeployer {
  /** Destroy then deploy one service's stack; resolves with a summary, throws (DeployInProgressError for a lock) on failure. */
  recreate(service: string, signal: AbortSignal): Promise<string>;
  /** Who holds the service's stack lock, or undefined. */
  lockHolder(service: string): Promise<string | undefined>;
}

/** Restarts one compose project in one container. */
export interface ComposeRestarter {
  restart(address: string, service: string, signal: AbortSignal): Promise<string>;
}

/** The parts of the engine that say whether a stack is being deployed. `Engine` fits. */
export interface LockReader {
  /** Whether `locks` reads the backend's locks (else it knows none). */
  readonly readsLocks: boolean;
  locks(stack: string): Promise<StackLock[]>;
  listStacks(): Promise<{ name: string; updateInProgress: boolean }[]>;
}

/** `lockHolder` from the engine: the locks of a backend homelab reads, else the backend's "update in progress". */
export function engineLockHolder(engine: LockReader, envName: string): (service: string) => Promise<string | undefined> {
  return async (service) => {
    const stack = stackName(envName, service);
    const lock = (await engine.locks(stack))[0];
    if (lock) return describeLock(lock, lockOwner(lock));
    if (engine.readsLocks) return undefined;
    const info = (await engine.listStacks()).find((s) => s.name === stack);
    return info?.updateInProgress ? `an update of ${stack} is in progress` : undefined;
  };
}

/** The real compose restart: SSH with the environment's key and pinned host keys, `systemctl restart homelab-<service>`, wait until running. */
export function sshComposeRestarter(root: string, envName: string, o: { waitTimeoutSec?: number; port?: number } = {}): ComposeRestarter {
  return {
    async restart(address, service) {
      const { restartCompose } = await import("../provision/deploy.ts");
      const keyFile = sshKeyFile(root, envName);
      let privateKey: Buffer;
      try {
        privateKey = readFileSync(keyFile);
      } catch {
        throw new Error(`cannot read the environment's SSH key ${keyFile}; it is made by the first deploy (homelab deploy --env ${envName})`);
      }
      const report = await restartCompose({ address, ...(o.port !== undefined ? { port: o.port } : {}), privateKey, privateKeyFile: keyFile, knownHostsFile: knownHostsFile(root, envName) }, service, {
        waitTimeoutSec: o.waitTimeoutSec ?? 300,
        connect: { timeoutMs: 30_000 },
      });
      return `restarted ${service} on ${address}${report.ok ? "; it runs" : ""}`;
    },
  };
}

/** The remediator the monitor uses: restart over SSH in each compose container, recreate and lock detection through the engine. */
export class ServiceRemediator implements Remediator {
  readonly #targets: TargetSource;
  readonly #compose: ReadonlyMap<string, readonly string[]>;
  readonly #restarter: ComposeRestarter;
  readonly #deployer: ServiceDeployer | undefined;

  /** `composeContainers`: per service, the ids of its containers with `docker.compose: true`. */
  constructor(o: { targets: TargetSource; composeContainers: ReadonlyMap<string, readonly string[]>; restarter: ComposeRestarter; deployer?: ServiceDeployer }) {
    this.#targets = o.targets;
    this.#compose = o.composeContainers;
    this.#restarter = o.restarter;
    this.#deployer = o.deployer;
  }

  async restart(service: string, signal: AbortSignal): Promise<string> {
    const ids = this.#compose.get(service) ?? [];
    if (ids.length === 0) throw new Error(`no container of ${service} runs docker compose (docker.compose: true), so there is nothing to restart`);
    this.#targets.invalidate(service);
    const target = await this.#targets.get(service);
    const details: string[] = [];
    for (const id of ids) {
      const address = target.containers.find((c) => c.id === id)?.address;
      if (address === undefined) throw new Error(`container ${id} of ${service} has no known address (not deployed?)`);
      details.push(await this.#restarter.restart(address, service, signal));
    }
    return details.join("; ");
  }

  async recreate(service: string, signal: AbortSignal): Promise<string> {
    if (!this.#deployer) throw new Error("recreating needs the engine, which is not available to this monitor");
    try {
      return await this.#deployer.recreate(service, signal);
    } finally {
      this.#targets.invalidate(service);
    }
  }

  async isDeploying(service: string): Promise<{ deploying: boolean; detail: string }> {
    const holder = await this.#deployer?.lockHolder(service);
    return holder === undefined ? { deploying: false, detail: "" } : { deploying: true, detail: `a deploy holds the stack of ${service} (${holder})` };
  }
}
