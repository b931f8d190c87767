/**
 * vzdump archives of the lxc backend, as pve-container writes and reads
 * them: a tar of the guest's tree with `./etc/vzdump/pct.conf` (and an empty
 * `pct.fw`) first, each backed-up mount point's files at its path, made with
 * Proxmox's tar flags and compressed as asked. Writing and unpacking happen
 * in a private mount namespace (`unshare --mount`) where the guest's root,
 * its /var/lib/docker and its volumes are mounted together, so nothing is
 * left mounted on the host even when the sandbox dies midway. Commands are
 * built here as data (pure); the backend runs them.
 */
import { shellQuote } from "../shell-quote.ts";
import { bindMountCommand, overlayMountCommand, parentsFirst } from "./commands.ts";
import { formatArgv } from "./exec.ts";
import type { Command } from "./exec.ts";

/** Proxmox's tar flags (`@PVE::Storage::Plugin::COMMON_TAR_FLAGS`). */
const COMMON_TAR_FLAGS = [
  "--one-file-system",
  "-p",
  "--sparse",
  "--numeric-owner",
  "--acls",
  "--xattrs",
  "--xattrs-include=user.*",
  "--xattrs-include=security.capability",
  "--warning=no-file-ignored",
  "--warning=no-xattr-write",
];

/** vzdump's standard excludes (`stdexcludes`, on by default), anchored at the guest's root. */
const STD_EXCLUDES = ["./tmp/?*", "./var/tmp/?*", "./var/run/?*.pid"];

/** The compressor a `compress` value runs, and the decompressor of an archive's extension. */
function compressor(compress: string): string | undefined {
  switch (compress) {
    case "zstd":
      return "zstd -q --threads=1";
    case "gzip":
      return "gzip --rsyncable";
    case "1":
    case "lzo":
      return "lzop";
    default:
      return undefined;
  }
}

function decompressor(file: string): string {
  if (file.endsWith(".tar.zst")) return "zstd -q -dc";
  if (file.endsWith(".tar.gz")) return "gzip -dc";
  if (file.endsWith(".tar.lzo")) return "lzop -dc";
  return "cat";
}

/** A folder mounted somewhere below the guest's root while an archive is written or unpacked. */
export interface StagedMount {
  /** Absolute path inside the guest (`/data`). */
  path: string;
  /** The host folder mounted there. */
  source: string;
}

/** Mount commands for `mounts` below `stage`, parents first. */
function stageMounts(stage: string, mounts: readonly StagedMount[]): string[] {
  return parentsFirst(mounts).flatMap((m) => [`mkdir -p ${shellQuote(`${stage}${m.path}`)}`, formatArgv(bindMountCommand(m.source, `${stage}${m.path}`).argv)]);
}

/** What a backup reads and where it writes. */
export interface BackupPlan {
  /** Lower layers of the guest's root, top first (`[upper, base]` or `[root]`), mounted read-only below a scratch layer. */
  rootLayers: string[];
  /** The guest's /var/lib/docker and each backed-up volume, at their paths. */
  mounts: StagedMount[];
  /** A scratch folder for this backup, made here; the caller removes it once the command has ended (and its mounts with it). */
  scratch: string;
  /** The archive's path; written as `<out>.dat` and renamed when complete. */
  out: string;
  compress: string;
}

/**
 * The backup command: the guest's config (given on stdin) as
 * `./etc/vzdump/pct.conf`, then its tree and each mount point, as
 * pve-container's `archive` runs tar (`--one-file-system` from `./` and from
 * each mount point), compressed.
 */
export function backupCommand(p: BackupPlan): Command {
  const q = shellQuote;
  const stage = `${p.scratch}/stage`;
  // Made first: it refuses layer and scratch paths that mount(8) and overlayfs would split.
  const overlay = formatArgv(overlayMountCommand(p.rootLayers, { upper: `${p.scratch}/upper`, work: `${p.scratch}/work` }, stage).argv);
  const conf = `${p.scratch}/conf`;
  const comp = compressor(p.compress);
  const sources = ["./", ...[...p.mounts].map((m) => `.${m.path}`)];
  const tar = [
    "tar",
    "-cpf",
    "-",
    "--totals",
    ...COMMON_TAR_FLAGS,
    "-C",
    q(conf),
    "./etc/vzdump/pct.conf",
    "./etc/vzdump/pct.fw",
    "-C",
    q(stage),
    "--anchored",
    ...STD_EXCLUDES.map((e) => `--exclude=${q(e)}`),
    ...sources.map(q),
  ].join(" ");
  const script = [
    "set -euo pipefail",
    `mkdir -p ${q(`${conf}/etc/vzdump`)} ${q(`${p.scratch}/upper`)} ${q(`${p.scratch}/work`)} ${q(stage)}`,
    `cat > ${q(`${conf}/etc/vzdump/pct.conf`)}`,
    `: > ${q(`${conf}/etc/vzdump/pct.fw`)}`,
    overlay,
    ...stageMounts(stage, p.mounts),
    `${tar} ${comp ? `| ${comp} ` : ""}> ${q(`${p.out}.dat`)}`,
    `mv ${q(`${p.out}.dat`)} ${q(p.out)}`,
  ].join("\n");
  return { argv: ["unshare", "--mount", "--propagation", "private", "--", "bash", "-c", script, "vzdump"], timeoutMs: 2 * 60 * 60_000 };
}

/** What a restore unpacks into. */
export interface RestorePlan {
  archive: string;
  /** The new root's tree (an empty folder). */
  root: string;
  /** The guest's /var/lib/docker and each volume, at their paths. */
  mounts: StagedMount[];
  /** A scratch folder, made here; the caller removes it once the command has ended. */
  scratch: string;
}

/**
 * The restore command: unpacks an archive into a new root with its volumes
 * mounted at their paths, as `restore_tar_archive` does (`--skip-old-files`,
 * `./dev/*` left out), then removes the archive's `etc/vzdump/` files as
 * pve-container does once it has read them.
 */
export function restoreCommand(p: RestorePlan): Command {
  const q = shellQuote;
  const stage = `${p.scratch}/stage`;
  const tar = ["tar", "-xpf", "-", "--totals", ...COMMON_TAR_FLAGS, "-C", q(stage), "--skip-old-files", "--anchored", "--exclude", q("./dev/*")].join(" ");
  const script = [
    "set -euo pipefail",
    `mkdir -p ${q(stage)}`,
    formatArgv(bindMountCommand(p.root, stage).argv),
    ...stageMounts(stage, p.mounts),
    `${decompressor(p.archive)} < ${q(p.archive)} | ${tar}`,
    `rm -f ${q(`${stage}/etc/vzdump/pct.conf`)} ${q(`${stage}/etc/vzdump/pct.fw`)}`,
    `rmdir ${q(`${stage}/etc/vzdump`)} 2>/dev/null || true`,
  ].join("\n");
  return { argv: ["unshare", "--mount", "--propagation", "private", "--", "bash", "-c", script, "vzrestore"], timeoutMs: 2 * 60 * 60_000 };
}

/** Reads `./etc/vzdump/pct.conf` from an archive (the first member: tar stops there, so only tar's status counts). */
export function readConfigCommand(archive: string): Command {
  const script = `${decompressor(archive)} < ${shellQuote(archive)} 2>/dev/null | tar -xOf - --occurrence ./etc/vzdump/pct.conf; exit \${PIPESTATUS[1]}`;
  return { argv: ["bash", "-c", script], timeoutMs: 10 * 60_000 };
}
