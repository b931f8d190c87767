/**
 * The convergent side of `homelab:proxmox:Container`: creating a container so
 * that a repeat converges (an id lost to another creator is taken afresh, an
 * answer that does not tell is settled by looking for the container, a creation
 * still running is waited out, and a failure removes what was made or hands its
 * id to the engine, never leaking it), and the steps create shares with update
 * and delete: start, stop, destroy, wait for the address or for a lock to clear.
 * How each step may be repeated is proxmox/retry.ts's.
 */
import type { ContainerInputs, ContainerOutputs } from "../plan/types.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { ProxmoxNotFoundError } from "../proxmox/errors.ts";
import type { LxcConfig } from "../proxmox/lxc-types.ts";
import { converge, createUnderFreshIds, failureKind, reportedByTask, worthRepeating } from "../proxmox/retry.ts";
import type { WaitOptions } from "../proxmox/tasks.ts";
import { staticAddress } from "./diff.ts";
import { PartialCreateError, ProviderError, describeError } from "./errors.ts";
import { withoutUndefined } from "./inputs.ts";
import { createParams, eth0Address } from "./lxc-mapping.ts";
import { findBaseResource } from "../provision/base.ts";
import { sizeInGb } from "../data/mounts.ts";

/** How long the resource waits for Proxmox. */
export interface ContainerTimeouts {
  /** Each Proxmox task (create, start, stop, destroy). */
  taskMs: number;
  /** From start until eth0 has an IPv4 address. */
  addressMs: number;
  /** A clean shutdown before the hard stop, in seconds. */
  shutdownSec: number;
  /** Between two polls of an address or a lock. */
  pollMs: number;
  /** The first poll of a task's status (it then backs off, up to 2 s). */
  taskPollMs: number;
}

