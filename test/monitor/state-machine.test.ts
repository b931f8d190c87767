import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffMs, derivedHealth, HOUR_MS, initialState, ladder, step, wakeAt } from "../../src/monitor/state-machine.ts";
import type { Action, Effect, Input, MachineEvent, Phase, Policy, ServiceState } from "../../src/monitor/state-machine.ts";

const S = 1000;
const MIN = 60 * S;

function policy(p: Partial<Policy> = {}): Policy {
  return {
    retries: [3],
    autoRemediate: true,
    restartFirst: true,
    protected: false,
    maxPerHour: 3,
    graceMs: 60 * S,
    backoffBaseMs: 60 * S,
    backoffMaxMs: 30 * MIN,
    deployRetryMs: 30 * S,
    ...p,
  };
}

const ok: Input = { kind: "check", index: 0, ok: true, detail: "200" };
const bad: Input = { kind: "check", index: 0, ok: false, detail: "503" };
const tick: Input = { kind: "tick" };
const done = (action: Action, outcome: "ok" | "failed" | "deferred" = "ok", stopping?: true): Input => ({ kind: "action_done", action, outcome, detail: outcome === "deferred" ? "pid 42, still running" : outcome, ...(stopping ? { stopping } : {}) });

/** Runs a script of [time, input] and returns every state, effect and event along the way. */
function play(p: Policy, script: [number, Input][], checks = 1): { state: ServiceState; phases: Phase[]; effects: (Effect & { at: number })[]; events: MachineEvent[] } {
  let state = initialState(checks, 0);
  const phases: Phase[] = [];
  const effects: (Effect & { at: number })[] = [];
  const events: MachineEvent[] = [];
  for (const [at, input] of script) {
    const r = step(state, input, at, p);
    state = r.state;
    phases.push(state.phase);
    effects.push(...r.effects.map((e) => ({ ...e, at })));
    events.push(...r.events);
  }
  return { state, phases, effects, events };
}

/** n failures one interval apart, starting at `from`. */
function fails(n: number, from: number, every = 10 * S): [number, Input][] {
  return Array.from({ length: n }, (_, i) => [from + i * every, bad] as [number, Input]);
}

void describe("state machine transitions (table)", () => {
  const cases: { name: string; policy?: Partial<Policy>; script: [number, Input][]; phases: Phase[]; actions: Action[] }[] = [
    { name: "first success: unknown → healthy", script: [[0, ok]], phases: ["healthy"], actions: [] },
    { name: "failures below retries: failing(n), then healthy again, nothing done", script: [[0, ok], ...fails(2, 10 * S), [30 * S, ok]], phases: ["healthy", "failing", "failing", "healthy"], actions: [] },
    { name: "retries reached with auto_remediate off: unhealthy, nothing done, recovers", policy: { autoRemediate: false }, script: [[0, ok], ...fails(3, 10 * S), [40 * S, bad], [50 * S, ok]], phases: ["healthy", "failing", "failing", "unhealthy", "unhealthy", "healthy"], actions: [] },
    {
      name: "restart_first: unhealthy → restarting → grace → healthy",
      script: [[0, ok], ...fails(3, 10 * S), [40 * S, done("restart")], [70 * S, ok], [100 * S, ok]],
      phases: ["healthy", "failing", "failing", "restarting", "grace", "grace", "healthy"],
      actions: ["restart"],
    },
    {
      name: "restart_first, still failing after grace → recreating → grace → healthy",
      script: [[0, ok], ...fails(3, 10 * S), [40 * S, done("restart")], [100 * S, bad], [110 * S, done("recreate")], [170 * S, ok]],
      phases: ["healthy", "failing", "failing", "restarting", "grace", "recreating", "grace", "healthy"],
      actions: ["restart", "recreate"],
    },
    {
      name: "without restart_first: recreate directly",
      policy: { restartFirst: false },
      script: [[0, ok], ...fails(3, 10 * S), [40 * S, done("recreate")], [100 * S, ok]],
      phases: ["healthy", "failing", "failing", "recreating", "grace", "healthy"],
      actions: ["recreate"],
    },
    {
      name: "protected, even without restart_first: restart only, then needs_human",
      policy: { restartFirst: false, protected: true },
      script: [[0, ok], ...fails(3, 10 * S), [40 * S, done("restart")], [100 * S, bad], [110 * S, bad], [2 * HOUR_MS, bad], [2 * HOUR_MS + 1, tick]],
      phases: ["healthy", "failing", "failing", "restarting", "grace", "needs_human", "needs_human", "needs_human", "needs_human"],
      actions: ["restart"],
    },
    {
      name: "protected: a failed restart is a human's job at once",
      policy: { protected: true },
      script: [...fails(3, 0), [30 * S, done("restart", "failed")]],
      phases: ["failing", "failing", "restarting", "needs_human"],
      actions: ["restart"],
    },
    {
      name: "a failed restart escalates to recreate (after the backoff)",
      script: [...fails(3, 0), [30 * S, done("restart", "failed")], [80 * S, tick], [90 * S, done("recreate")]],
      phases: ["failing", "failing", "restarting", "backoff", "recreating", "grace"],
      actions: ["restart", "recreate"],
    },
    {
      name: "a deploy holds the stack: waiting_deploy, then the same step again",
      script: [...fails(3, 0), [20 * S, done("restart", "deferred")], [40 * S, tick], [50 * S, tick], [60 * S, done("restart")]],
      phases: ["failing", "failing", "restarting", "waiting_deploy", "waiting_deploy", "restarting", "grace"],
      actions: ["restart", "restart"],
    },
    {
      name: "needs_human, gave_up and backoff end when the checks pass",
      policy: { protected: true },
      script: [...fails(3, 0), [30 * S, done("restart", "failed")], [40 * S, ok]],
      phases: ["failing", "failing", "restarting", "needs_human", "healthy"],
      actions: ["restart"],
    },
    {
      name: "max_remediations_per_hour 0: gave up at once, never woken",
      policy: { maxPerHour: 0 },
      script: [...fails(3, 0), [5 * HOUR_MS, tick]],
      phases: ["failing", "failing", "gave_up", "gave_up"],
      actions: [],
    },
  ];
  for (const c of cases) {
    void it(c.name, () => {
      const r = play(policy(c.policy), c.script);
      assert.deepEqual(r.phases, c.phases);
      assert.deepEqual(
        r.effects.map((e) => e.action),
        c.actions,
      );
    });
  }
});

