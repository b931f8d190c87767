/**
 * The transport against small HTTPS fakes: reason phrases, error bodies,
 * retries, dropped connections, TLS verification and pinning, tickets, and
 * secrets kept out of errors and logs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import type { ProxmoxClientOptions } from "../../src/proxmox/client.ts";
import {
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxConnectionError,
  ProxmoxLockedError,
  ProxmoxResponseError,
  ProxmoxTlsError,
  ProxmoxTlsPinError,
} from "../../src/proxmox/errors.ts";
import { FAKE_TOKEN, startFakeServer, testCert } from "./helpers/fake-server.ts";
import type { FakeReply, FakeServer, SeenRequest } from "./helpers/fake-server.ts";

const VERSION = { data: { version: "8.2.4", release: "8.2", repoid: "faa83925" } };
const fastRetry = { baseDelayMs: 2, maxDelayMs: 10, lockDelayMs: 2 };

function clientFor(server: FakeServer, over: Partial<ProxmoxClientOptions> = {}) {
  return createProxmoxClient({
    endpoint: server.url,
    auth: FAKE_TOKEN,
    tls: { fingerprint: testCert().fingerprint },
    retry: fastRetry,
    ...over,
  });
}

async function withServer(handler: (req: SeenRequest) => FakeReply | Promise<FakeReply>, body: (server: FakeServer) => Promise<void>): Promise<void> {
  const server = await startFakeServer(handler);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

void describe("errors as Proxmox sends them", () => {
  void it("reads the reason phrase of a 500 and the node/vmid of the path", async () => {
    await withServer(
      () => ({ status: 500, reason: "CT 105 is locked (create)", body: { data: null } }),
      async (server) => {
        const client = clientFor(server, { retry: { ...fastRetry, lockAttempts: 1 } });
        const error = await client.lxc.start("pve-02", 105).catch((e: unknown) => e);
        await client.close();
        assert.ok(error instanceof ProxmoxLockedError);
        assert.equal(error.explain(), "CT 105 is locked (create): another operation is running on it; retry, or check the task log on node pve-02");
        assert.equal(server.count("POST", "/nodes/pve-02/lxc/105/status/start"), 1);
      },
    );
  });

  void it("reads the errors map of a 400", async () => {
    await withServer(
      () => ({ status: 400, reason: "Parameter verification failed.", body: { data: null, errors: { memory: "value must have a minimum value of 16" } } }),
      async (server) => {
        const client = clientFor(server);
        const error = await client.lxc.updateConfig("pve-01", 105, { memory: 1 }).catch((e: unknown) => e);
        await client.close();
        assert.ok(error instanceof ProxmoxApiError);
        assert.equal(error.status, 400);
        assert.deepEqual(error.paramErrors, { memory: "value must have a minimum value of 16" });
      },
    );
  });

  void it("reads `message` when the server sends one", async () => {
    await withServer(
      () => ({ status: 500, reason: "Internal Server Error", body: { data: null, message: "storage 'nope' is not online\n" } }),
      async (server) => {
        const client = clientFor(server, { retry: { ...fastRetry, attempts: 1 } });
        const error = await client.storage.content("pve-01", "nope").catch((e: unknown) => e);
        await client.close();
        assert.ok(error instanceof ProxmoxApiError);
        assert.equal(error.message, "storage 'nope' is not online");
        assert.equal(error.reason, "Internal Server Error");
      },
    );
  });

  void it("reports a 2xx with an unreadable body as ProxmoxResponseError", async () => {
    await withServer(
      () => ({ status: 200, rawBody: "<html>proxy</html>" }),
      async (server) => {
        const client = clientFor(server, { retry: { ...fastRetry, attempts: 2 } });
        await assert.rejects(client.version.get(), ProxmoxResponseError);
        await client.close();
        assert.equal(server.count("GET", "/version"), 2, "a read is retried once more, then fails");
      },
    );
  });

  void it("reports data of the wrong shape as ProxmoxResponseError", async () => {
    await withServer(
      () => ({ body: { data: { version: 8 } } }),
      async (server) => {
        const client = clientFor(server);
        await assert.rejects(client.version.get(), (e: unknown) => e instanceof ProxmoxResponseError && /version/.test(e.message));
        await client.close();
      },
    );
  });
});

void describe("retries", () => {
  void it("retries a read after 5xx answers and succeeds", async () => {
    let n = 0;
    await withServer(
      () => (++n < 3 ? { status: 503, reason: "Service Unavailable" } : { body: VERSION }),
      async (server) => {
        const lines: string[] = [];
        const client = clientFor(server, { logger: (l) => lines.push(l) });
        assert.equal((await client.version.get()).release, "8.2");
        await client.close();
        assert.equal(server.count("GET", "/version"), 3);
        assert.equal(lines.filter((l) => l.startsWith("retry GET /version")).length, 2);
      },
    );
  });

  void it("retries a read whose connection drops, before or in the middle of the body", async () => {
    let n = 0;
    await withServer(
      () => (++n === 1 ? "drop" : n === 2 ? "drop-mid-body" : { body: VERSION }),
      async (server) => {
        const client = clientFor(server);
        assert.equal((await client.version.get()).version, "8.2.4");
        await client.close();
        assert.equal(server.count("GET", "/version"), 3);
      },
    );
  });

  void it("gives up on a read after the attempt limit", async () => {
    await withServer(
      () => ({ status: 502, reason: "Bad Gateway" }),
      async (server) => {
        const client = clientFor(server, { retry: { ...fastRetry, attempts: 3 } });
        await assert.rejects(client.version.get(), (e: unknown) => e instanceof ProxmoxApiError && e.status === 502);
        await client.close();
        assert.equal(server.count("GET", "/version"), 3);
      },
    );
  });

  void it("never repeats a write after a 5xx or a dropped connection", async () => {
    await withServer(
      (req) => (req.path.endsWith("/start") ? { status: 500, reason: "Internal Server Error" } : "drop"),
      async (server) => {
        const client = clientFor(server);
        await assert.rejects(client.lxc.start("pve-01", 101), (e: unknown) => e instanceof ProxmoxApiError && e.status === 500);
        const dropped = await client.lxc.stop("pve-01", 101).catch((e: unknown) => e);
        await client.close();
        assert.ok(dropped instanceof ProxmoxConnectionError);
        assert.equal(dropped.maybeApplied, true);
        assert.match(dropped.hint, /may have been applied/);
        assert.equal(server.count("POST", "/nodes/pve-01/lxc/101/status/start"), 1);
        assert.equal(server.count("POST", "/nodes/pve-01/lxc/101/status/stop"), 1);
      },
    );
  });

  void it("retries a write refused because of a lock, then waits for its task", async () => {
    let n = 0;
    const upid = "UPID:pve-01:00001234:00005678:6650A1B2:vzstart:101:homelab@pve!test:";
    await withServer(
      (req) => {
        if (req.path.endsWith("/status/start")) return ++n < 3 ? { status: 500, reason: "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout" } : { body: { data: upid } };
        return { body: { data: { upid, node: "pve-01", status: "stopped", exitstatus: "OK", type: "vzstart", id: "101", user: "homelab@pve!test", starttime: 1 } } };
      },
      async (server) => {
        const client = clientFor(server);
        const result = await client.lxc.start("pve-01", 101, { wait: { initialDelayMs: 1 } });
        await client.close();
        assert.equal(result.exitstatus, "OK");
        assert.equal(server.count("POST", "/nodes/pve-01/lxc/101/status/start"), 3);
      },
    );
  });

  void it("retries a write whose connection was refused (nothing was sent)", async () => {
    const server = await startFakeServer(() => ({ body: VERSION }));
    const url = server.url;
    await server.close();
    const lines: string[] = [];
    const client = createProxmoxClient({ endpoint: url, auth: FAKE_TOKEN, tls: { fingerprint: testCert().fingerprint }, retry: { ...fastRetry, attempts: 3 }, logger: (l) => lines.push(l) });
    const error = await client.nodes.setNotes("pve-01", "x").catch((e: unknown) => e);
    await client.close();
    assert.ok(error instanceof ProxmoxConnectionError);
    assert.equal(error.maybeApplied, false);
    assert.equal(error.code, "ECONNREFUSED");
    assert.equal(lines.filter((l) => l.startsWith("retry PUT")).length, 2);
  });
});

void describe("TLS", () => {
  let server: FakeServer;
  before(async () => {
    server = await startFakeServer(() => ({ body: VERSION, headers: { connection: "close" } }));
  });
  after(() => server.close());

  void it("accepts the pinned certificate, with every connection fully verified (no session resumption)", async () => {
    const client = clientFor(server);
    for (let i = 0; i < 3; i += 1) assert.equal((await client.version.get()).release, "8.2");
    await client.close();
    assert.ok(server.requests.length >= 3);
    assert.ok(server.requests.every((r) => !r.sessionReused));
  });

  void it("refuses a wrong pin before sending any request", async () => {
    const before = server.requests.length;
    const client = clientFor(server, { tls: { fingerprint: testCert("other").fingerprint } });
    const error = await client.version.get().catch((e: unknown) => e);
    await client.close();
    assert.ok(error instanceof ProxmoxTlsPinError);
    assert.equal(error.actual, testCert().fingerprint);
    assert.match(error.hint, /update the pinned fingerprint/);
    assert.equal(server.requests.length, before, "the server saw no request");
  });

  void it("refuses a self-signed certificate without a CA or pin", async () => {
    const client = clientFor(server, { tls: {} });
    const error = await client.version.get().catch((e: unknown) => e);
    await client.close();
    assert.ok(error instanceof ProxmoxTlsError);
    assert.match(error.hint, /tls.caFile/);
  });

  void it("accepts the certificate through a CA file", async () => {
    const client = clientFor(server, { tls: { caFile: testCert().certFile } });
    assert.equal((await client.version.get()).version, "8.2.4");
    await client.close();
  });

  void it("checks the pin on top of a CA when both are given", async () => {
    const client = clientFor(server, { tls: { caPem: testCert().cert, fingerprint: testCert("other").fingerprint } });
    await assert.rejects(client.version.get(), ProxmoxTlsPinError);
    await client.close();
  });

  void it("connects with insecure after a warning, and refuses it in CI mode", async () => {
    const warnings: string[] = [];
    const client = clientFor(server, { tls: { insecure: true }, logger: (l) => warnings.push(l) });
    assert.equal((await client.version.get()).release, "8.2");
    await client.close();
    assert.match(warnings[0] ?? "", /TLS verification is disabled/);
    assert.throws(() => clientFor(server, { tls: { insecure: true }, ci: true }), /refused in CI mode/);
  });

  void it("leaves process-wide TLS settings alone", () => {
    assert.equal(process.env.NODE_TLS_REJECT_UNAUTHORIZED, undefined);
  });
});

void describe("authentication", () => {
  void it("sends the API token header and no CSRF token", async () => {
    await withServer(
      () => ({ body: { data: null } }),
      async (server) => {
        const client = clientFor(server);
        await client.nodes.setNotes("pve-01", "hello");
        await client.close();
        const req = server.requests[0]!;
        assert.equal(req.headers.authorization, `PVEAPIToken=${FAKE_TOKEN.tokenId}=${FAKE_TOKEN.tokenSecret}`);
        assert.equal(req.headers.csrfpreventiontoken, undefined);
        assert.equal(req.headers["content-type"], "application/x-www-form-urlencoded");
        assert.equal(req.form.get("description"), "hello");
      },
    );
  });

  void it("logs in for a ticket, sends the cookie, CSRF on writes only, and logs in again after a 401", async () => {
    let logins = 0;
    let expireNext = false;
    await withServer(
      (req) => {
        if (req.path === "/access/ticket") {
          logins += 1;
          if (req.form.get("password") !== "hunter22") return { status: 401, reason: "authentication failure" };
          return { body: { data: { ticket: `PVE:root@pam:T${logins}::c2ln`, CSRFPreventionToken: `csrf${logins}`, username: "root@pam" } } };
        }
        if (expireNext) {
          expireNext = false;
          return { status: 401, reason: "No ticket" };
        }
        return req.method === "GET" ? { body: VERSION } : { body: { data: null } };
      },
      async (server) => {
        const client = clientFor(server, { auth: { username: "root@pam", password: "hunter22" } });
        await Promise.all([client.version.get(), client.version.get()]);
        await client.nodes.setNotes("pve-01", "notes");
        expireNext = true;
        await client.nodes.setNotes("pve-01", "again");
        await client.close();
        assert.equal(logins, 2, "one login for the concurrent reads, one after the 401");
        const [get, , put] = server.requests.filter((r) => r.path !== "/access/ticket");
        assert.equal(get!.headers.cookie, "PVEAuthCookie=PVE:root@pam:T1::c2ln");
        assert.equal(get!.headers.csrfpreventiontoken, undefined);
        assert.equal(put!.headers.csrfpreventiontoken, "csrf1");
        const last = server.requests.at(-1)!;
        assert.equal(last.headers.csrfpreventiontoken, "csrf2");
        assert.equal(last.form.get("description"), "again");
      },
    );
  });

  void it("renews the ticket before its lifetime ends", async () => {
    let clock = 0;
    let logins = 0;
    await withServer(
      (req) =>
        req.path === "/access/ticket"
          ? { body: { data: { ticket: `PVE:root@pam:T${++logins}::c2ln`, CSRFPreventionToken: "c", username: "root@pam" } } }
          : { body: VERSION },
      async (server) => {
        const client = clientFor(server, { auth: { username: "root@pam", password: "hunter22" }, ticket: { now: () => clock } });
        await client.version.get();
        clock = 110 * 60_000;
        await client.version.get();
        await client.close();
        assert.equal(logins, 2);
        assert.equal(server.requests.at(-1)!.headers.cookie, "PVEAuthCookie=PVE:root@pam:T2::c2ln");
      },
    );
  });

  void it("reports a failed login as ProxmoxAuthError without the password", async () => {
    await withServer(
      () => ({ status: 401, reason: "authentication failure for hunter22", body: { data: null, message: "bad password hunter22\n" } }),
      async (server) => {
        const lines: string[] = [];
        const client = clientFor(server, { auth: { username: "root@pam", password: "hunter22" }, logger: (l) => lines.push(l) });
        const error = await client.version.get().catch((e: unknown) => e);
        await client.close();
        assert.ok(error instanceof ProxmoxAuthError);
        assert.match(error.hint, /username and password/);
        assert.doesNotMatch(`${error.message} ${error.hint} ${error.reason}`, /hunter22/);
        assert.ok(lines.length > 0 && lines.every((l) => !l.includes("hunter22")));
      },
    );
  });

  void it("keeps the token secret and a container password out of errors and logs", async () => {
    await withServer(
      (req) => ({
        status: 400,
        reason: "Parameter verification failed.",
        body: { data: null, errors: { password: `'${req.form.get("password") ?? ""}' is too weak`, token: `${FAKE_TOKEN.tokenSecret} echoed` } },
      }),
      async (server) => {
        const lines: string[] = [];
        const client = clientFor(server, { logger: (l) => lines.push(l) });
        const error = await client.lxc.create("pve-01", { vmid: 150, ostemplate: "local:vztmpl/x.tar.zst", password: "pa$$ w0rd ü" }).catch((e: unknown) => e);
        await client.close();
        assert.ok(error instanceof ProxmoxApiError);
        assert.equal(server.requests[0]!.form.get("password"), "pa$$ w0rd ü");
        const text = `${error.message} ${JSON.stringify(error.paramErrors)} ${lines.join("\n")}`;
        assert.doesNotMatch(text, /w0rd/);
        assert.ok(!text.includes(FAKE_TOKEN.tokenSecret));
        assert.match(error.message, /\*\*\*/);
      },
    );
  });
});

void describe("form encoding over the wire", () => {
  void it("sends booleans as 1/0 and UTF-8 text intact, GET parameters in the query", async () => {
    await withServer(
      (req) => (req.method === "GET" ? { body: { data: [] } } : { body: { data: null } }),
      async (server) => {
        const client = clientFor(server);
        await client.lxc.updateConfig("pve-01", 101, { onboot: true, description: "Grüße 🚀 & co" });
        await client.storage.list("pve-01", { content: "vztmpl", enabled: true });
        await client.close();
        const [put, get] = server.requests;
        assert.equal(put!.form.get("onboot"), "1");
        assert.equal(put!.form.get("description"), "Grüße 🚀 & co");
        assert.equal(get!.query.get("enabled"), "1");
        assert.equal(get!.query.get("content"), "vztmpl");
        assert.equal(get!.rawBody, "");
      },
    );
  });
});
