import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CheckRunner, checkLabel, commandCheck, commandScript, fillAddress, httpCheck, statusAccepted, tcpCheck } from "../../src/monitor/checks.ts";
import type { CheckTarget, CommandCheck, CommandExecutor, HttpCheck, ResolvedCheck, TcpCheck } from "../../src/monitor/checks.ts";
import { closedPort, selfSigned, startServer } from "./helpers.ts";
import type { TestServer } from "./helpers.ts";

const target: CheckTarget = { service: "peach", resource: "web", address: "127.0.0.1" };
const noAddress: CheckTarget = { service: "peach", resource: "web", address: undefined };
const signal = new AbortController().signal;

function http(url: string, more: Partial<HttpCheck> = {}): HttpCheck {
  return { type: "http", url, interval: 60, timeout: 2, retries: 3, ...more };
}

void describe("http check", () => {
  let srv: TestServer;
  let slow: TestServer;
  before(async () => {
    srv = await startServer((req, res) => {
      if (req.url === "/ok") res.writeHead(200, { "content-type": "text/plain" }).end("all systems go");
      else if (req.url === "/moved") res.writeHead(302, { location: "/elsewhere" }).end();
      else if (req.url === "/teapot") res.writeHead(418).end("short and stout");
      else if (req.url === "/big") res.writeHead(200).end("x".repeat(3 * 1024 * 1024) + "needle");
      else res.writeHead(503).end("down for maintenance");
    });
    slow = await startServer(() => undefined);
  });
  after(async () => {
    await srv.close();
    await slow.close();
  });

  void it("2xx and 3xx are healthy by default; others are not, with the status in the detail", async () => {
    const url = `http://{address}:${srv.port}`;
    assert.equal((await httpCheck(http(`${url}/ok`), target, signal)).ok, true);
    assert.equal((await httpCheck(http(`${url}/moved`), target, signal)).ok, true);
    const r = await httpCheck(http(`${url}/down`), target, signal);
    assert.equal(r.ok, false);
    assert.match(r.detail, /^status 503, expected 2xx\/3xx/);
    assert.ok(r.latencyMs >= 0);
    assert.ok(srv.seen.every((s) => s.method === "GET" && s.headers["user-agent"] === "homelab-monitor"));
  });

  void it("expected status codes: one or a list", async () => {
    const url = `${srv.url}/teapot`;
    assert.equal((await httpCheck(http(url, { expect_status: 418 }), target, signal)).ok, true);
    assert.equal((await httpCheck(http(url, { expect_status: [200, 418] }), target, signal)).ok, true);
    const r = await httpCheck(http(`${srv.url}/ok`, { expect_status: [201, 204] }), target, signal);
    assert.match(r.detail, /status 200, expected 201\/204/);
    assert.equal(statusAccepted(399, undefined), true);
    assert.equal(statusAccepted(400, undefined), false);
    assert.equal(statusAccepted(199, undefined), false);
  });

  void it("body match: the text must be in the body (read up to 1 MiB)", async () => {
    assert.equal((await httpCheck(http(`${srv.url}/ok`, { expect_body: "systems go" }), target, signal)).ok, true);
    const r = await httpCheck(http(`${srv.url}/ok`, { expect_body: "nominal" }), target, signal);
    assert.equal(r.ok, false);
    assert.match(r.detail, /does not contain "nominal"/);
    // Past the cap: not found, and the rest is not read.
    assert.equal((await httpCheck(http(`${srv.url}/big`, { expect_body: "needle" }), target, signal)).ok, false);
  });

  void it("{address} comes from the deployment; without one the check fails and says why", async () => {
    assert.equal(fillAddress("http://{address}:80/", "10.0.0.5"), "http://10.0.0.5:80/");
    assert.equal(fillAddress("http://example.lan/", undefined), "http://example.lan/");
    const r = await httpCheck(http("http://{address}:80/"), noAddress, signal);
    assert.equal(r.ok, false);
    assert.match(r.detail, /no address for web/);
  });

  void it("refused connections and timeouts are failures with a plain reason", async () => {
    const port = await closedPort();
    const refused = await httpCheck(http(`http://127.0.0.1:${port}/`), target, signal);
    assert.equal(refused.ok, false);
    assert.equal(refused.detail, "connection refused");
    const timedOut = await httpCheck(http(`${slow.url}/`, { timeout: 1 }), target, signal);
    assert.equal(timedOut.ok, false);
    assert.equal(timedOut.detail, "timed out after 1 s");
  });

  void it("an abort (the monitor stopping) ends a check at once", async () => {
    const ac = new AbortController();
    const p = httpCheck(http(`${slow.url}/`, { timeout: 30 }), target, ac.signal);
    ac.abort(new Error("the monitor is stopping"));
    const r = await p;
    assert.equal(r.ok, false);
    assert.match(r.detail, /stopping|abort/i);
  });
});

