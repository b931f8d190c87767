/**
 * The deploy use-case below the CLI: one object per command run (or per
 * monitor) that owns the wiring every operation on an environment needs, so
 * `homelab deploy`, `destroy`, `status`, `unlock` and the monitor's recreate
 * all get it the same way:
 *   - the repository and environment, loaded once, problems returned as outcomes;
 *   - the cluster's inventory, one snapshot per deploy run;
 *   - the environment's SSH key, and the engine, each made or opened once, when first needed;
 *   - the dependency order and the planner, with the run's placement reservations.
 * It reports through `SessionReporter` and never prints. It loads Pulumi (and
 * the Proxmox client) only inside the operations that need them.
 *
 * What comes next has its place here: a `restore` of a service is one more
 * operation on the same engine and planner; a backup before a destructive
 * step goes into `destroyStack`, which every destroy of the session
 * (`destroy`, `recreate`) goes through.
 */
import type { Diagnostic } from "../util/diagnostics.ts";
import type { EnvironmentConfig } from "../config/environment.ts";
import type { Repository } from "../config/repository.ts";
import type { DeployReport, DeployReporter, Planner, ServiceOutcome } from "../engine/deploy.ts";
import type { DestroyOutcome, DestroyRequest } from "../engine/destroy.ts";
import type { Engine } from "../engine/engine.ts";
import type { FoundResource, PendingOperation, StackState } from "../engine/state.ts";
import type { ServiceStatusRow } from "../engine/status.ts";
import type { UnlockResult } from "../engine/unlock.ts";
import type { ImportOutcome, StateBundle } from "../engine/state-transfer.ts";
import type { GuardViolation } from "../engine/guards.ts";
import type { Inventory } from "../proxmox/inventory.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import type { ServicePlan } from "../plan/types.ts";
import type { BaseInfo } from "./bases.ts";
import type { SshKey } from "../provision/ssh-key.ts";
import type { MonitorStateFile } from "../monitor/status.ts";
import type { StatusModel } from "../status/model.ts";
import { CONTAINER_TYPE } from "../provider/tokens.ts";
import type { GateVerdict } from "./health-gate.ts";
import type { KeptContainer } from "../data/kept.ts";
import type { CatalogContainer, CatalogEntry } from "../data/catalog.ts";
import type { RollbackStep } from "./rollback.ts";
import type { MonitoredService } from "../monitor/config.ts";
import type { CommandExecutor } from "../monitor/checks.ts";

/** Something the session did that the user should know about; the CLI decides how to show it. */
export type SessionEvent =
  /** The environment's SSH key was generated (provisioning uses it to reach inside containers). */
  | { type: "ssh-key-generated"; file: string }
  /** The passphrase that encrypts secrets in the state was generated: it needs a backup. */
  | { type: "passphrase-generated"; file: string }
  /** A line of the Proxmox client: a request or retry (`request`), else a warning. */
  | { type: "proxmox"; line: string; request: boolean }
  /** A deploy run starts, after its set-up: the services in the order they are planned, and whether the environment is production. */
  | { type: "deploy-start"; order: readonly string[]; production: boolean }
  /** A changed service's health checks run before the deploy is called done. */
  | { type: "health-gate"; service: string; checks: number }
  /** A Docker-ready base is being built (or was), before the services that clone it are applied. */
  | { type: "base"; message: string }
  /** A service is rolled back to the points its deploy took. */
  | { type: "rollback-start"; service: string; because: string; points: number };

/** How the session reports: its own events, and a deploy's progress. */
export interface SessionReporter extends DeployReporter {
  event?(e: SessionEvent): void;
}

/** What a session is for. */
export interface SessionOptions {
  root: string;
  envName: string;
  /** The variables secrets, credentials, the backend and the passphrase are read from (default `process.env`). */
  processEnv?: NodeJS.ProcessEnv;
  /** CI mode: the guards apply, and Proxmox TLS verification may not be off. */
  ci?: boolean;
  /** Passed to the provider: image builds and provisioning stream their whole output. */
  verbose?: boolean;
  reporter?: SessionReporter;
}

/** The environment, or why it cannot be used. */
export type EnvironmentOutcome = { status: "loaded"; env: EnvironmentConfig } | { status: "invalid"; diagnostics: Diagnostic[] };

/** The repository, or why its environment cannot be used (then only the environment's problems, not the services'). */
export type LoadOutcome = { status: "loaded"; repo: Repository; errors: Diagnostic[] } | { status: "environment-invalid"; diagnostics: Diagnostic[] };

/** Which of the selected services can be deployed; the others as failed outcomes, with the missing secrets' diagnostics. */
export interface Checked {
  deployable: string[];
  invalid: ServiceOutcome[];
  /** The diagnostics of missing secrets, per service in the order of the selection (the services' own problems are in LoadOutcome.errors). */
  missingSecrets: { service: string; diagnostics: Diagnostic[] }[];
}

/** A step of the set-up that failed before anything was deployed, with what to do. */
export interface SetupFailure {
  /** `cluster`: the inventory could not be read; `engine`: the engine could not be opened. */
  step: "cluster" | "engine";
  message: string;
  hint: string | undefined;
}

/** The options of a deploy, as `homelab deploy` takes them. */
export interface DeployOptions {
  dryRun: boolean;
  allowDelete: boolean;
  refresh: boolean;
  /** Stacks deployed at once. */
  concurrency: number;
  /** Report services whose state matches their plan unchanged without an engine run. */
  skipUnchanged: boolean;
  /** Outside CI and without `confirm`: apply without a separate preview. */
  applyWithoutPreview: boolean;
  /** Asked once after the previews when something would change. */
  confirm?: (outcomes: readonly ServiceOutcome[]) => Promise<boolean>;
  signal?: AbortSignal;
}

