/**
 * The Pulumi engine through the Automation API: one persistent workspace per
 * repository and backend, one stack per service, inline programs (served by
 * an in-process language host), the pinned CLI. Each operation reports its
 * changes and progress from engine events (events.ts).
 *
 * Cost matters (every CLI start is ~0.3 s of CPU), so: stacks are not
 * `select`ed (every command names its stack), the state of a file backend is
 * read from disk, and `up` does not re-read outputs and history afterwards.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { CommandError, ConcurrentUpdateError, LocalWorkspace, PulumiCommand, Stack, StackAlreadyExistsError } from "@pulumi/pulumi/automation/index.js";
import type { Deployment, EngineEvent, PulumiFn } from "@pulumi/pulumi/automation/index.js";
import { resolvePulumiCli } from "./pulumi-cli.ts";
import type { PulumiCli } from "./pulumi-cli.ts";
import { ChangeTracker, loadChangeDescriber } from "./events.ts";
import type { ChangeDescriber } from "./events.ts";
import type { Diagnostic, ResourceChange, StepProgress } from "./events.ts";
import type { StackLock } from "./locks.ts";
import { backendCredentials, chooseBackend, ensurePassphrase, TOOL_ROOT, workspaceDir, workspaceEnv } from "./settings.ts";
import type { Backend, Passphrase } from "./settings.ts";
import { backendHasNoStacks, boundStack as bind, cliIsCancelling, commandOutput, errorLines, isRunSummaryLine, parseLockError, readBackendState, readLocks, removeLock, saysCancelled, saysLocked } from "./pulumi-internals.ts";
import { openStore } from "./backend-store.ts";
import type { BackendStore } from "./backend-store.ts";
import type { BackendConfig } from "../config/backend-setting.ts";
import { parseDeployment, resolvePendingOperations, withResourceFields } from "./state.ts";
import type { AdoptedResource, FoundResource, PendingOperation, StackState } from "./state.ts";
import { parseStackName, PROJECT } from "./stacks.ts";

/** How to open the engine for one repository and environment. */
export interface EngineOptions {
  root: string;
  envName: string;
  /** Variables read for the backend and passphrase, and passed on to the CLI (default `process.env`). */
  processEnv?: NodeJS.ProcessEnv;
  /** The CLI to use (default: resolvePulumiCli()). */
  cli?: PulumiCli;
  /** Where `pulumi-resource-homelab` is (default `$HOMELAB_PLUGIN_DIR`, else `<tool>/bin`). */
  pluginDir?: string;
  /** CI mode, passed to the provider as HOMELAB_CI. */
  ci?: boolean;
  /** Passed to the provider as HOMELAB_VERBOSE: image builds and provisioning stream their whole output. */
  verbose?: boolean;
  /** Extra variables for every CLI run (tests). */
  extraEnv?: Record<string, string>;
  /** For commands that only read: no passphrase is generated, no state folder created. */
  readOnly?: boolean;
  /** The environment's `homelab:backend`, used when PULUMI_BACKEND_URL is not set. */
  backendSetting?: BackendConfig | undefined;
  /** The environment file, for messages about its settings. */
  envFile?: string;
}

/** A stack as `pulumi stack ls` reports it. */
export interface StackInfo {
  name: string;
  env: string;
  service: string;
  lastUpdate: Date | undefined;
  updateInProgress: boolean;
  resourceCount: number | undefined;
}

/** How long an interruption waits for the CLI to report it is cancelling before signalling it. */
const INTERRUPT_GRACE_MS = 3000;

/** Options of one engine run. */
export interface RunOptions {
  refresh?: boolean;
  signal?: AbortSignal;
  onStep?: (s: StepProgress) => void;
  onDiagnostic?: (d: Diagnostic) => void;
  /** Raw engine events (tests, debugging). */
  onEvent?: (e: EngineEvent) => void;
  /** The CLI's own output lines (verbose). */
  onOutput?: (text: string) => void;
}

