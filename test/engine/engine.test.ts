import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { deploy } from "../../src/engine/deploy.ts";
import { Engine, EngineRunError } from "../../src/engine/engine.ts";
import { serviceProgram } from "../../src/engine/program.ts";
import type { EnvironmentConfig } from "../../src/config/environment.ts";
import type { Service } from "../../src/config/service.ts";
import type { ContainerInputs, ServicePlan } from "../../src/plan/types.ts";
import { containerInputs, plannedContainer, servicePlan } from "./plans.ts";

const FAKE = fileURLToPath(new URL("./fixtures/fake-provider/", import.meta.url));

const inputs: ContainerInputs = containerInputs();

function plan(ids: string[], over: Partial<ContainerInputs> = {}, chain = false): ServicePlan {
  const resources = ids.map((id, i) => plannedContainer(id, { ...inputs, ...over, hostname: id }, { dependsOn: chain && i > 0 ? [ids[i - 1] ?? ""] : [] }));
  return servicePlan("dev", resources);
}

function tree(dir: string): string {
  if (!existsSync(dir)) return "";
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"))
    .join("\n");
}

void describe("[pulumi] the engine with a stand-in provider plugin", { timeout: 300_000 }, () => {
  let root: string;
  let cloud: string;
  const open = (delayMs = 0) =>
    Engine.open({ root, envName: "dev", pluginDir: FAKE, processEnv: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "", PULUMI_CONFIG_PASSPHRASE_FILE: "", PULUMI_BACKEND_URL: "" }, extraEnv: { HOMELAB_FAKE_CLOUD: cloud, HOMELAB_FAKE_DELAY_MS: String(delayMs), PULUMI_HOME: join(root, ".pulumi-home") } });
  const cloudState = () => JSON.parse(readFileSync(cloud, "utf8")) as { containers: Record<string, Record<string, unknown>>; calls: string[] };
  before(() => {
    root = mkdtempSync(join(tmpdir(), "homelab-engine-"));
    cloud = join(root, "cloud.json");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  void it("secrets given to a resource are encrypted in the state file, and reach the provider in clear", async () => {
    const engine = await open();
    assert.equal(engine.passphrase.origin, "generated");
    await engine.ensureStack("dev.peach");
    const marker = "ssh-ed25519 AAAAsecret-marker-6f1c9e";
    const r = await engine.up("dev.peach", serviceProgram({ plan: plan(["web"], { sshPublicKeys: marker }), secretInputs: new Set(["sshPublicKeys"]) }));
    assert.deepEqual(r.changes.map((c) => [c.id, c.kind, c.status]), [["web", "create", "done"]]);
    const state = tree(join(root, ".homelab", "state"));
    assert.ok(state.includes("homelab:proxmox:Container"));
    assert.ok(!state.includes("secret-marker-6f1c9e"), "the secret is not in the state in clear");
    assert.ok(state.includes("ciphertext"));
    assert.equal(Object.values(cloudState().containers)[0]?.["sshPublicKeys"], marker);
    // The salt lives in the persistent workspace, so a second engine reads the same state.
    const again = await open();
    assert.equal(again.passphrase.origin, "file");
    const preview = await again.preview("dev.peach", serviceProgram({ plan: plan(["web"], { sshPublicKeys: marker }), secretInputs: new Set(["sshPublicKeys"]) }));
    assert.deepEqual(preview.changes.map((c) => c.kind), ["same"]);
  });

  void it("an interruption lets the running operation finish, starts nothing else, and leaves no lock nor pending operation", async () => {
    const engine = await open(2500);
    const ac = new AbortController();
    const steps: string[] = [];
    // A chain, so that creations run one after the other.
    const running = engine.up("dev.peach", serviceProgram({ plan: plan(["web", "a", "b", "c"], {}, true) }), {
      signal: ac.signal,
      onStep: (s) => {
        steps.push(`${s.id}:${s.op}:${s.phase}`);
        if (s.phase === "start" && !ac.signal.aborted) ac.abort();
      },
    });
    await assert.rejects(running, (e: unknown) => e instanceof EngineRunError && e.kind === "cancelled");
    const state = await engine.readState("dev.peach");
    assert.equal(state?.pending.length, 0);
    assert.deepEqual(await engine.locks("dev.peach"), []);
    // What had started finished and is recorded; nothing is left half-done in the cloud.
    const created = Object.values(cloudState().containers).filter((c) => c["status"] !== "creating");
    assert.equal(Object.keys(cloudState().containers).length, created.length);
    const done = new Set(["web", ...steps.filter((s) => s.endsWith(":done")).map((s) => s.split(":")[0] ?? "")]);
    assert.deepEqual(state?.resources.map((r) => r.id).sort(), [...done].sort());
    assert.ok(!done.has("c"), "the last of the chain never started");
  });

  void it("an unchanged stack deployed by other code is previewed, its fingerprint recorded, and the next run needs no engine", async () => {
    const engine = await open();
    const services = new Map([["peach", { name: "peach" } as Service]]);
    const env = { name: "dev", production: false } as EnvironmentConfig;
    const p = plan(["web", "a"], {}, true);
    const run = (fingerprint: string) =>
      deploy({ engine, env, services, selected: ["peach"], planner: () => ({ plan: p, problems: [] }), dryRun: false, ci: false, allowDelete: false, refresh: false, fingerprint });
    // Bring the stack to the plan (the earlier tests left it elsewhere).
    await engine.up("dev.peach", serviceProgram({ plan: p }));
    const first = await run("fp-1");
    assert.deepEqual(first.outcomes.map((o) => [o.status, o.shortcut, o.recordFingerprint]), [["unchanged", false, true]]);
    assert.deepEqual((await engine.readState("dev.peach"))?.outputs["homelab"], { fingerprint: "fp-1" });
    const calls = cloudState().calls.length;
    const second = await run("fp-1");
    assert.deepEqual(second.outcomes.map((o) => [o.status, o.shortcut, o.recordFingerprint]), [["unchanged", true, false]]);
    assert.equal(cloudState().calls.length, calls);
    const upgraded = await run("fp-2");
    assert.deepEqual(upgraded.outcomes.map((o) => [o.status, o.shortcut]), [["unchanged", false]]);
  });
});