/** What the health gate found for a service after its deploy, and the rollback when it had to. */
export interface AfterDeploy {
  service: string;
  /** The health gate's verdict; undefined when the service declares no checks or its deploy failed. */
  verdict: GateVerdict | undefined;
  /** Why a rollback ran: the deploy failed, or the service was unhealthy after it. */
  rollback: { because: string; steps: RollbackStep[]; refreshed: boolean; verdictAfter: GateVerdict | undefined } | undefined;
}

/** How a deploy ended: run (whatever each service's outcome), or stopped in its set-up. */
export type DeployResult = { status: "done"; report: DeployReport; deployId: string; after: AfterDeploy[] } | { status: "setup-failed"; failure: SetupFailure };

/** The options of a destroy, as `homelab destroy` takes them; `deleteData` deletes the containers' volumes too (after a backup). */
export type DestroyOptions = Pick<DestroyRequest, "dryRun" | "confirm" | "onStep" | "onDiagnostic" | "signal"> & { deleteData?: boolean };

/** How a destroy ended, and what became of the service's data: containers kept with it, or deleted (with the backup taken first). */
export interface DestroyResult {
  outcome: DestroyOutcome;
  orphaned: boolean;
  kept: KeptContainer[];
  deleted: { vmid: number; node: string; backup: string }[];
}

/** What `homelab backups` shows. */
export interface BackupsReport {
  entries: CatalogEntry[];
  kept: KeptContainer[];
  storage: string;
}

/** How a restore ended. */
export type RestoreOutcome =
  | { status: "restored"; entry: CatalogEntry; vmid: number; into: "same" | "new"; safetyBackup: string | undefined; refreshed: boolean; deploy: ServiceOutcome | undefined; durationMs: number }
  /** No snapshot or backup (matching `from`). */
  | { status: "none"; from: string | undefined; available: string[] }
  /** The service has several containers: name one with --resource. */
  | { status: "ambiguous"; resources: string[] };

/** What `status` shows: a row per service and stack, what the monitor last recorded, the backend. */
export interface StatusReport {
  rows: ServiceStatusRow[];
  health: Map<string, { health: string; remediation: string | undefined } | undefined>;
  backend: string;
  /** What `homelab monitor` last recorded for this environment, if it ran. */
  monitor: MonitorStateFile | undefined;
}

/** How a recreate ended; `heldBy` says who holds the stack when a step failed (the likely reason). */
export type RecreateOutcome =
  | { status: "recreated" }
  | { status: "destroy-refused"; violations: GuardViolation[] }
  | { status: "destroy-failed"; outcome: DestroyOutcome; heldBy: string | undefined }
  | { status: "redeploy-failed"; outcome: ServiceOutcome; heldBy: string | undefined };

/** Why a selected service cannot be deployed. */
/** `absent`: the keys no source provides; empty when only a secrets file has problems (e.g. a broken SOPS file). */
type ServiceProblem = { service: string; kind: "invalid" } | { service: string; kind: "secrets"; absent: string[]; diagnostics: Diagnostic[] };

/** The state of one deploy run: its inventory snapshot and placement reservations. */
interface RunState {
  inventory: Promise<Inventory> | undefined;
  reservations: Map<string, number>;
}

/** The wiring of deploy, destroy, status, unlock and recreate for one environment. */
/**
 * Stops a container at once when it runs, before its disks are rolled back, restored over or
 * deleted: what it holds then is replaced or deleted anyway (restore and destroy --delete-data
 * back it up first; a rollback returns to the point taken before the failed deploy).
 */
async function stopNow(client: ProxmoxClient, node: string, vmid: number): Promise<void> {
  if ((await client.lxc.status(node, vmid)).status === "running") await client.lxc.stop(node, vmid);
}

export class DeploySession {
  readonly root: string;
  readonly envName: string;
  readonly processEnv: NodeJS.ProcessEnv;
  readonly ci: boolean;
  readonly verbose: boolean;
  private readonly reporter: SessionReporter;
  private loadedEnv: EnvironmentOutcome | undefined;
  private repo: Repository | undefined;
  private key: SshKey | undefined;
  private opened: { engine: Promise<Engine>; readOnly: boolean } | undefined;
  private run: RunState = { inventory: undefined, reservations: new Map() };

  constructor(o: SessionOptions) {
    this.root = o.root;
    this.envName = o.envName;
    this.processEnv = o.processEnv ?? process.env;
    this.ci = o.ci === true;
    this.verbose = o.verbose === true;
    this.reporter = o.reporter ?? {};
  }

  // ---- what the session loads and opens ----

  /** The environment alone (destroy needs nothing else: it works for services whose folder is gone). */
  async environment(): Promise<EnvironmentOutcome> {
    if (this.loadedEnv) return this.loadedEnv;
    const { loadEnvironment } = await import("../config/environment.ts");
    const loaded = loadEnvironment(this.root, this.envName);
    this.loadedEnv = loaded.env ? { status: "loaded", env: loaded.env } : { status: "invalid", diagnostics: loaded.diagnostics };
    return this.loadedEnv;
  }

