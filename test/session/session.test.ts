import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DeploySession } from "../../src/session/session.ts";
import type { DeployOptions, SessionEvent } from "../../src/session/session.ts";
import { sessionDeployer } from "../../src/session/monitor-deployer.ts";
import { containerService, startWorld } from "../e2e/helpers.ts";
import type { World } from "../e2e/helpers.ts";

const APPLY: DeployOptions = { dryRun: false, allowDelete: false, refresh: false, concurrency: 2, skipUnchanged: true, applyWithoutPreview: true };

void describe("[pulumi] the deploy session against the sandbox", { timeout: 600_000 }, () => {
  let w: World;
  let processEnv: NodeJS.ProcessEnv;
  before(async () => {
    w = await startWorld({ services: ["peach", "librechat"] });
    processEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`, HOMELAB_FROM_SOURCE: "1", HOMELAB_NODE: process.execPath, PULUMI_HOME: join(w.root, ".pulumi-home"), CI: "" };
    delete processEnv["PEACH_API_KEY"];
    delete processEnv["PULUMI_CONFIG_PASSPHRASE"];
    delete processEnv["PULUMI_CONFIG_PASSPHRASE_FILE"];
    delete processEnv["PULUMI_BACKEND_URL"];
  });
  after(() => w.close());

  const session = (events: SessionEvent[] = [], envName = "sandbox"): DeploySession => new DeploySession({ root: w.root, envName, processEnv, reporter: { event: (e) => void events.push(e) } });

  void it("an environment it cannot load, an invalid service and missing secrets are outcomes, not output", async () => {
    const nope = await session([], "nope").load();
    assert.equal(nope.status, "environment-invalid");
    assert.ok(nope.status === "environment-invalid" && nope.diagnostics.some((d) => d.file.endsWith("Pulumi.nope.yaml")), JSON.stringify(nope));

    const s = session();
    const loaded = await s.load();
    assert.equal(loaded.status, "loaded");
    const checked = await s.check(["peach", "librechat", "ghost"]);
    assert.deepEqual(checked.deployable, ["librechat"]);
    assert.deepEqual(
      checked.invalid.map((o) => [o.service, o.status, o.error?.message]),
      [
        ["peach", "failed", "secrets not provided: api_key"],
        ["ghost", "failed", "the service's configuration is not valid (see above)"],
      ],
    );
    assert.deepEqual(checked.missingSecrets.map((m) => m.service), ["peach"]);
    assert.ok(checked.missingSecrets[0]?.diagnostics.some((d) => d.message.includes("api_key")));
  });

  void it("a cluster it cannot read stops the deploy in its set-up, with the hint", async () => {
    const envDir = join(w.root, ".homelab", "environments");
    writeFileSync(join(envDir, "Pulumi.broken.yaml"), readFileSync(join(envDir, "Pulumi.sandbox.yaml"), "utf8").replace(/token-secret/g, "no-such-secret"));
    const s = session([], "broken");
    assert.equal((await s.load()).status, "loaded");
    const run = await s.deploy(["librechat"], APPLY);
    assert.equal(run.status, "setup-failed");
    assert.ok(run.status === "setup-failed");
    assert.equal(run.failure.step, "cluster");
    assert.match(run.failure.message, /no-such-secret/);
    assert.ok(run.failure.hint, "a hint says what to fix");
    assert.deepEqual(await w.containers(), []);
  });

  void it("deploys with one inventory snapshot and reports its set-up; recreate makes a new container, planned afresh", async () => {
    const events: SessionEvent[] = [];
    const s = session(events);
    assert.equal((await s.load()).status, "loaded");
    const run = await s.deploy(["librechat"], APPLY);
    assert.equal(run.status, "done");
    assert.ok(run.status === "done");
    assert.deepEqual(run.report.outcomes.map((o) => [o.service, o.status]), [["librechat", "applied"]]);
    const snapshots = () => events.filter((e) => e.type === "proxmox" && e.request && e.line.startsWith("GET /cluster/resources")).length;
    assert.equal(snapshots(), 1);
    const types = events.map((e) => e.type);
    assert.ok(types.includes("ssh-key-generated") && types.includes("passphrase-generated"), types.join(", "));
    assert.deepEqual(
      events.flatMap((e) => (e.type === "deploy-start" ? [e.order] : [])),
      [["librechat"]],
    );
    const [first] = await w.named("librechat-container");
    assert.ok(first?.vmid !== undefined);

    w.sandbox.counters.reset();
    assert.deepEqual(await s.recreate("librechat"), { status: "recreated" });
    const now = await w.named("librechat-container");
    assert.equal(now.length, 1, JSON.stringify(now));
    // Destroyed and created again (the sandbox hands out the lowest free vmid, so the number may be the same).
    const writes = Object.keys(w.writes());
    assert.ok(writes.some((k) => /^DELETE .*\/lxc\//.test(k)) && writes.some((k) => /^POST .*\/lxc$/.test(k)), writes.join(", "));
    // The recreate's deploy is a run of its own: a fresh snapshot of the cluster.
    assert.equal(snapshots(), 2);
  });

  void it("the monitor's deployer refuses to recreate a protected service and leaves it as it is", async () => {
    w.writeService("guarded", containerService("guarded", { protect: true }));
    const s = session();
    assert.equal((await s.load(["guarded"])).status, "loaded");
    const run = await s.deploy(["guarded"], APPLY);
    assert.ok(run.status === "done" && run.report.outcomes[0]?.status === "applied", JSON.stringify(run));
    const [before] = await w.named("guarded-ct");
    assert.ok(before);
    await assert.rejects(sessionDeployer(s).recreate("guarded", new AbortController().signal), /destroy refused: .*guarded_ct/);
    assert.deepEqual((await w.named("guarded-ct")).map((c) => c.vmid), [before.vmid]);
    assert.equal(await sessionDeployer(s).lockHolder("guarded"), undefined);
  });
});