/** What one run did (or, for a preview, would do). */
export interface RunResult {
  changes: ResourceChange[];
  diagnostics: Diagnostic[];
  durationMs: number;
}

/** Why a run failed. */
export type RunFailure = "locked" | "cancelled" | "failed";

/** A failed engine run, with what it did before failing. */
export class EngineRunError extends Error {
  readonly kind: RunFailure;
  readonly stackName: string;
  readonly changes: ResourceChange[];
  readonly diagnostics: Diagnostic[];
  readonly lock: StackLock | undefined;
  readonly detail: string;
  constructor(o: { kind: RunFailure; stack: string; message: string; detail: string; changes: ResourceChange[]; diagnostics: Diagnostic[]; lock?: StackLock | undefined }) {
    super(o.message);
    this.name = "EngineRunError";
    this.kind = o.kind;
    this.stackName = o.stack;
    this.changes = o.changes;
    this.diagnostics = o.diagnostics;
    this.lock = o.lock;
    this.detail = o.detail;
  }
}

/** A Stack bound to its name, without `pulumi stack select` (see pulumi-internals.ts). */
function boundStack(name: string, workspace: LocalWorkspace): Stack {
  return bind(Stack, name, workspace);
}

/** The engine for one repository and environment. */
export class Engine {
  readonly root: string;
  readonly envName: string;
  readonly backend: Backend;
  readonly passphrase: Passphrase;
  readonly workDir: string;
  readonly cli: PulumiCli;
  readonly env: Record<string, string>;
  /** homelab's own access to the backend's objects (states, locks); undefined where only the CLI reads it. */
  readonly store: BackendStore | undefined;
  private readonly workspace: LocalWorkspace;
  private readonly command: PulumiCommand;
  private known: Set<string> | undefined;
  private listing: Promise<StackInfo[]> | undefined;

  private constructor(o: { root: string; envName: string; backend: Backend; passphrase: Passphrase; workDir: string; cli: PulumiCli; env: Record<string, string>; store: BackendStore | undefined; workspace: LocalWorkspace; command: PulumiCommand }) {
    this.root = o.root;
    this.envName = o.envName;
    this.backend = o.backend;
    this.passphrase = o.passphrase;
    this.workDir = o.workDir;
    this.cli = o.cli;
    this.env = o.env;
    this.store = o.store;
    this.workspace = o.workspace;
    this.command = o.command;
  }

  /** Opens the workspace: backend, passphrase (generated on first use), CLI, project settings. */
  static async open(o: EngineOptions): Promise<Engine> {
    const processEnv = o.processEnv ?? process.env;
    const backend = chooseBackend(o.root, processEnv, o.backendSetting);
    if (backend.dir !== undefined && o.readOnly !== true) await mkdir(backend.dir, { recursive: true });
    const envFile = o.envFile ?? `Pulumi.${o.envName}.yaml`;
    const credentials = backendCredentials(backend, processEnv, envFile);
    const passphrase = ensurePassphrase(o.root, processEnv, { generate: o.readOnly !== true, shared: backend.shared, ref: backend.setting?.passphrase, envFile });
    const workDir = workspaceDir(o.root, backend);
    await mkdir(workDir, { recursive: true });
    const cli = o.cli ?? (await resolvePulumiCli({ env: processEnv }));
    const env = {
      ...workspaceEnv({ root: o.root, envName: o.envName, backend, passphrase, pluginDir: o.pluginDir ?? (processEnv["HOMELAB_PLUGIN_DIR"] || path.join(TOOL_ROOT, "bin")), cliDir: path.dirname(cli.path), base: processEnv }),
      HOMELAB_CI: o.ci ? "true" : "false",
      HOMELAB_VERBOSE: o.verbose ? "true" : "false",
      ...credentials,
      ...o.extraEnv,
    };
    const store = await openStore(backend, { ...processEnv, ...credentials });
    const command = await PulumiCommand.get({ root: path.dirname(path.dirname(cli.path)), skipVersionCheck: true });
    const workspace = await LocalWorkspace.create({
      workDir,
      pulumiCommand: command,
      envVars: env,
      // `main` is the tool's folder so the engine resolves @pulumi/pulumi
      // from the tool's install, wherever the user runs homelab from.
      projectSettings: { name: PROJECT, runtime: "nodejs", main: TOOL_ROOT, description: "homelab services, one stack per service and environment (managed by the homelab CLI)" },
    });
    return new Engine({ root: o.root, envName: o.envName, backend, passphrase, workDir, cli, env, store, workspace, command });
  }

