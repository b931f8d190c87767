import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/monitor/clock.ts";
import { mapLimit, Scheduler } from "../../src/monitor/scheduler.ts";

const S = 1000;

/** Stops, letting jobs still sleeping on the manual clock finish. */
async function stopAll(sch: Scheduler, clock: ManualClock): Promise<void> {
  const stopping = sch.stop();
  await clock.advance(3600 * S);
  await stopping;
}

function sleep(clock: ManualClock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

void describe("scheduler", () => {
  void it("runs each job at its interval, the first run after its jitter", async () => {
    const clock = new ManualClock(0);
    const sch = new Scheduler({ clock, random: () => 0.5, maxJitterMs: 10 * S });
    const runs: number[] = [];
    sch.add({ key: "a", intervalMs: 60 * S, run: () => Promise.resolve(void runs.push(clock.now())) });
    await clock.advance(10 * 60 * S);
    // Jitter: half of min(60 s, 10 s).
    assert.deepEqual(runs, [5, 65, 125, 185, 245, 305, 365, 425, 485, 545].map((s) => s * S));
    await stopAll(sch, clock);
  });

  void it("spreads first runs by jitter, never beyond a job's interval", async () => {
    const clock = new ManualClock(0);
    let r = 0;
    const sch = new Scheduler({ clock, random: () => [0, 0.25, 0.5, 0.99][r++ % 4] ?? 0, maxJitterMs: 20 * S });
    const first = new Map<string, number>();
    for (const [key, interval] of [["a", 60], ["b", 60], ["c", 4], ["d", 60]] as const) {
      sch.add({ key, intervalMs: interval * S, run: () => Promise.resolve(void (first.has(key) || first.set(key, clock.now()))) });
    }
    await clock.advance(30 * S);
    assert.deepEqual(Object.fromEntries(first), { a: 0, b: 5 * S, c: 2 * S, d: 19_800 });
    await stopAll(sch, clock);
  });

  void it("caps the jobs running at once; the others wait their turn", async () => {
    const clock = new ManualClock(0);
    const sch = new Scheduler({ clock, concurrency: 3, random: () => 0 });
    let done = 0;
    for (let i = 0; i < 10; i++) {
      sch.add({
        key: `j${i}`,
        intervalMs: 3600 * S,
        run: async () => {
          await sleep(clock, 5 * S);
          done++;
        },
      });
    }
    await clock.advance(5 * S);
    assert.equal(done, 3);
    await clock.advance(15 * S);
    assert.equal(done, 10);
    assert.equal(sch.stats.maxActive, 3);
    await stopAll(sch, clock);
  });

  void it("never overlaps a job with itself: a slow run is followed at once, not in parallel", async () => {
    const clock = new ManualClock(0);
    const sch = new Scheduler({ clock, random: () => 0 });
    const starts: number[] = [];
    let running = 0;
    let maxRunning = 0;
    sch.add({
      key: "slow",
      intervalMs: 10 * S,
      run: async () => {
        starts.push(clock.now());
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(clock, 25 * S);
        running--;
      },
    });
    await clock.advance(60 * S);
    assert.equal(maxRunning, 1);
    assert.deepEqual(starts, [0, 25 * S, 50 * S]);
    await stopAll(sch, clock);
  });

  void it("runAt moves the next run (also when asked while the job runs)", async () => {
    const clock = new ManualClock(0);
    const sch = new Scheduler({ clock, random: () => 0 });
    const runs: number[] = [];
    sch.add({
      key: "a",
      intervalMs: 60 * S,
      run: async () => {
        runs.push(clock.now());
        await sleep(clock, 1 * S);
      },
    });
    await clock.advance(0);
    sch.runAt("a", 7 * S);
    await clock.advance(9 * S);
    sch.runAt("a", 30 * S);
    assert.equal(sch.nextRun("a"), 30 * S);
    await clock.advance(30 * S);
    assert.deepEqual(runs, [0, 7 * S, 30 * S]);
    await stopAll(sch, clock);
  });

  void it("stop: no run starts afterwards, and a running job is told to abort", async () => {
    const clock = new ManualClock(0);
    const sch = new Scheduler({ clock, random: () => 0 });
    let runs = 0;
    let aborted = false;
    sch.add({
      key: "a",
      intervalMs: 10 * S,
      run: (signal) =>
        new Promise<void>((resolve) => {
          runs++;
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve();
          });
        }),
    });
    await clock.advance(1);
    const stopping = sch.stop();
    await clock.advance(0);
    await stopping;
    await clock.advance(10 * 60 * S);
    assert.equal(runs, 1);
    assert.equal(aborted, true);
    assert.equal(clock.pending, 0);
  });

  void it("a job that throws is reported and keeps its schedule", async () => {
    const clock = new ManualClock(0);
    const errors: string[] = [];
    const sch = new Scheduler({ clock, random: () => 0, onError: (k, e) => errors.push(`${k}: ${(e as Error).message}`) });
    let n = 0;
    sch.add({ key: "x", intervalMs: 10 * S, run: () => Promise.reject(new Error(`boom ${++n}`)) });
    await clock.advance(25 * S);
    assert.deepEqual(errors, ["x: boom 1", "x: boom 2", "x: boom 3"]);
    await stopAll(sch, clock);
  });
});

void describe("mapLimit", () => {
  void it("keeps order and the limit", async () => {
    let active = 0;
    let max = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
      active++;
      max = Math.max(max, active);
      await new Promise((r) => setImmediate(r));
      active--;
      return x * 10;
    });
    assert.deepEqual(out, [50, 10, 40, 20, 30]);
    assert.equal(max, 2);
    assert.deepEqual(await mapLimit([], 4, () => Promise.resolve(1)), []);
  });
});
