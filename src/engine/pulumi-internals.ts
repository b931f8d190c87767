/**
 * Everything homelab relies on that is not part of the Automation API's
 * public surface: the SDK's own internals, the file backend's layout on
 * disk, and texts the Pulumi CLI prints. Each item says why the public API
 * does not suffice and which version it was checked against, so an upgrade
 * of the pins (`@pulumi/pulumi` in package.json, the CLI in
 * scripts/pulumi-version) knows what to re-read:
 *   SDK: @pulumi/pulumi 3.270.0 (node_modules/@pulumi/pulumi/automation)
 *   CLI: pulumi 3.274.1 (github.com/pulumi/pulumi/pkg/v3, sdk/v3 at that tag)
 *
 * Not here, because they are public: the deployment format parsed in
 * state.ts (apitype.DeploymentV3, what `pulumi stack export` writes and
 * `import` takes), engine events (events.ts), environment variables
 * (settings.ts). The provider plugin's own reads of SDK internals live on
 * its side of the process boundary (provider/log.ts: the engine's gRPC stubs;
 * provider/inputs.ts: the wire markers for unknown and secret values).
 *
 * Light on purpose: no runtime import of @pulumi/pulumi (the one item that
 * needs a class gets it passed in), so state and lock readers can use this
 * module without loading Pulumi.
 */
import { gunzipSync } from "node:zlib";
import path from "node:path";
import type { LocalWorkspace, Stack } from "@pulumi/pulumi/automation/index.js";
import type { StackLock } from "./locks.ts";
import { FileStore } from "./backend-store.ts";
import type { BackendStore } from "./backend-store.ts";
import { parseDeployment } from "./state.ts";
import type { StackState } from "./state.ts";
import { PROJECT } from "./stacks.ts";

// ---- SDK ----

/**
 * A `Stack` bound to its name without `pulumi stack select`.
 *
 * Why not the public API: `Stack.create`/`select`/`createOrSelect` always run
 * a CLI command (a CLI start per stack, and `select` writes the shared
 * workspace file that parallel runs would race on). Every command the engine
 * runs names its stack with --stack, so a Stack bound to its name is enough.
 * `outputs()` and `info()` are what `up` and `destroy` call afterwards (three
 * more CLI starts); homelab reads results from the engine events instead.
 *
 * Checked against SDK 3.270.0: the constructor only sets `name`, `workspace`
 * and `ready` (the promise of its CLI command); `up` awaits `outputs()` and
 * `info()`, `destroy` awaits `info()`, `preview` neither.
 */
export function boundStack(stackClass: typeof Stack, name: string, workspace: LocalWorkspace): Stack {
  const stack = Object.create(stackClass.prototype) as Stack;
  Object.assign(stack, {
    name,
    workspace,
    ready: Promise.resolve(),
    outputs: () => Promise.resolve({}),
    info: () => Promise.resolve(undefined),
  });
  return stack;
}

/**
 * The stdout or stderr of a failed CLI command.
 *
 * Why not the public API: `CommandError` exposes only its message (the whole
 * result as one string); the CLI's output streams are kept apart in its
 * private `commandResult` (SDK 3.270.0: `{ stdout, stderr, code, err }`).
 */
export function commandOutput(e: Error, which: "stdout" | "stderr"): string {
  const result: unknown = Reflect.get(e, "commandResult");
  const text: unknown = result !== null && typeof result === "object" ? Reflect.get(result, which) : undefined;
  return typeof text === "string" ? text : "";
}

// ---- CLI output ----

/**
 * Whether a line of the CLI's output says it received an interrupt and is
 * cancelling (so a second one, which would make it quit at once, must not be
 * sent). No engine event says so. CLI 3.274.1 prints "^C received;
 * cancelling. If you would like to terminate immediately, press ^C again."
 * (pkg/backend/cancellation_scope.go).
 */
export function cliIsCancelling(text: string): boolean {
  return text.includes("received; cancelling");
}

