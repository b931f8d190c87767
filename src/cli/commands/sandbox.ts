import { InvalidArgumentError } from "@commander-js/extra-typings";
import type { Command } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import { findRoot } from "../../config/discover.ts";
import type { GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

function intArg(what: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function shareArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError("a share between 0 and 1");
  return n;
}

/** The repository for sandbox files: `--dir`, else the nearest with services/ or Pulumi.yaml, else cwd. */
function sandboxRoot(globals: GlobalOptions): string {
  if (globals.dir !== undefined) return resolve(globals.dir);
  return findRoot(process.cwd()) ?? process.cwd();
}

/** `homelab sandbox start|stop|status`: a Proxmox-compatible API on this machine. */
export function registerSandboxCommand(program: Command<[], GlobalOptions>): void {
  const sandbox = program
    .command("sandbox")
    .description("a Proxmox-compatible API on this machine (127.0.0.1), to try services without a cluster");

  sandbox
    .command("start")
    .description("start the sandbox in the background and write the environment `--env sandbox`")
    .option("--port <n>", "port on 127.0.0.1 (default: a free one)", intArg("--port", 0, 65535), 0)
    .option("--nodes <n>", "number of nodes (pve-01, pve-02, ...)", intArg("--nodes", 1, 64), 3)
    .option("--state <dir>", "state folder (default: <repo>/.homelab/sandbox)")
    .option("--backend <kind>", "guest backend: memory | lxc", "memory")
    .option("--bridge <name>", "lxc backend: the host bridge to create (default hlsbx0)")
    .option("--subnet <cidr>", "lxc backend: the bridge's /24 (default 10.87.53.0/24)")
    .option("--json", "print one JSON line for scripts")
    .option("--auth-delay <ms>", "delay before each 401, as Proxmox's", intArg("--auth-delay", 0, 60_000), 3000)
    .option("--task-duration <ms>", "how long each task takes at least", intArg("--task-duration", 0, 600_000), 1000)
    .option("--latency <ms>", "fault: added to every answer", intArg("--latency", 0, 600_000))
    .option("--error-rate <share>", "fault: share of requests answered 500", shareArg)
    .option("--drop-rate <share>", "fault: share of connections cut without an answer", shareArg)
    .option("--task-fail-rate <share>", "fault: share of tasks ending in TASK ERROR", shareArg)
    .option("--task-delay <ms>", "fault: added to every task", intArg("--task-delay", 0, 600_000))
    .action(async (opts, cmd) => {
      const { startDaemon, SandboxControlError } = await import("../../sandbox/control.ts");
      const { defaultSandboxDir } = await import("../../config/homelab-dir.ts");
      const root = sandboxRoot(cmd.optsWithGlobals());
      if (opts.backend !== "memory" && opts.backend !== "lxc") {
        process.stderr.write(`homelab: unknown backend '${opts.backend}' (memory | lxc)\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      let backend: "memory" | "lxc" = opts.backend;
      if (backend === "lxc") {
        const { lxcAvailable } = await import("../../sandbox/lxc/backend.ts");
        const avail = await lxcAvailable();
        if (!avail.ok) {
          process.stderr.write(`homelab: the lxc backend is not available here (${avail.reason ?? "unknown reason"}); using the memory backend (guests are state only)\n`);
          backend = "memory";
        }
      }
      const faults = {
        ...(opts.latency !== undefined ? { latencyMs: opts.latency } : {}),
        ...(opts.errorRate !== undefined ? { errorRate: opts.errorRate } : {}),
        ...(opts.dropRate !== undefined ? { dropRate: opts.dropRate } : {}),
        ...(opts.taskFailRate !== undefined ? { taskFailRate: opts.taskFailRate } : {}),
        ...(opts.taskDelay !== undefined ? { taskDelayMs: opts.taskDelay } : {}),
      };
      try {
        const s = await startDaemon({
          root,
          stateDir: opts.state !== undefined ? resolve(opts.state) : defaultSandboxDir(root),
          port: opts.port,
          nodes: opts.nodes,
          backend,
          authDelayMs: opts.authDelay,
          taskDurationMs: opts.taskDuration,
          faults,
          ...(opts.bridge !== undefined ? { bridge: opts.bridge } : {}),
          ...(opts.subnet !== undefined ? { subnet: opts.subnet } : {}),
          ...(opts.json ? {} : { progress: (m: string) => void process.stderr.write(`  ${m}\n`) }),
        });
        if (s.cleanedStale !== undefined && !opts.json) {
          process.stderr.write(`note: cleaned up after a sandbox that is gone (pid ${s.cleanedStale})\n`);
        }
        if (opts.json) {
          const line = { url: s.url, token: s.tokenId, tokenSecretFile: s.tokenSecretFile, fingerprint: s.fingerprint, envFile: s.envFile, caFile: s.caFile, pid: s.pid, stateDir: s.stateDir, backend: s.backend, ...(s.registry !== undefined ? { registry: s.registry } : {}), ...(s.dockerHost !== undefined ? { dockerHost: s.dockerHost } : {}) };
          process.stdout.write(JSON.stringify(line) + "\n");
          return;
        }
        process.stdout.write(
          [
            `sandbox running (pid ${s.pid}, ${s.nodes.length} nodes: ${s.nodes.join(", ")}, backend ${s.backend})`,
            `  url          ${s.url}`,
            `  token id     ${s.tokenId}`,
            `  token secret ${s.tokenSecretFile}`,
            `  fingerprint  ${s.fingerprint}`,
            `  CA file      ${s.caFile}`,
            ...(s.registry !== undefined ? [`  registry     ${s.registry} (plain HTTP; local_registry in the environment)`] : []),
            ...(s.dockerHost !== undefined ? [`  docker host  ${s.dockerHost} (builds images; trusts the registry)`] : []),
            `  environment  ${s.envFile}  (use --env sandbox)`,
            `  log          ${s.logFile}`,
            "stop it with `homelab sandbox stop`",
            "",
          ].join("\n"),
        );
      } catch (e) {
        if (e instanceof SandboxControlError) {
          if (opts.json) process.stdout.write(JSON.stringify({ error: e.message, ...(e.url !== undefined ? { url: e.url } : {}) }) + "\n");
          process.stderr.write(`homelab: ${e.message}\n`);
          process.exitCode = EXIT.failed;
          return;
        }
        throw e;
      }
    });

  sandbox
    .command("stop")
    .description("stop the sandbox and remove its environment file")
    .option("--state <dir>", "state folder (default: <repo>/.homelab/sandbox)")
    .action(async (opts, cmd) => {
      const { stopDaemon } = await import("../../sandbox/control.ts");
      const { defaultSandboxDir } = await import("../../config/homelab-dir.ts");
      const root = sandboxRoot(cmd.optsWithGlobals());
      const r = await stopDaemon(opts.state !== undefined ? resolve(opts.state) : defaultSandboxDir(root), root);
      if (r.wasRunning && r.stopped) process.stdout.write(`sandbox stopped (was ${r.stopped.url}, pid ${r.stopped.pid})\n`);
      else if (r.stopped) process.stdout.write(`no sandbox was running (pid ${r.stopped.pid} is gone); cleaned up its files\n`);
      else process.stdout.write("no sandbox is running\n");
    });

  sandbox
    .command("status")
    .description("say whether the sandbox runs, and where")
    .option("--state <dir>", "state folder (default: <repo>/.homelab/sandbox)")
    .option("--json", "print one JSON line")
    .action(async (opts, cmd) => {
      const { readState, isDaemonAlive } = await import("../../sandbox/control.ts");
      const { defaultSandboxDir } = await import("../../config/homelab-dir.ts");
      const root = sandboxRoot(cmd.optsWithGlobals());
      const s = await readState(opts.state !== undefined ? resolve(opts.state) : defaultSandboxDir(root));
      const running = s !== undefined && (await isDaemonAlive(s.pid));
      if (opts.json) {
        process.stdout.write(JSON.stringify(running && s ? { running, url: s.url, pid: s.pid, envFile: s.envFile } : { running: false }) + "\n");
      } else {
        process.stdout.write(running && s ? `sandbox running at ${s.url} (pid ${s.pid})\n` : "no sandbox is running\n");
      }
      if (!running) process.exitCode = EXIT.failed;
    });
}
