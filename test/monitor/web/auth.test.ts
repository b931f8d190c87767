import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { startEndpoint } from "../../../src/monitor/http.ts";
import type { Endpoint, EndpointSource } from "../../../src/monitor/http.ts";
import { ASSETS } from "../../../src/monitor/web/assets.ts";
import { authFor, COOKIE, hostOf, isLoopback, LoopbackAuth, MAX_FAILURES_PER_MINUTE, TokenAuth } from "../../../src/monitor/web/auth.ts";
import { isPublicPath } from "../../../src/monitor/web/routes.ts";

const TOKEN = "correct-horse-battery-staple-42";

/** An endpoint whose routes serve a page naming a service, and the assets. */
function source(auth: EndpointSource["auth"]): EndpointSource {
  return {
    health: () => ({ status: "ok", services: { secretive: { phase: "healthy" } } }),
    metrics: () => 'homelab_monitor_service_healthy{service="secretive"} 1\n',
    isPublic: isPublicPath,
    routes: (_req, res, path) => {
      if (path === "/") res.writeHead(200, { "content-type": "text/html" }).end("<h1>secretive</h1>");
      else if (path === ASSETS.css.path.replace(/^/, "/")) res.writeHead(200, { "content-type": "text/css" }).end("css");
      else return false;
      return true;
    },
    ...(auth ? { auth } : {}),
  };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(url, { headers });
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

async function login(url: string, token: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(`${url}/login`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ token }).toString() });
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

void describe("status page auth: which addresses need a token", () => {
  void it("loopback addresses, and Host headers", () => {
    for (const h of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]) assert.equal(isLoopback(h), true, h);
    for (const h of ["0.0.0.0", "::", "10.87.88.1", "192.168.1.2", "status.lan", "127.0.0.1.nip.io", "128.0.0.1"]) assert.equal(isLoopback(h), false, h);
    assert.equal(hostOf("127.0.0.1:9464"), "127.0.0.1");
    assert.equal(hostOf("[::1]:9464"), "::1");
    assert.equal(hostOf("localhost"), "localhost");
    assert.equal(hostOf(undefined), "");
  });

  void it("another address without a token is refused; a token works anywhere; a short token is refused", () => {
    assert.deepEqual(authFor("0.0.0.0", undefined), { error: "0.0.0.0 is not a loopback address, so the status page needs a token" });
    const loop = authFor("127.0.0.1", undefined);
    assert.ok("auth" in loop && loop.auth instanceof LoopbackAuth);
    const t = authFor("0.0.0.0", TOKEN);
    assert.ok("auth" in t && t.auth instanceof TokenAuth);
    assert.throws(() => new TokenAuth("short"), /the token is 5 characters long; use at least 16/);
  });
});

void describe("status page auth: a token", () => {
  let ep: Endpoint;
  before(async () => {
    ep = await startEndpoint({ host: "127.0.0.1", port: 0 }, source(new TokenAuth(TOKEN)));
  });
  after(async () => {
    await ep.close();
  });

  void it("without it: a login page for browsers, 401 for the rest, liveness only on /healthz, assets public", async () => {
    const page = await get(`${ep.url}/`, { accept: "text/html" });
    assert.equal(page.status, 401);
    assert.match(page.body, /<form class="login" method="post" action="login">/);
    assert.doesNotMatch(page.body, /secretive/);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'none'/);
    const api = await get(`${ep.url}/metrics`);
    assert.equal(api.status, 401);
    assert.equal(api.headers["www-authenticate"], 'Bearer realm="homelab"');
    assert.doesNotMatch(api.body, /secretive/);
    const health = await get(`${ep.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: "ok" });
    assert.equal((await get(`${ep.url}/${ASSETS.css.path}`)).status, 200);
    assert.equal((await request(`${ep.url}/`, { method: "POST", body: "x" })).statusCode, 405);
  });

  void it("with it as Bearer: everything; a wrong one: 401", async () => {
    assert.equal((await get(`${ep.url}/`, { authorization: `Bearer ${TOKEN}` })).body, "<h1>secretive</h1>");
    assert.match((await get(`${ep.url}/healthz`, { authorization: `Bearer ${TOKEN}` })).body, /secretive/);
    assert.equal((await get(`${ep.url}/metrics`, { authorization: `Bearer ${TOKEN}x` })).status, 401);
  });

  void it("the login form: a wrong token is told, the right one sets an HttpOnly cookie that is not the token", async () => {
    const wrong = await login(ep.url, "nope");
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /That is not the token\./);
    const right = await login(ep.url, TOKEN);
    assert.equal(right.status, 303);
    assert.equal(right.headers["location"], "./");
    const cookie = String(right.headers["set-cookie"]);
    assert.match(cookie, new RegExp(`^${COOKIE}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000$`));
    assert.ok(!cookie.includes(TOKEN));
    const session = cookie.split(";")[0] ?? "";
    assert.equal((await get(`${ep.url}/`, { cookie: `other=1; ${session}` })).status, 200);
    assert.equal((await get(`${ep.url}/`, { cookie: `${session}x` })).status, 401);
    // The token is in no answer.
    for (const r of [wrong, right, await get(`${ep.url}/login`)]) assert.ok(!r.body.includes(TOKEN) && !JSON.stringify(r.headers).includes(TOKEN));
  });

  void it(`at most ${MAX_FAILURES_PER_MINUTE} wrong tokens a minute, then 429 even for the right one`, async () => {
    let now = 0;
    const auth = new TokenAuth(TOKEN, { now: () => now });
    const local = await startEndpoint({ host: "127.0.0.1", port: 0 }, source(auth));
    try {
      for (let i = 0; i < MAX_FAILURES_PER_MINUTE; i++) assert.equal((await login(local.url, `wrong-${i}`)).status, 401);
      assert.equal((await login(local.url, TOKEN)).status, 429);
      now += 61_000;
      assert.equal((await login(local.url, TOKEN)).status, 303);
    } finally {
      await local.close();
    }
  });
});

void describe("status page auth: loopback without a token", () => {
  void it("answers loopback Host names; another Host (DNS rebinding) gets 421 and liveness only", async () => {
    const ep = await startEndpoint({ host: "127.0.0.1", port: 0 }, source(new LoopbackAuth()));
    try {
      assert.equal((await get(`${ep.url}/`)).body, "<h1>secretive</h1>");
      assert.equal((await get(`${ep.url}/`, { host: `localhost:${ep.port}` })).status, 200);
      const rebound = await get(`${ep.url}/`, { host: "evil.example" });
      assert.equal(rebound.status, 421);
      assert.doesNotMatch(rebound.body, /secretive/);
      assert.deepEqual(JSON.parse((await get(`${ep.url}/healthz`, { host: "evil.example" })).body), { status: "ok" });
      assert.equal((await get(`${ep.url}/login`)).status, 404, "no login without a token");
    } finally {
      await ep.close();
    }
  });
});
