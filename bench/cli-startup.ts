/**
 * Times `homelab list` and `homelab validate` over 200 generated services (whole
 * process, median of several runs) against `node -e ''` as the floor, and
 * checks that Pulumi is never loaded by them. `validate` runs as users run it
 * again and again, its cache warm after the warm-up runs; `validate --no-cache`
 * (every service checked afresh, as in CI) is timed too, for reference.
 * Usage: node bench/cli-startup.ts [--services N] [--runs N]
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { services: { type: "string", default: "200" }, runs: { type: "string", default: "15" } } });
const N = Number(values.services);
const RUNS = Number(values.runs);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
// The launcher, as users run it; BENCH_DIST=1 runs dist/ directly (the launcher
// falls back to the TypeScript sources while any source is newer than dist/).
const BIN = process.env["BENCH_DIST"] === "1" ? process.execPath : join(ROOT, "bin/homelab");
const PRE = process.env["BENCH_DIST"] === "1" ? [join(ROOT, "dist/cli/entry.js")] : [];

function makeRepo(): string {
  const root = mkdtempSync(join(tmpdir(), "homelab-bench-"));
  writeFileSync(join(root, "Pulumi.yaml"), "name: homelab\nruntime: nodejs\n");
  writeFileSync(join(root, "Pulumi.bench.yaml"), "config:\n  homelab:tier1_hosts: [pve-01, pve-02]\n  homelab:registries:\n    local_registry: { url: 127.0.0.1:5000 }\n");
  for (let i = 0; i < N; i++) {
    const name = `svc${String(i).padStart(3, "0")}`;
    const dir = join(root, "services", name);
    mkdirSync(join(dir, "docker"), { recursive: true });
    writeFileSync(join(dir, "docker", "Dockerfile"), "FROM scratch\n");
    writeFileSync(join(dir, "docker-compose.yaml"), `services:\n  web:\n    image: ${name}_image\n    ports: ["80:80"]\n`);
    const dep = i > 0 ? `\n      - svc${String(i - 1).padStart(3, "0")}.container` : "";
    writeFileSync(
      join(dir, "service.yaml"),
      `name: ${name}
description: generated service ${i}
resources:
  - id: image
    type: docker:image
    name: ${name}_image
    path: ./docker
    registry: local_registry
  - id: container
    type: proxmox:container
    image: { name: "*debian*", version: ">=12" }
    host:
      tags: [tier:1]
      resources: { memory: 1024, cores: 1, disk: 8 }
    docker: { compose: true }
    network: { ports: ["80:80"] }
    depends_on:
      - image${dep}
monitoring:
  health_checks:
    - { type: http, url: "http://{address}:80/", interval: 30 }
`,
    );
  }
  return root;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/**
 * Median wall time and median CPU time (user + sys, from /usr/bin/time) of a
 * whole process. CPU time barely moves when other work loads the machine;
 * wall time is what the target is about.
 */
function time(cmd: string, args: string[], env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync("/usr/bin/time", ["-f", "%U %S", cmd, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.toString().slice(0, 500)}`);
    const [user, sys] = (r.stderr.toString().trim().split("\n").pop() ?? "0 0").split(" ").map(Number);
    if (i >= 2) {
      // two warm-up runs fill the page cache and the compile cache
      walls.push(ms);
      cpus.push(((user ?? 0) + (sys ?? 0)) * 1000);
    }
  }
  return { wall: median(walls), cpu: median(cpus) };
}

const root = makeRepo();
try {
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) {
    console.error("dist/ is missing: run scripts/setup.sh first (the launcher runs the compiled CLI)");
    process.exit(1);
  }
  const env = { ...process.env, NO_COLOR: "1", HOMELAB_ENV: "bench" };
  // Prove Pulumi is never loaded: a resolve hook reports any module named like it.
  const loaded = spawnSync(process.execPath, ["--import", "data:text/javascript,import{registerHooks}from'node:module';registerHooks({resolve(s,c,n){if(/pulumi/.test(s))process.stderr.write('PULUMI '+s+'\\n');return n(s,c)}})", join(ROOT, "dist/cli/main.js"), "--dir", root, "validate"], { env });
  const pulumiLoaded = loaded.stderr.toString().includes("PULUMI ");
  const floor = time(process.execPath, ["-e", ""], env);
  const list = time(BIN, [...PRE, "--dir", root, "list"], env);
  const validate = time(BIN, [...PRE, "--dir", root, "validate"], env);
  const validateAfresh = time(BIN, [...PRE, "--dir", root, "validate", "--no-cache"], env);
  console.log(`services: ${N}, runs per command: ${RUNS} (medians, whole process), running ${PRE.length ? "dist/ directly" : "bin/homelab"}`);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
  const row = (name: string, r: { wall: number; cpu: number }) =>
    `${name.padEnd(18)} wall ${r.wall.toFixed(0).padStart(5)} ms (+${(r.wall - floor.wall).toFixed(0)} over the floor)   cpu ${r.cpu.toFixed(0).padStart(5)} ms`;
  console.log(`load average at the end: ${load} (on ${availableParallelism()} cores; wall times are only meaningful on an idle machine)`);
  console.log(row("node -e ''", floor));
  console.log(row("homelab list", list));
  console.log(row("homelab validate", validate));
  console.log(row("  ... --no-cache", validateAfresh));
  if (/^(1|true|yes)$/i.test(process.env["CI"] ?? "")) console.log("note: CI is set, which turns the validate cache off: both validate rows check every service afresh");
  console.log(`target: under 250 ms wall each -> list ${list.wall < 250 ? "met" : "MISSED"}, validate ${validate.wall < 250 ? "met" : "MISSED"}`);
  console.log(`pulumi modules loaded by validate: ${pulumiLoaded ? "YES (a bug)" : "none"}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