void describe("http check over TLS (self-signed certificate made with openssl)", () => {
  let srv: TestServer;
  const cert = selfSigned();
  before(async () => {
    srv = await startServer((_req, res) => res.writeHead(200).end("secure ok"), { tls: cert });
  });
  after(async () => {
    await srv.close();
    runner.close().catch(() => undefined);
  });
  const runner = new CheckRunner({ warn: () => undefined });
  const run = (key: string, check: HttpCheck) => {
    runner.prepare(key, check, "/nonexistent");
    return runner.run(key, check, target, signal);
  };

  void it("is refused without a CA or a pin, as the Proxmox client does", async () => {
    const r = await run("plain", http(`${srv.url}/`));
    assert.equal(r.ok, false);
    assert.match(r.detail, /TLS certificate not accepted .*tls.ca_file or pin tls.fingerprint/);
  });

  void it("passes with the SHA-256 fingerprint pinned, and fails on another pin", async () => {
    assert.equal((await run("pin", http(`${srv.url}/`, { tls: { fingerprint: cert.fingerprint } }))).ok, true);
    const wrong = cert.fingerprint.replace(/^[0-9A-F]{2}/, (h) => (h === "00" ? "01" : "00"));
    const r = await run("badpin", http(`${srv.url}/`, { tls: { fingerprint: wrong } }));
    assert.equal(r.ok, false);
    assert.match(r.detail, /pin mismatch/);
  });

  void it("passes with the CA file, relative to the service folder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-monitor-ca-"));
    writeFileSync(join(dir, "ca.pem"), cert.cert);
    const check = http(`${srv.url}/`, { tls: { ca_file: "ca.pem" }, expect_body: "secure" });
    runner.prepare("ca", check, dir);
    assert.equal((await runner.run("ca", check, target, signal)).ok, true);
  });

  void it("insecure: skips verification for that check only, with a warning", async () => {
    const warnings: string[] = [];
    const r2 = new CheckRunner({ warn: (l) => warnings.push(l) });
    const check = http(`${srv.url}/`, { tls: { insecure: true } });
    r2.prepare("insecure", check, "/");
    assert.equal((await r2.run("insecure", check, target, signal)).ok, true);
    assert.equal(warnings.length, 1);
    await r2.close();
    // The process-wide default is untouched: a check without the flag is still refused.
    assert.equal((await run("plain2", http(`${srv.url}/`))).ok, false);
  });

  void it("bad TLS settings fail at prepare (start-up), not as a failing service", () => {
    const r = new CheckRunner();
    assert.throws(() => r.prepare("x", http(`${srv.url}/`, { tls: { ca_file: "missing.pem" } }), "/nowhere"), /cannot read tls.caFile/);
    assert.throws(() => new CheckRunner({ ci: true }).prepare("y", http(`${srv.url}/`, { tls: { insecure: true } }), "/"), /refused in CI mode/);
  });
});

