/** Task waiting and create's id race against a fake server that scripts the task states. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import { ProxmoxAlreadyExistsError, ProxmoxAuthError, ProxmoxTaskError, ProxmoxTaskTimeoutError } from "../../src/proxmox/errors.ts";
import { FAKE_TOKEN, startFakeServer, testCert } from "./helpers/fake-server.ts";
import type { FakeReply, FakeServer, SeenRequest } from "./helpers/fake-server.ts";

const UPID = "UPID:pve-03:00001234:00005678:6650A1B2:vzcreate:101:homelab@pve!test:";
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

function status(state: "running" | "stopped", exitstatus?: string) {
  return { body: { data: { upid: UPID, node: "pve-03", status: state, type: "vzcreate", id: "101", user: "homelab@pve!test", starttime: 1, ...(exitstatus ? { exitstatus } : {}) } } };
}

async function run(handler: (req: SeenRequest) => FakeReply, body: (server: FakeServer, client: ReturnType<typeof createProxmoxClient>) => Promise<void>): Promise<void> {
  const server = await startFakeServer(handler);
  const client = createProxmoxClient({ endpoint: server.url, auth: FAKE_TOKEN, tls: { fingerprint: testCert().fingerprint }, retry: { baseDelayMs: 1, maxDelayMs: 2 } });
  try {
    await body(server, client);
  } finally {
    await client.close();
    await server.close();
  }
}

const logLines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ n: from + i + 1, t: `line ${from + i + 1}` }));

void describe("waitForTask", () => {
  void it("polls the node named in the UPID until stopped, and counts WARNINGS: N as success", async () => {
    let polls = 0;
    await run(
      () => (++polls < 3 ? status("running") : status("stopped", "WARNINGS: 2")),
      async (server, client) => {
        const result = await client.tasks.wait(UPID, fast);
        assert.deepEqual(result, { upid: UPID, node: "pve-03", type: "vzcreate", id: "101", exitstatus: "WARNINGS: 2", warnings: 2 });
        assert.equal(server.count("GET", `/nodes/pve-03/tasks/${UPID}/status`), 3);
      },
    );
  });

  void it("attaches the tail of a long log to a failure (two log reads)", async () => {
    await run(
      (req) => {
        if (req.path.endsWith("/status")) return status("stopped", "unable to create CT 101 - no space left");
        const start = Number(req.query.get("start"));
        const limit = Number(req.query.get("limit"));
        const all = [...logLines(0, 119), { n: 120, t: "TASK ERROR: unable to create CT 101 - no space left" }];
        return { body: { data: all.slice(start, start + limit), total: all.length } };
      },
      async (server, client) => {
        const error = await client.tasks.wait(UPID, { ...fast, logTailLines: 5 }).catch((e: unknown) => e);
        assert.ok(error instanceof ProxmoxTaskError);
        assert.equal(error.exitstatus, "unable to create CT 101 - no space left");
        assert.deepEqual(error.logTail, ["line 116", "line 117", "line 118", "line 119", "TASK ERROR: unable to create CT 101 - no space left"]);
        assert.match(error.explain(), /task vzcreate 101 on pve-03 failed: unable to create CT 101 - no space left: read the log tail/);
        assert.equal(server.count("GET", `/nodes/pve-03/tasks/${UPID}/log`), 2);
      },
    );
  });

  void it("keeps the task failure when the log cannot be read", async () => {
    await run(
      (req) => (req.path.endsWith("/status") ? status("stopped", "command failed") : { status: 404, reason: "Not Found" }),
      async (_server, client) => {
        const error = await client.tasks.wait(UPID, fast).catch((e: unknown) => e);
        assert.ok(error instanceof ProxmoxTaskError);
        assert.match(error.logTail[0] ?? "", /task log unavailable/);
      },
    );
  });

  void it("stops waiting at the overall timeout and says the task may still finish", async () => {
    await run(
      (req) => (req.path.endsWith("/status") ? status("running") : { body: { data: [{ n: 1, t: "extracting archive" }], total: 1 } }),
      async (_server, client) => {
        const started = performance.now();
        const error = await client.tasks.wait(UPID, { ...fast, timeoutMs: 60 }).catch((e: unknown) => e);
        assert.ok(error instanceof ProxmoxTaskTimeoutError);
        assert.ok(performance.now() - started < 2000);
        assert.deepEqual(error.logTail, ["extracting archive"]);
        assert.match(error.hint, /may still finish/);
      },
    );
  });

  void it("retries status polls through a 5xx", async () => {
    let n = 0;
    await run(
      () => (++n === 1 ? { status: 503, reason: "Service Unavailable" } : status("stopped", "OK")),
      async (_server, client) => {
        assert.equal((await client.tasks.wait(UPID, fast)).exitstatus, "OK");
      },
    );
  });
});

void describe("lxc.create id race", () => {
  const createUpid = (vmid: number) => `UPID:pve-01:00001234:00005678:6650A1B2:vzcreate:${vmid}:homelab@pve!test:`;

  void it("allocates a new id when another creator took the first one, and only then", async () => {
    let next = 100;
    await run(
      (req) => {
        if (req.path === "/cluster/nextid") return { body: { data: String(++next) } };
        if (req.method === "POST") {
          const vmid = Number(req.form.get("vmid"));
          return vmid === 101 ? { status: 500, reason: "CT 101 already exists on node 'pve-02'" } : { body: { data: createUpid(vmid) } };
        }
        return { body: { data: { upid: createUpid(102), node: "pve-01", status: "stopped", exitstatus: "OK", type: "vzcreate", id: "102", user: "u@pve", starttime: 1 } } };
      },
      async (server, client) => {
        const result = await client.lxc.create("pve-01", { ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst" }, { wait: fast });
        assert.equal(result.vmid, 102);
        assert.equal(server.count("GET", "/cluster/nextid"), 2);
        assert.equal(server.count("POST", "/nodes/pve-01/lxc"), 2);
      },
    );
  });

  void it("does not retry when the caller chose the id", async () => {
    await run(
      () => ({ status: 500, reason: "CT 150 already exists on node 'pve-02'" }),
      async (server, client) => {
        await assert.rejects(client.lxc.create("pve-01", { vmid: 150, ostemplate: "local:vztmpl/x.tar.zst" }), ProxmoxAlreadyExistsError);
        assert.equal(server.count("POST", "/nodes/pve-01/lxc"), 1);
      },
    );
  });

  void it("refuses root-only features for a token before sending anything", async () => {
    await run(
      () => ({ body: { data: "x" } }),
      async (server, client) => {
        const error = await client.lxc.create("pve-01", { vmid: 150, ostemplate: "local:vztmpl/x.tar.zst", features: { nesting: true, keyctl: true } }).catch((e: unknown) => e);
        assert.ok(error instanceof ProxmoxAuthError);
        assert.equal(error.preflight, true);
        assert.match(error.hint, /only root@pam/);
        assert.equal(server.requests.length, 0);
      },
    );
  });
});
