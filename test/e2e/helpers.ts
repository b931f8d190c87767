/**
 * End-to-end worlds: a sandbox (memory backend) in this process, a
 * temporary homelab repository whose `--env sandbox` points at it, and the
 * real CLI run as a subprocess (the real Pulumi engine, the real provider
 * plugin from bin/).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import type { ProxmoxClient } from "../../src/proxmox/client.ts";
import type { ClusterResource } from "../../src/proxmox/cluster.ts";
import { renderEnvFile } from "../../src/sandbox/control.ts";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox, SandboxOptions } from "../../src/sandbox/server.ts";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = join(REPO, "src", "cli", "entry.ts");

/** What a CLI run printed and how it ended. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Both, for messages that may go to either. */
  all: string;
}

/** How one CLI run differs from the world's default. */
export interface CliOptions {
  env?: Record<string, string>;
  envName?: string;
  /** Another checkout of the repository (default: the world's root). */
  dir?: string;
  /** Run as if on another machine: in a UTS namespace of its own with this host name (root only). */
  hostname?: string;
}

/** A sandbox, a repository pointing at it, and ways to look at both. */
export interface World {
  sandbox: RunningSandbox;
  root: string;
  admin: ProxmoxClient;
  /** Runs `homelab --dir ROOT --env ENV ARGS...` to completion. */
  cli(args: string[], opts?: CliOptions): Promise<Run>;
  /** Starts the CLI without waiting (for kills and races). */
  spawnCli(args: string[], opts?: CliOptions): { child: ChildProcess; done: Promise<Run> };
  /** The sandbox's containers. */
  containers(): Promise<ClusterResource[]>;
  /** Containers with this hostname. */
  named(hostname: string): Promise<ClusterResource[]>;
  /** Writes services/NAME/service.yaml (and a docker-compose.yaml when `compose`). */
  writeService(name: string, yaml: string): void;
  /** Edits a service file with a function. */
  editService(name: string, edit: (text: string) => string): void;
  /** Write requests the sandbox saw (POST, PUT, DELETE), by route. */
  writes(): Record<string, number>;
  close(): Promise<void>;
}

/** The sandbox environment file as `homelab sandbox start` writes it, plus the registry the example services name. */
export function sandboxEnvFile(sandbox: RunningSandbox, dir: string, kind?: string): string {
  writeFileSync(join(dir, "token-secret"), sandbox.tokenSecret + "\n", { mode: 0o600 });
  writeFileSync(join(dir, "root-password"), sandbox.rootPassword + "\n", { mode: 0o600 });
  let text = renderEnvFile({
    url: sandbox.url,
    tokenId: sandbox.tokenId,
    tokenSecretFile: join(dir, "token-secret"),
    rootPasswordFile: join(dir, "root-password"),
    fingerprint: sandbox.fingerprint,
    nodes: ["pve-01", "pve-02", "pve-03"],
    // State-only guests: deploys create containers and leave images and compose out (and say so).
    backend: "memory",
    registry: "127.0.0.1:5000",
  });
  if (kind !== undefined) text = text.replace("homelab:environment: sandbox", `homelab:environment: ${kind}`);
  return text;
}

