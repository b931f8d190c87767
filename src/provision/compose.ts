/**
 * A Docker Compose deployment as data: the files to put in the container
 * (compose files, the secrets file, the `compose` wrapper, the systemd unit,
 * registry settings), their content hash, and the scripts that apply, wait for
 * and remove it. All pure: deploy.ts runs the scripts over SSH.
 *
 * Layout inside the container, for service `peach`:
 *   /opt/homelab/peach/<compose files, relative paths kept>   0644
 *   /opt/homelab/peach/secrets.env    `export KEY='value'` lines   0600
 *   /opt/homelab/peach/compose        runs compose for the project  0755
 *   /etc/systemd/system/homelab-peach.service
 *   /etc/docker/daemon.json           only for insecure registries
 *   /root/.docker/config.json         only for registries with credentials, 0600
 *
 * Secrets are not in a `.env` file on purpose: Compose v1 (python-dotenv) and
 * v2 (compose-go) parse `.env` quoting differently, so a value with quotes,
 * `$` or newlines would arrive changed in one of them. The wrapper instead
 * sources a file in POSIX shell syntax, quoted by shell.ts, and exports the
 * values; Compose takes process environment over `.env` and interpolates
 * `${KEY}` with the exact bytes.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { isMap, isScalar, parseDocument } from "yaml";
import type { Document } from "yaml";
import { Script, cmd, isShellName, quote, systemdQuote } from "./shell.ts";

/** Where deployments live inside containers. */
export const DEFAULT_BASE_DIR = "/opt/homelab";

/** Compose's rule for project names (the same as homelab's service names). */
const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** A registry the deployment pulls from. */
export interface RegistryAccess {
  /** `host[:port]`, as in image references (an `http(s)://` prefix is dropped). */
  url: string;
  /** Plain HTTP: Docker must list it under insecure-registries. */
  insecure: boolean;
  username?: string;
  password?: string;
}

/** An image built by a `docker:image` resource of the service. */
export interface BuiltImage {
  /** The resource's `name`, which compose files use as `image:`. */
  name: string;
  /** What the container pulls: `<registry>/<name>:<tag>`. */
  ref: string;
  /** The build context relative to service.yaml, so a compose `build:` of that folder is replaced too. */
  path?: string;
}

/** Everything a compose deployment is made from. */
export interface ComposeDeploymentInput {
  service: string;
  /** Compose files in order, paths relative to service.yaml. */
  composeFiles: ReadonlyArray<{ path: string; content: string }>;
  /** Secret values by key (as in `.secrets.example.yaml`); exported as the key upper-cased. */
  secrets: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  images?: readonly BuiltImage[];
  registries?: readonly RegistryAccess[];
  /** Default /opt/homelab. */
  baseDir?: string;
  /** Seconds `up` may take (pulls included) before systemd gives up (default 1800). */
  startTimeoutSec?: number;
}

/** What a file is for; the apply script decides what to reload from this. */
export type FileRole = "compose" | "secrets" | "wrapper" | "unit" | "daemon-json" | "docker-config";

/** One file to write in the container. */
export interface DeployFile {
  path: string;
  content: string;
  mode: number;
  role: FileRole;
  /** Holds secret values: never printed, hashed apart. */
  secret: boolean;
}

