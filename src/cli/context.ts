import { resolve } from "node:path";
import { chooseEnvironmentName, findRoot, listEnvironments, RepositoryError } from "../config/discover.ts";
import { EXIT } from "./exit-codes.ts";
import { colorWanted, makeStyle, type Style } from "./output.ts";

/** The global options every command accepts. */
export type GlobalOptions = {
  dir?: string | undefined;
  env?: string | undefined;
  verbose?: boolean | undefined;
  color?: boolean | undefined;
};

/** What a command needs from the global options, resolved once. */
export interface CliContext {
  root: string;
  envName: string | undefined;
  verbose: boolean;
  out: Style;
  err: Style;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** Whether CI mode is on: `--ci`, or `CI=true` as CI services set it. */
export function ciMode(flag: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return flag === true || /^(1|true|yes)$/i.test(env["CI"] ?? "");
}

/** Resolves the repository root and environment from the global options. */
export function makeContext(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CliContext {
  const start = opts.dir ? resolve(opts.dir) : process.cwd();
  const root = opts.dir ? start : findRoot(start);
  if (!root) {
    throw new RepositoryError(`no homelab repository at ${start} or above (looked for a services/ folder or Pulumi.yaml)`, "run from inside your homelab repository, or pass --dir PATH");
  }
  const color = opts.color !== false;
  return {
    root,
    envName: chooseEnvironmentName(root, opts.env, env),
    verbose: opts.verbose === true,
    out: makeStyle(colorWanted(color, process.stdout, env)),
    err: makeStyle(colorWanted(color, process.stderr, env)),
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
  };
}

/**
 * The environment a command that talks to a cluster needs; when none is
 * selected, says so (naming the environments there are) and returns undefined.
 */
export function requireEnvName(ctx: Pick<CliContext, "root" | "envName" | "stderr">): string | undefined {
  if (ctx.envName) return ctx.envName;
  const known = listEnvironments(ctx.root);
  ctx.stderr(`homelab: no environment selected: pass --env NAME${known.length ? ` (environments here: ${known.join(", ")})` : " (none here yet: homelab sandbox start writes one, --env sandbox)"}\n`);
  return undefined;
}

/** A command's context once its environment is known. */
export type EnvContext = CliContext & { envName: string };

/**
 * The preamble of a command that needs an environment: the context from the
 * global options, the environment required (else the message and exit 1),
 * then `run`, whose result is the exit code.
 */
export async function withEnvironment(cmd: { optsWithGlobals(): GlobalOptions }, run: (ctx: EnvContext) => Promise<number>): Promise<void> {
  const ctx = makeContext(cmd.optsWithGlobals());
  const envName = requireEnvName(ctx);
  process.exitCode = envName ? await run({ ...ctx, envName }) : EXIT.failed;
}
