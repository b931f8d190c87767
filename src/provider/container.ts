/**
 * `homelab:proxmox:Container`: an LXC container on a Proxmox node. Create
 * makes it from the template, starts it and waits for its address; update
 * changes what Proxmox changes in place (restarting for what applies only at
 * start); delete stops and destroys it; read reports drift. Every operation
 * converges when repeated: a failed create removes what it made, or, when it
 * cannot, hands the container's id to the engine so it is recorded, never
 * leaked.
 */
import type { CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import type { ContainerInputs, ContainerOutputs } from "../plan/types.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { ProxmoxNotFoundError } from "../proxmox/errors.ts";
import { formatFeatures } from "../proxmox/lxc-format.ts";
import type { LxcConfig } from "../proxmox/lxc-types.ts";
import { converge, createUnderFreshIds, failureKind, reportedByTask, rewriteWhileStale, worthRepeating } from "../proxmox/retry.ts";
import type { WaitOptions } from "../proxmox/tasks.ts";
import { envFileOf, knownHostsFile } from "../config/homelab-dir.ts";
import { forgetHost } from "../provision/ssh.ts";
import type { ClientPurpose, ProviderContext } from "./context.ts";
import { diffContainer, staticAddress } from "./diff.ts";
import { PartialCreateError, ProviderError, describeError, translateError } from "./errors.ts";
import { checkContainerInputs, parseContainerState, propertyBag, withoutUndefined } from "./inputs.ts";
import { configChange, createParams, eth0Address, featureChangeNeedsRoot, featuresOf, inputsNeedRoot, isSameContainer, liveState } from "./lxc-mapping.ts";

/** The Pulumi type token of the resource. */
export { CONTAINER_TYPE } from "./tokens.ts";

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

/** Runs synchronous work as a promise, so a throw becomes a rejection as the engine's callers expect. */
export function settled<T>(work: () => T): Promise<T> {
  return new Promise((resolve) => resolve(work()));
}

/** A duration for messages: `0.2 s`, `45 s`. */
function seconds(ms: number): string {
  return `${ms < 10_000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)} s`;
}

function parseVmid(id: string): number {
  const vmid = Number(id);
  if (!Number.isInteger(vmid) || vmid < 100) {
    throw new ProviderError(`resource id ${JSON.stringify(id)} is not a Proxmox guest id`, "the stack's state is damaged; `homelab deploy --refresh` re-reads it, or remove the entry with `pulumi state delete`");
  }
  return vmid;
}

/** The live container found for a vmid: its node and config. */
interface Located {
  node: string;
  config: LxcConfig;
}

/** The container resource's CRUD, over a ProviderContext that supplies the Proxmox clients. */
export class ContainerResource {
  private readonly ctx: ProviderContext;
  private readonly timeouts: ContainerTimeouts;

  constructor(ctx: ProviderContext, timeouts: Partial<ContainerTimeouts> = {}) {
    this.ctx = ctx;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
  }

  /** Validates the inputs and applies defaults; refuses, before any change, features the credentials cannot set. */
  check(olds: unknown, news: unknown): Promise<CheckResult> {
    return settled(() => {
      const checked = checkContainerInputs(news);
      if (!checked.ok) return { inputs: propertyBag(news), failures: checked.failures };
      const failures: CheckFailure[] = [];
      const problem = this.featureProblem(olds, checked.inputs, checked.unknown);
      if (problem) failures.push(problem);
      return { inputs: checked.bag, failures };
    });
  }

  /** What changes: `replaces` for what Proxmox cannot change in place, delete-first when a static address would be shared. */
  diff(olds: unknown, news: unknown): Promise<DiffResult> {
    return settled(() => {
      const checked = checkContainerInputs(news);
      if (!checked.ok) throw new ProviderError(`invalid inputs: ${checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`, "fix the service definition");
      const d = diffContainer(parseContainerState(olds), checked.inputs, checked.unknown);
      return { changes: d.changed.length > 0, replaces: d.replaces, deleteBeforeReplace: d.deleteBeforeReplace };
    });
  }

  /** Creates, starts and waits for the address; on failure removes what it made (or reports it as partial). */
  async create(news: unknown, say: (message: string) => void = () => undefined): Promise<CreateResult> {
    const inputs = this.validInputs(news);
    const doing = `creating container ${inputs.hostname} on ${inputs.node}`;
    try {
      const client = this.client(inputsNeedRoot(inputs) ? "root" : "default");
      let t = Date.now();
      const lap = (): number => {
        const ms = Date.now() - t;
        t = Date.now();
        return ms;
      };
      const vmid = await this.createContainer(client, inputs);
      say(`CT ${vmid} created on ${inputs.node} in ${lap()} ms`);
      try {
        await this.ensureRunning(client, inputs.node, vmid);
        say(`CT ${vmid} started in ${lap()} ms`);
        const address = await this.waitForAddress(client, inputs.node, vmid, inputs);
        say(`CT ${vmid} has address ${address ?? "(none)"} after ${lap()} ms`);
        // Set last, so that until here a failed creation can be removed.
        if (inputs.protection) await client.lxc.updateConfig(inputs.node, vmid, { protection: true });
        return { id: String(vmid), outs: withoutUndefined(outputs(inputs, inputs.node, vmid, address)) };
      } catch (error) {
        throw await this.abandon(client, inputs, vmid, error);
      }
    } catch (error) {
      throw translateError(doing, error);
    }
  }

  /** Reads the live container; an empty id when it is gone (or its id now belongs to another container). */
  async read(id: string, props: unknown): Promise<ReadResult> {
    const stored = parseContainerState(props);
    const vmid = parseVmid(id);
    try {
      const client = this.client();
      const found = await this.locate(client, vmid, stored.node);
      if (!found || !isSameContainer(found.config, stored)) return { id: "", props: {} };
      // Still being created (after a create that timed out): nothing to learn from its incomplete config yet.
      if (found.config.lock === "create") return { id, props: propertyBag(props) };
      const status = await client.lxc.status(found.node, vmid);
      const live = status.status === "running" ? eth0Address(await client.lxc.interfaces(found.node, vmid)) : undefined;
      const state = liveState(found.config, stored, { node: found.node, vmid, address: live ?? staticAddress(found.config.net[0]?.ip) ?? stored.address });
      const { vmid: _vmid, address: _address, ...inputs } = state;
      return { id, props: withoutUndefined(state), inputs: withoutUndefined(inputs) };
    } catch (error) {
      throw translateError(`reading container ${stored.hostname ?? vmid} (CT ${vmid})`, error);
    }
  }

  /** Applies in-place changes, restarts for those that apply at start, and makes sure the container runs. */
  async update(id: string, olds: unknown, news: unknown): Promise<UpdateResult> {
    const stored = parseContainerState(olds);
    const inputs = this.validInputs(news);
    const vmid = parseVmid(id);
    const doing = `updating container ${inputs.hostname} (CT ${vmid})`;
    try {
      const client = this.client(featureChangeNeedsRoot(stored, inputs, false) ? "root" : "default");
      let found = await this.locate(client, vmid, stored.node);
      if (!found || !isSameContainer(found.config, stored)) {
        throw new ProviderError(
          `CT ${vmid} no longer exists${stored.node ? ` on ${stored.node}` : ""}`,
          "run `homelab deploy --refresh` so the stack forgets it; that deploy creates the container again",
        );
      }
      const node = found.node;
      // A creation that timed out earlier may still hold the container.
      if (found.config.lock !== undefined) found = { node, config: await this.waitUnlocked(client, node, vmid) };
      const change = await this.applyConfig(client, node, vmid, found.config, inputs);
      const status = await client.lxc.status(node, vmid);
      if (status.status === "running" && change.restart) {
        // Feature flags and the hostname are kept pending by Proxmox until the next start.
        await this.stopContainer(client, node, vmid);
      }
      await this.ensureRunning(client, node, vmid);
      const address = await this.waitForAddress(client, node, vmid, inputs);
      // Whatever gets the old address later is another machine to SSH.
      if (stored.address !== undefined && stored.address !== address) await this.forgetHostKey(stored.address);
      return { outs: withoutUndefined(outputs(inputs, node, vmid, address)) };
    } catch (error) {
      throw translateError(doing, error);
    }
  }

  /** Stops and destroys the container; refuses while Proxmox protection is on; a container already gone is success. */
  async delete(id: string, props: unknown): Promise<void> {
    const stored = parseContainerState(props);
    const vmid = parseVmid(id);
    const name = stored.hostname ?? `CT ${vmid}`;
    try {
      const client = this.client();
      const found = await this.locate(client, vmid, stored.node);
      if (!found) {
        await this.forgetHostKey(stored.address);
        return;
      }
      if (!isSameContainer(found.config, stored)) {
        process.stderr.write(`homelab provider: CT ${vmid} on ${found.node} is now another container (${found.config.hostname ?? "no hostname"}); leaving it alone\n`);
        await this.forgetHostKey(stored.address);
        return;
      }
      if (found.config.protection) {
        throw new ProviderError(
          `CT ${vmid} (${name}) on ${found.node} has Proxmox protection on, so it cannot be destroyed`,
          "set `protect: false` on the resource in service.yaml and run `homelab deploy` (which turns the protection off), then destroy it",
        );
      }
      if (found.config.lock === "create") await this.waitUnlocked(client, found.node, vmid);
      await this.destroy(client, found.node, vmid);
      // A replacement (or any later container) may get this address: it must be pinned afresh.
      await this.forgetHostKey(stored.address);
    } catch (error) {
      throw translateError(`destroying container ${name} (CT ${vmid})`, error);
    }
  }

  /** Forgets the pinned SSH host key of an address the container no longer holds (provisioning pins it on first contact). */
  private async forgetHostKey(address: string | undefined): Promise<void> {
    if (address === undefined || address === "") return;
    const { root, envName } = this.ctx.location();
    const file = knownHostsFile(root, envName);
    try {
      await forgetHost(file, address);
    } catch (error) {
      // The container is gone either way; a stale pin only costs a clear error at the next contact.
      process.stderr.write(`homelab provider: could not forget the host key of ${address} in ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  private taskWait(extraMs = 0): WaitOptions {
    return { timeoutMs: this.timeouts.taskMs + extraMs, initialDelayMs: this.timeouts.taskPollMs };
  }

  private client(purpose: ClientPurpose = "default"): ProxmoxClient {
    return this.ctx.client(purpose);
  }

  private validInputs(news: unknown): ContainerInputs {
    const checked = checkContainerInputs(news);
    if (!checked.ok) throw new ProviderError(`invalid inputs: ${checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`, "fix the service definition");
    if (checked.unknown.size > 0) throw new ProviderError(`inputs still unknown: ${[...checked.unknown].join(", ")}`, "this is a bug in the program that declares the resource");
    return checked.inputs;
  }

  // Proxmox lets only root@pam itself set features other than nesting, or any feature of a
  // privileged container; refusing in check puts the problem in the preview, before any change.
  private featureProblem(olds: unknown, inputs: ContainerInputs, unknown: ReadonlySet<keyof ContainerInputs>): CheckFailure | undefined {
    if (unknown.has("nesting") || unknown.has("keyctl") || unknown.has("unprivileged")) return undefined;
    const state = parseContainerState(olds);
    const before = Object.keys(state).length > 0 ? state : undefined;
    // Flags a container already has need no permission to keep.
    const replacing = before !== undefined && diffContainer(before, inputs, unknown).replaces.length > 0;
    if (!featureChangeNeedsRoot(before, inputs, replacing)) return undefined;
    const auth = this.ctx.auth();
    if (auth.identity === "root@pam" || auth.rootAvailable) return undefined;
    const env = this.ctx.loadEnvironment();
    const file = envFileOf(env);
    const features = formatFeatures(featuresOf(inputs)) || "none";
    const what = `${before !== undefined && !replacing ? "changing the features to" : "features"} ${features}${inputs.unprivileged ? "" : " on a privileged container"}`;
    const keyctlChanges = before === undefined || replacing ? inputs.keyctl : (before.keyctl ?? false) !== inputs.keyctl;
    return {
      property: keyctlChanges && inputs.unprivileged ? "keyctl" : "nesting",
      reason:
        `${what} need root@pam, but environment "${env.name}" authenticates as ${auth.identity}; Proxmox lets only root@pam itself ` +
        "(not an API token, even root's) set features other than nesting, or any feature of a privileged container. Fix one of: " +
        `add \`username: root@pam\` with \`password_file\` (or \`password_env\`) under homelab:proxmox in ${file} (the token stays in use for everything else); ` +
        "or use an unprivileged container with nesting only (no keyctl), which a token may set",
    };
  }

  /** Makes the container and returns its id; afterwards it exists, unlocked, on the inputs' node. */
  private async createContainer(client: ProxmoxClient, inputs: ContainerInputs): Promise<number> {
    return createUnderFreshIds({
      attempts: client.http.retry.idRaceAttempts,
      budget: client.http.retry,
      nextId: () => client.cluster.nextId(),
      create: async (vmid) => {
        try {
          await client.lxc.create(inputs.node, createParams(inputs, vmid), { wait: this.taskWait() });
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
        throw new PartialCreateError(String(vmid), withoutUndefined(outputs(inputs, inputs.node, vmid, undefined)), [
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
      return new PartialCreateError(String(vmid), withoutUndefined(outputs(inputs, inputs.node, vmid, undefined)), [
        reason,
        describeError("removing it failed too", cleanup),
        "it is recorded in the stack: the next deploy finishes it, `homelab destroy` removes it",
      ]);
    }
    return new ProviderError(reason, "the container was removed, so the next deploy starts over");
  }

  /** Finds the container: on the node it was on, else anywhere in the cluster (it may have migrated). */
  private async locate(client: ProxmoxClient, vmid: number, node: string | undefined): Promise<Located | undefined> {
    if (node !== undefined) {
      try {
        return { node, config: await client.lxc.config(node, vmid) };
      } catch (error) {
        if (!(error instanceof ProxmoxNotFoundError)) throw error;
      }
    }
    const resources = await client.cluster.resources({ type: "vm" });
    const entry = resources.find((r) => r.vmid === vmid && r.type === "lxc" && r.node !== undefined);
    if (entry?.node === undefined) return undefined;
    try {
      return { node: entry.node, config: await client.lxc.config(entry.node, vmid) };
    } catch (error) {
      if (error instanceof ProxmoxNotFoundError) return undefined;
      throw error;
    }
  }

  private async waitUnlocked(client: ProxmoxClient, node: string, vmid: number): Promise<LxcConfig> {
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

  /** Writes the config change (guarded by the config digest, re-read if someone else wrote meanwhile). */
  private async applyConfig(client: ProxmoxClient, node: string, vmid: number, config: LxcConfig, inputs: ContainerInputs): Promise<ReturnType<typeof configChange>> {
    let current = config;
    return rewriteWhileStale(async (n) => {
      if (n > 1) current = await client.lxc.config(node, vmid);
      const change = configChange(current, inputs);
      if (change.keys.length === 0) return change;
      await client.lxc.updateConfig(node, vmid, { ...change.update, ...(current.digest !== undefined ? { digest: current.digest } : {}) });
      return change;
    });
  }

  /** Starts the container unless it runs; after a failure checks again (the start may have happened). */
  private async ensureRunning(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
    await converge({
      checkFirst: true,
      done: async () => (await client.lxc.status(node, vmid)).status === "running",
      act: () => client.lxc.start(node, vmid, { wait: this.taskWait() }),
    });
  }

  /** Shuts the container down cleanly, hard-stopping it when that times out or fails. */
  private async stopContainer(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
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
  private async destroy(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
    await converge({
      removes: true,
      done: async () => !(await this.exists(client, node, vmid)),
      act: async () => {
        await this.stopContainer(client, node, vmid);
        await client.lxc.delete(node, vmid, { purge: true, destroyUnreferencedDisks: true, wait: this.taskWait() });
      },
    });
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

  /**
   * Waits until eth0 has a routable IPv4 address. The address reported is the static one
   * when the inputs give one (the container's own report may lag behind a change), else the lease.
   */
  private async waitForAddress(client: ProxmoxClient, node: string, vmid: number, inputs: ContainerInputs): Promise<string> {
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
}

/** The outputs: the inputs as applied, the id and node, the address. */
function outputs(inputs: ContainerInputs, node: string, vmid: number, address: string | undefined): ContainerOutputs {
  return { ...inputs, node, vmid, address };
}

