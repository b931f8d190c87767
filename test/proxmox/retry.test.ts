/** The retry policy, pure: how failures are read, and how each kind of call is repeated. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ProxmoxAlreadyExistsError,
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxConfigError,
  ProxmoxConnectionError,
  ProxmoxLockedError,
  ProxmoxNotFoundError,
  ProxmoxResponseError,
  ProxmoxTaskError,
  ProxmoxTaskTimeoutError,
  ProxmoxTlsPinError,
  ProxmoxValidationError,
} from "../../src/proxmox/errors.ts";
import type { TaskFailure } from "../../src/proxmox/errors.ts";
import {
  DEFAULT_RETRY,
  GUEST_CREATE,
  GUEST_TASK,
  READ,
  WRITE,
  backoffDelay,
  converge,
  createUnderFreshIds,
  failureKind,
  retryDecision,
  rewriteWhileStale,
  taskLockRetry,
} from "../../src/proxmox/retry.ts";
import type { IdHolder, RetryState } from "../../src/proxmox/retry.ts";

void describe("backoffDelay", () => {
  void it("grows exponentially, stays within [ceiling/2, ceiling], and is capped", () => {
    assert.equal(backoffDelay(1, 100, 10_000, () => 0), 50);
    assert.equal(backoffDelay(1, 100, 10_000, () => 0.999999), 100);
    assert.equal(backoffDelay(3, 100, 10_000, () => 0), 200);
    assert.equal(backoffDelay(20, 100, 1000, () => 1), 1000);
  });
});

const api = (status: number, reason = "x", paramErrors: Record<string, string> = {}) =>
  new ProxmoxApiError({ method: "GET", path: "/x", status, reason, paramErrors, message: reason, hint: "" });
const conn = (maybeApplied: boolean) => new ProxmoxConnectionError({ method: "GET", path: "/x", code: "E", maybeApplied, message: "m", hint: "h" });
const state = (over: Partial<RetryState> = {}): RetryState => ({ idempotent: true, tries: 1, lockTries: 0, reauthed: false, canReauth: false, ...over });
const policy = { ...DEFAULT_RETRY, baseDelayMs: 1, maxDelayMs: 2, lockDelayMs: 1, random: () => 0.5 };

void describe("retryDecision", () => {
  void it("retries reads on 5xx and broken connections, up to the attempt limit", () => {
    assert.equal(retryDecision(api(500), state(), policy).retry, true);
    assert.equal(retryDecision(api(503), state(), policy).retry, true);
    assert.equal(retryDecision(conn(true), state(), policy).retry, true);
    assert.equal(retryDecision(new ProxmoxResponseError("GET", "/x", "truncated"), state(), policy).retry, true);
    assert.equal(retryDecision(api(500), state({ tries: policy.attempts }), policy).retry, false);
  });
  void it("never repeats a write that may have reached the server", () => {
    assert.equal(retryDecision(api(500), state({ idempotent: false }), policy).retry, false);
    assert.equal(retryDecision(conn(true), state({ idempotent: false }), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxResponseError("POST", "/x", "truncated"), state({ idempotent: false }), policy).retry, false);
  });
  void it("repeats a write whose connection never opened", () => {
    assert.equal(retryDecision(conn(false), state({ idempotent: false }), policy).retry, true);
  });
  void it("does not retry 4xx, 501, not-found, parameter errors or TLS pin failures", () => {
    assert.equal(retryDecision(api(400), state(), policy).retry, false);
    assert.equal(retryDecision(api(501), state(), policy).retry, false);
    assert.equal(retryDecision(api(500, "x", { a: "b" }), state(), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxNotFoundError({ method: "GET", path: "/x", status: 500, reason: "x", message: "x", hint: "" }), state(), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxTlsPinError("h", "A", "B"), state(), policy).retry, false);
  });
  void it("retries locks for writes too, with the lock budget", () => {
    const locked = new ProxmoxLockedError({ method: "POST", path: "/x", status: 500, reason: "x", message: "x", hint: "", lock: "create", kind: "guest" });
    const first = retryDecision(locked, state({ idempotent: false }), policy);
    assert.equal(first.retry && first.kind, "lock");
    assert.equal(retryDecision(locked, state({ idempotent: false, tries: 5, lockTries: policy.lockAttempts - 1 }), policy).retry, false);
  });
  void it("logs in again once after a 401 with a ticket, never with a token", () => {
    const unauthorized = new ProxmoxAuthError({ method: "POST", path: "/x", status: 401, reason: "x", message: "x", hint: "" });
    const decision = retryDecision(unauthorized, state({ idempotent: false, canReauth: true }), policy);
    assert.equal(decision.retry && decision.kind, "reauth");
    assert.equal(retryDecision(unauthorized, state({ canReauth: true, reauthed: true }), policy).retry, false);
    assert.equal(retryDecision(unauthorized, state({ canReauth: false }), policy).retry, false);
  });
});


const task: TaskFailure = { upid: "UPID:pve-01:00001234:00005678:6650A1B2:vzstart:105:u@pve:", node: "pve-01", type: "vzstart", id: "105", exitstatus: "x", logTail: [] };
const locked = (fromTask: boolean) =>
  new ProxmoxLockedError({ method: "POST", path: "/x", status: 500, reason: "x", message: "x", hint: "", lock: "backup", kind: "guest", ...(fromTask ? { task } : {}) });
const taskError = (exitstatus: string) => new ProxmoxTaskError({ upid: task.upid, node: "pve-01", exitstatus, logTail: [], message: exitstatus, hint: "" });
const notFound = () => new ProxmoxNotFoundError({ method: "GET", path: "/x", status: 500, reason: "x", message: "x", hint: "" });
const taken = () => new ProxmoxAlreadyExistsError({ method: "POST", path: "/x", status: 500, reason: "x", message: "CT 101 already exists", hint: "" });

void describe("failureKind", () => {
  void it("reads every failure once, the same for each retry site", () => {
    const cases: [unknown, string][] = [
      [new ProxmoxAuthError({ method: "GET", path: "/x", status: 401, reason: "x", message: "x", hint: "" }), "expired"],
      [new ProxmoxAuthError({ method: "GET", path: "/x", status: 403, reason: "x", message: "x", hint: "" }), "permanent"],
      [locked(false), "locked"],
      [locked(true), "locked"],
      [conn(false), "unsent"],
      [conn(true), "dropped"],
      [api(500), "uncertain"],
      [api(503), "uncertain"],
      [new ProxmoxResponseError("POST", "/x", "truncated"), "uncertain"],
      [new ProxmoxTaskTimeoutError({ upid: task.upid, node: "pve-01", exitstatus: undefined, logTail: [], message: "slow", hint: "" }), "uncertain"],
      [taken(), "lost-race"],
      [taskError("unable to create CT 101 - CT 101 already exists on node 'pve-02'"), "lost-race"],
      [notFound(), "not-found"],
      [api(500, "detected modified configuration - file changed by another user? Try again."), "stale"],
      [taskError("bridge 'vmbr7' does not exist"), "task-failed"],
      [api(500, "can't remove CT 101 - protection mode enabled"), "permanent"],
      [api(500, "x", { memory: "bad" }), "permanent"],
      [api(501), "permanent"],
      [api(400), "permanent"],
      [new ProxmoxTlsPinError("h", "A", "B"), "permanent"],
      [new ProxmoxConfigError("x", "y"), "permanent"],
      [new ProxmoxValidationError("vmid", "x", "y"), "permanent"],
      [new TypeError("a bug"), "permanent"],
    ];
    for (const [error, kind] of cases) assert.equal(failureKind(error), kind, String(error));
  });
});

void describe("taskLockRetry", () => {
  void it("starts a guest task again when its task was refused on a lock, within the lock budget", () => {
    assert.equal(typeof taskLockRetry(GUEST_TASK, locked(true), 1, policy), "number");
    assert.equal(typeof taskLockRetry(GUEST_TASK, locked(true), policy.lockAttempts - 1, policy), "number");
    assert.equal(taskLockRetry(GUEST_TASK, locked(true), policy.lockAttempts, policy), undefined);
  });
  void it("leaves a lock in the answer to the transport, other task failures alone, and calls without taskLocks alone", () => {
    assert.equal(taskLockRetry(GUEST_TASK, locked(false), 1, policy), undefined);
    assert.equal(taskLockRetry(GUEST_TASK, taskError("bridge 'vmbr7' does not exist"), 1, policy), undefined);
    assert.equal(taskLockRetry(GUEST_CREATE, locked(true), 1, policy), undefined);
    assert.equal(taskLockRetry(WRITE, locked(true), 1, policy), undefined);
    assert.equal(taskLockRetry(READ, locked(true), 1, policy), undefined);
  });
});

void describe("createUnderFreshIds", () => {
  // A fake cluster: ids from 101 up; `outcomes` says what each create does, in order.
  function fake(outcomes: ((vmid: number) => Error)[], holders: IdHolder[] = []) {
    let next = 100;
    const sent: number[] = [];
    const asked: number[] = [];
    return {
      sent,
      asked,
      nextId: () => Promise.resolve(++next),
      create: (vmid: number) => {
        sent.push(vmid);
        const outcome = outcomes[sent.length - 1];
        if (outcome === undefined) return Promise.resolve(vmid);
        return Promise.reject(outcome(vmid));
      },
      holder: (vmid: number) => {
        asked.push(vmid);
        return Promise.resolve(holders[asked.length - 1] ?? "absent");
      },
    };
  }
  const base = { attempts: 5, budget: policy };

  void it("takes a fresh id after a lost race, and nothing else without a settle check", async () => {
    const f = fake([() => taken()]);
    assert.equal(await createUnderFreshIds({ ...base, nextId: f.nextId, create: f.create }), 102);
    assert.deepEqual(f.sent, [101, 102]);
    const dropped = fake([() => conn(true)]);
    await assert.rejects(createUnderFreshIds({ ...base, nextId: dropped.nextId, create: dropped.create }), ProxmoxConnectionError);
    assert.deepEqual(dropped.sent, [101], "a create that may have arrived is sent once");
  });

  void it("settles an answer that does not tell: ours is success, another's a fresh id, absent after a drop the same id", async () => {
    const ours = fake([() => api(500)], ["ours"]);
    assert.equal(await createUnderFreshIds({ ...base, nextId: ours.nextId, create: ours.create, settle: { holder: ours.holder, adopt: (v) => v } }), 101);
    assert.deepEqual(ours.sent, [101]);
    const other = fake([() => conn(true)], ["other"]);
    assert.equal(await createUnderFreshIds({ ...base, nextId: other.nextId, create: other.create, settle: { holder: other.holder, adopt: (v) => v } }), 102);
    assert.deepEqual(other.sent, [101, 102]);
    const absent = fake([() => conn(true)], ["absent"]);
    assert.equal(await createUnderFreshIds({ ...base, nextId: absent.nextId, create: absent.create, settle: { holder: absent.holder, adopt: (v) => v } }), 101);
    assert.deepEqual(absent.sent, [101, 101]);
  });

  void it("a 5xx with nothing made is not sent again; a resent id refused as taken is checked, and ours", async () => {
    const refused = fake([() => api(500)], ["absent"]);
    await assert.rejects(createUnderFreshIds({ ...base, nextId: refused.nextId, create: refused.create, settle: { holder: refused.holder, adopt: (v) => v } }), ProxmoxApiError);
    assert.deepEqual(refused.sent, [101]);
    // The first create arrived although its connection broke; the second is refused: the id is ours.
    const arrived = fake([() => conn(true), () => taken()], ["absent", "ours"]);
    assert.equal(await createUnderFreshIds({ ...base, nextId: arrived.nextId, create: arrived.create, settle: { holder: arrived.holder, adopt: (v) => v } }), 101);
    assert.deepEqual(arrived.sent, [101, 101]);
    assert.deepEqual(arrived.asked, [101, 101]);
  });

  void it("stops after its attempts, and never repeats a permanent failure or a failed task", async () => {
    const races = fake([() => taken(), () => taken(), () => taken()]);
    await assert.rejects(createUnderFreshIds({ ...base, attempts: 3, nextId: races.nextId, create: races.create }), ProxmoxAlreadyExistsError);
    assert.deepEqual(races.sent, [101, 102, 103]);
    for (const error of [api(400), taskError("bridge 'vmbr7' does not exist"), locked(true)]) {
      const f = fake([() => error], ["other"]);
      await assert.rejects(createUnderFreshIds({ ...base, nextId: f.nextId, create: f.create, settle: { holder: f.holder, adopt: (v) => v } }));
      assert.deepEqual(f.sent, [101]);
      assert.deepEqual(f.asked, []);
    }
  });
});

void describe("converge", () => {
  function step(failures: Error[], doneAnswers: boolean[]) {
    const log: string[] = [];
    let acts = 0;
    let dones = 0;
    return {
      log,
      act: () => {
        log.push("act");
        const failure = failures[acts++];
        return failure === undefined ? Promise.resolve() : Promise.reject(failure);
      },
      done: () => {
        log.push("done?");
        return Promise.resolve(doneAnswers[dones++] ?? false);
      },
    };
  }

  void it("repeats a passing failure only after checking that the step did not happen", async () => {
    const s = step([api(500), conn(true)], []);
    await converge({ act: s.act, done: s.done, checkFirst: true });
    assert.deepEqual(s.log, ["done?", "act", "done?", "act", "done?", "act"]);
  });

  void it("a step that happened although it failed is success; one already done is not taken", async () => {
    const happened = step([new ProxmoxTaskTimeoutError({ upid: task.upid, node: "pve-01", exitstatus: undefined, logTail: [], message: "slow", hint: "" })], [true]);
    await converge({ act: happened.act, done: happened.done });
    assert.deepEqual(happened.log, ["act", "done?"]);
    const already = step([], [true]);
    await converge({ act: already.act, done: already.done, checkFirst: true });
    assert.deepEqual(already.log, ["done?"]);
  });

  void it("throws permanent failures at once, and gives up after its attempts", async () => {
    const permanent = step([api(500, "can't remove CT 101 - protection mode enabled")], []);
    await assert.rejects(converge({ act: permanent.act, done: permanent.done }), /protection/);
    assert.deepEqual(permanent.log, ["act"]);
    const failing = step([api(500), api(500), api(500), api(500)], []);
    await assert.rejects(converge({ act: failing.act, done: failing.done, attempts: 3 }), ProxmoxApiError);
    assert.deepEqual(failing.log, ["act", "done?", "act", "done?", "act", "done?"]);
  });

  void it("a removal that finds the guest gone is done", async () => {
    const gone = step([notFound()], []);
    await converge({ act: gone.act, done: gone.done, removes: true });
    assert.deepEqual(gone.log, ["act"]);
    // Any other step meets it like a passing failure: checked, tried again, then thrown.
    const start = step([notFound(), notFound(), notFound()], []);
    await assert.rejects(converge({ act: start.act, done: start.done }), ProxmoxNotFoundError);
    assert.deepEqual(start.log, ["act", "done?", "act", "done?", "act", "done?"]);
  });
});

void describe("rewriteWhileStale", () => {
  void it("writes again when the config changed since it was read, and nothing else", async () => {
    const tries: number[] = [];
    const stale = api(500, "detected modified configuration - file changed by another user? Try again.");
    assert.equal(
      await rewriteWhileStale((n) => {
        tries.push(n);
        return n < 3 ? Promise.reject(stale) : Promise.resolve("written");
      }),
      "written",
    );
    assert.deepEqual(tries, [1, 2, 3]);
    await assert.rejects(rewriteWhileStale(() => Promise.reject(stale), 2), ProxmoxApiError);
    let other = 0;
    await assert.rejects(
      rewriteWhileStale(() => {
        other += 1;
        return Promise.reject(api(500));
      }),
      ProxmoxApiError,
    );
    assert.equal(other, 1, "a 5xx on a write is not repeated");
  });
});
