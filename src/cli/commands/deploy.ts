import { InvalidArgumentError } from "@commander-js/extra-typings";
import type { Command } from "@commander-js/extra-typings";
import type { Repository } from "../../config/repository.ts";
import type { DeployReport, ServiceOutcome } from "../../engine/deploy.ts";
import type { Engine } from "../../engine/engine.ts";
import type { FoundResource, PendingOperation } from "../../engine/state.ts";
import type { Inventory } from "../../proxmox/inventory.ts";
import { CONTAINER_TYPE } from "../../provider/tokens.ts";
import type { Progress } from "../render/progress.ts";
import { makeContext, requireEnvName, type CliContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { printDiagnostics } from "../output.ts";

/** Options of `homelab deploy`. */
export interface DeployFlags {
  all?: true;
  dryRun?: true;
  yes?: true;
  ci?: true;
  allowDelete?: true;
  summary?: string;
  refresh?: true;
  /** False with --no-skip-unchanged. */
  skipUnchanged?: boolean;
  concurrency: number;
}

/** Whether CI mode is on: `--ci`, or `CI=true` as CI services set it. */
export function ciMode(flag: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return flag === true || /^(1|true|yes)$/i.test(env["CI"] ?? "");
}

/** The exit code of a deploy: interrupted 130 > failed 1 > blocked 3 > (CI) changes 4 > 0. Pure. */
export function deployExitCode(outcomes: readonly Pick<ServiceOutcome, "status">[], o: { ci: boolean; interrupted: boolean }): number {
  if (o.interrupted) return EXIT.interrupted;
  // A skipped service adds nothing: the failure or refusal that caused it decides.
  if (outcomes.some((x) => x.status === "failed" || x.status === "cancelled")) return EXIT.failed;
  if (outcomes.some((x) => x.status === "blocked")) return EXIT.blocked;
  if (o.ci && outcomes.some((x) => x.status === "applied" || x.status === "pending")) return EXIT.changes;
  return EXIT.ok;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError("an integer from 1 to 64");
  return n;
}

/** `homelab deploy SERVICE... | --all`: preview, guard, apply. */
export function registerDeploy(program: Command<[], GlobalOptions>): void {
  program
    .command("deploy")
    .description("deploy services (preview with --dry-run): one Pulumi stack per service, dependencies first")
    .argument("[services...]", "the services to deploy")
    .option("--all", "every service, in dependency order")
    .option("--dry-run", "preview only: what would be created, updated, replaced or deleted, and why; where each container goes")
    .option("-y, --yes", "apply without asking, and (outside CI) without a separate preview: changes are listed as they are made; on a terminal without it, deploy previews and asks")
    .option("--ci", "CI mode (also CI=true): never ask; refuse deletions and replacements without --allow-delete; in production, refuse resources without protect: true; exit 4 when something changed")
    .option("--allow-delete", "CI mode: let the deploy delete or replace resources")
    .option("--summary <file>", "write a Markdown summary of the changes (for a pull-request comment)")
    .option("--refresh", "read the real state of every resource first, so drift shows up and is corrected")
    .option("--concurrency <n>", "services deployed at once (default 4)", positiveInt, 4)
    .option("--no-skip-unchanged", "run the engine's preview even for services whose deployed state matches their plan exactly (normally they are reported unchanged straight from the state)")
    .addHelpText("after", "\nExamples:\n  homelab deploy peach --dry-run\n  homelab deploy --all --env sandbox\n  homelab deploy --all --dry-run --ci --summary plan.md")
    .action(async (services, opts, cmd) => {
      const ctx = makeContext(cmd.optsWithGlobals());
      if (opts.all && services.length > 0) {
        ctx.stderr("homelab: give service names or --all, not both\n");
        process.exitCode = EXIT.usage;
        return;
      }
      if (!opts.all && services.length === 0) {
        ctx.stderr("homelab: which services? name them (homelab deploy peach) or use --all\n");
        process.exitCode = EXIT.usage;
        return;
      }
      process.exitCode = await runDeploy(ctx, services, opts);
    });
}

/** Runs a deploy for the CLI; returns the exit code. */
export async function runDeploy(ctx: CliContext, names: readonly string[], opts: DeployFlags, processEnv: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = Date.now();
  const ci = ciMode(opts.ci, processEnv);
  const dryRun = opts.dryRun === true;
  const { loadRepository } = await import("../../config/repository.ts");
  const { resolveSecrets } = await import("../../config/secrets.ts");
  const envName = requireEnvName(ctx);
  if (!envName) return EXIT.failed;
  const repo = loadRepository({ root: ctx.root, envName, ...(opts.all ? {} : { only: names }) });
  const env = repo.env;
  if (!repo.envFromFile) {
    printDiagnostics(repo.diagnostics.filter((d) => d.file === env.file || !d.file.includes("/services/")), ctx.root, ctx.err, ctx.stderr);
    ctx.stderr(ctx.err.red(`homelab: environment ${ctx.envName} could not be loaded; fix the problems above (homelab validate --env ${ctx.envName})`) + "\n");
    return EXIT.failed;
  }
  const selected = opts.all ? repo.loads.map((l) => l.name) : [...names];
  const invalid: ServiceOutcome[] = [];
  const { failedOutcome } = await import("../../engine/deploy.ts");
  const errors = repo.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0) printDiagnostics(errors, ctx.root, ctx.err, ctx.stderr);
  for (const name of selected) {
    const s = repo.services.get(name);
    if (!s) {
      invalid.push(failedOutcome(name, env.name, "the service's configuration is not valid (see above)", `homelab validate ${name}`));
      continue;
    }
    const secrets = resolveSecrets(name, s.dir, env, processEnv);
    const missing = secrets.diagnostics.filter((d) => d.severity === "error");
    if (missing.length > 0) {
      printDiagnostics(missing, ctx.root, ctx.err, ctx.stderr);
      invalid.push(failedOutcome(name, env.name, `missing secrets: ${secrets.statuses.filter((x) => x.provided === undefined).map((x) => x.key).join(", ")}`, "see above"));
    }
  }
  const deployable = selected.filter((n) => !invalid.some((x) => x.service === n));

  const { Progress } = await import("../render/progress.ts");
  const live = !ci && !ctx.verbose && process.stdout.isTTY && processEnv["TERM"] !== "dumb";
  const progress = new Progress({ write: ctx.stdout, style: ctx.out, live, verbose: ctx.verbose });
  const note = (text: string): void => progress.line(ctx.out.dim(text));

  let report: DeployReport = { outcomes: [], interrupted: false, declined: false };
  const abort = new AbortController();
  const restoreSigint = takeSigint(() => {
    note("interrupting: running operations finish cleanly first (Ctrl-C again to quit at once)");
    abort.abort();
  });
  try {
    if (deployable.length > 0) {
      const run = await prepareAndDeploy(ctx, { repo, deployable, opts, ci, dryRun, processEnv, progress, note, signal: abort.signal });
      if (typeof run === "number") return run;
      report = run;
    }
  } finally {
    restoreSigint();
    progress.close();
  }
  const outcomes = [...invalid, ...report.outcomes];
  const code = deployExitCode(outcomes, { ci, interrupted: report.interrupted });
  const { summaryText } = await import("../render/changes.ts");
  ctx.stdout("\n" + summaryText(outcomes, ctx.out, { envName: env.name, dryRun, durationMs: Date.now() - started }) + "\n");
  if (report.declined) ctx.stdout("nothing applied\n");
  if (opts.summary !== undefined) {
    const { markdownSummary } = await import("../render/markdown.ts");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(opts.summary, markdownSummary(outcomes, { envName: env.name, dryRun, ci, exitCode: code }));
  }
  return code;
}

