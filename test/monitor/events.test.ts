import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fanOut, formatEvent, HistoryFile, printer } from "../../src/monitor/events.ts";
import type { MonitorEvent, StateEvent } from "../../src/monitor/events.ts";
import { notifiable, safeUrl, webhookRequest, WebhookSender } from "../../src/monitor/webhook.ts";
import { healthLines, readMonitorState, StateFileWriter, stateFile } from "../../src/monitor/status.ts";
import type { MonitorStateFile } from "../../src/monitor/status.ts";
import { closedPort, startServer } from "./helpers.ts";
import type { TestServer } from "./helpers.ts";

const at = "2025-01-01T10:00:00.000Z";
const unhealthy: StateEvent = { type: "state", at, service: "peach", from: "failing", to: "unhealthy", reason: "check 1 failed 3/3" };
const recovered: StateEvent = { type: "state", at, service: "peach", from: "grace", to: "healthy", reason: "healthy again after the restart" };
const TOKEN = "AkVq8z-secret-token";

void describe("event lines", () => {
  void it("one readable line per event; JSON lines parse back to the event", () => {
    const events: MonitorEvent[] = [
      { type: "check", at, service: "peach", check: "http http://{address}:80/", index: 0, ok: false, latencyMs: 12.5, detail: "status 503, expected 2xx/3xx (13 ms)" },
      unhealthy,
      { type: "action", at, service: "peach", action: "restart", phase: "start", detail: "check 1 failed 3/3" },
      { type: "action", at, service: "peach", action: "recreate", phase: "failed", detail: "stack locked" },
      { type: "monitor", at, level: "warning", message: "webhook ntfy https://ntfy.lan/x failed: answered 500" },
    ];
    assert.deepEqual(events.map((e) => formatEvent(e)), [
      "2025-01-01T10:00:00Z peach check http http://{address}:80/: FAIL status 503, expected 2xx/3xx (13 ms)",
      "2025-01-01T10:00:00Z peach failing → unhealthy: check 1 failed 3/3",
      "2025-01-01T10:00:00Z peach restart started: check 1 failed 3/3",
      "2025-01-01T10:00:00Z peach recreate FAILED: stack locked",
      "2025-01-01T10:00:00Z monitor webhook ntfy https://ntfy.lan/x failed: answered 500",
    ]);
    const out: string[] = [];
    const sink = printer((s) => out.push(s), { json: true });
    for (const e of events) sink(e);
    assert.deepEqual(out.map((l) => JSON.parse(l) as unknown), events);
    assert.ok(out.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1));
  });

  void it("fanOut: a sink that throws does not stop the others", () => {
    const got: string[] = [];
    const errors: unknown[] = [];
    const sink = fanOut([() => { throw new Error("disk full"); }, (e) => got.push(e.type)], (e) => errors.push(e));
    sink(unhealthy);
    assert.deepEqual(got, ["state"]);
    assert.equal(errors.length, 1);
  });
});

void describe("history file", () => {
  void it("appends JSON lines, rotates at its size, keeps at most two files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-history-"));
    const file = join(dir, "monitor", "history.jsonl");
    const h = new HistoryFile(file, { maxBytes: 4096 });
    for (let i = 0; i < 500; i++) {
      h.sink({ ...unhealthy, reason: `event ${i}` });
      if (i % 50 === 0) await h.flush();
    }
    await h.flush();
    const size = statSync(file).size;
    assert.ok(size > 0 && size <= 4096, `size ${size}`);
    assert.ok(statSync(`${file}.1`).size <= 4096);
    assert.ok(!existsSync(`${file}.2`));
    const lines = readFileSync(file, "utf8").trim().split("\n");
    assert.equal((JSON.parse(lines.at(-1) ?? "{}") as StateEvent).reason, "event 499");
    assert.equal((statSync(file).mode & 0o777).toString(8), "600");
  });

  void it("a history that cannot be written is reported once and does not throw", async () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-history-"));
    writeFileSync(join(dir, "blocker"), "a file where a folder should be");
    const errors: unknown[] = [];
    const h = new HistoryFile(join(dir, "blocker", "history.jsonl"), { onError: (e) => errors.push(e) });
    h.sink(unhealthy);
    await h.flush();
    h.sink(unhealthy);
    await h.flush();
    assert.equal(errors.length, 1);
  });
});

