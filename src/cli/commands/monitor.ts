import type { Command } from "@commander-js/extra-typings";
import type { Remediator } from "../../monitor/actions.ts";
import type { CheckFn, OnceReport } from "../../monitor/monitor.ts";
import type { Clock } from "../../monitor/clock.ts";
import type { TargetSource } from "../../monitor/targets.ts";
import type { StatusPage, StatusSources } from "../../monitor/web/index.ts";
import type { WebhookSender } from "../../monitor/webhook.ts";
import type { Engine } from "../../engine/engine.ts";
import type { DeploySession } from "../../session/session.ts";
import { ciMode, makeContext, requireEnvName, type CliContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { printDiagnostics } from "../output.ts";

/** Options of `homelab monitor`. */
export interface MonitorFlags {
  once?: true;
  json?: true;
  listen?: string;
}

/** What tests (and other callers) may put in place of the real thing. */
export interface MonitorDeps {
  processEnv?: NodeJS.ProcessEnv;
  clock?: Clock;
  targets?: TargetSource;
  remediator?: Remediator;
  runCheck?: CheckFn;
  /** Stops a long-running monitor (instead of SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Told the endpoint's URL once it listens. */
  onListening?: (url: string) => void;
  /** Pause between tries of a failing check in --once (default 1 s). */
  onceRetryDelayMs?: number;
  /** The status page's deployment and nodes (default: the engine's state, the Proxmox API). */
  statusSources?: StatusSources;
}

/** `homelab monitor [SERVICE...]`: health checks and auto-remediation. */
export function registerMonitor(program: Command<[], GlobalOptions>): void {
  program
    .command("monitor")
    .description("run services' health checks and, where auto_remediate is on, repair them: restart, then recreate (never a protected service); runs until stopped")
    .argument("[services...]", "only these services (default: every service with monitoring.health_checks)")
    .option("--once", "run every check once (a failing one up to its retries) and exit 1 if a service is unhealthy; repairs nothing (for CI after a deploy)")
    .option("--json", "print events as JSON lines")
    .option("--listen <addr:port>", "serve the status page at /, /healthz and /metrics on [ADDR:]PORT (default: homelab:monitor listen, else off; ADDR defaults to 127.0.0.1; any other address needs homelab:monitor token_file or token_env)")
    .addHelpText("after", "\nExamples:\n  homelab monitor --env prod\n  homelab monitor peach --once --env sandbox\n  homelab monitor --json --listen 127.0.0.1:9464")
    .action(async (services, opts, cmd) => {
      const ctx = makeContext(cmd.optsWithGlobals());
      process.exitCode = await runMonitor(ctx, services, opts);
    });
}

function oneLine(e: unknown): string {
  return e instanceof Error ? (e.message.split("\n")[0] ?? e.message) : String(e);
}

/** Runs the monitor for the CLI; returns the exit code. */
export async function runMonitor(ctx: CliContext, names: readonly string[], opts: MonitorFlags, deps: MonitorDeps = {}): Promise<number> {
  const processEnv = deps.processEnv ?? process.env;
  const envName = requireEnvName(ctx);
  if (!envName) return EXIT.failed;
  const { DeploySession } = await import("../../session/session.ts");
  // A recreate's redeploy is shown by the monitor's events; only the Proxmox client's warnings go to stderr.
  const session = new DeploySession({ root: ctx.root, envName, processEnv, reporter: { event: (e) => void (e.type === "proxmox" && !e.request && ctx.stderr(`homelab: ${e.line}\n`)) } });
  const loaded = await session.load(names.length > 0 ? names : undefined);
  if (loaded.status === "environment-invalid") {
    printDiagnostics(loaded.diagnostics, ctx.root, ctx.err, ctx.stderr);
    ctx.stderr(ctx.err.red(`homelab: environment ${ctx.envName} could not be loaded; fix the problems above (homelab validate --env ${ctx.envName})`) + "\n");
    return EXIT.failed;
  }
  const repo = loaded.repo;
  const env = repo.env;
  if (loaded.errors.length > 0) printDiagnostics(loaded.errors, ctx.root, ctx.err, ctx.stderr);
  const selected = names.length > 0 ? [...names] : [...repo.services.keys()].sort();
  const invalid = selected.filter((n) => !repo.services.has(n));
  if (names.length > 0 && invalid.length > 0) {
    ctx.stderr(ctx.err.red(`homelab: ${invalid.join(", ")}: the configuration is not valid (see above)`) + "\n");
    return EXIT.failed;
  }

  const { monitorSettings, monitoredService } = await import("../../monitor/config.ts");
  const settings = monitorSettings(env);
  const all = selected.flatMap((n) => {
    const s = repo.services.get(n);
    return s ? [monitoredService(s, settings)] : [];
  });
  const watched = all.filter((s) => s.checks.length > 0);
  const unwatched = all.filter((s) => s.checks.length === 0).map((s) => s.name);
  if (names.length > 0 && unwatched.length > 0) ctx.stderr(ctx.err.yellow(`homelab: ${unwatched.join(", ")} has no monitoring.health_checks; nothing to check there`) + "\n");
  if (watched.length === 0) {
    ctx.stderr(`homelab: no service ${names.length > 0 ? "named here " : ""}has monitoring.health_checks; nothing to monitor\n`);
    return opts.once ? EXIT.ok : EXIT.failed;
  }

  const once = opts.once === true;
  const { systemClock } = await import("../../monitor/clock.ts");
  const clock = deps.clock ?? systemClock;
  const remediating = !once && watched.some((s) => s.policy.autoRemediate);

  // Where services are: the engine's state (read-only unless something may be recreated).
  let engine: Engine | undefined;
  const needEngine = deps.targets === undefined || (remediating && deps.remediator === undefined);
  if (needEngine) {
    try {
      engine = await session.engine(remediating ? "write" : "read");
    } catch (e) {
      ctx.stderr(ctx.err.red(`homelab: cannot open the deployment state of ${env.name}: ${oneLine(e)}`) + "\n");
      const hint = (e as { hint?: string }).hint;
      if (hint) ctx.stderr(ctx.err.dim(`  hint: ${hint}`) + "\n");
      return EXIT.failed;
    }
  }
  const { StateTargets } = await import("../../monitor/targets.ts");
  const targets = deps.targets ?? new StateTargets(engine as Engine, env.name, { clock });

  // Checks: TLS settings are validated now, so a typo fails the start, not a service.
  const { CheckRunner } = await import("../../monitor/checks.ts");
  const { sshCommandExecutor } = await import("../../monitor/ssh.ts");
  const warnings: string[] = [];
  // As for Proxmox: `tls.insecure` is refused in CI mode.
  const ci = ciMode(undefined, processEnv);
  const runner = new CheckRunner({ executor: sshCommandExecutor(ctx.root, env.name), warn: (l) => warnings.push(l), ci });
  for (const s of watched) {
    for (const c of s.checks) {
      try {
        runner.prepare(c.key, c.check, s.dir);
      } catch (e) {
        // The TLS helpers' hints speak of Proxmox; say where this setting is instead.
        ctx.stderr(ctx.err.red(`homelab: ${s.name}: health check ${c.index + 1} (${c.label}): ${oneLine(e)}`) + "\n");
        ctx.stderr(ctx.err.dim(`  hint: fix monitoring.health_checks[${c.index}].tls in services/${s.name}/service.yaml (ca_file is relative to it)`) + "\n");
        await runner.close();
        return EXIT.failed;
      }
    }
  }
  for (const w of warnings) ctx.stderr(ctx.err.yellow(w) + "\n");
  const runCheck: CheckFn = deps.runCheck ?? ((c, target, signal) => runner.run(c.key, c.check, target, signal));

  // Events: printed, kept in the local history, counted, written for `homelab status`, and (state changes) sent on.
  const { HistoryFile, fanOut, printer } = await import("../../monitor/events.ts");
  const { envFileOf, monitorDir } = await import("../../config/homelab-dir.ts");
  const { MonitorMetrics } = await import("../../monitor/metrics.ts");
  const { StateFileWriter, stateFile } = await import("../../monitor/status.ts");
  const path = await import("node:path");
  const { hostname } = await import("node:os");
  // Problems of the monitor's own files are events too (reported once each; `note` is set below, before any event).
  let note: (message: string) => void = () => undefined;
  const history = new HistoryFile(path.join(monitorDir(ctx.root, env.name), "history.jsonl"), { maxBytes: settings.historyMaxBytes, onError: (e) => note(`cannot write the event history: ${oneLine(e)}`) });
  const metrics = new MonitorMetrics();
  for (const s of watched) metrics.service(s.name);
  let snapshot: () => OnceReport["services"] = () => [];
  const stateWriter = new StateFileWriter(
    stateFile(ctx.root, env.name),
    () => ({ environment: env.name, updatedAt: new Date(clock.now()).toISOString(), pid: process.pid, hostname: hostname(), services: snapshot() }),
    (e) => note(`cannot write the monitor state file: ${oneLine(e)}`),
  );
  const print = printer(ctx.stdout, { json: opts.json === true, style: ctx.out });
  let emit = fanOut([print, history.sink, metrics.sink, stateWriter.sink]);
  note = (message) => emit({ type: "monitor", at: new Date(clock.now()).toISOString(), level: "warning", message });

  let webhook: WebhookSender | undefined;
  if (!once && settings.webhook) {
    const { WebhookSender } = await import("../../monitor/webhook.ts");
    const { readSecretRef } = await import("../../config/secret-ref.ts");
    let token: string | undefined;
    try {
      token = settings.webhook.token ? readSecretRef(settings.webhook.token, "token", envFileOf(env), processEnv) : undefined;
    } catch (e) {
      ctx.stderr(ctx.err.red(`homelab: homelab:monitor webhook: ${oneLine(e)}`) + "\n");
      const hint = (e as { hint?: string }).hint;
      if (hint) ctx.stderr(ctx.err.dim(`  hint: ${hint}`) + "\n");
      await runner.close();
      return EXIT.failed;
    }
    const sender = new WebhookSender({ kind: settings.webhook.kind, url: settings.webhook.url, ...(token !== undefined ? { token } : {}) }, env.name, { onError: (m) => note(m) });
    webhook = sender;
    const base = emit;
    emit = (e) => {
      base(e);
      if (e.type === "state") sender.notify(e);
    };
  }

  const remediator = deps.remediator ?? (await realRemediator(ctx, { session: engine ? session : undefined, targets, watched, envName: env.name }));
  const { Monitor } = await import("../../monitor/monitor.ts");
  const monitor = new Monitor({
    services: watched,
    clock,
    targets,
    runCheck,
    remediator,
    sink: (e) => emit(e),
    concurrency: settings.concurrency,
  });
  snapshot = () => monitor.snapshot();

  const finish = async (): Promise<void> => {
    await monitor.stop();
    await Promise.all([history.flush(), stateWriter.flush(), webhook?.flush()]);
    await runner.close();
  };

  if (once) {
    const report = await monitor.once({ retryDelayMs: deps.onceRetryDelayMs ?? 1000 });
    stateWriter.touch();
    await finish();
    if (opts.json !== true) ctx.stdout(onceSummary(report, ctx) + "\n");
    return report.healthy ? EXIT.ok : EXIT.failed;
  }

  let endpoint: StatusPage | undefined;
  const listen = opts.listen ?? settings.listen;
  if (listen !== undefined) {
    const { parseListen } = await import("../../monitor/http.ts");
    const web = await import("../../monitor/web/index.ts");
    try {
      const page = await web.startStatusPage({
        ...(await web.pageInputs({ root: ctx.root, repo, selected: names.length > 0 ? selected : undefined, engine, targets, processEnv, ci, sources: deps.statusSources })),
        listen: parseListen(listen),
        token: settings.token,
        clock,
        snapshot: () => monitor.snapshot(),
        health: () => ({ status: "ok", environment: env.name, services: Object.fromEntries(monitor.snapshot().map((s) => [s.service, { phase: s.phase, reason: s.reason, since: s.since }])) }),
        metrics: () => metrics.render(),
        onError: (m) => note(m),
      });
      endpoint = page;
      const base = emit;
      emit = (e) => {
        base(e);
        page.sink(e);
      };
    } catch (e) {
      ctx.stderr(ctx.err.red(`homelab: cannot serve the status page on ${listen}: ${oneLine(e)}`) + "\n");
      const hint = (e as { hint?: string }).hint;
      if (hint) ctx.stderr(ctx.err.dim(`  hint: ${hint}`) + "\n");
      await finish();
      return EXIT.failed;
    }
    deps.onListening?.(endpoint.url);
  }

  const stop = takeStopSignals(deps.signal);
  try {
    monitor.start();
    if (endpoint) note(`serving the status page at ${endpoint.url}/, and ${endpoint.url}/healthz and ${endpoint.url}/metrics`);
    note(`stopping (${await stop.requested})`);
    await endpoint?.close();
    await finish();
  } finally {
    stop.restore();
  }
  return EXIT.ok;
}

/**
 * Takes SIGINT and SIGTERM (and `signal`) while the monitor runs: the first
 * asks for a clean stop, a second quits at once. `restore` gives SIGINT back.
 */
function takeStopSignals(signal: AbortSignal | undefined): { requested: Promise<string>; restore: () => void } {
  const saved = process.listeners("SIGINT");
  process.removeAllListeners("SIGINT");
  let count = 0;
  let resolve: (why: string) => void = () => undefined;
  const requested = new Promise<string>((r) => (resolve = r));
  const on = (why: string) => (): void => {
    count++;
    if (count > 1) process.exit(EXIT.interrupted);
    resolve(why);
  };
  const onInt = on("SIGINT");
  const onTerm = on("SIGTERM");
  const onAbort = on("stopped");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    requested,
    restore: () => {
      process.removeListener("SIGINT", onInt);
      process.removeListener("SIGTERM", onTerm);
      signal?.removeEventListener("abort", onAbort);
      for (const l of saved) process.on("SIGINT", l);
    },
  };
}