/** A compose `image:` the deployment changed. */
export interface ImageRewrite {
  file: string;
  service: string;
  from: string;
  to: string;
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

/** A compose deployment, ready to apply. */
export interface ComposeDeployment {
  service: string;
  project: string;
  dir: string;
  unitName: string;
  /** Absolute paths of the compose files inside the container, in order. */
  composePaths: string[];
  /** Variables the secrets file exports. */
  secretVariables: string[];
  files: DeployFile[];
  rewrites: ImageRewrite[];
  /** Things the user should know (e.g. a `build:` the container cannot do). */
  warnings: string[];
  hashes: DeploymentHashes;
}

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

/** The environment variable a secret key is exported as: upper case, other characters as `_`. */
export function secretVariable(key: string): string {
  return key.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

function entries(secrets: ComposeDeploymentInput["secrets"]): Array<[string, string]> {
  const list: Array<[string, string]> = secrets instanceof Map ? [...(secrets as ReadonlyMap<string, string>).entries()] : Object.entries(secrets as Readonly<Record<string, string>>);
  return list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The secrets file: one `export NAME='value'` line per secret, in key order. Refuses names that collide or are not variables. */
export function secretsFile(secrets: ComposeDeploymentInput["secrets"]): { content: string; variables: string[] } {
  const seen = new Map<string, string>();
  const lines = ["# homelab: the service's secrets, sourced by ./compose. Do not edit: the next deploy rewrites it."];
  for (const [key, value] of entries(secrets)) {
    const name = secretVariable(key);
    if (!isShellName(name)) throw new ComposeInputError(`secret "${key}" becomes the variable ${name}, which is not a valid variable name: rename the key (letters, digits and _, not starting with a digit)`);
    const other = seen.get(name);
    if (other !== undefined) throw new ComposeInputError(`secrets "${other}" and "${key}" both become the variable ${name}: rename one of them`);
    seen.set(name, key);
    lines.push(`export ${name}=${quote(value)}`);
  }
  return { content: `${lines.join("\n")}\n`, variables: [...seen.keys()] };
}

/** Parses `KEY='value'` lines as written by secretsFile, for tests and checks (not a general shell parser). */
export function parseSecretsFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (text[i] === "#") {
      i = text.indexOf("\n", i);
      if (i < 0) break;
      i++;
      continue;
    }
    if (text[i] === "\n") {
      i++;
      continue;
    }
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)=/.exec(text.slice(i));
    if (!m?.[1]) throw new Error(`unexpected text at offset ${i}`);
    const name = m[1];
    i += m[0].length;
    let value = "";
    while (i < n && text[i] !== "\n") {
      if (text[i] === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) throw new Error("unterminated quote");
        value += text.slice(i + 1, end);
        i = end + 1;
      } else if (text[i] === "\\") {
        value += text[i + 1] ?? "";
        i += 2;
      } else {
        value += text[i];
        i++;
      }
    }
    out.set(name, value);
  }
  return out;
}

function normalizeRelative(p: string, what: string): string {
  const norm = posix.normalize(p.replace(/\\/g, "/"));
  if (norm.startsWith("/") || norm === ".." || norm.startsWith("../") || norm === ".") throw new ComposeInputError(`${what} "${p}" must be a path inside the service folder`);
  if (/[\0\n\r]/.test(p)) throw new ComposeInputError(`${what} "${p.replace(/[\0\n\r]/g, "?")}" contains a NUL or line break: rename the file`);
  return norm.replace(/^\.\//, "").replace(/\/+$/, "");
}

function stripScheme(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/+$/, "");
}

/** Splits an image reference into name and tag (`repo:tag`; digests and registry ports kept apart). */
function splitRef(ref: string): { name: string; tag: string | undefined } {
  if (ref.includes("@")) return { name: ref, tag: undefined };
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: undefined };
}

/**
 * Rewrites a compose file so services using a built image pull the pushed
 * one: `image: <name>` (or `<name>:latest`) becomes the image's ref, and a
 * `build:` of the image's folder is replaced by `image: <ref>` (the container
 * has no build context). Returns the text unchanged when nothing matches.
 */