  /** Every stack of the project in the backend (all environments). */
  async listAllStacks(): Promise<StackInfo[]> {
    if (this.store !== undefined && (await backendHasNoStacks(this.store))) {
      // A PostgreSQL backend Pulumi never opened has no table yet; the first
      // open makes it, and first opens at once (a deploy creating several
      // stacks) race: 3.274.1 checks to_regclass, then CREATE TABLE IF NOT
      // EXISTS (diy/postgres/bucket.go), which PostgreSQL does not make safe
      // against a concurrent one ("duplicate key value violates unique
      // constraint pg_type_typname_nsp_index"). One open now, alone.
      if (this.store.unopened !== undefined && (await this.store.unopened())) await this.workspace.listStacks();
      // A backend nothing was ever deployed to: no CLI start needed to say so.
      this.known = new Set();
      return [];
    }
    const list = await this.workspace.listStacks();
    const out: StackInfo[] = [];
    for (const s of list) {
      const parsed = parseStackName(s.name);
      if (!parsed) continue;
      out.push({
        name: s.name.slice(s.name.lastIndexOf("/") + 1),
        ...parsed,
        lastUpdate: s.lastUpdate ? new Date(s.lastUpdate) : undefined,
        updateInProgress: s.updateInProgress === true,
        resourceCount: s.resourceCount,
      });
    }
    this.known = new Set(out.map((s) => s.name));
    return out;
  }

  /** The stacks of this engine's environment. */
  async listStacks(): Promise<StackInfo[]> {
    return (await this.listAllStacks()).filter((s) => s.env === this.envName);
  }

  /** Whether a stack exists (from the last listing, listing once if needed). */
  async hasStack(name: string): Promise<boolean> {
    if (!this.known) {
      // Services deployed at once ask together: one listing answers them all.
      this.listing ??= this.listAllStacks().finally(() => {
        this.listing = undefined;
      });
      await this.listing;
    }
    return this.known?.has(name) ?? false;
  }

  /** Creates the stack when it does not exist yet. */
  async ensureStack(name: string): Promise<void> {
    if (await this.hasStack(name)) return;
    try {
      await this.workspace.createStack(name);
    } catch (e) {
      // Another run created it in the meantime: fine.
      if (!(e instanceof StackAlreadyExistsError)) throw e;
    }
    this.known?.add(name);
  }

  /** A stack's state; undefined when it has none. */
  async readState(name: string): Promise<StackState | undefined> {
    if (this.store !== undefined) return readBackendState(this.store, name);
    if (!(await this.hasStack(name))) return undefined;
    return parseDeployment(await this.workspace.exportStack(name));
  }

  /**
   * Resolves the operations a killed run left pending, so the next update
   * starts clean: creations whose resource exists after all (found by
   * `locate`) are adopted into the state, the rest are dropped.
   */
  async resolvePendingOperations(name: string, state: StackState, locate: (op: PendingOperation) => FoundResource | undefined): Promise<{ adopted: AdoptedResource[]; dropped: PendingOperation[] }> {
    const r = resolvePendingOperations(state.deployment, locate);
    await this.importDeployment(name, r.deployment);
    return { adopted: r.adopted, dropped: r.dropped };
  }

  /** A stack's deployment as `pulumi stack export` gives it (secrets in it stay encrypted). */
  async exportDeployment(name: string): Promise<Deployment> {
    return this.workspace.exportStack(name);
  }

