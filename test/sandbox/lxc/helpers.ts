/**
 * Helpers for the lxc backend's end-to-end tests (root, LXC): host set-up,
 * SSH into guests with ssh2 (host keys pinned), and the leftover check that
 * `close()` must pass (tests that need Docker on the host ask the backend for
 * its own with `docker: true`).
 */
import { execFile } from "node:child_process";
import { access, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "ssh2";
import type { GuestSpec, TemplateInfo } from "../../../src/sandbox/guest-backend.ts";
import { lxcAvailable } from "../../../src/sandbox/lxc/backend.ts";
import { dockerRunDirOf } from "../../../src/sandbox/lxc/layout.ts";
import { ruleTag } from "../../../src/sandbox/lxc/commands.ts";
import { listProcesses, lxcMonitors, processesMentioning, sleep } from "../../../src/sandbox/lxc/host.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");

/** Makes sure this host can run the lxc backend, running the set-up script once when it cannot. */
export async function ensureSandboxHost(): Promise<void> {
  if ((await lxcAvailable()).ok) return;
  await run("bash", [join(ROOT, "scripts/setup-sandbox-host.sh")], { maxBuffer: 16 * 1024 * 1024 });
  const again = await lxcAvailable();
  if (!again.ok) throw new Error(`host not ready for the lxc backend: ${again.reason ?? ""}`);
}

/** A fresh SSH key pair (OpenSSH format). */
export async function makeKey(dir: string): Promise<{ privateKey: string; publicKey: string }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, "id_ed25519");
  await rm(file, { force: true });
  await rm(`${file}.pub`, { force: true });
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "homelab-test", "-f", file]);
  return { privateKey: await readFile(file, "utf8"), publicKey: await readFile(`${file}.pub`, "utf8") };
}

/** What a remote command printed. */
export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How to reach a guest: address, client key, and the host key to pin (the `.pub` line). */
export interface SshTarget {
  host: string;
  privateKey: string;
  hostKey?: string;
}

/** Runs one command over SSH as root. */
export function sshRun(target: SshTarget, command: string, timeoutMs = 60_000): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let settled = false;
    const finish = (err: Error | null, res?: SshResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.end();
      if (err) reject(err);
      else if (res) resolve(res);
    };
    const timer = setTimeout(() => finish(new Error(`ssh ${target.host} '${command}' timed out`)), timeoutMs);
    c.on("ready", () => {
      c.exec(command, (err, stream) => {
        if (err) return finish(err);
        let stdout = "";
        let stderr = "";
        stream.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
        stream.on("close", (code: number | null) => finish(null, { code: code ?? -1, stdout, stderr }));
      });
    });
    c.on("error", (err) => finish(err));
    const expected = target.hostKey?.trim().split(/\s+/)[1];
    c.connect({
      host: target.host,
      port: 22,
      username: "root",
      privateKey: target.privateKey,
      readyTimeout: 5000,
      algorithms: { serverHostKey: ["ssh-ed25519"] },
      ...(expected ? { hostVerifier: (key: Buffer) => key.toString("base64") === expected } : {}),
    });
  });
}

/** Waits until SSH runs a command on the guest; returns the milliseconds it took. */
export async function waitForSsh(target: SshTarget, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  let last: unknown;
  while (Date.now() - started < timeoutMs) {
    try {
      const r = await sshRun(target, "true", 10_000);
      if (r.code === 0) return Date.now() - started;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`SSH to ${target.host} did not answer within ${timeoutMs} ms: ${String(last)}`);
}

/** The guest's ed25519 host key as written at create (for pinning). */
export function hostKeyOf(stateDir: string, containerName: string): Promise<string> {
  return readFile(join(stateDir, "lxc", containerName, "rootfs/etc/ssh/ssh_host_ed25519_key.pub"), "utf8");
}

/** A guest spec for tests. */
export function testSpec(vmid: number, template: TemplateInfo, publicKey: string, over: Partial<GuestSpec> = {}): GuestSpec {
  const hex = (vmid % 256).toString(16).padStart(2, "0").toUpperCase();
  return {
    vmid,
    node: "pve-01",
    hostname: `ct${vmid}`,
    template,
    rootfs: { node: "pve-01", storage: "local-lvm", name: `vm-${vmid}-disk-0` },
    mounts: [],
    memoryMb: 512,
    swapMb: 256,
    cores: 1,
    diskGb: 8,
    net: [{ name: "eth0", bridge: "vmbr0", hwaddr: `BC:24:11:7E:00:${hex}`, ip: "dhcp" }],
    sshPublicKeys: publicKey,
    unprivileged: true,
    features: { nesting: false, keyctl: false },
    ...over,
  };
}

/** Runs a host command for a test, returning stdout. */
export async function host(argv: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const [file, ...args] = argv;
  const { stdout } = await run(file ?? "false", args, { env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Everything a closed backend must not have left behind, described; empty when clean. */
export async function leftovers(o: { stateDir: string; bridge: string; hostAddress: string }): Promise<string[]> {
  const found: string[] = [];
  const lxcpath = join(o.stateDir, "lxc");
  const listed = await host(["lxc-ls", "-P", lxcpath, "-1"]).catch(() => "");
  if (listed.trim()) found.push(`lxc-ls -P ${lxcpath}: ${listed.trim()}`);
  const monitors = lxcMonitors(await listProcesses()).filter((m) => m.lxcpath === lxcpath || m.name.startsWith(`${o.bridge}-`));
  if (monitors.length) found.push(`running containers: ${monitors.map((m) => m.name).join(", ")}`);
  const links = JSON.parse(await host(["ip", "-json", "link", "show"])) as Array<{ ifname: string; master?: string }>;
  for (const l of links) {
    if (l.ifname === o.bridge) found.push(`bridge ${o.bridge}`);
    if (l.master === o.bridge) found.push(`link ${l.ifname} on ${o.bridge}`);
  }
  const rules = (await host(["iptables-save"])).split("\n").filter((l) => l.includes(ruleTag(o.bridge)));
  for (const r of rules) found.push(`iptables: ${r}`);
  // The backend's dockerd keeps its sockets and runtime state there (its containerd names only that).
  const dockerRun = dockerRunDirOf(o.bridge);
  const mounts = (await readFile("/proc/mounts", "utf8")).split("\n").filter((l) => [o.stateDir, dockerRun].some((d) => (l.split(" ")[1] ?? "").startsWith(d)));
  for (const m of mounts) found.push(`mount: ${m}`);
  const procs = await listProcesses();
  const mentioning = new Map([o.stateDir, `${dockerRun}/`].flatMap((d) => processesMentioning(procs, d, new Set([process.pid]))).map((p) => [p.pid, p]));
  for (const p of mentioning.values()) found.push(`process ${p.pid}: ${p.argv.join(" ")}`);
  if (await access(dockerRun).then(() => true, () => false)) found.push(`folder ${dockerRun}`);
  // Probing the address after close would route it off this machine, so look for it on the host's links instead.
  const addrs = JSON.parse(await host(["ip", "-json", "-4", "addr", "show"])) as Array<{ ifname: string; addr_info?: Array<{ local?: string }> }>;
  for (const l of addrs) if ((l.addr_info ?? []).some((a) => a.local === o.hostAddress)) found.push(`address ${o.hostAddress} on ${l.ifname}`);
  return found;
}
