import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Service } from "../../src/config/service.ts";
import type { Monitoring } from "../../src/config/monitoring.ts";
import { ManualClock } from "../../src/monitor/clock.ts";
import { monitoredService, monitorSettings } from "../../src/monitor/config.ts";
import type { MonitoredService } from "../../src/monitor/config.ts";
import type { MonitorEvent, StateEvent } from "../../src/monitor/events.ts";
import { Monitor, failureDetail } from "../../src/monitor/monitor.ts";
import { ProvisionError } from "../../src/provision/deploy.ts";
import type { Remediator } from "../../src/monitor/actions.ts";
import { DeployInProgressError } from "../../src/monitor/actions.ts";
import { HOUR_MS } from "../../src/monitor/state-machine.ts";
import { StaticTargets } from "../../src/monitor/targets.ts";

const S = 1000;
const MIN = 60 * S;

/** A service as loaded from service.yaml, with one http check (interval 10 s, 3 retries) unless told otherwise. */
function service(name: string, monitoring: Monitoring, o: { protect?: boolean } = {}): MonitoredService {
  const s: Pick<Service, "name" | "dir" | "resources" | "monitoring"> = {
    name,
    dir: `/repo/services/${name}`,
    resources: [{ id: "web", type: "proxmox:container", dependsOn: [], protect: o.protect ?? false, index: 0, spec: { docker: { compose: true } } }],
    monitoring: { health_checks: [{ type: "http", url: "http://{address}/", interval: 10, retries: 3 }], auto_remediate: true, grace_period: 60, ...monitoring },
  };
  return monitoredService(s, monitorSettings({}));
}

/** A fake homelab: services whose health the test controls, a remediator that records what it is asked. */
class World {
  readonly clock = new ManualClock(0);
  readonly events: (MonitorEvent & { t: number })[] = [];
  readonly calls: { action: string; service: string; t: number }[] = [];
  /** Health as a function of the service and time. */
  health: (service: string, t: number) => boolean = () => true;
  /** What a restart / recreate does to the health (default nothing). */
  onRestart: (service: string) => void = () => undefined;
  onRecreate: (service: string) => void = () => undefined;
  restartMs = 0;
  deploying: (service: string, t: number) => boolean = () => false;
  checksRun = new Map<string, number>();
  readonly targets = new StaticTargets([]);

  readonly remediator: Remediator = {
    restart: async (service) => {
      assert.equal(this.deploying(service, this.clock.now()), false, "never restarts while a deploy holds the stack");
      this.calls.push({ action: "restart", service, t: this.clock.now() });
      if (this.restartMs > 0) await new Promise((r) => this.clock.setTimer(this.restartMs, () => r(undefined)));
      this.onRestart(service);
      return "restarted";
    },
    recreate: (service) => {
      assert.equal(this.deploying(service, this.clock.now()), false, "never recreates while a deploy holds the stack");
      this.calls.push({ action: "recreate", service, t: this.clock.now() });
      this.onRecreate(service);
      return Promise.resolve("recreated");
    },
    isDeploying: (service) => Promise.resolve(this.deploying(service, this.clock.now()) ? { deploying: true, detail: "a deploy holds the stack (pid 42)" } : { deploying: false, detail: "" }),
  };

  monitor(services: MonitoredService[]): Monitor {
    for (const s of services) this.targets.set({ service: s.name, deployed: true, containers: [{ id: "web", address: "10.0.0.5", protect: false }] });
    return new Monitor({
      services,
      clock: this.clock,
      targets: this.targets,
      random: () => 0,
      runCheck: (c, target) => {
        this.checksRun.set(target.service, (this.checksRun.get(target.service) ?? 0) + 1);
        const ok = this.health(target.service, this.clock.now());
        return Promise.resolve({ ok, latencyMs: 3, detail: ok ? "status 200" : "status 503" });
      },
      remediator: this.remediator,
      sink: (e) => this.events.push({ ...e, t: this.clock.now() }),
    });
  }