interface PrepareInput {
  repo: Repository;
  deployable: string[];
  opts: DeployFlags;
  ci: boolean;
  dryRun: boolean;
  processEnv: NodeJS.ProcessEnv;
  progress: Progress;
  note: (text: string) => void;
  signal: AbortSignal;
}

async function prepareAndDeploy(ctx: CliContext, p: PrepareInput): Promise<DeployReport | number> {
  const { repo, progress, note } = p;
  const env = repo.env;
  const { connectProxmox, isRequestLogLine } = await import("../../proxmox/connect.ts");
  const { EngineSetupError } = await import("../../engine/settings.ts");
  const { ensureSshKey } = await import("../../provision/ssh-key.ts");
  const { planService, serviceWaves } = await import("../../plan/plan.ts");
  let inventory: Inventory;
  try {
    const client = connectProxmox(env, { processEnv: p.processEnv, ci: p.ci, logger: (l) => (ctx.verbose ? note(`proxmox: ${l}`) : isRequestLogLine(l) ? undefined : ctx.stderr(`homelab: ${l}\n`)) });
    try {
      inventory = await client.loadInventory();
    } finally {
      await client.close();
    }
  } catch (e) {
    ctx.stderr(ctx.err.red(`homelab: cannot read the cluster of environment ${env.name} (${env.proxmox?.endpoint ?? "no endpoint"}): ${e instanceof Error ? e.message : String(e)}`) + "\n");
    const hint = e instanceof EngineSetupError ? e.hint : (e as { hint?: string }).hint;
    if (hint) ctx.stderr(ctx.err.dim(`  hint: ${hint}`) + "\n");
    return EXIT.failed;
  }
  const key = ensureSshKey(ctx.root, env.name);
  if (key.generated) note(`generated the SSH key of environment ${env.name}: ${key.privateKeyFile} (provisioning uses it to reach inside containers)`);
  const { Engine } = await import("../../engine/engine.ts");
  let engine: Engine;
  try {
    engine = await Engine.open({ root: ctx.root, envName: env.name, processEnv: p.processEnv, ci: p.ci, verbose: ctx.verbose });
  } catch (e) {
    ctx.stderr(ctx.err.red(`homelab: ${e instanceof Error ? e.message : String(e)}`) + "\n");
    if (e instanceof EngineSetupError && e.hint) ctx.stderr(ctx.err.dim(`  hint: ${e.hint}`) + "\n");
    return EXIT.failed;
  }
  if (engine.passphrase.origin === "generated") {
    note(`generated the passphrase that encrypts secrets in the state: ${engine.passphrase.file ?? ""} (mode 0600). Back it up: without it those secrets cannot be read. To use your own, set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE.`);
  }
  const reservations = new Map<string, number>();
  const order = serviceWaves(repo.services).flat().filter((n) => p.deployable.includes(n));
  for (const n of p.deployable) if (!order.includes(n)) order.push(n);
  const { deploy } = await import("../../engine/deploy.ts");
  const { toolFingerprint } = await import("../../engine/fingerprint.ts");
  const { servicePreviewText, countsText, errorLines } = await import("../render/changes.ts");
  const o = ctx.out;
  const explain = p.dryRun || ctx.verbose;
  const interactive = !p.dryRun && !p.ci && p.opts.yes !== true && process.stdin.isTTY && process.stdout.isTTY;
  progress.line(`${o.bold(p.dryRun ? "Preview" : "Deploy")} of ${order.length} service(s) to ${o.cyan(env.name)}${env.production ? o.yellow(" (production)") : ""}${p.ci ? o.dim(" — CI mode") : ""}: ${order.join(", ")}`);
  return deploy({
    engine,
    env,
    services: repo.services,
    selected: p.deployable,
    order,
    planner: (service, current) => planService({ service, env, inventory, current, sshPublicKey: key.publicKey, reservations }),
    locatePending: (service, op, taken) => locateContainer(inventory, service, op, taken),
    dryRun: p.dryRun,
    ci: p.ci,
    allowDelete: p.opts.allowDelete === true,
    refresh: p.opts.refresh === true,
    concurrency: p.opts.concurrency,
    fingerprint: toolFingerprint(),
    skipUnchanged: p.opts.skipUnchanged !== false,
    applyWithoutPreview: p.opts.yes === true,
    signal: p.signal,
    ...(interactive ? { confirm: () => askYesNo(`Apply these changes to ${env.name}?`) } : {}),
    reporter: {
      note,
      phase: (ph) => {
        if (ph === "apply") progress.line(`\n${o.bold("Applying")}`);
      },
      serviceStart: (s, ph) => progress.start(`${s}/${ph}`, `${o.bold(s)}  ${ph === "preview" ? "previewing" : "deploying"}`),
      step: (s, st) => progress.step(s, st),
      diagnostic: (s, d) => progress.diagnostic(s, d),
      serviceDone: (out, ph) => {
        if (ph === "preview") {
          progress.finish(`${out.service}/preview`, servicePreviewText(out, o, { explain, verbose: ctx.verbose }));
          return;
        }
        const took = o.dim(`(${(out.durationMs / 1000).toFixed(1)} s)`);
        const text =
          out.status === "applied"
            ? `${o.bold(out.service)}  ${o.green("deployed")}: ${countsText(out.applied ?? [], true)} ${took}`
            : out.status === "skipped"
              ? [`${o.bold(out.service)}  ${o.yellow("skipped")}`, ...errorLines(out, o)].join("\n")
              : [`${o.bold(out.service)}  ${out.status === "cancelled" ? o.yellow("interrupted") : o.red("FAILED")} ${took}`, ...errorLines(out, o)].join("\n");
        progress.finish(`${out.service}/apply`, text);
      },
    },
  });
}

/**
 * The container a killed run's pending creation made, by its hostname and
 * homelab tags on the planned node; undefined unless exactly one matches.
 * It is complete when it runs and no task holds it.
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

/** Asks a yes/no question on the terminal; anything but y/yes is no. */
async function askYesNo(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/**
 * Handles Ctrl-C for the duration of a deploy: the first asks for a clean
 * stop, the second quits at once. Returns the function that restores the
 * previous handlers.
 */
export function takeSigint(onFirst: () => void): () => void {
  const saved = process.listeners("SIGINT");
  process.removeAllListeners("SIGINT");
  let count = 0;
  const handler = (): void => {
    count++;
    if (count === 1) onFirst();
    else process.exit(EXIT.interrupted);
  };
  process.on("SIGINT", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    for (const l of saved) process.on("SIGINT", l);
  };
}