void describe("state machine rules", () => {
  void it("is pure: the given state is never changed", () => {
    const s0 = initialState(1, 0);
    const copy = structuredClone(s0);
    step(s0, bad, 0, policy({ retries: [1] }));
    assert.deepEqual(s0, copy);
  });

  void it("a service is unhealthy after `retries` consecutive failures of one check, each check with its own retries", () => {
    const p = policy({ retries: [2, 4], autoRemediate: false });
    const b1: Input = { kind: "check", index: 1, ok: false, detail: "" };
    const r = play(p, [[0, ok], [0, { ...b1 }], [10, bad], [20, b1], [30, b1]], 2);
    // check 0 fails once, check 1 three times: failing; check 0 is not yet at 2.
    assert.equal(r.state.phase, "failing");
    const r2 = play(p, [[0, bad], [10, bad]], 2);
    assert.equal(r2.state.phase, "unhealthy");
    assert.equal(derivedHealth([{ failures: 0, last: true, at: 0 }, { failures: 3, last: false, at: 0 }], [2, 4]), "failing");
    assert.equal(derivedHealth([{ failures: 0, last: true, at: 0 }, { failures: 0, last: undefined, at: undefined }], [2, 4]), "unknown");
  });

  void it("a success in between resets the count: flapping under the threshold never remediates", () => {
    const script: [number, Input][] = [];
    for (let i = 0; i < 200; i++) script.push([i * 10 * S, i % 3 === 2 ? ok : bad]);
    const r = play(policy(), script);
    assert.equal(r.effects.length, 0);
    assert.ok(!r.phases.includes("unhealthy"));
  });

  void it("single flight: results while a remediation runs are ignored and start nothing", () => {
    const r = play(policy(), [...fails(3, 0), ...fails(20, 30 * S), [300 * S, tick]]);
    assert.equal(r.effects.length, 1);
    assert.equal(r.state.phase, "restarting");
    assert.equal(r.state.inFlight, "restart");
    assert.deepEqual(r.state.checks[0], { failures: 3, last: false, at: 20 * S });
  });

  void it("an action_done for another action than the one running is ignored", () => {
    const r = play(policy(), [...fails(3, 0), [30 * S, done("recreate")]]);
    assert.equal(r.state.phase, "restarting");
  });

  void it("a remedy that ends while the monitor stops: recorded, and no next remedy chosen", () => {
    const base: [number, Input][] = fails(3, 0);
    const failed = play(policy({ backoffBaseMs: 0 }), [...base, [30 * S, done("restart", "failed", true)]]);
    assert.equal(failed.state.phase, "unhealthy");
    assert.match(failed.state.reason, /the restart failed: failed; no further remedy: the monitor is stopping/);
    assert.equal(failed.state.inFlight, undefined);
    assert.deepEqual(failed.state.lastRemediation, { action: "restart", at: 20 * S, outcome: "failed", detail: "failed" });
    assert.deepEqual(
      failed.effects.map((e) => e.action),
      ["restart"],
    );
    assert.deepEqual(
      failed.events.filter((e) => e.kind === "action").map((e) => `${e.action} ${e.phase}`),
      ["restart start", "restart failed"],
    );
    // Without stopping, the same failure goes on to the next tier.
    assert.equal(play(policy({ backoffBaseMs: 0 }), [...base, [30 * S, done("restart", "failed")]]).state.phase, "recreating");
    // A remedy that worked ends in grace as usual (nothing to start there).
    assert.equal(play(policy({ backoffBaseMs: 0 }), [...base, [30 * S, done("restart", "ok", true)]]).state.phase, "grace");
  });

  void it("grace is judged by results at or after its end, not before", () => {
    const p = policy();
    const base: [number, Input][] = [...fails(3, 0), [20 * S, done("restart")]];
    // Failures during grace do not count; the first result after it decides.
    const healed = play(p, [...base, [30 * S, bad], [50 * S, bad], [80 * S, ok]]);
    assert.equal(healed.state.phase, "healthy");
    assert.equal(healed.effects.length, 1);
    const still = play(p, [...base, [30 * S, ok], [80 * S, bad]]);
    assert.equal(still.state.phase, "recreating");
    assert.equal(wakeAt(play(p, base).state), 80 * S);
  });

  void it("grace with several checks waits for every check, but one failure decides at once", () => {
    const p = policy({ retries: [1, 1] });
    const b1: Input = { kind: "check", index: 1, ok: false, detail: "" };
    const o1: Input = { kind: "check", index: 1, ok: true, detail: "" };
    const base: [number, Input][] = [[0, bad], [1 * S, done("restart")]];
    assert.equal(play(p, [...base, [61 * S, ok]], 2).state.phase, "grace");
    assert.equal(play(p, [...base, [61 * S, ok], [62 * S, o1]], 2).state.phase, "healthy");
    assert.equal(play(p, [...base, [61 * S, b1]], 2).state.phase, "recreating");
  });

  void it("hourly limit: at most N remediations per hour, then gave_up until the hour allows one more", () => {
    const p = policy({ restartFirst: false, maxPerHour: 2, backoffBaseMs: 0 });
    const r = play(p, [
      ...fails(3, 0),
      [30 * S, done("recreate", "failed")],
      [40 * S, done("recreate", "failed")],
      [50 * S, tick],
      [20 * S + HOUR_MS - 1, tick],
      [20 * S + HOUR_MS, tick],
    ]);
    assert.deepEqual(r.effects.map((e) => e.at), [20 * S, 30 * S, 20 * S + HOUR_MS]);
    assert.deepEqual(r.phases.slice(3), ["recreating", "gave_up", "gave_up", "gave_up", "recreating"]);
    const gaveUp = r.events.find((e) => e.kind === "state" && e.to === "gave_up");
    assert.match(gaveUp?.kind === "state" ? gaveUp.reason : "", /2 remediation\(s\) in the last hour, the limit is 2/);
  });

  void it("a deferred remediation does not count against the hour", () => {
    const p = policy({ maxPerHour: 1 });
    const r = play(p, [...fails(3, 0), [30 * S, done("restart", "deferred")], [60 * S, tick]]);
    assert.equal(r.state.phase, "restarting");
    assert.equal(r.state.window.length, 1);
    assert.equal(r.state.lastRemediation?.outcome, "running");
  });

  void it("backoff grows exponentially with the remediations of the last hour, up to its maximum", () => {
    const p = policy();
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffMs(n, p)), [0, 60 * S, 120 * S, 240 * S, 480 * S, 30 * MIN]);
    // Three incidents in a row: each waits longer after the previous remediation.
    const q = policy({ maxPerHour: 10, graceMs: 0 });
    const script: [number, Input][] = [...fails(3, 0), [20 * S, done("restart")], [20 * S, ok]];
    script.push(...fails(3, 30 * S), [50 * S, tick], [80 * S, tick], [80 * S, done("restart")], [80 * S, ok]);
    script.push(...fails(3, 90 * S), [200 * S, tick], [200 * S, done("restart")]);
    const r = play(q, script);
    assert.deepEqual(r.effects.map((e) => e.at), [20 * S, 80 * S, 200 * S]);
    assert.ok(r.phases.includes("backoff"));
  });

  void it("the ladder: restart first (if asked), else recreate; protected never recreates", () => {
    const table: [Partial<Policy>, (Action | undefined)[]][] = [
      [{ restartFirst: true }, ["restart", "recreate", "recreate"]],
      [{ restartFirst: false }, ["recreate", "recreate", "recreate"]],
      [{ restartFirst: true, protected: true }, ["restart", undefined, undefined]],
      [{ restartFirst: false, protected: true }, ["restart", undefined, undefined]],
    ];
    for (const [p, want] of table) assert.deepEqual([0, 1, 2].map((a) => ladder(a, policy(p))), want, JSON.stringify(p));
  });

  void it("every phase change is one event, with a reason; failing(n) → failing(n+1) is not", () => {
    const r = play(policy(), [[0, ok], ...fails(3, 10 * S), [40 * S, done("restart")], [100 * S, ok]]);
    const states = r.events.filter((e) => e.kind === "state").map((e) => (e.kind === "state" ? `${e.from}>${e.to}` : ""));
    assert.deepEqual(states, ["unknown>healthy", "healthy>failing", "failing>unhealthy", "unhealthy>restarting", "restarting>grace", "grace>healthy"]);
    const actions = r.events.filter((e) => e.kind === "action").map((e) => (e.kind === "action" ? `${e.action}:${e.phase}` : ""));
    assert.deepEqual(actions, ["restart:start", "restart:ok"]);
    assert.equal(r.state.attempt, 0);
    assert.equal(r.state.lastRemediation?.outcome, "ok");
  });
});
