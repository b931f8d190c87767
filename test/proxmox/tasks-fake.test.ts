/** Task waiting and create's id race against a fake server that scripts the task states. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import { ProxmoxAlreadyExistsError, ProxmoxAuthError, ProxmoxLockedError, ProxmoxNotFoundError, ProxmoxTaskError, ProxmoxTaskTimeoutError } from "../../src/proxmox/errors.ts";
import { FAKE_TOKEN, startFakeServer, testCert } from "./helpers/fake-server.ts";
import type { FakeReply, FakeServer, SeenRequest } from "./helpers/fake-server.ts";

const UPID = "UPID:pve-03:00001234:00005678:6650A1B2:vzcreate:101:homelab@pve!test:";
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

function status(state: "running" | "stopped", exitstatus?: string) {
  return { body: { data: { upid: UPID, node: "pve-03", status: state, type: "vzcreate", id: "101", user: "homelab@pve!test", starttime: 1, ...(exitstatus ? { exitstatus } : {}) } } };
}

async function run(handler: (req: SeenRequest) => FakeReply, body: (server: FakeServer, client: ReturnType<typeof createProxmoxClient>) => Promise<void>): Promise<void> {
  const server = await startFakeServer(handler);
  const client = createProxmoxClient({ endpoint: server.url, auth: FAKE_TOKEN, tls: { fingerprint: testCert().fingerprint }, retry: { baseDelayMs: 1, maxDelayMs: 2, lockAttempts: 3, lockDelayMs: 1 } });
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

void describe("lxc lifecycle task failures", () => {
  const startUpid = (n: number) => `UPID:pve-01:0000${1000 + n}:00005678:6650A1B2:vzstart:105:homelab@pve!test:`;
  const startPath = "/nodes/pve-01/lxc/105/status/start";

  // Each start gets its own task; `outcome(n)` is the exit status of the n-th (from 1).
  function lifecycleServer(outcome: (n: number) => string): (req: SeenRequest) => FakeReply {
    let starts = 0;
    return (req) => {
      if (req.method === "POST") return { body: { data: startUpid(++starts) } };
      const n = Number(/:0000(\d{4}):/.exec(req.path)?.[1]) - 1000;
      const exitstatus = outcome(n);
      if (req.path.endsWith("/log")) return { body: { data: [{ n: 1, t: exitstatus === "OK" ? "TASK OK" : `TASK ERROR: ${exitstatus}` }], total: 1 } };
      return { body: { data: { upid: startUpid(n), node: "pve-01", status: "stopped", exitstatus, type: "vzstart", id: "105", user: "homelab@pve!test", starttime: 1 } } };
    };
  }

  void it("sends a start again when its task was refused on a lock, then succeeds", async () => {
    await run(
      lifecycleServer((n) => (n === 1 ? "CT is locked (backup)" : n === 2 ? "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout" : "OK")),
      async (server, client) => {
        const result = await client.lxc.start("pve-01", 105, { wait: fast });
        assert.equal(result.upid, startUpid(3));
        assert.equal(server.count("POST", startPath), 3);
      },
    );
  });

  void it("gives up after lockAttempts tasks with ProxmoxLockedError and its hint", async () => {
    await run(
      lifecycleServer(() => "CT is locked (migrate)"),
      async (server, client) => {
        const error = await client.lxc.start("pve-01", 105, { wait: fast }).catch((e: unknown) => e);
        assert.ok(error instanceof ProxmoxLockedError);
        assert.equal(error.explain(), "CT 105 is locked (migrate): another operation is running on it; retry, or check the task log on node pve-01");
        assert.equal(error.task?.upid, startUpid(3));
        assert.equal(server.count("POST", startPath), 3);
      },
    );
  });

  void it("does not send a start again for any other task failure", async () => {
    for (const [exitstatus, type] of [
      ["Configuration file 'nodes/pve-01/lxc/105.conf' does not exist", ProxmoxNotFoundError],
      ["bridge 'vmbr7' does not exist", ProxmoxTaskError],
    ] as const) {
      await run(
        lifecycleServer(() => exitstatus),
        async (server, client) => {
          const error = await client.lxc.start("pve-01", 105, { wait: fast }).catch((e: unknown) => e);
          assert.ok(error instanceof type, exitstatus);
          assert.equal(server.count("POST", startPath), 1, exitstatus);
        },
      );
    }
  });
});

void describe("lxc.create feature check", () => {
  void it("lets a token ask for nesting when unprivileged is left to Proxmox's default, and refuses it on a privileged container", async () => {
    const upid = "UPID:pve-01:00001234:00005678:6650A1B2:vzcreate:150:homelab@pve!test:";
    await run(
      (req) => (req.method === "POST" ? { body: { data: upid } } : { body: { data: { upid, node: "pve-01", status: "stopped", exitstatus: "OK", type: "vzcreate", id: "150", user: "u@pve", starttime: 1 } } }),
      async (server, client) => {
        const made = await client.lxc.create("pve-01", { vmid: 150, ostemplate: "local:vztmpl/x.tar.zst", features: { nesting: true } }, { wait: fast });
        assert.equal(made.vmid, 150);
        const sent = server.requests.find((r) => r.method === "POST");
        assert.ok(sent);
        assert.equal(sent.form.get("features"), "nesting=1");
        assert.equal(sent.form.get("unprivileged"), null, "the default is Proxmox's, not sent");
        const privileged = await client.lxc.create("pve-01", { vmid: 151, ostemplate: "local:vztmpl/x.tar.zst", unprivileged: false, features: { nesting: true } }).catch((e: unknown) => e);
        assert.ok(privileged instanceof ProxmoxAuthError);
        assert.equal(privileged.preflight, true);
        assert.match(privileged.hint, /privileged container/);
        assert.equal(server.count("POST", "/nodes/pve-01/lxc"), 1);
      },
    );
  });
});