export function rewriteImages(file: string, content: string, images: readonly BuiltImage[]): { content: string; rewrites: ImageRewrite[]; warnings: string[] } {
  const rewrites: ImageRewrite[] = [];
  const warnings: string[] = [];
  if (images.length === 0 && !/^\s*build\s*:/m.test(content)) return { content, rewrites, warnings };
  const doc: Document = parseDocument(content, { keepSourceTokens: false });
  if (doc.errors.length > 0) throw new ComposeInputError(`compose file ${file} is not valid YAML: ${doc.errors[0]?.message ?? ""}`);
  const services = doc.get("services");
  if (!isMap(services)) return { content, rewrites, warnings };
  let modified = false;
  const byName = new Map(images.map((i) => [i.name, i]));
  const byPath = new Map(images.filter((i) => i.path !== undefined).map((i) => [normalizeRelative(i.path ?? "", "image path"), i]));
  for (const item of services.items) {
    const svcName = isScalar(item.key) ? String(item.key.value) : String(item.key);
    const svc = item.value;
    if (!isMap(svc)) continue;
    const imageNode = svc.get("image", true);
    const image = isScalar(imageNode) && typeof imageNode.value === "string" ? imageNode.value : undefined;
    let built: BuiltImage | undefined;
    if (image !== undefined) {
      const { name, tag } = splitRef(image);
      if (tag === undefined || tag === "latest") built = byName.get(name);
    }
    const build: unknown = svc.get("build", true);
    if (build !== undefined) {
      const ctx: unknown = isScalar(build) ? build.value : isMap(build) ? build.get("context") : undefined;
      const fromBuild = typeof ctx === "string" ? byPath.get(normalizeRelative(ctx, "build context")) : undefined;
      built ??= fromBuild;
      if (built) {
        svc.delete("build");
        modified = true;
      } else {
        warnings.push(`${file}: service ${svcName} has a build: the container cannot build it; add a docker:image resource for that folder and refer to it by name`);
      }
    }
    if (built && image !== built.ref) {
      modified = true;
      svc.set("image", built.ref);
      rewrites.push({ file, service: svcName, from: image ?? "(build)", to: built.ref });
    }
  }
  if (!modified) return { content, rewrites, warnings };
  return { content: doc.toString({ lineWidth: 0 }), rewrites, warnings };
}

/** Images a compose file uses (after rewriting), for the registries check. */
export function composeImages(content: string): string[] {
  const doc = parseDocument(content);
  const services = doc.get("services");
  if (!isMap(services)) return [];
  const out: string[] = [];
  for (const item of services.items) {
    const svc = item.value;
    if (!isMap(svc)) continue;
    const image = svc.get("image");
    if (typeof image === "string") out.push(image);
  }
  return out;
}

