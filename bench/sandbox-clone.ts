/**
 * Templates and clones in the lxc sandbox, through its HTTPS API (root,
 * LXC): a Debian 13 container with Docker installed (docker.io through the
 * package cache) and an image of IMAGE_MIB of data in Docker, stopped and
 * converted into a template; then the time of each step from request to the
 * task's end: the conversion, linked clones (ROUNDS of them: an overlay over
 * the template's tree, Docker's image layers hard-linked), full clones
 * (copies), and of each clone from the start request to SSH answering and
 * to `docker run` answering. Tasks take no extra time (`taskDurationMs: 0`),
 * so the figures are the backend's own work.
 * `node bench/sandbox-clone.ts [ROUNDS] [IMAGE_MIB]` (defaults 3, 100).
 */
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLxcBackend } from "../src/sandbox/lxc/backend.ts";
import { templateFileName } from "../src/sandbox/lxc/templates.ts";
import { startSandboxServer } from "../src/sandbox/server.ts";
import { TestClient } from "../test/sandbox/helpers.ts";
import { ensureSandboxHost, hostKeyOf, makeKey, waitForSsh } from "../test/sandbox/lxc/helpers.ts";

const rounds = Number(process.argv[2] ?? 3);
const imageMib = Number(process.argv[3] ?? 100);
const N = "pve-01";
const TEMPLATE = `local:vztmpl/${templateFileName("13.1-2")}`;
const run = promisify(execFile);
await ensureSandboxHost();
const dir = await mkdtemp(join(tmpdir(), "homelab-clone-bench-"));
const stateDir = join(dir, "state");
const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const spread = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${fmt(s[Math.floor(s.length / 2)] ?? 0)}, min ${fmt(s[0] ?? 0)}, max ${fmt(s.at(-1) ?? 0)} (${s.length} runs)`;
};
const key = await makeKey(join(dir, "ssh"));
const backend = await createLxcBackend({ stateDir, bridge: "hlcln1", subnet: "10.87.100.0/24" });
const sandbox = await startSandboxServer({ backend, taskDurationMs: 0, stateDir: join(dir, "api") });
const c = new TestClient(sandbox);

/** Runs a task on N to its end; resolves to its milliseconds. */
const timed = (method: string, path: string, form: Record<string, string> = {}): Promise<number> => c.timedTask(N, method, path, form);

async function sh(vmid: number, command: string): Promise<string> {
  const r = await backend.exec(vmid, ["sh", "-c", command]);
  if (r.code !== 0) throw new Error(`CT ${vmid}: ${command}: ${r.stderr}`);
  return r.stdout.trim();
}

async function address(vmid: number): Promise<string> {
  for (;;) {
    const list = (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/interfaces`)) as { name: string; inet?: string }[] | null;
    const inet = list?.find((x) => x.name === "eth0")?.inet;
    if (inet) return inet.split("/")[0] ?? "";
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** MiB folders of the state take on disk together (a file hard-linked from several counts once). */
async function mib(...paths: string[]): Promise<number> {
  const { stdout } = await run("du", ["-smc", ...paths]);
  return Number(stdout.trim().split("\n").at(-1)?.split("\t")[0] ?? "NaN");
}

/** Starts a clone; resolves to the milliseconds until SSH answers and until `docker run` answers. */
async function boot(vmid: number): Promise<{ ssh: number; docker: number }> {
  const t = Date.now();
  await timed("POST", `/nodes/${N}/lxc/${vmid}/status/start`);
  await waitForSsh({ host: await address(vmid), privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) }, 120_000);
  const ssh = Date.now() - t;
  for (;;) {
    const r = await backend.exec(vmid, ["docker", "run", "--rm", "tiny:1", "echo", "ok"]);
    if (r.code === 0 && r.stdout.trim() === "ok") break;
    if (Date.now() - t > 120_000) throw new Error(`CT ${vmid}: docker run never answered: ${r.stderr}`);
    await new Promise((r2) => setTimeout(r2, 100));
  }
  return { ssh, docker: Date.now() - t };
}

