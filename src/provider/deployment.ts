/**
 * `homelab:compose:Deployment`: a service's Docker Compose project inside
 * its container, provisioned over SSH (`provisionCompose`): Docker installed
 * if needed, the files written, the project's systemd unit started or
 * reloaded, and its containers waited for. A change to a compose file, an
 * image or a secret rewrites those files and reloads only the project; the
 * LXC container is never restarted or re-created for it. A new container
 * (its vmid or address changed) is an update too: the same steps provision
 * it from scratch.
 *
 * Secrets are read here, at check, create and update time, from where the
 * CLI reads them (`resolveSecrets`; registry credentials from the
 * environment); only their hash is an input and it is a Pulumi secret. SSH
 * uses the environment's key (`.homelab/ssh/<env>/id_ed25519`, made by
 * `homelab deploy`) and its pinned host keys (`.homelab/ssh/<env>/known_hosts`).
 */
import { readFile } from "node:fs/promises";
import type { CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import { knownHostsFile, sshKeyFile } from "../config/homelab-dir.ts";
import type { ComposeDeployment } from "../provision/compose.ts";
import { ComposeInputError, hashDigests } from "../provision/compose-files.ts";
import { ProvisionError, inspectDeployment, provisionCompose, removeCompose } from "../provision/deploy.ts";
import type { ProvisionOptions, ProvisionTarget } from "../provision/deploy.ts";
import { SshError } from "../provision/ssh.ts";
import type { ProviderContext } from "./context.ts";
import { DEPLOYMENT_TYPE, checkDeploymentInputs, deploymentOf, describeDeploymentChange, diffDeployment, parseDeploymentState, registriesOf, secretValue } from "./deployment-inputs.ts";
import type { CheckedDeployment, DeploymentOutputs, DeploymentState } from "./deployment-inputs.ts";
import { deploymentSecrets, registriesWithCredentials } from "./deployment-secrets.ts";
import { dataVolumes } from "../data/mounts.ts";
import { identityOf } from "../data/identity.ts";
import { ProviderError, translateError } from "./errors.ts";
import { UNKNOWN, propertyBag, withoutUndefined } from "./inputs.ts";
import type { PropertyBag } from "./inputs.ts";
import type { ProviderLog } from "./log.ts";

export { DEPLOYMENT_TYPE };

/** How long the deployment waits. */
export interface DeploymentSettings {
  /** The project's containers must run (and be healthy) within this (default 300 s). */
  waitTimeoutSec: number;
  /** SSH attempts while a container boots, create and update (default 120 s). */
  connectMs: number;
  /** SSH attempts for read and delete, after which an unreachable container without a known vmid counts as gone (default 20 s). */
  probeConnectMs: number;
}

/** Defaults for real containers. */
const DEFAULT_DEPLOYMENT_SETTINGS: DeploymentSettings = { waitTimeoutSec: 300, connectMs: 120_000, probeConnectMs: 20_000 };

/** What Proxmox says about the container a deployment lives in. */
type ContainerPresence = "running" | "stopped" | "absent" | "unknown";

const INPUT_KEYS = ["service", "project", "address", "vmid", "composeFiles", "images", "registries", "dockerSource", "dockerPins", "secretsHash", "fileHashes"] as const;

function invalid(failures: ReadonlyArray<{ property: string; reason: string }>): ProviderError {
  return new ProviderError(`invalid inputs: ${failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`, "fix the service definition");
}

/** SSH failures that mean nobody answers at the address (as opposed to a wrong key or host key). */
function unreachable(error: unknown): boolean {
  const ssh = error instanceof SshError ? error : error instanceof ProvisionError && error.cause instanceof SshError ? error.cause : undefined;
  return ssh !== undefined && (ssh.kind === "refused" || ssh.kind === "unreachable" || ssh.kind === "timeout");
}

/** The deployment resource's CRUD. */
export class DeploymentResource {
  private readonly ctx: ProviderContext;
  private readonly log: ProviderLog;
  private readonly settings: DeploymentSettings;

  constructor(ctx: ProviderContext, log: ProviderLog, settings: Partial<DeploymentSettings> = {}) {
    this.ctx = ctx;
    this.log = log;
    this.settings = { ...DEFAULT_DEPLOYMENT_SETTINGS, ...settings };
  }

  /** Validates, computes the per-file hashes of what would be written, and the secrets' hash when the program left it out. */
  async check(_urn: string, _olds: unknown, news: unknown): Promise<CheckResult> {
    const checked = checkDeploymentInputs(news);
    if (!checked.ok) return { inputs: propertyBag(news), failures: checked.failures };
    const { inputs, unknown } = checked;
    const bag: PropertyBag = { ...checked.bag };
    if (unknown.has("service") || unknown.has("composeFiles") || unknown.has("images") || unknown.has("registries")) {
      bag["fileHashes"] = UNKNOWN;
    } else {
      try {
        bag["fileHashes"] = deploymentOf(inputs, new Map(), registriesOf(inputs)).hashes.perFile;
      } catch (error) {
        if (error instanceof ComposeInputError) return { inputs: bag, failures: [{ property: "composeFiles", reason: error.message }] };
        throw error;
      }
    }
    if (inputs.secretsHash !== undefined && !unknown.has("secretsHash")) {
      bag["secretsHash"] = secretValue(inputs.secretsHash);
    } else if (!unknown.has("secretsHash") && !unknown.has("service") && !unknown.has("registries")) {
      try {
        bag["secretsHash"] = secretValue((await this.secrets(inputs)).hash);
      } catch (error) {
        if (error instanceof ProviderError) return { inputs: bag, failures: [{ property: "secretsHash", reason: error.message }] };
        throw translateError(`reading the secrets of ${inputs.service}`, error);
      }
    }
    return { inputs: bag };
  }

  /** Update in place for every change but a different service (replace); drift found by a refresh is a change too. */
  diff(urn: string, olds: unknown, news: unknown): Promise<DiffResult> {
    const checked = checkDeploymentInputs(news);
    if (!checked.ok) return Promise.reject(invalid(checked.failures));
    const state = parseDeploymentState(olds);
    const d = diffDeployment(state, checked.inputs, checked.unknown);
    const changes = d.changed.length > 0 || d.drift.length > 0;
    if (changes && d.summary.length > 0) this.log.info(urn, `${d.replaces.length > 0 ? "replace" : "update"}: ${d.summary.join("; ")}`);
    // Two projects of one service would fight over the same ports: the old one goes first.
    return this.log.flush().then(() => ({ changes, replaces: d.replaces, deleteBeforeReplace: d.replaces.length > 0 }));
  }

  /** Provisions the container: Docker, files, unit, start, wait. */
  async create(urn: string, news: unknown): Promise<CreateResult> {
    const inputs = this.validInputs(news);
    const outs = await this.apply(urn, inputs, `deploying ${inputs.service} to ${inputs.address}`);
    return { id: inputs.service, outs };
  }

  /** The same steps: only what changed is written, and the project is reloaded (Compose re-creates only changed services). */
  async update(urn: string, _id: string, olds: unknown, news: unknown): Promise<UpdateResult> {
    const inputs = this.validInputs(news);
    const state = parseDeploymentState(olds);
    const summary = describeDeploymentChange(state, inputs);
    if (summary.length > 0) this.log.status(urn, summary.join("; "));
    // The same container, whose data the new project version may change (a migration): a rollback point first.
    if (inputs.vmid !== undefined && state.vmid === inputs.vmid) await this.snapshotBefore(urn, inputs.vmid, `updating ${inputs.service} on ${inputs.address}`);
    return { outs: await this.apply(urn, inputs, `updating ${inputs.service} on ${inputs.address}`) };
  }

  /** This deploy's snapshot (or backup) of the container, when it holds data. */
  private async snapshotBefore(urn: string, vmid: number, doing: string): Promise<void> {
    try {
      const client = this.ctx.client();
      const entry = (await client.cluster.resources({ type: "vm" })).find((r) => r.vmid === vmid && r.type === "lxc");
      if (entry?.node === undefined) return;
      const config = await client.lxc.config(entry.node, vmid);
      if (dataVolumes(config).length === 0) return;
      const id = identityOf(config.description)?.identity;
      if (!id) return;
      await this.ctx.safety(client, (m) => this.log.status(urn, m)).beforeChange(entry.node, vmid, id, "compose-update");
    } catch (error) {
      throw translateError(`${doing}: taking a snapshot first`, error);
    }
  }

  /**
   * Reads back what is in the container: each file's digest and mode, the unit's state. Differences are
   * reported as drift (and the live hashes become the state's), so the next deploy applies the
   * deployment again. A container Proxmox no longer has reads as gone.
   */
  async read(urn: string, id: string, props: unknown): Promise<ReadResult> {
    const state = parseDeploymentState(props);
    const stored = propertyBag(props);
    if (state.service === undefined || state.address === undefined || state.composeFiles === undefined) return { id, props: stored };
    const doing = `reading deployment ${state.service} on ${state.address}`;
    try {
      const presence = await this.presence(state.vmid);
      if (presence === "absent") return { id: "", props: {} };
      if (presence === "stopped") {
        this.log.warn(urn, `CT ${state.vmid ?? "?"} is stopped: its deployment cannot be read now`);
        return { id, props: this.secretOutputs(stored) };
      }
      const env = this.ctx.loadEnvironment();
      const registries = await registriesWithCredentials(env, state.registries ?? [], this.ctx.processEnv);
      const deployment = deploymentOf({ service: state.service, composeFiles: state.composeFiles, images: state.images ?? [], ...(state.volumesDir !== undefined ? { volumesDir: state.volumesDir } : {}) }, new Map(), registries);
      let report;
      try {
        report = await inspectDeployment(await this.target(state.address), deployment, this.options(urn, this.settings.probeConnectMs));
      } catch (error) {
        if (unreachable(error) && state.vmid === undefined) {
          this.log.warn(urn, `${state.address} does not answer SSH; the deployment is kept as it was`);
          return { id, props: this.secretOutputs(stored) };
        }
        throw error;
      }
      const live = this.compare(state, deployment, report);
      const props2: PropertyBag = { ...stored, fileHashes: live.fileHashes, secretsHash: live.secretsHash };
      if (live.drift.length > 0) props2["drift"] = live.drift;
      else delete props2["drift"];
      for (const d of live.drift) this.log.warn(urn, `drift: ${d}`);
      const inputs: PropertyBag = {};
      for (const k of INPUT_KEYS) if (props2[k] !== undefined) inputs[k] = props2[k];
      await this.log.flush();
      return { id, props: this.secretOutputs(props2), inputs: this.secretOutputs(inputs) };
    } catch (error) {
      throw translateError(doing, error);
    }
  }

  /**
   * Stops the project and removes its unit and files (volumes and images stay). A container Proxmox
   * no longer has, or one that is stopped, needs nothing: the deployment goes with it.
   */
  async delete(urn: string, _id: string, props: unknown): Promise<void> {
    const state = parseDeploymentState(props);
    if (state.service === undefined || state.address === undefined) return;
    const doing = `removing deployment ${state.service} from ${state.address}`;
    try {
      const presence = await this.presence(state.vmid);
      if (presence === "absent") {
        this.log.status(urn, `CT ${state.vmid ?? "?"} is gone: nothing to remove`);
        return;
      }
      if (presence === "stopped") {
        this.log.warn(urn, `CT ${state.vmid ?? "?"} is stopped: the files of ${state.service} stay in it until it is destroyed or started and deployed again`);
        return;
      }
      try {
        await removeCompose(await this.target(state.address), state.service, this.options(urn, this.settings.probeConnectMs));
      } catch (error) {
        // Without a vmid there is no asking Proxmox: a container nobody answers for counts as gone.
        if (unreachable(error) && state.vmid === undefined) {
          this.log.warn(urn, `${state.address} does not answer SSH: taking the container for gone`);
          return;
        }
        throw error;
      }
    } catch (error) {
      throw translateError(doing, error);
    } finally {
      await this.log.flush();
    }
  }

  private validInputs(news: unknown): CheckedDeployment {
    const checked = checkDeploymentInputs(news);
    if (!checked.ok) throw invalid(checked.failures);
    if (checked.unknown.size > 0) throw new ProviderError(`inputs still unknown: ${[...checked.unknown].join(", ")}`, "this is a bug in the program that declares the resource");
    return checked.inputs;
  }

  private secrets(inputs: CheckedDeployment): ReturnType<typeof deploymentSecrets> {
    const { root } = this.ctx.location();
    return deploymentSecrets({ root, env: this.ctx.loadEnvironment(), service: inputs.service, registries: inputs.registries, processEnv: this.ctx.processEnv });
  }

  private async target(address: string): Promise<ProvisionTarget> {
    const { root, envName } = this.ctx.location();
    const keyFile = sshKeyFile(root, envName);
    let privateKey: string;
    try {
      privateKey = await readFile(keyFile, "utf8");
    } catch (error) {
      throw new ProviderError(
        `cannot read the environment's SSH key ${keyFile} (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
        "`homelab deploy` creates it before the containers (whose root accepts it); run the deploy through homelab",
        { cause: error },
      );
    }
    return { address, privateKey, privateKeyFile: keyFile, knownHostsFile: knownHostsFile(root, envName) };
  }

  private options(urn: string, connectMs: number, inputs?: Pick<CheckedDeployment, "dockerSource" | "dockerPins">): ProvisionOptions {
    const output = this.log.lines(urn);
    return {
      ...(inputs !== undefined ? { docker: { source: inputs.dockerSource, ...(inputs.dockerPins ? { pins: inputs.dockerPins } : {}) } } : {}),
      waitTimeoutSec: this.settings.waitTimeoutSec,
      connect: { timeoutMs: connectMs, onRetry: (_n, reason) => this.log.status(urn, `waiting for SSH (${reason.split("\n")[0] ?? reason})`) },
      onStep: (_step, detail) => {
        output(undefined);
        this.log.status(urn, detail);
      },
      onOutput: (chunk) => output(chunk),
    };
  }

  /** Whether the container with this vmid exists and runs, as Proxmox says; unknown without a vmid. */
  private async presence(vmid: number | undefined): Promise<ContainerPresence> {
    if (vmid === undefined) return "unknown";
    const all = await this.ctx.client().cluster.resources({ type: "vm" });
    const entry = all.find((r) => r.vmid === vmid && r.type === "lxc");
    if (entry === undefined) return "absent";
    return entry.status === "running" ? "running" : "stopped";
  }

  private async apply(urn: string, inputs: CheckedDeployment, doing: string): Promise<PropertyBag> {
    try {
      const secrets = await this.secrets(inputs);
      const deployment = deploymentOf(inputs, secrets.secrets, secrets.registries);
      for (const w of deployment.warnings) this.log.warn(urn, w);
      if (inputs.secretsHash !== undefined && inputs.secretsHash !== secrets.hash) {
        this.log.warn(urn, "the secrets differ from those the program hashed (secretsHash); deploying the ones read now");
      }
      const result = await provisionCompose(await this.target(inputs.address), deployment, this.options(urn, this.settings.connectMs, inputs));
      this.log.status(urn, `${deployment.project}: ${result.apply.action}${result.apply.changed.length > 0 ? ` (${result.apply.changed.map((c) => c.role).join(", ")})` : ""}, ${result.wait.states.join(" ")} in ${Math.round(result.ms.total / 100) / 10} s`);
      const outs: DeploymentOutputs = {
        ...inputs,
        secretsHash: deployment.hashes.secrets,
        fileHashes: deployment.hashes.perFile,
        hash: deployment.hashes.all,
        dir: deployment.dir,
        unit: deployment.unitName,
        rewrites: deployment.rewrites,
        warnings: deployment.warnings,
        docker: `${result.docker.packages} / compose ${result.docker.compose}${result.docker.composeVersion ? ` ${result.docker.composeVersion}` : ""}${result.docker.os.codename ? ` on ${result.docker.os.id} ${result.docker.os.codename}` : ""}`,
      };
      return this.secretOutputs(withoutUndefined(outs));
    } catch (error) {
      throw translateError(doing, error);
    } finally {
      await this.log.flush();
    }
  }

  /** The secret properties wrapped as Pulumi secrets (the state holds them encrypted). */
  private secretOutputs(bag: PropertyBag): PropertyBag {
    const out: PropertyBag = { ...bag };
    for (const k of ["secretsHash", "hash"]) if (typeof out[k] === "string") out[k] = secretValue(out[k]);
    return out;
  }

  /** The container's files against the deployment: live hashes and what differs. */
  private compare(state: DeploymentState, deployment: ComposeDeployment, report: Awaited<ReturnType<typeof inspectDeployment>>): { fileHashes: Record<string, string>; secretsHash: string; drift: string[] } {
    const drift: string[] = [];
    const fileHashes: Record<string, string> = {};
    const secretDigests = [];
    for (const f of deployment.files) {
      const found = report.files.get(f.path);
      if (f.secret) {
        if (found) secretDigests.push({ path: f.path, mode: found.mode, sha256: found.sha256, secret: true });
        continue;
      }
      if (found === undefined) {
        drift.push(`${f.path} is missing`);
        continue;
      }
      fileHashes[f.path] = found.sha256;
      const expected = state.fileHashes?.[f.path];
      if (expected !== undefined && expected !== found.sha256) drift.push(`${f.path} was changed in the container`);
      else if (found.mode !== f.mode) drift.push(`${f.path} has mode ${found.mode.toString(8)}, not ${f.mode.toString(8)}`);
    }
    const secretsHash = hashDigests(secretDigests).secrets;
    if (state.secretsHash !== undefined && secretsHash !== state.secretsHash) drift.push("the secret files were changed or removed in the container");
    if (report.unit !== "active") drift.push(`${deployment.unitName} is ${report.unit || "unknown"}, not active`);
    return { fileHashes, secretsHash, drift };
  }
}