void describe("webhooks (against a local server)", () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer((req, res) => {
      if (req.url.startsWith("/fail")) res.writeHead(500).end("no");
      else res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  after(() => srv.close());

  void it("ntfy: the text POSTed to the topic URL with Title, Priority and Tags headers", async () => {
    srv.seen.length = 0;
    const w = new WebhookSender({ kind: "ntfy", url: `${srv.url}/homelab-alerts`, token: TOKEN }, "prod", { onError: (m) => assert.fail(m) });
    w.notify(unhealthy);
    await w.flush();
    const r = srv.seen[0];
    assert.equal(r?.method, "POST");
    assert.equal(r?.url, "/homelab-alerts");
    assert.equal(r?.headers["title"], "peach: unhealthy (prod)");
    assert.equal(r?.headers["priority"], "4");
    assert.equal(r?.headers["tags"], "warning");
    assert.equal(r?.headers["authorization"], `Bearer ${TOKEN}`);
    assert.equal(r?.body, `peach in prod: failing → unhealthy\ncheck 1 failed 3/3\nat ${at}`);
    assert.equal(w.sent, 1);
  });

  void it("Gotify: POST /message with the token in X-Gotify-Key (never in the URL) and a JSON body", async () => {
    srv.seen.length = 0;
    const w = new WebhookSender({ kind: "gotify", url: `${srv.url}/`, token: TOKEN }, "prod", { onError: (m) => assert.fail(m) });
    w.notify(recovered);
    await w.flush();
    const r = srv.seen[0];
    assert.equal(r?.url, "/message");
    assert.equal(r?.headers["x-gotify-key"], TOKEN);
    assert.deepEqual(JSON.parse(r?.body ?? "") as unknown, { title: "peach is healthy again (prod)", message: `peach in prod: grace → healthy\nhealthy again after the restart\nat ${at}`, priority: 4 });
  });

  void it("generic JSON: the event with a title and message", async () => {
    srv.seen.length = 0;
    const w = new WebhookSender({ kind: "json", url: `${srv.url}/hook` }, "lab", { onError: (m) => assert.fail(m) });
    w.notify(unhealthy);
    await w.flush();
    const body = JSON.parse(srv.seen[0]?.body ?? "") as Record<string, unknown>;
    assert.equal(body["source"], "homelab-monitor");
    assert.equal(body["environment"], "lab");
    assert.equal(body["to"], "unhealthy");
    assert.equal(body["service"], "peach");
    assert.equal(srv.seen[0]?.headers["authorization"], undefined);
  });

  void it("only state changes that matter are sent: not the start-up verdict, not flaps below retries", async () => {
    srv.seen.length = 0;
    const w = new WebhookSender({ kind: "json", url: `${srv.url}/hook` }, "lab", { onError: (m) => assert.fail(m) });
    const quiet: StateEvent[] = [
      { ...unhealthy, from: "unknown", to: "healthy" },
      { ...unhealthy, from: "healthy", to: "failing" },
      { ...unhealthy, from: "failing", to: "healthy" },
      { ...unhealthy, from: "restarting", to: "grace" },
    ];
    for (const e of quiet) w.notify(e);
    w.notify(unhealthy);
    w.notify({ ...unhealthy, from: "unhealthy", to: "restarting" });
    w.notify({ ...unhealthy, from: "grace", to: "needs_human" });
    w.notify(recovered);
    await w.flush();
    assert.deepEqual(srv.seen.map((s) => (JSON.parse(s.body) as StateEvent).to), ["unhealthy", "restarting", "needs_human", "healthy"]);
    assert.equal(notifiable({ from: "gave_up", to: "healthy" }), true);
  });

  void it("a failing webhook is reported, never thrown, and never shows the token", async () => {
    const errors: string[] = [];
    const w = new WebhookSender({ kind: "gotify", url: `${srv.url}/fail?token=${TOKEN}`, token: TOKEN }, "prod", { onError: (m) => errors.push(m) });
    w.notify(unhealthy);
    const dead = new WebhookSender({ kind: "ntfy", url: `http://127.0.0.1:${await closedPort()}/topic`, token: TOKEN }, "prod", { onError: (m) => errors.push(m), timeoutMs: 2000 });
    dead.notify(unhealthy);
    await Promise.all([w.flush(), dead.flush()]);
    assert.equal(errors.length, 2);
    errors.sort();
    assert.match(errors[0] ?? "", /^webhook gotify http:\/\/127\.0\.0\.1:\d+\/fail failed: answered 500$/);
    assert.match(errors[1] ?? "", /^webhook ntfy http:\/\/127\.0\.0\.1:\d+\/topic failed: .*ECONNREFUSED/);
    assert.ok(errors.every((e) => !e.includes(TOKEN)));
    assert.equal(w.failed + dead.failed, 2);
  });

  void it("the queue is bounded: the oldest waiting notifications are dropped", async () => {
    const w = new WebhookSender({ kind: "json", url: `${srv.url}/hook` }, "lab", { onError: () => undefined, maxQueue: 3 });
    for (let i = 0; i < 10; i++) w.notify({ ...unhealthy, reason: `n${i}` });
    await w.flush();
    assert.equal(w.dropped, 6);
    assert.equal(w.sent, 4);
  });

  void it("messages never carry credentials or a query; Gotify's path is below the server URL", () => {
    assert.equal(safeUrl(`https://user:pw@ntfy.lan/topic?auth=${TOKEN}`), "https://ntfy.lan/topic");
    assert.equal(webhookRequest({ kind: "gotify", url: "https://g.lan/base/", token: TOKEN }, unhealthy, "p").url, "https://g.lan/base/message");
  });
});

void describe("state file for homelab status", () => {
  void it("is rewritten on state changes and read back; status lines show health and the last remediation", async () => {
    const root = mkdtempSync(join(tmpdir(), "homelab-state-"));
    let view: MonitorStateFile = { environment: "lab", updatedAt: at, pid: 1, hostname: "h", services: [] };
    const w = new StateFileWriter(stateFile(root, "lab"), () => view);
    w.sink({ type: "check", at, service: "peach", check: "c", index: 0, ok: true, latencyMs: 1, detail: "" });
    await w.flush();
    assert.equal(await readMonitorState(root, "lab"), undefined);
    view = {
      ...view,
      services: [
        {
          service: "peach",
          phase: "grace",
          reason: "restart done; judging health after a grace period of 60 s",
          since: at,
          lastRemediation: { action: "restart", at, outcome: "ok", detail: "restarted peach on 10.0.0.5" },
          remediationsLastHour: 1,
          checks: [],
        },
      ],
    };
    w.sink(unhealthy);
    w.sink(recovered);
    await w.flush();
    const read = await readMonitorState(root, "lab");
    assert.deepEqual(read, view);
    assert.deepEqual(healthLines(read, "peach"), {
      health: "grace since 2025-01-01T10:00:00Z (restart done; judging health after a grace period of 60 s)",
      remediation: "restart at 2025-01-01T10:00:00Z: ok (restarted peach on 10.0.0.5)",
    });
    assert.equal(healthLines(read, "other"), undefined);
  });
});
