import type { Command } from "@commander-js/extra-typings";
import type { DestroyOutcome } from "../../engine/destroy.ts";
import type { DestroyResult } from "../../session/session.ts";
import { withEnvironment, type CliContext, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { printDiagnostics } from "../output.ts";
import { askTyped, askYesNo, takeSigint } from "../terminal.ts";

/** The exit code of a destroy. Pure. */
export function destroyExitCode(status: DestroyOutcome["status"]): number {
  switch (status) {
    case "blocked":
      return EXIT.blocked;
    case "failed":
      return EXIT.failed;
    case "cancelled":
      return EXIT.interrupted;
    default:
      return EXIT.ok;
  }
}

/** `homelab destroy SERVICE`: delete a service's resources and its stack. */
export function registerDestroy(program: Command<[], GlobalOptions>): void {
  program
    .command("destroy")
    .description("delete every resource of a service and its stack (asks on a terminal; refused while a resource is protect: true); containers holding data (volumes) are kept, stopped, unless --delete-data")
    .argument("<service>", "the service to destroy (also one whose folder is gone: an orphaned stack)")
    .option("--dry-run", "show what would be deleted")
    .option("-y, --yes", "do not ask (required when not on a terminal)")
    .option("--delete-data", "also delete the containers' volumes and any container kept with the service's data (after a backup of each); asks you to type the service's name on a terminal")
    .addHelpText("after", "\nData: without --delete-data a container with volumes is kept, stopped, with its data; the next\n`homelab deploy SERVICE` gives its volumes to the new container. `homelab status` lists kept data.")
    .action((service, opts, cmd) => withEnvironment(cmd, (ctx) => runDestroy(ctx, service, { dryRun: opts.dryRun === true, yes: opts.yes === true, deleteData: opts.deleteData === true })));
}

async function runDestroy(ctx: EnvContext, service: string, opts: { dryRun: boolean; yes: boolean; deleteData: boolean }): Promise<number> {
  const interactive = process.stdin.isTTY && process.stdout.isTTY;
  if (!opts.dryRun && !opts.yes && !interactive) {
    ctx.stderr(`homelab: destroy deletes ${service}'s containers; not on a terminal, so it cannot ask: pass --yes to confirm (or --dry-run to look first)\n`);
    return EXIT.usage;
  }
  if (opts.deleteData && !opts.dryRun && !opts.yes) {
    // Data is the one thing a deploy cannot bring back: a typed confirmation, not a y.
    if (!(await askTyped(`This deletes ${service}'s data (its containers' volumes, after a backup of each) in ${ctx.envName}.`, service))) {
      ctx.stdout("nothing deleted\n");
      return EXIT.ok;
    }
  }
  const { DeploySession } = await import("../../session/session.ts");
  const session = new DeploySession({
    root: ctx.root,
    envName: ctx.envName,
    verbose: ctx.verbose,
    reporter: { event: (e) => void (e.type === "proxmox" && !e.request && ctx.stderr(`homelab: ${e.line}\n`)) },
  });
  const loaded = await session.environment();
  if (loaded.status === "invalid") {
    printDiagnostics(loaded.diagnostics, ctx.root, ctx.err, ctx.stderr);
    return EXIT.failed;
  }
  const env = loaded.env;
  const { Progress } = await import("../render/progress.ts");
  const { changeLines } = await import("../render/changes.ts");
  const o = ctx.out;
  const progress = new Progress({ write: ctx.stdout, style: o, live: !ctx.verbose && process.stdout.isTTY, verbose: ctx.verbose });
  const abort = new AbortController();
  const restore = takeSigint(() => {
    progress.line(o.dim("interrupting: running deletions finish cleanly first (Ctrl-C again to quit at once)"));
    abort.abort();
  });
  let out: DestroyOutcome;
  let orphaned: boolean;
  let kept: DestroyResult["kept"];
  let deleted: DestroyResult["deleted"];
  try {
    ({ outcome: out, orphaned, kept, deleted } = await session.destroy(service, {
      dryRun: opts.dryRun,
      deleteData: opts.deleteData,
      signal: abort.signal,
      onStep: (s) => progress.step(service, s),
      onDiagnostic: (d) => progress.diagnostic(service, d),
      ...(opts.yes || opts.dryRun
        ? {}
        : {
            confirm: async (preview: DestroyOutcome) => {
              progress.line(previewText(preview, ctx));
              return askYesNo(`Delete these ${preview.preview?.length ?? 0} resource(s) of ${service} in ${env.name}?`);
            },
          }),
    }));
  } finally {
    restore();
    progress.close();
  }
  const head = `${o.bold(service)} ${o.dim(`(${out.stack})`)}${orphaned ? o.yellow("  orphaned: services/" + service + " is gone") : ""}`;
  switch (out.status) {
    case "nothing":
      ctx.stdout(`${head}\n  nothing to destroy: ${service} was never deployed to ${env.name}\n`);
      break;
    case "blocked":
      ctx.stdout(`${head}\n`);
      for (const v of out.violations) ctx.stdout(`  ${o.red("✗")} ${v.message}\n    ${o.dim(`hint: ${v.hint}`)}\n`);
      ctx.stdout(o.red(`destroy refused: ${out.violations.length} protected resource(s); nothing was deleted`) + "\n");
      break;
    case "pending":
      ctx.stdout(previewText(out, ctx) + "\n" + o.dim("(dry run: nothing deleted)") + "\n");
      break;
    case "declined":
      ctx.stdout("nothing deleted\n");
      break;
    case "destroyed": {
      ctx.stdout(`${head}\n${changeLines(out.applied ?? [], [], o, { past: true, explain: false, showSame: false }).join("\n")}\n${o.green(`destroyed ${service} in ${env.name}: ${(out.applied ?? []).filter((c) => c.kind === "delete").length} resource(s) deleted, stack removed`)}\n`);
      break;
    }
    default: {
      const lines = [...(out.error?.message ?? "failed").split("\n").map((l) => `  ${o.red(l)}`), ...(out.error?.hint ? [`  ${o.dim(`hint: ${out.error.hint}`)}`] : [])];
      ctx.stdout(`${head}  ${out.status === "cancelled" ? o.yellow("interrupted") : o.red("FAILED")}\n${lines.join("\n")}\n`);
    }
  }
  for (const k of kept) {
    const size = k.volumes.reduce((n, v) => n + (v.sizeGb ?? 0), 0);
    ctx.stdout(`  ${o.yellow("data kept")}: CT ${k.vmid} on ${k.node} (stopped) holds ${k.volumes.length} volume(s)${size > 0 ? `, ${size} GB` : ""} of ${k.identity.resource}: \`homelab deploy ${service}\` gives them to its next container; \`homelab destroy ${service} --delete-data\` deletes them\n`);
  }
  for (const d of deleted) ctx.stdout(`  ${o.red("data deleted")}: CT ${d.vmid} on ${d.node} and its volumes (backup ${d.backup} taken first)\n`);
  return destroyExitCode(out.status);
}

function previewText(out: DestroyOutcome, ctx: CliContext): string {
  const o = ctx.out;
  const lines = [`${o.bold(out.service)} ${o.dim(`(${out.stack})`)}  ${out.preview?.length ?? 0} to delete`];
  for (const r of out.resources) {
    const vmid = r.outputs["vmid"];
    lines.push(`  ${o.red("- delete")}  ${r.id}  ${o.dim([r.type, typeof vmid === "number" ? `vmid ${vmid}` : "", typeof r.outputs["node"] === "string" ? `on ${r.outputs["node"]}` : ""].filter(Boolean).join(", "))}`);
  }
  return lines.join("\n");
}