/** Starts a world; `services` are copied from the repository's services/ (all when omitted). */
export async function startWorld(o: { sandbox?: SandboxOptions; services?: string[] } = {}): Promise<World> {
  const sandbox = await startSandboxServer({ taskDurationMs: 30, dhcpDelayMs: 100, ...o.sandbox });
  const root = mkdtempSync(join(tmpdir(), "homelab-e2e-"));
  const secrets = join(root, ".homelab", "sandbox");
  mkdirSync(secrets, { recursive: true });
  mkdirSync(join(root, ".homelab", "environments"), { recursive: true });
  writeFileSync(join(root, ".homelab", "environments", "Pulumi.sandbox.yaml"), sandboxEnvFile(sandbox, secrets));
  mkdirSync(join(root, "services"));
  for (const name of o.services ?? readdirSync(join(REPO, "services"))) cpSync(join(REPO, "services", name), join(root, "services", name), { recursive: true });
  const admin = createProxmoxClient({ endpoint: sandbox.url, auth: { tokenId: sandbox.tokenId, tokenSecret: sandbox.tokenSecret }, tls: { fingerprint: sandbox.fingerprint } });
  const node = process.execPath;
  const baseEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    ...process.env,
    PATH: `${dirname(node)}${delimiter}${process.env["PATH"] ?? ""}`,
    // The plugin launcher would prefer a compiled dist/ that may be older than the sources under test.
    HOMELAB_FROM_SOURCE: "1",
    HOMELAB_NODE: node,
    PULUMI_HOME: join(root, ".pulumi-home"),
    PEACH_API_KEY: "test-api-key",
    CI: "",
    NO_COLOR: "1",
    ...extra,
  });
  const spawnCli = (args: string[], opts: CliOptions = {}) => {
    const argv = [ENTRY, "--dir", opts.dir ?? root, "--env", opts.envName ?? "sandbox", ...args];
    // unshare execs sh, which sets the host name and execs node: the child's pid is the CLI's.
    const child =
      opts.hostname === undefined
        ? spawn(node, argv, { env: baseEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] })
        : spawn("unshare", ["--uts", "sh", "-c", 'hostname "$0" && exec "$@"', opts.hostname, node, ...argv], { env: baseEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<Run>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr, all: stdout + stderr })));
    return { child, done };
  };
  const containers = async () => (await admin.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc");
  return {
    sandbox,
    root,
    admin,
    cli: (args, opts) => spawnCli(args, opts).done,
    spawnCli,
    containers,
    named: async (hostname) => (await containers()).filter((r) => r.name === hostname),
    writeService(name, yaml) {
      mkdirSync(join(root, "services", name), { recursive: true });
      writeFileSync(join(root, "services", name, "service.yaml"), yaml);
    },
    editService(name, edit) {
      const file = join(root, "services", name, "service.yaml");
      writeFileSync(file, edit(readFileSync(file, "utf8")));
    },
    writes: () => Object.fromEntries(Object.entries(sandbox.counters.get()).filter(([k]) => !k.startsWith("GET "))),
    async close() {
      killPlugins(root);
      await admin.close();
      await sandbox.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A service with one container, as YAML. */
export function containerService(name: string, o: { id?: string; memory?: number; image?: string; version?: string; dependsOn?: string[]; protect?: boolean } = {}): string {
  return [
    `name: ${name}`,
    "resources:",
    `  - id: ${o.id ?? `${name}_ct`}`,
    "    type: proxmox:container",
    ...(o.protect ? ["    protect: true"] : []),
    "    image:",
    `      name: "${o.image ?? "*debian*"}"`,
    `      version: "${o.version ?? ">=12"}"`,
    "    host:",
    "      tags: [tier:1]",
    "      resources:",
    `        memory: ${o.memory ?? 512}`,
    "        cores: 1",
    ...(o.dependsOn?.length ? ["    depends_on:", ...o.dependsOn.map((d) => `      - ${d}`)] : []),
    "",
  ].join("\n");
}

/** Stops provider plugins left running by a killed engine of this world (Pulumi starts them in their own process group). */
export function killPlugins(root: string): number[] {
  const killed: number[] = [];
  if (!existsSync("/proc")) return killed;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "utf8");
    } catch {
      continue;
    }
    // Only processes this world started carry its repository as HOMELAB_ROOT.
    if (!environ.split("\0").includes(`HOMELAB_ROOT=${root}`)) continue;
    try {
      process.kill(Number(pid), "SIGKILL");
      killed.push(Number(pid));
    } catch {
      // Already gone.
    }
  }
  return killed;
}

/** Waits until `check` holds, polling. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
