/**
 * The sandbox as a long-running process, started detached by
 * `homelab sandbox start`. It writes the token secret (0600) and, once it
 * answers, `daemon.json` into the state folder; it removes `daemon.json`
 * when it ends.
 *
 *   node src/sandbox/daemon.ts --state DIR [--port N] [--nodes N] [--faults JSON] ...
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { DaemonInfo } from "./control.ts";
import { parseFaults } from "./faults.ts";
import type { GuestBackend } from "./guest-backend.ts";
import { startSandboxServer } from "./server.ts";

const { values } = parseArgs({
  options: {
    state: { type: "string" },
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    nodes: { type: "string", default: "3" },
    backend: { type: "string", default: "memory" },
    bridge: { type: "string" },
    subnet: { type: "string" },
    "auth-delay-ms": { type: "string", default: "3000" },
    "task-duration-ms": { type: "string", default: "1000" },
    "lock-timeout-ms": { type: "string", default: "10000" },
    faults: { type: "string" },
  },
  strict: true,
});

function int(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

const stateDir = values.state;
if (stateDir === undefined) throw new Error("--state DIR is required");
const nodes = int("nodes", values.nodes);

// The lxc backend is loaded only when asked for: it needs root and LXC.
let backend: GuestBackend | undefined;
let registry: string | undefined;
let dockerHost: string | undefined;
if (values.backend === "lxc") {
  const { createLxcBackend, lxcAvailable } = await import("./lxc/backend.ts");
  const avail = await lxcAvailable();
  if (!avail.ok) throw new Error(`the lxc backend is not available here: ${avail.reason ?? "unknown reason"}`);
  const lxc = await createLxcBackend({
    stateDir: join(stateDir, "lxc"),
    ...(values.bridge !== undefined ? { bridge: values.bridge } : {}),
    ...(values.subnet !== undefined ? { subnet: values.subnet } : {}),
    progress: (m) => void process.stdout.write(`progress: ${m}\n`),
    // Deploys build images on this machine and push them to the registry.
    docker: true,
  });
  backend = lxc;
  registry = lxc.registry;
  dockerHost = lxc.dockerHost;
} else if (values.backend !== "memory") {
  throw new Error(`unknown backend '${values.backend}' (memory | lxc)`);
}

const sandbox = await startSandboxServer({
  stateDir,
  port: int("port", values.port),
  host: values.host,
  nodes,
  authDelayMs: int("auth-delay-ms", values["auth-delay-ms"]),
  taskDurationMs: int("task-duration-ms", values["task-duration-ms"]),
  lockTimeoutMs: int("lock-timeout-ms", values["lock-timeout-ms"]),
  ...(backend ? { backend } : {}),
  ...(values.faults !== undefined ? { faults: parseFaults(JSON.parse(values.faults)) } : {}),
});

const tokenSecretFile = join(stateDir, "token-secret");
const rootPasswordFile = join(stateDir, "root-password");
await writeFile(tokenSecretFile, sandbox.tokenSecret + "\n", { mode: 0o600 });
await writeFile(rootPasswordFile, sandbox.rootPassword + "\n", { mode: 0o600 });
const info: DaemonInfo = {
  pid: process.pid,
  url: sandbox.url,
  port: sandbox.port,
  tokenId: sandbox.tokenId,
  tokenSecretFile,
  rootPasswordFile,
  fingerprint: sandbox.fingerprint,
  caFile: sandbox.caFile,
  nodes: Array.from({ length: nodes }, (_, i) => `pve-${String(i + 1).padStart(2, "0")}`),
  backend: values.backend,
  ...(registry !== undefined ? { registry } : {}),
  ...(dockerHost !== undefined ? { dockerHost } : {}),
  ...(values.bridge !== undefined ? { bridge: values.bridge } : {}),
};
// Written whole, then renamed: the starter never reads half a file.
const infoFile = join(stateDir, "daemon.json");
await writeFile(`${infoFile}.tmp`, JSON.stringify(info, null, 2) + "\n");
await rename(`${infoFile}.tmp`, infoFile);
process.stdout.write(`sandbox listening at ${sandbox.url} (pid ${process.pid})\n`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`sandbox stopping (${signal})\n`);
  await sandbox.close();
  await rm(infoFile, { force: true });
  process.exit(0);
}
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  process.on(signal, () => void stop(signal));
}
