/**
 * The status page in a real browser: headless Chromium (Debian's) driven by
 * playwright-core, against `homelab monitor --listen` on the lxc sandbox
 * with real services (hello copies deployed with `homelab deploy`: real LXC
 * guests, Docker Compose inside, the real Pulumi engine). The monitor
 * listens on the host's address on the sandbox bridge, so the page needs
 * its token: the browser signs in through the form. Then: every service is
 * shown (deployed, never deployed), with placement, last deploy, the
 * pending change a `deploy --dry-run` recorded, and the nodes with their
 * guests; a compose project stopped inside its guest turns its card red
 * with the reason, live (server-sent events, no reload), and green again
 * after the repair; a service the monitor repairs itself goes through
 * remediating and shows the restart in its history; `homelab status
 * --json` says what the page's model says; no secret reaches the page.
 * Screenshots (1280 and 390 px wide, light and dark) are saved in
 * test-artifacts/status-page/.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { request } from "undici";
import type { MonitorEvent } from "../../src/monitor/events.ts";
import type { StatusModel } from "../../src/status/model.ts";
import { launchChromium } from "../helpers/chromium.ts";
import type { Chromium } from "../helpers/chromium.ts";
import { REPO } from "./helpers.ts";
import { LxcWorld, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hlweb0";
const SUBNET = "10.87.88.0/24";
/** Where the screenshots go (CI keeps the folder). */
export const SHOTS = join(REPO, "test-artifacts", "status-page");
const SECRET = `hello-api-key-${randomBytes(6).toString("hex")}`;
const TOKEN = randomBytes(24).toString("base64url");
const HELLO_TEXT = "Hello from homelab";
const SECOND_TEXT = "Hello from the second one";
const INTERVAL = 2;

const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function monitoring(text: string, autoRemediate: boolean): string {
  return [
    "monitoring:",
    "  health_checks:",
    "    - type: http",
    "      url: http://{address}:80/",
    `      expect_body: ${text}`,
    `      interval: ${INTERVAL}`,
    "      timeout: 1",
    "      retries: 2",
    `  auto_remediate: ${autoRemediate}`,
    "  restart_first: true",
    "  max_remediations_per_hour: 3",
    "  grace_period: 3",
    "",
  ].join("\n");
}

