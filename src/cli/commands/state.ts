import type { Command } from "@commander-js/extra-typings";
import { withEnvironment, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/** `homelab state export|import`: move an environment's state to another backend without deploying. */
export function registerState(program: Command<[], GlobalOptions>): void {
  const state = program.command("state").description("move an environment's state between backends (e.g. .homelab/state to PostgreSQL or S3) without deploying anything");
  state
    .command("export")
    .description("write the environment's stacks (all, or the named services') to a file: Pulumi's export, secrets still encrypted (mode 0600)")
    .argument("[services...]", "only these services")
    .requiredOption("--file <path>", "where to write them")
    .option("--force", "replace the file if it exists")
    .option("--backend <url>", "read from this backend instead of the environment's (e.g. file:///path/to/repo/.homelab/state)")
    .action((services, opts, cmd) => withEnvironment(cmd, (ctx) => runExport(ctx, services, opts.file, opts.force === true, opts.backend)));
  state
    .command("import")
    .description("load stacks from a file `homelab state export` wrote into the environment's backend; nothing is deployed, the next deploy finds them unchanged")
    .argument("<file>", "the export")
    .argument("[services...]", "only these services")
    .option("--force", "also replace a stack that records other resources in the target backend")
    .option("--backend <url>", "write to this backend instead of the environment's")
    .action((file, services, opts, cmd) => withEnvironment(cmd, (ctx) => runImport(ctx, file, services, opts.force === true, opts.backend)));
}

function session(ctx: EnvContext, backend: string | undefined) {
  return import("../../session/session.ts").then(({ DeploySession }) => new DeploySession({ root: ctx.root, envName: ctx.envName, processEnv: backend !== undefined ? { ...process.env, PULUMI_BACKEND_URL: backend } : process.env }));
}

async function runExport(ctx: EnvContext, services: string[], file: string, force: boolean, backend: string | undefined): Promise<number> {
  const { writeStateBundle } = await import("../../engine/state-transfer.ts");
  const s = await session(ctx, backend);
  const { bundle, missing } = await s.exportState(services);
  for (const m of missing) ctx.stderr(ctx.err.yellow(`homelab: ${m} has no stack in environment ${ctx.envName}\n`));
  if (bundle.stacks.length === 0) {
    ctx.stderr(`homelab: no stacks of environment ${ctx.envName} in ${bundle.from}: nothing written\n`);
    return EXIT.failed;
  }
  try {
    writeStateBundle(file, bundle, force);
  } catch (e) {
    return failWith(ctx, e);
  }
  for (const st of bundle.stacks) ctx.stdout(`${st.stack}  ${st.resources} resource(s)\n`);
  ctx.stdout(`exported ${bundle.stacks.length} stack(s) of ${ctx.envName} from ${bundle.from} to ${file}\n`);
  ctx.stdout(ctx.out.dim("  the file holds the state's secrets encrypted: importing it needs the same passphrase") + "\n");
  return missing.length > 0 ? EXIT.failed : EXIT.ok;
}

async function runImport(ctx: EnvContext, file: string, services: string[], force: boolean, backend: string | undefined): Promise<number> {
  const { readStateBundle } = await import("../../engine/state-transfer.ts");
  let outcomes;
  let target: string;
  try {
    const bundle = readStateBundle(file);
    const s = await session(ctx, backend);
    outcomes = await s.importState(bundle, { only: services, force });
    target = (await s.engine("write")).backend.display;
  } catch (e) {
    return failWith(ctx, e);
  }
  if (outcomes.length === 0) {
    ctx.stderr(`homelab: ${file} has no stacks${services.length > 0 ? ` of ${services.join(", ")}` : ""}\n`);
    return EXIT.failed;
  }
  for (const o of outcomes) {
    const bad = o.status === "refused" || o.status === "failed";
    const line = bad ? ctx.err.red(`${o.service}  ${o.status.toUpperCase()}: ${o.message}`) : `${o.service}  ${o.message}`;
    (bad ? ctx.stderr : ctx.stdout)(line + "\n");
    if (o.hint) (bad ? ctx.stderr : ctx.stdout)((bad ? ctx.err : ctx.out).dim(`  hint: ${o.hint}`) + "\n");
  }
  const done = outcomes.filter((o) => o.status === "imported" || o.status === "unchanged").length;
  ctx.stdout(`${done} of ${outcomes.length} stack(s) in ${target}; check with \`homelab deploy --all --dry-run --env ${ctx.envName}\` (expect no changes)\n`);
  return done === outcomes.length ? EXIT.ok : EXIT.failed;
}

function failWith(ctx: EnvContext, e: unknown): number {
  const hint: unknown = e !== null && typeof e === "object" ? Reflect.get(e, "hint") : undefined;
  ctx.stderr(ctx.err.red(`homelab: ${e instanceof Error ? e.message : String(e)}`) + "\n");
  if (typeof hint === "string" && hint !== "") ctx.stderr(ctx.err.dim(`  hint: ${hint}`) + "\n");
  return EXIT.failed;
}
