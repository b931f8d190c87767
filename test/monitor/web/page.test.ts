/**
 * The status page through `homelab monitor --listen` (runMonitor, the real
 * checks against local HTTP servers, the real clock, fixed targets instead
 * of a deployment): the page lists every service, live updates arrive over
 * server-sent events when a check fails and passes again, /api/status is the
 * model, no secret is in any answer, and the address rules hold.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { runMonitor } from "../../../src/cli/commands/monitor.ts";
import { makeContext } from "../../../src/cli/context.ts";
import type { CliContext } from "../../../src/cli/context.ts";
import { EXIT } from "../../../src/cli/exit-codes.ts";
import type { Remediator } from "../../../src/monitor/actions.ts";
import { StaticTargets } from "../../../src/monitor/targets.ts";
import type { StatusSources } from "../../../src/monitor/web/index.ts";
import { targetsDeployment } from "../../../src/monitor/web/index.ts";
import type { StatusModel } from "../../../src/status/model.ts";
import { recordPreviews } from "../../../src/status/previews.ts";
import { makeRepo } from "../../helpers/repo.ts";
import { startServer } from "../helpers.ts";
import type { TestServer } from "../helpers.ts";

const SECRET = "s3cret-value-never-shown-42";
const TOKEN = "a-token-for-the-page-0123456789";

function serviceYaml(name: string, url: string | undefined): string {
  return [
    `name: ${name}`,
    `description: the ${name} service`,
    "resources:",
    "  - id: web",
    "    type: proxmox:container",
    '    image: { name: "*debian*", version: ">=12" }',
    "    host: { tags: [tier:1] }",
    "    docker: { compose: true }",
    ...(url ? ["monitoring:", "  health_checks:", `    - { type: http, url: "${url}", interval: 2, timeout: 1, retries: 1 }`] : []),
    "",
  ].join("\n");
}

const noRemedy: Remediator = { restart: () => Promise.resolve("restarted"), recreate: () => Promise.resolve("recreated"), isDeploying: () => Promise.resolve({ deploying: false, detail: "" }) };

function capture(root: string): { ctx: CliContext; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const ctx = { ...makeContext({ dir: root, env: "test", color: false }, {}), stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) };
  return { ctx, out, err };
}

/** An event stream read as it comes. */
class Stream {
  text = "";
  readonly #abort = new AbortController();
  readonly done: Promise<void>;
  constructor(url: string, headers: Record<string, string>) {
    this.done = (async () => {
      const r = await request(url, { headers, signal: this.#abort.signal });
      assert.equal(r.statusCode, 200);
      assert.match(String(r.headers["content-type"]), /^text\/event-stream/);
      try {
        for await (const chunk of r.body) this.text += (chunk as Buffer).toString("utf8");
      } catch {
        // Aborted by close().
      }
    })();
  }
  /** The html events so far: fragment id, html, version. */
  events(): Array<{ id: string; html: string; version: number }> {
    return [...this.text.matchAll(/event: html\nid: (\d+)\ndata: (.*)\n\n/g)].map((m) => ({ ...(JSON.parse(m[2] ?? "{}") as { id: string; html: string }), version: Number(m[1]) }));
  }
  async waitFor(what: string, f: (e: { id: string; html: string; version: number }) => boolean, timeoutMs = 10_000): Promise<{ id: string; html: string; version: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events().find(f);
      if (hit) return hit;
      if (Date.now() > deadline) assert.fail(`no ${what} within ${timeoutMs} ms; stream:\n${this.text.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  async close(): Promise<void> {
    this.#abort.abort();
    await this.done.catch(() => undefined);
  }
}

void describe("the status page of homelab monitor --listen", () => {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  void it("shows every service, turns a card red with the reason and green again live, serves the model, and holds no secret", async () => {
    let healthy = true;
    const svc: TestServer = await startServer((_r, res) => (healthy ? res.writeHead(200).end("ok") : res.writeHead(503).end("down")));
    cleanups.push(() => svc.close());
    const repo = makeRepo({
      "services/web/service.yaml": serviceYaml("web", `http://{address}:${svc.port}/health`),
      "services/web/docker-compose.yaml": "services:\n  app:\n    image: nginx:1.27\n    environment: [API_KEY]\n",
      "services/web/.secrets.example.yaml": "api_key: the API key\n",
      "services/web/.secrets.yaml": `api_key: ${SECRET}\n`,
      "services/fresh/service.yaml": serviceYaml("fresh", `http://{address}:${svc.port}/`),
      "services/fresh/docker-compose.yaml": "services:\n  app:\n    image: nginx:1.27\n",
      "services/plain/service.yaml": serviceYaml("plain", undefined),
      "services/plain/docker-compose.yaml": "services:\n  app:\n    image: nginx:1.27\n",
    });
    cleanups.push(repo.cleanup);
    // A preview whose string input carries the secret: it must not reach the page.
    await recordPreviews(repo.root, "test", [{ service: "web", status: "pending", preview: [{ id: "web", type: "homelab:proxmox:Container", kind: "update", properties: [{ key: "memory", kind: "update", replaces: false, old: 512, new: 1024 }, { key: "env", kind: "update", replaces: false, old: "x", new: SECRET }] }] }]);
    const targets = new StaticTargets([
      { service: "web", deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] },
      { service: "plain", deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] },
    ]);
    const sources: StatusSources = {
      deployment: targetsDeployment(targets, "test", ["fresh", "plain", "web"]),
      nodes: { read: () => Promise.resolve({ nodes: [{ name: "pve-01", online: true, memTotal: 8 * 2 ** 30, memUsed: 3 * 2 ** 30, memFree: 5 * 2 ** 30, cpuCount: 4, cpuUsage: 0.2, cpuFree: 3.2 }], guests: [] }) },
    };
    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    let url = "";
    const c = capture(repo.root);
    let ended: number | undefined;
    const running = runMonitor(c.ctx, [], { listen: "127.0.0.1:0" }, { processEnv: { WEB_API_KEY: SECRET }, targets, remediator: noRemedy, signal: stop.signal, onListening: (u) => (url = u), statusSources: sources }).then((code) => (ended = code));
    while (url === "") {
      if (ended !== undefined) assert.fail(`the monitor ended (${ended}): ${c.err.join("")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const bodies: string[] = [];
    const fetchText = async (path: string): Promise<string> => {
      const r = await request(`${url}${path}`);
      const t = await r.body.text();
      bodies.push(t);
      assert.equal(r.statusCode, 200, `${path}: ${t}`);
      return t;
    };

    // The first verdicts.
    let model: StatusModel;
    for (;;) {
      model = JSON.parse(await fetchText("/api/status")) as StatusModel;
      if (model.services.find((s) => s.service === "web")?.level === "healthy" && model.deployment.read) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(model.services.map((s) => [s.service, s.level]), [["fresh", "never_deployed"], ["plain", "unmonitored"], ["web", "healthy"]]);
    assert.deepEqual(model.services.find((s) => s.service === "web")?.links, [`http://127.0.0.1:${svc.port}/`]);
    assert.deepEqual(model.services.find((s) => s.service === "web")?.pending?.changes[0]?.inputs, ["memory 512 → 1024", "env"]);
    assert.equal(model.nodes?.list[0]?.memFree, 5 * 2 ** 30);
    const page = await fetchText("/");
    for (const name of ["web", "fresh", "plain"]) assert.match(page, new RegExp(`<article class="card lvl-[a-z_]+" id="svc-${name}"`));
    assert.match(page, /<article class="card lvl-healthy" id="svc-web"/);
    assert.match(page, /<b>3\.0 GiB<\/b> used/);
    const css = /href="(assets\/style\.[0-9a-f]+\.css)"/.exec(page)?.[1];
    const js = /src="(assets\/app\.[0-9a-f]+\.js)"/.exec(page)?.[1];
    assert.ok(css && js);
    await fetchText(`/${css}`);
    await fetchText(`/${js}`);
    const [boot, version] = (/<meta name="homelab-stream" content="([0-9a-f]+):(\d+)">/.exec(page) ?? []).slice(1);
    assert.ok(boot && version);

    // Live: broken, then repaired.
    const stream = new Stream(`${url}/events?boot=${boot}&since=${version}`, {});
    cleanups.push(() => stream.close());
    healthy = false;
    const t0 = Date.now();
    const red = await stream.waitFor("red web card", (e) => e.id === "svc-web" && e.html.includes('data-level="unhealthy"'));
    const redMs = Date.now() - t0;
    assert.match(red.html, /<p class="why"><b>http http:\/\/\{address\}:\d+\/health<\/b>: status 503, expected 2xx\/3xx/);
    await stream.waitFor("summary saying so", (e) => e.id === "summary" && /Needs attention: <a href="#svc-web">web<\/a>/.test(e.html));
    healthy = true;
    const green = await stream.waitFor("green web card", (e) => e.id === "svc-web" && e.html.includes('data-level="healthy"') && e.version > red.version);
    assert.ok(green.version > red.version);
    // A page that reconnects gets only what it missed, and one from another run is told to reload.
    const resumed = new Stream(`${url}/events?boot=${boot}&since=${red.version}`, {});
    cleanups.push(() => resumed.close());
    await resumed.waitFor("the missed green card", (e) => e.id === "svc-web" && e.html.includes('data-level="healthy"'));
    assert.ok(resumed.events().every((e) => e.version > red.version));
    const stale = new Stream(`${url}/events?boot=other&since=1`, {});
    cleanups.push(() => stale.close());
    for (let i = 0; i < 100 && !stale.text.includes("event: reload"); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(stale.text, /event: reload/);
    console.log(`status page unit figures: check failing → red card on the stream ${redMs} ms (interval 2 s)`);

    // Nothing secret anywhere: the page, the model, the stream, the assets, /healthz, /metrics.
    await fetchText("/healthz");
    await fetchText("/metrics");
    await stream.close();
    for (const b of [...bodies, stream.text, resumed.text]) assert.ok(!b.includes(SECRET), "a secret reached the page");
    stop.abort();
    assert.equal(await running, EXIT.ok);
    assert.ok(!c.out.join("").includes(SECRET));
    assert.match(c.out.join(""), /serving the status page at http:\/\/127\.0\.0\.1:\d+\//);
  });

  void it("another address needs a token: refused without one, read from token_env, and then required even on loopback", async () => {
    const repo = makeRepo({ "services/web/service.yaml": serviceYaml("web", "http://{address}:1/"), "services/web/docker-compose.yaml": "services:\n  app:\n    image: nginx:1.27\n" });
    cleanups.push(repo.cleanup);
    const targets = new StaticTargets([{ service: "web", deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] }]);
    const statusSources: StatusSources = { deployment: targetsDeployment(targets, "test", ["web"]), nodes: undefined };
    const refused = capture(repo.root);
    assert.equal(await runMonitor(refused.ctx, [], { listen: "0.0.0.0:0" }, { processEnv: {}, targets, remediator: noRemedy, statusSources }), EXIT.failed);
    assert.match(refused.err.join(""), /cannot serve the status page on 0\.0\.0\.0:0: 0\.0\.0\.0 is not a loopback address, so the status page needs a token\n {2}hint: add token_file: .* or token_env: HOMELAB_MONITOR_TOKEN under homelab:monitor in /);

    writeFileSync(join(repo.root, "Pulumi.test.yaml"), "config:\n  homelab:tier1_hosts: [pve-01]\n  homelab:monitor:\n    token_env: PAGE_TOKEN\n");
    const unset = capture(repo.root);
    assert.equal(await runMonitor(unset.ctx, [], { listen: "0.0.0.0:0" }, { processEnv: {}, targets, remediator: noRemedy, statusSources }), EXIT.failed);
    assert.match(unset.err.join(""), /homelab:monitor token: token_env names PAGE_TOKEN, which is not set\n {2}hint: export PAGE_TOKEN/);

    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    let url = "";
    const c = capture(repo.root);
    let ended: number | undefined;
    const running = runMonitor(c.ctx, [], { listen: "127.0.0.1:0" }, { processEnv: { PAGE_TOKEN: TOKEN }, targets, remediator: noRemedy, statusSources, signal: stop.signal, onListening: (u) => (url = u) }).then((code) => (ended = code));
    while (url === "") {
      if (ended !== undefined) assert.fail(`the monitor ended (${ended}): ${c.err.join("")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await request(`${url}/api/status`)).statusCode, 401);
    const ok = await request(`${url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.statusCode, 200);
    assert.equal(((await ok.body.json()) as StatusModel).services[0]?.service, "web");
    stop.abort();
    assert.equal(await running, EXIT.ok);
    assert.ok(!c.out.join("").includes(TOKEN) && !c.err.join("").includes(TOKEN));
  });
});
