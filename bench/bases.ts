/**
 * What Docker-ready bases buy, through the CLI on the lxc sandbox: the first
 * deploy of a compose service on a fresh node (which builds the base, and the
 * base build itself from its own line), the first deploy of a second service
 * with the base already there, a recreate as the monitor does it (destroy and
 * deploy the service), and the same first deploy with `homelab:docker_base:
 * install` for comparison. Root only; everything stays on this machine.
 * Usage: node bench/bases.ts [--debian 12|13]
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, benchCli } from "./homelab-cli.ts";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { debian: { type: "string", default: "13" } } });
if (process.getuid?.() !== 0) {
  console.error("this bench needs root (LXC containers, a dockerd)");
  process.exit(1);
}
const BRIDGE = "hlbbase0";
const SUBNET = "10.87.102.0/24";
const repo = mkdtempSync(join(tmpdir(), "homelab-bench-bases-"));
const { run: homelab, ok } = benchCli(repo);

/** A copy of hello named `name` on one node (so every copy shares the node's base). */
function hello(name: string): void {
  const dir = join(repo, "services", name);
  cpSync(join(ROOT, "services", "hello"), dir, { recursive: true });
  copyFileSync("/bin/busybox", join(dir, "docker/web/busybox"));
  const yaml = readFileSync(join(dir, "service.yaml"), "utf8")
    .replace(/^name: hello$/m, `name: ${name}`)
    .replace(/hello_/g, `${name}_`)
    .replace(/name: hello-web/, `name: ${name}-web`)
    .replace(/version: ">=12"/, `version: "^${values.debian ?? "13"}"`)
    .replace("      resources:\n", "      tags: [tier:1]\n      resources:\n");
  writeFileSync(join(dir, "service.yaml"), yaml);
  writeFileSync(join(dir, "docker-compose.yaml"), readFileSync(join(dir, "docker-compose.yaml"), "utf8").replace(/^( +image: )hello-web$/m, `$1${name}-web`));
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

try {
  copyFileSync(join(ROOT, "Pulumi.yaml"), join(repo, "Pulumi.yaml"));
  await ok("sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE, "--subnet", SUBNET, "--json");
  const envFile = join(repo, ".homelab", "environments", "Pulumi.sandbox.yaml");
  writeFileSync(envFile, readFileSync(envFile, "utf8").replace(/homelab:tier1_hosts: \[[^\]]*\]/, "homelab:tier1_hosts: [pve-01]"));
  for (const n of ["first", "second", "third"]) hello(n);
  const first = await ok("--env", "sandbox", "deploy", "first", "--yes");
  const built = /base CT \d+ on \S+ built in ([\d.]+) s/.exec(first.out)?.[1] ?? "?";
  const second = await ok("--env", "sandbox", "deploy", "second", "--yes");
  const destroy = await ok("--env", "sandbox", "destroy", "second", "--yes");
  const redeploy = await ok("--env", "sandbox", "deploy", "second", "--yes");
  writeFileSync(envFile, readFileSync(envFile, "utf8").replace(/^config:\n/m, "config:\n  homelab:docker_base: install\n"));
  const installed = await ok("--env", "sandbox", "deploy", "third", "--yes");
  console.log(`Docker-ready bases on the lxc sandbox (Debian ${values.debian ?? "13"}, 2 cores, load ${readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?"}):`);
  console.log(`  first deploy on a fresh node (builds the base)   ${s(first.ms)}   (the base itself: ${built} s)`);
  console.log(`  first deploy with the base already built         ${s(second.ms)}   (goal: under 15 s)`);
  console.log(`  recreate as the monitor does it (destroy + deploy) ${s(destroy.ms + redeploy.ms)}   (goal: under 20 s; destroy ${s(destroy.ms)}, deploy ${s(redeploy.ms)})`);
  console.log(`  first deploy with docker_base: install           ${s(installed.ms)}`);
} finally {
  await homelab("sandbox", "stop");
  rmSync(repo, { recursive: true, force: true });
}
