/**
 * `homelab monitor` end to end, as a user runs it: the lxc sandbox (real LXC
 * guests, Docker Compose inside them), the hello service deployed with
 * `homelab deploy` through the real Pulumi engine and provider plugin, and
 * `homelab --env sandbox monitor SERVICE --json` as a child process whose
 * JSON-line events the test reads. Each case breaks something inside a guest
 * over SSH and checks what the monitor does about it and that the page
 * answers again: `--once` says healthy after the deploy (and unhealthy
 * when it is not); a stopped project is restarted through its systemd unit; a
 * project that a restart does not fix is recreated (destroy + deploy of its
 * stack); a protected service is only restarted, then left to a human; a
 * SIGINT during a recreate stops the monitor once the recreate is done; a
 * flapping check is remedied at most `max_remediations_per_hour` times, with
 * backoff. `hello` runs on Debian 13 with Compose v2 (its `*debian*` `>=12`,
 * as on a Proxmox VE 9 cluster), `guarded` on Debian 12 with Compose v1
 * (`^12`): the restart through the unit is proven on both. Figures
 * (detection, restart, recreate, recovery) are printed.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { formatEvent } from "../../src/monitor/events.ts";
import type { ActionEvent, CheckEvent, MonitorEvent, NoteEvent, StateEvent } from "../../src/monitor/events.ts";
import type { Action, Phase } from "../../src/monitor/state-machine.ts";
import { readMonitorState } from "../../src/monitor/status.ts";
import { notifiable } from "../../src/monitor/webhook.ts";
import { LxcWorld, page, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hlmon0";
const SUBNET = "10.87.86.0/24";
const HELLO_TEXT = "Hello from homelab";
const GUARDED_TEXT = "Hello from the guarded one";
/** The checks' timing in cases 1 to 3 (seconds). */
const INTERVAL = 2;
const TIMEOUT = 1;
const RETRIES = 2;
const GRACE = 3;
/** Cases 1 to 3: a small backoff, so that a recreate follows its restart at once. */
const BACKOFF = 1;
/** Case 4: a backoff that bites (15 s, then 30 s) while the check flaps every few seconds. */
const FLAP_BACKOFF = 15;
const FLAP_MAX_PER_HOUR = 3;

const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const at = (e: MonitorEvent): number => Date.parse(e.at);

/** An http check on the page and quick remediation settings. */
function httpMonitoring(text: string, o: { restartFirst?: boolean } = {}): string {
  return [
    "monitoring:",
    "  health_checks:",
    "    - type: http",
    "      url: http://{address}:80/",
    `      expect_body: ${text}`,
    `      interval: ${INTERVAL}`,
    `      timeout: ${TIMEOUT}`,
    `      retries: ${RETRIES}`,
    "  auto_remediate: true",
    `  restart_first: ${o.restartFirst ?? true}`,
    "  max_remediations_per_hour: 3",
    `  grace_period: ${GRACE}`,
    "",
  ].join("\n");
}

/**
 * A command check that flaps: it counts its runs in a file in the container
 * and passes one run in three (fail, fail, pass, ...), so every third run
 * ends an incident that the two runs before started (retries 2). No grace:
 * the run right after a restart passes and the service is healthy again.
 */
const FLAP_MONITORING = [
  "monitoring:",
  "  health_checks:",
  "    - type: command",
  `      command: 'n=$(cat /root/flap-count 2>/dev/null || echo 0); echo $((n + 1)) > /root/flap-count; echo "run $n"; [ $((n % 3)) -eq 2 ]'`,
  "      interval: 3",
  "      timeout: 2",
  "      retries: 2",
  "  auto_remediate: true",
  "  restart_first: true",
  `  max_remediations_per_hour: ${FLAP_MAX_PER_HOUR}`,
  "  grace_period: 0",
  "",
].join("\n");

/**
 * The compose file of a project that a restart does not fix: the image
 * deployed (taken from `deployed`, the file in the container) serving /bin
 * (404 for /), without a compose health check, so that the restart's wait
 * succeeds and only the monitor's check can tell.
 */
function brokenCompose(deployed: string): string {
  const image = /^ +image: *["']?([^"'\s]+)["']?\s*$/m.exec(deployed)?.[1];
  assert.ok(image, `no image in the deployed compose file:\n${deployed}`);
  return [
    "# broken by the monitor e2e test",
    "services:",
    "  web:",
    `    image: ${image}`,
    `    command: ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 80 -h /bin & wait"]`,
    "    ports:",
    '      - "80:80"',
    "",
  ].join("\n");
}

