/**
 * The client against the sandbox under injected faults, locks, id races,
 * expiring tickets and TLS variants: reads are retried until they succeed,
 * writes are never sent twice unless the server refused them before acting.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import {
  ProxmoxAlreadyExistsError,
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxConnectionError,
  ProxmoxLockedError,
  ProxmoxTaskError,
  ProxmoxTaskTimeoutError,
  ProxmoxTlsError,
  ProxmoxTlsPinError,
} from "../../src/proxmox/errors.ts";
import { lxcCreateForm } from "../../src/proxmox/lxc-types.ts";
import { CT, FAST_RETRY, FAST_WAIT, TEMPLATE, count, sandbox, ticketClient, tokenClient } from "./helpers/sandbox.ts";
import type { RunningSandbox } from "./helpers/sandbox.ts";

async function using<T>(sb: Promise<RunningSandbox>, body: (sb: RunningSandbox) => Promise<T>): Promise<T> {
  const running = await sb;
  try {
    return await body(running);
  } finally {
    await running.close();
  }
}

void describe("sandbox faults: reads are retried until they succeed", () => {
  void it("every read succeeds while every second request gets a 500", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      sb.counters.reset();
      sb.faults.set({ errorRate: 0.5 });
      const reads = 8;
      assert.equal((await client.version.get()).release, "9.1");
      assert.equal((await client.nodes.list()).length, 3);
      assert.equal((await client.nodes.status("pve-01")).cpuinfo.cpus, 8);
      assert.ok((await client.cluster.resources()).length > 0);
      assert.ok((await client.storage.templates("pve-01", "local")).length > 0);
      assert.equal((await client.lxc.config("pve-01", vmid)).memory, 512);
      assert.equal((await client.lxc.status("pve-01", vmid)).status, "stopped");
      assert.ok((await client.storage.aplinfo("pve-01")).length > 0);
      await client.close();
      const total = Object.values(sb.counters.get()).reduce((a, b) => a + b, 0);
      // The sandbox hits exactly every second request, starting with the second: the first
      // read passes, every later one fails once and succeeds on its retry.
      assert.equal(total, reads * 2 - 1);
    });
  });

  void it("reads survive dropped connections and 503s together", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, attempts: 6 } });
      sb.faults.set({ dropRate: 0.3, errorRate: 0.3, errorStatus: 503 });
      for (let i = 0; i < 10; i += 1) assert.equal((await client.version.get()).release, "9.1");
      const inventory = await client.loadInventory();
      assert.equal(inventory.nodes.length, 3);
      await client.close();
      assert.ok(count(sb, "GET /version") > 10, "some reads were retried");
    });
  });

  void it("task polling rides through faults and a whole lifecycle still succeeds when only reads fail", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, attempts: 6 } });
      sb.faults.set({ errorRate: 0.25, dropRate: 0.25, routes: ["GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log", "GET /cluster/nextid", "GET /nodes/{node}/lxc/{vmid}/config"] });
      const { vmid } = await client.lxc.create("pve-02", { ...CT, hostname: "faulty" }, { wait: FAST_WAIT });
      await client.lxc.start("pve-02", vmid, { wait: FAST_WAIT });
      assert.equal((await client.lxc.config("pve-02", vmid)).hostname, "faulty");
      await client.lxc.stop("pve-02", vmid, { wait: FAST_WAIT });
      await client.lxc.delete("pve-02", vmid, { wait: FAST_WAIT });
      await client.close();
      for (const route of ["POST /nodes/{node}/lxc", "POST /nodes/{node}/lxc/{vmid}/status/start", "POST /nodes/{node}/lxc/{vmid}/status/stop", "DELETE /nodes/{node}/lxc/{vmid}"]) {
        assert.equal(count(sb, route), 1, route);
      }
      assert.ok(count(sb, "GET /nodes/{node}/tasks/{upid}/status") > 4, "task polls were retried");
    });
  });
});

void describe("sandbox faults: writes are never sent twice", () => {
  void it("a write answered with an injected 500 is not repeated and did not happen", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      sb.faults.set({ errorRate: 1, routes: ["POST /nodes/{node}/lxc/{vmid}/status/start"] });
      const error = await client.lxc.start("pve-01", vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxApiError);
      assert.equal(error.status, 500);
      assert.equal(count(sb, "POST /nodes/{node}/lxc/{vmid}/status/start"), 1);
      assert.equal((await client.lxc.status("pve-01", vmid)).status, "stopped");
      await client.close();
    });
  });

  void it("a write whose connection drops is not repeated, and says it may have been applied", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      sb.faults.set({ dropRate: 1, routes: ["POST /nodes/{node}/lxc"] });
      const error = await client.lxc.create("pve-01", { ...CT, vmid: 500 }, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxConnectionError);
      assert.equal(error.maybeApplied, true);
      assert.equal(count(sb, "POST /nodes/{node}/lxc"), 1);
      sb.faults.clear();
      assert.ok(!(await client.cluster.resources({ type: "vm" })).some((r) => r.vmid === 500));
      await client.close();
    });
  });

  void it("under faults on every route, each write call is sent exactly once while reads recover", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, attempts: 8 } });
      const { vmid } = await client.lxc.create("pve-03", { ...CT }, { wait: FAST_WAIT });
      sb.counters.reset();
      sb.faults.set({ errorRate: 0.3, dropRate: 0.2 });
      const calls = 15;
      let ok = 0;
      let failed = 0;
      for (let i = 0; i < calls; i += 1) {
        try {
          await client.lxc.updateConfig("pve-03", vmid, { memory: 256 + i });
          ok += 1;
        } catch (error) {
          assert.ok(error instanceof ProxmoxApiError || error instanceof ProxmoxConnectionError);
          failed += 1;
        }
        const memory = (await client.lxc.config("pve-03", vmid)).memory;
        assert.ok(memory !== undefined);
      }
      await client.close();
      assert.ok(ok > 0 && failed > 0, `some writes failed (${failed}) and some went through (${ok})`);
      assert.equal(count(sb, "PUT /nodes/{node}/lxc/{vmid}/config"), calls);
      assert.ok(count(sb, "GET /nodes/{node}/lxc/{vmid}/config") > calls);
    });
  });
});

void describe("sandbox: tasks that fail or take long", () => {
  void it("a failed task raises ProxmoxTaskError with the log tail", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      sb.faults.set({ taskFailRate: 1, taskTypes: ["vzstart"] });
      const error = await client.lxc.start("pve-01", vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxTaskError);
      assert.equal(error.exitstatus, "sandbox: injected task failure");
      assert.equal(error.logTail.at(-1), "TASK ERROR: sandbox: injected task failure");
      assert.equal(error.node, "pve-01");
      assert.equal(count(sb, "POST /nodes/{node}/lxc/{vmid}/status/start"), 1);
      await client.close();
    });
  });

  void it("a failed create leaves nothing behind", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      sb.faults.set({ taskFailRate: 1, taskTypes: ["vzcreate"] });
      const error = await client.lxc.create("pve-01", { ...CT, vmid: 777 }, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxTaskError);
      assert.equal(count(sb, "POST /nodes/{node}/lxc"), 1, "a failed task is not a lost id race");
      assert.ok(!(await client.cluster.resources({ type: "vm" })).some((r) => r.vmid === 777));
      await client.close();
    });
  });

  void it("a slow task hits the wait's timeout, and can be waited for again", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      sb.faults.set({ taskDelayMs: 800, taskTypes: ["vzstart"] });
      const error = await client.lxc.start("pve-01", vmid, { wait: { ...FAST_WAIT, timeoutMs: 150 } }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxTaskTimeoutError);
      const done = await client.tasks.wait(error.upid, FAST_WAIT);
      assert.equal(done.exitstatus, "OK");
      assert.equal((await client.lxc.status("pve-01", vmid)).status, "running");
      await client.close();
    });
  });
});

void describe("sandbox: locks", () => {
  void it("a guest lock is retried, then reported as ProxmoxLockedError with a hint", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, lockAttempts: 3 } });
      const { vmid } = await client.lxc.create("pve-02", { ...CT }, { wait: FAST_WAIT });
      // A backup (or another tool) holding the guest: set the lock the way Proxmox stores it.
      await client.http.call({ method: "PUT", path: `/nodes/pve-02/lxc/${vmid}/config`, params: { lock: "backup" } }, z.null());
      // Proxmox accepts the start and refuses it inside the task; each refused task is sent again.
      const error = await client.lxc.start("pve-02", vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxLockedError);
      assert.equal(error.kind, "guest");
      assert.equal(error.lock, "backup");
      assert.equal(error.explain(), `CT ${vmid} is locked (backup): another operation is running on it; retry, or check the task log on node pve-02`);
      assert.equal(error.task?.exitstatus, "CT is locked (backup)");
      assert.equal(error.task.type, "vzstart");
      assert.equal(count(sb, "POST /nodes/{node}/lxc/{vmid}/status/start"), 3);
      await client.http.call({ method: "PUT", path: `/nodes/pve-02/lxc/${vmid}/config`, params: { delete: "lock" } }, z.null());
      assert.equal((await client.lxc.start("pve-02", vmid, { wait: FAST_WAIT })).exitstatus, "OK");
      await client.close();
    });
  });

  void it("a config lock timeout during a create is retried until the create is done", async () => {
    await using(sandbox({ taskDurationMs: 600, lockTimeoutMs: 50 }), async (sb) => {
      const lines: string[] = [];
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, lockAttempts: 30, lockDelayMs: 60 }, logger: (line) => lines.push(line) });
      const upid = await client.http.call({ method: "POST", path: "/nodes/pve-01/lxc", params: lxcCreateForm({ ...CT }, 150) }, z.string());
      assert.equal((await client.lxc.config("pve-01", 150)).lock, "create");
      const impatient = tokenClient(sb, { retry: { ...FAST_RETRY, lockAttempts: 1 } });
      const error = await impatient.lxc.updateConfig("pve-01", 150, { memory: 1024 }).catch((e: unknown) => e);
      await impatient.close();
      assert.ok(error instanceof ProxmoxLockedError);
      assert.equal(error.kind, "timeout");
      // The start's task waits for the config file lock that the create's task holds, and fails
      // with the timeout; the client sends the start again until the create is done.
      await client.lxc.start("pve-01", 150, { wait: FAST_WAIT });
      assert.ok(count(sb, "POST /nodes/{node}/lxc/{vmid}/status/start") > 1, "the refused start was retried");
      assert.ok(lines.some((l) => /^retry POST \/nodes\/pve-01\/lxc\/150\/status\/start in \d+ ms \(lock, task UPID:.*\): CT 150: timed out waiting for its config lock/.test(l)), lines.join("\n"));
      assert.equal((await client.tasks.status(upid)).exitstatus, "OK");
      assert.equal((await client.lxc.status("pve-01", 150)).status, "running");
      await client.close();
    });
  });
});

void describe("sandbox: locks inside a destroy task", () => {
  void it("a destroy whose task times out on the config lock is sent again until the lock is free", async () => {
    await using(sandbox({ taskDurationMs: 600, lockTimeoutMs: 50 }), async (sb) => {
      const lines: string[] = [];
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, lockAttempts: 30, lockDelayMs: 60 }, logger: (line) => lines.push(line) });
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      // A start holds the config file lock while it works; the destroy's sync checks pass (the
      // guest is not locked and not yet running), so only its task meets the lock.
      const start = await client.http.call({ method: "POST", path: `/nodes/pve-01/lxc/${vmid}/status/start`, params: {} }, z.string());
      await client.lxc.delete("pve-01", vmid, { force: true, wait: FAST_WAIT });
      assert.ok(count(sb, "DELETE /nodes/{node}/lxc/{vmid}") > 1, "the refused destroy was sent again");
      assert.ok(lines.some((l) => new RegExp(`^retry DELETE /nodes/pve-01/lxc/${vmid} in \\d+ ms \\(lock, task UPID:.*:vzdestroy:${vmid}:.*\\): CT ${vmid}: timed out waiting for its config lock`).test(l)), lines.join("\n"));
      assert.equal((await client.tasks.status(start)).exitstatus, "OK");
      assert.ok(!(await client.cluster.resources({ type: "vm" })).some((r) => r.vmid === vmid), "the container is gone");
      await client.close();
    });
  });

  void it("a destroy task refused on the lock every time gives up after the lock budget", async () => {
    await using(sandbox({ taskDurationMs: 600, lockTimeoutMs: 50 }), async (sb) => {
      const client = tokenClient(sb, { retry: { ...FAST_RETRY, lockAttempts: 3 } });
      const { vmid } = await client.lxc.create("pve-01", { ...CT }, { wait: FAST_WAIT });
      // A start that takes longer than the three tries: each destroy task times out on its lock.
      sb.faults.set({ taskDelayMs: 2000, taskTypes: ["vzstart"] });
      await client.http.call({ method: "POST", path: `/nodes/pve-01/lxc/${vmid}/status/start`, params: {} }, z.string());
      const error = await client.lxc.delete("pve-01", vmid, { force: true, wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxLockedError);
      assert.equal(error.kind, "timeout");
      assert.equal(error.task?.type, "vzdestroy");
      assert.equal(count(sb, "DELETE /nodes/{node}/lxc/{vmid}"), 3);
      await client.close();
    });
  });
});

void describe("sandbox: id allocation", () => {
  void it("two creators racing for the same next id both succeed with different ids", async () => {
    await using(sandbox(), async (sb) => {
      const a = tokenClient(sb);
      const b = tokenClient(sb);
      // Slow nextid answers make both creators read the same id; slow creates keep that id
      // free until both have read it, however far apart the two requests arrive under load.
      sb.faults.set({ latencyMs: 250, routes: ["GET /cluster/nextid", "POST /nodes/{node}/lxc"] });
      const [x, y] = await Promise.all([
        a.lxc.create("pve-01", { ...CT, hostname: "a" }, { wait: FAST_WAIT }),
        b.lxc.create("pve-02", { ...CT, hostname: "b" }, { wait: FAST_WAIT }),
      ]);
      assert.notEqual(x.vmid, y.vmid);
      assert.equal(count(sb, "POST /nodes/{node}/lxc"), 3, "one create lost the race and was sent again with a new id");
      assert.equal(count(sb, "GET /cluster/nextid"), 3);
      await Promise.all([a.close(), b.close()]);
    });
  });

  void it("a taken id chosen by the caller is not retried", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      await client.lxc.create("pve-01", { ...CT, vmid: 200 }, { wait: FAST_WAIT });
      const error = await client.lxc.create("pve-02", { ...CT, vmid: 200 }, { wait: FAST_WAIT }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxAlreadyExistsError);
      assert.equal(error.vmid, 200);
      assert.equal(count(sb, "POST /nodes/{node}/lxc"), 2);
      await assert.rejects(client.cluster.nextId(200), ProxmoxAlreadyExistsError);
      await client.close();
    });
  });
});

void describe("sandbox: authentication", () => {
  void it("a wrong token is a ProxmoxAuthError, not retried", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb, { auth: { tokenId: sb.tokenId, tokenSecret: "00000000-0000-0000-0000-000000000000" } });
      const error = await client.version.get().catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxAuthError);
      assert.equal(error.status, 401);
      assert.match(error.hint, /API token/);
      assert.equal(count(sb, "GET /version"), 1);
      await client.close();
    });
  });

  void it("a ticket works for reads and writes (cookie and CSRF), and lets root@pam set any feature", async () => {
    await using(sandbox(), async (sb) => {
      const client = ticketClient(sb);
      assert.equal((await client.version.get()).release, "9.1");
      const { vmid } = await client.lxc.create("pve-01", { ...CT, unprivileged: true, features: { nesting: true, keyctl: true } }, { wait: FAST_WAIT });
      assert.deepEqual((await client.lxc.config("pve-01", vmid)).features, { nesting: true, keyctl: true });
      assert.equal(count(sb, "POST /access/ticket"), 1);
      await client.close();
    });
  });

  void it("a token asking for root-only features is refused before anything is sent", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      const error = await client.lxc.create("pve-01", { ...CT, unprivileged: true, features: { nesting: true, keyctl: true } }).catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxAuthError);
      assert.equal(error.preflight, true);
      assert.deepEqual(sb.counters.get(), {});
      await client.close();
    });
  });

  void it("a wrong password is a ProxmoxAuthError that does not echo it", async () => {
    await using(sandbox(), async (sb) => {
      const client = ticketClient(sb, { auth: { username: "root@pam", password: "wrong-password" } });
      const error = await client.version.get().catch((e: unknown) => e);
      assert.ok(error instanceof ProxmoxAuthError);
      assert.match(error.hint, /username and password/);
      assert.doesNotMatch(error.explain(), /wrong-password/);
      await client.close();
    });
  });

  void it("renews the ticket before two hours pass", async () => {
    let now = Date.now();
    await using(sandbox({ clock: () => now }), async (sb) => {
      const client = ticketClient(sb, { ticket: { now: () => now } });
      await client.version.get();
      now += 110 * 60_000;
      await client.version.get();
      now += 110 * 60_000;
      await client.nodes.setNotes("pve-01", "still logged in");
      assert.equal(count(sb, "POST /access/ticket"), 3);
      assert.equal(count(sb, "GET /version"), 2, "no request was refused");
      await client.close();
    });
  });

  void it("logs in again when the server says the ticket expired", async () => {
    let now = Date.now();
    await using(sandbox({ clock: () => now }), async (sb) => {
      // A client whose clock lags never renews on its own.
      const client = ticketClient(sb, { ticket: { now: () => 0 } });
      await client.version.get();
      now += 3 * 60 * 60_000;
      await client.nodes.setNotes("pve-01", "after expiry");
      assert.equal(count(sb, "POST /access/ticket"), 2);
      assert.equal(count(sb, "PUT /nodes/{node}/config"), 2, "refused with 401, then sent again with the new ticket");
      assert.equal((await client.nodes.config("pve-01")).description, "after expiry");
      await client.close();
    });
  });
});

void describe("sandbox: TLS", () => {
  void it("trusts the sandbox CA file, or the pinned certificate; refuses otherwise before any request", async () => {
    await using(sandbox(), async (sb) => {
      const viaCa = tokenClient(sb, { tls: { caFile: sb.caFile } });
      assert.equal((await viaCa.version.get()).release, "9.1");
      await viaCa.close();
      const viaPin = tokenClient(sb, { tls: { fingerprint: sb.fingerprint.toLowerCase().replace(/:/g, "") } });
      assert.equal((await viaPin.version.get()).release, "9.1");
      await viaPin.close();
      sb.counters.reset();
      const wrongPin = tokenClient(sb, { tls: { fingerprint: "00".repeat(32) } });
      const pinError = await wrongPin.version.get().catch((e: unknown) => e);
      await wrongPin.close();
      assert.ok(pinError instanceof ProxmoxTlsPinError);
      assert.equal(pinError.actual, sb.fingerprint);
      const system = tokenClient(sb, { tls: {} });
      await assert.rejects(system.version.get(), ProxmoxTlsError);
      await system.close();
      assert.deepEqual(sb.counters.get(), {}, "no request reached the server");
    });
  });
});

void describe("sandbox: inventory", () => {
  void it("one snapshot costs 1 + one template listing per node, however many guests exist", async () => {
    await using(sandbox(), async (sb) => {
      const client = tokenClient(sb);
      for (const node of ["pve-01", "pve-02", "pve-03", "pve-01"]) {
        await client.lxc.create(node, { ...CT, tags: ["homelab"], memory: 1024 }, { wait: FAST_WAIT });
      }
      sb.counters.reset();
      const inventory = await client.loadInventory();
      assert.equal(inventory.requests, 4);
      assert.deepEqual(sb.counters.get(), { "GET /cluster/resources": 1, "GET /nodes/{node}/storage/{storage}/content": 3 });
      assert.deepEqual(inventory.nodes.map((n) => n.name), ["pve-01", "pve-02", "pve-03"]);
      assert.ok(inventory.nodes.every((n) => n.online && n.memFree > 0 && n.memFree <= n.memTotal && n.cpuCount > 0));
      assert.deepEqual(inventory.guests.map((g) => [g.node, g.tags]), [["pve-01", ["homelab"]], ["pve-02", ["homelab"]], ["pve-03", ["homelab"]], ["pve-01", ["homelab"]]]);
      assert.equal(inventory.storages.length, 6);
      const debian = inventory.templates.find((t) => t.volid === TEMPLATE);
      assert.deepEqual(debian?.nodes, ["pve-01", "pve-02", "pve-03"]);
      assert.equal(debian?.version, "12.7-1");
      await client.close();
    });
  });
});
