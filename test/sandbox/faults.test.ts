import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Faults } from "../../src/sandbox/faults.ts";
import { TEMPLATE, sleep, withSandbox } from "./helpers.ts";

describe("fault injection", () => {
  it("shares are exact and evenly spread, so retry tests are deterministic", () => {
    const f = new Faults({ errorRate: 0.5 });
    const actions = Array.from({ length: 6 }, () => f.forRequest("GET /version").action);
    assert.deepEqual(actions, ["pass", "error", "pass", "error", "pass", "error"]);
    f.set({ errorRate: 0, dropRate: 1 / 3 });
    const drops = Array.from({ length: 6 }, () => f.forRequest("GET /version").action).filter((a) => a === "drop");
    assert.equal(drops.length, 2);
  });

  it("latency is added to every answer", async () => {
    await withSandbox({ faults: { latencyMs: 1000 } }, async (c) => {
      const t0 = Date.now();
      await c.ok("GET", "/version");
      assert.ok(Date.now() - t0 >= 990);
      c.sandbox.faults.clear();
      const t1 = Date.now();
      await c.ok("GET", "/version");
      assert.ok(Date.now() - t1 < 990);
    });
  });

  it("a share of requests gets a 5xx, optionally only on some routes", async () => {
    await withSandbox({}, async (c, sb) => {
      sb.faults.set({ errorRate: 0.5, errorStatus: 503 });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await c.call("GET", "/version")).status);
      assert.deepEqual(statuses, [200, 503, 200, 503]);
      const failed = await c.call("GET", "/nodes");
      const failed2 = await c.call("GET", "/nodes");
      const injected = [failed, failed2].find((a) => a.status === 503);
      assert.equal(injected?.reason, "sandbox: injected fault");
      sb.faults.set({ errorRate: 1, errorStatus: 500, routes: ["POST /nodes/{node}/lxc"] });
      assert.equal((await c.call("GET", "/version")).status, 200);
      const create = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "100", ostemplate: TEMPLATE, rootfs: "local-lvm:4" } });
      assert.equal(create.status, 500);
      assert.equal((await c.call("GET", "/nodes/pve-01/lxc/100/config")).status, 500, "the failed request changed nothing");
    });
  });

  it("dropped connections end without an answer", async () => {
    await withSandbox({}, async (c, sb) => {
      sb.faults.set({ dropRate: 1, routes: ["GET /nodes"] });
      await assert.rejects(c.call("GET", "/nodes"), (e: NodeJS.ErrnoException) => e.code === "ECONNRESET" || /socket hang up/.test(e.message));
      assert.equal((await c.call("GET", "/version")).status, 200);
    });
  });

  it("failing tasks end in TASK ERROR and leave no half-made guest; slow tasks take longer", async () => {
    await withSandbox({ taskDurationMs: 30 }, async (c, sb) => {
      sb.faults.set({ taskFailRate: 1, taskTypes: ["vzcreate"] });
      const st = await c.createCt("pve-01", 200);
      assert.equal(st.exitstatus, "unable to create CT 200 - sandbox: injected task failure");
      const log = (await c.ok("GET", `/nodes/pve-01/tasks/${encodeURIComponent(st.upid)}/log`)) as { t: string }[];
      assert.equal(log.at(-1)?.t, "TASK ERROR: unable to create CT 200 - sandbox: injected task failure");
      assert.equal((await c.call("GET", "/nodes/pve-01/lxc/200/config")).status, 500);
      assert.equal(await c.ok("GET", "/cluster/nextid"), "100");
      sb.faults.set({ taskFailRate: 0, taskDelayMs: 1500, taskTypes: [] });
      const upid = await c.ok("POST", "/nodes/pve-01/lxc", { form: { vmid: "201", ostemplate: TEMPLATE, rootfs: "local-lvm:4" } });
      await sleep(150);
      const mid = (await c.ok("GET", `/nodes/pve-01/tasks/${encodeURIComponent(String(upid))}/status`)) as { status: string };
      assert.equal(mid.status, "running");
      assert.equal((await c.waitTask("pve-01", upid)).exitstatus, "OK");
    });
  });

  it("the admin endpoints set, read and clear faults from another process's point of view", async () => {
    await withSandbox({}, async (c, sb) => {
      const set = await c.call("PUT", "/sandbox/faults", { json: { latencyMs: 10, errorRate: 0.25 } });
      assert.equal(set.status, 200);
      assert.equal(sb.faults.get().errorRate, 0.25);
      const read = (await c.ok("GET", "/sandbox/faults")) as { latencyMs: number };
      assert.equal(read.latencyMs, 10);
      const bad = await c.call("PUT", "/sandbox/faults", { json: { errorRate: 2 } });
      assert.equal(bad.status, 400);
      const unknown = await c.call("PUT", "/sandbox/faults", { json: { explode: 1 } });
      assert.equal(unknown.status, 400);
      await c.ok("DELETE", "/sandbox/faults");
      assert.deepEqual(sb.faults.get().errorRate, 0);
      assert.equal((await c.call("GET", "/sandbox/nothing")).status, 404);
    });
  });
});

describe("request counters", () => {
  it("count API requests by method and path template, not admin requests; reset", async () => {
    await withSandbox({}, async (c, sb) => {
      await c.createCt("pve-01", 300);
      await c.ok("GET", "/nodes/pve-01/lxc/300/config");
      await c.ok("GET", "/nodes/pve-02/status");
      await c.ok("GET", "/nodes/pve-01/status");
      await c.call("GET", "/nope");
      await c.ok("GET", "/sandbox/faults");
      const counts = sb.counters.get();
      assert.equal(counts["POST /nodes/{node}/lxc"], 1);
      assert.equal(counts["GET /nodes/{node}/lxc/{vmid}/config"], 1);
      assert.equal(counts["GET /nodes/{node}/status"], 2);
      assert.ok((counts["GET /nodes/{node}/tasks/{upid}/status"] ?? 0) >= 1);
      assert.equal(counts["GET /nope"], 1);
      assert.ok(!Object.keys(counts).some((k) => k.includes("/sandbox")));
      const remote = (await c.ok("GET", "/sandbox/counters")) as Record<string, number>;
      assert.equal(remote["GET /nodes/{node}/status"], 2);
      await c.ok("DELETE", "/sandbox/counters");
      assert.deepEqual(sb.counters.get(), {});
      // Requests that fail (auth, injected faults) are counted too: they reached the server.
      await c.call("GET", "/version", { auth: "none" });
      sb.faults.set({ errorRate: 1 });
      await c.call("GET", "/version");
      assert.equal(sb.counters.get()["GET /version"], 2);
      sb.counters.reset();
      assert.deepEqual(sb.counters.get(), {});
    });
  });
});
