/**
 * homelab itself with its state in the backends a household or a team
 * shares: a PostgreSQL database and an S3 bucket (versitygw) on this
 * machine's test servers (scripts/setup-test-services.sh), named by the
 * environment's `homelab:backend` with every credential referenced from a
 * file. The real CLI, engine and plugin against the memory sandbox:
 *   - deploy, a second deploy with no change and no write request, status,
 *     the monitor's reads of the state, destroy;
 *   - two checkouts of the repository (two folders, as two machines would
 *     be) deploying one service at once: the second is refused, naming who
 *     holds the lock; two services deploy side by side;
 *   - a deploy killed with -9 leaves its lock: unlock refuses while its
 *     owner runs, clears it once the owner is gone, and needs --force for a
 *     lock taken on another machine (another host name, a UTS namespace);
 *   - moving an environment's state from .homelab/state to each backend with
 *     `homelab state export/import`: the deploy after it changes nothing.
 * No password, secret key or passphrase appears in any output.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { resolvePulumiCli } from "../../src/engine/pulumi-cli.ts";
import type { BackendStore } from "../../src/engine/backend-store.ts";
import { readBackendState, readLocks } from "../../src/engine/pulumi-internals.ts";
import { PostgresStore } from "../../src/engine/store-postgres.ts";
import { openS3Store } from "../../src/engine/store-s3.ts";
import { freshBucket, freshDatabase } from "../helpers/services.ts";
import { containerService, killPlugins, startWorld, waitFor } from "./helpers.ts";
import type { Run, World } from "./helpers.ts";

const execFileP = promisify(execFile);

/** A shared backend of a test: the environment's setting, the secrets that must never show, homelab's own view of its objects. */
interface Shared {
  kind: string;
  url: string;
  /** The `homelab:backend` keys beyond url (credential files). */
  settings: Record<string, string>;
  /** The credentials as a client's variables. */
  env: Record<string, string>;
  secrets: string[];
  store: BackendStore;
  drop(): Promise<void>;
}

function secretFile(dir: string, name: string, value: string): string {
  const file = join(dir, name);
  writeFileSync(file, value + "\n", { mode: 0o600 });
  return file;
}

async function postgresBackend(dir: string): Promise<Shared> {
  const db = await freshDatabase();
  const password = db.env["PGPASSWORD"] ?? "";
  return { kind: "postgres", url: db.url, settings: { password_file: secretFile(dir, "pg-password", password) }, env: db.env, secrets: [password], store: new PostgresStore(db.url, db.env), drop: () => db.drop() };
}

async function s3Backend(dir: string): Promise<Shared> {
  const bucket = await freshBucket();
  const id = bucket.env["AWS_ACCESS_KEY_ID"] ?? "";
  const secret = bucket.env["AWS_SECRET_ACCESS_KEY"] ?? "";
  const store = openS3Store(bucket.url, bucket.env);
  assert.ok(store);
  return {
    kind: "s3",
    url: bucket.url,
    settings: { access_key_id_file: secretFile(dir, "s3-id", id), secret_access_key_file: secretFile(dir, "s3-secret", secret) },
    env: bucket.env,
    secrets: [secret],
    store,
    drop: () => bucket.drop(),
  };
}

/** The environment file with `homelab:backend` set (the sandbox's file ends inside `config:`). */
function withBackend(envText: string, url: string, settings: Record<string, string>): string {
  return envText.trimEnd() + "\n  homelab:backend:\n" + [`    url: ${JSON.stringify(url)}`, ...Object.entries(settings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)].join("\n") + "\n";
}

const envFile = (root: string): string => join(root, ".homelab", "environments", "Pulumi.sandbox.yaml");

/** A service of one container with a tcp check on this machine (so the monitor's verdict depends only on what the state says is deployed). */
function checkedService(name: string, port: number): string {
  return containerService(name, { memory: 256 }) + ["monitoring:", "  health_checks:", "    - type: tcp", "      host: 127.0.0.1", `      port: ${port}`, "      retries: 1", ""].join("\n");
}

