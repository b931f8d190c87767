/**
 * The file set of a compose deployment: where it lives in the container and
 * what its names are, the files homelab writes besides the compose files (the
 * `compose` wrapper, the systemd unit, Docker's registry settings), and the
 * content hashes of the whole set. All pure.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { cmd, quote, systemdQuote } from "./shell.ts";

/** Where deployments live inside containers. */
const DEFAULT_BASE_DIR = "/opt/homelab";

/** Compose's rule for project names (the same as homelab's service names). */
const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** A deployment that cannot be built, with what to fix. */
export class ComposeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ComposeInputError";
  }
}

/** The compose project name of a service (its name; compose and homelab share the rule). */
export function composeProjectName(service: string): string {
  if (!PROJECT_NAME.test(service)) throw new ComposeInputError(`service name "${service}" is not a valid compose project name (lowercase letters, digits, _ and -)`);
  return service;
}

/** The systemd unit name of a service's compose project. */
export function unitName(service: string): string {
  return `homelab-${composeProjectName(service)}.service`;
}

/** The folder of a service's deployment inside the container. */
export function deploymentDir(service: string, baseDir = DEFAULT_BASE_DIR): string {
  return posix.join(baseDir, composeProjectName(service));
}

/** A path relative to the service folder, normalised; refuses one that leaves it or breaks lines. */
export function normalizeRelative(p: string, what: string): string {
  const norm = posix.normalize(p.replace(/\\/g, "/"));
  if (norm.startsWith("/") || norm === ".." || norm.startsWith("../") || norm === ".") throw new ComposeInputError(`${what} "${p}" must be a path inside the service folder`);
  if (/[\0\n\r]/.test(p)) throw new ComposeInputError(`${what} "${p.replace(/[\0\n\r]/g, "?")}" contains a NUL or line break: rename the file`);
  return norm.replace(/^\.\//, "").replace(/\/+$/, "");
}

/** A registry the deployment pulls from. */
export interface RegistryAccess {
  /** `host[:port]`, as in image references (an `http(s)://` prefix is dropped). */
  url: string;
  /** Plain HTTP: Docker must list it under insecure-registries. */
  insecure: boolean;
  username?: string;
  password?: string;
}

/** What a file is for; the apply script decides what to reload from this. */
export type FileRole = "compose" | "volumes" | "secrets" | "wrapper" | "unit" | "daemon-json" | "docker-config";

/** One file to write in the container. */
export interface DeployFile {
  path: string;
  content: string;
  mode: number;
  role: FileRole;
  /** Holds secret values: never printed, hashed apart. */
  secret: boolean;
}

/** Content hashes: stable for the same input, whatever the order of secrets or registries. */
export interface DeploymentHashes {
  /** Everything that is not secret (compose files, wrapper, unit, registry settings). */
  files: string;
  /** The secret files only; pass it to Pulumi as a secret. */
  secrets: string;
  /** Both: changes whenever anything deployed changes. */
  all: string;
  /** Per non-secret file path, so a preview can say which file changed. */
  perFile: Record<string, string>;
}

function stripScheme(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/+$/, "");
}

/** Docker's daemon.json listing the insecure registries (sorted, so the file is stable). */
export function daemonJson(registries: readonly RegistryAccess[]): string | undefined {
  const insecure = [...new Set(registries.filter((r) => r.insecure).map((r) => stripScheme(r.url)))].sort();
  if (insecure.length === 0) return undefined;
  return `${JSON.stringify({ "insecure-registries": insecure }, null, 2)}\n`;
}

/** Docker's client config with credentials for registries that need them. */
export function dockerConfigJson(registries: readonly RegistryAccess[]): string | undefined {
  const withAuth = registries.filter((r) => r.username !== undefined && r.password !== undefined);
  if (withAuth.length === 0) return undefined;
  const auths: Record<string, { auth: string }> = {};
  for (const r of [...withAuth].sort((a, b) => (a.url < b.url ? -1 : 1))) {
    auths[stripScheme(r.url)] = { auth: Buffer.from(`${r.username ?? ""}:${r.password ?? ""}`).toString("base64") };
  }
  return `${JSON.stringify({ auths }, null, 2)}\n`;
}