  /**
   * Replaces a stack's state with a deployment (`pulumi stack import`, which
   * takes the stack's lock and needs the passphrase its secrets were
   * encrypted with); the stack must exist.
   */
  async importDeployment(name: string, deployment: Deployment): Promise<void> {
    try {
      await this.workspace.importStack(name, deployment);
    } catch (e) {
      throw runFailure(name, e);
    }
  }

  /** Whether homelab reads the backend's locks itself (`locks` is then the truth, not just "none known"). */
  get readsLocks(): boolean {
    return this.store !== undefined;
  }

  /** The locks held on a stack (backends homelab reads itself; empty elsewhere). */
  async locks(name: string): Promise<StackLock[]> {
    return this.store !== undefined ? readLocks(this.store, name) : [];
  }

  /** Removes one lock read by `locks` (only that one: a lock taken since stays). */
  async removeLock(lock: StackLock): Promise<void> {
    if (this.store === undefined) throw new Error(`homelab does not read the locks of ${this.backend.display} itself`);
    await removeLock(this.store, lock);
  }

  /** Previews an update of a stack with a program. */
  async preview(name: string, program: PulumiFn, opts: RunOptions = {}): Promise<RunResult> {
    const stack = boundStack(name, this.workspace);
    return this.run(name, opts, await loadChangeDescriber(), (onEvent, io) => stack.preview({ program, onEvent, refresh: opts.refresh === true, color: "never", ...io }));
  }

  /** Applies a program to a stack. */
  async up(name: string, program: PulumiFn, opts: RunOptions = {}): Promise<RunResult> {
    const stack = boundStack(name, this.workspace);
    return this.run(name, opts, await loadChangeDescriber(), (onEvent, io) => stack.up({ program, onEvent, refresh: opts.refresh === true, color: "never", ...io }));
  }

  /** Previews or runs the deletion of every resource of a stack; `remove` also deletes the stack afterwards. */
  async destroy(name: string, opts: RunOptions & { previewOnly?: boolean; remove?: boolean } = {}): Promise<RunResult> {
    // destroy takes its program from the workspace; it never runs it (no --run-program).
    const ws = await LocalWorkspace.create({ workDir: this.workDir, pulumiCommand: this.command, envVars: this.env, program: () => Promise.resolve({}) });
    const stack = boundStack(name, ws);
    const result = await this.run(name, opts, undefined, (onEvent, io) =>
      opts.previewOnly
        ? stack.previewDestroy({ onEvent, refresh: opts.refresh === true, color: "never", ...io })
        : stack.destroy({ onEvent, refresh: opts.refresh === true, remove: opts.remove === true, color: "never", ...io }),
    );
    // The stack is gone: a later deploy on this engine (the monitor's recreate) must create it again.
    if (!opts.previewOnly && opts.remove === true) this.known?.delete(name);
    return result;
  }

  /** Deletes a stack that has no resources (its history and settings too). */
  async removeStack(name: string): Promise<void> {
    await this.workspace.removeStack(name);
    this.known?.delete(name);
  }

  /** Sets fields of one resource in a stack's state (inputs and outputs alike); see withResourceFields. */
  async patchResource(name: string, urn: string, fields: Readonly<Record<string, unknown>>): Promise<void> {
    const state = await this.readState(name);
    if (!state) throw new Error(`stack ${name} has no state to change`);
    await this.importDeployment(name, withResourceFields(state.deployment, urn, fields));
  }

  /** Refreshes a stack: every resource read back from what runs (after a rollback, say), the state written from it. */
  async refresh(name: string, opts: RunOptions = {}): Promise<RunResult> {
    const stack = boundStack(name, this.workspace);
    return this.run(name, opts, undefined, (onEvent, io) => stack.refresh({ onEvent, color: "never", ...io }));
  }

