import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { environmentFile, listEnvironments } from "./discover.ts";
import { z } from "zod";
import type { Diagnostic } from "../util/diagnostics.ts";
import { didYouMean } from "../util/suggest.ts";
import { loadYamlFile } from "./source.ts";
import { zodIssuesToDiagnostics } from "./zod-diagnostics.ts";
import { BUILTIN_DEFAULTS, defaultKind } from "./environment-defaults.ts";
import { envFileName } from "./homelab-dir.ts";
import { parseSecretCommand, type SecretCommand } from "./secret-command.ts";
import { ENVIRONMENT_KINDS } from "./environment-types.ts";
import type { EnvironmentConfig, EscImport, MonitorConfig, ProxmoxConfig, RegistryConfig, SecretRef } from "./environment-types.ts";
import { CODENAME, DEFAULT_DOCKER_PINS, PIN_PACKAGES, checkPin } from "../provision/docker-pins.ts";
import type { DockerPins } from "../provision/docker-pins.ts";
import { IPV4, IPV4_CIDR, STORAGE_ID } from "./value-formats.ts";
import { backendSchema, checkBackend } from "./backend-setting.ts";

export { environmentFile, listEnvironments } from "./discover.ts";
export { BUILTIN_DEFAULTS, emptyEnvironment } from "./environment-defaults.ts";
export { ENVIRONMENT_KINDS } from "./environment-types.ts";
export type { EnvironmentConfig, EnvironmentKind, EscImport, MonitorConfig, ProxmoxConfig, RegistryConfig, SecretRef } from "./environment-types.ts";

/** Host tags are the tool's own (Proxmox nodes have none), so `tier:1` is allowed. */
export const HOST_TAG = /^[a-z0-9][a-z0-9_.:=+-]*$/i;
const NODE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;
const TIER_KEY = /^tier(\d+)_hosts$/;

const secretRefShape = (what: string) => ({
  [`${what}_file`]: z.string().min(1).optional().describe(`Path of a file (mode 0600) holding the ${what}; relative to this file.`),
  [`${what}_env`]: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional().describe(`Environment variable holding the ${what}.`),
});

const proxmoxSchema = z
  .strictObject({
    endpoint: z.url({ protocol: /^https$/, error: "endpoint must be an https:// URL, e.g. https://pve-01.lan:8006" }).describe("Proxmox API URL, e.g. https://pve-01.lan:8006"),
    token_id: z
      .string()
      .regex(/^[^@\s]+@[^!\s]+![A-Za-z][A-Za-z0-9._-]*$/, { error: "token_id must look like USER@REALM!TOKENID, e.g. root@pam!homelab" })
      .optional()
      .describe("API token id, USER@REALM!TOKENID."),
    ...secretRefShape("token_secret"),
    username: z.string().regex(/^[^@\s]+@[^\s]+$/, { error: "username must look like USER@REALM, e.g. root@pam" }).optional().describe("For ticket auth (needed to set features other than nesting)."),
    ...secretRefShape("password"),
    fingerprint: z
      .string()
      .regex(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/, { error: "fingerprint must be a SHA-256 fingerprint, 32 hex pairs separated by colons" })
      .optional()
      .describe("SHA-256 fingerprint of the Proxmox certificate, to pin a self-signed certificate."),
    ca_file: z.string().min(1).optional().describe("CA certificate (PEM) that signed the Proxmox certificate, e.g. pve-root-ca.pem."),
    insecure: z.boolean().optional().describe("Skip TLS verification. Warned about, and refused in CI mode."),
  })
  .describe("How to reach the Proxmox API. Credentials are referenced, never written here.");

const registrySchema = z.strictObject({
  url: z.string().regex(/^(https?:\/\/)?[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._/-]*)?$/, { error: "url must be a registry address such as registry.lan:5000" }).describe("Registry address, host[:port]."),
  insecure: z.boolean().optional().describe("Plain HTTP registry (Docker's insecure-registries)."),
  username: z.string().optional(),
  ...secretRefShape("password"),
});

const positiveInt = (what: string) => z.int().positive().optional().describe(what);

