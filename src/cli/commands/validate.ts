import type { Command } from "@commander-js/extra-typings";
import { makeContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { printDiagnostics } from "../output.ts";

/** `homelab validate [SERVICE...]`: every problem as FILE:LINE:COL: message; exit 1 if any error. */
export function registerValidate(program: Command<[], GlobalOptions>): void {
  program
    .command("validate")
    .description("check service files (all, or the named ones) and the environment; print every problem as FILE:LINE:COL: message")
    .argument("[services...]", "services to check (default: all)")
    .option("--skip-secrets", "do not require secrets to be provided (e.g. on a pull request without them)")
    .option("--json", "print {valid, errors, warnings, diagnostics[]}")
    .option("--no-cache", "check every service afresh: neither read nor update the cache of valid services, .homelab/cache/validate.json (a service valid before, whose files, environment and tool are unchanged, is otherwise not re-checked); off anyway when CI=true")
    .action(async (services, opts, cmd) => {
      const { resolveSecrets } = await import("../../config/secrets.ts");
      const { secretsContext } = await import("../../session/secrets-context.ts");
      const ctx = makeContext(cmd.optsWithGlobals());
      const load = { root: ctx.root, envName: ctx.envName, ...(services.length ? { only: services } : {}) };
      // CI (as deploy's CI mode reads it) always checks afresh: it is the gate, and its checkouts start empty anyway.
      const cache = opts.cache && !/^(1|true|yes)$/i.test(process.env["CI"] ?? "");
      const repo = cache ? await (await import("../../config/validate-cache.ts")).loadRepositoryCached(load) : (await import("../../config/repository.ts")).loadRepository(load);
      const diagnostics = [...repo.diagnostics];
      const names = services.length ? services : repo.loads.map((l) => l.name);
      if (!opts.skipSecrets) {
        for (const name of names) {
          const s = repo.services.get(name);
          if (s) diagnostics.push(...resolveSecrets(name, s.dir, repo.envFromFile ? repo.env : undefined, process.env, secretsContext(ctx.root, process.env, repo.envFromFile ? repo.env.backend : undefined)).diagnostics);
        }
      }
      const errors = diagnostics.filter((d) => d.severity === "error").length;
      const warnings = diagnostics.length - errors;
      if (opts.json) {
        ctx.stdout(JSON.stringify({ valid: errors === 0, errors, warnings, environment: repo.envFromFile ? repo.env.name : null, diagnostics }, null, 2) + "\n");
      } else {
        if (ctx.verbose) {
          ctx.stderr(`repository ${ctx.root}\nenvironment ${repo.envFromFile ? `${repo.env.name} (${repo.env.kind}) from ${repo.env.file ?? "?"}` : "none loaded"}\n`);
          for (const name of names) {
            const bad = diagnostics.some((d) => d.severity === "error" && d.file.startsWith(`${ctx.root}/services/${name}/`));
            ctx.stderr(`  ${bad ? ctx.err.red("✗") : ctx.err.green("✓")} ${name}\n`);
          }
        }
        printDiagnostics(diagnostics, ctx.root, ctx.err, ctx.stderr);
        const envNote = repo.envFromFile ? `environment ${repo.env.name}` : ctx.envName ? `environment ${ctx.envName} (not loaded)` : "no environment selected (use --env)";
        const summary = `${names.length} service(s) checked against ${envNote}: ${errors} error(s), ${warnings} warning(s)`;
        ctx.stderr((errors ? ctx.err.red(summary) : ctx.err.green(summary)) + "\n");
      }
      process.exitCode = errors > 0 ? EXIT.failed : EXIT.ok;
    });
}