  /** Loads the environment and the services (`only` these, else all) for this session's deploys; a name with no folder is a RepositoryError. */
  async load(only?: readonly string[]): Promise<LoadOutcome> {
    const out = await this.readRepository(only);
    if (out.status === "loaded") this.repo = out.repo;
    return out;
  }

  /** Which of the selected services are valid and have their secrets (after `load`). */
  async check(selected: readonly string[]): Promise<Checked> {
    const { failedOutcome } = await import("../engine/deploy.ts");
    const invalid: ServiceOutcome[] = [];
    const missingSecrets: Checked["missingSecrets"] = [];
    for (const p of await this.problems(this.loaded(), selected)) {
      if (p.kind === "invalid") {
        invalid.push(failedOutcome(p.service, this.envName, "the service's configuration is not valid (see above)", `homelab validate ${p.service}`));
        continue;
      }
      missingSecrets.push({ service: p.service, diagnostics: p.diagnostics });
      invalid.push(failedOutcome(p.service, this.envName, p.absent.length > 0 ? `secrets not provided: ${p.absent.join(", ")}` : "its secrets files have problems", "see above"));
    }
    return { deployable: selected.filter((n) => !invalid.some((x) => x.service === n)), invalid, missingSecrets };
  }

  /**
   * The engine, opened on first use. `read`: commands that only read (no
   * passphrase generated, no state folder made); a session whose engine is
   * open for reading cannot write later.
   */
  async engine(access: "read" | "write" = "write"): Promise<Engine> {
    const readOnly = access === "read";
    if (this.opened) {
      if (this.opened.readOnly && !readOnly) throw new Error("the engine of this session was opened to read only");
      return this.opened.engine;
    }
    const open = async (): Promise<Engine> => {
      const { Engine } = await import("../engine/engine.ts");
      const { EngineSetupError } = await import("../engine/settings.ts");
      // The environment may name where its state lives (homelab:backend).
      const env = await this.environment();
      if (env.status !== "loaded") throw new EngineSetupError(`the environment ${this.envName} has problems, so where its state lives is not known`, `homelab validate --env ${this.envName}`);
      const engine = await Engine.open({ root: this.root, envName: this.envName, processEnv: this.processEnv, ci: this.ci, verbose: this.verbose, readOnly, backendSetting: env.env.backend, ...(env.env.file !== undefined ? { envFile: env.env.file } : {}) });
      if (engine.passphrase.origin === "generated") this.reporter.event?.({ type: "passphrase-generated", file: engine.passphrase.file ?? "" });
      return engine;
    };
    const engine = open();
    this.opened = { engine, readOnly };
    // A failed opening is not kept: the next call tries again.
    engine.catch(() => {
      if (this.opened?.engine === engine) this.opened = undefined;
    });
    return engine;
  }

  /** The environment's SSH key pair, generated on first use. */
  async sshKey(): Promise<SshKey> {
    if (this.key) return this.key;
    const { ensureSshKey } = await import("../provision/ssh-key.ts");
    this.key = ensureSshKey(this.root, this.envName);
    if (this.key.generated) this.reporter.event?.({ type: "ssh-key-generated", file: this.key.privateKeyFile });
    return this.key;
  }

  // ---- deploy ----

  /** Deploys (or previews) services of the loaded repository, dependencies first. */
  async deploy(names: readonly string[], o: DeployOptions): Promise<DeployResult> {
    return this.deployRun(this.loaded(), names, o);
  }

  // ---- destroy ----

  /**
   * Destroys (or previews destroying) one service's resources and stack; also
   * of a service whose folder is gone (`orphaned`). A stack a killed run left
   * with pending operations gets the cluster's inventory, so what that run
   * created is found and deleted too.
   */
  async destroy(service: string, o: DestroyOptions): Promise<DestroyResult> {
    const env = await this.environment();
    if (env.status !== "loaded") throw new Error(`environment ${this.envName} could not be loaded`);
    const { discoverServices } = await import("../config/discover.ts");
    const { stackName } = await import("../engine/stacks.ts");
    const orphaned = !discoverServices(this.root).some((s) => s.name === service);
    const engine = await this.engine("write");
    // Only a stack a killed run left with pending operations needs the cluster's inventory.
    let inventory: Pick<Inventory, "guests"> | undefined;
    const state = await engine.readState(stackName(this.envName, service));
    if ((state?.pending.length ?? 0) > 0) inventory = await this.inventory(env.env);
    const { deleteData, ...request } = o;
    const { newDeployId } = await import("../data/safety.ts");
    const deployId = newDeployId();
    engine.setRunVariables({ HOMELAB_DEPLOY_ID: deployId, HOMELAB_DELETE_DATA: deleteData === true ? "true" : undefined });
    let outcome: DestroyOutcome;
    try {
      outcome = await this.destroyStack({
        service,
        orphaned,
        ...request,
        locatePending: (op, taken) => (inventory ? locateContainer(inventory, service, op, taken) : undefined),
      });
    } finally {
      engine.setRunVariables({ HOMELAB_DELETE_DATA: undefined });
    }
    const data = o.dryRun || (outcome.status !== "destroyed" && outcome.status !== "nothing") ? { kept: [], deleted: [] } : await this.settleKeptData(env.env, service, deleteData === true, deployId);
    return { outcome, orphaned, ...data };
  }

