import type { Command } from "@commander-js/extra-typings";
import { relative } from "node:path";
import { discoverServices } from "../../config/discover.ts";
import { readSummary } from "../../config/summary.ts";
import { makeContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { table } from "../output.ts";

/** `homelab list`: every service with its description and resources. */
export function registerList(program: Command<[], GlobalOptions>): void {
  program
    .command("list")
    .description("list every service found at services/*/service.yaml (run validate to check them)")
    .option("--json", "print an array of {name, description, path, resources: [{id, type}]}")
    .action((opts, cmd) => {
      const ctx = makeContext(cmd.optsWithGlobals());
      // Read leniently, without the schema: a file with mistakes still lists.
      const found = discoverServices(ctx.root).map((s) => ({ ...s, ...readSummary(s.name, s.file) }));
      if (opts.json) {
        const out = found.map((f) => ({
          name: f.summary.name,
          description: f.summary.description ?? null,
          path: relative(ctx.root, f.file),
          resources: f.summary.resources,
          ...(f.diagnostics[0] ? { error: f.diagnostics[0].message } : {}),
        }));
        ctx.stdout(JSON.stringify(out, null, 2) + "\n");
        return;
      }
      if (found.length === 0) {
        ctx.stdout(`no services in ${relative(process.cwd(), ctx.root) || "."}/services (create services/<name>/service.yaml)\n`);
        return;
      }
      const rows: string[][] = [];
      for (const f of found) {
        const bad = f.diagnostics[0] ? ctx.out.red(` (unreadable: ${f.diagnostics[0].message}; run homelab validate ${f.name})`) : "";
        rows.push([ctx.out.bold(f.summary.name), (f.summary.description ?? ctx.out.dim("no description")) + bad]);
        for (const r of f.summary.resources) rows.push(["  " + r.id, ctx.out.dim(r.type)]);
      }
      ctx.stdout(table(rows) + "\n");
      process.exitCode = found.every((f) => f.diagnostics.length === 0) ? EXIT.ok : EXIT.failed;
    });
}