  count(action: string, service?: string): number {
    return this.calls.filter((c) => c.action === action && (service === undefined || c.service === service)).length;
  }

  states(service: string): string[] {
    return this.events.filter((e): e is StateEvent & { t: number } => e.type === "state" && e.service === service).map((e) => `${e.t / S}s ${e.to}`);
  }

  async stop(m: Monitor): Promise<void> {
    const stopping = m.stop();
    await this.clock.advance(HOUR_MS);
    await stopping;
  }
}

void describe("monitor loop (fake clock, fake remediator)", () => {
  void it("unhealthy after interval × retries; restart; healthy after grace", async () => {
    const w = new World();
    let healed = false;
    w.health = () => healed;
    w.onRestart = () => (healed = true);
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(5 * MIN);
    // Checks at 0, 10, 20 s fail: unhealthy at 20 s; restart at once; judged at the end of grace (80 s).
    assert.deepEqual(w.calls, [{ action: "restart", service: "peach", t: 20 * S }]);
    assert.deepEqual(w.states("peach"), ["0s failing", "20s unhealthy", "20s restarting", "20s grace", "80s healthy"]);
    assert.equal(m.snapshot()[0]?.lastRemediation?.outcome, "ok");
    await w.stop(m);
  });

  void it("restart_first: a restart that does not help is followed by a recreate after grace", async () => {
    const w = new World();
    let healed = false;
    w.health = () => healed;
    w.onRecreate = () => (healed = true);
    const m = w.monitor([service("peach", { restart_first: true })]);
    m.start();
    await w.clock.advance(10 * MIN);
    assert.deepEqual(w.calls.map((c) => `${c.action}@${c.t / S}`), ["restart@20", "recreate@80"]);
    assert.deepEqual(w.states("peach").slice(-3), ["80s recreating", "80s grace", "140s healthy"]);
    await w.stop(m);
  });

  void it("without restart_first: recreate directly", async () => {
    const w = new World();
    let healed = false;
    w.health = () => healed;
    w.onRecreate = () => (healed = true);
    const m = w.monitor([service("peach", { restart_first: false })]);
    m.start();
    await w.clock.advance(5 * MIN);
    assert.deepEqual(w.calls.map((c) => `${c.action}@${c.t / S}`), ["recreate@20"]);
    await w.stop(m);
  });

  void it("protect: a service with a protect: true resource is restarted, never recreated, then needs a human", async () => {
    const w = new World();
    w.health = () => false;
    const m = w.monitor([service("vault", { restart_first: false }, { protect: true })]);
    m.start();
    await w.clock.advance(3 * HOUR_MS);
    assert.equal(w.count("restart"), 1);
    assert.equal(w.count("recreate"), 0);
    const snap = m.snapshot()[0];
    assert.equal(snap?.phase, "needs_human");
    assert.match(snap?.reason ?? "", /protect: true.*a human is needed/);
    await w.stop(m);
  });

  void it("hourly limit: a service that never heals gets at most N remediations in any hour, then gave_up", async () => {
    const w = new World();
    w.health = () => false;
    const m = w.monitor([service("peach", { restart_first: false, max_remediations_per_hour: 3 })]);
    m.start();
    await w.clock.advance(3 * HOUR_MS);
    const times = w.calls.map((c) => c.t);
    for (const t of times) assert.ok(times.filter((u) => u >= t && u < t + HOUR_MS).length <= 3, `more than 3 in the hour after ${t / S}s: ${times.map((x) => x / S).join(", ")}`);
    assert.ok(times.length >= 6 && times.length <= 9, `${times.length} remediations in 3 hours`);
    assert.ok(w.states("peach").some((s) => s.endsWith("gave_up")));
    // Backoff: the gaps between remediations within an hour grow.
    const firstHour = times.filter((t) => t < HOUR_MS);
    const gaps = firstHour.slice(1).map((t, i) => t - (firstHour[i] ?? 0));
    assert.ok(gaps.every((g, i) => i === 0 || g > (gaps[i - 1] ?? 0)), `gaps ${gaps.map((g) => g / S).join(", ")}`);
    await w.stop(m);
  });

  void it("flapping does not cause a remediation storm: count the actions", async () => {
    const w = new World();
    // Down 40 s, up 40 s, forever: every down phase reaches 3 failures.
    w.health = (_s, t) => Math.floor(t / (40 * S)) % 2 === 1;
    const m = w.monitor([service("flappy", { max_remediations_per_hour: 3 })]);
    m.start();
    await w.clock.advance(4 * HOUR_MS);
    const incidents = w.states("flappy").filter((s) => s.endsWith(" unhealthy")).length;
    assert.ok(incidents >= 20, `the service was unhealthy ${incidents} times`);
    assert.ok(w.calls.length <= 12, `${w.calls.length} remediations in 4 hours`);
    assert.ok(w.calls.length >= 4);
    await w.stop(m);
  });

  void it("a deploy holding the stack makes the monitor wait, not fight; it repairs after the deploy if still needed", async () => {
    const w = new World();
    let healed = false;
    w.health = () => healed;
    w.onRestart = () => (healed = true);
    w.deploying = (_s, t) => t < 5 * MIN;
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(10 * MIN);
    assert.equal(w.count("restart"), 1);
    assert.ok((w.calls[0]?.t ?? 0) >= 5 * MIN);
    assert.ok(w.states("peach").some((s) => s.endsWith("waiting_deploy")));
    assert.ok(w.events.some((e) => e.type === "action" && e.phase === "deferred" && /pid 42/.test(e.detail)));
    assert.equal(m.snapshot()[0]?.phase, "healthy");
    await w.stop(m);
  });

  void it("a recreate refused for the lock (DeployInProgressError) is deferred, not failed", async () => {
    const w = new World();
    let healed = false;
    let refusals = 1;
    w.health = () => healed;
    w.remediator.recreate = (service) => {
      w.calls.push({ action: "recreate", service, t: w.clock.now() });
      if (refusals-- > 0) return Promise.reject(new DeployInProgressError("stack test.peach is locked by another run"));
      healed = true;
      return Promise.resolve("recreated");
    };
    const m = w.monitor([service("peach", { restart_first: false })]);
    m.start();
    await w.clock.advance(10 * MIN);
    assert.deepEqual(w.calls.map((c) => `${c.action}@${c.t / S}`), ["recreate@20", "recreate@50"]);
    assert.equal(m.snapshot()[0]?.phase, "healthy");
    assert.equal(m.snapshot()[0]?.remediationsLastHour, 1);
    await w.stop(m);
  });

  void it("single flight: one remediation at a time, and no checks of the service while it runs", async () => {
    const w = new World();
    let healed = false;
    w.health = () => healed;
    w.onRestart = () => (healed = true);
    w.restartMs = 3 * MIN;
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(20 * S);
    const before = w.checksRun.get("peach");
    await w.clock.advance(3 * MIN - 1);
    assert.equal(w.checksRun.get("peach"), before);
    assert.equal(w.count("restart"), 1);
    assert.equal(m.snapshot()[0]?.phase, "restarting");
    await w.clock.advance(5 * MIN);
    assert.equal(w.count("restart"), 1);
    assert.equal(m.snapshot()[0]?.phase, "healthy");
    await w.stop(m);
  });

  void it("a service that is not deployed is reported, never repaired", async () => {
    const w = new World();
    w.health = () => false;
    const m = w.monitor([service("ghost", {})]);
    w.targets.set({ service: "ghost", deployed: false, containers: [] });
    m.start();
    await w.clock.advance(30 * MIN);
    assert.equal(w.calls.length, 0);
    assert.equal(m.snapshot()[0]?.phase, "unknown");
    assert.ok(w.events.some((e) => e.type === "check" && /not deployed/.test(e.detail)));
  });

  void it("an unreadable deployment state is reported, and no reason to repair the service", async () => {
    const w = new World();
    w.health = () => false;
    const m = w.monitor([service("peach", {})]);
    w.targets.get = () => Promise.reject(new Error("state file is being written"));
    m.start();
    await w.clock.advance(30 * MIN);
    assert.equal(w.calls.length, 0);
    assert.equal(m.snapshot()[0]?.phase, "unknown");
    assert.ok(w.events.some((e) => e.type === "check" && /cannot read where peach is deployed: state file is being written/.test(e.detail)));
    await w.stop(m);
  });

  void it("a recreate that destroyed the service but failed to deploy it is tried again (the stack is gone because of us)", async () => {
    const w = new World();
    let healed = false;
    let attempts = 0;
    w.health = () => healed;
    w.remediator.recreate = (service) => {
      w.calls.push({ action: "recreate", service, t: w.clock.now() });
      attempts++;
      if (attempts === 1) {
        w.targets.set({ service, deployed: false, containers: [] });
        return Promise.reject(new Error("destroyed peach, but redeploying it failed (exit 1)"));
      }
      w.targets.set({ service, deployed: true, containers: [{ id: "web", address: "10.0.0.6", protect: false }] });
      healed = true;
      return Promise.resolve("recreated");
    };
    const m = w.monitor([service("peach", { restart_first: false })]);
    m.start();
    await w.clock.advance(10 * MIN);
    assert.equal(attempts, 2);
    assert.equal(m.snapshot()[0]?.phase, "healthy");
    await w.stop(m);
  });

  void it("services are independent: one repair does not delay another's checks", async () => {
    const w = new World();
    w.health = (s) => s !== "bad";
    w.restartMs = 10 * MIN;
    const m = w.monitor([service("bad", {}), service("good", {})]);
    m.start();
    await w.clock.advance(5 * MIN);
    assert.equal(w.count("restart", "bad"), 1);
    assert.ok((w.checksRun.get("good") ?? 0) >= 29);
    assert.equal(m.snapshot().find((s) => s.service === "good")?.phase, "healthy");
    await w.stop(m);
  });

  void it("stop waits for a remediation in progress, reports its end, and then nothing runs", async () => {
    const w = new World();
    w.health = () => false;
    w.restartMs = 2 * MIN;
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(30 * S);
    assert.equal(m.snapshot()[0]?.phase, "restarting");
    let stopped = false;
    const stopping = m.stop().then(() => (stopped = true));
    await w.clock.advance(1 * MIN);
    assert.equal(stopped, false);
    await w.clock.advance(1 * MIN);
    await stopping;
    assert.deepEqual(
      w.events.filter((e) => e.type === "action").map((e) => `${e.action} ${e.phase}`),
      ["restart start", "restart ok"],
    );
    assert.equal(m.snapshot()[0]?.lastRemediation?.outcome, "ok");
    const n = w.checksRun.get("peach");
    await w.clock.advance(HOUR_MS);
    assert.equal(w.checksRun.get("peach"), n);
    assert.equal(w.clock.pending, 0);
  });

  void it("a remediation that fails while the monitor stops: its failure is reported, the next tier never starts", async () => {
    const w = new World();
    w.health = () => false;
    w.restartMs = 2 * MIN;
    w.onRestart = () => {
      throw new Error("systemctl restart failed");
    };
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(30 * S);
    const stopping = m.stop();
    await w.clock.advance(2 * MIN);
    await stopping;
    await w.clock.advance(HOUR_MS);
    assert.deepEqual(
      w.events.filter((e) => e.type === "action").map((e) => `${e.action} ${e.phase}`),
      ["restart start", "restart failed"],
    );
    assert.equal(w.count("recreate"), 0);
    assert.equal(w.clock.pending, 0);
  });
});

