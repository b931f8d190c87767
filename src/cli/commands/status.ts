import type { Command } from "@commander-js/extra-typings";
import type { ServiceStatusRow } from "../../engine/status.ts";
import type { KeptContainer } from "../../data/kept.ts";
import { CONTAINER_TYPE } from "../../provider/tokens.ts";
import { withEnvironment, type CliContext, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";

/** `homelab status [SERVICE]`: what is deployed, from the state. */
export function registerStatus(program: Command<[], GlobalOptions>): void {
  program
    .command("status")
    .description("what is deployed per service (stack, last update, resources with node, vmid, address), orphaned stacks, services never deployed")
    .argument("[service]", "only this service")
    .option("--json", "print {environment, backend, services: [...]}")
    .action((service, opts, cmd) => withEnvironment(cmd, (ctx) => runStatus(ctx, service, opts.json === true)));
}

async function runStatus(ctx: EnvContext, service: string | undefined, json: boolean): Promise<number> {
  const { DeploySession } = await import("../../session/session.ts");
  const session = new DeploySession({ root: ctx.root, envName: ctx.envName });
  const noSuchService = (): number => {
    ctx.stderr(`homelab: no service "${service ?? ""}" here and no stack ${ctx.envName}.${service ?? ""}\n`);
    return EXIT.failed;
  };
  if (json) {
    // The status page's model: the same fields as before, and what the page shows.
    const { rows, model } = await session.statusModel(service);
    if (service !== undefined && rows.length === 0) return noSuchService();
    ctx.stdout(JSON.stringify(model, null, 2) + "\n");
    return EXIT.ok;
  }
  const { rows, health, backend } = await session.status(service);
  const kept = await session.keptData(service);
  if (service !== undefined && rows.length === 0 && (kept.status !== "read" || kept.kept.length === 0)) return noSuchService();
  ctx.stdout(statusText(rows, ctx, backend, Date.now(), health) + "\n");
  if (kept.status === "read" && kept.kept.length > 0) ctx.stdout(keptText(kept.kept, ctx) + "\n");
  if (kept.status === "unreadable") ctx.stdout(ctx.out.dim(`  kept data: the cluster could not be read (${kept.message})`) + "\n");
  return EXIT.ok;
}

/** Containers kept with a service's data after a destroy: orphaned data, with how to reattach or delete it. Pure. */
export function keptText(kept: readonly KeptContainer[], ctx: Pick<CliContext, "out">): string {
  const o = ctx.out;
  const lines = [o.bold("Orphaned data") + o.dim(" (containers kept with a service's volumes after a destroy)")];
  for (const k of kept) {
    const size = k.volumes.reduce((n, v) => n + (v.sizeGb ?? 0), 0);
    lines.push(`  ${o.yellow(k.identity.service)}  CT ${k.vmid} on ${k.node}, stopped: ${k.volumes.map((v) => `${v.path ?? v.key}${v.sizeGb !== undefined ? ` ${v.sizeGb} GB` : ""}`).join(", ")}${size > 0 ? ` (${size} GB)` : ""}${k.keptAt ? o.dim(` since ${k.keptAt}`) : ""}`);
    lines.push(o.dim(`    reattach: homelab deploy ${k.identity.service}   delete: homelab destroy ${k.identity.service} --delete-data`));
  }
  return lines.join("\n");
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** The human status table. Pure apart from the clock. */
export function statusText(
  rows: readonly ServiceStatusRow[],
  ctx: Pick<CliContext, "out" | "envName">,
  backend: string,
  now = Date.now(),
  health: ReadonlyMap<string, { health: string; remediation: string | undefined } | undefined> = new Map(),
): string {
  const o = ctx.out;
  const lines = [`${o.bold("Environment")} ${ctx.envName ?? ""} ${o.dim(`(state: ${backend})`)}`];
  if (rows.length === 0) lines.push(o.dim("  no services and no stacks"));
  const width = Math.max(0, ...rows.map((r) => r.service.length));
  for (const r of rows) {
    const state = r.state === "deployed" ? o.green("deployed") : r.state === "orphaned" ? o.red("ORPHANED") : o.dim("never deployed");
    const when = r.lastUpdate ? o.dim(`  last update ${r.lastUpdate.replace("T", " ").replace(/\.\d+Z$/, "Z")} (${ago(r.lastUpdate, now)})`) : "";
    lines.push(`${o.bold(r.service.padEnd(width))}  ${state}  ${o.dim(r.stack)}${when}`);
    if (r.state === "orphaned") lines.push(`  ${o.yellow(`services/${r.service} is gone but its stack remains: \`homelab destroy ${r.service} --env ${ctx.envName ?? ""}\` removes its resources`)}`);
    const idWidth = Math.max(0, ...r.resources.map((x) => x.id.length));
    for (const x of r.resources) {
      const facts =
        x.detail !== undefined || x.type !== CONTAINER_TYPE
          ? [x.detail ?? "", x.protect ? o.yellow("protected") : ""].filter((f) => f !== "")
          : [x.node ?? "", x.vmid !== undefined ? `vmid ${x.vmid}` : "", x.address ?? o.dim("no address yet"), x.protect ? o.yellow("protected") : ""].filter((f) => f !== "");
      lines.push(`  ${x.id.padEnd(idWidth)}  ${facts.join("  ")}`);
    }
    const h = health.get(r.service);
    if (h) {
      const healthy = h.health.startsWith("healthy");
      lines.push(`  health  ${healthy ? o.green(h.health) : o.yellow(h.health)}`);
      if (h.remediation) lines.push(`  last repair  ${h.remediation}`);
    }
    if (r.pendingOperations > 0) lines.push(`  ${o.yellow(`${r.pendingOperations} operation(s) left pending by an interrupted run; the next deploy resolves them`)}`);
    if (r.lock) lines.push(`  ${o.yellow(`locked by ${r.lock}`)}`);
  }
  return lines.join("\n");
}
