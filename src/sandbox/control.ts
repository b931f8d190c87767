/**
 * Starting and stopping the sandbox daemon for `homelab sandbox start/stop`:
 * the state folder, stale-pid clean-up, waiting until it answers, and the
 * environment file for `--env sandbox`. The pure parts (paths, the env
 * file's text) are separate functions so they can be tested alone.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { envFileName, generatedEnvironmentsDir } from "../config/homelab-dir.ts";
import type { FaultConfig } from "./faults.ts";

/** What the daemon publishes in `daemon.json` once it answers. */
export interface DaemonInfo {
  pid: number;
  url: string;
  port: number;
  tokenId: string;
  tokenSecretFile: string;
  rootPasswordFile: string;
  fingerprint: string;
  caFile: string;
  nodes: string[];
  backend: string;
  /** The image registry next to the sandbox (lxc backend): `host:port`, plain HTTP. */
  registry?: string;
  /** The sandbox's own Docker Engine (lxc backend), which trusts that registry: `unix:///...`. */
  dockerHost?: string;
  /** The lxc backend's bridge, when not the default. */
  bridge?: string;
}

/** What `start` records in `state.json` (the daemon's info plus what the CLI wrote). */
export interface SandboxState extends DaemonInfo {
  envFile: string;
  stateDir: string;
  logFile: string;
  startedAt: string;
}

/** How to start a sandbox daemon. */
export interface StartOptions {
  root: string;
  stateDir: string;
  port: number;
  nodes: number;
  backend: string;
  authDelayMs: number;
  taskDurationMs: number;
  faults: Partial<FaultConfig>;
  /** lxc backend: the bridge and subnet (defaults: hlsbx0, 10.87.53.0/24). */
  bridge?: string;
  subnet?: string;
  /** How long to wait for the daemon to answer (default 30 s; 15 min for lxc, whose first start builds templates). */
  timeoutMs?: number;
  /** Called with the daemon's progress notices (slow one-time steps). */
  progress?: (message: string) => void;
}

/** A refusal to start or stop, with what the user should know. */
export class SandboxControlError extends Error {
  readonly url: string | undefined;
  constructor(message: string, url?: string) {
    super(message);
    this.name = "SandboxControlError";
    this.url = url;
  }
}

/** Where the environment file for `--env sandbox` goes. */
function envFilePath(root: string): string {
  return join(generatedEnvironmentsDir(root), envFileName("sandbox"));
}

const ENV_HEADER = "# Written by `homelab sandbox start`: the environment `--env sandbox`.";

/** The environment file's text: the first two nodes are tier 1, the rest tier 2. */
export function renderEnvFile(info: {
  url: string;
  tokenId: string;
  tokenSecretFile: string;
  rootPasswordFile: string;
  fingerprint: string;
  nodes: string[];
  backend?: string;
  registry?: string;
  dockerHost?: string;
}): string {
  const tier1 = info.nodes.slice(0, Math.min(2, info.nodes.length));
  const rest = info.nodes.slice(tier1.length);
  const lines = [
    ENV_HEADER,
    "config:",
    "  homelab:environment: sandbox",
    "  homelab:proxmox:",
    `    endpoint: ${info.url}`,
    `    token_id: ${JSON.stringify(info.tokenId)}`,
    `    token_secret_file: ${JSON.stringify(info.tokenSecretFile)}`,
    // root@pam's password as well: Proxmox lets only root@pam itself (not a
    // token) set features such as keyctl, which Docker in an unprivileged
    // container needs. The plugin uses it for those calls only.
    "    username: root@pam",
    `    password_file: ${JSON.stringify(info.rootPasswordFile)}`,
    `    fingerprint: ${JSON.stringify(info.fingerprint)}`,
    `  homelab:tier1_hosts: [${tier1.join(", ")}]`,
  ];
  if (rest.length > 0) {
    lines.push("  homelab:hosts:");
    for (const n of rest) lines.push(`    ${n}: { tags: ["tier:2"] }`);
  }
  if (info.backend === "memory") {
    // State-only guests cannot run Docker: deploys here create containers only, and say so.
    lines.push("  homelab:provisioning: false");
  }
  if (info.registry !== undefined) {
    // Named as the example services name theirs, so they deploy unchanged.
    lines.push("  homelab:registries:", `    local_registry: { url: ${JSON.stringify(info.registry)}, insecure: true }`);
  }
  if (info.dockerHost !== undefined) {
    lines.push(
      "  # Images are built by the sandbox's own Docker Engine: it may push to the plain-HTTP registry.",
      `  homelab:docker_host: ${JSON.stringify(info.dockerHost)}`,
    );
  }
  if (info.backend === "lxc") {
    lines.push(
      "  # The guests are offline but for the package cache: Docker in them comes from Debian's packages.",
      "  homelab:docker_source: distribution",
    );
  }
  return lines.join("\n") + "\n";
}

/** Whether a pid is a live sandbox daemon (not a recycled pid of something else). */
export async function isDaemonAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return /sandbox[/\\]daemon\.(ts|js)/.test(cmdline);
  } catch {
    // No /proc (not Linux): trust the signal check.
    return true;
  }
}

/** The recorded state of a state folder, if any. */
export async function readState(stateDir: string): Promise<SandboxState | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, "state.json"), "utf8")) as SandboxState;
  } catch {
    return undefined;
  }
}

async function readDaemonInfo(stateDir: string): Promise<DaemonInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, "daemon.json"), "utf8")) as DaemonInfo;
  } catch {
    return undefined;
  }
}

async function cleanUpLxc(stateDir: string, bridge: string | undefined): Promise<void> {
  const { cleanUpLxcBackend } = await import("./lxc/backend.ts");
  await cleanUpLxcBackend({ stateDir: join(stateDir, "lxc"), ...(bridge !== undefined ? { bridge } : {}) });
}