  /** The containers kept with a service's data after a destroy; with `remove`, deleted (each after a backup). */
  private async settleKeptData(env: EnvironmentConfig, service: string, remove: boolean, deployId: string): Promise<Pick<DestroyResult, "kept" | "deleted">> {
    if (!env.proxmox) return { kept: [], deleted: [] };
    const { listKept, deleteKept } = await import("../data/kept.ts");
    const { DataSafety } = await import("../data/safety.ts");
    return this.withCluster(env, async (client) => {
      const kept = await listKept(client, this.envName, service);
      if (!remove) return { kept, deleted: [] };
      const safety = new DataSafety(client, { backupStorage: env.backups.storage, keep: env.backups.keep, deployId });
      const deleted: DestroyResult["deleted"] = [];
      for (const k of kept) {
        const backup = await deleteKept(client, k, safety, async (node, vmid) => {
          await stopNow(client, node, vmid);
          await client.lxc.delete(node, vmid, { purge: true });
        });
        deleted.push({ vmid: k.vmid, node: k.node, backup });
      }
      return { kept: [], deleted };
    });
  }

  // ---- Docker-ready bases ----

  /**
   * The Docker-ready bases on the cluster, each marked current (a service of this repository
   * would clone it now) or not; with `prune`, the ones no service would clone and no linked
   * clone uses are removed.
   */
  async bases(o: { prune: boolean }): Promise<{ bases: (BaseInfo & { current: boolean; removed: boolean; error?: string })[] }> {
    const loaded = await this.load();
    if (loaded.status !== "loaded") throw new Error(`environment ${this.envName} could not be loaded`);
    const repo = loaded.repo;
    const { BaseBuilder } = await import("./bases.ts");
    const { currentState } = await import("../engine/state.ts");
    const { stackName } = await import("../engine/stacks.ts");
    return this.withCluster(repo.env, async (client) => {
      const inventory = await client.loadInventory();
      const key = await this.sshKey();
      const engine = await this.engine("read");
      const planner = await this.planner(repo.env, inventory, key);
      const wanted = new Set<string>();
      for (const [name, service] of repo.services) {
        const { plan } = planner(service, currentState(await engine.readState(stackName(this.envName, name))));
        for (const r of plan?.resources ?? []) if (r.kind === "proxmox:container" && r.base?.mode === "clone") wanted.add(`${r.inputs.node}/${r.base.key}`);
      }
      const builder = new BaseBuilder({ client, env: repo.env, root: this.root, key, say: () => undefined });
      const out: (BaseInfo & { current: boolean; removed: boolean; error?: string })[] = [];
      for (const b of await builder.list()) {
        const current = wanted.has(`${b.node}/${b.key}`);
        if (!o.prune || current || b.usedBy > 0) {
          out.push({ ...b, current, removed: false });
          continue;
        }
        try {
          await builder.remove(b.node, b.vmid);
          out.push({ ...b, current, removed: true });
        } catch (e) {
          out.push({ ...b, current, removed: false, error: e instanceof Error ? e.message : String(e) });
        }
      }
      return { bases: out };
    });
  }

  // ---- backups and restore ----

  /** homelab's snapshots and backups of the environment's services (of one when given), newest first, and the containers kept with their data. */
  async backups(service?: string): Promise<BackupsReport> {
    const env = await this.environment();
    if (env.status !== "loaded") throw new Error(`environment ${this.envName} could not be loaded`);
    const { listKept } = await import("../data/kept.ts");
    return this.withCluster(env.env, async (client) => {
      const entries = await this.catalogOf(client, env.env, service, await this.deployedContainers(service));
      return { entries, kept: await listKept(client, this.envName, service), storage: env.env.backups.storage };
    });
  }

  /**
   * Brings a service's container back to a snapshot or backup (`from`, else the newest), after
   * a backup of its current state: a snapshot of the same container is rolled back, a backup
   * restored over it (same vmid). A service not deployed gets the backup restored into a new
   * container that its next deploy takes the volumes from. Then the stack is refreshed and,
   * unless `deploy` is false, the service deployed again (its current definition over the
   * restored data).
   */
  async restore(service: string, o: { from?: string; resource?: string; deploy: boolean }): Promise<RestoreOutcome> {
    const env = await this.environment();
    if (env.status !== "loaded") throw new Error(`environment ${this.envName} could not be loaded`);
    const { pickEntry } = await import("../data/catalog.ts");
    const { DataSafety, newDeployId } = await import("../data/safety.ts");
    const { restoreOver } = await import("./rollback.ts");
    const { stackName } = await import("../engine/stacks.ts");
    const started = Date.now();
    return this.withCluster(env.env, async (client) => {
      const deployed = (await this.deployedContainers(service, "write")).filter((c) => o.resource === undefined || c.resource === o.resource);
      if (deployed.length > 1) return { status: "ambiguous", resources: deployed.map((c) => c.resource) };
      const storage = env.env.backups.storage;
      const all = await this.catalogOf(client, env.env, service, deployed);
      const target = deployed[0];
      const entries = all.filter((e) => (target ? e.resource === target.resource : o.resource === undefined || e.resource === o.resource) && (e.kind === "backup" || e.vmid === target?.vmid));
      const entry = pickEntry(entries, o.from);
      if (!entry) return { status: "none", from: o.from, available: entries.map((e) => e.name) };
      const deployId = newDeployId();
      const safety = new DataSafety(client, { backupStorage: storage, keep: env.env.backups.keep, deployId });
      const stop = (node: string, vmid: number): Promise<void> => stopNow(client, node, vmid);
      let safetyBackup: string | undefined;
      let vmid: number;
      if (target) {
        // Restoring replaces what the container holds now: that is kept too.
        const id = { service, resource: target.resource, environment: this.envName };
        const before = await safety.backupBefore(target.node, target.vmid, id, "restore");
        safetyBackup = before.kind === "backup" ? before.volid : before.name;
        if (entry.kind === "snapshot") await client.lxc.rollback(target.node, target.vmid, entry.name, { start: true });
        else await restoreOver(client, target.node, target.vmid, entry.name, { storage: env.env.defaults.storage, stop });
        vmid = target.vmid;
      } else {
        // Not deployed: a container of its own, kept as a destroy keeps one, which the next deploy takes the volumes from.
        vmid = await client.cluster.nextId();
        await client.lxc.create(entry.node, { vmid, ostemplate: entry.name, restore: true, storage: env.env.defaults.storage });
        const { markKept } = await import("../data/kept.ts");
        const restored = await client.lxc.config(entry.node, vmid);
        await markKept(client, entry.node, vmid, { tags: restored.tags }, { service, resource: entry.resource, environment: this.envName }, `restored from ${entry.name}`);
      }
      const engine = await this.engine("write");
      let refreshed = false;
      if (target) refreshed = await engine.refresh(stackName(this.envName, service)).then(() => true, () => false);
      let deployed2: ServiceOutcome | undefined;
      if (o.deploy) {
        deployed2 = await this.redeploy(service);
      }
      return { status: "restored", entry, vmid, into: target ? "same" : "new", safetyBackup, refreshed, deploy: deployed2, durationMs: Date.now() - started };
    });
  }

