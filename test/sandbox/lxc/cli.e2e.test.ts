/**
 * `homelab sandbox start --backend lxc` end to end, through the CLI as a user
 * runs it: real LXC guests behind the API, a registry and a Docker Engine
 * that trusts it next to it, the environment file for --env sandbox, and
 * `stop` leaving nothing behind.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ensureSandboxHost, leftovers } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const ENTRY = join(ROOT, "src/cli/entry.ts");
const BRIDGE = "hlsbxt9";

function dockerPing(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: "/_ping" }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

function homelab(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY, ...args], { cwd, timeout: 20 * 60_000, env: { ...process.env, NO_COLOR: "1" } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

test("[root][lxc][docker] sandbox start --backend lxc from the CLI: registry, Docker Engine, environment, refusal of a second start; stop leaves nothing", { timeout: 25 * 60_000 }, async () => {
  await ensureSandboxHost();
  const repo = mkdtempSync(join(tmpdir(), "homelab-lxc-cli-"));
  cpSync(join(ROOT, "services"), join(repo, "services"), { recursive: true });
  cpSync(join(ROOT, "Pulumi.yaml"), join(repo, "Pulumi.yaml"));
  const stateDir = join(repo, ".homelab", "sandbox");
  try {
    const started = await homelab(repo, "sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE, "--subnet", "10.87.69.0/24", "--json");
    assert.equal(started.code, 0, started.stderr);
    const line = JSON.parse(started.stdout) as { backend: string; registry: string; dockerHost?: string; envFile: string };
    assert.equal(line.backend, "lxc");
    assert.equal(line.registry, "10.87.69.1:5000");
    assert.equal(line.dockerHost, `unix:///run/homelab-sandbox/${BRIDGE}/docker.sock`);
    const env = await readFile(line.envFile, "utf8");
    assert.match(env, /local_registry: \{ url: "10\.87\.69\.1:5000", insecure: true \}/);
    assert.ok(env.includes(`  homelab:docker_host: "${line.dockerHost}"`), env);
    assert.match(env, /^ {2}homelab:docker_source: distribution$/m);
    // The sandbox's Docker Engine answers there.
    assert.equal(await dockerPing(line.dockerHost.slice("unix://".length)), "OK");
    // The example services validate against it unchanged (peach's registry is local_registry).
    const valid = await homelab(repo, "--env", "sandbox", "validate", "--skip-secrets");
    assert.equal(valid.code, 0, valid.stderr);
    // The registry answers on the bridge address.
    const res = await fetch("http://10.87.69.1:5000/v2/");
    assert.equal(res.status, 200);
    const again = await homelab(repo, "sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already running/);
  } finally {
    const stopped = await homelab(repo, "sandbox", "stop");
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual(await leftovers({ stateDir: join(stateDir, "lxc"), bridge: BRIDGE, hostAddress: "10.87.69.1" }), []);
    rmSync(repo, { recursive: true, force: true });
  }
});
