import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import type { ServiceStatusRow } from "../../src/engine/status.ts";
import type { MonitorEvent } from "../../src/monitor/events.ts";
import { collectStatusModel, readHistory, readLastDeploys } from "../../src/status/collect.ts";
import { changedSince, historyDir, newestHistoryFile, readLastDeploy } from "../../src/status/deploy-history.ts";
import { FileStore } from "../../src/engine/backend-store.ts";
import { previewRecord, readPreviews, recordPreviews } from "../../src/status/previews.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "homelab-status-test-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const SECRET = "hunter2-do-not-show";

void describe("previews recorded by deploy --dry-run", () => {
  const outcome = {
    service: "web",
    status: "pending",
    preview: [
      {
        id: "web_ct",
        type: "homelab:proxmox:Container",
        kind: "update",
        properties: [
          { key: "memory", kind: "update", replaces: false, old: 512, new: 1024 },
          { key: "unprivileged", kind: "update", replaces: true, old: true, new: false },
          { key: "hostname", kind: "update", replaces: false, old: "web", new: SECRET },
          { key: "password", kind: "add", replaces: false, old: undefined, new: SECRET },
          { key: "tags", kind: "delete", replaces: false, old: ["a"], new: undefined },
        ],
      },
      { id: "web.compose", type: "homelab:compose:Deployment", kind: "update", properties: [{ key: "env", kind: "update", replaces: false, old: `A=${SECRET}`, new: "A=b" }], summary: ["secrets changed", "compose files changed: docker-compose.yaml"] },
      { id: "web_image", type: "homelab:docker:Image", kind: "same", properties: [] },
    ],
  };

  void it("numbers and flags are shown; string values, which may be secret, never", () => {
    const r = previewRecord(outcome, "test", new Date(0));
    assert.ok(r);
    assert.equal(r.status, "pending");
    assert.deepEqual(
      r.changes.map((c) => [c.resource, c.kind, c.inputs, c.replaces, c.summary]),
      [
        ["web_ct", "update", ["memory 512 → 1024", "unprivileged true → false", "hostname", "password", "tags removed"], true, []],
        ["web.compose", "update", ["env"], false, ["secrets changed", "compose files changed: docker-compose.yaml"]],
      ],
    );
    assert.doesNotMatch(JSON.stringify(r), new RegExp(SECRET));
    assert.equal(previewRecord({ ...outcome, status: "failed" }, "test", new Date(0)), undefined);
    assert.equal(previewRecord({ ...outcome, status: "skipped" }, "test", new Date(0)), undefined);
  });

  void it("one 0600 file per service, read back by service", async () => {
    const root = tmp();
    await recordPreviews(root, "test", [outcome, { service: "db", status: "unchanged", preview: [] }, { service: "broken", status: "failed", preview: undefined }], new Date(Date.UTC(2025, 0, 1)));
    const file = join(root, ".homelab", "previews", "test", "web.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, ".homelab", "previews", "test")).mode & 0o777, 0o700);
    assert.doesNotMatch(readFileSync(file, "utf8"), new RegExp(SECRET));
    writeFileSync(join(root, ".homelab", "previews", "test", "damaged.json"), "{");
    const read = await readPreviews(root, "test");
    assert.deepEqual([...read.keys()].sort(), ["db", "web"]);
    assert.equal(read.get("web")?.at, "2025-01-01T00:00:00.000Z");
    assert.equal((await readPreviews(root, "other")).size, 0);
  });
});

void describe("the last deploy from a file backend", () => {
  const deployment = {
    resources: [
      { urn: "urn:pulumi:test.web::homelab::pulumi:pulumi:Stack::homelab-test.web", type: "pulumi:pulumi:Stack", created: "2025-01-01T09:00:00Z", modified: "2025-01-01T10:00:01Z" },
      { urn: "urn:pulumi:test.web::homelab::homelab:proxmox:Container::web_ct", type: "homelab:proxmox:Container", created: "2025-01-01T09:00:00.5Z", modified: "2025-01-01T10:00:03.123456789Z" },
      { urn: "urn:pulumi:test.web::homelab::homelab:compose:Deployment::web.compose", type: "homelab:compose:Deployment", created: "2025-01-01T10:00:04Z", modified: "2025-01-01T10:00:04Z" },
      { urn: "urn:pulumi:test.web::homelab::homelab:docker:Image::web_image", type: "homelab:docker:Image", created: "2025-01-01T09:00:00Z", modified: "2025-01-01T09:00:00Z" },
    ],
  };
  const start = Date.parse("2025-01-01T10:00:00Z");

  void it("what changed: resources modified since the update started, created or updated", () => {
    assert.deepEqual(changedSince(deployment, start), [
      { resource: "web.compose", change: "created" },
      { resource: "web_ct", change: "updated" },
    ]);
    assert.equal(newestHistoryFile(["test.web-100.history.json", "test.web-99999999999999999999.history.json", "test.web-200.checkpoint.json", "x.json"]), "test.web-99999999999999999999.history.json");
    assert.equal(newestHistoryFile([]), undefined);
  });

  void it("reads the newest update record (gzipped too) and uses the listing's time elsewhere", async () => {
    const backend = tmp();
    const dir = historyDir(backend, "test.web");
    mkdirSync(dir, { recursive: true });
    const rec = (startTime: number, result: string) => JSON.stringify({ kind: "update", startTime, endTime: startTime + 7, result, resourceChanges: { create: 1, update: 1, same: 2 }, config: { "homelab:x": { secure: "ciphertext" } } });
    writeFileSync(join(dir, "test.web-1000.history.json"), rec(start / 1000 - 3600, "failed"));
    writeFileSync(join(dir, "test.web-2000.history.json.gz"), gzipSync(rec(start / 1000, "succeeded")));
    const store = new FileStore(backend);
    const d = await readLastDeploy(store, "test.web", deployment, undefined);
    assert.deepEqual(d, {
      at: "2025-01-01T10:00:07.000Z",
      startedAt: "2025-01-01T10:00:00.000Z",
      kind: "update",
      result: "succeeded",
      durationMs: 7000,
      counts: { create: 1, update: 1, same: 2 },
      changed: [
        { resource: "web.compose", change: "created" },
        { resource: "web_ct", change: "updated" },
      ],
    });
    assert.equal(await readLastDeploy(store, "test.none", undefined, undefined), undefined);

    const row = (service: string, lastUpdate: string | undefined): ServiceStatusRow => ({ service, stack: `test.${service}`, state: "deployed", lastUpdate, resources: [], pendingOperations: 0, lock: undefined });
    let reads = 0;
    const reader = { store, readState: () => (reads++, Promise.resolve({ resources: [], pending: [], outputs: {}, deployment })) };
    const cache = new Map<string, { key: string; value: undefined | Awaited<ReturnType<typeof readLastDeploy>> }>();
    const rows = [row("web", "2025-01-01T10:00:07Z"), row("other", "2025-01-01T08:00:00Z"), row("never", undefined)];
    const got = await readLastDeploys(reader, rows, cache);
    assert.equal(got.get("web")?.result, "succeeded");
    assert.deepEqual(got.get("other"), { at: "2025-01-01T08:00:00Z", startedAt: null, kind: null, result: null, durationMs: null, counts: null, changed: null });
    assert.equal(got.has("never"), false);
    await readLastDeploys(reader, rows, cache);
    assert.equal(reads, 2, "unchanged stacks are not read again");
    const remote = await readLastDeploys({ store: undefined, readState: () => Promise.reject(new Error("not called")) }, rows);
    assert.equal(remote.get("web")?.changed, null);
  });
});

void describe("the monitor's history, read for the model", () => {
  void it("rotated file first, then the current one; cut and damaged lines skipped; bounded by the tail read", async () => {
    const root = tmp();
    const dir = join(root, ".homelab", "monitor", "test");
    mkdirSync(dir, { recursive: true });
    const ev = (i: number, ok: boolean): MonitorEvent => ({ type: "check", at: new Date(Date.UTC(2025, 0, 1, 10, 0, i)).toISOString(), service: "web", check: "http x", index: 0, ok, latencyMs: 3, detail: ok ? "status 200" : "status 503" });
    writeFileSync(join(dir, "history.jsonl.1"), [ev(1, true), ev(2, true)].map((e) => JSON.stringify(e)).join("\n") + "\n");
    writeFileSync(
      join(dir, "history.jsonl"),
      [JSON.stringify(ev(3, false)), "{damaged", JSON.stringify({ type: "action", at: ev(4, true).at, service: "web", action: "restart", phase: "ok", detail: "restarted" })].join("\n") + "\n",
    );
    const seen: MonitorEvent[] = [];
    assert.equal(await readHistory(root, "test", (e) => seen.push(e)), 4);
    assert.deepEqual(seen.map((e) => e.at.slice(17, 19)), ["01", "02", "03", "04"]);
    const tail: MonitorEvent[] = [];
    await readHistory(root, "test", (e) => tail.push(e), 200);
    assert.ok(tail.length < 4 && tail.length > 0, `${tail.length} events from 200-byte tails`);

    const rows: ServiceStatusRow[] = [{ service: "web", stack: "test.web", state: "deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined }];
    const m = await collectStatusModel({
      root,
      envName: "test",
      backendUrl: "file:///x",
      reader: { store: undefined, readState: () => Promise.resolve(undefined) },
      rows,
      config: new Map([["web", { name: "web", description: undefined, checks: [{ label: "http x", type: "http", url: "http://{address}/", resource: undefined }] }]]),
      monitor: { environment: "test", updatedAt: "2025-01-01T10:00:05Z", pid: 2 ** 30, hostname: "elsewhere", services: [] },
      now: Date.UTC(2025, 0, 1, 10, 1),
    });
    const web = m.services[0];
    assert.equal(web?.uptime?.checks, 3);
    assert.equal(web?.uptime?.failed, 1);
    assert.deepEqual(web?.remediation.recent.map((h) => h.kind), ["action"]);
    assert.equal(m.monitor.source, "state-file");
    assert.equal(m.monitor.running, null, "a monitor on another host cannot be asked");
    assert.equal(m.nodes, null);
  });
});
