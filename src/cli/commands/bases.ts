import type { Command } from "@commander-js/extra-typings";
import { withEnvironment, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/** `homelab bases [--prune]`: the Docker-ready bases on the cluster. */
export function registerBases(program: Command<[], GlobalOptions>): void {
  program
    .command("bases")
    .description("list the Docker-ready base templates homelab built (one per node and content key); --prune removes those no service would clone")
    .option("--prune", "remove bases that no service of this repository would clone now and no linked clone uses")
    .option("--json", "as JSON")
    .action((opts, cmd) => withEnvironment(cmd, (ctx) => runBases(ctx, opts.prune === true, opts.json === true)));
}

async function runBases(ctx: EnvContext, prune: boolean, json: boolean): Promise<number> {
  const { DeploySession } = await import("../../session/session.ts");
  const r = await new DeploySession({ root: ctx.root, envName: ctx.envName }).bases({ prune });
  if (json) {
    ctx.stdout(JSON.stringify(r, null, 2) + "\n");
    return EXIT.ok;
  }
  const o = ctx.out;
  if (r.bases.length === 0) ctx.stdout(o.dim("no Docker-ready bases yet: the first deploy of a compose service builds one per node") + "\n");
  for (const b of r.bases) {
    const state = b.removed ? o.red("removed") : b.current ? o.green("current") : o.yellow("old");
    const use = b.usedBy > 0 ? `, used by ${b.usedBy} linked clone(s)` : "";
    ctx.stdout(`${state}  CT ${b.vmid} on ${b.node}  ${b.key}${use}\n  ${o.dim(b.description.split("\n")[0] ?? "")}\n`);
    if (b.error) ctx.stdout(`  ${o.red(b.error)}\n`);
  }
  const old = r.bases.filter((b) => !b.current && !b.removed);
  if (!prune && old.length > 0) ctx.stdout(o.dim(`${old.length} base(s) no service clones now: homelab bases --prune removes those no linked clone uses`) + "\n");
  return r.bases.some((b) => b.error !== undefined) ? EXIT.failed : EXIT.ok;
}