const monitorSchema = z
  .strictObject({
    listen: z
      .string()
      .regex(/^(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):)?\d{1,5}$/, { error: "listen must be PORT or ADDR:PORT, e.g. 127.0.0.1:9464" })
      .optional()
      .describe("Serve the status page, /healthz and /metrics on [ADDR:]PORT (default: off; ADDR defaults to 127.0.0.1)."),
    ...secretRefShape("token"),
    concurrency: z.int().positive().max(1024).optional().describe("Checks run at once (default 16)."),
    backoff: z.int().nonnegative().optional().describe("Seconds: base of the exponential backoff between remediations of one service (default 60)."),
    max_backoff: z.int().positive().optional().describe("Seconds: the longest backoff (default 1800)."),
    history_max_kb: z.int().positive().optional().describe("Size of the local event history before it is rotated, in KiB (default 1024)."),
    webhook: z
      .strictObject({
        kind: z.enum(["ntfy", "gotify", "json"]).describe("ntfy (topic URL), gotify (server URL; token required), or json (generic POST)."),
        url: z.url({ protocol: /^https?$/, error: "url must be an http:// or https:// URL" }).describe("ntfy topic URL, Gotify server URL, or the JSON endpoint."),
        ...secretRefShape("token"),
      })
      .optional()
      .describe("Where state changes are sent. The token is referenced, never written here."),
  })
  .describe("Settings of `homelab monitor` for this environment.");

/** The `homelab:` keys of an environment file, without the prefix. */
const environmentKeysSchema = z.strictObject({
  environment: z.enum(ENVIRONMENT_KINDS).optional().describe("Kind of environment. `production` turns on the production guards (resources must be protected). Default: production for env names prod/production, else development."),
  cluster_name: z.string().min(1).optional().describe("A name for the cluster, shown in output."),
  proxmox: proxmoxSchema.optional(),
  hosts: z
    .record(z.string().regex(NODE_NAME, { error: "a Proxmox node name" }), z.strictObject({ tags: z.array(z.string().regex(HOST_TAG, { error: "tags use letters, digits and _ . : = + -" })).default([]) }))
    .optional()
    .describe("Host inventory: Proxmox node name → tags (Proxmox nodes have no tags of their own)."),
  registries: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/), registrySchema).optional().describe("Image registries by name, referenced by docker:image `registry`."),
  default_memory: positiveInt("Default container memory in MB (512)."),
  default_cores: positiveInt("Default container cores (1)."),
  default_disk: positiveInt("Default container root disk in GB (8)."),
  default_swap: z.int().nonnegative().optional().describe("Default container swap in MB (512)."),
  default_storage: z.string().min(1).optional().describe("Storage for container root disks (local-lvm)."),
  default_template_storage: z.string().min(1).optional().describe("Storage holding vztmpl templates (local)."),
  default_bridge: z.string().min(1).optional().describe("Network bridge for containers (vmbr0)."),
  monitor: monitorSchema.optional(),
  backups: z
    .strictObject({
      storage: z.string().regex(STORAGE_ID, { error: "storage must be a Proxmox storage id, e.g. local" }).optional().describe("Storage (content backup) for vzdump backups taken before destructive steps (default local)."),
      keep: z.int().min(1).max(100).optional().describe("How many of homelab's snapshots and backups to keep per container (default 3); older ones are removed after a new one is taken."),
    })
    .optional()
    .describe("Snapshots and backups homelab takes before every destructive step (replace, recreate, restart, destroy --delete-data, restore)."),
  backend: backendSchema.optional(),
  provisioning: z
    .boolean()
    .optional()
    .describe("Whether deploys build images and run Docker Compose inside containers (default true). The memory sandbox sets false: its guests are state only."),
  docker_host: z
    .string()
    .regex(/^(unix|tcp|ssh):\/\/\S+$/, "a Docker host URL: unix:///path/docker.sock, tcp://host:2376 or ssh://user@host")
    .optional()
    .describe("The Docker Engine that builds and pushes images (as DOCKER_HOST; default: DOCKER_HOST, else the local socket). The lxc sandbox sets its own."),
  docker_source: z
    .enum(["docker", "distribution"])
    .optional()
    .describe("Where containers get Docker Engine and Compose: Docker's apt repository, pinned (docker, the default), or the distribution's packages (distribution: works offline; the sandbox uses it)."),
  docker_base: z
    .enum(["clone", "install"])
    .optional()
    .describe("How compose containers get Docker: cloned from a Docker-ready base template built once per node (clone, the default: a first deploy in seconds), or installed into each new container (install)."),
  docker_base_network: z
    .strictObject({
      ip: z.string().regex(IPV4_CIDR, { error: 'ip must be an address with prefix, e.g. 192.168.1.250/24' }).describe("A free static address for the container that builds a base (default: DHCP)."),
      gateway: z.string().regex(IPV4, { error: "gateway must be an IPv4 address" }).optional(),
    })
    .optional()
    .describe("Where the container that builds a Docker-ready base gets its address, when the bridge has no DHCP."),
  docker_versions: z
    .record(
      // Checked in checkDockerVersions, for a message that names the key.
      z.string(),
      z.strictObject({
        docker: z.string().optional().describe("docker-ce and docker-ce-cli, exact, with Docker's epoch: 5:28.5.2-1~debian.13~trixie"),
        containerd: z.string().optional().describe("containerd.io (which carries runc), exact: 1.7.29-1~debian.13~trixie"),
        compose: z.string().optional().describe("docker-compose-plugin, exact: 2.40.3-1~debian.13~trixie"),
      }),
    )
    .optional()
    .describe("With docker_source: docker, the exact package versions per release codename, over homelab's pins (docs/provisioning.md). E.g. trixie: { containerd: 1.7.28-1~debian.13~trixie } for a Proxmox VE 8 node whose lxc-pve refuses runc 1.3.3."),
});
type EnvironmentKeys = z.output<typeof environmentKeysSchema>;