void describe("a failed remedy says what to do", () => {
  void it("the action's detail carries the error's hint (Docker in LXC refused by the node: update lxc-pve), not only its first line", async () => {
    const w = new World();
    w.health = () => false;
    w.onRestart = () => {
      throw new ProvisionError("restart", "restarting peach failed on 10.0.0.9 (exit 1)", { details: "Error response from daemon: ... open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied", hint: "update lxc-pve on the node to 6.0.5-2 or newer" });
    };
    const m = w.monitor([service("peach", {})]);
    m.start();
    await w.clock.advance(30 * S);
    await m.stop();
    const failed = w.events.find((e) => e.type === "action" && e.phase === "failed");
    assert.ok(failed && failed.type === "action", JSON.stringify(w.events));
    assert.equal(failed.detail, "restarting peach failed on 10.0.0.9 (exit 1) → update lxc-pve on the node to 6.0.5-2 or newer");
    assert.equal(failureDetail(new Error("plain\nsecond line")), "plain");
  });
});

void describe("--once", () => {
  void it("runs each check, retrying a failing one up to its retries, repairs nothing, and says who is unhealthy", async () => {
    const w = new World();
    const seen = new Map<string, number>();
    w.health = (s) => {
      const n = (seen.get(s) ?? 0) + 1;
      seen.set(s, n);
      return s === "good" || (s === "slow" && n >= 2);
    };
    const m = w.monitor([service("good", {}), service("slow", {}), service("bad", {})]);
    const report = w.clock.advance(10 * S).then(() => undefined);
    const r = await Promise.all([m.once({ retryDelayMs: 1000 }), report]).then(([x]) => x);
    assert.equal(r.healthy, false);
    assert.deepEqual(Object.fromEntries(r.services.map((s) => [s.service, s.phase])), { good: "healthy", slow: "healthy", bad: "unhealthy" });
    assert.deepEqual(Object.fromEntries(seen), { good: 1, slow: 2, bad: 3 });
    assert.equal(w.calls.length, 0);
  });

  void it("all healthy is healthy; a service not deployed is not", async () => {
    const w = new World();
    const m = w.monitor([service("good", {})]);
    assert.equal((await m.once()).healthy, true);
    const w2 = new World();
    const m2 = w2.monitor([service("ghost", {})]);
    w2.targets.set({ service: "ghost", deployed: false, containers: [] });
    const r = await m2.once();
    assert.equal(r.healthy, false);
    assert.match(r.services[0]?.checks[0]?.detail ?? "", /not deployed/);
  });
});