function onceSummary(r: OnceReport, ctx: CliContext): string {
  const o = ctx.out;
  const bad = r.services.filter((s) => s.phase !== "healthy");
  const lines = r.services.map((s) => `  ${s.phase === "healthy" ? o.green("healthy") : o.red(s.phase === "unknown" ? "NOT CHECKED" : "UNHEALTHY")}  ${o.bold(s.service)}${s.phase === "healthy" ? "" : `: ${s.checks.filter((c) => c.ok !== true).map((c) => `${c.label}: ${c.detail}`).join("; ")}`}`);
  return [`${bad.length === 0 ? o.green("all healthy") : o.red(`${bad.length} of ${r.services.length} service(s) unhealthy`)}`, ...lines].join("\n");
}

/** Restarts over SSH; recreates through the session, with the engine and planner `homelab deploy` uses (when the engine is open). */
async function realRemediator(
  ctx: CliContext,
  o: { session: DeploySession | undefined; targets: TargetSource; watched: readonly { name: string; composeContainers: string[] }[]; envName: string },
): Promise<Remediator> {
  const { ServiceRemediator, sshComposeRestarter } = await import("../../monitor/actions.ts");
  const { sessionDeployer } = await import("../../session/monitor-deployer.ts");
  return new ServiceRemediator({
    targets: o.targets,
    composeContainers: new Map(o.watched.map((s) => [s.name, s.composeContainers])),
    restarter: sshComposeRestarter(ctx.root, o.envName),
    ...(o.session ? { deployer: sessionDeployer(o.session) } : {}),
  });
}
