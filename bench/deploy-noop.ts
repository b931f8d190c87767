/**
 * Deploy benchmark on the sandbox (memory backend), with the real CLI, engine
 * and provider plugin:
 *  1. deploying N new services (one container each): wall time, Proxmox
 *     requests in total and per service, write requests;
 *  2. a no-op `homelab deploy --all` (target: under 15 s for 20 services),
 *     at several concurrencies;
 *  3. where a no-op's time goes: Node and CLI start, Pulumi CLI start,
 *     provider plugin start, engine open, inventory, state reads, one
 *     stack's preview.
 *
 *   node bench/deploy-noop.ts [--services 20] [--concurrency 1,2,4,8]
 */
import { execFile, spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { loadRepository } from "../src/config/repository.ts";
import { Engine } from "../src/engine/engine.ts";
import { serviceProgram } from "../src/engine/program.ts";
import { resolvePulumiCli } from "../src/engine/pulumi-cli.ts";
import { connectProxmox } from "../src/proxmox/connect.ts";
import { ensureSshKey } from "../src/provision/ssh-key.ts";
import { currentState } from "../src/engine/state.ts";
import { planService } from "../src/plan/plan.ts";
import { containerService, REPO, startWorld } from "../test/e2e/helpers.ts";

const run = promisify(execFile);
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const N = Number(arg("services", "20"));
const CONCURRENCIES = arg("concurrency", "1,2,4,8").split(",").map(Number);

const ms = (t: number) => `${Math.round(t)} ms`;
const s = (t: number) => `${(t / 1000).toFixed(1)} s`;
async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

const w = await startWorld({ services: [] });
try {
  const names = Array.from({ length: N }, (_, i) => `svc${String(i + 1).padStart(2, "0")}`);
  for (const n of names) w.writeService(n, containerService(n, { memory: 256 }));
  console.log(`deploy benchmark: ${N} services, one container each, sandbox ${w.sandbox.url} (memory backend); ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n`);

  // 1. Deploying them all, new.
  w.sandbox.counters.reset();
  const [first, firstMs] = await timed(() => w.cli(["deploy", "--all", "--yes"]));
  if (first.code !== 0) throw new Error(`deploy failed:\n${first.all}`);
  const counts = w.sandbox.counters.get();
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const writes = Object.entries(counts).filter(([k]) => !k.startsWith("GET ")).reduce((a, [, b]) => a + b, 0);
  console.log(`new: deploy --all of ${N} services: ${s(firstMs)} wall, ${total} Proxmox requests (${(total / N).toFixed(1)} per service), ${writes} of them writes`);
  for (const [k, v] of Object.entries(counts).sort((a, b) => b[1] - a[1])) console.log(`    ${String(v).padStart(5)}  ${k}`);

  // 2. No-op runs: as users run them (unchanged services known from the state), then with the engine's preview for each.
  console.log("");
  const noop = async (label: string, args: string[]) => {
    w.sandbox.counters.reset();
    const [r, t] = await timed(() => w.cli(["deploy", "--all", ...args]));
    if (r.code !== 0 || !new RegExp(`0 applied, ${N} unchanged`).test(r.stdout)) throw new Error(`no-op deploy was not one:\n${r.all}`);
    const c2 = w.sandbox.counters.get();
    const req = Object.values(c2).reduce((a, b) => a + b, 0);
    const wr = Object.entries(c2).filter(([k]) => !k.startsWith("GET ")).length;
    const shortcut = (r.stdout.match(/as deployed: state and plan match/g) ?? []).length;
    console.log(`no-op: ${label}: ${s(t)} wall, ${req} Proxmox requests, ${wr} write routes, ${shortcut}/${N} known unchanged from the state`);
  };
  // The first no-op may record a new fingerprint (the sources changed since the deploy); the second is the steady state.
  await noop("deploy --all (first)", []);
  await noop("deploy --all", []);
  for (const c of CONCURRENCIES) await noop(`deploy --all --no-skip-unchanged --concurrency ${c}`, ["--no-skip-unchanged", "--concurrency", String(c)]);

  // 3. Where the time goes.
  console.log("\nparts of a no-op run:");
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`, HOMELAB_FROM_SOURCE: "1", PULUMI_HOME: join(w.root, ".pulumi-home") };
  const [, cliStart] = await timed(() => run(process.execPath, [join(REPO, "src", "cli", "entry.ts"), "--version"], { env }));
  console.log(`  node + homelab CLI start (--version):        ${ms(cliStart)}`);
  const [, listMs] = await timed(() => run(process.execPath, [join(REPO, "src", "cli", "entry.ts"), "--dir", w.root, "list"], { env }));
  console.log(`  homelab list (config of ${N} services):       ${ms(listMs)}`);
  const cli = await resolvePulumiCli();
  const [, pulumiStart] = await timed(() => run(cli.path, ["version"], { env: { ...env, PULUMI_SKIP_UPDATE_CHECK: "true" } }));
  console.log(`  pulumi CLI start (pulumi version):           ${ms(pulumiStart)}`);
  const [, pluginStart] = await timed(
    () =>
      new Promise<void>((resolve, reject) => {
        const p = spawn(join(REPO, "bin", "pulumi-resource-homelab"), [], { env, stdio: ["ignore", "pipe", "inherit"] });
        p.stdout.once("data", () => {
          p.kill();
          resolve();
        });
        p.once("error", reject);
      }),
  );
  console.log(`  provider plugin start (until its port):      ${ms(pluginStart)}`);
  const [, importMs] = await timed(() => import("@pulumi/pulumi/automation/index.js"));
  console.log(`  import of the Automation API (warm):         ${ms(importMs)}`);
  const [engine, openMs] = await timed(() => Engine.open({ root: w.root, envName: "sandbox", processEnv: env }));
  console.log(`  engine open (CLI check, workspace):          ${ms(openMs)}`);
  const repo = loadRepository({ root: w.root, envName: "sandbox" });
  const [inventory, invMs] = await timed(async () => {
    const client = connectProxmox(repo.env, { processEnv: env, ci: false });
    try {
      return await client.loadInventory();
    } finally {
      await client.close();
    }
  });
  console.log(`  inventory snapshot (${inventory.requests} requests):              ${ms(invMs)}`);
  const [states, stateMs] = await timed(() => Promise.all(names.map((n) => engine.readState(`sandbox.${n}`))));
  console.log(`  read ${N} stack states from disk:              ${ms(stateMs)}`);
  const [, listStacksMs] = await timed(() => engine.listStacks());
  console.log(`  pulumi stack ls:                             ${ms(listStacksMs)}`);
  const service = repo.services.get(names[0] ?? "");
  if (!service) throw new Error("no service");
  const key = ensureSshKey(w.root, "sandbox");
  const { plan } = planService({ service, env: repo.env, inventory, current: currentState(states[0]), sshPublicKey: key.publicKey });
  if (!plan) throw new Error("no plan");
  const [preview, previewMs] = await timed(() => engine.preview(plan.stack, serviceProgram({ plan })));
  console.log(`  one stack's no-op preview (CLI + plugin):    ${ms(previewMs)} (${preview.changes.map((c) => c.kind).join(", ")})`);
  const [, four] = await timed(() => Promise.all(names.slice(0, 4).map((n) => {
    const svc = repo.services.get(n);
    if (!svc) throw new Error(n);
    const p = planService({ service: svc, env: repo.env, inventory, current: currentState(states[names.indexOf(n)]), sshPublicKey: key.publicKey }).plan;
    if (!p) throw new Error(n);
    return engine.preview(p.stack, serviceProgram({ plan: p }));
  })));
  console.log(`  four previews at once:                       ${ms(four)} (${ms(four / 4)} each)`);
} finally {
  await w.close();
}
