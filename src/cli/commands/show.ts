import type { Command } from "@commander-js/extra-typings";
import type { EnvironmentConfig } from "../../config/environment.ts";
import type { ResolvedService } from "../../config/resolve.ts";
import type { Service } from "../../config/service.ts";
import type { Inventory } from "../../proxmox/inventory.ts";
import { makeContext, type CliContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import { problemText } from "../../plan/types.ts";
import { printDiagnostics } from "../output.ts";

/** `homelab show SERVICE`: the service fully resolved. */
export function registerShow(program: Command<[], GlobalOptions>): void {
  program
    .command("show")
    .description("show a service fully resolved: defaults from the environment, dependencies, secrets (never values), health checks")
    .argument("<service>", "the service's name")
    .option("--json", "print the resolved service as JSON")
    .option("--plan", "also ask the environment's Proxmox API where it would go: the template and node chosen, and why the others were not")
    .action(async (name, opts, cmd) => {
      const { loadRepository } = await import("../../config/repository.ts");
      const { resolveService } = await import("../../config/resolve.ts");
      const { resolveSecrets } = await import("../../config/secrets.ts");
      const { secretsContext } = await import("../../session/secrets-context.ts");
      const ctx = makeContext(cmd.optsWithGlobals());
      const repo = loadRepository({ root: ctx.root, envName: ctx.envName, only: [name] });
      const service = repo.services.get(name);
      const envErrors = repo.diagnostics.filter((d) => d.severity === "error" && !d.file.startsWith(service?.dir ?? "\0"));
      if (ctx.envName && !repo.envFromFile && envErrors.length > 0) {
        printDiagnostics(envErrors, ctx.root, ctx.err, ctx.stderr);
        ctx.stderr(ctx.err.red(`environment ${ctx.envName} is not valid; fix the problems above (homelab validate --env ${ctx.envName})`) + "\n");
        process.exitCode = EXIT.failed;
        return;
      }
      if (!service) {
        printDiagnostics(repo.diagnostics, ctx.root, ctx.err, ctx.stderr);
        ctx.stderr(ctx.err.red(`service ${name} is not valid; fix the problems above (homelab validate ${name})`) + "\n");
        process.exitCode = EXIT.failed;
        return;
      }
      const secrets = resolveSecrets(name, service.dir, repo.envFromFile ? repo.env : undefined, process.env, secretsContext(ctx.root, process.env, repo.envFromFile ? repo.env.backend : undefined));
      const resolved = resolveService(service, repo.env, secrets.statuses, ctx.root);
      if (opts.json) {
        ctx.stdout(JSON.stringify(resolved, null, 2) + "\n");
        if (opts.plan) ctx.stderr("--plan is shown in the human output only; use deploy --dry-run --json for plans as data\n");
        return;
      }
      printHuman(resolved, repo.envFromFile, ctx);
      printDiagnostics(repo.diagnostics.filter((d) => d.severity === "warning"), ctx.root, ctx.err, ctx.stderr);
      if (opts.plan) process.exitCode = await printPlacement(service, repo.env, ctx);
    });
}

/**
 * Plans the service against a fresh inventory and prints the placement
 * explanation. It reads no deployment state (that would load Pulumi), so a
 * deployed container counts as deployed on the node where a container with its
 * hostname and service tag runs; its template is re-chosen as for a new one.
 */
async function printPlacement(service: Service, env: EnvironmentConfig, ctx: CliContext): Promise<number> {
  const { connectProxmox, isRequestLogLine } = await import("../../proxmox/connect.ts");
  const { planService } = await import("../../plan/plan.ts");
  const { explainPlacement } = await import("../render/changes.ts");
  const o = ctx.out;
  let inventory: Inventory;
  try {
    const client = connectProxmox(env, { processEnv: process.env, ci: process.env["CI"] === "true", logger: (l) => void (isRequestLogLine(l) || ctx.stderr(`homelab: ${l}\n`)) });
    try {
      inventory = await client.loadInventory();
    } finally {
      await client.close();
    }
  } catch (e) {
    const err = e as Error & { hint?: string };
    ctx.stderr(ctx.err.red(`cannot read the cluster of environment ${env.name}: ${err.message}`) + (err.hint ? `\n  hint: ${err.hint}` : "") + "\n");
    return EXIT.failed;
  }
  const current = new Map<string, { node: string }>();
  for (const r of service.resources) {
    if (r.type !== "proxmox:container") continue;
    const hostname = typeof r.spec["hostname"] === "string" ? r.spec["hostname"] : r.id.replace(/_/g, "-").toLowerCase();
    const g = inventory.guests.find((x) => x.type === "lxc" && x.name === hostname && x.tags.includes(service.name) && x.tags.includes("homelab"));
    if (g) current.set(r.id, { node: g.node });
  }
  const { plan, problems } = planService({ service, env, inventory, current, sshPublicKey: "" });
  const lines = ["", o.bold(`placement in ${env.name}`) + o.dim(` (${inventory.nodes.length} nodes, ${inventory.templates.length} templates, ${inventory.requests} requests)`)];
  for (const p of problems) lines.push(o.red(`  ${problemText(p)}`) + (p.hint ? o.dim(`\n    hint: ${p.hint}`) : ""));
  for (const r of plan?.resources ?? []) {
    if (r.kind !== "proxmox:container") continue;
    lines.push(`  ${o.cyan(r.id)}`, ...explainPlacement(r, o, "    "));
  }
  ctx.stdout(lines.join("\n") + "\n");
  return problems.length > 0 ? EXIT.failed : EXIT.ok;
}

function fmt(v: unknown): string {
  if (Array.isArray(v)) return v.length ? v.map(fmt).join(", ") : "none";
  if (v && typeof v === "object" && Object.keys(v).length === 0) return "none";
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${fmt(x)}`).join(", ");
  return String(v);
}

function printHuman(s: ResolvedService, envFromFile: boolean, ctx: CliContext): void {
  const o = ctx.out;
  const lines: string[] = [];
  lines.push(`${o.bold(s.name)}${s.description ? ` — ${s.description}` : ""}`);
  lines.push(`  file         ${s.path}`);
  lines.push(`  environment  ${s.environment.name} (${s.environment.kind})${envFromFile ? "" : o.dim(" — no environment file: built-in defaults")}`);
  if (s.depends_on_services.length) lines.push(`  depends on   services ${s.depends_on_services.join(", ")}`);
  lines.push("");
  lines.push(o.bold("resources"));
  for (const r of s.resources) {
    const flags = [r.protect ? o.yellow("protected") : "", r.depends_on.length ? `after ${r.depends_on.map((d) => d.ref).join(", ")}` : ""].filter(Boolean).join("; ");
    lines.push(`  ${o.cyan(r.id)}  ${o.dim(r.type)}${flags ? `  (${flags})` : ""}`);
    for (const [k, v] of Object.entries(r.spec)) {
      if (v === undefined) continue;
      lines.push(`    ${k.padEnd(12)} ${fmt(v)}`);
    }
  }
  lines.push("");
  lines.push(o.bold("secrets"));
  if (s.secrets.length === 0) lines.push(o.dim("  none required (no .secrets.example.yaml)"));
  for (const sec of s.secrets) {
    const state =
      sec.provided === "env" ? o.green(`provided by $${sec.envVar}`)
      : sec.provided === "file" ? o.green("provided by .secrets.yaml")
      : sec.provided === "sops" ? o.green("provided by .secrets.sops.yaml (decrypted at deploy)")
      : sec.provided === "command" ? o.green(`fetched at deploy by \`${sec.from ?? "a command"}\``)
      : sec.provided === "esc" ? o.yellow("expected from Pulumi ESC (checked at deploy)")
      : sec.from !== undefined ? o.red(`MISSING: it would come from ${sec.from} (homelab validate says what to do)`)
      : o.red(`MISSING: set $${sec.envVar} or add it to .secrets.yaml (homelab validate says every way)`);
    lines.push(`  ${sec.key.padEnd(20)} ${state}`);
  }
  lines.push("");
  lines.push(o.bold("monitoring"));
  const m = s.monitoring;
  if (m.health_checks.length === 0) lines.push(o.dim("  no health checks"));
  for (const c of m.health_checks) {
    const target = c.type === "http" ? c.url : c.type === "tcp" ? `${c.host ?? "{address}"}:${c.port}` : Array.isArray(c.command) ? c.command.join(" ") : c.command;
    lines.push(`  ${c.type.padEnd(8)} ${target}  every ${c.interval}s, timeout ${c.timeout}s, unhealthy after ${c.retries} failures`);
  }
  lines.push(`  auto-remediate ${m.auto_remediate ? `yes (${m.restart_first ? "restart first, then recreate" : "recreate"}; at most ${m.max_remediations_per_hour}/hour)` : "no"}`);
  ctx.stdout(lines.join("\n") + "\n");
}
