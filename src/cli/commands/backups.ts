import type { Command } from "@commander-js/extra-typings";
import type { BackupsReport, RestoreOutcome } from "../../session/session.ts";
import { withEnvironment, type EnvContext, type GlobalOptions } from "../context.ts";
import { EXIT } from "../exit-codes.ts";
import type { Style } from "../output.ts";
import { askTyped } from "../terminal.ts";

/** `homelab backups [SERVICE]` and `homelab restore SERVICE [--from NAME]`. */
export function registerBackups(program: Command<[], GlobalOptions>): void {
  program
    .command("backups")
    .description("list the snapshots and backups homelab took before destructive steps, and containers kept with a service's data")
    .argument("[service]", "only this service")
    .option("--json", "as JSON")
    .action((service, opts, cmd) => withEnvironment(cmd, (ctx) => runBackups(ctx, service, opts.json === true)));
  program
    .command("restore")
    .description("bring a service's container back to a snapshot or backup (the newest unless --from), after a backup of its current state; then deploy the service's current definition over it")
    .argument("<service>", "the service to restore")
    .option("--from <name>", "a snapshot name, a backup volid or file name, or a deploy id (homelab backups lists them)")
    .option("--resource <id>", "the container, when the service has several")
    .option("--no-deploy", "leave the container as restored (the stack is refreshed; the next deploy re-applies the service)")
    .option("-y, --yes", "do not ask")
    .addHelpText("after", "\nThe container's disks (root and volumes) come back as they were at that point; its current state is\nbacked up first. A service that is not deployed gets the backup restored into a new container whose\nvolumes its next deploy takes over.")
    .action((service, opts, cmd) => withEnvironment(cmd, (ctx) => runRestore(ctx, service, { ...(opts.from !== undefined ? { from: opts.from } : {}), ...(opts.resource !== undefined ? { resource: opts.resource } : {}), deploy: opts.deploy, yes: opts.yes === true })));
}

const when = (ms: number): string => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
const mib = (bytes: number | undefined): string => (bytes === undefined ? "" : `${Math.max(1, Math.round(bytes / 1024 / 1024))} MiB`);

/** The listing, as `homelab backups` prints it. Pure. */
export function backupsText(r: BackupsReport, o: Style): string {
  const lines: string[] = [];
  if (r.entries.length === 0) lines.push(o.dim(`no snapshots or backups taken by homelab (backups go to storage ${r.storage})`));
  let last = "";
  for (const e of r.entries) {
    const head = `${e.service}/${e.resource}`;
    if (head !== last) lines.push(o.bold(head));
    last = head;
    lines.push(`  ${e.kind === "snapshot" ? o.cyan("snapshot") : o.green("backup  ")}  ${when(e.takenAt)}  ${e.name}  ${o.dim([`CT ${e.vmid} on ${e.node}`, mib(e.size), e.why, e.protected ? "protected" : ""].filter(Boolean).join(", "))}`);
  }
  for (const k of r.kept) {
    const size = k.volumes.reduce((n, v) => n + (v.sizeGb ?? 0), 0);
    lines.push(`${o.yellow("kept data")}  ${k.identity.service}/${k.identity.resource}: CT ${k.vmid} on ${k.node} (stopped) holds ${k.volumes.length} volume(s)${size > 0 ? `, ${size} GB` : ""}${k.keptAt ? ` since ${k.keptAt}` : ""}`);
    lines.push(o.dim(`  reattach: homelab deploy ${k.identity.service}   delete: homelab destroy ${k.identity.service} --delete-data`));
  }
  return lines.join("\n");
}

async function runBackups(ctx: EnvContext, service: string | undefined, json: boolean): Promise<number> {
  const { DeploySession } = await import("../../session/session.ts");
  const r = await new DeploySession({ root: ctx.root, envName: ctx.envName }).backups(service);
  ctx.stdout((json ? JSON.stringify(r, null, 2) : backupsText(r, ctx.out)) + "\n");
  return EXIT.ok;
}

/** The lines of a restore's outcome. Pure. */
export function restoreText(service: string, r: RestoreOutcome, o: Style): string {
  switch (r.status) {
    case "none":
      return o.red(r.from === undefined ? `no snapshot or backup of ${service} to restore` : `no snapshot or backup of ${service} named ${r.from}`) + (r.available.length > 0 ? `\n  available: ${r.available.join(", ")}` : "");
    case "ambiguous":
      return o.red(`${service} has ${r.resources.length} containers: say which with --resource (${r.resources.join(", ")})`);
    case "restored": {
      const lines = [
        `${o.bold(service)}  ${o.green("restored")} ${r.into === "same" ? `CT ${r.vmid}` : `into a new CT ${r.vmid}`} from ${r.entry.kind} ${r.entry.name} (${when(r.entry.takenAt)}) in ${(r.durationMs / 1000).toFixed(1)} s`,
      ];
      if (r.safetyBackup) lines.push(o.dim(`  what it held before is in backup ${r.safetyBackup}`));
      if (r.into === "new") lines.push(o.dim(`  its volumes go to ${service}'s next container: homelab deploy ${service}`));
      if (r.deploy) lines.push(`  deploy: ${r.deploy.status}${r.deploy.error ? ` — ${r.deploy.error.message}` : ""}`);
      else if (r.into === "same") lines.push(o.dim(`  left as restored; ${r.refreshed ? "the stack knows it" : "run homelab deploy --refresh"}; the next deploy re-applies ${service}'s definition`));
      return lines.join("\n");
    }
  }
}

async function runRestore(ctx: EnvContext, service: string, o: { from?: string; resource?: string; deploy: boolean; yes: boolean }): Promise<number> {
  if (!o.yes) {
    if (!(process.stdin.isTTY && process.stdout.isTTY)) {
      ctx.stderr(`homelab: restore replaces what ${service}'s container holds now (after backing it up); not on a terminal, so it cannot ask: pass --yes\n`);
      return EXIT.usage;
    }
    if (!(await askTyped(`This brings ${service} back to ${o.from ?? "its newest snapshot or backup"} in ${ctx.envName}; what it holds now is backed up first.`, service))) {
      ctx.stdout("nothing restored\n");
      return EXIT.ok;
    }
  }
  const { DeploySession } = await import("../../session/session.ts");
  const r = await new DeploySession({ root: ctx.root, envName: ctx.envName }).restore(service, o);
  ctx.stdout(restoreText(service, r, ctx.out) + "\n");
  if (r.status !== "restored") return EXIT.failed;
  return r.deploy && r.deploy.status !== "applied" && r.deploy.status !== "unchanged" ? EXIT.failed : EXIT.ok;
}
