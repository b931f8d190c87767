import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withSandbox } from "./helpers.ts";

interface Ticket {
  ticket: string;
  CSRFPreventionToken: string;
  username: string;
}

describe("sandbox authentication", () => {
  it("401 without credentials and for a bad token, reason phrase only", async () => {
    await withSandbox({}, async (c, sb) => {
      const none = await c.call("GET", "/version", { auth: "none" });
      assert.equal(none.status, 401);
      assert.equal(none.reason, "No ticket");
      const bad = await c.call("GET", "/version", { auth: { token: `${sb.tokenId}=00000000-0000-0000-0000-000000000000` } });
      assert.equal(bad.status, 401);
      assert.equal(bad.reason, "authentication failure");
      assert.equal(bad.text, "");
      const otherId = await c.call("GET", "/version", { auth: { token: `root@pam!other=${sb.tokenSecret}` } });
      assert.equal(otherId.status, 401);
      assert.equal((await c.call("GET", "/version")).status, 200);
    });
  });

  it("the 401 delay is configurable and off by default", async () => {
    await withSandbox({}, async (c) => {
      const t0 = Date.now();
      assert.equal((await c.call("GET", "/version", { auth: { token: "root@pam!homelab=wrong" } })).status, 401);
      assert.ok(Date.now() - t0 < 1000, "no delay by default");
    });
    await withSandbox({ authDelayMs: 1200 }, async (c) => {
      const t0 = Date.now();
      assert.equal((await c.call("GET", "/version", { auth: { token: "root@pam!homelab=wrong" } })).status, 401);
      assert.ok(Date.now() - t0 >= 1190, "delayed like Proxmox's 3 s");
      const t1 = Date.now();
      assert.equal((await c.call("GET", "/version")).status, 200);
      assert.ok(Date.now() - t1 < 1000, "good credentials are not delayed");
    });
  });

  it("tickets: password login, cookie auth, CSRF required on non-GET", async () => {
    await withSandbox({}, async (c, sb) => {
      const wrong = await c.call("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: "nope1" } });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.reason, "authentication failure");
      const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as Ticket;
      assert.equal(t.username, "root@pam");
      assert.match(t.ticket, /^PVE:root@pam:[0-9A-F]{8}::/);
      assert.equal((await c.call("GET", "/nodes", { auth: { ticket: t.ticket } })).status, 200);
      const noCsrf = await c.call("PUT", "/nodes/pve-01/config", { auth: { ticket: t.ticket }, form: { description: "x" } });
      assert.equal(noCsrf.status, 401);
      assert.equal(noCsrf.reason, "Permission denied - invalid csrf token");
      const withCsrf = await c.call("PUT", "/nodes/pve-01/config", { auth: { ticket: t.ticket, csrf: t.CSRFPreventionToken }, form: { description: "x" } });
      assert.equal(withCsrf.status, 200);
      const forged = await c.call("GET", "/nodes", { auth: { ticket: t.ticket.replace(/::.*/, "::AAAA") } });
      assert.equal(forged.status, 401);
      // `realm` separately, as the GUI sends it.
      const realm = await c.call("POST", "/access/ticket", { auth: "none", form: { username: "root", realm: "pam", password: sb.rootPassword } });
      assert.equal(realm.status, 200);
    });
  });

  it("tickets expire after two hours (injected clock) and can be renewed before", async () => {
    let now = Date.now();
    await withSandbox({ clock: () => now }, async (c, sb) => {
      const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as Ticket;
      now += 2 * 3600 * 1000 - 60_000;
      assert.equal((await c.call("GET", "/version", { auth: { ticket: t.ticket } })).status, 200);
      const renewed = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: t.ticket } })) as Ticket;
      now += 120_000;
      const expired = await c.call("GET", "/version", { auth: { ticket: t.ticket } });
      assert.equal(expired.status, 401);
      assert.equal((await c.call("GET", "/version", { auth: { ticket: renewed.ticket } })).status, 200);
      const late = await c.call("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: t.ticket } });
      assert.equal(late.status, 401, "an expired ticket cannot be renewed");
    });
  });

  it("the admin surface needs the token", async () => {
    await withSandbox({}, async (c, sb) => {
      assert.equal((await c.call("GET", "/sandbox/counters", { auth: "none" })).status, 401);
      const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as Ticket;
      assert.equal((await c.call("GET", "/sandbox/counters", { auth: { ticket: t.ticket } })).status, 401);
      assert.equal((await c.call("GET", "/sandbox/counters")).status, 200);
    });
  });
});