/** The `compose` wrapper: exports the secrets, then runs `docker compose` (v2) or `docker-compose` (v1) for the project. */
export function composeWrapper(o: { service: string; dir: string; composePaths: readonly string[] }): string {
  const project = composeProjectName(o.service);
  const files = o.composePaths.flatMap((p) => ["-f", p]);
  return [
    "#!/bin/sh",
    `# homelab: Docker Compose for the project ${project}, with the service's secrets. Usage: ./compose ps | logs | up -d ...`,
    "set -eu",
    `cd ${quote(o.dir)}`,
    ". ./secrets.env",
    "if docker compose version >/dev/null 2>&1; then",
    `  exec ${cmd("docker", "compose", "-p", project, ...files)} "$@"`,
    "elif command -v docker-compose >/dev/null 2>&1; then",
    `  exec ${cmd("docker-compose", "-p", project, ...files)} "$@"`,
    "else",
    `  echo "homelab: neither 'docker compose' nor 'docker-compose' is installed" >&2`,
    "  exit 127",
    "fi",
    "",
  ].join("\n");
}

/** The systemd unit: `up -d --remove-orphans` at start (and on reload), `down` at stop, after Docker. */
export function systemdUnit(o: { service: string; dir: string; startTimeoutSec?: number }): string {
  const project = composeProjectName(o.service);
  const wrapper = systemdQuote(posix.join(o.dir, "compose"));
  return [
    "# Written by homelab; the next deploy rewrites it.",
    "[Unit]",
    `Description=homelab service ${project} (Docker Compose project ${project})`,
    "Requires=docker.service",
    "After=docker.service network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `WorkingDirectory=${systemdQuote(o.dir)}`,
    `ExecStart=${wrapper} up -d --remove-orphans`,
    `ExecReload=${wrapper} up -d --remove-orphans`,
    `ExecStop=${wrapper} down`,
    `TimeoutStartSec=${o.startTimeoutSec ?? 1800}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

function sha256(s: string | Uint8Array): string {
  return createHash("sha256").update(s).digest("hex");
}

/** One file as hashed: its path, mode, the sha256 of its content, and whether it holds secrets. */
export interface FileDigest {
  path: string;
  mode: number;
  sha256: string;
  secret: boolean;
}

/** The hashes of a file list (order-independent; paths and modes count). */
export function hashFiles(files: readonly DeployFile[]): DeploymentHashes {
  return hashDigests(files.map((f) => ({ path: f.path, mode: f.mode, sha256: sha256(f.content), secret: f.secret })));
}

/**
 * The hashes of files known only by their digests, e.g. as read back from a
 * container (`sha256sum`, `stat -c %a`): the same result as hashFiles for the same files.
 */
export function hashDigests(digests: readonly FileDigest[]): DeploymentHashes {
  const sorted = [...digests].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const perFile: Record<string, string> = {};
  const pub: string[] = [];
  const sec: string[] = [];
  for (const f of sorted) {
    const h = f.sha256;
    const line = `${f.path}\0${f.mode.toString(8)}\0${h}`;
    if (f.secret) sec.push(line);
    else {
      perFile[f.path] = h;
      pub.push(line);
    }
  }
  const filesHash = sha256(`homelab-compose-files-v1\n${pub.join("\n")}`);
  const secretsHash = sha256(`homelab-compose-secrets-v1\n${sec.join("\n")}`);
  return { files: filesHash, secrets: secretsHash, all: sha256(`${filesHash}\n${secretsHash}`), perFile };
}

/** What changed between two deployments' non-secret files, for a preview: paths added, removed or changed, and whether secrets changed. */
export function diffDeployments(before: DeploymentHashes | undefined, after: DeploymentHashes): { changed: string[]; added: string[]; removed: string[]; secretsChanged: boolean } {
  const old = before?.perFile ?? {};
  const changed = Object.keys(after.perFile).filter((p) => p in old && old[p] !== after.perFile[p]).sort();
  const added = Object.keys(after.perFile).filter((p) => !(p in old)).sort();
  const removed = Object.keys(old).filter((p) => !(p in after.perFile)).sort();
  return { changed, added, removed, secretsChanged: before !== undefined && before.secrets !== after.secrets };
}
