import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, describe, it } from "node:test";
import { describeLock, lockOwner, processAlive } from "../../src/engine/locks.ts";
import { lockDir, parseLockError, readFileBackendState, readLocks, removeLock } from "../../src/engine/pulumi-internals.ts";
import { FileStore } from "../../src/engine/backend-store.ts";
import { currentState, parseDeployment, resolvePendingOperations, resourceFacts, withoutPendingOperations } from "../../src/engine/state.ts";

const tmp = mkdtempSync(join(tmpdir(), "homelab-engine-state-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const URN = (id: string, type = "homelab:proxmox:Container") => `urn:pulumi:prod.peach::homelab::${type}::${id}`;
const inputs = { node: "pve-01", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", hostname: "peach", memory: 2048 };

/** A deployment as `pulumi stack export` gives it. */
function deployment(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    manifest: { time: "2026-01-01T00:00:00Z" },
    resources: [
      { urn: URN("homelab-prod.peach", "pulumi:pulumi:Stack"), type: "pulumi:pulumi:Stack", custom: false },
      { urn: URN("default", "pulumi:providers:homelab"), type: "pulumi:providers:homelab", custom: true, id: "abc" },
      { urn: URN("peach_container"), type: "homelab:proxmox:Container", custom: true, id: "101", protect: true, inputs, outputs: { ...inputs, vmid: 101, address: "10.0.0.5" } },
    ],
    ...extra,
  };
}

void describe("state parsing", () => {
  void it("keeps the service's resources, with protect, inputs and outputs", () => {
    const s = parseDeployment({ version: 3, deployment: deployment() });
    assert.equal(s.resources.length, 1);
    const r = s.resources[0];
    assert.ok(r);
    assert.equal(r.id, "peach_container");
    assert.equal(r.physicalId, "101");
    assert.equal(r.protect, true);
    assert.deepEqual(resourceFacts(r), { node: "pve-01", vmid: 101, address: "10.0.0.5", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", detail: undefined });
  });

  void it("gives the planner each container's node, template and vmid", () => {
    const c = currentState(parseDeployment(deployment()));
    assert.deepEqual(c.get("peach_container"), { node: "pve-01", template: inputs.template, vmid: 101 });
    assert.equal(currentState(undefined).size, 0);
  });

  void it("reads pending operations and drops them on request", () => {
    const d = deployment({ pending_operations: [{ resource: { urn: URN("web"), type: "homelab:proxmox:Container", inputs: { hostname: "web" } }, type: "creating" }] });
    const s = parseDeployment(d);
    assert.deepEqual(s.pending.map((p) => [p.id, p.op, p.inputs["hostname"]]), [["web", "creating", "web"]]);
    const cleared = withoutPendingOperations(d);
    assert.equal(cleared.version, 3);
    assert.equal(parseDeployment(cleared).pending.length, 0);
    assert.equal(parseDeployment(cleared).resources.length, 1);
  });

  void it("adopts a pending creation whose container exists, and drops the others", () => {
    const d = deployment({
      pending_operations: [
        { resource: { urn: URN("web"), type: "homelab:proxmox:Container", custom: true, inputs: { hostname: "web" }, parent: URN("homelab-prod.peach", "pulumi:pulumi:Stack") }, type: "creating" },
        { resource: { urn: URN("db"), type: "homelab:proxmox:Container", custom: true, inputs: { hostname: "db" } }, type: "creating" },
        { resource: { urn: URN("peach_container"), type: "homelab:proxmox:Container", inputs }, type: "updating" },
      ],
    });
    const r = resolvePendingOperations(d, (op) => (op.inputs["hostname"] === "web" ? { physicalId: "123", complete: true } : op.inputs["hostname"] === "db" ? { physicalId: "124", complete: false } : undefined));
    assert.deepEqual(r.adopted, [{ id: "web", physicalId: "123", complete: true }, { id: "db", physicalId: "124", complete: false }]);
    assert.deepEqual(r.dropped.map((p) => p.id), ["peach_container"]);
    const after = parseDeployment(r.deployment);
    assert.equal(after.pending.length, 0);
    const web = after.resources.find((x) => x.id === "web");
    assert.ok(web);
    assert.equal(web.physicalId, "123");
    assert.equal(web.outputs["vmid"], 123);
    assert.equal(after.resources.length, 3);
    // A half-made one is tainted, so the next update replaces it (and unprotected, so it may be deleted).
    const raw = (r.deployment.deployment["resources"] as Record<string, unknown>[]).find((x) => x["id"] === "124");
    assert.equal(raw?.["taint"], true);
    assert.equal(raw?.["protect"], false);
    assert.equal((r.deployment.deployment["resources"] as Record<string, unknown>[]).find((x) => x["id"] === "123")?.["taint"], undefined);
  });

  void it("reads a file backend's state straight from disk, gzipped too, and nothing when absent", async () => {
    const dir = join(tmp, "backend");
    mkdirSync(join(dir, ".pulumi", "stacks", "homelab"), { recursive: true });
    writeFileSync(join(dir, ".pulumi", "stacks", "homelab", "prod.peach.json"), JSON.stringify({ version: 3, checkpoint: { stack: "organization/homelab/prod.peach", latest: deployment() } }));
    writeFileSync(join(dir, ".pulumi", "stacks", "homelab", "prod.zipped.json.gz"), gzipSync(JSON.stringify({ version: 3, checkpoint: { latest: deployment() } })));
    assert.equal((await readFileBackendState(dir, "prod.peach"))?.resources[0]?.id, "peach_container");
    assert.equal((await readFileBackendState(dir, "prod.zipped"))?.resources.length, 1);
    assert.equal(await readFileBackendState(dir, "prod.none"), undefined);
  });
});

void describe("locks", () => {
  void it("finds the file backend's lock files with their owner, and removes them", async () => {
    const dir = join(tmp, "locks");
    const ld = lockDir(dir, "prod.peach");
    mkdirSync(ld, { recursive: true });
    const file = join(ld, "5f6e.json");
    writeFileSync(file, JSON.stringify({ pid: 4242, username: "root", hostname: "vm", timestamp: "2026-11-25T17:32:06.13822736Z" }));
    writeFileSync(`${file}.attrs`, "{}");
    const store = new FileStore(dir);
    const locks = await readLocks(store, "prod.peach");
    assert.equal(locks.length, 1);
    const lock = locks[0];
    assert.ok(lock);
    assert.equal(lock.pid, 4242);
    assert.equal(lock.hostname, "vm");
    assert.equal(lock.since?.toISOString(), "2026-11-25T17:32:06.138Z");
    assert.equal(lock.location, file);
    assert.equal(lock.key, ".pulumi/locks/organization/homelab/prod.peach/5f6e.json");
    await removeLock(store, lock);
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(`${file}.attrs`), false);
    assert.deepEqual(await readLocks(store, "prod.none"), []);
  });

  void it("says whether the owner runs: alive, gone, or unknown on another host", () => {
    const lock = { key: "x.json", location: "/x.json", pid: process.pid, username: "root", hostname: hostname(), since: undefined };
    assert.equal(lockOwner(lock), "alive");
    assert.equal(lockOwner({ ...lock, pid: 4242 }, hostname(), () => false), "gone");
    assert.equal(lockOwner({ ...lock, hostname: "elsewhere" }), "unknown");
    assert.equal(lockOwner({ ...lock, pid: undefined }), "unknown");
    assert.match(describeLock({ ...lock, pid: 7 }, "gone"), /^pid 7 on .+ \(root\), no longer running$/);
  });

  void it("a lock owner that ended but was not reaped (a zombie) is gone, though signal 0 still reaches it", async () => {
    // `sleep 0.1` ends while its new parent (`exec sleep 5`) never waits for it.
    const child = spawn("sh", ["-c", "sleep 0.1 & echo $!; exec sleep 5"], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      const pid = Number((await once(child.stdout, "data")).toString().trim());
      await new Promise((r) => setTimeout(r, 400));
      assert.match(readFileSync(`/proc/${pid}/stat`, "utf8"), /\) Z /, "the test made a zombie");
      assert.doesNotThrow(() => process.kill(pid, 0));
      assert.equal(processAlive(pid), false);
      assert.equal(processAlive(child.pid ?? -1), true);
    } finally {
      child.kill("SIGKILL");
    }
  });

  void it("reads the owner out of Pulumi's lock error", () => {
    const text = [
      "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
      "  file:///tmp/s/.pulumi/locks/organization/homelab/dev.peach/7aa6.json?no_tmp_dir=true: created by root@vm (pid 7960) at 2026-11-25T17:32:06Z",
    ].join("\n");
    const lock = parseLockError(text);
    assert.ok(lock);
    assert.equal(lock.pid, 7960);
    assert.equal(lock.hostname, "vm");
    assert.equal(lock.username, "root");
    assert.equal(lock.location, "/tmp/s/.pulumi/locks/organization/homelab/dev.peach/7aa6.json");
    assert.equal(lock.key, ".pulumi/locks/organization/homelab/dev.peach/7aa6.json");
    // A shared backend names the lock by its URL, credentials masked by Pulumi; the key is the same.
    const pg = parseLockError("error: the stack is currently locked by 1 lock(s).\n  postgres://****:****@db.lan:5432/state/.pulumi/locks/organization/homelab/prod.peach/9c1d.json: created by ann@laptop (pid 31) at 2026-11-25T17:32:06Z");
    assert.equal(pg?.key, ".pulumi/locks/organization/homelab/prod.peach/9c1d.json");
    assert.equal(pg?.hostname, "laptop");
    assert.equal(pg?.location, "postgres://****:****@db.lan:5432/state/.pulumi/locks/organization/homelab/prod.peach/9c1d.json");
    assert.equal(parseLockError("error: something else"), undefined);
  });
});

void describe("status facts of images and compose deployments", () => {
  void it("an image shows its pushed reference; a deployment its unit, Docker and drift, not a container's facts", () => {
    const base = { urn: "u", physicalId: "x", protect: false, inputs: {} };
    assert.deepEqual(resourceFacts({ ...base, id: "img", type: "homelab:docker:Image", outputs: { ref: "10.0.0.1:5000/hello-web:0123456789abcdef" } }), {
      node: undefined,
      vmid: undefined,
      address: undefined,
      detail: "10.0.0.1:5000/hello-web:0123456789abcdef",
    });
    const d = resourceFacts({ ...base, id: "c.compose", type: "homelab:compose:Deployment", outputs: { unit: "homelab-hello.service", docker: "docker.io 20.10 / compose v2", address: "10.0.0.5", vmid: 101, drift: ["unit not running"] } });
    assert.equal(d.detail, "compose via homelab-hello.service, docker.io 20.10 / compose v2, drift: unit not running");
    assert.equal(d.vmid, undefined);
  });
});

void describe("a rollback's change to a stack's state", () => {
  void it("sets fields of the live resource with the URN in inputs and outputs; a resource pending deletion and others are left alone", async () => {
    const { withResourceFields, parseDeployment } = await import("../../src/engine/state.ts");
    const urn = "urn:pulumi:s.web::homelab::homelab:proxmox:Container::web_ct";
    const deployment = {
      resources: [
        { urn, type: "homelab:proxmox:Container", id: "107", inputs: { template: "new", memory: 512 }, outputs: { template: "new", vmid: 107 } },
        { urn, type: "homelab:proxmox:Container", id: "105", delete: true, inputs: { template: "older" }, outputs: { template: "older" } },
        { urn: "urn:pulumi:s.web::homelab::homelab:proxmox:Container::other", type: "homelab:proxmox:Container", id: "108", inputs: { template: "new" }, outputs: { template: "new" } },
      ],
    };
    const out = withResourceFields(deployment, urn, { template: "old" });
    assert.equal(out.version, 3);
    const parsed = parseDeployment(out);
    assert.deepEqual(parsed.resources.map((r) => [r.id, r.inputs["template"], r.outputs["template"], r.outputs["vmid"] ?? null]), [["web_ct", "old", "old", 107], ["other", "new", "new", null]]);
    const raw = out.deployment["resources"] as Array<{ delete?: boolean; inputs: Record<string, unknown> }>;
    assert.equal(raw[1]?.inputs["template"], "older");
    assert.equal(raw[0]?.inputs["memory"], 512);
  });
});
