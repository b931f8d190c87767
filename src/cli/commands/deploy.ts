import { InvalidArgumentError } from "@commander-js/extra-typings";
import type { Command } from "@commander-js/extra-typings";
import type { DeployReport, ServiceOutcome } from "../../engine/deploy.ts";
import type { AfterDeploy, SessionEvent, SessionReporter } from "../../session/session.ts";
import type { Progress } from "../render/progress.ts";
import { ciMode, makeContext, requireEnvName, type CliContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { printDiagnostics } from "../output.ts";
import { askYesNo, takeSigint } from "../terminal.ts";

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
async function runDeploy(ctx: CliContext, names: readonly string[], opts: DeployFlags, processEnv: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = Date.now();
  const ci = ciMode(opts.ci, processEnv);
  const dryRun = opts.dryRun === true;
  const envName = requireEnvName(ctx);
  if (!envName) return EXIT.failed;
  const { DeploySession } = await import("../../session/session.ts");
  const { Progress } = await import("../render/progress.ts");
  const live = !ci && !ctx.verbose && process.stdout.isTTY && processEnv["TERM"] !== "dumb";
  const progress = new Progress({ write: ctx.stdout, style: ctx.out, live, verbose: ctx.verbose });
  const note = (text: string): void => progress.line(ctx.out.dim(text));
  const session = new DeploySession({ root: ctx.root, envName, processEnv, ci, verbose: ctx.verbose, reporter: await deployReporter(ctx, { envName, progress, note, dryRun, ci }) });

  const loaded = await session.load(opts.all ? undefined : names);
  if (loaded.status === "environment-invalid") {
    printDiagnostics(loaded.diagnostics, ctx.root, ctx.err, ctx.stderr);
    ctx.stderr(ctx.err.red(`homelab: environment ${ctx.envName} could not be loaded; fix the problems above (homelab validate --env ${ctx.envName})`) + "\n");
    return EXIT.failed;
  }
  const env = loaded.repo.env;
  const selected = opts.all ? loaded.repo.loads.map((l) => l.name) : [...names];
  if (loaded.errors.length > 0) printDiagnostics(loaded.errors, ctx.root, ctx.err, ctx.stderr);
  const checked = await session.check(selected);
  for (const m of checked.missingSecrets) printDiagnostics(m.diagnostics, ctx.root, ctx.err, ctx.stderr);

  let report: DeployReport = { outcomes: [], interrupted: false, declined: false, statesBefore: new Map() };
  let after: AfterDeploy[] = [];
  const abort = new AbortController();
  const restoreSigint = takeSigint(() => {
    note("interrupting: running operations finish cleanly first (Ctrl-C again to quit at once)");
    abort.abort();
  });
  try {
    if (checked.deployable.length > 0) {
      const interactive = !dryRun && !ci && opts.yes !== true && process.stdin.isTTY && process.stdout.isTTY;
      const run = await session.deploy(checked.deployable, {
        dryRun,
        allowDelete: opts.allowDelete === true,
        refresh: opts.refresh === true,
        concurrency: opts.concurrency,
        skipUnchanged: opts.skipUnchanged !== false,
        applyWithoutPreview: opts.yes === true,
        signal: abort.signal,
        ...(interactive ? { confirm: () => askYesNo(`Apply these changes to ${env.name}?`) } : {}),
      });
      if (run.status === "setup-failed") {
        const f = run.failure;
        ctx.stderr(ctx.err.red(f.step === "cluster" ? `homelab: cannot read the cluster of environment ${env.name} (${env.proxmox?.endpoint ?? "no endpoint"}): ${f.message}` : `homelab: ${f.message}`) + "\n");
        if (f.hint) ctx.stderr(ctx.err.dim(`  hint: ${f.hint}`) + "\n");
        return EXIT.failed;
      }
      report = run.report;
      after = run.after;
    }
  } finally {
    restoreSigint();
    progress.close();
  }
  if (dryRun && report.outcomes.length > 0) {
    // For the monitor's status page and `homelab status`: the changes waiting to be applied.
    const { recordPreviews } = await import("../../status/previews.ts");
    await recordPreviews(ctx.root, env.name, report.outcomes).catch((e: unknown) => ctx.stderr(ctx.err.yellow(`homelab: could not record the preview: ${e instanceof Error ? e.message : String(e)}`) + "\n"));
  }
  const outcomes = [...checked.invalid, ...report.outcomes];
  for (const a of after) ctx.stdout(afterDeployText(a, ctx) + "\n");
  // A service left unhealthy, or rolled back, did not get deployed as asked.
  const unhealthy = after.some((a) => a.rollback !== undefined || a.verdict?.healthy === false);
  const code = Math.max(deployExitCode(outcomes, { ci, interrupted: report.interrupted }), unhealthy && !report.interrupted ? EXIT.failed : EXIT.ok);
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

/** The lines of one service's health gate and rollback. */
function afterDeployText(a: AfterDeploy, ctx: CliContext): string {
  const o = ctx.out;
  const lines: string[] = [];
  if (a.verdict?.healthy === true) lines.push(`${o.bold(a.service)}  ${o.green("healthy")}: ${a.verdict.checks} check(s) passed after the deploy`);
  else if (a.verdict?.healthy === false) lines.push(`${o.bold(a.service)}  ${o.red("UNHEALTHY")} after the deploy: ${a.verdict.check}: ${a.verdict.detail}`);
  const r = a.rollback;
  if (r) {
    const ok = r.steps.every((x) => x.ok);
    lines.push(`${o.bold(a.service)}  ${ok ? o.yellow("ROLLED BACK") : o.red("ROLLBACK INCOMPLETE")} because ${r.because}`);
    for (const step of r.steps) lines.push(`  ${step.ok ? o.green("✓") : o.red("✗")} ${step.resource}: ${step.message} ${o.dim(`(${(step.durationMs / 1000).toFixed(1)} s)`)}`);
    if (r.verdictAfter?.healthy === true) lines.push(`  ${o.green("healthy again")}: the service runs as before the deploy; the change is not applied — fix it and deploy again`);
    else if (r.verdictAfter?.healthy === false) lines.push(`  ${o.red("still unhealthy")} after the rollback: ${r.verdictAfter.check}: ${r.verdictAfter.detail}`);
    if (!r.refreshed && r.steps.some((x) => x.ok)) lines.push(`  ${o.yellow("the stack could not be refreshed")}: run homelab deploy ${a.service} --refresh`);
  } else if (a.verdict?.healthy === false) {
    lines.push(`  ${o.dim("this deploy took no snapshot or backup to roll back to (nothing destructive happened): fix the service and deploy again")}`);
  }
  return lines.join("\n");
}

/** How a deploy is shown: the session's notes and the header, each service's preview, live steps, each service's result. */
async function deployReporter(ctx: CliContext, p: { envName: string; progress: Progress; note: (text: string) => void; dryRun: boolean; ci: boolean }): Promise<SessionReporter> {
  const { servicePreviewText, countsText, errorLines } = await import("../render/changes.ts");
  const { progress, note } = p;
  const o = ctx.out;
  const explain = p.dryRun || ctx.verbose;
  return {
    event: (e: SessionEvent) => {
      switch (e.type) {
        case "ssh-key-generated":
          note(`generated the SSH key of environment ${p.envName}: ${e.file} (provisioning uses it to reach inside containers)`);
          return;
        case "passphrase-generated":
          note(`generated the passphrase that encrypts secrets in the state: ${e.file} (mode 0600). Back it up: without it those secrets cannot be read. To use your own, set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE.`);
          return;
        case "proxmox":
          // Request lines only with --verbose; warnings (TLS verification off) always.
          if (ctx.verbose) note(`proxmox: ${e.line}`);
          else if (!e.request) ctx.stderr(`homelab: ${e.line}\n`);
          return;
        case "base":
          progress.line(o.dim(e.message));
          return;
        case "health-gate":
          note(`${e.service}: running its ${e.checks} health check(s)`);
          return;
        case "rollback-start":
          progress.line(`${o.bold(e.service)}  ${o.yellow("rolling back")} (${e.points} container(s)) because ${e.because}`);
          return;
        case "deploy-start":
          progress.line(`${o.bold(p.dryRun ? "Preview" : "Deploy")} of ${e.order.length} service(s) to ${o.cyan(p.envName)}${e.production ? o.yellow(" (production)") : ""}${p.ci ? o.dim(" — CI mode") : ""}: ${e.order.join(", ")}`);
          return;
      }
    },
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
          : out.status === "unchanged"
            ? `${o.bold(out.service)}  ${o.dim("no changes")} ${took}`
            : out.status === "skipped"
            ? [`${o.bold(out.service)}  ${o.yellow("skipped")}`, ...errorLines(out, o)].join("\n")
            : [`${o.bold(out.service)}  ${out.status === "cancelled" ? o.yellow("interrupted") : o.red("FAILED")} ${took}`, ...errorLines(out, o)].join("\n");
      progress.finish(`${out.service}/apply`, text);
    },
  };
}