const TOP_LEVEL_KEYS = ["config", "environment", "encryptionsalt", "secretsprovider", "encryptedkey"];

function expandPath(p: string, base: string): string {
  if (p === "~" || p.startsWith("~/")) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(base, p);
}

function ref(keys: Record<string, unknown>, what: string, base: string): SecretRef | undefined {
  const file = keys[`${what}_file`];
  const env = keys[`${what}_env`];
  if (typeof file !== "string" && typeof env !== "string") return undefined;
  return { ...(typeof file === "string" ? { file: expandPath(file, base) } : {}), ...(typeof env === "string" ? { env } : {}) };
}

/** Loads and validates an environment file; diagnostics carry file:line:col. */
export function loadEnvironment(root: string, name: string): { env: EnvironmentConfig | undefined; diagnostics: Diagnostic[] } {
  const file = environmentFile(root, name);
  if (!file) {
    const known = listEnvironments(root);
    const hint = didYouMean(name, known) ?? (known.length ? `environments here: ${known.join(", ")}` : `create Pulumi.${name}.yaml (see README, "Environments")`);
    return {
      env: undefined,
      diagnostics: [{ file: join(root, envFileName(name)), line: 1, col: 1, severity: "error", message: `environment "${name}" has no file Pulumi.${name}.yaml`, hint }],
    };
  }
  const loaded = loadYamlFile(file, "environment file");
  if (!loaded.ok) return { env: undefined, diagnostics: loaded.diagnostics };
  const source = loaded.source;
  const diagnostics: Diagnostic[] = [];
  const report = (path: (string | number)[], message: string, hint?: string, key = false): void => {
    diagnostics.push({ file, ...source.locate(path, { key }), severity: "error", message, ...(hint ? { hint } : {}) });
  };
  const data = source.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    report([], "an environment file must be a mapping with a `config:` section");
    return { env: undefined, diagnostics };
  }
  const top = data as Record<string, unknown>;
  for (const k of Object.keys(top)) {
    if (!TOP_LEVEL_KEYS.includes(k)) report([k], `unknown top-level key "${k}"`, didYouMean(k, TOP_LEVEL_KEYS) ?? `expected one of: ${TOP_LEVEL_KEYS.join(", ")}`, true);
  }
  const config = (top["config"] ?? {}) as unknown;
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    report(["config"], "`config` must be a mapping of `namespace:key: value`");
    return { env: undefined, diagnostics };
  }
  const keys: Record<string, unknown> = {};
  const tiers: Record<string, string[]> = {};
  const esc: EscImport[] = [];
  const escAt = (path: (string | number)[], name: string): void => {
    esc.push({ name, ...source.locate(path) });
  };
  let secretsCommand: SecretCommand | undefined;
  let bareBackend = false;
  for (const [fullKey, value] of Object.entries(config as Record<string, unknown>)) {
    const [ns, ...rest] = fullKey.split(":");
    const key = rest.join(":");
    if (ns === "pulumi-esc") {
      // The original design's form: `pulumi-esc: {environments: [...]}`.
      const envs = (value as { environments?: unknown } | null)?.environments;
      if (Array.isArray(envs) && envs.every((e) => typeof e === "string")) envs.forEach((e: string, i) => escAt(["config", fullKey, "environments", i], e));
      else report(["config", fullKey], "`pulumi-esc` expects `environments: [project/env, ...]`");
      continue;
    }
    if (ns !== "homelab") continue; // other namespaces belong to other Pulumi programs
    if (value !== null && typeof value === "object" && "secure" in value) {
      report(["config", fullKey], `"${fullKey}" is a Pulumi-encrypted value; homelab reads credentials by reference`, "use token_secret_file / token_secret_env (or *_file / *_env) instead");
      continue;
    }
    if (key === "secrets_command") {
      // Parsed here, not by the schema, for messages that say how to write it.
      const mapping = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
      for (const k of Object.keys(mapping ?? {})) {
        if (k !== "command" && k !== "timeout") report(["config", fullKey, k], `unknown field "${k}" of homelab:secrets_command`, didYouMean(k, ["command", "timeout"]) ?? "expected command and timeout", true);
      }
      secretsCommand = parseSecretCommand(mapping ? mapping["command"] : value, {
        file,
        cwd: dirname(file),
        path: mapping ? ["config", fullKey, "command"] : ["config", fullKey],
        locate: (p, k) => source.locate(p, { key: k ?? false }),
        field: mapping ? "homelab:secrets_command.command" : "homelab:secrets_command",
        timeout: mapping?.["timeout"],
        timeoutPath: ["config", fullKey, "timeout"],
      }, diagnostics);
      continue;
    }
    if (key === "backend" && typeof value === "string") {
      // The short form: the URL alone, credentials from the process's environment.
      bareBackend = true;
      keys[key] = { url: value };
      continue;
    }
    const tier = TIER_KEY.exec(key);
    if (tier) {
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && NODE_NAME.test(v))) {
        report(["config", fullKey], `"${fullKey}" expects a list of Proxmox node names, e.g. [pve-01, pve-02]`);
      } else tiers[`tier:${tier[1] ?? ""}`] = value as string[];
      continue;
    }
    keys[key] = value;
  }
  if (Array.isArray(top["environment"])) {
    top["environment"].forEach((e: unknown, i) => typeof e === "string" && escAt(["environment", i], e));
  } else if (top["environment"] !== undefined && top["environment"] !== null) {
    const imports = (top["environment"] as { imports?: unknown }).imports;
    if (Array.isArray(imports)) imports.forEach((e: unknown, i) => typeof e === "string" && escAt(["environment", "imports", i], e));
  }

  const parsed = environmentKeysSchema.safeParse(keys, { reportInput: true });
  if (!parsed.success) {
    // Issues are relative to the stripped keys; re-point them at `config` → `homelab:<key>`.
    for (const issue of parsed.error.issues) {
      const [first, ...restPath] = issue.path;
      if (issue.code === "unrecognized_keys" && first === undefined) {
        for (const k of issue.keys) {
          const hint = didYouMean(k, [...Object.keys(environmentKeysSchema.shape), "tier1_hosts", "secrets_command"]);
          report(["config", `homelab:${k}`], `unknown setting "homelab:${k}"`, hint ? hint.replace('"', '"homelab:') : undefined, true);
        }
        continue;
      }
      const mapped = { ...issue, path: [`homelab:${String(first)}`, ...restPath] } as typeof issue;
      diagnostics.push(...zodIssuesToDiagnostics([mapped], z.object({}), source, ["config"]));
    }
  }
  if (diagnostics.length > 0 || !parsed.success) return { env: undefined, diagnostics };
  const k: EnvironmentKeys = parsed.data;
  const base = dirname(file);

  const hosts: Record<string, string[]> = {};
  for (const [node, h] of Object.entries(k.hosts ?? {})) hosts[node] = h.tags.map((t) => t.toLowerCase());
  for (const [tag, nodes] of Object.entries(tiers)) {
    for (const node of nodes) hosts[node] = [...new Set([...(hosts[node] ?? []), tag])];
  }

  let proxmox: ProxmoxConfig | undefined;
  if (k.proxmox) {
    const p = k.proxmox as Record<string, unknown> & z.output<typeof proxmoxSchema>;
    const tokenSecret = ref(p, "token_secret", base);
    const password = ref(p, "password", base);
    if (p.token_id && !tokenSecret) report(["config", "homelab:proxmox", "token_id"], "token_id needs its secret", "add token_secret_file or token_secret_env");
    if (p.username && !password) report(["config", "homelab:proxmox", "username"], "username needs a password", "add password_file or password_env");
    if (!p.token_id && !p.username) report(["config", "homelab:proxmox"], "no credentials: set token_id (+ token_secret_file/env) or username (+ password_file/env)");
    proxmox = {
      endpoint: p.endpoint,
      ...(p.token_id ? { tokenId: p.token_id } : {}),
      ...(tokenSecret ? { tokenSecret } : {}),
      ...(p.username ? { username: p.username } : {}),
      ...(password ? { password } : {}),
      ...(p.fingerprint ? { fingerprint: p.fingerprint.toUpperCase() } : {}),
      ...(p.ca_file ? { caFile: expandPath(p.ca_file, base) } : {}),
      insecure: p.insecure ?? false,
    };
  }
  const registries: Record<string, RegistryConfig> = {};
  for (const [name, r] of Object.entries(k.registries ?? {})) {
    const password = ref(r, "password", base);
    registries[name] = { name, url: r.url, insecure: r.insecure ?? false, ...(r.username ? { username: r.username } : {}), ...(password ? { password } : {}) };
  }
  let monitor: MonitorConfig | undefined;
  if (k.monitor) {
    const m = k.monitor;
    const w = m.webhook as (Record<string, unknown> & NonNullable<typeof m.webhook>) | undefined;
    const token = w ? ref(w, "token", base) : undefined;
    if (w?.kind === "gotify" && !token) report(["config", "homelab:monitor", "webhook"], "a Gotify webhook needs its application token", "add token_file or token_env");
    const pageToken = ref(m, "token", base);
    monitor = {
      listen: m.listen,
      ...(pageToken ? { token: pageToken } : {}),
      concurrency: m.concurrency,
      backoffSec: m.backoff,
      maxBackoffSec: m.max_backoff,
      historyMaxKb: m.history_max_kb,
      webhook: w ? { kind: w.kind, url: w.url, ...(token ? { token } : {}) } : undefined,
    };
  }
  const warn = (path: (string | number)[], message: string, hint?: string): void => {
    diagnostics.push({ file, ...source.locate(path), severity: "warning", message, ...(hint ? { hint } : {}) });
  };
  const versions = checkDockerVersions(k.docker_versions, k.docker_source ?? "docker", report, warn);
  const backend = k.backend ? checkBackend(k.backend, ["config", "homelab:backend"], bareBackend, (keys, what) => ref(keys, what, base), (path, message, hint) => report(path, message, hint), warn) : undefined;
  const kind = k.environment ?? defaultKind(name);
  const env: EnvironmentConfig = {
    name,
    file,
    kind,
    production: kind === "production",
    clusterName: k.cluster_name,
    proxmox,
    hosts,
    registries,
    defaults: {
      memory: k.default_memory ?? BUILTIN_DEFAULTS.memory,
      cores: k.default_cores ?? BUILTIN_DEFAULTS.cores,
      disk: k.default_disk ?? BUILTIN_DEFAULTS.disk,
      swap: k.default_swap ?? BUILTIN_DEFAULTS.swap,
      storage: k.default_storage ?? BUILTIN_DEFAULTS.storage,
      templateStorage: k.default_template_storage ?? BUILTIN_DEFAULTS.templateStorage,
      bridge: k.default_bridge ?? BUILTIN_DEFAULTS.bridge,
    },
    escEnvironments: esc,
    ...(secretsCommand ? { secretsCommand } : {}),
    provisioning: k.provisioning ?? true,
    backups: { storage: k.backups?.storage ?? BUILTIN_DEFAULTS.backupStorage, keep: k.backups?.keep ?? BUILTIN_DEFAULTS.backupKeep },
    docker: {
      host: k.docker_host,
      source: k.docker_source ?? "docker",
      ...(versions ? { versions } : {}),
      base: k.docker_base ?? "clone",
      ...(k.docker_base_network ? { baseNetwork: { ip: k.docker_base_network.ip, ...(k.docker_base_network.gateway !== undefined ? { gateway: k.docker_base_network.gateway } : {}) } } : {}),
    },
    ...(monitor ? { monitor } : {}),
    ...(backend ? { backend } : {}),
    source,
  };
  return { env: diagnostics.some((d) => d.severity === "error") ? undefined : env, diagnostics };
}