/** Whether a compose file declares health checks (then waiting means healthy, not just running). */
export function declaresHealthchecks(content: string): boolean {
  const doc = parseDocument(content);
  const services = doc.get("services");
  if (!isMap(services)) return false;
  return services.items.some((i) => isMap(i.value) && i.value.has("healthcheck"));
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

/** Builds the deployment of a service's compose project: files, rewrites, hashes. */
export function buildComposeDeployment(input: ComposeDeploymentInput): ComposeDeployment {
  const project = composeProjectName(input.service);
  const dir = deploymentDir(input.service, input.baseDir);
  if (input.composeFiles.length === 0) throw new ComposeInputError(`service ${input.service} has docker.compose but no compose files`);
  const images = input.images ?? [];
  const registries = input.registries ?? [];
  const files: DeployFile[] = [];
  const rewrites: ImageRewrite[] = [];
  const warnings: string[] = [];
  const composePaths: string[] = [];
  const reserved = new Set(["secrets.env", "compose"]);
  for (const f of input.composeFiles) {
    const rel = normalizeRelative(f.path, "compose file");
    if (reserved.has(rel)) throw new ComposeInputError(`compose file "${f.path}" has a name homelab uses for its own files (${[...reserved].join(", ")}): rename it`);
    const abs = posix.join(dir, rel);
    if (composePaths.includes(abs)) throw new ComposeInputError(`compose file "${f.path}" is listed twice`);
    const r = rewriteImages(rel, f.content, images);
    rewrites.push(...r.rewrites);
    warnings.push(...r.warnings);
    composePaths.push(abs);
    files.push({ path: abs, content: r.content, mode: 0o644, role: "compose", secret: false });
  }
  const secrets = secretsFile(input.secrets);
  files.push({ path: posix.join(dir, "secrets.env"), content: secrets.content, mode: 0o600, role: "secrets", secret: true });
  files.push({ path: posix.join(dir, "compose"), content: composeWrapper({ service: input.service, dir, composePaths }), mode: 0o755, role: "wrapper", secret: false });
  files.push({
    path: `/etc/systemd/system/${unitName(input.service)}`,
    content: systemdUnit({ service: input.service, dir, ...(input.startTimeoutSec !== undefined ? { startTimeoutSec: input.startTimeoutSec } : {}) }),
    mode: 0o644,
    role: "unit",
    secret: false,
  });
  const daemon = daemonJson(registries);
  if (daemon !== undefined) files.push({ path: "/etc/docker/daemon.json", content: daemon, mode: 0o644, role: "daemon-json", secret: false });
  const config = dockerConfigJson(registries);
  if (config !== undefined) files.push({ path: "/root/.docker/config.json", content: config, mode: 0o600, role: "docker-config", secret: true });
  return {
    service: input.service,
    project,
    dir,
    unitName: unitName(input.service),
    composePaths,
    secretVariables: secrets.variables,
    files,
    rewrites,
    warnings,
    hashes: hashFiles(files),
  };
}

/** What changed between two deployments' non-secret files, for a preview: paths added, removed or changed, and whether secrets changed. */
export function diffDeployments(before: DeploymentHashes | undefined, after: DeploymentHashes): { changed: string[]; added: string[]; removed: string[]; secretsChanged: boolean } {
  const old = before?.perFile ?? {};
  const changed = Object.keys(after.perFile).filter((p) => p in old && old[p] !== after.perFile[p]).sort();
  const added = Object.keys(after.perFile).filter((p) => !(p in old)).sort();
  const removed = Object.keys(old).filter((p) => !(p in after.perFile)).sort();
  return { changed, added, removed, secretsChanged: before !== undefined && before.secrets !== after.secrets };
}

/** Lines the apply script prints, parsed by deploy.ts. */
export const MARK = {
  changed: "HOMELAB-CHANGED",
  removed: "HOMELAB-REMOVED",
  action: "HOMELAB-ACTION",
} as const;

/** The manifest of compose files a deployment wrote, so the next one can remove files no longer listed. */
function manifestPath(dir: string): string {
  return posix.join(dir, ".homelab-files");
}

/** The file the deployed hash is recorded in, for reads and refresh. */
export function hashFilePath(dir: string): string {
  return posix.join(dir, ".homelab-hash");
}

/**
 * The script that installs a deployment: writes each file only when its
 * content or mode differs (printing what changed), removes compose files an
 * earlier deployment wrote that are no longer listed, reloads systemd or
 * Docker when their files changed, enables the unit, then starts it, or, when
 * it already runs, reloads it (`up -d`: Compose re-creates only the services
 * whose configuration changed; the LXC container is untouched).
 */
export function applyScript(d: ComposeDeployment): string {
  const s = new Script(["set -eu", "umask 077"]);
  s.comment(`homelab: deploy compose project ${d.project} (${d.hashes.all})`);
  s.line(
    "changed=''",
    "homelab_put() {",
    '  chmod "$2" "$1.homelab-new"',
    '  if [ -f "$1" ] && [ "$(stat -c %a "$1")" = "${2#0}" ] && cmp -s "$1.homelab-new" "$1"; then',
    '    rm -f "$1.homelab-new"',
    "  else",
    '    mv -f "$1.homelab-new" "$1"',
    `    changed="$changed $3"`,
    `    printf '%s %s %s\\n' ${MARK.changed} "$3" "$1"`,
    "  fi",
    "}",
    "homelab_has() { case \" $changed \" in *\" $1 \"*) return 0;; esac; return 1; }",
  );
  const dirs = [...new Set(d.files.map((f) => posix.dirname(f.path)))].sort();
  s.run("mkdir", "-p", "--", ...dirs);
  // Folders made here with umask 077 would hide the project from nobody; give the usual modes.
  s.run("chmod", "0755", "--", d.dir);
  for (const f of d.files) {
    s.writeBase64(`${f.path}.homelab-new`, f.content);
    s.run("homelab_put", f.path, `0${f.mode.toString(8)}`, f.role);
  }
  // Compose files of an earlier deployment that this one no longer lists.
  const manifest = manifestPath(d.dir);
  const listed = d.files.filter((f) => f.role === "compose").map((f) => f.path);
  s.line(`if [ -f ${quote(manifest)} ]; then`, `  while IFS= read -r old; do`, `    case "$old" in`);
  for (const p of listed) s.line(`      ${quote(p)}) ;;`);
  s.line(
    `      ${quote(`${d.dir}/`)}*) if [ -f "$old" ]; then rm -f -- "$old"; changed="$changed compose"; printf '%s %s\\n' ${MARK.removed} "$old"; fi ;;`,
    "    esac",
    `  done < ${quote(manifest)}`,
    "fi",
  );
  // One path per line: compose paths with line breaks are refused by normalizeRelative.
  s.writeBase64(manifest, `${listed.join("\n")}\n`);
  s.run("chmod", "0644", manifest);
  s.line(
    "if homelab_has unit; then systemctl daemon-reload; fi",
    "if homelab_has daemon-json && systemctl is-active --quiet docker; then systemctl reload docker; sleep 1; fi",
  );
  const unit = quote(d.unitName);
  s.line(
    // Enabling costs half a second in a container; most deploys find it enabled.
    `systemctl is-enabled --quiet ${unit} 2>/dev/null || systemctl enable --quiet ${unit}`,
    `if systemctl is-active --quiet ${unit}; then`,
    `  systemctl reload ${unit} || { journalctl -u ${unit} -n 50 --no-pager -o cat >&2 || true; exit 1; }`,
    `  if [ -n "$changed" ]; then printf '%s reloaded\\n' ${MARK.action}; else printf '%s unchanged\\n' ${MARK.action}; fi`,
    "else",
    `  systemctl start ${unit} || { journalctl -u ${unit} -n 50 --no-pager -o cat >&2 || true; exit 1; }`,
    `  printf '%s started\\n' ${MARK.action}`,
    "fi",
  );
  s.writeBase64(hashFilePath(d.dir), `${d.hashes.all}\n`);
  s.run("chmod", "0644", hashFilePath(d.dir));
  return s.toString();
}

/** What the apply script reported. */
export interface ApplyReport {
  changed: Array<{ role: FileRole; path: string }>;
  removed: string[];
  action: "started" | "reloaded" | "unchanged" | "unknown";
}

/** Parses the apply script's output. */
export function parseApplyOutput(stdout: string): ApplyReport {
  const report: ApplyReport = { changed: [], removed: [], action: "unknown" };
  for (const line of stdout.split("\n")) {
    const [mark, a, ...rest] = line.split(" ");
    if (mark === MARK.changed && a) report.changed.push({ role: a as FileRole, path: rest.join(" ") });
    else if (mark === MARK.removed && a !== undefined) report.removed.push([a, ...rest].join(" "));
    else if (mark === MARK.action && (a === "started" || a === "reloaded" || a === "unchanged")) report.action = a;
  }
  return report;
}

/** Restarts the project through its unit (`down` then `up -d`): what the monitor does before anything heavier. */
export function restartScript(service: string): string {
  return new Script().run("systemctl", "restart", unitName(service)).toString();
}

/** Stops and removes a deployment: `down` through the unit (optionally with volumes and images), the unit, the folder. */
export function removeScript(service: string, o: { baseDir?: string; removeVolumes?: boolean; removeImages?: boolean } = {}): string {
  const dir = deploymentDir(service, o.baseDir);
  const unit = unitName(service);
  const wrapper = posix.join(dir, "compose");
  const s = new Script();
  const extra = [...(o.removeVolumes ? ["-v"] : []), ...(o.removeImages ? ["--rmi", "all"] : [])];
  if (extra.length > 0) s.line(`if [ -x ${quote(wrapper)} ]; then ${cmd(wrapper, "down", ...extra)} || true; fi`);
  s.line(
    `if [ -f ${quote(`/etc/systemd/system/${unit}`)} ]; then`,
    `  systemctl disable --now ${quote(unit)} || true`,
    `  rm -f -- ${quote(`/etc/systemd/system/${unit}`)}`,
    "  systemctl daemon-reload",
    "  systemctl reset-failed " + quote(unit) + " 2>/dev/null || true",
    "fi",
  );
  s.run("rm", "-rf", "--", dir);
  return s.toString();
}

/** Reads the recorded hash of a deployment (empty output when there is none). */
export function readHashScript(service: string, baseDir?: string): string {
  const file = hashFilePath(deploymentDir(service, baseDir));
  return new Script().line(`if [ -f ${quote(file)} ]; then cat ${quote(file)}; fi`).toString();
}

/** Lines the inspect script prints. */
export const INSPECT_MARK = { file: "HOMELAB-FILE", missing: "HOMELAB-MISSING", unit: "HOMELAB-UNIT", hash: "HOMELAB-HASH" } as const;

/**
 * The script that reads back what a deployment wrote, for refresh and drift
 * checks: each file's mode and sha256 (never its content: secrets stay in the
 * container), whether the unit is active, and the recorded hash.
 */
export function inspectScript(d: Pick<ComposeDeployment, "files" | "unitName" | "dir">): string {
  const s = new Script(["set -u"]);
  for (const f of d.files) {
    const p = quote(f.path);
    s.line(
      `if [ -f ${p} ]; then printf '%s %s %s %s\\n' ${INSPECT_MARK.file} "$(stat -c %a ${p})" "$(sha256sum < ${p} | cut -d ' ' -f 1)" ${p}; ` +
        `else printf '%s %s\\n' ${INSPECT_MARK.missing} ${p}; fi`,
    );
  }
  s.line(`printf '%s %s\\n' ${INSPECT_MARK.unit} "$(systemctl is-active ${quote(d.unitName)} 2>/dev/null || true)"`);
  const hash = quote(hashFilePath(d.dir));
  s.line(`if [ -f ${hash} ]; then printf '%s %s\\n' ${INSPECT_MARK.hash} "$(cat ${hash})"; fi`);
  return s.toString();
}

/** What the inspect script found: per path its mode and digest (absent: missing), the unit's state, the recorded hash. */
export interface InspectReport {
  files: Map<string, { mode: number; sha256: string } | undefined>;
  /** `systemctl is-active`: active, inactive, failed, ... ("" when systemd did not answer). */
  unit: string;
  recordedHash: string | undefined;
}

/** Parses the inspect script's output. */
export function parseInspectOutput(stdout: string): InspectReport {
  const report: InspectReport = { files: new Map(), unit: "", recordedHash: undefined };
  for (const line of stdout.split("\n")) {
    const [mark, ...rest] = line.split(" ");
    if (mark === INSPECT_MARK.file && rest.length >= 3) {
      const [mode = "", digest = "", ...path] = rest;
      if (/^[0-7]{3,4}$/.test(mode) && /^[0-9a-f]{64}$/.test(digest)) report.files.set(path.join(" "), { mode: parseInt(mode, 8), sha256: digest });
    } else if (mark === INSPECT_MARK.missing && rest.length > 0) report.files.set(rest.join(" "), undefined);
    else if (mark === INSPECT_MARK.unit) report.unit = rest.join(" ").trim();
    else if (mark === INSPECT_MARK.hash) report.recordedHash = rest.join(" ").trim() || undefined;
  }
  return report;
}

/** What the wait script prints for each container while it waits and at the end. */
export const WAIT_MARK = { ok: "HOMELAB-WAIT-OK", fail: "HOMELAB-WAIT-FAIL", timeout: "HOMELAB-WAIT-TIMEOUT" } as const;

/**
 * The script that waits until every container of the project runs (and is
 * healthy where it has a health check), polling `docker inspect` through the
 * compose labels (the same for Compose v1 and v2). A container that exits
 * with an error, restarts, or turns unhealthy past the grace time fails the
 * wait at once; on failure it prints the failing container's last log lines.
 * Exit 0 ok, 3 a container failed, 4 timeout.
 */
export function waitScript(o: { project: string; timeoutSec?: number; logLines?: number; unhealthyGraceSec?: number }): string {
  const timeout = o.timeoutSec ?? 300;
  const lines = o.logLines ?? 50;
  const grace = o.unhealthyGraceSec ?? 30;
  const s = new Script(["set -u"]);
  s.set("project", composeProjectName(o.project));
  s.line(
    `deadline=$(( $(date +%s) + ${timeout} ))`,
    `grace_until=$(( $(date +%s) + ${grace} ))`,
    "show_logs() {",
    `  printf '%s\\n' "--- last ${lines} log lines of $2 ---" >&2`,
    `  docker logs --tail ${lines} "$1" >&2 2>&1 || true`,
    `  health=$(docker inspect --format '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$1" 2>/dev/null | tail -n 5)`,
    `  if [ -n "$health" ]; then printf '%s\\n%s\\n' "--- last health check output of $2 ---" "$health" >&2; fi`,
    "}",
    "last=''",
    "while :; do",
    `  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)`,
    "  pending=''",
    "  failed=''",
    "  report=''",
    '  if [ -z "$ids" ]; then pending=\'no containers yet\'; fi',
    "  for id in $ids; do",
    `    info=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} {{.RestartCount}} {{.Name}}' "$id" 2>/dev/null) || continue`,
    '    set -- $info',
    '    svc=$1; status=$2; health=$3; code=$4; restarts=$5; name=${6#/}',
    '    report="$report $svc=$status/$health"',
    '    case "$status" in',
    '      running)',
    '        case "$health" in',
    '          none|healthy) ;;',
    '          unhealthy) if [ "$(date +%s)" -ge "$grace_until" ]; then failed="$id $name unhealthy"; else pending="$pending $svc(unhealthy)"; fi ;;',
    '          *) pending="$pending $svc($health)" ;;',
    "        esac",
    '        if [ "$restarts" -gt 0 ] && [ "$health" != healthy ] && [ "$(date +%s)" -ge "$grace_until" ]; then failed="$id $name restarting ($restarts restarts)"; fi ;;',
    '      exited|dead) if [ "$code" != 0 ]; then failed="$id $name exited with code $code"; fi ;;',
    '      restarting) failed="$id $name restarting (exit code $code)" ;;',
    '      *) pending="$pending $svc($status)" ;;',
    "    esac",
    '    if [ -n "$failed" ]; then break; fi',
    "  done",
    '  if [ -n "$failed" ]; then',
    '    set -- $failed; fid=$1; fname=$2; shift 2',
    `    printf '%s %s %s\\n' ${WAIT_MARK.fail} "$fname" "$*"`,
    '    show_logs "$fid" "$fname"',
    "    exit 3",
    "  fi",
    '  if [ -z "$pending" ]; then',
    `    printf '%s%s\\n' ${WAIT_MARK.ok} "$report"`,
    "    exit 0",
    "  fi",
    '  if [ "$pending" != "$last" ]; then printf \'waiting for:%s\\n\' "$pending"; last=$pending; fi',
    '  if [ "$(date +%s)" -ge "$deadline" ]; then',
    `    printf '%s %s\\n' ${WAIT_MARK.timeout} "$pending"`,
    "    for id in $ids; do",
    `      st=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id" 2>/dev/null || true)`,
    '      case "$st" in "running none"|"running healthy") ;; *) show_logs "$id" "$(docker inspect --format \'{{.Name}}\' "$id" 2>/dev/null | sed \'s#^/##\')" ;; esac',
    "    done",
    "    exit 4",
    "  fi",
    // Fractional sleep: coreutils and busybox both take it; health checks often pass within a second.
    "  sleep 0.5",
    "done",
  );
  return s.toString();
}

/** What waiting found. */
export interface WaitReport {
  ok: boolean;
  timedOut: boolean;
  /** Container name and reason, when one failed. */
  failed?: { container: string; reason: string };
  /** service=status/health, when ok. */
  states: string[];
}

/** Parses the wait script's output. */
export function parseWaitOutput(stdout: string, code: number): WaitReport {
  const lines = stdout.split("\n");
  const ok = lines.find((l) => l.startsWith(WAIT_MARK.ok));
  if (ok !== undefined && code === 0) return { ok: true, timedOut: false, states: ok.slice(WAIT_MARK.ok.length).trim().split(/\s+/).filter(Boolean) };
  const fail = lines.find((l) => l.startsWith(`${WAIT_MARK.fail} `));
  if (fail) {
    const [, container = "", ...reason] = fail.split(" ");
    return { ok: false, timedOut: false, failed: { container, reason: reason.join(" ") }, states: [] };
  }
  return { ok: false, timedOut: code === 4 || lines.some((l) => l.startsWith(WAIT_MARK.timeout)), states: [] };
}
