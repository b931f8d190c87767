/**
 * The one place the lxc backend runs host commands. Commands arrive as data
 * (built by the pure functions in `commands.ts` and `templates.ts`), so tests
 * can check them without running anything; here they are run, logged in
 * verbose mode, and failures become errors naming the command and the tail of
 * its stderr.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { shellQuote } from "../shell-quote.ts";

/** A host command as data. */
export interface Command {
  argv: readonly string[];
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Exit codes that count as success (default: only 0). */
  okCodes?: readonly number[];
  /** Kill the command after this many milliseconds (default: 10 minutes). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
}

/** What a finished command printed. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command that failed; its message names the command and ends with its stderr. */
export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly code: number | null;
  readonly stderr: string;
  constructor(argv: readonly string[], code: number | null, stderr: string, why: string) {
    super(`command failed (${why}): ${formatArgv(argv)}${stderr.trim() ? `\n${tail(stderr, 15)}` : ""}`);
    this.name = "CommandError";
    this.argv = argv;
    this.code = code;
    this.stderr = stderr;
  }
}

/** Runs commands; the backend gets one so tests can watch or fake it. */
export interface Executor {
  run(cmd: Command): Promise<CommandResult>;
  /** Runs each command in order, stopping at the first failure. */
  runAll(cmds: readonly Command[]): Promise<void>;
  /** Starts a long-running process detached from this one, output to `logFile`; returns its pid. */
  spawnDaemon(argv: readonly string[], logFile: string): number;
  log(message: string): void;
}

/** Shell-quotes argv for messages and logs (never for running). */
export function formatArgv(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** The last `lines` non-empty lines of `text`. */
export function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
// Keeps memory bounded when a command is chatty (debootstrap, tar -v).
const MAX_CAPTURE = 4 * 1024 * 1024;

/** The executor that really runs commands on this host. */
export function createExecutor(options: { verbose?: boolean; logger?: (line: string) => void } = {}): Executor {
  const logger = options.logger ?? ((line: string) => process.stderr.write(`${line}\n`));
  const verbose = options.verbose ?? false;
  const log = (message: string): void => {
    if (verbose) logger(`[sandbox:lxc] ${message}`);
  };

  const run = (cmd: Command): Promise<CommandResult> => {
    const [file, ...args] = cmd.argv;
    if (file === undefined) return Promise.reject(new Error("empty command"));
    log(`$ ${formatArgv(cmd.argv)}`);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        cwd: cmd.cwd,
        env: cmd.env ? { ...process.env, ...cmd.env } : process.env,
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      let timedOut = false;
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        if (stdout.length < MAX_CAPTURE) stdout += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr = (stderr + d).slice(-MAX_CAPTURE);
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, cmd.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(new CommandError(cmd.argv, null, err.message, "could not start"));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        const ms = Date.now() - started;
        if (timedOut) {
          reject(new CommandError(cmd.argv, null, stderr, `timed out after ${cmd.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`));
          return;
        }
        if (code === null) {
          reject(new CommandError(cmd.argv, null, stderr, `killed by ${signal ?? "a signal"}`));
          return;
        }
        const ok = (cmd.okCodes ?? [0]).includes(code);
        log(`  -> exit ${code} in ${ms} ms`);
        if (!ok) {
          reject(new CommandError(cmd.argv, code, stderr || stdout, `exit ${code}`));
          return;
        }
        resolve({ code, stdout, stderr });
      });
      // A command that exits before reading its input makes stdin emit EPIPE.
      child.stdin.on("error", () => undefined);
      child.stdin.end(cmd.input ?? "");
    });
  };

  return {
    run,
    async runAll(cmds) {
      for (const cmd of cmds) await run(cmd);
    },
    spawnDaemon(argv, logFile) {
      const [file, ...args] = argv;
      if (file === undefined) throw new Error("empty command");
      log(`$ ${formatArgv(argv)} >${logFile} 2>&1 &`);
      const fd = openSync(logFile, "a");
      try {
        // Detached so it outlives a crash of this process; the next start
        // finds it by its pid file and stops it.
        const child = spawn(file, args, { detached: true, stdio: ["ignore", fd, fd] });
        child.on("error", (err) => logger(`[sandbox:lxc] ${file}: ${err.message}`));
        child.unref();
        if (child.pid === undefined) throw new CommandError(argv, null, "", "could not start");
        return child.pid;
      } finally {
        closeSync(fd);
      }
    },
    log,
  };
}
