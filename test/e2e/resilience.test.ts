import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { containerService, killPlugins, startWorld, waitFor } from "./helpers.ts";
import type { World } from "./helpers.ts";

const lines = (s: string) => s.split("\n");

/** One more container for the end of peach's resources. */
const extraContainer = (id: string) => `  - id: ${id}\n    type: proxmox:container\n    image:\n      name: "*debian*"\n      version: ">=12"\n    host:\n      tags: [tier:1]\n`;
const at = (out: string, re: RegExp): number => {
  const i = lines(out).findIndex((l) => re.test(l));
  assert.ok(i >= 0, `no line matches ${String(re)} in:\n${out}`);
  return i;
};

void describe("[pulumi] deploy --all: dependency order, concurrency, failures stop only dependents", { timeout: 600_000 }, () => {
  let w: World;
  before(async () => {
    // Slow container creation makes overlap (or its absence) visible.
    w = await startWorld({ services: [], sandbox: { faults: { taskDelayMs: 1500, taskTypes: ["vzcreate"] } } });
    w.writeService("alpha", containerService("alpha"));
    w.writeService("beta", containerService("beta", { dependsOn: ["alpha.alpha_ct"] }));
    w.writeService("gamma", containerService("gamma"));
  });
  after(() => w.close());

  void it("deploys alpha before beta (beta depends on it), and gamma alongside alpha", async () => {
    const preview = await w.cli(["deploy", "--all", "--dry-run"]);
    assert.equal(preview.code, 0, preview.all);
    assert.match(preview.stdout, /beta \(sandbox\.beta\) {2}1 to create/);
    const r = await w.cli(["--verbose", "deploy", "--all"]);
    assert.equal(r.code, 0, r.all);
    const alphaDone = at(r.stdout, /^alpha {2}alpha_ct {2}created/);
    assert.ok(at(r.stdout, /^beta {2}beta_ct {2}creating/) > alphaDone, r.stdout);
    assert.ok(at(r.stdout, /^gamma {2}gamma_ct {2}creating/) < alphaDone, r.stdout);
    assert.equal((await w.containers()).length, 3);
  });

  void it("a service that fails stops the services depending on it, not the others", async () => {
    // No template matches any more: planning alpha fails.
    w.editService("alpha", (t) => t.replace('name: "*debian*"', 'name: "*nosuchos*"'));
    w.editService("gamma", (t) => t.replace("memory: 512", "memory: 640"));
    w.editService("beta", (t) => t.replace("memory: 512", "memory: 768"));
    const r = await w.cli(["deploy", "--all"]);
    assert.equal(r.code, 1, r.all);
    assert.match(r.stdout, /alpha \(sandbox\.alpha\) {2}FAILED\n {2}alpha_ct: no node can take alpha_ct: .*no matching template/);
    assert.match(r.stdout, /beta +skipped/);
    assert.match(r.stdout, /not deployed: it depends on alpha, which did not deploy/);
    assert.match(r.stdout, /gamma +applied {2}1 updated/);
    const beta = (await w.named("beta-ct"))[0];
    assert.ok(beta?.vmid !== undefined && beta.node !== undefined);
    assert.equal((await w.admin.lxc.config(beta.node, beta.vmid)).memory, 512);
  });
});