void describe("monitoredService", () => {
  void it("fills check defaults and finds compose containers and protected resources", () => {
    const s = monitoredService(
      {
        name: "db",
        dir: "/r/services/db",
        resources: [
          { id: "data", type: "proxmox:container", dependsOn: [], protect: true, index: 0, spec: { docker: { compose: true } } },
          { id: "img", type: "docker:image", dependsOn: [], protect: false, index: 1, spec: {} },
        ],
        monitoring: { health_checks: [{ type: "tcp", port: 5432 }], restart_first: false },
      },
      monitorSettings({ monitor: { listen: undefined, concurrency: undefined, backoffSec: 5, maxBackoffSec: undefined, historyMaxKb: undefined, webhook: undefined } }),
    );
    assert.deepEqual(s.composeContainers, ["data"]);
    assert.deepEqual(s.protectedResources, ["data"]);
    assert.equal(s.checks[0]?.label, "tcp {address}:5432");
    assert.deepEqual({ i: s.checks[0]?.check.interval, t: s.checks[0]?.check.timeout, r: s.checks[0]?.check.retries }, { i: 60, t: 5, r: 3 });
    assert.equal(s.policy.protected, true);
    assert.equal(s.policy.autoRemediate, false);
    assert.equal(s.policy.restartFirst, false);
    assert.equal(s.policy.backoffBaseMs, 5000);
    assert.equal(s.policy.maxPerHour, 3);
  });
});