  /** homelab's snapshots and backups on the environment's backup storage, on every online node (of one service when given). */
  private async catalogOf(client: ProxmoxClient, env: EnvironmentConfig, service: string | undefined, containers: readonly CatalogContainer[]): Promise<CatalogEntry[]> {
    const { catalog } = await import("../data/catalog.ts");
    const inventory = await client.loadInventory();
    const storage = env.backups.storage;
    const shared = inventory.storages.some((x) => x.storage === storage && x.shared);
    return catalog(client, { envName: this.envName, ...(service !== undefined ? { service } : {}), storage, nodes: inventory.nodes.filter((n) => n.online).map((n) => n.name), sharedStorage: shared, containers });
  }

  /** The containers of the environment's deployed services (of one when given), from their stacks. */
  private async deployedContainers(service: string | undefined, access: "read" | "write" = "read"): Promise<{ service: string; resource: string; node: string; vmid: number }[]> {
    const engine = await this.engine(access);
    const { stackContainers } = await import("./rollback.ts");
    const { stackName } = await import("../engine/stacks.ts");
    const names = service !== undefined ? [service] : (await engine.listStacks()).map((x) => x.service);
    const out: { service: string; resource: string; node: string; vmid: number }[] = [];
    for (const name of names) for (const c of stackContainers(await engine.readState(stackName(this.envName, name)))) out.push({ service: name, ...c });
    return out;
  }

  // ---- status and unlock ----

  /** What is deployed (all services, or `only`), from the state alone, with what the monitor last recorded. */
  async status(only?: string): Promise<StatusReport> {
    const { discoverServices } = await import("../config/discover.ts");
    const { environmentStatus } = await import("../engine/status.ts");
    const { readMonitorState, healthLines } = await import("../monitor/status.ts");
    const names = discoverServices(this.root).map((s) => s.name);
    const engine = await this.engine("read");
    const rows = await environmentStatus(engine, this.envName, names, only);
    const monitor = await readMonitorState(this.root, this.envName);
    return { rows, health: new Map(rows.map((r) => [r.service, healthLines(monitor, r.service)])), backend: engine.backend.display, monitor };
  }

  /** The status model (`homelab status --json`, the same the monitor's page shows), with the rows it was built from. */
  async statusModel(only?: string): Promise<{ rows: ServiceStatusRow[]; model: StatusModel }> {
    const { rows, backend, monitor } = await this.status(only);
    const { collectStatusModel, configInfo } = await import("../status/collect.ts");
    const { checkLabel } = await import("../monitor/checks.ts");
    const { loadRepository } = await import("../config/repository.ts");
    const config = configInfo(loadRepository({ root: this.root, envName: this.envName, ...(only !== undefined ? { only: [only] } : {}) }).services.values(), checkLabel);
    const model = await collectStatusModel({ root: this.root, envName: this.envName, backendUrl: backend, reader: await this.engine("read"), rows, config, monitor });
    return { rows, model };
  }

  /** The containers kept with the data of the environment's services (of one when given); the cluster may be unreachable. */
  async keptData(service?: string): Promise<{ status: "read"; kept: KeptContainer[] } | { status: "no-cluster" } | { status: "unreadable"; message: string }> {
    const env = await this.environment();
    if (env.status !== "loaded" || !env.env.proxmox) return { status: "no-cluster" };
    const { connectProxmox } = await import("../proxmox/connect.ts");
    const { listKept } = await import("../data/kept.ts");
    try {
      const client = connectProxmox(env.env, { processEnv: this.processEnv, ci: this.ci, tuning: { timeoutMs: 10_000, retry: { attempts: 1 } } });
      try {
        return { status: "read", kept: await listKept(client, this.envName, service) };
      } finally {
        await client.close();
      }
    } catch (e) {
      return { status: "unreadable", message: e instanceof Error ? e.message : String(e) };
    }
  }

  /** Clears a service's stale stack lock (never one whose owner runs). */
  async unlock(service: string, force: boolean): Promise<UnlockResult> {
    const { unlockService } = await import("../engine/unlock.ts");
    return unlockService(await this.engine("read"), this.envName, service, force);
  }

