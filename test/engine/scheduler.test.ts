import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runGraph } from "../../src/engine/scheduler.ts";
import type { TaskResult } from "../../src/engine/scheduler.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a graph whose tasks take `ms` and record when they run. */
async function run(deps: Record<string, string[]>, opts: { concurrency: number; fail?: string[]; ms?: number; signal?: AbortSignal }) {
  const log: string[] = [];
  let running = 0;
  let peak = 0;
  const result = await runGraph(
    Object.keys(deps),
    (n) => deps[n] ?? [],
    async (n): Promise<TaskResult> => {
      running++;
      peak = Math.max(peak, running);
      log.push(`start ${n}`);
      await sleep(opts.ms ?? 20);
      log.push(`end ${n}`);
      running--;
      return opts.fail?.includes(n) ? "stop" : "ok";
    },
    { concurrency: opts.concurrency, signal: opts.signal },
  );
  return { log, peak, result: Object.fromEntries([...result].map(([k, v]) => [k, v.state === "skipped" ? `skipped:${v.because}` : v.state])) };
}

void describe("dependency scheduler", () => {
  void it("starts a task only after its dependencies, and runs independent ones at once", async () => {
    const { log, peak, result } = await run({ a: [], b: ["a"], c: [] }, { concurrency: 4 });
    assert.deepEqual(result, { a: "ok", b: "ok", c: "ok" });
    assert.ok(log.indexOf("start b") > log.indexOf("end a"));
    // a and c overlap.
    assert.ok(log.indexOf("start c") < log.indexOf("end a"));
    assert.equal(peak, 2);
  });

  void it("never runs more than the concurrency", async () => {
    const deps = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`s${i}`, []]));
    const { peak, result } = await run(deps, { concurrency: 3 });
    assert.equal(peak, 3);
    assert.ok(Object.values(result).every((r) => r === "ok"));
  });

  void it("a failure skips its dependents, transitively, and not the others", async () => {
    const { log, result } = await run({ a: [], b: ["a"], c: ["b"], d: [] }, { concurrency: 2, fail: ["a"] });
    assert.deepEqual(result, { a: "stop", b: "skipped:a", c: "skipped:a", d: "ok" });
    assert.ok(!log.includes("start b"));
    assert.ok(!log.includes("start c"));
  });

  void it("after an abort, nothing new starts; what is not started ends cancelled", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const { result } = await run({ a: [], b: ["a"], c: ["b"] }, { concurrency: 1, ms: 50, signal: ac.signal });
    assert.deepEqual(result, { a: "ok", b: "cancelled", c: "cancelled" });
  });

  void it("a task that throws counts as failed", async () => {
    const result = await runGraph(["a", "b"], (n) => (n === "b" ? ["a"] : []), () => Promise.reject(new Error("boom")), { concurrency: 1 });
    assert.equal(result.get("a")?.state, "stop");
    assert.deepEqual(result.get("b"), { state: "skipped", because: "a" });
  });
});