try {
  await timed("POST", `/nodes/${N}/lxc`, { vmid: "100", ostemplate: TEMPLATE, rootfs: "local-lvm:8", memory: "1024", features: "nesting=1", net0: "name=eth0,bridge=vmbr0,ip=dhcp", "ssh-public-keys": key.publicKey });
  await timed("POST", `/nodes/${N}/lxc/100/status/start`);
  let t = Date.now();
  await sh(100, "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io docker-cli >/dev/null");
  console.log(`base: docker.io installed through the package cache in ${fmt(Date.now() - t)}`);
  await copyFile("/bin/busybox", join(stateDir, "lxc", backend.containerName(100), "rootfs/root/busybox"));
  await sh(100, `mkdir -p /tmp/img && cp /root/busybox /tmp/img/busybox && chmod +x /tmp/img/busybox && head -c ${imageMib}M /dev/urandom > /tmp/img/blob && tar -C /tmp/img -c . | docker import -c 'ENTRYPOINT ["/busybox"]' - tiny:1 >/dev/null && rm -rf /tmp/img`);
  await timed("POST", `/nodes/${N}/lxc/100/status/shutdown`, { timeout: "60" });

  t = Date.now();
  const answer = await c.call("POST", `/nodes/${N}/lxc/100/template`);
  if (answer.status !== 200) throw new Error(`template: ${answer.reason}`);
  const [conversion] = (await c.ok("GET", `/nodes/${N}/tasks?vmid=100&typefilter=vztemplate&source=all`)) as { upid: string }[];
  if (!conversion || (await c.waitTask(N, conversion.upid)).exitstatus !== "OK") throw new Error("template conversion failed");
  console.log(`template conversion (volumes renamed to base volumes, root remounted read-only): ${fmt(Date.now() - t)}`);
  const base = join(stateDir, "storage", N, "local-lvm", "base-100-disk-0");
  console.log(`the base holds ${await mib(join(base, "upper"))} MiB of its own tree (Docker installed) above the template's, and ${await mib(join(base, "docker"))} MiB of Docker data (an image of ${imageMib} MiB)`);

  const linked: number[] = [];
  const full: number[] = [];
  const linkedBoot: Array<{ ssh: number; docker: number }> = [];
  const fullBoot: Array<{ ssh: number; docker: number }> = [];
  for (let i = 0; i < rounds; i++) {
    linked.push(await timed("POST", `/nodes/${N}/lxc/100/clone`, { newid: String(200 + i), hostname: `linked-${i}` }));
    full.push(await timed("POST", `/nodes/${N}/lxc/100/clone`, { newid: String(300 + i), hostname: `full-${i}`, full: "1" }));
  }
  console.log(`linked clone (request to task end): ${spread(linked)}`);
  console.log(`full clone (request to task end): ${spread(full)}`);
  const volume = (name: string): string => join(stateDir, "storage", N, "local-lvm", name);
  const alone = await mib(base);
  console.log(`disk a clone adds to the base's ${alone} MiB: linked ${(await mib(base, volume("vm-200-disk-0"))) - alone} MiB, full ${(await mib(base, volume("vm-300-disk-0"))) - alone} MiB`);
  for (let i = 0; i < rounds; i++) {
    linkedBoot.push(await boot(200 + i));
    fullBoot.push(await boot(300 + i));
  }
  console.log(`linked clone, start request to SSH answering: ${spread(linkedBoot.map((b) => b.ssh))}; to docker run answering: ${spread(linkedBoot.map((b) => b.docker))}`);
  console.log(`full clone, start request to SSH answering: ${spread(fullBoot.map((b) => b.ssh))}; to docker run answering: ${spread(fullBoot.map((b) => b.docker))}`);
} finally {
  c.close();
  const t = Date.now();
  await sandbox.close();
  console.log(`sandbox close: ${fmt(Date.now() - t)}`);
  await rm(dir, { recursive: true, force: true });
}