  // ---- moving state between backends ----

  /** Exports the environment's stacks (all, or those of `only`) from its backend, secrets still encrypted. */
  async exportState(only?: readonly string[]): Promise<{ bundle: StateBundle; missing: string[] }> {
    const { exportState } = await import("../engine/state-transfer.ts");
    return exportState(await this.engine("read"), this.envName, only);
  }

  /** Imports an export's stacks (all, or those of `only`) into the environment's backend; nothing is deployed. */
  async importState(bundle: StateBundle, o: { only?: readonly string[]; force: boolean }): Promise<ImportOutcome[]> {
    const { importState } = await import("../engine/state-transfer.ts");
    return importState(await this.engine("write"), this.envName, bundle, o);
  }

  // ---- the monitor's recreate ----

  /** Who holds a service's stack now (a deploy or destroy of another run), or undefined. */
  async lockHolder(service: string): Promise<string | undefined> {
    const { engineLockHolder } = await import("../monitor/actions.ts");
    return engineLockHolder(await this.engine("read"), this.envName)(service);
  }

  /**
   * Destroys a service's stack (refused for protected resources), forgets
   * its containers' SSH host keys, then deploys that one service again as
   * `homelab deploy SERVICE --yes` would (outside CI): the configuration and
   * its secrets read afresh, a new inventory snapshot. Throws when the
   * configuration is not valid now, a secret is missing, or the cluster
   * cannot be read. Once started it runs to its end (no signal): stopped
   * halfway it could leave the service destroyed.
   */
  async recreate(service: string): Promise<RecreateOutcome> {
    const engine = await this.engine("write");
    // The engine remembers which stacks exist from its last listing, which in a
    // long-running monitor is old news (deploys and destroys by other runs).
    await engine.listAllStacks();
    // As before the session: no inventory for the destroy, so operations a killed run left pending are dropped, not adopted.
    const destroyed = await this.destroyStack({ service, dryRun: false, orphaned: false });
    if (destroyed.status === "blocked") return { status: "destroy-refused", violations: destroyed.violations };
    if (destroyed.status !== "destroyed" && destroyed.status !== "nothing") return { status: "destroy-failed", outcome: destroyed, heldBy: await this.heldBy(service) };
    const { resourceFacts } = await import("../engine/state.ts");
    const { forgetHost } = await import("../provision/ssh.ts");
    const { knownHostsFile } = await import("../config/homelab-dir.ts");
    for (const r of destroyed.resources) {
      const address = resourceFacts(r).address;
      if (address !== undefined) await forgetHost(knownHostsFile(this.root, this.envName), address);
    }
    // Listed again: the destroy removed the stack without the engine noting it, and the deploy must create it anew.
    await engine.listAllStacks();
    const deployed = await this.redeploy(service);
    if (deployed.status === "applied" || deployed.status === "unchanged") return { status: "recreated" };
    return { status: "redeploy-failed", outcome: deployed, heldBy: await this.heldBy(service) };
  }

  // ---- the wiring ----

  /** Runs `f` with a client of the environment's cluster (root@pam where configured: restores, bind mounts, features), closed after. */
  private async withCluster<T>(env: EnvironmentConfig, f: (client: ProxmoxClient) => Promise<T>): Promise<T> {
    const { connectProxmox } = await import("../proxmox/connect.ts");
    const client = connectProxmox(env, { purpose: "root", processEnv: this.processEnv, ci: this.ci });
    try {
      return await f(client);
    } finally {
      await client.close();
    }
  }

  private loaded(): Repository {
    if (!this.repo) throw new Error("load() the repository first");
    return this.repo;
  }

  private async readRepository(only: readonly string[] | undefined): Promise<LoadOutcome> {
    const { loadRepository } = await import("../config/repository.ts");
    const repo = loadRepository({ root: this.root, envName: this.envName, ...(only ? { only } : {}) });
    if (!repo.envFromFile) return { status: "environment-invalid", diagnostics: repo.diagnostics.filter((d) => !d.file.includes("/services/")) };
    return { status: "loaded", repo, errors: repo.diagnostics.filter((d) => d.severity === "error") };
  }

  /** The cluster's inventory: one snapshot per run. */
  private inventory(env: EnvironmentConfig): Promise<Inventory> {
    this.run.inventory ??= (async () => {
      const { connectProxmox, isRequestLogLine } = await import("../proxmox/connect.ts");
      const client = connectProxmox(env, { processEnv: this.processEnv, ci: this.ci, logger: (line) => this.reporter.event?.({ type: "proxmox", line, request: isRequestLogLine(line) }) });
      try {
        return await client.loadInventory();
      } finally {
        await client.close();
      }
    })();
    return this.run.inventory;
  }

  /** The services in planning order: dependency waves, then any not in them. */
  private async order(repo: Repository, names: readonly string[]): Promise<string[]> {
    const { serviceWaves } = await import("../plan/plan.ts");
    const order = serviceWaves(repo.services).flat().filter((n) => names.includes(n));
    for (const n of names) if (!order.includes(n)) order.push(n);
    return order;
  }

  /** The planner of this run: the inventory snapshot, the SSH key, and the placements made so far (reservations). */
  private async planner(env: EnvironmentConfig, inventory: Inventory, key: SshKey): Promise<Planner> {
    const { planService } = await import("../plan/plan.ts");
    const reservations = this.run.reservations;
    return (service, current) => planService({ service, env, inventory, current, sshPublicKey: key.publicKey, reservations });
  }

