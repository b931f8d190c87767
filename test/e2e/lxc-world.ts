/**
 * The world of the end-to-end tests that deploy for real on the lxc
 * sandbox: a temporary homelab repository, `homelab sandbox start --backend
 * lxc` on a bridge and subnet of the test's own (real LXC guests, the
 * sandbox's registry and Docker Engine), the CLI run as a child process (the
 * real Pulumi engine and provider plugin), copies of the hello service, SSH
 * into the guests with the environment's key, and `sandbox stop` with the
 * check that nothing is left behind.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { knownHostsFile, sshKeyFile } from "../../src/config/homelab-dir.ts";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import type { ProxmoxClient } from "../../src/proxmox/client.ts";
import { KnownHosts, withSsh } from "../../src/provision/ssh.ts";
import type { RunResult } from "../../src/provision/ssh.ts";
import { ensureSandboxHost, leftovers } from "../sandbox/lxc/helpers.ts";
import { killPlugins, REPO } from "./helpers.ts";

const ENTRY = join(REPO, "src", "cli", "entry.ts");

/** What a CLI run printed and how it ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `homelab status --json`, the parts the tests read. */
export interface StatusJson {
  services: Array<{ service: string; state: string; resources: Array<{ id: string; type: string; vmid?: number; node?: string; address?: string; detail?: string }> }>;
}

/** A deployed container of a service. */
export interface Guest {
  vmid: number;
  node: string;
  address: string;
}

