/**
 * `POST /nodes/{node}/vzdump`: backups as pve-manager's VZDump and
 * pve-container's vzdump plugin make them for containers. One `vzdump` task
 * per request (its id the vmid when there is one guest), one job at a time
 * per node (the next waits for the global lock), each guest under `lock:
 * backup`; `snapshot` mode takes a temporary `vzdump` snapshot (falling back
 * to `suspend` when a backed-up volume cannot snapshot), `stop` mode stops a
 * running guest and starts it again. The archive
 * `vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.tar[.zst]` goes to the storage's
 * backups with notes from `notes-template`, `protected`, and the retention
 * of `prune-backups` applied when `remove` is on.
 */
import { volumeRef } from "../cluster.ts";
import type { Backup, GuestState } from "../cluster.ts";
import { failure, paramError } from "../errors.ts";
import { splitList } from "../formats.ts";
import type { PlacedVolume } from "../guest-backend.ts";
import type { PropertyFormat, Scalar } from "../params.ts";
import { parsePropertyString } from "../params.ts";
import { renderConfig } from "../pct-conf.ts";
import { archiveInfo, backupFileName, backupFormat, normalizePrunePolicy, pruneMarks } from "../storage.ts";
import type { PrunePolicy } from "../storage.ts";
import type { TaskContext } from "../tasks.ts";
import { NODE, STORAGE, checkNode, flag, num, str } from "./common.ts";
import type { Call, Endpoint, Reply, SandboxState } from "./types.ts";
import { isRunning } from "./lxc/checks.ts";
import { shellQuote } from "../shell-quote.ts";
import { startGuest } from "./lxc/lifecycle.ts";
import { removeLock, setLock } from "./lxc/locking.ts";
import { propertyOf } from "./lxc/schema.ts";
import { backupEnabled, hasFeature, snapshotCreate, snapshotDelete } from "./lxc/snapshots.ts";
import { mountKeys, mountType, rootfsRef, volumeOf } from "./lxc/volumes.ts";

const keep = { type: "integer", optional: true, minimum: 0 } as const;
/** `prune-backups`. */
const PRUNE_FORMAT: PropertyFormat = {
  fields: {
    "keep-all": { type: "boolean", optional: true },
    "keep-last": keep,
    "keep-hourly": keep,
    "keep-daily": keep,
    "keep-weekly": keep,
    "keep-monthly": keep,
    "keep-yearly": keep,
  },
};

function checkVmidList(v: string): string | undefined {
  return splitList(v).every((id) => /^[1-9][0-9]{2,8}$/.test(id)) ? undefined : "value does not look like a valid VMID list";
}

/** `notes-template` may use `{{cluster}}`, `{{guestname}}`, `{{node}}`, `{{vmid}}` and the escapes `\n`, `\\`. */
function notesTemplateProblems(template: string): string | undefined {
  if (template.includes("\n")) return "contains a line feed\n";
  const problems: string[] = [];
  for (const m of template.matchAll(/\\(.)/g)) if (!/^[n\\]$/.test(m[1] ?? "")) problems.push(`escape sequence '\\${m[1] ?? ""}' at char ${m.index}`);
  for (const m of template.matchAll(/\{\{([^\s{}]+)\}\}/g)) {
    const v = m[1] ?? "";
    if (!/^(cluster|guestname|node|vmid)$/.test(v)) problems.push(`variable '${v}' at char ${m.index + 2}`);
  }
  return problems.length > 0 ? `found unknown: ${problems.join(", ")}\n` : undefined;
}

/** The notes of a backup from its template. */
function notesFrom(template: string, vars: Record<string, string>): string {
  const unescaped = template.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : "\\"));
  return unescaped.replace(/\{\{(cluster|guestname|node|vmid)\}\}/g, (_m, k: string) => vars[k] ?? "");
}

/** `format_size` of vzdump's log. */
function formatSize(bytes: number): string {
  const kb = bytes / 1024;
  if (kb < 1024) return `${Math.floor(kb)}KB`;
  const mb = kb / 1024;
  if (mb < 1024) return `${Math.floor(mb)}MB`;
  const gb = mb / 1024;
  if (gb < 1024) return `${gb.toFixed(2)}GB`;
  return `${(gb / 1024).toFixed(2)}TB`;
}

