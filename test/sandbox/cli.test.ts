import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { loadEnvironment } from "../../src/config/environment.ts";
import { isDaemonAlive, renderEnvFile } from "../../src/sandbox/control.ts";

const HARNESS = fileURLToPath(new URL("./fixtures/cli-harness.ts", import.meta.url));

function homelab(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HARNESS, ...args], { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

function get(url: string, token: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false, headers: { authorization: `PVEAPIToken=${token}` } }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

interface StartLine {
  url: string;
  token: string;
  tokenSecretFile: string;
  fingerprint: string;
  envFile: string;
  caFile: string;
  pid: number;
}

describe("homelab sandbox start/stop (subprocesses)", () => {
  let repo: string;
  before(async () => {
    repo = await mkdtemp(join(tmpdir(), "homelab-sandbox-cli-"));
    await mkdir(join(repo, "services"));
    await mkdir(join(repo, "sub", "dir"), { recursive: true });
  });
  after(async () => {
    await homelab(repo, "sandbox", "stop");
    await rm(repo, { recursive: true, force: true });
  });

  it("starts detached, prints one JSON line without the secret, writes state and the env file; stop ends it", async () => {
    // Run from a sub-folder: the repository is found upward.
    const started = await homelab(join(repo, "sub", "dir"), "sandbox", "start", "--json", "--auth-delay", "0", "--task-duration", "50");
    assert.equal(started.code, 0, started.stderr);
    const lines = started.stdout.trim().split("\n");
    assert.equal(lines.length, 1);
    const s = JSON.parse(lines[0] ?? "") as StartLine;
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(s.token, "root@pam!homelab");
    assert.equal(s.envFile, join(repo, ".homelab", "environments", "Pulumi.sandbox.yaml"));
    assert.equal(s.tokenSecretFile, join(repo, ".homelab", "sandbox", "token-secret"));
    assert.match(s.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const secret = (await readFile(s.tokenSecretFile, "utf8")).trim();
    assert.ok(!started.stdout.includes(secret), "the secret is never printed");
    assert.equal((await stat(s.tokenSecretFile)).mode & 0o777, 0o600);
    assert.ok(await isDaemonAlive(s.pid));

    const ca = await readFile(s.caFile, "utf8");
    const version = await get(`${s.url}/api2/json/version`, `${s.token}=${secret}`, ca);
    assert.equal(version.status, 200);

    const envText = await readFile(s.envFile, "utf8");
    const doc = parse(envText) as { config: Record<string, unknown> };
    assert.deepEqual(doc.config["homelab:tier1_hosts"], ["pve-01", "pve-02"]);
    assert.deepEqual(doc.config["homelab:hosts"], { "pve-03": { tags: ["tier:2"] } });
    const { env, diagnostics } = loadEnvironment(repo, "sandbox");
    assert.deepEqual(diagnostics.filter((d) => d.severity === "error"), []);
    assert.equal(env?.proxmox?.endpoint, s.url);
    assert.equal(env?.proxmox?.fingerprint, s.fingerprint);
    assert.equal(env?.kind, "sandbox");

    const again = await homelab(repo, "sandbox", "start");
    assert.equal(again.code, 1);
    assert.ok(again.stderr.includes(s.url), again.stderr);

    const status = await homelab(repo, "sandbox", "status", "--json");
    assert.equal((JSON.parse(status.stdout) as { running: boolean }).running, true);

    const stopped = await homelab(repo, "sandbox", "stop");
    assert.equal(stopped.code, 0);
    assert.match(stopped.stdout, /sandbox stopped/);
    assert.equal(existsSync(s.envFile), false);
    assert.equal(existsSync(s.tokenSecretFile), false);
    assert.equal(await isDaemonAlive(s.pid), false);
    assert.equal((await homelab(repo, "sandbox", "status")).code, 1);
  });

  it("after a crash (stale pid) start cleans up first; --state and --nodes are honoured", async () => {
    const state = join(repo, "elsewhere");
    const first = await homelab(repo, "sandbox", "start", "--json", "--state", state, "--nodes", "4", "--auth-delay", "0");
    assert.equal(first.code, 0, first.stderr);
    const s = JSON.parse(first.stdout) as StartLine;
    assert.equal(s.tokenSecretFile, join(state, "token-secret"));
    assert.match(await readFile(s.envFile, "utf8"), /pve-04: \{ tags: \["tier:2"\] \}/);
    process.kill(s.pid, "SIGKILL");
    for (let i = 0; i < 100 && (await isDaemonAlive(s.pid)); i++) await new Promise((r) => setTimeout(r, 20));
    const second = await homelab(repo, "sandbox", "start", "--state", state, "--auth-delay", "0");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, new RegExp(`cleaned up after a sandbox that is gone \\(pid ${s.pid}\\)`));
    assert.match(second.stdout, /sandbox running/);
    assert.equal((await homelab(repo, "sandbox", "stop", "--state", state)).code, 0);
    assert.equal(existsSync(s.envFile), false);
  });

  it("fault flags reach the daemon; the lxc backend is refused clearly for now", async () => {
    const started = await homelab(repo, "sandbox", "start", "--json", "--auth-delay", "0", "--latency", "5", "--error-rate", "0.5");
    assert.equal(started.code, 0, started.stderr);
    const s = JSON.parse(started.stdout) as StartLine;
    const secret = (await readFile(s.tokenSecretFile, "utf8")).trim();
    const faults = await get(`${s.url}/sandbox/faults`, `${s.token}=${secret}`, await readFile(s.caFile, "utf8"));
    assert.deepEqual((JSON.parse(faults.body) as { data: { latencyMs: number; errorRate: number } }).data.errorRate, 0.5);
    assert.equal((await homelab(repo, "sandbox", "stop")).code, 0);
    const bogus = await homelab(repo, "sandbox", "start", "--backend", "qemu");
    assert.notEqual(bogus.code, 0);
  });

  it("the memory backend's env file says deploys there do not provision (its guests are state only)", () => {
    const text = renderEnvFile({ url: "https://127.0.0.1:8006", tokenId: "root@pam!homelab", tokenSecretFile: "/t", rootPasswordFile: "/p", fingerprint: "AB:CD", nodes: ["pve-01"], backend: "memory" });
    assert.match(text, /^ {2}homelab:provisioning: false$/m);
    const lxc = renderEnvFile({ url: "https://127.0.0.1:8006", tokenId: "root@pam!homelab", tokenSecretFile: "/t", rootPasswordFile: "/p", fingerprint: "AB:CD", nodes: ["pve-01"], backend: "lxc", registry: "10.0.0.1:5000" });
    assert.doesNotMatch(lxc, /provisioning/);
    assert.match(lxc, /local_registry: \{ url: "10\.0\.0\.1:5000", insecure: true \}/);
  });

  it("the lxc backend's env file names its Docker Engine and Debian's Docker for the offline guests, each with a comment why; the memory one neither", async () => {
    const fingerprint = Array.from({ length: 32 }, () => "AB").join(":");
    const base = { url: "https://127.0.0.1:8006", tokenId: "root@pam!homelab", tokenSecretFile: "/t", rootPasswordFile: "/p", fingerprint, nodes: ["pve-01"] };
    const lxc = renderEnvFile({ ...base, backend: "lxc", registry: "10.0.0.1:5000", dockerHost: "unix:///run/homelab-sandbox/hlsbx0/docker.sock" });
    const lines = lxc.split("\n");
    const host = lines.indexOf('  homelab:docker_host: "unix:///run/homelab-sandbox/hlsbx0/docker.sock"');
    const source = lines.indexOf("  homelab:docker_source: distribution");
    assert.ok(host > 0 && source > 0, lxc);
    assert.match(lines[host - 1] ?? "", /^ {2}# .*Docker Engine.*plain-HTTP registry/);
    assert.match(lines[source - 1] ?? "", /^ {2}# .*offline.*Debian's packages/);
    const doc = parse(lxc) as { config: Record<string, unknown> };
    assert.equal(doc.config["homelab:docker_host"], "unix:///run/homelab-sandbox/hlsbx0/docker.sock");
    assert.equal(doc.config["homelab:docker_source"], "distribution");
    // And the environment schema takes them.
    const repo = await mkdtemp(join(tmpdir(), "homelab-sandbox-env-"));
    try {
      await mkdir(join(repo, ".homelab", "environments"), { recursive: true });
      await writeFile(join(repo, ".homelab", "environments", "Pulumi.sandbox.yaml"), lxc);
      const { env, diagnostics } = loadEnvironment(repo, "sandbox");
      assert.deepEqual(diagnostics.filter((d) => d.severity === "error"), []);
      assert.deepEqual(env?.docker, { host: "unix:///run/homelab-sandbox/hlsbx0/docker.sock", source: "distribution", base: "clone" });
    } finally {
      await rm(repo, { recursive: true, force: true });
    }

    const memory = renderEnvFile({ ...base, backend: "memory" });
    assert.doesNotMatch(memory, /docker_host|docker_source/);
    // Without the engine (a daemon from before it), still Debian's Docker in lxc guests.
    const older = renderEnvFile({ ...base, backend: "lxc", registry: "10.0.0.1:5000" });
    assert.doesNotMatch(older, /docker_host/);
    assert.match(older, /^ {2}homelab:docker_source: distribution$/m);
  });

  it("the env file has the documented shape", () => {
    const text = renderEnvFile({ url: "https://127.0.0.1:8006", tokenId: "root@pam!homelab", tokenSecretFile: "/r/.homelab/sandbox/token-secret", rootPasswordFile: "/r/.homelab/sandbox/root-password", fingerprint: "AB:CD", nodes: ["pve-01"] });
    assert.equal(
      text,
      [
        "# Written by `homelab sandbox start`: the environment `--env sandbox`.",
        "config:",
        "  homelab:environment: sandbox",
        "  homelab:proxmox:",
        "    endpoint: https://127.0.0.1:8006",
        '    token_id: "root@pam!homelab"',
        '    token_secret_file: "/r/.homelab/sandbox/token-secret"',
        "    username: root@pam",
        '    password_file: "/r/.homelab/sandbox/root-password"',
        '    fingerprint: "AB:CD"',
        "  homelab:tier1_hosts: [pve-01]",
        "",
      ].join("\n"),
    );
  });
});
