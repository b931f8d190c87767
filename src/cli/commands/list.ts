import type { Command } from "@commander-js/extra-typings";
import { relative } from "node:path";
import { discoverServices } from "../../config/repository.ts";
import { loadService } from "../../config/service.ts";
import { makeContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { table } from "../output.ts";

/** `homelab list`: every service with its description and resources. */
export function registerList(program: Command<[], GlobalOptions>): void {
  program
    .command("list")
    .description("list every service found at services/*/service.yaml")
    .option("--json", "print an array of {name, description, path, resources: [{id, type}]}")
    .action((opts, cmd) => {
      const ctx = makeContext(cmd.optsWithGlobals());
      // No environment is needed to list; files are read leniently so a broken one still shows.
      const loads = discoverServices(ctx.root).map((s) => loadService(s.file, undefined));
      if (opts.json) {
        const out = loads.map((l) => ({
          name: l.summary.name,
          description: l.summary.description ?? null,
          path: relative(ctx.root, l.file),
          resources: l.summary.resources,
          valid: l.service !== undefined,
        }));
        ctx.stdout(JSON.stringify(out, null, 2) + "\n");
        return;
      }
      if (loads.length === 0) {
        ctx.stdout(`no services in ${relative(process.cwd(), ctx.root) || "."}/services (create services/<name>/service.yaml)\n`);
        return;
      }
      const rows: string[][] = [];
      for (const l of loads) {
        const bad = l.service === undefined ? ctx.out.red(" (invalid: run homelab validate " + l.name + ")") : "";
        rows.push([ctx.out.bold(l.summary.name), (l.summary.description ?? ctx.out.dim("no description")) + bad]);
        for (const r of l.summary.resources) rows.push(["  " + r.id, ctx.out.dim(r.type)]);
      }
      ctx.stdout(table(rows) + "\n");
      process.exitCode = loads.every((l) => l.service) ? EXIT.ok : EXIT.failed;
    });
}