function formatTime(seconds: number): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(Math.floor(seconds / 3600))}:${p(Math.floor((seconds % 3600) / 60))}:${p(seconds % 60)}`;
}

function stamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The job's options as the worker uses them. */
interface Job {
  node: string;
  storage: string;
  mode: "snapshot" | "suspend" | "stop";
  compress: string;
  notesTemplate: string | undefined;
  protected: boolean;
  remove: boolean;
  prune: PrunePolicy;
  stopwait: number;
}

/** One job at a time per node (vzdump's global lock): the next waits. */
const globalLocks = new WeakMap<SandboxState, Map<string, Promise<void>>>();

async function withGlobalLock(state: SandboxState, node: string, ctx: TaskContext, body: () => Promise<void>): Promise<void> {
  let locks = globalLocks.get(state);
  if (!locks) {
    locks = new Map();
    globalLocks.set(state, locks);
  }
  const before = locks.get(node);
  let release = (): void => undefined;
  const mine = new Promise<void>((resolve) => (release = resolve));
  locks.set(node, (before ?? Promise.resolve()).then(() => mine));
  if (before) {
    ctx.log("INFO: trying to get global lock - waiting...");
    await before;
    ctx.log("INFO: got global lock");
  }
  try {
    await body();
  } finally {
    release();
  }
}

/** The config a backup stores as `etc/vzdump/pct.conf`: without lock, snapshots, parent or pending changes. */
function archivedConfig(g: GuestState): string {
  const config = { ...g.config };
  delete config["lock"];
  delete config["parent"];
  return renderConfig(config);
}

/** Backs up one guest (`exec_backup_task`); throws what makes it fail. */
async function backupGuest(state: SandboxState, job: Job, vmid: number, ctx: TaskContext): Promise<void> {
  const info = (m: string): void => ctx.log(`INFO: ${m}`);
  const started = state.clock();
  const g0 = state.cluster.guests.get(vmid);
  if (!g0 || g0.node !== job.node) throw new Error(`unable to find VM '${vmid}'`);
  const def = state.cluster.storage(job.storage);
  const ours = state.cluster.backups(job.node).filter((b) => b.storage === job.storage && b.vmid === vmid);
  const limit = job.prune["keep-all"] ? 0 : Object.values(job.prune).reduce((a, b) => a + (b ?? 0), 0);
  if (limit > 0 && !job.remove && !job.protected && ours.filter((b) => !b.protected).length >= limit) {
    throw new Error(`There is a max backup limit of ${limit} enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.`);
  }
  const format = backupFormat(job.compress);
  const file = backupFileName(vmid, new Date(started), format);
  info(`Starting Backup of VM ${vmid} (lxc)`);
  info(`Backup started at ${stamp(started)}`);
  const running = await isRunning(state, g0);
  info(`status = ${running ? "running" : "stopped"}`);
  await setLock(state, job.node, vmid, "backup");
  let snapshot = false;
  let restart = false;
  try {
    const g = state.cluster.guest(job.node, vmid);
    let mode = running ? job.mode : "stop";
    if (g.config["hostname"] !== undefined) info(`CT Name: ${String(g.config["hostname"])}`);
    const mounts: PlacedVolume[] = [];
    const exclude: string[] = [];
    for (const key of mountKeys(g.config)) {
      const text = String(g.config[key]);
      const { enabled, reason } = backupEnabled(key, text);
      const path = key === "rootfs" ? "/" : String(propertyOf(key, text)["mp"]);
      const volume = volumeOf(key, text);
      if (!enabled) {
        exclude.push(path);
        info(`excluding ${mountType(volume)} mount point ${key} ('${path}') from backup (${reason})`);
        continue;
      }
      info(`including mount point ${key} ('${path}') in backup`);
      if (key === "rootfs") continue;
      const v = state.cluster.volume(job.node, volume);
      if (!v) throw new Error(`volume '${volume}' does not exist`);
      mounts.push({ path, volume: volumeRef(v) });
    }
    if (mode === "snapshot") {
      if (!hasFeature(state, job.node, g.config, "snapshot", undefined, true)) {
        info("mode failure - some volumes do not support snapshots");
        info("trying 'suspend' mode instead");
        mode = "suspend";
      } else if (g.snapshots["vzdump"] !== undefined) {
        info("found old vzdump snapshot (force removal)");
        await removeLock(state, job.node, vmid, "backup");
        await snapshotDelete(state, job.node, vmid, "vzdump", true, ctx);
        await setLock(state, job.node, vmid, "backup");
      }
    }
    info(`backup mode: ${mode}`);
    info("ionice priority: 7");
    if (mode === "stop" && running) {
      info("stopping virtual guest");
      await state.cluster.backend.shutdown(vmid, job.stopwait * 60, false);
      g.running = false;
      restart = true;
    }
    if (mode === "suspend") info("suspending guest");
    if (mode === "snapshot") {
      info("create storage snapshot 'vzdump'");
      await removeLock(state, job.node, vmid, "backup");
      await snapshotCreate(state, job.node, vmid, "vzdump", "vzdump backup snapshot", ctx);
      snapshot = true;
      await setLock(state, job.node, vmid, "backup");
    }
    const now = state.cluster.guest(job.node, vmid);
    const dir = def.path ?? `/mnt/pve/${job.storage}`;
    info(`creating vzdump archive '${dir}/dump/${file}'`);
    const { size } = await state.cluster.backend.writeBackup({
      vmid,
      archive: { node: job.node, storage: job.storage, file },
      compress: job.compress,
      config: archivedConfig(now),
      rootfs: rootfsRef(state, job.node, now.config),
      mounts,
      exclude,
      ...(mode === "snapshot" ? { snapshot: "vzdump" } : {}),
      freeze: mode === "suspend",
    });
    if (mode === "suspend") info("resuming guest");
    info(`archive file size: ${formatSize(size)}`);
    const volid = `${job.storage}:backup/${file}`;
    const backup: Backup = { volid, node: job.node, storage: job.storage, file, vmid, format, size, ctime: archiveInfo(file)?.ctime ?? Math.floor(started / 1000), notes: undefined, protected: false };
    state.cluster.addBackup(backup);
    if (job.notesTemplate !== undefined && job.notesTemplate !== "") {
      info("adding notes to backup");
      backup.notes = notesFrom(job.notesTemplate, { cluster: state.cluster.name, guestname: String(now.config["hostname"] ?? `CT${vmid}`), node: job.node, vmid: String(vmid) });
    }
    if (job.protected) {
      info("marking backup as protected");
      backup.protected = true;
    }
    if (job.remove) await prune(state, job, vmid, ctx);
  } finally {
    await removeLock(state, job.node, vmid, "backup").catch((e: unknown) => ctx.warn((e as Error).message));
    if (snapshot) {
      info("cleanup temporary 'vzdump' snapshot");
      await snapshotDelete(state, job.node, vmid, "vzdump", false, ctx).catch((e: unknown) => ctx.warn(`snapshot 'vzdump' was not (fully) removed - ${(e as Error).message}`));
    }
    if (restart) {
      info("restarting vm");
      await startGuest(state, state.cluster.guest(job.node, vmid), ctx);
      info(`guest is online again after ${Math.max(1, Math.round((state.clock() - started) / 1000))} seconds`);
    }
  }
  info(`Finished Backup of VM ${vmid} (${formatTime(Math.round((state.clock() - started) / 1000))})`);
  info(`Backup finished at ${stamp(state.clock())}`);
}

/** Applies the retention to the guest's backups on the storage (`prune_backups`); protected ones are kept and do not count. */
async function prune(state: SandboxState, job: Job, vmid: number, ctx: TaskContext): Promise<void> {
  if (job.prune["keep-all"]) return;
  const policy = Object.entries(job.prune).map(([k, v]) => `${k}=${String(v)}`).sort().join(", ");
  ctx.log(`INFO: prune older backups with retention: ${policy}`);
  const group = state.cluster.backups(job.node).filter((b) => b.storage === job.storage && b.vmid === vmid);
  const remove = pruneMarks(group.map((b) => ({ volid: b.volid, ctime: b.ctime, protected: b.protected })), job.prune);
  for (const volid of remove) {
    const b = state.cluster.backup(job.node, volid);
    if (!b) continue;
    ctx.log(`INFO: removing backup '${volid}'`);
    await state.cluster.backend.freeBackup({ node: b.node, storage: b.storage, file: b.file });
    state.cluster.removeBackup(b);
  }
  ctx.log(`INFO: pruned ${remove.length} backup(s)${remove.length > 0 ? " not covered by keep-retention policy" : ""}`);
}

/** vzdump's command line as it logs it. */
function commandLine(params: Record<string, Scalar>): string {
  const parts = ["vzdump"];
  if (params["vmid"] !== undefined) parts.push(...splitList(String(params["vmid"])));
  for (const [k, v] of Object.entries(params)) {
    if (k === "vmid" || k === "stdout" || k === "job-id") continue;
    const text = typeof v === "boolean" ? (v ? "1" : "0") : String(v);
    if (text !== "") parts.push(`--${k}`, shellQuote(text));
  }
  return parts.join(" ");
}

function vzdump(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  if (user !== "root@pam") {
    for (const key of ["tmpdir", "dumpdir", "script", "job-id"]) if (params[key] !== undefined) throw paramError({ [key]: "Only root may set this option." });
  }
  if (flag(params, "stdout") !== undefined) throw paramError({ stdout: "option is only allowed on the command line interface." });
  const vmidList = str(params, "vmid");
  if (flag(params, "all") && vmidList !== undefined) throw paramError({ all: "option conflicts with option 'vmid'" });
  if (str(params, "exclude") !== undefined && vmidList !== undefined) throw paramError({ exclude: "option conflicts with option 'vmid'" });
  if (str(params, "pool") !== undefined && vmidList !== undefined) throw paramError({ pool: "option conflicts with option 'vmid'" });
  let prunePolicy: PrunePolicy = { "keep-all": 1 };
  const pruneText = str(params, "prune-backups");
  if (pruneText !== undefined) {
    const parsed = parsePropertyString("prune-backups", PRUNE_FORMAT, pruneText);
    if ("errors" in parsed) throw paramError(parsed.errors);
    const normal = normalizePrunePolicy(Object.fromEntries(Object.entries(parsed.values).map(([k, v]) => [k, Number(v)])));
    if (typeof normal === "string") throw paramError({ "prune-backups": normal });
    prunePolicy = normal;
  }
  const template = str(params, "notes-template");
  if (template !== undefined) {
    const problem = notesTemplateProblems(template);
    if (problem !== undefined) throw paramError({ "notes-template": problem });
  }
  const all = flag(params, "all") ?? false;
  const stop = flag(params, "stop") ?? false;
  if (!all && !stop && str(params, "pool") === undefined && vmidList === undefined) throw paramError({ vmid: "property is missing" });
  const pool = str(params, "pool");
  if (pool !== undefined) throw failure(`pool '${pool}' does not exist`);
  const excluded = new Set(splitList(str(params, "exclude") ?? "").map(Number));
  const wanted = all
    ? [...state.cluster.guests.values()].filter((g) => g.node === node && !excluded.has(g.vmid)).map((g) => g.vmid)
    : splitList(vmidList ?? "").map(Number);
  const local = wanted.filter((id) => {
    const g = state.cluster.guests.get(id);
    return g === undefined || g.node === node;
  });
  const skipped = wanted.filter((id) => !local.includes(id));
  if (stop && local.length === 0) return Promise.resolve({ data: "OK" });
  if (local.length === 0 && !all) return Promise.resolve({ data: "OK" });
  const job: Job = {
    node,
    storage: str(params, "storage") ?? "local",
    mode: (str(params, "mode") ?? "snapshot") as Job["mode"],
    compress: str(params, "compress") ?? "0",
    notesTemplate: template,
    protected: flag(params, "protected") ?? false,
    remove: flag(params, "remove") ?? true,
    prune: prunePolicy,
    stopwait: num(params, "stopwait") ?? 10,
  };
  if (prunePolicy["keep-all"]) job.remove = false;
  const id = local.length === 1 ? String(local[0]) : "";
  const upid = state.tasks.start(node, "vzdump", id, user, {
    run: (ctx) =>
      withGlobalLock(state, node, ctx, async () => {
        ctx.log(`INFO: starting new backup job: ${commandLine(params)}`);
        if (skipped.length > 0) ctx.log(`INFO: skip external VMs: ${skipped.sort((a, b) => a - b).join(", ")}`);
        const def = state.cluster.storages.find((s) => s.storage === job.storage);
        if (!def) throw new Error(`could not activate storage '${job.storage}': storage '${job.storage}' does not exist`);
        if (!def.content.includes("backup")) throw new Error(`could not get storage information for '${job.storage}': can't use storage '${job.storage}' for backups - wrong content type`);
        let errors = 0;
        for (const vmid of [...local].sort((a, b) => a - b)) {
          try {
            await backupGuest(state, job, vmid, ctx);
          } catch (e) {
            errors++;
            ctx.log(`ERROR: Backup of VM ${vmid} failed - ${(e as Error).message}`);
          }
        }
        ctx.log(errors > 0 ? "INFO: Backup job finished with errors" : "INFO: Backup job finished successfully");
        if (errors > 0) throw new Error("job errors");
      }),
  });
  return Promise.resolve({ data: upid });
}

