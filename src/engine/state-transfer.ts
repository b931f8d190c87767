/**
 * `homelab state export` / `import`: an environment's stacks moved from one
 * backend to another (the repository's `.homelab/state` to a PostgreSQL
 * database or an S3 bucket) without deploying anything. Export is `pulumi
 * stack export` of each stack: the deployment with its secrets still
 * encrypted, and the salt they were encrypted with; import is `pulumi stack
 * import` into the same stack name on the target, which needs the same
 * passphrase. Resources are neither created nor touched: the next deploy
 * finds them as deployed. The update history stays behind.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Deployment } from "@pulumi/pulumi/automation/index.js";
import type { Engine } from "./engine.ts";
import { EngineRunError } from "./engine.ts";
import { describeLock, lockOwner } from "./locks.ts";
import { parseDeployment } from "./state.ts";
import type { StackState } from "./state.ts";
import { stackName } from "./stacks.ts";

/** The format tag of an export file. */
const STATE_BUNDLE_FORMAT = "homelab-state/1";

/** What `homelab state export` writes: an environment's stacks as Pulumi exports them. */
export interface StateBundle {
  format: typeof STATE_BUNDLE_FORMAT;
  environment: string;
  exportedAt: string;
  /** The backend they were read from (without credentials). */
  from: string;
  stacks: { stack: string; service: string; resources: number; deployment: Deployment }[];
}

/** Exports the stacks of an environment (all, or those of `only`); `missing` names the services asked for that have none. */
export async function exportState(engine: Engine, envName: string, only?: readonly string[]): Promise<{ bundle: StateBundle; missing: string[] }> {
  const stacks = (await engine.listStacks()).filter((s) => only === undefined || only.length === 0 || only.includes(s.service));
  const out: StateBundle["stacks"] = [];
  for (const s of stacks.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const deployment = await engine.exportDeployment(s.name);
    out.push({ stack: s.name, service: s.service, resources: parseDeployment(deployment).resources.length, deployment });
  }
  const missing = (only ?? []).filter((n) => !stacks.some((s) => s.service === n));
  return { bundle: { format: STATE_BUNDLE_FORMAT, environment: envName, exportedAt: new Date().toISOString(), from: engine.backend.display, stacks: out }, missing };
}

/** A problem with an export file: what is wrong and what to do. */
class StateFileError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "StateFileError";
    this.hint = hint;
  }
}

/** Writes an export file (mode 0600: it holds the deployments, their secrets encrypted); never over an existing file unless `overwrite`. */
export function writeStateBundle(file: string, bundle: StateBundle, overwrite: boolean): void {
  try {
    writeFileSync(file, JSON.stringify(bundle, null, 2) + "\n", { mode: 0o600, flag: overwrite ? "w" : "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new StateFileError(`${file} exists`, "name another file, or pass --force to replace it");
    throw e;
  }
}

/** Reads an export file, checking it is one. */
export function readStateBundle(file: string): StateBundle {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StateFileError(code !== undefined ? `cannot read ${file} (${code})` : `${file} is not JSON`, "give the file `homelab state export` wrote");
  }
  const b = data as Partial<StateBundle> | null;
  if (b === null || typeof b !== "object" || b.format !== STATE_BUNDLE_FORMAT || typeof b.environment !== "string" || !Array.isArray(b.stacks)) {
    throw new StateFileError(`${file} is not a homelab state export (format ${STATE_BUNDLE_FORMAT})`, "give the file `homelab state export` wrote");
  }
  for (const s of b.stacks as unknown[]) {
    const entry = s as Partial<StateBundle["stacks"][number]> | null;
    if (entry === null || typeof entry !== "object" || typeof entry.stack !== "string" || typeof entry.service !== "string" || entry.deployment === null || typeof entry.deployment !== "object") {
      throw new StateFileError(`${file}: a stack entry is damaged`, "export again");
    }
  }
  return b as StateBundle;
}

/** What importing one stack did. */
export interface ImportOutcome {
  stack: string;
  service: string;
  /** imported; unchanged (the target already records the same resources); refused (it records others, no --force); failed. */
  status: "imported" | "unchanged" | "refused" | "failed";
  resources: number;
  message: string;
  hint: string | undefined;
}

/** The resources a state records, by URN and provider id, in order. Pure. */
function recorded(state: StackState | undefined): string[] {
  return (state?.resources ?? []).map((r) => `${r.urn}\u0000${r.physicalId ?? ""}`).sort();
}

/**
 * Imports an export file's stacks (all, or those of `only`) into the
 * engine's backend. A stack the target already records with the same
 * resources is left as it is; one recording other resources is refused
 * unless `force` (its record is replaced: what only it recorded is no longer
 * managed, nothing is deleted).
 */
export async function importState(engine: Engine, envName: string, bundle: StateBundle, o: { only?: readonly string[]; force: boolean }): Promise<ImportOutcome[]> {
  if (bundle.environment !== envName) {
    throw new StateFileError(`the file holds environment ${bundle.environment}'s stacks, not ${envName}'s`, `import it with --env ${bundle.environment}`);
  }
  const out: ImportOutcome[] = [];
  for (const entry of bundle.stacks.filter((s) => o.only === undefined || o.only.length === 0 || o.only.includes(s.service))) {
    const base = { stack: entry.stack, service: entry.service, resources: entry.resources };
    if (entry.stack !== stackName(envName, entry.service)) {
      out.push({ ...base, status: "failed", message: `the entry of ${entry.service} names stack ${entry.stack}`, hint: "export again" });
      continue;
    }
    try {
      const existing = (await engine.hasStack(entry.stack)) ? await engine.readState(entry.stack) : undefined;
      const incoming = parseDeployment(entry.deployment);
      const have = recorded(existing);
      if (have.length > 0 && have.join("\n") === recorded(incoming).join("\n")) {
        out.push({ ...base, status: "unchanged", message: `${entry.stack} is already there with the same ${have.length} resource(s)`, hint: undefined });
        continue;
      }
      if (have.length > 0 && !o.force) {
        out.push({
          ...base,
          status: "refused",
          message: `${entry.stack} already records ${have.length} resource(s) in ${engine.backend.display}, not the same as the file's ${incoming.resources.length}`,
          hint: `check with \`homelab status ${entry.service}\`; --force replaces its record (what only it records is then no longer managed by homelab; nothing is deleted)`,
        });
        continue;
      }
      await engine.ensureStack(entry.stack);
      await engine.importDeployment(entry.stack, entry.deployment);
      out.push({ ...base, status: "imported", message: `${entry.stack}: ${entry.resources} resource(s) imported`, hint: undefined });
    } catch (e) {
      if (e instanceof EngineRunError && e.kind === "locked") {
        const owner = e.lock ? lockOwner(e.lock) : "unknown";
        out.push({ ...base, status: "failed", message: `${entry.stack} is locked by ${e.lock ? describeLock(e.lock, owner) : "another run"}`, hint: "import it once that run is done" });
        continue;
      }
      const message = e instanceof Error ? e.message : String(e);
      const hint = /incorrect passphrase/i.test(message)
        ? "its secrets were encrypted with another passphrase: use the exporting machine's (its .homelab/passphrase, or what PULUMI_CONFIG_PASSPHRASE_FILE named there)"
        : undefined;
      out.push({ ...base, status: "failed", message, hint });
    }
  }
  return out;
}