/** Another checkout of the world's repository: the services and the environment file, none of .homelab's state, workspace or keys. */
function checkout(w: World): string {
  const dir = mkdtempSync(join(tmpdir(), "homelab-checkout-"));
  cpSync(join(w.root, "services"), join(dir, "services"), { recursive: true });
  mkdirSync(join(dir, ".homelab", "environments"), { recursive: true });
  cpSync(envFile(w.root), envFile(dir));
  return dir;
}

function noSecrets(outputs: readonly Run[], secrets: readonly string[]): void {
  const all = outputs.map((r) => r.all).join("\n");
  for (const s of secrets) {
    assert.ok(s.length >= 8, "a secret worth looking for");
    assert.ok(!all.includes(s), "a credential appears in the output");
  }
}

for (const make of [postgresBackend, s3Backend]) {
  void describe(`[root][pulumi] homelab with its state in ${make === postgresBackend ? "PostgreSQL (postgres://)" : "an S3 bucket (s3://, versitygw)"}`, { timeout: 15 * 60_000 }, () => {
    let w: World;
    let shared: Shared;
    let other: string;
    let secretsDir: string;
    let server: Server;
    const outputs: Run[] = [];
    const pass = "team-passphrase-" + Math.random().toString(36).slice(2);
    const inB = { env: { PULUMI_HOME: "" } };
    const run = async (p: Promise<Run>): Promise<Run> => {
      const r = await p;
      outputs.push(r);
      return r;
    };
    const locks = (service: string) => readLocks(shared.store, `sandbox.${service}`);
    /** Create requests the sandbox received since its counters were reset (the task then runs as long as the faults say). */
    const creates = (): number => w.writes()["POST /nodes/{node}/lxc"] ?? 0;

    before(async () => {
      server = createServer((s) => s.end());
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      const port = address !== null && typeof address === "object" ? address.port : 0;
      w = await startWorld({ services: [] });
      for (const name of ["alpha", "beta", "gamma", "delta"]) w.writeService(name, checkedService(name, port));
      secretsDir = mkdtempSync(join(tmpdir(), "homelab-shared-secrets-"));
      shared = await make(secretsDir);
      const passphraseFile = secretFile(secretsDir, "passphrase", pass);
      writeFileSync(envFile(w.root), withBackend(readFileSync(envFile(w.root), "utf8"), shared.url, { ...shared.settings, passphrase_file: passphraseFile }));
      other = checkout(w);
      inB.env.PULUMI_HOME = join(other, ".pulumi-home");
      // The backend's first open, alone, as a team's set-up is (two machines' very first runs at the same moment race
      // on Pulumi's CREATE TABLE: see the last test).
      const first = await w.cli(["status"]);
      assert.equal(first.code, 0, first.all);
    });
    after(async () => {
      killPlugins(w.root);
      killPlugins(other);
      await w.close();
      rmSync(other, { recursive: true, force: true });
      rmSync(secretsDir, { recursive: true, force: true });
      await shared.drop();
      server.close();
    });

    void it("deploy, deploy again (no change, no write request), status, the monitor's reads, destroy; the state is in the backend only", async () => {
      const first = await run(w.cli(["deploy", "alpha"]));
      assert.equal(first.code, 0, first.all);
      assert.match(first.stdout, /alpha_ct {2}created/);
      const state = await readBackendState(shared.store, "sandbox.alpha");
      assert.deepEqual(state?.resources.map((r) => r.id), ["alpha_ct"]);
      assert.equal(existsSync(join(w.root, ".homelab", "state")), false, "nothing in the repository's own state folder");

      w.sandbox.counters.reset();
      const again = await run(w.cli(["deploy", "alpha"]));
      assert.equal(again.code, 0, again.all);
      assert.match(again.stdout, /alpha \(sandbox\.alpha\) {2}no changes \(as deployed: state and plan match\)/);
      const engine = await run(w.cli(["deploy", "alpha", "--no-skip-unchanged"]));
      assert.equal(engine.code, 0, engine.all);
      assert.match(engine.stdout, /alpha \(sandbox\.alpha\) {2}no changes\n/);
      assert.deepEqual(w.writes(), {});

      const status = await run(w.cli(["status"], inB));
      assert.equal(status.code, 0, status.all);
      assert.match(status.stdout, new RegExp(`\\(state: ${shared.kind}://`));
      assert.match(status.stdout, /alpha {2}deployed {2}sandbox\.alpha/);
      assert.match(status.stdout, /beta {3}never deployed/);
      const model = JSON.parse((await run(w.cli(["status", "--json"], inB))).stdout) as { backend: string; services: { service: string; state: string }[] };
      assert.equal(model.services.find((s) => s.service === "alpha")?.state, "deployed");
      assert.match(model.backend, new RegExp(`^${shared.kind}://`));

      // The monitor reads where each service is from the state: alpha is checked, beta is reported not deployed.
      const monitor = await run(w.cli(["monitor", "alpha", "beta", "--once"], inB));
      assert.equal(monitor.code, 1, monitor.all);
      assert.match(monitor.stdout, /healthy {2}alpha/);
      assert.match(monitor.stdout, /beta: tcp 127\.0\.0\.1:\d+: not deployed \(no container in the stack of beta\)/);

      const destroyed = await run(w.cli(["destroy", "alpha", "--yes"], inB));
      assert.equal(destroyed.code, 0, destroyed.all);
      assert.match(destroyed.stdout, /destroyed alpha in sandbox: 1 resource\(s\) deleted, stack removed/);
      assert.deepEqual(await w.named("alpha-ct"), []);
      assert.equal(await readBackendState(shared.store, "sandbox.alpha"), undefined);
      noSecrets(outputs, [...shared.secrets, pass]);
    });

    void it("two checkouts deploy one service at once: the second is refused, naming who holds the lock; two services deploy side by side", async () => {
      // Slow creations keep each deploy's lock held long enough to be seen. A create request sent means the update
      // runs (creating the stack before took a lock for an instant too, which is not what is looked for here).
      w.sandbox.faults.set({ taskDelayMs: 20_000, taskTypes: ["vzcreate"] });
      w.sandbox.counters.reset();
      const gamma = w.spawnCli(["deploy", "gamma", "--yes"]);
      await waitFor("gamma's container to be on its way", () => creates() >= 1, 120_000);
      const delta = w.spawnCli(["deploy", "delta", "--yes"], { dir: other, ...inB });
      await waitFor("delta's container to be on its way", () => creates() >= 2, 120_000);
      assert.equal((await locks("gamma")).length, 1, "gamma's deploy holds its lock");
      assert.equal((await locks("delta")).length, 1, "delta's deploy, from the other checkout, holds its lock at the same time");
      const second = await run(w.cli(["deploy", "gamma", "--yes"], { dir: other, ...inB }));
      assert.equal(second.code, 1, second.all);
      assert.match(second.stdout, /stack sandbox\.gamma is locked by pid \d+ on \S+ \(\S+\) since \S+, still running/);
      assert.match(second.stdout, /hint: another homelab run is deploying this service; wait for it to finish/);
      for (const r of [await gamma.done, await delta.done]) {
        outputs.push(r);
        assert.equal(r.code, 0, r.all);
      }
      w.sandbox.faults.clear();
      assert.equal((await w.named("gamma-ct")).length, 1);
      assert.equal((await w.named("delta-ct")).length, 1);
      assert.deepEqual(await locks("gamma"), []);
      // The other checkout sees what the first deployed: nothing to do.
      const seen = await run(w.cli(["deploy", "gamma", "delta"], { dir: other, ...inB }));
      assert.match(seen.stdout, /0 applied, 2 unchanged/);
      noSecrets(outputs, [...shared.secrets, pass]);
    });

    void it("kill -9 of a deploy: unlock refuses while its owner runs, clears the lock once it is gone; another machine's lock needs --force", async () => {
      const killed = async (service: string, hostname?: string): Promise<number> => {
        w.sandbox.faults.set({ taskDelayMs: 20_000, taskTypes: ["vzcreate"] });
        w.sandbox.counters.reset();
        const deploy = w.spawnCli(["deploy", service, "--yes"], hostname !== undefined ? { hostname } : {});
        // The update holds the lock while the container is created (creating the stack took one for an instant before).
        await waitFor(`the container of ${service} to be on its way`, () => creates() >= 1, 120_000);
        const [lock] = await locks(service);
        assert.ok(lock?.pid !== undefined, "the deploy holds its stack's lock");
        if (hostname === undefined) {
          const refused = await run(w.cli(["unlock", service], { dir: other, ...inB }));
          assert.equal(refused.code, 1, `${refused.all}\nlocks now: ${JSON.stringify(await locks(service))}`);
          assert.match(refused.stderr, new RegExp(`locked by a run that is still going: pid ${lock.pid} on `));
        }
        // The crash, while the container is being created: the Pulumi CLI that holds the lock, and homelab above it.
        process.kill(lock.pid, "SIGKILL");
        deploy.child.kill("SIGKILL");
        await deploy.done;
        // The plugin outlives the engine (its own process group) and finishes its creation; then it goes too.
        await waitFor(`the orphaned creation of ${service}`, async () => {
          const [ct] = await w.named(`${service}-ct`);
          return ct?.vmid !== undefined && ct.node !== undefined && (await w.admin.lxc.config(ct.node, ct.vmid)).lock === undefined;
        });
        killPlugins(w.root);
        w.sandbox.faults.clear();
        assert.equal((await locks(service)).length, 1, "the killed run's lock stays");
        return lock.pid;
      };

      const pid = await killed("alpha");
      const status = await run(w.cli(["status", "alpha"], { dir: other, ...inB }));
      assert.match(status.stdout, new RegExp(`locked by pid ${pid} on \\S+ \\(\\S+\\) since \\S+, no longer running`));
      const blocked = await run(w.cli(["deploy", "alpha"], { dir: other, ...inB }));
      assert.equal(blocked.code, 1, blocked.all);
      assert.match(blocked.stdout, /no longer running/);
      assert.match(blocked.stdout, /clear the lock with `homelab unlock alpha`/);
      const unlocked = await run(w.cli(["unlock", "alpha"], { dir: other, ...inB }));
      assert.equal(unlocked.code, 0, unlocked.all);
      assert.match(unlocked.stdout, /removed 1 stale lock\(s\) of sandbox\.alpha/);
      const converged = await run(w.cli(["deploy", "alpha"], { dir: other, ...inB }));
      assert.equal(converged.code, 0, converged.all);
      assert.match(converged.stdout, /alpha_ct: adopted \d+, which the interrupted run had created/);
      assert.equal((await w.named("alpha-ct")).length, 1);

      // A lock taken on another machine: its process cannot be checked from here.
      const theirs = await killed("beta", "other-machine");
      const refused = await run(w.cli(["unlock", "beta"]));
      assert.equal(refused.code, 1, refused.all);
      assert.match(refused.stderr, new RegExp(`locked by pid ${theirs} on other-machine \\(\\S+\\) since \\S+, on another machine, or unknown`));
      assert.match(refused.stderr, /cannot see the processes of another machine; .*homelab unlock beta --force/);
      assert.equal((await locks("beta")).length, 1);
      const forced = await run(w.cli(["unlock", "beta", "--force"]));
      assert.equal(forced.code, 0, forced.all);
      assert.match(forced.stdout, /removed 1 stale lock\(s\) of sandbox\.beta/);
      const beta = await run(w.cli(["deploy", "beta"]));
      assert.equal(beta.code, 0, beta.all);
      assert.equal((await w.named("beta-ct")).length, 1);
      noSecrets(outputs, [...shared.secrets, pass]);
    });

    void it("status with a dozen stacks in the backend answers (3.274.1's stack ls deadlocks on PostgreSQL without one listing worker)", { timeout: 5 * 60_000 }, async () => {
      // Stacks another run made: a dozen, orphaned here (no service folder).
      const work = mkdtempSync(join(tmpdir(), "homelab-dozen-"));
      try {
        writeFileSync(join(work, "Pulumi.yaml"), "name: homelab\nruntime: nodejs\n");
        const pulumi = (await resolvePulumiCli()).path;
        const env = { PATH: process.env["PATH"] ?? "", HOME: work, PULUMI_HOME: join(work, ".pulumi"), PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_CONFIG_PASSPHRASE: pass, PULUMI_BACKEND_URL: shared.url, ...shared.env };
        for (let i = 1; i <= 12; i++) await execFileP(pulumi, ["stack", "init", `sandbox.extra${String(i).padStart(2, "0")}`], { cwd: work, env, timeout: 60_000 });
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      const status = await run(w.cli(["status"]));
      assert.equal(status.code, 0, status.all);
      assert.equal((status.stdout.match(/^extra\d\d +(?:ORPHANED|never deployed)/gm) ?? []).length, 12, status.stdout);
      noSecrets(outputs, [...shared.secrets, pass]);
    });
  });
}

void describe("[root][pulumi] homelab state export/import: from .homelab/state to PostgreSQL and to S3 without redeploying", { timeout: 15 * 60_000 }, () => {
  let w: World;
  let secretsDir: string;
  let original: string;
  const outputs: Run[] = [];
  const run = async (p: Promise<Run>): Promise<Run> => {
    const r = await p;
    outputs.push(r);
    return r;
  };
  before(async () => {
    w = await startWorld({ services: [] });
    w.writeService("one", containerService("one", { memory: 256 }));
    w.writeService("two", containerService("two", { memory: 256, dependsOn: ["one.one_ct"] }));
    secretsDir = mkdtempSync(join(tmpdir(), "homelab-move-"));
    original = readFileSync(envFile(w.root), "utf8");
  });
  after(async () => {
    await w.close();
    rmSync(secretsDir, { recursive: true, force: true });
  });

  void it("deployed on the file backend, exported once, imported into each backend: the deploy finds nothing to do and writes nothing", async () => {
    const deployed = await run(w.cli(["deploy", "--all", "--yes"]));
    assert.equal(deployed.code, 0, deployed.all);
    const exportFile = join(secretsDir, "sandbox-state.json");
    const exported = await run(w.cli(["state", "export", "--file", exportFile]));
    assert.equal(exported.code, 0, exported.all);
    assert.match(exported.stdout, /exported 2 stack\(s\) of sandbox from file:\/\/.*\/\.homelab\/state to /);
    assert.equal(statSync(exportFile).mode & 0o777, 0o600);
    assert.equal((await run(w.cli(["state", "export", "--file", exportFile]))).code, 1, "an existing file is not replaced without --force");
    const vmids = (await w.containers()).map((c) => c.vmid).sort();

    for (const make of [postgresBackend, s3Backend]) {
      const shared = await make(secretsDir);
      try {
        // PostgreSQL through PULUMI_BACKEND_URL with the password in it, as lib/pq reads it (Pulumi itself would print
        // this form when it cannot open the backend); S3 through homelab:backend. No passphrase setting in either: the
        // repository's .homelab/passphrase, which encrypted the state's secrets, is used.
        const password = shared.secrets[0] ?? "";
        const opts = shared.kind === "postgres" ? { env: { PULUMI_BACKEND_URL: `${shared.url}&password=${encodeURIComponent(password)}` } } : {};
        writeFileSync(envFile(w.root), shared.kind === "postgres" ? original : withBackend(original, shared.url, shared.settings));
        const imported = await run(w.cli(["state", "import", exportFile], opts));
        assert.equal(imported.code, 0, imported.all);
        assert.match(imported.stdout, /one {2}sandbox\.one: 1 resource\(s\) imported/);
        assert.match(imported.stdout, new RegExp(`2 of 2 stack\\(s\\) in ${shared.kind}://`));
        assert.deepEqual((await readBackendState(shared.store, "sandbox.two"))?.resources.map((r) => r.id), ["two_ct"]);

        w.sandbox.counters.reset();
        const noop = await run(w.cli(["deploy", "--all"], opts));
        assert.equal(noop.code, 0, noop.all);
        assert.match(noop.stdout, /0 applied, 2 unchanged/);
        assert.equal((noop.stdout.match(/no changes \(as deployed: state and plan match\)/g) ?? []).length, 2, noop.stdout);
        // The engine's own preview, reading the moved state through Pulumi, agrees.
        const preview = await run(w.cli(["deploy", "--all", "--no-skip-unchanged"], opts));
        assert.equal(preview.code, 0, preview.all);
        assert.match(preview.stdout, /0 applied, 2 unchanged/);
        assert.deepEqual(w.writes(), {}, `no write request reached the sandbox after the move to ${shared.kind}`);
        assert.deepEqual((await w.containers()).map((c) => c.vmid).sort(), vmids);

        const status = await run(w.cli(["status"], opts));
        assert.match(status.stdout, new RegExp(`\\(state: ${shared.kind}://`));
        assert.match(status.stdout, /two {2}deployed/);
        const again = await run(w.cli(["state", "import", exportFile], opts));
        assert.equal(again.code, 0, again.all);
        assert.match(again.stdout, /sandbox\.one is already there with the same 1 resource\(s\)/);
        if (shared.kind === "s3") {
          // The environment names S3 now; --backend reads the repository's own folder all the same.
          const fromFolder = join(secretsDir, "from-folder.json");
          const viaOption = await run(w.cli(["state", "export", "--file", fromFolder, "--backend", `file://${join(w.root, ".homelab", "state")}`, "two"]));
          assert.equal(viaOption.code, 0, viaOption.all);
          assert.match(viaOption.stdout, /exported 1 stack\(s\) of sandbox from file:\/\//);
        }
        if (shared.kind === "postgres") {
          assert.match(status.stdout, /password=\*\*\*\*/);
          // A backend that does not answer: what to check, no stack trace, no password.
          const down = await run(w.cli(["status"], { env: { PULUMI_BACKEND_URL: `postgres://homelab_test@127.0.0.1:1/x?sslmode=disable&password=${encodeURIComponent(password)}` } }));
          assert.equal(down.code, 1, down.all);
          assert.match(down.stderr, /^homelab: cannot read the PostgreSQL state backend at 127\.0\.0\.1:1\/x as homelab_test: .*\n {2}hint: check the backend URL's host, port, database and user, and its password/);
        }
        noSecrets(outputs, shared.secrets);
      } finally {
        await shared.drop();
      }
    }
  });
});

void describe("[root][pulumi] a database Pulumi never opened: deploy --all of new services at once", { timeout: 10 * 60_000 }, () => {
  void it("every service deploys: Pulumi's table is made by one open first (3.274.1's first opens at once race on CREATE TABLE)", async () => {
    const w = await startWorld({ services: [] });
    const dir = mkdtempSync(join(tmpdir(), "homelab-fresh-db-"));
    const shared = await postgresBackend(dir);
    try {
      const names = ["s1", "s2", "s3", "s4", "s5", "s6"];
      for (const n of names) w.writeService(n, containerService(n, { memory: 256 }));
      writeFileSync(envFile(w.root), withBackend(readFileSync(envFile(w.root), "utf8"), shared.url, { ...shared.settings, passphrase_file: secretFile(dir, "passphrase", "fresh-database-passphrase") }));
      const r = await w.cli(["deploy", "--all", "--yes", "--concurrency", "6"]);
      assert.equal(r.code, 0, r.all);
      assert.match(r.stdout, /6 applied, 0 unchanged/);
      assert.deepEqual((await w.containers()).map((c) => c.name).sort(), names.map((n) => `${n}-ct`));
      noSecrets([r], shared.secrets);
    } finally {
      killPlugins(w.root);
      await w.close();
      await shared.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