  /** One deploy run: a fresh inventory and reservations, then the engine's deploy. */
  private async deployRun(repo: Repository, names: readonly string[], o: DeployOptions): Promise<DeployResult> {
    this.run = { inventory: undefined, reservations: new Map() };
    const env = repo.env;
    let inventory: Inventory;
    try {
      inventory = await this.inventory(env);
    } catch (e) {
      return { status: "setup-failed", failure: { step: "cluster", message: e instanceof Error ? e.message : String(e), hint: hintOf(e) } };
    }
    const key = await this.sshKey();
    let engine: Engine;
    try {
      engine = await this.engine("write");
    } catch (e) {
      return { status: "setup-failed", failure: { step: "engine", message: e instanceof Error ? e.message : String(e), hint: hintOf(e) } };
    }
    const order = await this.order(repo, names);
    const { deploy } = await import("../engine/deploy.ts");
    const { toolFingerprint } = await import("../engine/fingerprint.ts");
    const { newDeployId } = await import("../data/safety.ts");
    // Names the snapshots and backups the provider takes in this run, so the run finds its own.
    const deployId = newDeployId();
    engine.setRunVariables({ HOMELAB_DEPLOY_ID: deployId, HOMELAB_DELETE_DATA: undefined });
    this.reporter.event?.({ type: "deploy-start", order, production: env.production });
    const report = await deploy({
      engine,
      env,
      services: repo.services,
      selected: names,
      order,
      planner: await this.planner(env, inventory, key),
      locatePending: (service, op, taken) => locateContainer(inventory, service, op, taken),
      prepare: (plans) => this.buildBases(env, key, plans),
      dryRun: o.dryRun,
      ci: this.ci,
      allowDelete: o.allowDelete,
      refresh: o.refresh,
      concurrency: o.concurrency,
      fingerprint: toolFingerprint(),
      skipUnchanged: o.skipUnchanged,
      applyWithoutPreview: o.applyWithoutPreview,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.confirm ? { confirm: o.confirm } : {}),
      reporter: this.reporter,
    });
    // What each stack recorded before the run: a rollback of a replaced container needs the template it had.
    const after = o.dryRun || report.interrupted ? [] : await this.afterDeploy(repo, engine, report, deployId, report.statesBefore);
    return { status: "done", report, deployId, after };
  }

  /** Builds the Docker-ready bases the plans clone from that are not on their nodes yet. */
  private async buildBases(env: EnvironmentConfig, key: SshKey, plans: readonly ServicePlan[]): Promise<ReadonlyMap<string, { message: string; hint: string }>> {
    const { missingBases, BaseBuilder } = await import("./bases.ts");
    const needs = missingBases(plans);
    if (needs.length === 0) return new Map();
    return this.withCluster(env, (client) => new BaseBuilder({ client, env, root: this.root, key, say: (message) => this.reporter.event?.({ type: "base", message }) }).ensure(needs));
  }

  /**
   * The health gate of every service this run changed, and the rollback of those that failed
   * their deploy or the gate, to the points the run took before its destructive steps.
   */
  private async afterDeploy(repo: Repository, engine: Engine, report: DeployReport, deployId: string, before: ReadonlyMap<string, StackState | undefined>): Promise<AfterDeploy[]> {
    const touched = report.outcomes.filter((x) => x.status === "applied" || (x.status === "failed" && x.applied !== undefined && x.applied.some((c) => c.status !== "planned")));
    if (touched.length === 0) return [];
    const { healthGate } = await import("./health-gate.ts");
    const { monitoredService, monitorSettings } = await import("../monitor/config.ts");
    const { sshCommandExecutor } = await import("../monitor/ssh.ts");
    const settings = monitorSettings(repo.env);
    const executor = sshCommandExecutor(this.root, this.envName);
    const out: AfterDeploy[] = [];
    for (const outcome of touched) {
      const service = repo.services.get(outcome.service);
      if (!service) continue;
      const monitored = monitoredService(service, settings);
      let verdict: GateVerdict | undefined;
      let because: string | undefined;
      let current: StackState | undefined;
      if (outcome.status === "failed") because = `its deploy failed: ${outcome.error?.message ?? "see above"}`;
      // Without provisioning nothing runs inside the containers (state-only guests): nothing to check.
      else if (monitored.checks.length > 0 && repo.env.provisioning) {
        this.reporter.event?.({ type: "health-gate", service: outcome.service, checks: monitored.checks.length });
        current = await engine.readState(outcome.stack);
        verdict = await healthGate(monitored, current, { executor, ci: this.ci });
        if (!verdict.healthy) because = `it is unhealthy after its deploy: ${verdict.check}: ${verdict.detail}`;
      }
      const rollback = because !== undefined ? await this.rollBackService(repo.env, engine, outcome.service, outcome.stack, deployId, because, monitored, executor, before.get(outcome.service), current) : undefined;
      out.push({ service: outcome.service, verdict, rollback });
    }
    return out;
  }

  /** Rolls one service back to this run's points, refreshes its stack, and checks its health again. */
  private async rollBackService(
    env: EnvironmentConfig,
    engine: Engine,
    service: string,
    stack: string,
    deployId: string,
    because: string,
    monitored: MonitoredService,
    executor: CommandExecutor,
    before: StackState | undefined,
    current: StackState | undefined,
  ): Promise<AfterDeploy["rollback"]> {
    const { rollbackPoints, rollBack } = await import("./rollback.ts");
    const { healthGate } = await import("./health-gate.ts");
    return this.withCluster(env, async (client) => {
      // The state after the deploy, unless the health gate read it already.
      const state = current ?? (await engine.readState(stack));
      const points = await rollbackPoints(client, { deployId, envName: this.envName, service, backupStorage: env.backups.storage, state });
      if (points.length === 0) return undefined;
      this.reporter.event?.({ type: "rollback-start", service, because, points: points.length });
      const stop = (node: string, vmid: number): Promise<void> => stopNow(client, node, vmid);
      const storage = env.defaults.storage;
      const steps: RollbackStep[] = [];
      for (const p of points) {
        const step = await rollBack(client, p, { storage, stop });
        steps.push(step);
        // The replaced container now holds the old one's disks: the state must name the template they came from.
        const template = p.kind === "replaced" && step.ok ? before?.resources.find((r) => r.id === p.resource && r.type === CONTAINER_TYPE)?.outputs["template"] : undefined;
        const urn = state?.resources.find((r) => r.id === p.resource && r.type === CONTAINER_TYPE)?.urn;
        if (typeof template === "string" && urn !== undefined) await engine.patchResource(stack, urn, { template });
      }
      let refreshed = false;
      if (steps.some((x) => x.ok)) {
        // The state must say what runs now, or the next deploy would believe the failed change applied.
        refreshed = await engine.refresh(stack).then(
          () => true,
          () => false,
        );
      }
      const verdictAfter = monitored.checks.length > 0 && steps.some((x) => x.ok) ? await healthGate(monitored, await engine.readState(stack), { executor, ci: this.ci, minTries: 5 }) : undefined;
      return { because, steps, refreshed, verdictAfter };
    });
  }

  /** Every destroy of the session goes through here (the place for a backup before it). */
  private async destroyStack(request: Omit<DestroyRequest, "engine" | "envName">): Promise<DestroyOutcome> {
    const { destroyService } = await import("../engine/destroy.ts");
    return destroyService({ engine: await this.engine("write"), envName: this.envName, ...request });
  }

  /** Deploys one service as `homelab deploy SERVICE --yes` would (outside CI), from the repository as it is now. */
  private async redeploy(service: string): Promise<ServiceOutcome> {
    const loaded = await this.readRepository([service]);
    if (loaded.status !== "loaded" || !loaded.repo.services.has(service)) throw new Error(`the configuration of ${service} is not valid now (homelab validate --env ${this.envName} ${service})`);
    for (const p of await this.problems(loaded.repo, [service])) {
      if (p.kind === "secrets") throw new Error(`${p.absent.length > 0 ? `missing secrets of ${service}: ${p.absent.join(", ")}` : `the secrets files of ${service} have problems`} (homelab validate --env ${this.envName} ${service})`);
    }
    const run = await this.deployRun(loaded.repo, [service], {
      dryRun: false,
      allowDelete: false,
      refresh: false,
      concurrency: 1,
      skipUnchanged: true,
      // As `homelab deploy --yes`: no separate preview, the engine and plugin start once.
      applyWithoutPreview: true,
    });
    if (run.status === "setup-failed") throw Object.assign(new Error(run.failure.message), { hint: run.failure.hint });
    const outcome = run.report.outcomes.find((x) => x.service === service);
    if (!outcome) throw new Error(`deploying ${service} reported no outcome`);
    return outcome;
  }

  /** Why selected services cannot be deployed: not valid, or secrets missing (with their diagnostics). */
  private async problems(repo: Repository, selected: readonly string[]): Promise<ServiceProblem[]> {
    const { resolveSecrets } = await import("../config/secrets.ts");
    const { secretsContext } = await import("./secrets-context.ts");
    const out: ServiceProblem[] = [];
    for (const service of selected) {
      const s = repo.services.get(service);
      if (!s) {
        out.push({ service, kind: "invalid" });
        continue;
      }
      const secrets = resolveSecrets(service, s.dir, repo.env, this.processEnv, secretsContext(this.root, this.processEnv, repo.env.backend));
      const diagnostics = secrets.diagnostics.filter((d) => d.severity === "error");
      if (diagnostics.length > 0) out.push({ service, kind: "secrets", absent: secrets.statuses.filter((x) => x.provided === undefined).map((x) => x.key), diagnostics });
    }
    return out;
  }

  private async heldBy(service: string): Promise<string | undefined> {
    return this.lockHolder(service).catch(() => undefined);
  }
}

function hintOf(e: unknown): string | undefined {
  const hint: unknown = e !== null && typeof e === "object" ? Reflect.get(e, "hint") : undefined;
  return typeof hint === "string" ? hint : undefined;
}

/**
 * The container a killed run's pending creation made, by its hostname and
 * homelab tags on the planned node; undefined unless exactly one matches.
 * It is complete when it runs and no task holds it. Pure.
 */
export function locateContainer(inventory: Pick<Inventory, "guests">, service: string, op: PendingOperation, taken: ReadonlySet<string>): FoundResource | undefined {
  if (op.type !== CONTAINER_TYPE) return undefined;
  const hostname = op.inputs["hostname"];
  const node = op.inputs["node"];
  const found = inventory.guests.filter(
    (g) => g.type === "lxc" && g.name === hostname && g.tags.includes("homelab") && g.tags.includes(service.toLowerCase()) && (typeof node !== "string" || g.node === node) && !taken.has(String(g.vmid)),
  );
  const g = found.length === 1 ? found[0] : undefined;
  return g ? { physicalId: String(g.vmid), complete: g.status === "running" && g.lock === undefined } : undefined;
}
