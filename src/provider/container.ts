/**
 * `homelab:proxmox:Container`: an LXC container on a Proxmox node. Create
 * makes it from the template, starts it and waits for its address; update
 * changes what Proxmox changes in place (restarting for what applies only at
 * start); delete stops and destroys it; read reports drift. This file is the
 * resource's CRUD; creating so that a repeat converges, and the start, stop
 * and destroy steps, are container-lifecycle.ts's.
 */
import type { CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import type { ContainerInputs } from "../plan/types.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { ProxmoxNotFoundError } from "../proxmox/errors.ts";
import { formatFeatures } from "../proxmox/lxc-format.ts";
import type { LxcConfig } from "../proxmox/lxc-types.ts";
import { rewriteWhileStale } from "../proxmox/retry.ts";
import { envFileOf, knownHostsFile } from "../config/homelab-dir.ts";
import { forgetHost } from "../provision/ssh.ts";
import type { ClientPurpose, ProviderContext } from "./context.ts";
import { diffContainer, staticAddress } from "./diff.ts";
import { ContainerLifecycle, DEFAULT_TIMEOUTS, containerOutputs } from "./container-lifecycle.ts";
import type { ContainerTimeouts } from "./container-lifecycle.ts";
import { ProviderError, translateError } from "./errors.ts";
import { checkContainerInputs, parseContainerState, propertyBag, withoutUndefined } from "./inputs.ts";
import type { ContainerState } from "./inputs.ts";
import { configChange, eth0Address, featureChangeNeedsRoot, featuresOf, inputsNeedRoot, isSameContainer, liveState } from "./lxc-mapping.ts";
import { ContainerData } from "./container-data.ts";
import { identityOf } from "../data/identity.ts";
import type { ContainerIdentity } from "../data/identity.ts";
import { dataVolumes, mountChanges } from "../data/mounts.ts";

/** The Pulumi type token of the resource. */
export { CONTAINER_TYPE } from "./tokens.ts";

/** Runs synchronous work as a promise, so a throw becomes a rejection as the engine's callers expect. */
export function settled<T>(work: () => T): Promise<T> {
  return new Promise((resolve) => resolve(work()));
}

function parseVmid(id: string): number {
  const vmid = Number(id);
  if (!Number.isInteger(vmid) || vmid < 100) {
    throw new ProviderError(`resource id ${JSON.stringify(id)} is not a Proxmox guest id`, "the stack's state is damaged; `homelab deploy --refresh` re-reads it, or remove the entry with `pulumi state delete`");
  }
  return vmid;
}

/**
 * Disks asked to shrink, which Proxmox cannot do: refused in check, so the preview says so
 * before anything changes. Compared with what the state holds (a volume taken over from a
 * bigger one is recorded at its real size). Pure.
 */
export function shrinkProblems(before: ContainerState, after: ContainerInputs, unknown: ReadonlySet<keyof ContainerInputs> = new Set()): CheckFailure[] {
  const out: CheckFailure[] = [];
  // A replacement starts from new disks of the asked sizes: nothing shrinks.
  const replacing = before.node !== undefined && diffContainer(before, after, unknown).replaces.length > 0;
  if (before.diskGb !== undefined && after.diskGb < before.diskGb && !replacing) {
    out.push({ property: "diskGb", reason: `the root disk is ${before.diskGb} GB and cannot shrink to ${after.diskGb} GB: Proxmox only grows disks; set host.resources.disk to ${before.diskGb} or more` });
  }
  for (const v of after.volumes) {
    const old = before.volumes?.find((o) => o.name === v.name);
    if (old && v.sizeGb < old.sizeGb) out.push({ property: "volumes", reason: `volume ${v.name} is ${old.sizeGb} GB and cannot shrink to ${v.sizeGb} GB: Proxmox only grows volumes; set its size to ${old.sizeGb} or more` });
    if (old && v.storage !== old.storage) out.push({ property: "volumes", reason: `volume ${v.name} is on storage ${old.storage}; homelab does not move volumes between storages: move it with pct move-volume while the container is stopped, or keep storage ${old.storage}` });
  }
  return out;
}

/** The live container found for a vmid: its node and config. */
interface Located {
  node: string;
  config: LxcConfig;
}

/** The container resource's CRUD, over a ProviderContext that supplies the Proxmox clients. */
export class ContainerResource {
  private readonly ctx: ProviderContext;
  private readonly lifecycle: ContainerLifecycle;

  private readonly data: ContainerData;

  constructor(ctx: ProviderContext, timeouts: Partial<ContainerTimeouts> = {}) {
    this.ctx = ctx;
    this.lifecycle = new ContainerLifecycle({ ...DEFAULT_TIMEOUTS, ...timeouts });
    this.data = new ContainerData(this.lifecycle);
  }

  /** Validates the inputs and applies defaults; refuses, before any change, features the credentials cannot set. */
  check(olds: unknown, news: unknown): Promise<CheckResult> {
    return settled(() => {
      const checked = checkContainerInputs(news);
      if (!checked.ok) return { inputs: propertyBag(news), failures: checked.failures };
      const failures: CheckFailure[] = [];
      const problem = this.featureProblem(olds, checked.inputs, checked.unknown);
      if (problem) failures.push(problem);
      failures.push(...shrinkProblems(parseContainerState(olds), checked.inputs, checked.unknown));
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

  /**
   * Creates the container, gives it its volumes (those of the container it succeeds move
   * here, after a backup; the rest are made), starts it and waits for the address; on
   * failure gives the volumes back and removes what it made (or reports it as partial).
   */
  async create(news: unknown, say: (message: string) => void = () => undefined): Promise<CreateResult> {
    const inputs = this.validInputs(news);
    try {
      const client = this.client(inputsNeedRoot(inputs) || inputs.bindMounts.length > 0 ? "root" : "default");
      const identity = this.identity(inputs);
      const safety = this.ctx.safety(client, say);
      const { vmid, address, prepared } = await this.lifecycle.create(client, inputs, say, (id) => this.data.attach(client, safety, inputs, identity, id, say));
      await prepared?.finish();
      const volumes = inputs.volumes.map((v) => ({ ...v, sizeGb: Math.max(v.sizeGb, prepared?.sizes[v.name] ?? 0) }));
      return { id: String(vmid), outs: withoutUndefined(containerOutputs({ ...inputs, volumes }, inputs.node, vmid, address, prepared?.keys ?? {})) };
    } catch (error) {
      throw translateError(`creating container ${inputs.hostname} on ${inputs.node}`, error);
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

  /**
   * Applies in-place changes (config, disk growth, volumes), restarts for those that apply at
   * start (after a snapshot, or a backup, when the container holds data), and makes sure the
   * container runs.
   */
  async update(id: string, olds: unknown, news: unknown, say: (message: string) => void = () => undefined): Promise<UpdateResult> {
    const stored = parseContainerState(olds);
    const inputs = this.validInputs(news);
    const vmid = parseVmid(id);
    const doing = `updating container ${inputs.hostname} (CT ${vmid})`;
    try {
      const client = this.client(featureChangeNeedsRoot(stored, inputs, false) || inputs.bindMounts.length > 0 || (stored.bindMounts ?? []).length > 0 ? "root" : "default");
      let found = await this.locate(client, vmid, stored.node);
      if (!found || !isSameContainer(found.config, stored)) {
        throw new ProviderError(
          `CT ${vmid} no longer exists${stored.node ? ` on ${stored.node}` : ""}`,
          "run `homelab deploy --refresh` so the stack forgets it; that deploy creates the container again",
        );
      }
      const node = found.node;
      // A creation that timed out earlier may still hold the container.
      if (found.config.lock !== undefined) found = { node, config: await this.lifecycle.waitUnlocked(client, node, vmid) };
      const known = { volumeKeys: stored.volumeKeys ?? {}, bindMounts: stored.bindMounts ?? [] };
      const mounts = mountChanges(found.config.mounts, inputs, known);
      const status = await client.lxc.status(node, vmid);
      const restart = status.status === "running" && (configChange(found.config, inputs).restart || mounts.restart);
      if (restart && dataVolumes(found.config).length > 0) {
        // The container stays, so a snapshot (seconds to roll back) is its safety net.
        await this.ctx.safety(client, say).beforeChange(node, vmid, this.identity(inputs), "restart");
      }
      const change = await this.applyConfig(client, node, vmid, found.config, inputs);
      const applied = await this.data.apply(client, node, vmid, await client.lxc.config(node, vmid), inputs, known, say);
      if (status.status === "running" && (change.restart || applied.restart)) {
        // Feature flags, the hostname and changed mount points are kept pending by Proxmox until the next start.
        await this.lifecycle.stop(client, node, vmid);
      }
      await this.lifecycle.ensureRunning(client, node, vmid);
      const address = await this.lifecycle.waitForAddress(client, node, vmid, inputs);
      // Whatever gets the old address later is another machine to SSH.
      if (stored.address !== undefined && stored.address !== address) await this.forgetHostKey(stored.address);
      return { outs: withoutUndefined(containerOutputs(inputs, node, vmid, address, applied.keys)) };
    } catch (error) {
      throw translateError(doing, error);
    }
  }

  /**
   * Stops and destroys the container; refuses while Proxmox protection is on; a container
   * already gone is success. A container holding data (volumes, unused disks) is kept instead,
   * stopped and marked, so its data goes to the service's next container; with
   * `HOMELAB_DELETE_DATA` it is backed up and destroyed with its data.
   */
  async delete(id: string, props: unknown, say: (message: string) => void = () => undefined): Promise<void> {
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
      if (found.config.lock === "create") await this.lifecycle.waitUnlocked(client, found.node, vmid);
      const data = dataVolumes(found.config);
      if (data.length > 0) {
        const identity = identityOf(found.config.description)?.identity ?? this.identity(stored);
        if (!this.ctx.deleteData) {
          await this.data.keep(client, found.node, vmid, found.config, identity, "after its resource was deleted");
          say(`CT ${vmid} kept (stopped) with its ${data.length} volume(s): the service's next container takes them over; \`homelab destroy ${identity.service} --delete-data\` deletes them`);
          await this.forgetHostKey(stored.address);
          return;
        }
        const backup = await this.ctx.safety(client, say).backupBefore(found.node, vmid, identity, "delete-data");
        say(`CT ${vmid}: deleting it with its ${data.length} volume(s); the backup ${backup.kind === "backup" ? backup.volid : backup.name} holds them`);
      }
      await this.lifecycle.destroy(client, found.node, vmid);
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

  /** Whose container this is, from its notes; a container without homelab's notes is named after its hostname. */
  private identity(inputs: Partial<Pick<ContainerInputs, "description" | "hostname">>): ContainerIdentity {
    const { envName } = this.ctx.location();
    return identityOf(inputs.description)?.identity ?? { service: inputs.hostname ?? "unknown", resource: inputs.hostname ?? "unknown", environment: envName };
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

}