const isState =
  (service: string, to: Phase, from?: Phase) =>
  (e: MonitorEvent): e is StateEvent =>
    e.type === "state" && e.service === service && e.to === to && (from === undefined || e.from === from);
const isAction =
  (service: string, action: Action | undefined, phase: ActionEvent["phase"]) =>
  (e: MonitorEvent): e is ActionEvent =>
    e.type === "action" && e.service === service && (action === undefined || e.action === action) && e.phase === phase;
const isActionEnd =
  (service: string, action: Action) =>
  (e: MonitorEvent): e is ActionEvent =>
    e.type === "action" && e.service === service && e.action === action && e.phase !== "start";
const isCheck =
  (service: string) =>
  (e: MonitorEvent): e is CheckEvent =>
    e.type === "check" && e.service === service;

/** `homelab --env sandbox monitor SERVICES --json` in a child process, its events collected as they come. */
class MonitorProcess {
  readonly events: MonitorEvent[] = [];
  /** Lines of stdout that are not JSON events (there must be none). */
  readonly junk: string[] = [];
  stderr = "";
  readonly #child: ChildProcess;
  readonly #exited: Promise<string>;
  #exit: string | undefined;

  constructor(world: LxcWorld, services: string[]) {
    this.#child = world.spawn("--env", "sandbox", "monitor", ...services, "--json");
    let buffer = "";
    this.#child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      buffer += d;
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.trim() === "") continue;
        try {
          this.events.push(JSON.parse(line) as MonitorEvent);
        } catch {
          this.junk.push(line);
        }
      }
    });
    this.#child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    this.#exited = new Promise((resolve) => this.#child.on("exit", (code, signal) => resolve((this.#exit = code !== null ? String(code) : `signal ${signal ?? "?"}`))));
  }

  /** The last events as lines, for failure messages. */
  tail(n = 40): string {
    return `${this.events.slice(-n).map((e) => formatEvent(e)).join("\n")}${this.stderr ? `\nstderr: ${this.stderr.slice(-2000)}` : ""}`;
  }

  /** Waits for the first matching event at index `from` or later. */
  async next<T extends MonitorEvent>(what: string, match: (e: MonitorEvent) => e is T, o: { from?: number; timeoutMs: number }): Promise<{ event: T; index: number }> {
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      for (let i = o.from ?? 0; i < this.events.length; i++) {
        const e = this.events[i];
        if (e !== undefined && match(e)) return { event: e, index: i };
      }
      if (this.#exit !== undefined) assert.fail(`the monitor exited (${this.#exit}) before ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) assert.fail(`no ${what} within ${sec(o.timeoutMs)}:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Events from index `from` on that match. */
  all<T extends MonitorEvent>(match: (e: MonitorEvent) => e is T, from = 0): T[] {
    return this.events.slice(from).filter(match);
  }

  /** Sends a signal (the first SIGINT or SIGTERM asks the monitor to stop). */
  signal(name: NodeJS.Signals): void {
    this.#child.kill(name);
  }

  /** Waits for the process to exit by itself; resolves with the exit code. */
  async exit(timeoutMs: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still running"), timeoutMs)));
    try {
      return await Promise.race([this.#exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, as systemd stops it; resolves with the exit code. */
  async stop(): Promise<string> {
    if (this.#exit === undefined) this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 60_000);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A local endpoint for the monitor's `json` webhook: the bodies it received. */
async function startHookServer(): Promise<{ url: string; bodies: Array<Record<string, unknown>>; server: Server }> {
  const bodies: Array<Record<string, unknown>> = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (text += d));
    req.on("end", () => {
      try {
        bodies.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        bodies.push({ unparsable: text });
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { url: `http://127.0.0.1:${address.port}/hook`, bodies, server };
}

void describe("[root][lxc][docker][pulumi] homelab monitor repairs services deployed on the lxc sandbox (Debian 13 with Compose v2, Debian 12 with Compose v1)", { timeout: 30 * 60_000 }, () => {
  let world: LxcWorld | undefined;
  let envText = "";
  const monitors: MonitorProcess[] = [];
  const w = (): LxcWorld => {
    assert.ok(world, "no world: before() failed");
    return world;
  };

  /** Sets the environment's `homelab:monitor` settings (the lines under it). */
  function monitorSettings(...lines: string[]): void {
    writeFileSync(w().envFile, `${envText}  homelab:monitor:\n${lines.map((l) => `    ${l}\n`).join("")}`);
  }

  /** Replaces the `monitoring:` section of a service. */
  function setMonitoring(service: string, yaml: string): void {
    w().edit(`services/${service}/service.yaml`, (t) => t.replace(/^monitoring:[\s\S]*$/m, yaml));
  }

  function startMonitor(...services: string[]): MonitorProcess {
    const m = new MonitorProcess(w(), services);
    monitors.push(m);
    return m;
  }

  /** Stops a monitor: it must exit 0 and have printed nothing but JSON events. */
  async function stopMonitor(m: MonitorProcess): Promise<void> {
    const code = await m.stop();
    assert.equal(code, "0", m.tail());
    assert.deepEqual(m.junk, []);
  }

  async function guest(address: string, script: string): Promise<string> {
    const r = await w().guest(address, script);
    assert.equal(r.code, 0, `in ${address}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  async function exists(address: string, file: string): Promise<boolean> {
    return (await w().guest(address, `test -e ${file}`)).code === 0;
  }

  /** Breaks a service's compose project in its container (the good file kept in /root/good-compose.yaml) and restarts it through its unit. */
  async function breakService(address: string, service: string): Promise<void> {
    const dir = `/opt/homelab/${service}`;
    const good = await guest(address, `cat ${dir}/docker-compose.yaml`);
    const bad = brokenCompose(good);
    await guest(address, `set -eu\ncp ${dir}/docker-compose.yaml /root/good-compose.yaml\ncat > ${dir}/docker-compose.yaml <<'EOF'\n${bad}EOF\nsystemctl restart homelab-${service}.service`);
    assert.equal(await guest(address, `cat ${dir}/docker-compose.yaml`), bad);
  }

  /** Waits until the page no longer serves `text` (the breakage took effect). */
  async function waitForBroken(url: string, text: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = await page(url);
      if (!(p?.status === 200 && p.body.includes(text))) return;
      if (Date.now() > deadline) assert.fail(`${url} still serves "${text}" 30 s after breaking it`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  before(async () => {
    world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-monitor-e2e-" });
    world.addHello("hello", HELLO_TEXT);
    world.addHello("guarded", GUARDED_TEXT, { version: "^12" });
    setMonitoring("hello", httpMonitoring(HELLO_TEXT));
    setMonitoring("guarded", httpMonitoring(GUARDED_TEXT));
    // Its container holds data: the monitor must never recreate it (and destroy refuses it).
    world.edit("services/guarded/service.yaml", (t) => t.replace(/^( +)type: proxmox:container$/m, "$1type: proxmox:container\n$1protect: true"));
    await world.start();
    envText = readFileSync(world.envFile, "utf8");
    assert.doesNotMatch(envText, /homelab:monitor/);
    await world.deploy("hello", "guarded");
    await waitForPage(`http://${(await world.container("hello")).address}/`, HELLO_TEXT, 60_000);
    await waitForPage(`http://${(await world.container("guarded")).address}/`, GUARDED_TEXT, 60_000);
    // The two releases and Composes the cases below run on.
    const hello = await world.guestDocker((await world.container("hello")).address, "hello");
    assert.equal(hello.codename, "trixie");
    assert.match(hello.compose, /^2\./);
    const guarded = await world.guestDocker((await world.container("guarded")).address, "guarded");
    assert.equal(guarded.codename, "bookworm");
    assert.match(guarded.compose, /^1\.29\./);
    world.figures.push(`hello: Debian 13, Compose ${hello.compose}; guarded: Debian 12, Compose ${guarded.compose}`);
  });

  after(async () => {
    for (const m of monitors) await m.stop();
    if (!world) return;
    if (world.figures.length > 0) console.log(`monitor e2e figures:\n  ${world.figures.join("\n  ")}`);
    await world.close();
  });

  void it("--once after the deploy: every check passes, exit 0", async () => {
    const r = await w().homelab("--env", "sandbox", "monitor", "--once");
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^all healthy$/m);
    assert.match(r.stdout, /healthy {2}guarded$/m);
    assert.match(r.stdout, /healthy {2}hello$/m);
  });

  void it("a stopped compose project: unhealthy after interval × retries, restarted through its unit, the page answers again", async () => {
    monitorSettings(`backoff: ${BACKOFF}`);
    const c = await w().container("hello");
    const url = `http://${c.address}/`;
    const m = startMonitor("hello");
    const up = await m.next("hello healthy at start", isState("hello", "healthy", "unknown"), { timeoutMs: 60_000 });

    const stopped = Date.now();
    await guest(c.address, "systemctl stop homelab-hello.service");
    assert.equal(await page(url), undefined, "the page still answers after the unit stopped");

    const failed = await m.next("a failed check", (e): e is CheckEvent => isCheck("hello")(e) && !e.ok, { from: up.index, timeoutMs: 30_000 });
    assert.match(failed.event.detail, /connection refused|timed out/);
    const unhealthy = await m.next("hello unhealthy", isState("hello", "unhealthy"), { from: up.index, timeoutMs: 30_000 });
    assert.match(unhealthy.event.reason, new RegExp(`check 1 failed ${RETRIES}/${RETRIES}`));
    const start = await m.next("the restart", isAction("hello", "restart", "start"), { from: unhealthy.index, timeoutMs: 10_000 });
    const done = await m.next("the restart's end", isAction("hello", "restart", "ok"), { from: start.index, timeoutMs: 120_000 });
    assert.match(done.event.detail, new RegExp(`restarted hello on ${c.address.replace(/\./g, "\\.")}; it runs`));
    await waitForPage(url, HELLO_TEXT, 60_000);
    const answered = Date.now();
    const healthy = await m.next("hello healthy again", isState("hello", "healthy", "grace"), { from: done.index, timeoutMs: 30_000 });
    assert.equal(healthy.event.reason, "healthy again after the restart");

    // Detection within interval × retries (plus one check's timeout); the page answers once the restart is done.
    const detectMs = at(unhealthy.event) - stopped;
    const restartMs = at(done.event) - at(start.event);
    assert.ok(detectMs <= (INTERVAL * RETRIES + TIMEOUT + 1) * 1000, `unhealthy ${sec(detectMs)} after the stop`);
    assert.ok(answered - stopped <= (INTERVAL * RETRIES + TIMEOUT + 1) * 1000 + restartMs + 3000, `the page answered ${sec(answered - stopped)} after the stop (restart took ${sec(restartMs)})`);
    assert.deepEqual(
      m.all(isAction("hello", undefined, "start")).map((e) => e.action),
      ["restart"],
    );
    assert.equal((await w().container("hello")).vmid, c.vmid);
    w().figures.push(
      `stop → unhealthy: ${sec(detectMs)}; restart (systemctl restart + wait): ${sec(restartMs)}; stop → page answers: ${sec(answered - stopped)}; stop → healthy event: ${sec(at(healthy.event) - stopped)}`,
    );

    // What `homelab status` will read: the current view on disk.
    const view = (await readMonitorState(w().repo, "sandbox"))?.services.find((s) => s.service === "hello");
    assert.equal(view?.phase, "healthy");
    assert.equal(view.lastRemediation?.action, "restart");
    assert.equal(view.lastRemediation.outcome, "ok");
    await stopMonitor(m);
  });

  void it("a project a restart does not fix: restarted, still unhealthy after grace, recreated through the engine; the page answers from a new container", async () => {
    monitorSettings(`backoff: ${BACKOFF}`);
    const before = await w().container("hello");
    const url = `http://${before.address}/`;
    await guest(before.address, "touch /root/monitor-e2e-marker");
    const m = startMonitor("hello");
    const up = await m.next("hello healthy at start", isState("hello", "healthy", "unknown"), { timeoutMs: 60_000 });

    const broken = Date.now();
    await breakService(before.address, "hello");
    await waitForBroken(url, HELLO_TEXT);

    const unhealthy = await m.next("hello unhealthy", isState("hello", "unhealthy"), { from: up.index, timeoutMs: 30_000 });
    const restart = await m.next("the restart", isAction("hello", "restart", "start"), { from: unhealthy.index, timeoutMs: 10_000 });
    const restarted = await m.next("the restart's end", isAction("hello", "restart", "ok"), { from: restart.index, timeoutMs: 120_000 });
    const recreate = await m.next("the recreate", isAction("hello", "recreate", "start"), { from: restarted.index, timeoutMs: 60_000 });
    assert.match(recreate.event.detail, new RegExp(`still unhealthy ${GRACE} s after the restart`));
    // Grace was kept: the verdict came from checks after it.
    assert.ok(at(recreate.event) - at(restarted.event) >= GRACE * 1000, `recreate ${sec(at(recreate.event) - at(restarted.event))} after the restart ended`);
    const recreated = await m.next("the recreate's end", isActionEnd("hello", "recreate"), { from: recreate.index, timeoutMs: 10 * 60_000 });
    assert.equal(recreated.event.phase, "ok", m.tail());
    assert.equal(recreated.event.detail, "destroyed and redeployed hello");
    const healthy = await m.next("hello healthy again", isState("hello", "healthy", "grace"), { from: recreated.index, timeoutMs: 60_000 });
    assert.equal(healthy.event.reason, "healthy again after the recreate");
    assert.deepEqual(
      m.all(isAction("hello", undefined, "failed")).map((e) => e.detail),
      [],
    );

    // A new container from the repository's files: the marker is gone, the good compose file (with its health check) is back.
    const now = await w().container("hello");
    await waitForPage(`http://${now.address}/`, HELLO_TEXT, 60_000);
    assert.equal(await exists(now.address, "/root/monitor-e2e-marker"), false, "the marker survived: the container was not recreated");
    assert.match(await guest(now.address, "cat /opt/homelab/hello/docker-compose.yaml"), /healthcheck:/);
    const cts = (await w().admin.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc");
    assert.ok(cts.some((r) => r.vmid === now.vmid));
    if (now.vmid !== before.vmid) assert.ok(!cts.some((r) => r.vmid === before.vmid), `the old CT ${before.vmid} is still there`);
    w().figures.push(
      `broken compose → unhealthy: ${sec(at(unhealthy.event) - broken)}; restart: ${sec(at(restarted.event) - at(restart.event))}; grace → recreate started: ${sec(at(recreate.event) - at(restarted.event))}; recreate (destroy + deploy, Docker installed afresh): ${sec(at(recreated.event) - at(recreate.event))}; broken → healthy: ${sec(at(healthy.event) - broken)}; vmid ${before.vmid} → ${now.vmid}, address ${before.address} → ${now.address}`,
    );
    await stopMonitor(m);
  });

  void it("a protected service a restart does not fix: restarted once, then a human is needed; never destroyed; healthy again once a human fixes it", async () => {
    const hook = await startHookServer();
    try {
      monitorSettings(`backoff: ${BACKOFF}`, "webhook:", "  kind: json", `  url: ${hook.url}`);
      const before = await w().container("guarded");
      const url = `http://${before.address}/`;
      await guest(before.address, "touch /root/monitor-e2e-marker");
      const m = startMonitor("guarded");
      const up = await m.next("guarded healthy at start", isState("guarded", "healthy", "unknown"), { timeoutMs: 60_000 });

      const broken = Date.now();
      await breakService(before.address, "guarded");
      await waitForBroken(url, GUARDED_TEXT);
      const restart = await m.next("the restart", isAction("guarded", "restart", "start"), { from: up.index, timeoutMs: 30_000 });
      const restarted = await m.next("the restart's end", isAction("guarded", "restart", "ok"), { from: restart.index, timeoutMs: 120_000 });
      const human = await m.next("needs_human", isState("guarded", "needs_human"), { from: restarted.index, timeoutMs: 60_000 });
      assert.equal(human.event.from, "grace");
      assert.match(human.event.reason, new RegExp(`still unhealthy ${GRACE} s after the restart; a resource is protect: true, so it is never recreated \\(data lives there\\): a human is needed`));

      // It stays there: more failing checks, no further remedy.
      let seen = human.index;
      for (let i = 0; i < 4; i++) seen = (await m.next(`failing check ${i + 1} after needs_human`, isCheck("guarded"), { from: seen + 1, timeoutMs: 30_000 })).index;
      assert.ok(m.all(isCheck("guarded"), human.index).every((e) => !e.ok), m.tail());
      assert.deepEqual(
        m.all(isAction("guarded", undefined, "start")).map((e) => e.action),
        ["restart"],
      );
      assert.deepEqual(m.all(isState("guarded", "recreating")), []);
      assert.equal(m.all(isState("guarded", "needs_human")).length, 1);

      // Same container, still there, its files untouched.
      const now = await w().container("guarded");
      assert.equal(now.vmid, before.vmid);
      const cts = (await w().admin.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc");
      assert.ok(cts.some((r) => r.vmid === before.vmid), `CT ${before.vmid} is gone`);
      assert.equal(await exists(before.address, "/root/monitor-e2e-marker"), true);

      // --once agrees (and repairs nothing).
      const once = await w().homelab("--env", "sandbox", "monitor", "guarded", "--once");
      assert.equal(once.code, 1, `${once.stdout}\n${once.stderr}`);
      assert.match(once.stdout, /UNHEALTHY {2}guarded: http http:\/\/\{address\}:80\/: status 404/);

      // The webhook was told, with the event.
      const deadline = Date.now() + 15_000;
      while (!hook.bodies.some((b) => b["to"] === "needs_human") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const told = hook.bodies.find((b) => b["to"] === "needs_human");
      assert.ok(told, JSON.stringify(hook.bodies));
      assert.equal(told["source"], "homelab-monitor");
      assert.equal(told["environment"], "sandbox");
      assert.equal(told["service"], "guarded");
      assert.ok(hook.bodies.some((b) => b["to"] === "unhealthy"), JSON.stringify(hook.bodies.map((b) => b["to"])));

      // A human fixes it: the monitor sees it healthy again by itself.
      const fixed = Date.now();
      await guest(before.address, "cp /root/good-compose.yaml /opt/homelab/guarded/docker-compose.yaml && systemctl restart homelab-guarded.service");
      const healthy = await m.next("guarded healthy after the fix", isState("guarded", "healthy", "needs_human"), { from: human.index, timeoutMs: 60_000 });
      assert.equal(healthy.event.reason, "every check passes again");
      await waitForPage(url, GUARDED_TEXT, 30_000);
      assert.equal(m.all(isAction("guarded", undefined, "start")).length, 1);
      w().figures.push(
        `protected: broken → restart: ${sec(at(restart.event) - broken)}; restart: ${sec(at(restarted.event) - at(restart.event))}; → needs_human: ${sec(at(human.event) - broken)}; human fix → healthy: ${sec(at(healthy.event) - fixed)}; 1 remedy, same vmid ${now.vmid}`,
      );
      await stopMonitor(m);
    } finally {
      await new Promise((r) => hook.server.close(r));
    }
  });

  void it("SIGINT to the monitor during a recreate (restart_first: false): it stops once the recreate is done, not halfway", async () => {
    monitorSettings(`backoff: ${BACKOFF}`);
    setMonitoring("hello", httpMonitoring(HELLO_TEXT, { restartFirst: false }));
    const before = await w().container("hello");
    await guest(before.address, "touch /root/monitor-e2e-marker");
    const m = startMonitor("hello");
    const up = await m.next("hello healthy at start", isState("hello", "healthy", "unknown"), { timeoutMs: 60_000 });
    await breakService(before.address, "hello");
    const recreate = await m.next("the recreate", isAction("hello", "recreate", "start"), { from: up.index, timeoutMs: 30_000 });
    assert.deepEqual(
      m.all(isAction("hello", "restart", "start")),
      [],
    );
    // Once the old container is gone, the recreate is deploying the service again: interrupt it there.
    const deadline = Date.now() + 5 * 60_000;
    while ((await w().guest(before.address, "test -e /root/monitor-e2e-marker", { connectTimeoutMs: 3000 }).catch(() => undefined))?.code === 0) {
      assert.ok(Date.now() < deadline, `the old container of hello is still there 5 min after the recreate started:\n${m.tail()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const interrupted = Date.now();
    m.signal("SIGINT");
    const stopping = await m.next("the monitor stopping", (e): e is NoteEvent => e.type === "monitor" && e.message === "stopping (SIGINT)", { from: recreate.index, timeoutMs: 10_000 });
    const done = await m.next("the recreate's end", isActionEnd("hello", "recreate"), { from: recreate.index, timeoutMs: 10 * 60_000 });
    assert.equal(done.event.phase, "ok", m.tail());
    assert.equal(await m.exit(30_000), "0", m.tail());
    assert.ok(at(stopping.event) <= at(done.event));
    // The view left on disk says how the recreate ended.
    const view = (await readMonitorState(w().repo, "sandbox"))?.services.find((s) => s.service === "hello");
    assert.equal(view?.lastRemediation?.action, "recreate");
    assert.equal(view.lastRemediation.outcome, "ok");
    assert.equal(m.all(isAction("hello", undefined, "start")).length, 1, m.tail());
    const now = await w().container("hello");
    await waitForPage(`http://${now.address}/`, HELLO_TEXT, 60_000);
    assert.equal(await exists(now.address, "/root/monitor-e2e-marker"), false);
    w().figures.push(`SIGINT ${sec(interrupted - at(recreate.event))} into a recreate: stopping at once (${sec(at(stopping.event) - interrupted)}), exit 0 after the recreate ended ${sec(at(done.event) - interrupted)} later`);
    assert.deepEqual(m.junk, []);
  });

  void it("a flapping check: remedies at most max_remediations_per_hour, spaced by the backoff, then it gives up", async () => {
    monitorSettings(`backoff: ${FLAP_BACKOFF}`);
    setMonitoring("hello", FLAP_MONITORING);
    const c = await w().container("hello");
    await guest(c.address, "rm -f /root/flap-count");
    const started = Date.now();
    const m = startMonitor("hello");
    const gaveUp = await m.next("gave_up", isState("hello", "gave_up"), { timeoutMs: 5 * 60_000 });
    assert.match(gaveUp.event.reason, new RegExp(`${FLAP_MAX_PER_HOUR} remediation\\(s\\) in the last hour, the limit is ${FLAP_MAX_PER_HOUR}.*a human is needed`));
    // Two more incidents after it: still no remedy.
    const back = await m.next("healthy after giving up", isState("hello", "healthy"), { from: gaveUp.index, timeoutMs: 60_000 });
    const again = await m.next("gave_up again", isState("hello", "gave_up"), { from: back.index, timeoutMs: 60_000 });
    await m.next("healthy again", isState("hello", "healthy"), { from: again.index, timeoutMs: 60_000 });
    const ranMs = Date.now() - started;
    await stopMonitor(m);

    const checks = m.all(isCheck("hello"));
    const starts = m.all(isAction("hello", undefined, "start"));
    const incidents = m.all(isState("hello", "unhealthy"));
    assert.ok(checks.some((e) => e.ok) && checks.some((e) => !e.ok), "the check did not flap");
    assert.ok(starts.length <= FLAP_MAX_PER_HOUR, `${starts.length} remedies: ${starts.map((e) => `${e.action} at ${e.at}`).join(", ")}`);
    assert.equal(starts.length, FLAP_MAX_PER_HOUR, "gave up before reaching the limit");
    assert.ok(incidents.length > starts.length, `${incidents.length} incidents, ${starts.length} remedies`);
    // The k-th remedy in the hour waits backoff × 2^(k-2) after the one before.
    for (let k = 1; k < starts.length; k++) {
      const gap = at(starts[k] as ActionEvent) - at(starts[k - 1] as ActionEvent);
      assert.ok(gap >= FLAP_BACKOFF * 2 ** (k - 1) * 1000, `remedy ${k + 1} came ${sec(gap)} after remedy ${k}`);
    }
    assert.ok(m.all(isState("hello", "backoff")).length > 0, "the backoff never held a remedy back");
    assert.deepEqual(
      m.all(isAction("hello", undefined, "ok")).map((e) => e.action),
      starts.map((e) => e.action),
    );
    w().figures.push(
      `flapping (1 run in 3 passes, interval 3 s, retries 2, backoff ${FLAP_BACKOFF} s, limit ${FLAP_MAX_PER_HOUR}/h) for ${sec(ranMs)}: ${checks.length} checks, ${incidents.length} incidents, ${starts.length} remedies (${starts.map((e) => e.action).join(", ")}) at +${starts.map((e) => sec(at(e) - at(starts[0] as ActionEvent))).join(", +")}, ${m.all(isState("hello", "backoff")).length} backoff(s), ${m.all(isState("hello", "gave_up")).length} gave_up, ${m.all((e): e is StateEvent => e.type === "state" && e.service === "hello" && notifiable(e)).length} state changes a webhook would be sent`,
    );
  });
});