/** Fetches a page with a short timeout; undefined when nothing answers. */
export async function page(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

/** Polls a URL until its body includes `text`; returns the milliseconds it took. */
export async function waitForPage(url: string, text: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  let last = "";
  while (Date.now() - start < timeoutMs) {
    const p = await page(url);
    if (p?.status === 200 && p.body.includes(text)) return Date.now() - start;
    last = p ? `${p.status}: ${p.body.slice(0, 200)}` : "no answer";
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not serve "${text}" within ${timeoutMs} ms (last: ${last})`);
}

/** The host-side interfaces on a bridge (one veth per running guest). */
export function bridgeLinks(bridge: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    execFile("ip", ["-json", "link", "show", "master", bridge], (e, out) => (e ? reject(new Error(`ip link show master ${bridge}: ${e.message}`)) : resolve((JSON.parse(out || "[]") as Array<{ ifname: string }>).map((l) => l.ifname)))),
  );
}

/** A temporary repository and its lxc sandbox. Call `start()` (after adding services if you like), and `close()` in `after`. */
export class LxcWorld {
  readonly repo: string;
  readonly bridge: string;
  readonly subnet: string;
  /** Timings the test reports at the end. */
  readonly figures: string[] = [];
  /** Variables added to every CLI run (after the world's own), e.g. a tool's folder on PATH. */
  readonly cliEnv: Record<string, string> = {};
  #admin: ProxmoxClient | undefined;
  #started = false;

  /** Makes the repository (with Pulumi.yaml); `prefix` names its temporary folder. */
  constructor(o: { bridge: string; subnet: string; prefix: string }) {
    this.bridge = o.bridge;
    this.subnet = o.subnet;
    this.repo = mkdtempSync(join(tmpdir(), o.prefix));
    copyFileSync(join(REPO, "Pulumi.yaml"), join(this.repo, "Pulumi.yaml"));
  }

  /** The host's address on the bridge (the registry's). */
  get hostAddress(): string {
    return this.subnet.replace(/0\/24$/, "1");
  }

  /** The sandbox's Proxmox API as its administrator. */
  get admin(): ProxmoxClient {
    assert.ok(this.#admin, "the sandbox is not started");
    return this.#admin;
  }

  /** The environment file `homelab sandbox start` wrote. */
  get envFile(): string {
    return join(this.repo, ".homelab", "environments", "Pulumi.sandbox.yaml");
  }

  #env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PATH: `${dirname(process.execPath)}${delimiter}${process.env["PATH"] ?? ""}`,
      HOMELAB_FROM_SOURCE: "1",
      HOMELAB_NODE: process.execPath,
      PULUMI_HOME: join(this.repo, ".pulumi-home"),
      NO_COLOR: "1",
      CI: "",
      ...this.cliEnv,
    };
  }

  /** Runs `homelab --dir REPO ARGS...` to completion. */
  homelab(...args: string[]): Promise<Run> {
    return new Promise((resolve) => {
      execFile(process.execPath, [ENTRY, "--dir", this.repo, ...args], { timeout: 20 * 60_000, maxBuffer: 64 * 1024 * 1024, env: this.#env() }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  /** Starts `homelab --dir REPO ARGS...` without waiting (stdout and stderr piped). */
  spawn(...args: string[]): ChildProcess {
    return spawn(process.execPath, [ENTRY, "--dir", this.repo, ...args], { env: this.#env(), stdio: ["ignore", "pipe", "pipe"] });
  }

  /** `homelab sandbox start --backend lxc` on the world's bridge and subnet. */
  async start(): Promise<void> {
    await ensureSandboxHost();
    const t = Date.now();
    const started = await this.homelab("sandbox", "start", "--backend", "lxc", "--bridge", this.bridge, "--subnet", this.subnet, "--task-duration", "100", "--json");
    this.#started = true;
    assert.equal(started.code, 0, started.stderr);
    this.figures.push(`sandbox start: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const info = JSON.parse(started.stdout) as { url: string; token: string; tokenSecretFile: string; fingerprint: string };
    this.#admin = createProxmoxClient({ endpoint: info.url, auth: { tokenId: info.token, tokenSecret: readFileSync(info.tokenSecretFile, "utf8").trim() }, tls: { fingerprint: info.fingerprint } });
  }

  /** Kills what the world's runs left, stops the sandbox, checks that nothing is left behind, removes the repository. */
  async close(): Promise<void> {
    await this.#admin?.close();
    killPlugins(this.repo);
    if (this.#started) {
      const stopped = await this.homelab("sandbox", "stop");
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.deepEqual(await leftovers({ stateDir: join(this.repo, ".homelab", "sandbox", "lxc"), bridge: this.bridge, hostAddress: this.hostAddress }), []);
    }
    rmSync(this.repo, { recursive: true, force: true });
  }

  /** `homelab --env sandbox status --json`. */
  async status(): Promise<StatusJson> {
    const r = await this.homelab("--env", "sandbox", "status", "--json");
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  }

  /** The deployed container of a service (one container per service). */
  async container(service: string): Promise<Guest> {
    const s = (await this.status()).services.find((x) => x.service === service);
    const c = s?.resources.find((r) => r.type === "homelab:proxmox:Container");
    assert.ok(c?.vmid !== undefined && c.node !== undefined && c.address !== undefined, JSON.stringify(s));
    return { vmid: c.vmid, node: c.node, address: c.address };
  }

  /** `homelab --env sandbox deploy SERVICES --yes`, which must succeed; its time goes into the figures. */
  async deploy(...services: string[]): Promise<Run> {
    const t = Date.now();
    const r = await this.homelab("--env", "sandbox", "deploy", ...services, "--yes");
    this.figures.push(`deploy ${services.join(" ")}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /**
   * A copy of services/hello named `name`, serving `text` (its health check expects that text), with Debian's static busybox in its image folder.
   * `version`: its template constraint instead of hello's `>=12` (which is Debian 13 where 13 is offered), e.g. `^12`.
   */
  addHello(name: string, text: string, o: { version?: string } = {}): void {
    const dir = join(this.repo, "services", name);
    cpSync(join(REPO, "services", "hello"), dir, { recursive: true });
    copyFileSync("/bin/busybox", join(dir, "docker/web/busybox"));
    let yaml = readFileSync(join(dir, "service.yaml"), "utf8")
      .replace(/^name: hello$/m, `name: ${name}`)
      .replace(/hello_/g, `${name}_`)
      .replace(/name: hello-web/, `name: ${name}-web`)
      .replace(/expect_body: Hello from homelab$/m, `expect_body: ${text}`);
    if (o.version !== undefined) {
      assert.match(yaml, /version: ">=12"/);
      yaml = yaml.replace(/version: ">=12"/, `version: "${o.version}"`);
    }
    writeFileSync(join(dir, "service.yaml"), yaml);
    writeFileSync(join(dir, "docker-compose.yaml"), readFileSync(join(dir, "docker-compose.yaml"), "utf8").replace(/^( +image: )hello-web$/m, `$1${name}-web`));
    writeFileSync(join(dir, "docker/web/www/index.html"), `<h1>${text}</h1>\n`);
  }

  /** Rewrites a file of the repository (relative path) with a function. */
  edit(file: string, f: (text: string) => string): void {
    const path = join(this.repo, file);
    writeFileSync(path, f(readFileSync(path, "utf8")));
  }

  /**
   * What runs in a guest: its release (VERSION_CODENAME), the Compose version as Compose reports it, and the
   * names of the project's containers (Compose v1 names them `<project>_<service>_1`, v2 `<project>-<service>-1`).
   */
  async guestDocker(address: string, project: string): Promise<{ codename: string; compose: string; containers: string[] }> {
    const r = await this.guest(
      address,
      [
        ". /etc/os-release && echo \"codename=$VERSION_CODENAME\"",
        "v=$(docker compose version --short 2>/dev/null || docker-compose version --short 2>/dev/null) && echo \"compose=$v\"",
        `docker ps --filter label=com.docker.compose.project=${project} --format 'container={{.Names}}'`,
      ].join("\n"),
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    const value = (k: string): string[] => lines.filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1).trim());
    return { codename: value("codename")[0] ?? "", compose: value("compose")[0] ?? "", containers: value("container").sort() };
  }

  /** Runs a shell script as root in a guest over SSH, with the environment's key and pinned host keys (as provisioning and the monitor do). */
  guest(address: string, script: string, o: { connectTimeoutMs?: number } = {}): Promise<RunResult> {
    const keyFile = sshKeyFile(this.repo, "sandbox");
    const target = { host: address, privateKey: readFileSync(keyFile), privateKeyFile: keyFile, knownHosts: new KnownHosts(knownHostsFile(this.repo, "sandbox")) };
    return withSsh(target, (ex) => ex.run(script, { check: false, timeoutMs: 120_000, what: "a test script" }), { timeoutMs: o.connectTimeoutMs ?? 30_000 });
  }
}
