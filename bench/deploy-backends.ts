/**
 * The same deploys with the state in each backend, side by side: the
 * repository's own folder (file://), a PostgreSQL database and an S3 bucket
 * (versitygw), the last two on this machine's test servers
 * (scripts/setup-test-services.sh, root). Real CLI, engine and plugin, the
 * memory sandbox, N services of one container each, a fresh sandbox per
 * backend:
 *  1. deploy --all of N new services (writes the state N times over);
 *  2. no-op deploy --all as users run it (unchanged services known from the
 *     state homelab reads itself), best and median of several runs;
 *  3. no-op deploy --all with the engine's preview of every stack
 *     (--no-skip-unchanged: the Pulumi CLI reads each state from the backend);
 *  4. status, and reading the N states homelab-side.
 *
 *   node bench/deploy-backends.ts [--services 20] [--runs 5] [--concurrency 4]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Engine } from "../src/engine/engine.ts";
import { freshBucket, freshDatabase } from "../test/helpers/services.ts";
import { containerService, killPlugins, startWorld } from "../test/e2e/helpers.ts";
import type { World } from "../test/e2e/helpers.ts";

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const N = Number(arg("services", "20"));
const RUNS = Number(arg("runs", "5"));
const CONCURRENCY = arg("concurrency", "4");

const s = (t: number) => `${(t / 1000).toFixed(2)} s`;
async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}
const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 === 1 ? (v[(v.length - 1) / 2] ?? 0) : ((v[v.length / 2 - 1] ?? 0) + (v[v.length / 2] ?? 0)) / 2;
};

interface Row {
  backend: string;
  fresh: number;
  noopBest: number;
  noopMedian: number;
  preview: number;
  status: number;
  states: number;
}

const envFile = (root: string): string => join(root, ".homelab", "environments", "Pulumi.sandbox.yaml");
const secrets = mkdtempSync(join(tmpdir(), "homelab-bench-backends-"));
const file = (name: string, value: string): string => {
  const f = join(secrets, name);
  writeFileSync(f, value + "\n", { mode: 0o600 });
  return f;
};

/** The backends: none (the default file backend), or homelab:backend lines, and how to clean up. */
async function backends(): Promise<{ name: string; setting: string[] | undefined; drop: () => Promise<void> }[]> {
  const db = await freshDatabase();
  const bucket = await freshBucket();
  const passphrase = file("passphrase", "bench-passphrase-0123456789");
  return [
    { name: "file (.homelab/state)", setting: undefined, drop: () => Promise.resolve() },
    {
      name: "postgres (PostgreSQL on loopback)",
      setting: [`url: ${JSON.stringify(db.url)}`, `password_file: ${file("pg", db.env["PGPASSWORD"] ?? "")}`, `passphrase_file: ${passphrase}`],
      drop: () => db.drop(),
    },
    {
      name: "s3 (versitygw on loopback)",
      setting: [`url: ${JSON.stringify(bucket.url)}`, `access_key_id_file: ${file("id", bucket.env["AWS_ACCESS_KEY_ID"] ?? "")}`, `secret_access_key_file: ${file("secret", bucket.env["AWS_SECRET_ACCESS_KEY"] ?? "")}`, `passphrase_file: ${passphrase}`],
      drop: () => bucket.drop(),
    },
  ];
}

async function measure(w: World, name: string): Promise<Row> {
  const names = Array.from({ length: N }, (_, i) => `svc${String(i + 1).padStart(2, "0")}`);
  for (const n of names) w.writeService(n, containerService(n, { memory: 256 }));
  const [first, fresh] = await timed(() => w.cli(["deploy", "--all", "--yes"]));
  if (first.code !== 0) throw new Error(`${name}: deploy failed:\n${first.all}`);
  const noop = async (args: string[]): Promise<number> => {
    w.sandbox.counters.reset();
    const [r, t] = await timed(() => w.cli(["deploy", "--all", ...args]));
    if (r.code !== 0 || !new RegExp(`0 applied, ${N} unchanged`).test(r.stdout)) throw new Error(`${name}: no-op deploy was not one:\n${r.all}`);
    if (Object.keys(w.writes()).length > 0) throw new Error(`${name}: a no-op deploy wrote to the sandbox: ${JSON.stringify(w.writes())}`);
    return t;
  };
  // The first no-op may record the fingerprint of the sources (an update with no resource change).
  await noop([]);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await noop([]));
  const preview = await noop(["--no-skip-unchanged", "--concurrency", CONCURRENCY]);
  const [st, status] = await timed(() => w.cli(["status"]));
  if (st.code !== 0) throw new Error(`${name}: status failed:\n${st.all}`);
  const env = { ...process.env, PULUMI_HOME: join(w.root, ".pulumi-home") };
  const { loadEnvironment } = await import("../src/config/environment.ts");
  const engine = await Engine.open({ root: w.root, envName: "sandbox", processEnv: env, readOnly: true, backendSetting: loadEnvironment(w.root, "sandbox").env?.backend });
  const [, states] = await timed(() => Promise.all(names.map((n) => engine.readState(`sandbox.${n}`))));
  return { backend: name, fresh, noopBest: Math.min(...times), noopMedian: median(times), preview, status, states };
}

console.log(`deploys with the state in each backend: ${N} services of one container each, memory sandbox; ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}\n`);
const rows: Row[] = [];
const list = await backends();
try {
  for (const b of list) {
    const w = await startWorld({ services: [] });
    try {
      if (b.setting !== undefined) writeFileSync(envFile(w.root), readFileSync(envFile(w.root), "utf8").trimEnd() + "\n  homelab:backend:\n" + b.setting.map((l) => `    ${l}`).join("\n") + "\n");
      const row = await measure(w, b.name);
      rows.push(row);
      console.log(`${b.name}: new ${s(row.fresh)}, no-op best ${s(row.noopBest)} / median ${s(row.noopMedian)} of ${RUNS}, no-op with the engine's preview ${s(row.preview)}, status ${s(row.status)}, ${N} states read ${Math.round(row.states)} ms`);
    } finally {
      killPlugins(w.root);
      await w.close();
    }
  }
} finally {
  for (const b of list) await b.drop();
  rmSync(secrets, { recursive: true, force: true });
}

console.log(`\n| backend | deploy --all, ${N} new | no-op deploy --all (best / median of ${RUNS}) | no-op, engine preview per stack (--no-skip-unchanged, concurrency ${CONCURRENCY}) | status | ${N} states read by homelab |`);
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.backend} | ${s(r.fresh)} | ${s(r.noopBest)} / ${s(r.noopMedian)} | ${s(r.preview)} | ${s(r.status)} | ${Math.round(r.states)} ms |`);