  /**
   * Sets variables the provider plugin reads in the runs that follow (`HOMELAB_DEPLOY_ID`,
   * `HOMELAB_DELETE_DATA`); undefined removes one. The plugin is started per run, so each
   * run sees the values set before it.
   */
  setRunVariables(vars: Readonly<Record<string, string | undefined>>): void {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) {
        delete this.env[k];
        delete this.workspace.envVars[k];
      } else {
        this.env[k] = v;
        this.workspace.envVars[k] = v;
      }
    }
  }

  /** Runs `pulumi cancel` on a stack: for a self-managed backend, this removes all its locks. */
  async cancel(name: string): Promise<void> {
    await boundStack(name, this.workspace).cancel();
  }

  private async run(
    name: string,
    opts: RunOptions,
    describe: ChangeDescriber | undefined,
    go: (onEvent: (e: EngineEvent) => void, io: { onOutput: (s: string) => void; signal: AbortSignal }) => Promise<unknown>,
  ): Promise<RunResult> {
    const started = Date.now();
    const tracker = new ChangeTracker({ ...(opts.onStep ? { onStep: opts.onStep } : {}), ...(opts.onDiagnostic ? { onDiagnostic: opts.onDiagnostic } : {}), ...(describe ? { describe } : {}) });
    const onEvent = (e: EngineEvent): void => {
      tracker.handle(e);
      opts.onEvent?.(e);
    };
    // Ctrl-C on a terminal reaches the CLI too (same process group), and a
    // second SIGINT would make it quit at once, leaving operations pending.
    // So the interruption is forwarded only when the CLI has not said it is
    // cancelling already (a signal sent to homelab alone, e.g. by a CI runner).
    let cliCancelling = false;
    const forward = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      timer = setTimeout(() => {
        if (!cliCancelling) forward.abort();
      }, INTERRUPT_GRACE_MS);
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    const onOutput = (text: string): void => {
      if (cliIsCancelling(text)) cliCancelling = true;
      opts.onOutput?.(text);
    };
    try {
      await go(onEvent, { onOutput, signal: forward.signal });
    } catch (e) {
      throw runFailure(name, e, { changes: tracker.changes(), diagnostics: tracker.diagnostics(), cancelled: tracker.cancelled, aborted: opts.signal?.aborted === true });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
    return { changes: tracker.changes(), diagnostics: tracker.diagnostics(), durationMs: Date.now() - started };
  }
}

/**
 * The EngineRunError for a failed Pulumi CLI command on stack `name`: locked
 * (with who holds the lock), cancelled, or failed with the first line that
 * says why; `run` carries what an update's events told before it failed.
 */
function runFailure(name: string, e: unknown, run: { changes: ResourceChange[]; diagnostics: Diagnostic[]; cancelled: boolean; aborted: boolean } = { changes: [], diagnostics: [], cancelled: false, aborted: false }): EngineRunError {
  const stderr = e instanceof CommandError ? commandOutput(e, "stderr") : "";
  const stdout = e instanceof CommandError ? commandOutput(e, "stdout") : "";
  const lines = errorLines(stderr, stdout);
  const { changes, diagnostics } = run;
  const lock = e instanceof ConcurrentUpdateError || saysLocked(stderr) ? parseLockError(stderr) : undefined;
  if (lock) {
    return new EngineRunError({ kind: "locked", stack: name, message: `stack ${name} is locked by another run`, detail: lines.join("\n"), changes, diagnostics, lock });
  }
  const diagErrors = diagnostics.filter((d) => d.severity === "error").map((d) => (d.id ? `${d.id}: ${d.message}` : d.message));
  // A resource that reported an error failed, whatever else was said: the
  // engine also sends its cancel event when an update ends, and a resource's
  // error may well say "interrupted" (apt's "dpkg was interrupted").
  if (run.aborted || (diagErrors.length === 0 && (run.cancelled || saysCancelled(stderr)))) {
    return new EngineRunError({ kind: "cancelled", stack: name, message: `stack ${name}: interrupted`, detail: lines.join("\n"), changes, diagnostics });
  }
  const message = diagErrors[0] ?? lines.find((l) => !isRunSummaryLine(l)) ?? lines[0] ?? (e instanceof Error ? e.message.split("\n")[0] ?? "failed" : String(e));
  return new EngineRunError({ kind: "failed", stack: name, message, detail: [...diagErrors, ...lines].join("\n"), changes, diagnostics });
}