/** Defaults for a real cluster: templates can take minutes to unpack, DHCP can be slow. */
export const DEFAULT_TIMEOUTS: ContainerTimeouts = { taskMs: 10 * 60_000, addressMs: 3 * 60_000, shutdownSec: 60, pollMs: 1000, taskPollMs: 250 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A duration for messages: `0.2 s`, `45 s`. */
function seconds(ms: number): string {
  return `${ms < 10_000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)} s`;
}

/** Creating, starting, stopping and destroying containers, each converging when repeated. */
export class ContainerLifecycle {
  private readonly timeouts: ContainerTimeouts;

  constructor(timeouts: ContainerTimeouts) {
    this.timeouts = timeouts;
  }

  /**
   * Creates the container, lets `prepare` give it what it needs before its first start (its
   * volumes), starts it and waits for its address; protection is set last. On a failure after
   * the container came to exist, undoes what `prepare` did (volumes go back where they came
   * from), then removes the container, or (when either fails) raises a partial-create error
   * that makes the engine record it rather than lose what it holds.
   */
  async create<P extends { undo(): Promise<void> }>(
    client: ProxmoxClient,
    inputs: ContainerInputs,
    say: (message: string) => void,
    prepare?: (vmid: number) => Promise<P>,
  ): Promise<{ vmid: number; address: string; prepared: P | undefined }> {
    let t = Date.now();
    const lap = (): number => {
      const ms = Date.now() - t;
      t = Date.now();
      return ms;
    };
    const base = inputs.base !== undefined ? await findBase(client, inputs.node, inputs.base) : undefined;
    if (inputs.base !== undefined && base === undefined) say(`no Docker-ready base ${inputs.base} on ${inputs.node}: creating from ${inputs.template}; Docker gets installed`);
    const vmid = await this.createContainer(client, inputs, base);
    say(base ? `CT ${vmid} cloned (${base.linked ? "linked" : "full"}) from base CT ${base.vmid} on ${inputs.node} in ${lap()} ms` : `CT ${vmid} created on ${inputs.node} in ${lap()} ms`);
    let prepared: P | undefined;
    try {
      // A failed prepare has undone its own steps.
      prepared = prepare ? await prepare(vmid) : undefined;
    } catch (error) {
      throw await this.abandon(client, inputs, vmid, error);
    }
    try {
      await this.ensureRunning(client, inputs.node, vmid);
      say(`CT ${vmid} started in ${lap()} ms`);
      const address = await this.waitForAddress(client, inputs.node, vmid, inputs);
      say(`CT ${vmid} has address ${address ?? "(none)"} after ${lap()} ms`);
      // Set last, so that until here a failed creation can be removed.
      if (inputs.protection) await client.lxc.updateConfig(inputs.node, vmid, { protection: true });
      return { vmid, address, prepared };
    } catch (error) {
      if (prepared) {
        try {
          await this.stop(client, inputs.node, vmid);
          await prepared.undo();
        } catch (undo) {
          throw new PartialCreateError(String(vmid), withoutUndefined(containerOutputs(inputs, inputs.node, vmid, undefined)), [
            describeError(`CT ${vmid} on ${inputs.node}`, error),
            describeError("giving its volumes back failed too, so it is kept with them", undo),
            "it is recorded in the stack: the next deploy finishes it, `homelab destroy` keeps its data unless --delete-data",
          ]);
        }
      }
      throw await this.abandon(client, inputs, vmid, error);
    }
  }

  /** Starts the container unless it runs; after a failure checks again (the start may have happened). */
  async ensureRunning(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
    await converge({
      checkFirst: true,
      done: async () => (await client.lxc.status(node, vmid)).status === "running",
      act: () => client.lxc.start(node, vmid, { wait: this.taskWait() }),
    });
  }

  /** Shuts the container down cleanly, hard-stopping it when that times out or fails. */
  async stop(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
    const stopped = async (): Promise<boolean> => (await client.lxc.status(node, vmid)).status === "stopped";
    if (await stopped()) return;
    try {
      await client.lxc.shutdown(node, vmid, {
        timeoutSec: this.timeouts.shutdownSec,
        forceStop: true,
        wait: this.taskWait(this.timeouts.shutdownSec * 1000),
      });
      return;
    } catch (error) {
      if (!worthRepeating(error)) throw error;
    }
    await converge({ checkFirst: true, done: stopped, act: () => client.lxc.stop(node, vmid, { wait: this.taskWait() }) });
  }

  /** Stops and destroys (with purge); gone is success. */
  async destroy(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
    await converge({
      removes: true,
      done: async () => !(await this.exists(client, node, vmid)),
      act: async () => {
        await this.stop(client, node, vmid);
        await client.lxc.delete(node, vmid, { purge: true, destroyUnreferencedDisks: true, wait: this.taskWait() });
      },
    });
  }

  /** Waits until no lock holds the container (a creation that timed out earlier may still hold it); returns its config then. */
  async waitUnlocked(client: ProxmoxClient, node: string, vmid: number): Promise<LxcConfig> {
    const deadline = performance.now() + this.timeouts.taskMs;
    for (;;) {
      const config = await client.lxc.config(node, vmid);
      if (config.lock === undefined) return config;
      if (performance.now() > deadline) {
        throw new ProviderError(`CT ${vmid} on ${node} is still locked (${config.lock})`, `wait for the task holding it to end (Tasks panel of ${node}), or clear a stale lock with \`pct unlock ${vmid}\``);
      }
      await sleep(this.timeouts.pollMs);
    }
  }

  /**
   * Waits until eth0 has a routable IPv4 address. The address reported is the static one
   * when the inputs give one (the container's own report may lag behind a change), else the lease.
   */
  async waitForAddress(client: ProxmoxClient, node: string, vmid: number, inputs: ContainerInputs): Promise<string> {
    const deadline = performance.now() + this.timeouts.addressMs;
    for (;;) {
      const interfaces = await client.lxc.interfaces(node, vmid);
      const address = eth0Address(interfaces);
      if (address !== undefined) return staticAddress(inputs.ip) ?? address;
      if (performance.now() >= deadline) {
        const waited = seconds(this.timeouts.addressMs);
        if (interfaces === null) {
          throw new ProviderError(`CT ${vmid} on ${node} is not running ${waited} after it was started`, `read its start log with \`pct start ${vmid} --debug\` on ${node}`);
        }
        throw new ProviderError(
          `CT ${vmid} on ${node} has no IPv4 address on eth0 ${waited} after it started`,
          staticAddress(inputs.ip) !== undefined
            ? `check that the template configures ${inputs.ip} on eth0 (ip addr inside the container)`
            : `check the DHCP server on bridge ${inputs.bridge}, or give the container a static address (network.ip in service.yaml)`,
        );
      }
      await sleep(this.timeouts.pollMs);
    }
  }

  /** Makes the container and returns its id; afterwards it exists, unlocked, on the inputs' node. */
  private async createContainer(client: ProxmoxClient, inputs: ContainerInputs, base?: FoundBase): Promise<number> {
    return createUnderFreshIds({
      attempts: client.http.retry.idRaceAttempts,
      budget: client.http.retry,
      nextId: () => client.cluster.nextId(),
      create: async (vmid) => {
        try {
          if (base) await this.cloneFrom(client, inputs, base, vmid);
          else await client.lxc.create(inputs.node, createParams(inputs, vmid), { wait: this.taskWait() });
          return vmid;
        } catch (error) {
          // A creation task that failed (not one still running, nor a lost race): Proxmox removes
          // the container it began; make sure, without waiting for it.
          const kind = failureKind(error);
          if (reportedByTask(error) && kind !== "lost-race" && kind !== "uncertain" && (await this.settle(client, inputs, vmid, false)) !== "absent") {
            throw await this.abandon(client, inputs, vmid, error);
          }
          throw error;
        }
      },
      // Who holds the id after an answer that does not tell: waits out a creation still running.
      settle: { holder: (vmid) => this.settle(client, inputs, vmid, true), adopt: (vmid) => vmid },
    });
  }

  /**
   * Makes the container a clone of a Docker-ready base: a linked clone where the base's storage
   * allows it and is the one asked for, else a full copy onto the asked storage; then the
   * config the inputs ask for (the clone has the base's), and the root disk grown to size.
   */
  private async cloneFrom(client: ProxmoxClient, inputs: ContainerInputs, base: FoundBase, vmid: number): Promise<void> {
    const clone = (full: boolean): Promise<unknown> =>
      client.lxc.clone(inputs.node, base.vmid, { newid: vmid, hostname: inputs.hostname, description: inputs.description, full, ...(full ? { storage: inputs.storage } : {}) }, { wait: this.taskWait() });
    if (base.storage === inputs.storage) {
      try {
        await clone(false);
      } catch (error) {
        // Storage without linked clones (a dir storage, say): Proxmox refuses before making anything.
        if (!/linked clone|clone feature|not available/i.test(error instanceof Error ? error.message : String(error))) throw error;
        base.linked = false;
        await clone(true);
      }
    } else {
      base.linked = false;
      await clone(true);
    }
    const config = await client.lxc.config(inputs.node, vmid);
    const wanted = createParams(inputs, vmid);
    await client.lxc.updateConfig(inputs.node, vmid, {
      ...(wanted.memory !== undefined ? { memory: wanted.memory } : {}),
      ...(wanted.swap !== undefined ? { swap: wanted.swap } : {}),
      ...(wanted.cores !== undefined ? { cores: wanted.cores } : {}),
      // The clone's own MAC is kept (Proxmox gave it a new one); the rest is the inputs'.
      ...(wanted.net0 !== undefined ? { net0: { ...wanted.net0, ...(config.net[0]?.hwaddr !== undefined ? { hwaddr: config.net[0].hwaddr } : {}) } } : {}),
      ...(wanted.tags !== undefined ? { tags: wanted.tags } : {}),
      onboot: inputs.onBoot,
      ...(wanted.features !== undefined ? { features: wanted.features } : {}),
      ...(wanted.mp !== undefined ? { mp: wanted.mp } : {}),
    });
    const size = sizeInGb(config.rootfs?.size);
    if (size !== undefined && inputs.diskGb > size) await client.lxc.resize(inputs.node, vmid, "rootfs", inputs.diskGb, { wait: this.taskWait() });
  }

  /**
   * Whether the container `vmid` on the inputs' node is ours (our hostname and notes), another's,
   * or absent. With `wait`, waits out a running creation (its config is locked and incomplete).
   */
  private async settle(client: ProxmoxClient, inputs: ContainerInputs, vmid: number, wait: boolean): Promise<"ours" | "other" | "absent"> {
    const deadline = performance.now() + this.timeouts.taskMs;
    for (;;) {
      let config: LxcConfig;
      try {
        config = await client.lxc.config(inputs.node, vmid);
      } catch (error) {
        if (error instanceof ProxmoxNotFoundError) return "absent";
        throw error;
      }
      if (config.lock === undefined || !wait) {
        const ours = config.hostname === inputs.hostname && (config.description ?? "").trimEnd() === inputs.description.trimEnd();
        return ours || (config.lock === "create" && config.hostname === undefined) ? "ours" : "other";
      }
      if (performance.now() > deadline) {
        throw new PartialCreateError(String(vmid), withoutUndefined(containerOutputs(inputs, inputs.node, vmid, undefined)), [
          `CT ${vmid} on ${inputs.node} is still locked (${config.lock}) ${seconds(this.timeouts.taskMs)} after its creation began`,
          "it is recorded in the stack: the next deploy waits for it and finishes it, `homelab destroy` removes it",
        ]);
      }
      await sleep(this.timeouts.pollMs);
    }
  }

  /**
   * Removes a container whose creation failed after it came to exist, and returns the error to
   * raise: the original one when the container is gone, else a partial-create error that makes
   * the engine record it.
   */
  private async abandon(client: ProxmoxClient, inputs: ContainerInputs, vmid: number, error: unknown): Promise<Error> {
    if (error instanceof PartialCreateError) return error;
    const reason = describeError(`CT ${vmid} on ${inputs.node}`, error);
    try {
      await this.destroy(client, inputs.node, vmid);
    } catch (cleanup) {
      return new PartialCreateError(String(vmid), withoutUndefined(containerOutputs(inputs, inputs.node, vmid, undefined)), [
        reason,
        describeError("removing it failed too", cleanup),
        "it is recorded in the stack: the next deploy finishes it, `homelab destroy` removes it",
      ]);
    }
    return new ProviderError(reason, "the container was removed, so the next deploy starts over");
  }

  private async exists(client: ProxmoxClient, node: string, vmid: number): Promise<boolean> {
    try {
      await client.lxc.config(node, vmid);
      return true;
    } catch (error) {
      if (error instanceof ProxmoxNotFoundError) return false;
      // Unknown counts as present: a container must never be taken for gone by mistake.
      return true;
    }
  }

  private taskWait(extraMs = 0): WaitOptions {
    return { timeoutMs: this.timeouts.taskMs + extraMs, initialDelayMs: this.timeouts.taskPollMs };
  }
}

/** A Docker-ready base found on a node. */
interface FoundBase {
  vmid: number;
  /** The storage of its root volume. */
  storage: string;
  /** Whether the clone made from it is linked (set false when a full copy was made instead). */
  linked: boolean;
}

/** The base template with this content key on the node, if any (found by its tags). */
async function findBase(client: ProxmoxClient, node: string, key: string): Promise<FoundBase | undefined> {
  const entry = findBaseResource(await client.cluster.resources({ type: "vm" }), node, key);
  if (entry?.vmid === undefined) return undefined;
  const config = await client.lxc.config(node, Number(entry.vmid));
  const volume = config.rootfs?.volume ?? "";
  return { vmid: Number(entry.vmid), storage: volume.slice(0, Math.max(0, volume.indexOf(":"))), linked: true };
}

/** The outputs: the inputs as applied, the id and node, the address, which mount point holds each volume. */
export function containerOutputs(inputs: ContainerInputs, node: string, vmid: number, address: string | undefined, volumeKeys: Record<string, string> = {}): ContainerOutputs {
  return { ...inputs, node, vmid, address, volumeKeys };
}