/**
 * The error lines of a failed CLI run: the CLI prints each error as `error: ...`
 * (sdk/go/common/diag, 3.274.1); the Automation API only gives the whole text. Pure.
 */
export function errorLines(stderr: string, stdout = ""): string[] {
  const lines = `${stderr}\n${stdout}`.split("\n").map((l) => l.trimEnd());
  const errors = lines.filter((l) => /^\s*error: /.test(l)).map((l) => l.replace(/^\s*error: /, ""));
  return [...new Set(errors)];
}

/** The summary line the CLI ends a failed run with, which says nothing more than the lines before it (3.274.1). */
export function isRunSummaryLine(line: string): boolean {
  return /^update failed$|^preview failed$/.test(line);
}

/**
 * Whether the CLI's stderr says the stack is locked. The SDK's
 * ConcurrentUpdateError matches only some forms; the file backend says "the
 * stack is currently locked by N lock(s)" (pkg/backend/diy/lock.go, 3.274.1).
 */
export function saysLocked(stderr: string): boolean {
  return /currently locked/.test(stderr);
}

/**
 * Whether the CLI's stderr says the run was cancelled, when no engine event
 * did. 3.274.1 says "operation cancelled" (pkg/backend/backenderr); "update
 * cancelled" is its answer to a declined prompt, which the Automation API
 * never shows (it always passes --yes).
 */
export function saysCancelled(stderr: string): boolean {
  return /update canceled|operation cancell?ed|interrupted/i.test(stderr);
}

/**
 * The lock owner in the file backend's "currently locked" error: one line per
 * lock, `<url of the lock file>: created by USER@HOST (pid N) at TIME`
 * (pkg/backend/diy/lock.go, 3.274.1). The SDK's ConcurrentUpdateError carries
 * only the whole text. Pure.
 */
export function parseLockError(text: string): StackLock | undefined {
  if (!/currently locked|another update is currently in progress|Conflict/i.test(text)) return undefined;
  const m = /created by ([^@\s]+)@(\S+) \(pid (\d+)\) at (\S+)/.exec(text);
  if (!m) return { key: undefined, location: undefined, pid: undefined, username: undefined, hostname: undefined, since: undefined };
  // The lock's URL comes first: a file://, or the backend's URL with the key as its path (credentials masked by Pulumi).
  const url = /(\S+): created by /.exec(text)?.[1];
  const key = url !== undefined ? /(\.pulumi\/locks\/[^?\s]+?\.json)/.exec(url)?.[1] : undefined;
  const location = url?.startsWith("file://") ? decodeURIComponent(url.slice("file://".length).split("?")[0] ?? "") : url;
  return { key, location, username: m[1], hostname: m[2], pid: Number(m[3]), since: new Date(m[4] ?? "") };
}

/**
 * Whether an engine diagnostic is the notice that a plugin was found on PATH
 * ("using pulumi-resource-homelab from $PATH at ...", sdk/go/common/workspace/plugins.go,
 * 3.274.1): homelab's plugin is ambient by design, so it comes on every run. Pure.
 */
export function isAmbientPluginNotice(message: string): boolean {
  return /^using pulumi-resource-[\w-]+ from \$PATH/.test(message.trim());
}

/** Strips the CLI's colour markup (`<{%reset%}>`, sdk/go/common/diag/colors, 3.274.1), which diagnostics carry even with color "never". Pure. */
export function stripColorMarkup(s: string): string {
  return s.replace(/<\{%[a-z]*%\}>/gi, "");
}

// ---- a self-managed backend's layout ----
// Reading it straight from the backend's store (a folder, a PostgreSQL table,
// an S3 bucket: backend-store.ts) saves a CLI start per stack and per command
// (`pulumi stack export`, `pulumi stack ls`); the CLI has no command that
// shows who holds a lock. All of it is pkg/backend/diy at 3.274.1, below the
// bookkeeping folder `.pulumi`, for projects in the project-scoped layout;
// every DIY backend uses the same keys (a postgres:// or s3:// URL's path is
// a prefix the store applies).

