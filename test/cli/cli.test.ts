import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { discoverServices } from "../../src/config/discover.ts";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const run = promisify(execFile);

/** Runs the CLI from source; resolves with code, stdout and stderr whatever the exit code. */
async function homelab(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, NO_COLOR: "1", ...opts.env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test("list --json gives name, description, path and resources", async () => {
  const r = await homelab(["list", "--json"]);
  assert.equal(r.code, 0);
  const list = JSON.parse(r.stdout) as { name: string; description: string; path: string; resources: { id: string; type: string }[] }[];
  const peach = list.find((s) => s.name === "peach");
  assert.equal(peach?.description, "Nginx Proxy Manager for internal routing");
  assert.equal(peach?.path, "services/peach/service.yaml");
  assert.deepEqual(peach?.resources, [
    { id: "peach_reverse_proxy_image", type: "docker:image" },
    { id: "peach_container", type: "proxmox:container" },
  ]);
  assert.ok(list.some((s) => s.name === "librechat"));
});

test("the example services are valid against prod once their secret is provided", async () => {
  const r = await homelab(["validate", "--env", "prod"], { env: { PEACH_API_KEY: "k" } });
  assert.equal(r.code, 0, r.stderr);
  const count = discoverServices(ROOT).length;
  assert.ok(count >= 3);
  assert.match(r.stderr, new RegExp(`^${count} service\\(s\\) checked against environment prod: 0 error\\(s\\)`, "m"));
});

test("validate exits 1 listing every problem as FILE:LINE:COL, missing secrets included", async () => {
  const r = await homelab(["validate", "--env", "prod"], { env: { PEACH_API_KEY: "" } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^services\/peach\/\.secrets\.example\.yaml:3:1: required secret "api_key" of service peach is not provided \(set PEACH_API_KEY/m);
  const skipped = await homelab(["validate", "--env", "prod", "--skip-secrets"]);
  assert.equal(skipped.code, 0);
});

test("validate from a subfolder finds the repository; --dir points elsewhere", async () => {
  const repo = makeRepo({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    depend_on: [x]\n` });
  try {
    const sub = await homelab(["validate", "--env", "test"], { cwd: join(repo.root, "services/app") });
    assert.equal(sub.code, 1);
    assert.match(sub.stderr, /^services\/app\/service\.yaml:10:5: unknown field "depend_on" in resources\[0\] \(did you mean "depends_on"\?\)$/m);
    const dir = await homelab(["--dir", repo.root, "validate", "--env", "test", "--json"]);
    const out = JSON.parse(dir.stdout) as { valid: boolean; errors: number };
    assert.deepEqual([out.valid, out.errors], [false, 1]);
  } finally {
    repo.cleanup();
  }
});

test("show --json resolves defaults from the environment and reports secrets without values", async () => {
  const r = await homelab(["show", "peach", "--json", "--env", "prod"], { env: { PEACH_API_KEY: "super-secret-value" } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes("super-secret-value"));
  const s = JSON.parse(r.stdout) as {
    environment: { kind: string };
    resources: { id: string; depends_on: { ref: string }[]; spec: Record<string, unknown> }[];
    secrets: { key: string; provided: string }[];
  };
  assert.equal(s.environment.kind, "production");
  const ct = s.resources.find((x) => x.id === "peach_container");
  assert.deepEqual(ct?.spec["host"], { tags: ["tier:1"], resources: { memory: 2048, cores: 2, disk: 8, swap: 512 } });
  assert.deepEqual(ct?.spec["docker"], { compose: true, compose_files: ["services/peach/docker-compose.yaml"], volumes_on: "data" });
  assert.deepEqual(ct?.spec["volumes"], [{ name: "data", size: 2, path: "/srv/peach", storage: "local-lvm", backup: true }]);
  assert.equal(ct?.spec["hostname"], "peach-container");
  assert.deepEqual(ct?.depends_on.map((d) => d.ref), ["peach_reverse_proxy_image"]);
  const img = s.resources.find((x) => x.id === "peach_reverse_proxy_image");
  assert.equal(img?.spec["registry_url"], "registry.lan:5000");
  assert.deepEqual(s.secrets, [{ key: "api_key", envVar: "PEACH_API_KEY", provided: "env", from: "$PEACH_API_KEY" }]);
});

test("show (human) lists health checks and remediation", async () => {
  const r = await homelab(["show", "librechat", "--env", "prod"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /http +http:\/\/\{address\}:3080 +every 60s, timeout 5s, unhealthy after 3 failures/);
  assert.match(r.stdout, /auto-remediate yes \(restart first, then recreate/);
});

test("show of an unknown service suggests the closest", async () => {
  const r = await homelab(["show", "paech"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no service "paech".*\n.*hint: did you mean "peach"\?/);
});

test("schema prints draft-07 JSON Schema identical to the committed schema file", async () => {
  const r = await homelab(["schema"]);
  assert.equal(r.code, 0);
  const schema = JSON.parse(r.stdout) as { $schema: string };
  assert.equal(schema.$schema, "http://json-schema.org/draft-07/schema#");
  assert.equal(r.stdout, readFileSync(join(ROOT, "schema/service.schema.json"), "utf8"), "run: homelab schema > schema/service.schema.json");
});

test("usage errors exit 2 with a suggestion; --help documents exit codes", async () => {
  const bad = await homelab(["lsit"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command 'lsit'[\s\S]*Did you mean list\?/);
  const help = await homelab(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes:\n\s+0 +success/);
  for (const c of ["list", "show", "validate", "schema"]) assert.match(help.stdout, new RegExp(`\\b${c}\\b`));
  const sub = await homelab(["validate", "--help"]);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /--skip-secrets/);
});

test("colors only when wanted: NO_COLOR and --no-color turn them off, FORCE_COLOR on", async () => {
  const forced = await homelab(["list"], { env: { NO_COLOR: "", FORCE_COLOR: "1" } });
  assert.match(forced.stdout, /\u001b\[1m/);
  const off = await homelab(["--no-color", "list"], { env: { NO_COLOR: "", FORCE_COLOR: "1" } });
  assert.doesNotMatch(off.stdout, /\u001b\[/);
  const none = await homelab(["list"], { env: { NO_COLOR: "1", FORCE_COLOR: "1" } });
  assert.doesNotMatch(none.stdout, /\u001b\[/);
});

test("outside any homelab repository, the error says how to point at one", async () => {
  const r = await homelab(["list"], { cwd: "/" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no homelab repository at \/[\s\S]*--dir PATH/);
});

test("show with a broken environment file reports it instead of silently using defaults", async () => {
  const repo = makeRepo({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}`, "Pulumi.test.yaml": "config:\n  homelab:default_memroy: 1\n" });
  try {
    const r = await homelab(["--dir", repo.root, "--env", "test", "show", "app"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Pulumi\.test\.yaml:2:3: unknown setting "homelab:default_memroy" \(did you mean "homelab:default_memory"\?\)$/m);
    assert.match(r.stderr, /environment test is not valid/);
  } finally {
    repo.cleanup();
  }
});

test("validate --verbose names the environment file and each service checked", async () => {
  const r = await homelab(["validate", "--env", "prod", "--verbose"], { env: { PEACH_API_KEY: "k" } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /environment prod \(production\) from .*Pulumi\.prod\.yaml/);
  assert.match(r.stderr, /✓ peach\n/);
});

test("output piped into a reader that stops early (| head) ends quietly, no EPIPE crash", async () => {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [MAIN, "--help"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.destroy(); // the reader goes away before the CLI writes
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
});

test("commands that need an environment name the ones there are when none is selected", async () => {
  const repo = makeRepo({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}`, "Pulumi.lab.yaml": "config: {}\n" });
  try {
    for (const args of [["status"], ["destroy", "app", "--yes"], ["unlock", "app"], ["deploy", "app", "--dry-run"], ["monitor", "--once"]]) {
      const r = await homelab(["--dir", repo.root, ...args], { env: { HOMELAB_ENV: "" } });
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, /no environment selected: pass --env NAME \(environments here: lab, test\)/, args.join(" "));
    }
  } finally {
    repo.cleanup();
  }
});