/** The endpoints of this module. */
export const vzdumpEndpoints: Endpoint[] = [
  {
    method: "POST",
    path: "/nodes/{node}/vzdump",
    params: {
      rules: {
        node: NODE,
        all: { type: "boolean", optional: true },
        bwlimit: { type: "integer", optional: true, minimum: 0 },
        compress: { type: "string", optional: true, enum: ["0", "1", "gzip", "lzo", "zstd"] },
        dumpdir: { type: "string", optional: true },
        exclude: { type: "string", optional: true, format: checkVmidList },
        "exclude-path": { type: "string", optional: true },
        fleecing: { type: "string", optional: true },
        ionice: { type: "integer", optional: true, minimum: 0, maximum: 8 },
        "job-id": { type: "string", optional: true, maxLength: 50, pattern: /^\S+$/ },
        lockwait: { type: "integer", optional: true, minimum: 0 },
        mailnotification: { type: "string", optional: true, enum: ["always", "failure"] },
        mailto: { type: "string", optional: true },
        maxfiles: { type: "integer", optional: true, minimum: 1 },
        mode: { type: "string", optional: true, enum: ["snapshot", "suspend", "stop"] },
        "notes-template": { type: "string", optional: true, maxLength: 1024, requires: "storage" },
        "notification-mode": { type: "string", optional: true, enum: ["auto", "legacy-sendmail", "notification-system"] },
        "pbs-change-detection-mode": { type: "string", optional: true, enum: ["legacy", "data", "metadata"] },
        performance: { type: "string", optional: true },
        pigz: { type: "integer", optional: true },
        pool: { type: "string", optional: true },
        protected: { type: "boolean", optional: true, requires: "storage" },
        "prune-backups": { type: "string", optional: true, property: PRUNE_FORMAT },
        quiet: { type: "boolean", optional: true },
        remove: { type: "boolean", optional: true },
        script: { type: "string", optional: true },
        stdexcludes: { type: "boolean", optional: true },
        stdout: { type: "boolean", optional: true },
        stop: { type: "boolean", optional: true },
        stopwait: { type: "integer", optional: true, minimum: 0 },
        storage: { ...STORAGE, optional: true },
        tmpdir: { type: "string", optional: true },
        vmid: { type: "string", optional: true, format: checkVmidList },
        zstd: { type: "integer", optional: true },
      },
    },
    handle: vzdump,
  },
];
