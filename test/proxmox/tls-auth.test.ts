import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseApiToken, ticketAuthenticator, ticketNeedsRenewal, tokenAuthenticator, validateCredentials } from "../../src/proxmox/auth.ts";
import type { Ticket } from "../../src/proxmox/auth.ts";
import { ProxmoxConfigError } from "../../src/proxmox/errors.ts";
import { createProxmoxClient } from "../../src/proxmox/client.ts";

void describe("client TLS settings", () => {
  void it("refuses unusable TLS settings as a ProxmoxConfigError with the hint, before any request", () => {
    const options = { endpoint: "https://pve:8006", auth: { tokenId: "root@pam!t", tokenSecret: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" } };
    assert.throws(
      () => createProxmoxClient({ ...options, tls: { fingerprint: "AB:CD" } }),
      (e: unknown) => e instanceof ProxmoxConfigError && /not a SHA-256 fingerprint/.test(e.message) && /System → Certificates/.test(e.hint),
    );
    assert.throws(() => createProxmoxClient({ ...options, tls: { insecure: true }, ci: true }), (e: unknown) => e instanceof ProxmoxConfigError && /refused in CI mode/.test(e.message));
  });
});

void describe("credentials", () => {
  const secret = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
  void it("parses the token string Proxmox shows, with or without the header prefix", () => {
    assert.deepEqual(parseApiToken(`PVEAPIToken=root@pam!deploy=${secret}`), { tokenId: "root@pam!deploy", tokenSecret: secret });
    assert.deepEqual(parseApiToken(`homelab@pve!ci=${secret}`), { tokenId: "homelab@pve!ci", tokenSecret: secret });
  });
  void it("refuses malformed tokens without echoing the secret", () => {
    assert.throws(() => parseApiToken(`root@pam=${secret}`), (e: unknown) => e instanceof ProxmoxConfigError && !e.message.includes(secret));
    assert.throws(() => validateCredentials({ tokenId: "root!x", tokenSecret: secret }), (e: unknown) => e instanceof ProxmoxConfigError && !e.message.includes(secret));
    assert.throws(() => validateCredentials({ username: "root", password: "hunter22" }), (e: unknown) => e instanceof ProxmoxConfigError && !e.message.includes("hunter22"));
  });
  void it("builds the token header and lists its secrets", async () => {
    const auth = tokenAuthenticator({ tokenId: "root@pam!deploy", tokenSecret: secret });
    assert.deepEqual(await auth.headers("POST"), { authorization: `PVEAPIToken=root@pam!deploy=${secret}` });
    assert.ok(auth.secrets().includes(secret));
    assert.equal(auth.invalidate(), false);
  });
});

void describe("ticket authentication", () => {
  void it("renews at lifetime minus margin", () => {
    assert.equal(ticketNeedsRenewal(0, 104 * 60_000, 120 * 60_000, 15 * 60_000), false);
    assert.equal(ticketNeedsRenewal(0, 105 * 60_000, 120 * 60_000, 15 * 60_000), true);
  });

  void it("logs in once for concurrent requests, sends CSRF only on writes, and renews before expiry", async () => {
    let clock = 0;
    let logins = 0;
    const login = async (): Promise<Ticket> => {
      logins += 1;
      await new Promise((r) => setTimeout(r, 5));
      return { ticket: `PVE:root@pam:T${logins}::sig`, csrfToken: `csrf-${logins}`, username: "root@pam" };
    };
    const auth = ticketAuthenticator({ username: "root@pam", password: "hunter22" }, login, { now: () => clock });
    const [get, post] = await Promise.all([auth.headers("GET"), auth.headers("POST")]);
    assert.equal(logins, 1);
    assert.deepEqual(get, { cookie: "PVEAuthCookie=PVE:root@pam:T1::sig" });
    assert.deepEqual(post, { cookie: "PVEAuthCookie=PVE:root@pam:T1::sig", csrfpreventiontoken: "csrf-1" });
    clock = 100 * 60_000;
    await auth.headers("GET");
    assert.equal(logins, 1, "a 100-minute-old ticket is still used");
    clock = 106 * 60_000;
    assert.deepEqual(await auth.headers("PUT"), { cookie: "PVEAuthCookie=PVE:root@pam:T2::sig", csrfpreventiontoken: "csrf-2" });
    assert.equal(logins, 2);
    assert.ok(auth.secrets().includes("hunter22") && auth.secrets().includes("csrf-2"));
    assert.equal(auth.invalidate(), true);
    await auth.headers("GET");
    assert.equal(logins, 3, "invalidate forces a new login");
  });
});