/** Whether a backend holds no stack at all (nothing under `.pulumi/stacks/`: no CLI start needed to say so). */
export async function backendHasNoStacks(store: BackendStore): Promise<boolean> {
  return (await store.list(".pulumi/stacks/")).length === 0;
}

/** The key of a stack's state: `.pulumi/stacks/<project>/<stack>.json` (diy/store.go). */
function stackKey(stack: string): string {
  return `.pulumi/stacks/${PROJECT}/${stack}.json`;
}

/**
 * A stack's state read from a backend's store; undefined when it has none.
 * The object holds a CheckpointV3 (`{version, checkpoint: {stack, config,
 * latest}}`); `latest` is the deployment `stack export` would give. With
 * PULUMI_DIY_BACKEND_GZIP the CLI writes `<stack>.json.gz` instead. (3.274.1
 * also knows `.json.zst`, written with PULUMI_DIY_BACKEND_ZSTD, and reads the
 * newest of the three; homelab reads `.json`, else `.json.gz`.)
 */
export async function readBackendState(store: BackendStore, stack: string): Promise<StackState | undefined> {
  const key = stackKey(stack);
  let bytes = await store.read(key);
  if (bytes === undefined) {
    const zipped = await store.read(`${key}.gz`);
    if (zipped === undefined) return undefined;
    bytes = gunzipSync(zipped);
  }
  const checkpoint = asRecord(asRecord(JSON.parse(bytes.toString("utf8")))["checkpoint"]);
  return parseDeployment(asRecord(checkpoint["latest"]));
}

/** A stack's state read from a file backend's folder. */
export function readFileBackendState(backendDir: string, stack: string): Promise<StackState | undefined> {
  return readBackendState(new FileStore(backendDir), stack);
}

/** The key prefix of a stack's locks: `.pulumi/locks/<org>/<project>/<stack>/` (diy/lock.go; a DIY backend's org is `organization`). */
function lockPrefix(stack: string): string {
  return `.pulumi/locks/organization/${PROJECT}/${stack}/`;
}

/** The folder of a stack's lock files in a file backend. */
export function lockDir(backendDir: string, stack: string): string {
  return path.join(backendDir, ...lockPrefix(stack).split("/"));
}

/**
 * The locks of a stack: `<lock id>.json` holding `{pid, username, hostname,
 * timestamp}` of the `pulumi` process that took it (diy/lock.go, 3.274.1); a
 * crash (kill -9) leaves them behind. Empty when there are none.
 */
export async function readLocks(store: BackendStore, stack: string): Promise<StackLock[]> {
  const out: StackLock[] = [];
  for (const key of (await store.list(lockPrefix(stack))).filter((k) => k.endsWith(".json"))) {
    let data: Record<string, unknown> = {};
    try {
      const bytes = await store.read(key);
      // Released between the listing and the read: not a lock any more.
      if (bytes === undefined) continue;
      data = asRecord(JSON.parse(bytes.toString("utf8")));
    } catch {
      // A half-written or foreign object is still a lock; its owner is unknown.
    }
    out.push({
      key,
      location: store.where(key),
      pid: typeof data["pid"] === "number" ? data["pid"] : undefined,
      username: typeof data["username"] === "string" ? data["username"] : undefined,
      hostname: typeof data["hostname"] === "string" ? data["hostname"] : undefined,
      since: typeof data["timestamp"] === "string" ? new Date(data["timestamp"]) : undefined,
    });
  }
  return out;
}

/**
 * Removes one lock (and, in a folder, the `<file>.attrs` metadata gocloud.dev's
 * fileblob writes next to it). `pulumi cancel` would remove every lock of the
 * stack, also one a live run took since homelab checked.
 */
export async function removeLock(store: BackendStore, lock: StackLock): Promise<void> {
  if (lock.key === undefined) return;
  await store.remove(lock.key);
}

function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