void describe("tcp check", () => {
  void it("open port: healthy; closed port: connection refused", async () => {
    const server = createServer((s: Socket) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const check: TcpCheck = { type: "tcp", port, interval: 60, timeout: 2, retries: 3 };
    const open = await tcpCheck(check, target, signal);
    assert.equal(open.ok, true);
    assert.match(open.detail, new RegExp(`127.0.0.1:${port} accepts connections`));
    await new Promise<void>((r) => server.close(() => r()));
    const closed = await tcpCheck({ ...check, port: await closedPort() }, target, signal);
    assert.equal(closed.ok, false);
    assert.match(closed.detail, /connection refused/);
  });

  void it("an explicit host wins over {address}; no address fails", async () => {
    const check: TcpCheck = { type: "tcp", port: await closedPort(), host: "127.0.0.1", interval: 60, timeout: 2, retries: 3 };
    const r = await tcpCheck(check, noAddress, signal);
    assert.match(r.detail, /^127\.0\.0\.1:\d+: connection refused/);
    assert.match((await tcpCheck({ ...check, host: undefined }, noAddress, signal)).detail, /no address/);
  });
});

void describe("command check (fake executor)", () => {
  const cmd = (command: string | string[]): CommandCheck => ({ type: "command", command, interval: 60, timeout: 2, retries: 3 });
  function fake(f: (script: string) => Promise<{ code: number; output: string }>): CommandExecutor & { scripts: string[]; addresses: string[] } {
    const scripts: string[] = [];
    const addresses: string[] = [];
    return {
      scripts,
      addresses,
      run: (t, script) => {
        scripts.push(script);
        addresses.push(t.address);
        return f(script);
      },
    };
  }

  void it("exit 0 is healthy; another exit fails with the last line of output", async () => {
    const ex = fake((s) => Promise.resolve(s.includes("fail") ? { code: 3, output: "checking...\npg_isready: no response\n" } : { code: 0, output: "" }));
    assert.equal((await commandCheck(cmd("pg_isready"), target, signal, ex)).ok, true);
    const r = await commandCheck(cmd("fail"), target, signal, ex);
    assert.equal(r.ok, false);
    assert.equal(r.detail, "exit 3: pg_isready: no response");
    assert.deepEqual(ex.addresses, ["127.0.0.1", "127.0.0.1"]);
  });

  void it("a list is one quoted command line; a string is a script as it is", () => {
    assert.equal(commandScript(["docker", "exec", "db", "sh", "-c", "echo 'hi'"]), `docker exec db sh -c 'echo '\\''hi'\\'''`);
    assert.equal(commandScript("test -f /run/ok && echo yes"), "test -f /run/ok && echo yes");
  });

  void it("an executor error (SSH unreachable) or a hang is a failure, never a crash", async () => {
    const broken = fake(() => Promise.reject(new Error("nothing accepts SSH connections on 127.0.0.1:22")));
    assert.match((await commandCheck(cmd("true"), target, signal, broken)).detail, /nothing accepts SSH/);
    const hang = fake(() => new Promise(() => undefined));
    const r = await commandCheck({ ...cmd("sleep 100"), timeout: 1 }, target, signal, hang);
    assert.equal(r.detail, "timed out after 1 s");
    assert.match((await commandCheck(cmd("true"), noAddress, signal, broken)).detail, /no address/);
  });

  void it("without an executor the runner says command checks need SSH", async () => {
    const c: ResolvedCheck = cmd("true");
    const r = await new CheckRunner().run("k", c, target, signal);
    assert.match(r.detail, /need SSH access/);
  });
});

void describe("check labels", () => {
  void it("say what is checked", () => {
    assert.equal(checkLabel({ type: "http", url: "http://{address}:80/" }), "http http://{address}:80/");
    assert.equal(checkLabel({ type: "tcp", port: 53 }), "tcp {address}:53");
    assert.equal(checkLabel({ type: "command", command: ["pg_isready", "-q"] }), "command pg_isready -q");
    assert.equal(checkLabel({ type: "command", command: "x".repeat(60) }).length, "command ".length + 40);
  });
});