/** `homelab monitor --json --listen ...` as a child process; its events collected. */
class MonitorProcess {
  readonly events: MonitorEvent[] = [];
  stderr = "";
  readonly #child: ChildProcess;
  readonly #exited: Promise<string>;
  constructor(world: LxcWorld, args: string[]) {
    this.#child = world.spawn("--env", "sandbox", "monitor", "--json", ...args);
    let buffer = "";
    this.#child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      buffer += d;
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.trim() !== "") this.events.push(JSON.parse(line) as MonitorEvent);
      }
    });
    this.#child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    this.#exited = new Promise((resolve) => this.#child.on("exit", (code, signal) => resolve(code !== null ? String(code) : `signal ${signal ?? "?"}`)));
  }
  /** The page's URL, from the monitor's own note. */
  async url(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const e of this.events) {
        const m = e.type === "monitor" ? /serving the status page at (http:\/\/\S+?)\/,/.exec(e.message) : null;
        if (m?.[1]) return m[1];
      }
      if (Date.now() > deadline) assert.fail(`the monitor did not serve its page within ${sec(timeoutMs)}: ${this.stderr}\n${JSON.stringify(this.events.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async stop(): Promise<string> {
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 60_000);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

void describe("[root][lxc][docker][pulumi][chromium] the status page in a real browser against a monitor on the lxc sandbox", { timeout: 30 * 60_000 }, () => {
  let world: LxcWorld | undefined;
  let monitor: MonitorProcess | undefined;
  let browser: Chromium | undefined;
  let page: Page | undefined;
  let url = "";
  /** Every body the page served that the test saw (checked for the secret at the end). */
  const seen: string[] = [];
  const w = (): LxcWorld => world ?? assert.fail("no world: before() failed");
  const p = (): Page => page ?? assert.fail("no page: the sign-in failed");

  async function guest(address: string, script: string): Promise<string> {
    const r = await w().guest(address, script);
    assert.equal(r.code, 0, `in ${address}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** Four screenshots of the page as it is now: 1280 and 390 px wide, light and dark. */
  async function screenshots(state: string): Promise<void> {
    const pg = p();
    for (const [width, height, device] of [
      [1280, 900, "desktop"],
      [390, 844, "phone"],
    ] as const) {
      await pg.setViewportSize({ width, height });
      for (const scheme of ["light", "dark"] as const) {
        await pg.emulateMedia({ colorScheme: scheme });
        const file = join(SHOTS, `${state}-${device}-${scheme}.png`);
        await pg.screenshot({ path: file, fullPage: true });
        w().figures.push(`screenshot ${relative(REPO, file)}`);
      }
    }
    await pg.setViewportSize({ width: 1280, height: 900 });
    await pg.emulateMedia({ colorScheme: "light" });
    seen.push(await pg.content());
  }

  /** Waits until a card shows a level, on the page as it is (live updates only). */
  async function waitLevel(service: string, level: string, timeoutMs: number): Promise<number> {
    const t = Date.now();
    await p().waitForSelector(`#svc-${service}[data-level="${level}"]`, { timeout: timeoutMs });
    return Date.now() - t;
  }

  async function api(path: string): Promise<string> {
    const r = await request(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = await r.body.text();
    assert.equal(r.statusCode, 200, `${path}: ${body}`);
    seen.push(body);
    return body;
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-status-page-e2e-" });
    world.addHello("hello", HELLO_TEXT);
    world.addHello("second", SECOND_TEXT);
    world.addHello("idle", "never deployed");
    for (const [name, text, auto] of [
      ["hello", HELLO_TEXT, false],
      ["second", SECOND_TEXT, true],
      ["idle", "never deployed", false],
    ] as const) {
      world.edit(`services/${name}/service.yaml`, (t) => t.replace(/^monitoring:[\s\S]*$/m, monitoring(text, auto)));
    }
    // A secret of hello's: it reaches the guest, never the page.
    writeFileSync(join(world.repo, "services", "hello", ".secrets.example.yaml"), "api_key: the API key of hello\n");
    writeFileSync(join(world.repo, "services", "hello", ".secrets.yaml"), `api_key: ${SECRET}\n`, { mode: 0o600 });
    await world.start();
    const tokenFile = join(world.repo, ".homelab", "page-token");
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(world.envFile, `${readFileSync(world.envFile, "utf8")}  homelab:monitor:\n    backoff: 1\n    token_file: ${tokenFile}\n`);
    await world.deploy("hello", "second");
    const hello = await world.container("hello");
    await waitForPage(`http://${hello.address}/`, HELLO_TEXT, 60_000);
    await waitForPage(`http://${(await world.container("second")).address}/`, SECOND_TEXT, 60_000);
    assert.match(await guest(hello.address, "cat /opt/homelab/hello/secrets.env"), new RegExp(SECRET), "the secret is deployed, so its absence from the page means something");
    // A preview recorded before the monitor starts: a change waiting to be applied.
    world.edit("services/hello/service.yaml", (t) => t.replace(/memory: 512/, "memory: 640"));
    const preview = await world.homelab("--env", "sandbox", "deploy", "hello", "--dry-run");
    assert.equal(preview.code, 0, preview.stderr);
    monitor = new MonitorProcess(world, ["--listen", `${world.hostAddress}:0`]);
    url = await monitor.url(60_000);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    if (monitor) assert.equal(await monitor.stop(), "0", monitor.stderr);
    if (!world) return;
    if (world.figures.length > 0) console.log(`status page e2e figures:\n  ${world.figures.join("\n  ")}`);
    await world.close();
  });

  void it("signs in with the token; shows every service, placement, last deploy, the pending change, the nodes; loads fast", async () => {
    const pg = await (browser ?? assert.fail("no browser")).context.newPage();
    const first = await pg.goto(`${url}/`);
    assert.equal(first?.status(), 401);
    assert.ok(!(await pg.content()).includes("hello"), "nothing about the services before signing in");
    await pg.fill("#token", TOKEN);
    await Promise.all([pg.waitForURL(`${url}/`), pg.click("button[type=submit]")]);
    page = pg;
    await pg.waitForSelector("#live.on", { timeout: 10_000 });
    const upMs = await waitLevel("hello", "healthy", 30_000);
    await waitLevel("second", "healthy", 30_000);
    w().figures.push(`hello green in the browser ${sec(upMs)} after signing in`);
    assert.equal(await pg.getAttribute("#svc-idle", "data-level"), "never_deployed");
    const hello = await w().container("hello");
    const card = (await pg.textContent("#svc-hello")) ?? "";
    // hello asks for *debian* >=12: Debian 13, as on a Proxmox VE 9 cluster.
    assert.match(card, new RegExp(`${hello.node} · CT ${hello.vmid} · ${hello.address.replace(/\./g, "\\.")} · debian-13-standard_13\\.1-2`));
    assert.match(card, /Deployed.*ago · update succeeded · .*hello_container created/);
    assert.match(card, /Pending.*hello_container: update — memory 512 → 640/);
    assert.equal(await pg.getAttribute(`#svc-hello a[href="http://${hello.address}/"]`, "target"), "_blank");
    const nodes = (await pg.textContent("#nodes")) ?? "";
    for (const n of ["pve-01", "pve-02", "pve-03"]) assert.match(nodes, new RegExp(n));
    assert.match(nodes, new RegExp(`CT ${hello.vmid} hello-container hello running`));
    assert.match(nodes, /GiB used.*GiB free/);
    // Page load, fresh from the server (the assets are cached, as for a returning visitor).
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      await pg.reload({ waitUntil: "load" });
      loads.push(await pg.evaluate<number>(`performance.getEntriesByType("navigation")[0].loadEventEnd`));
    }
    loads.sort((a, b) => a - b);
    w().figures.push(`page load (navigation to load event, 3 services, 5 reloads): median ${loads[2]?.toFixed(0)} ms, max ${loads[4]?.toFixed(0)} ms`);
    await pg.waitForSelector("#live.on", { timeout: 10_000 });
    await screenshots("healthy");
  });

  void it("a compose project stopped in its guest: red with the reason, live; green after the repair", async () => {
    const pg = p();
    const hello = await w().container("hello");
    const version = await pg.getAttribute('meta[name="homelab-stream"]', "content");
    await guest(hello.address, "systemctl stop homelab-hello.service");
    const broke = Date.now();
    const redMs = await waitLevel("hello", "unhealthy", 3 * INTERVAL * 1000 + 10_000);
    w().figures.push(`break → red in the browser: ${sec(Date.now() - broke)} (checks every ${INTERVAL} s)`);
    assert.ok(redMs >= 0);
    const why = (await pg.textContent("#svc-hello .why")) ?? "";
    assert.match(why, /http http:\/\/\{address\}:80\/: (connection refused|timed out after 1 s)/);
    assert.match((await pg.textContent("#summary")) ?? "", /Needs attention: hello/);
    // No reload happened: the same page, updated over the stream.
    assert.equal(await pg.getAttribute('meta[name="homelab-stream"]', "content"), version);
    assert.ok(Number(await pg.getAttribute("html", "data-version")) > Number(version?.split(":")[1]));
    await screenshots("broken");
    await guest(hello.address, "systemctl start homelab-hello.service");
    const repaired = Date.now();
    await waitLevel("hello", "healthy", 60_000);
    w().figures.push(`repair → green in the browser: ${sec(Date.now() - repaired)}`);
    assert.doesNotMatch((await pg.textContent("#summary")) ?? "", /Needs attention/);
  });

  void it("a service the monitor repairs: red, remediating, green, the restart in its history", async () => {
    const pg = p();
    const second = await w().container("second");
    await guest(second.address, "systemctl stop homelab-second.service");
    const broke = Date.now();
    await waitLevel("second", "unhealthy", 20_000);
    const remediatingMs = await waitLevel("second", "remediating", 30_000);
    w().figures.push(`second: red ${sec(Date.now() - broke - remediatingMs)} after the stop, remediating ${sec(remediatingMs)} later`);
    await waitLevel("second", "healthy", 60_000);
    w().figures.push(`second: stop → green again (restart by the monitor, grace 3 s): ${sec(Date.now() - broke)}`);
    await pg.click("#svc-second details.history summary");
    const history = (await pg.textContent("#svc-second details.history")) ?? "";
    assert.match(history, /restart done: restarted second on /);
    assert.match(history, /restart started: check 1 failed 2\/2/);
    assert.match(history, /healthy: healthy again after the restart/);
    // The card is replaced by the next live update (response times at least every 60 s); the history stays open.
    await pg.evaluate(`document.querySelector("#svc-second").setAttribute("data-seen", "1")`);
    await pg.waitForSelector("#svc-second:not([data-seen])", { timeout: 75_000 });
    assert.equal(await pg.getAttribute("#svc-second details.history", "open"), "", "the history stays open across live updates");
    await screenshots("repaired");
  });

  void it("homelab status --json and the page's model say the same; no secret and no token anywhere", async () => {
    const model = JSON.parse(await api("/api/status")) as StatusModel;
    const status = await w().homelab("--env", "sandbox", "status", "--json");
    assert.equal(status.code, 0, status.stderr);
    const cli = JSON.parse(status.stdout) as StatusModel;
    const pick = (m: StatusModel) => m.services.map((s) => ({ service: s.service, level: s.level, state: s.state, placement: s.placement, links: s.links, lastDeploy: s.lastDeploy, pending: s.pending, checks: s.checks.map((c) => c.label) }));
    assert.deepEqual(pick(cli), pick(model));
    assert.deepEqual(cli.services.map((s) => s.level), ["healthy", "never_deployed", "healthy"]);
    assert.equal(cli.monitor.running, true, "status sees the monitor that wrote the state file");
    assert.ok((model.services.find((s) => s.service === "second")?.remediation.recent.length ?? 0) >= 3);
    await api("/healthz");
    await api("/metrics");
    await api("/");
    seen.push(await p().content());
    for (const body of seen) {
      assert.ok(!body.includes(SECRET), "a secret reached the page");
      assert.ok(!body.includes(TOKEN), "the token reached the page");
    }
    assert.ok(!status.stdout.includes(SECRET));
  });
});