void describe("[pulumi] interrupted and concurrent runs", { timeout: 600_000 }, () => {
  let w: World;
  before(async () => {
    w = await startWorld({ services: ["peach"] });
  });
  after(() => w.close());

  const lockDir = () => join(w.root, ".homelab", "state", ".pulumi", "locks", "organization", "homelab", "sandbox.peach");
  const locked = () => existsSync(lockDir()) && readdirSync(lockDir()).some((f) => f.endsWith(".json"));

  void it("two deploys of one service at once: the second says who holds the lock", async () => {
    w.sandbox.faults.set({ taskDelayMs: 4000, taskTypes: ["vzcreate"] });
    const first = w.spawnCli(["deploy", "peach"]);
    await waitFor("the first deploy to lock the stack", locked);
    const second = await w.cli(["deploy", "peach"]);
    assert.equal(second.code, 1, second.all);
    assert.match(second.stdout, /stack sandbox\.peach is locked by pid \d+ on \S+ \(\S+\) since \S+, still running/);
    assert.match(second.stdout, /hint: another homelab run is deploying this service; wait for it to finish/);
    const r = await first.done;
    assert.equal(r.code, 0, r.all);
    assert.equal((await w.named("peach-container")).length, 1);
    w.sandbox.faults.clear();
  });

  void it("kill -9 during a deploy: the lock is reported stale with the way out, and the next run converges without a duplicate", async () => {
    w.editService("peach", (t) => t + extraContainer("peach_two"));
    w.sandbox.faults.set({ taskDelayMs: 3000, taskTypes: ["vzcreate"] });
    const run = w.spawnCli(["deploy", "peach"]);
    // The new container is being created when the run dies.
    await waitFor("the new container to be on its way", async () => (await w.named("peach-two")).length > 0);
    run.child.kill("SIGKILL");
    await run.done;
    // The provider plugin runs in its own process group and outlives the engine; wait for its creation to end.
    await waitFor("the orphaned creation to finish", async () => {
      const [ct] = await w.named("peach-two");
      return ct?.vmid !== undefined && ct.node !== undefined && (await w.admin.lxc.config(ct.node, ct.vmid)).lock === undefined;
    });
    killPlugins(w.root);
    w.sandbox.faults.clear();
    let r = await w.cli(["deploy", "peach"]);
    if (locked()) {
      assert.equal(r.code, 1, r.all);
      assert.match(r.stdout, /is locked by pid \d+ on \S+ \(\S+\) since \S+, no longer running/);
      assert.match(r.stdout, /clear the lock with `homelab unlock peach`/);
      const u = await w.cli(["unlock", "peach"]);
      assert.equal(u.code, 0, u.all);
      assert.match(u.stdout, /removed 1 stale lock\(s\) of sandbox\.peach/);
      r = await w.cli(["deploy", "peach"]);
    }
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /peach_two: adopted \d+, which the interrupted run had created/);
    const two = await w.named("peach-two");
    assert.equal(two.length, 1, JSON.stringify(await w.containers()));
    const [ct] = two;
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    assert.equal((await w.admin.lxc.status(ct.node, ct.vmid)).status, "running");
    const again = await w.cli(["deploy", "peach"]);
    assert.match(again.stdout, /no changes/);
    assert.deepEqual((await w.containers()).map((c) => c.name).sort(), ["peach-container", "peach-two"]);
  });

  void it("unlock refuses while the run holding the lock is alive", async () => {
    w.sandbox.faults.set({ taskDelayMs: 3000, taskTypes: ["vzcreate"] });
    w.editService("peach", (t) => t + extraContainer("peach_three"));
    const run = w.spawnCli(["deploy", "peach"]);
    await waitFor("the deploy to lock the stack", locked);
    const u = await w.cli(["unlock", "peach"]);
    assert.equal(u.code, 1, u.all);
    assert.match(u.stderr, /locked by a run that is still going: pid \d+/);
    assert.ok(locked());
    assert.equal((await run.done).code, 0);
    w.sandbox.faults.clear();
    assert.match((await w.cli(["unlock", "peach"])).stdout, /sandbox\.peach is not locked/);
  });
});

void describe("[pulumi] sandbox faults during a deploy", { timeout: 600_000 }, () => {
  let w: World;
  before(async () => {
    w = await startWorld({ services: ["peach", "librechat"] });
  });
  after(() => w.close());

  void it("5xx answers, slow and failing tasks: a re-run converges, nothing is leaked", async () => {
    w.sandbox.faults.set({
      errorRate: 0.3,
      routes: ["POST /nodes/{node}/lxc", "POST /nodes/{node}/lxc/{vmid}/status/start", "GET /nodes/{node}/lxc/{vmid}/status/current", "GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/lxc/{vmid}/interfaces"],
      taskFailRate: 0.5,
      taskTypes: ["vzcreate", "vzstart"],
      taskDelayMs: 300,
    });
    const faulty = await w.cli(["deploy", "--all"]);
    assert.ok(faulty.code === 0 || faulty.code === 1, faulty.all);
    w.sandbox.faults.clear();
    const r = await w.cli(["deploy", "--all"]);
    assert.equal(r.code, 0, r.all);
    const all = await w.containers();
    assert.deepEqual(all.map((c) => c.name).sort(), ["librechat-container", "peach-container"], JSON.stringify(all));
    for (const c of all) {
      assert.ok(c.node !== undefined && c.vmid !== undefined);
      assert.equal((await w.admin.lxc.status(c.node, c.vmid)).status, "running");
    }
    const again = await w.cli(["deploy", "--all"]);
    assert.equal(again.code, 0, again.all);
    assert.match(again.stdout, /0 applied, 2 unchanged/);
  });
});