/**
 * `homelab:docker_versions`: each version exact and for its release (Docker's
 * suffix `~debian.13~trixie`, docker-ce's epoch), a release homelab has no
 * pins for given all three; a warning where the source makes them moot.
 */
function checkDockerVersions(
  raw: Record<string, Partial<DockerPins>> | undefined,
  dockerSource: "docker" | "distribution",
  report: (path: (string | number)[], message: string, hint?: string, key?: boolean) => void,
  warn: (path: (string | number)[], message: string, hint?: string) => void,
): Record<string, Partial<DockerPins>> | undefined {
  if (raw === undefined) return undefined;
  const at = ["config", "homelab:docker_versions"];
  if (dockerSource === "distribution") {
    warn(at, "homelab:docker_versions pins Docker's own packages, but homelab:docker_source is distribution: the release's docker.io is installed and these versions are not used", "remove them, or set homelab:docker_source: docker");
  }
  const out: Record<string, Partial<DockerPins>> = {};
  for (const [codename, pins] of Object.entries(raw)) {
    if (!CODENAME.test(codename)) {
      report([...at, codename], `homelab:docker_versions: "${codename}" is not a release codename`, `key the versions by VERSION_CODENAME of /etc/os-release, lowercase, e.g. ${Object.keys(DEFAULT_DOCKER_PINS).join(", ")}`, true);
      continue;
    }
    const keys = Object.keys(PIN_PACKAGES) as (keyof DockerPins)[];
    for (const key of keys) {
      const v = pins[key];
      if (v === undefined) continue;
      const problem = checkPin(codename, key, v);
      if (problem) report([...at, codename, key], `homelab:docker_versions.${codename}.${key}: ${problem.message}`, problem.hint);
    }
    const missing = keys.filter((k) => pins[k] === undefined);
    if (DEFAULT_DOCKER_PINS[codename] === undefined && missing.length > 0) {
      report([...at, codename], `homelab has no pins of its own for ${codename}: give ${missing.map((m) => `${m} (${PIN_PACKAGES[m]})`).join(", ")} too`, `exact versions, as apt-cache madison ${PIN_PACKAGES[missing[0] ?? "docker"]} lists them in a ${codename} container with Docker's repository; homelab pins ${Object.keys(DEFAULT_DOCKER_PINS).join(", ")}`, true);
    }
    out[codename] = { ...pins };
  }
  return out;
}
