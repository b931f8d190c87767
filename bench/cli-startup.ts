/**
 * Times `homelab list` and `homelab validate` over 200 generated services (whole
 * process, median of several runs) against `node -e ''` as the floor, and
 * checks that Pulumi is never loaded by them.
 * Usage: node bench/cli-startup.ts [--services N] [--runs N]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { services: { type: "string", default: "200" }, runs: { type: "string", default: "15" } } });
const N = Number(values.services);
const RUNS = Number(values.runs);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin/homelab");

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

function time(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const runs: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr.toString().slice(0, 500)}`);
    if (i >= 2) runs.push(ms); // two warm-up runs fill the page cache
  }
  return median(runs);
}

const root = makeRepo();
try {
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) {
    console.error("dist/ is missing: run scripts/setup.sh first (the launcher runs the compiled CLI)");
    process.exit(1);
  }
  const env = { ...process.env, NO_COLOR: "1", HOMELAB_ENV: "bench" };
  // Prove Pulumi is never loaded: trace module loads in one run.
  const trace = execFileSync(process.execPath, ["--trace-event-categories", "node.module_timer", "-e", ""], { env }).toString();
  void trace;
  const loaded = spawnSync(process.execPath, ["--import", "data:text/javascript,import{registerHooks}from'node:module';registerHooks({resolve(s,c,n){if(/pulumi/.test(s))process.stderr.write('PULUMI '+s+'\\n');return n(s,c)}})", join(ROOT, "dist/cli/main.js"), "--dir", root, "validate"], { env });
  const pulumiLoaded = loaded.stderr.toString().includes("PULUMI ");
  const floor = time(process.execPath, ["-e", ""], env);
  const list = time(BIN, ["--dir", root, "list"], env);
  const validate = time(BIN, ["--dir", root, "validate"], env);
  console.log(`services: ${N}, runs per command: ${RUNS} (median wall time, whole process)`);
  console.log(`node -e ''          ${floor.toFixed(1)} ms`);
  console.log(`homelab list        ${list.toFixed(1)} ms  (+${(list - floor).toFixed(1)} over the floor)`);
  console.log(`homelab validate    ${validate.toFixed(1)} ms  (+${(validate - floor).toFixed(1)} over the floor)`);
  console.log(`target: under 250 ms each -> list ${list < 250 ? "met" : "MISSED"}, validate ${validate < 250 ? "met" : "MISSED"}`);
  console.log(`pulumi modules loaded by validate: ${pulumiLoaded ? "YES (a bug)" : "none"}`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
void cpSync;
