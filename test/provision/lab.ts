/**
 * A provisioning lab on this machine, for the end-to-end tests and the demo
 * benchmark: the sandbox's LXC backend (a bridge, real containers, a registry
 * and a package cache on the bridge address; with `docker`, its own Docker
 * Engine that builds and pushes images), a private dockerd on the host for
 * callers that want one apart, an SSH key, and the hello service's build
 * context with Debian's static busybox in it. Root only.
 */
import { execFile } from "node:child_process";
import { copyFile, cp, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { createLxcBackend, lxcAvailable } from "../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../src/sandbox/lxc/backend.ts";
import { dockerdArgv } from "../../src/sandbox/lxc/commands.ts";
import { createExecutor } from "../../src/sandbox/lxc/exec.ts";

const run = promisify(execFile);

/** The repository root. */
export const ROOT = join(import.meta.dirname, "../..");

/** Makes sure this host can run the LXC backend (running the sandbox's set-up script once if not). */
export async function ensureLabHost(): Promise<void> {
  if ((await lxcAvailable()).ok) return;
  await run("bash", [join(ROOT, "scripts/setup-sandbox-host.sh")], { maxBuffer: 16 * 1024 * 1024 });
  const again = await lxcAvailable();
  if (!again.ok) throw new Error(`host not ready for the lxc backend: ${again.reason ?? ""}`);
}

/** An ed25519 key pair made with ssh-keygen, as the engine keeps one per environment. */
export async function makeKey(dir: string): Promise<{ privateKey: string; publicKey: string; file: string }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, "id_ed25519");
  await rm(file, { force: true });
  await rm(`${file}.pub`, { force: true });
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "homelab-provision-test", "-f", file]);
  return { privateKey: await readFile(file, "utf8"), publicKey: (await readFile(`${file}.pub`, "utf8")).trim(), file };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A dockerd of the lab's own (socket, data, exec root under `dir`; no bridge, no iptables), trusting the registry. */
export async function startPrivateDockerd(dir: string, insecureRegistry: string): Promise<{ docker: Docker; socket: string; stop(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const socket = join(dir, "docker.sock");
  const pid = createExecutor().spawnDaemon(dockerdArgv({ dir, socket, insecureRegistry }), join(dir, "dockerd.log"));
  const docker = new Docker({ socketPath: socket });
  const stop = async (): Promise<void> => {
    if (alive(pid)) process.kill(pid, "SIGTERM");
    for (let i = 0; i < 300 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, "SIGKILL");
    const mounts = (await readFile("/proc/mounts", "utf8")).split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(dir));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await run("umount", ["-l", m]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await docker.ping();
      break;
    } catch (err) {
      if (Date.now() > deadline || !alive(pid)) {
        const log = await readFile(join(dir, "dockerd.log"), "utf8").catch(() => "");
        await stop();
        throw new Error(`the lab's dockerd did not start: ${String(err)}\n${log.split("\n").slice(-15).join("\n")}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { docker, socket, stop };
}

/** A copy of services/hello/docker/web with the host's static busybox in it (Debian's busybox-static). */
export async function helloContext(dir: string): Promise<string> {
  const ctx = join(dir, "hello-web");
  await rm(ctx, { recursive: true, force: true });
  await cp(join(ROOT, "services/hello/docker/web"), ctx, { recursive: true });
  await rm(join(ctx, "busybox"), { force: true });
  await copyFile("/bin/busybox", join(ctx, "busybox"));
  const { stdout } = await run("sh", ["-c", "ldd /bin/busybox 2>&1 || true"]);
  if (!/not a dynamic executable|statically linked/.test(stdout)) throw new Error("/bin/busybox is not static: install Debian's busybox-static");
  return ctx;
}

/** Starts the LXC backend on a bridge of the lab's own; with `docker`, also its Docker Engine (`dockerHost`). */
export function startBackend(stateDir: string, bridge: string, subnet: string, verbose = false, docker = false): Promise<LxcGuestBackend> {
  return createLxcBackend({ stateDir, bridge, subnet, verbose, docker });
}

/** A client of the backend's own Docker Engine (started with `docker`). */
export function backendDocker(backend: LxcGuestBackend): Docker {
  const host = backend.dockerHost;
  if (host === undefined) throw new Error("the backend runs no Docker Engine: start it with docker");
  return new Docker({ socketPath: host.replace(/^unix:\/\//, "") });
}

/** Creates and starts a privileged guest with nesting (what `unprivileged: false` + Docker asks of Proxmox); returns its address. */
export async function startGuest(backend: LxcGuestBackend, vmid: number, publicKey: string, hostname: string): Promise<string> {
  const t = (await backend.listTemplates()).find((x) => x.volid.includes("debian-12-standard"));
  if (!t) throw new Error("no debian-12 template in the sandbox");
  const hex = (vmid % 256).toString(16).padStart(2, "0").toUpperCase();
  await backend.create({
    vmid,
    node: "pve-01",
    hostname,
    template: t,
    rootfs: { node: "pve-01", storage: "local-lvm", name: `vm-${vmid}-disk-0` },
    mounts: [],
    memoryMb: 1024,
    swapMb: 256,
    cores: 2,
    diskGb: 8,
    net: [{ name: "eth0", bridge: "vmbr0", hwaddr: `BC:24:11:7E:04:${hex}`, ip: "dhcp" }],
    sshPublicKeys: publicKey,
    unprivileged: false,
    features: { nesting: true, keyctl: false },
  });
  await backend.start(vmid);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const inet = (await backend.interfaces(vmid))?.find((i) => i.name === "eth0")?.inet;
    if (inet) return inet.split("/")[0] ?? "";
    if (Date.now() > deadline) throw new Error(`CT ${vmid} has no address`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GETs a page from the host, retrying until it answers or the time is up. */
export async function fetchPage(url: string, timeoutMs = 30_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      return { status: res.status, body: await res.text() };
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms: ${String(last)}`);
}