/** Removes what a sandbox left in its state folder, and its env file if we wrote it. */
async function cleanUp(stateDir: string, envFile: string | undefined): Promise<void> {
  for (const f of ["state.json", "daemon.json", "daemon.json.tmp", "token-secret", "root-password", "tls"]) {
    await rm(join(stateDir, f), { recursive: true, force: true });
  }
  if (envFile !== undefined) {
    const text = await readFile(envFile, "utf8").catch(() => "");
    if (text.startsWith(ENV_HEADER)) await rm(envFile, { force: true });
  }
}

function daemonScript(): string {
  // Run the sources under Node's type stripping, or the compiled dist/ copy.
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  return fileURLToPath(new URL(`./daemon${ext}`, import.meta.url));
}

/** Asks the daemon for /version with its token, trusting its CA: proof that it answers. */
function probe(info: DaemonInfo, secret: string, ca: string): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const req = request(`${info.url}/api2/json/version`, { ca, headers: { authorization: `PVEAPIToken=${info.tokenId}=${secret}` }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolveProbe(res.statusCode === 200);
    });
    req.on("error", () => resolveProbe(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the daemon detached and waits until it answers; refuses when one
 * is running, cleans up after one that died. Returns the recorded state.
 */
export async function startDaemon(o: StartOptions): Promise<SandboxState & { cleanedStale?: number }> {
  const stateDir = resolve(o.stateDir);
  const envFile = envFilePath(o.root);
  const previous = (await readState(stateDir)) ?? (await readDaemonInfo(stateDir));
  let cleanedStale: number | undefined;
  if (previous) {
    if (await isDaemonAlive(previous.pid)) {
      throw new SandboxControlError(`a sandbox is already running at ${previous.url} (pid ${previous.pid}); stop it with \`homelab sandbox stop\``, previous.url);
    }
    cleanedStale = previous.pid;
  }
  await cleanUp(stateDir, envFile);
  if (previous?.backend === "lxc") await cleanUpLxc(stateDir, previous.bridge);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const logFile = join(stateDir, "daemon.log");
  const log = openSync(logFile, "a");
  const args = [
    daemonScript(),
    "--state", stateDir,
    "--port", String(o.port),
    "--nodes", String(o.nodes),
    "--backend", o.backend,
    "--auth-delay-ms", String(o.authDelayMs),
    "--task-duration-ms", String(o.taskDurationMs),
  ];
  if (Object.keys(o.faults).length > 0) args.push("--faults", JSON.stringify(o.faults));
  if (o.bridge !== undefined) args.push("--bridge", o.bridge);
  if (o.subnet !== undefined) args.push("--subnet", o.subnet);
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  let exited: number | null | undefined;
  child.on("exit", (code) => (exited = code));
  child.unref();

  // The first lxc start builds the templates (minutes); later ones take a second.
  const timeoutMs = o.timeoutMs ?? (o.backend === "lxc" ? 15 * 60_000 : 30_000);
  const deadline = Date.now() + timeoutMs;
  let shown = 0;
  for (;;) {
    if (o.progress) {
      const lines = (await readFile(logFile, "utf8").catch(() => "")).split("\n").filter((l) => l.startsWith("progress: "));
      for (const l of lines.slice(shown)) o.progress(l.slice("progress: ".length));
      shown = lines.length;
    }
    if (exited !== undefined) {
      const tail = (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-5).join("\n");
      throw new SandboxControlError(`the sandbox daemon exited (code ${String(exited)}) before it answered; see ${logFile}\n${tail}`);
    }
    const info = await readDaemonInfo(stateDir);
    if (info) {
      const secret = (await readFile(info.tokenSecretFile, "utf8")).trim();
      const ca = await readFile(info.caFile, "utf8");
      if (await probe(info, secret, ca)) {
        const state: SandboxState = { ...info, envFile, stateDir, logFile, startedAt: new Date().toISOString() };
        await writeFile(join(stateDir, "state.json"), JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
        await mkdir(generatedEnvironmentsDir(o.root), { recursive: true });
        await writeFile(envFile, renderEnvFile(info));
        return cleanedStale !== undefined ? { ...state, cleanedStale } : state;
      }
    }
    if (Date.now() > deadline) {
      if (child.pid !== undefined) process.kill(child.pid, "SIGTERM");
      throw new SandboxControlError(`the sandbox daemon did not answer within ${timeoutMs} ms; see ${logFile}`);
    }
    await sleep(50);
  }
}

/** Stops the daemon of a state folder (if any) and removes its files and env file. */
export async function stopDaemon(stateDir: string, root: string): Promise<{ stopped: SandboxState | DaemonInfo | undefined; wasRunning: boolean }> {
  const dir = resolve(stateDir);
  const state = (await readState(dir)) ?? (await readDaemonInfo(dir));
  let wasRunning = false;
  if (state && (await isDaemonAlive(state.pid))) {
    wasRunning = true;
    process.kill(state.pid, "SIGTERM");
    // The lxc backend stops containers and removes its bridge and rules on the way out.
    const deadline = Date.now() + (state.backend === "lxc" ? 120_000 : 5000);
    while (await isDaemonAlive(state.pid)) {
      if (Date.now() > deadline) {
        process.kill(state.pid, "SIGKILL");
        break;
      }
      await sleep(50);
    }
  }
  const envFile = state !== undefined && "envFile" in state ? String(state.envFile) : envFilePath(root);
  await cleanUp(dir, envFile);
  // A daemon that died (or was killed) could not clean up its containers, bridge and rules.
  if (state?.backend === "lxc") await cleanUpLxc(dir, state.bridge);
  return { stopped: state, wasRunning };
}
