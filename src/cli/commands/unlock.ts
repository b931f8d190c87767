import type { Command } from "@commander-js/extra-typings";
import { withEnvironment, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/** `homelab unlock SERVICE`: clear the lock a crashed run left on a service's stack. */
export function registerUnlock(program: Command<[], GlobalOptions>): void {
  program
    .command("unlock")
    .description("clear the lock a crashed or killed deploy left on a service's stack (refused while that run is alive)")
    .argument("<service>", "the service whose stack is locked")
    .option("--force", "also when homelab cannot check the lock's owner: a run on another machine, or a backend whose locks homelab does not read (gs://, azblob://, Pulumi Cloud)")
    .action((service, opts, cmd) => withEnvironment(cmd, (ctx) => runUnlock(ctx, service, opts.force === true)));
}

async function runUnlock(ctx: EnvContext, service: string, force: boolean): Promise<number> {
  const { DeploySession } = await import("../../session/session.ts");
  const r = await new DeploySession({ root: ctx.root, envName: ctx.envName }).unlock(service, force);
  const write = r.status === "refused" ? ctx.stderr : ctx.stdout;
  const style = r.status === "refused" ? ctx.err : ctx.out;
  write((r.status === "refused" ? style.red(`homelab: ${r.message}`) : r.message) + "\n");
  if (r.hint) write(style.dim(`  hint: ${r.hint}`) + "\n");
  return r.status === "refused" ? EXIT.failed : EXIT.ok;
}
