import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseApiToken, ticketAuthenticator, ticketNeedsRenewal, tokenAuthenticator, validateCredentials } from "../../src/proxmox/auth.ts";
import type { Ticket } from "../../src/proxmox/auth.ts";
import { ProxmoxConfigError } from "../../src/proxmox/errors.ts";
import { normalizeFingerprint, resolveTlsPolicy } from "../../src/proxmox/tls.ts";
import { tempFile, testCert } from "./helpers/fake-server.ts";

const FP = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

void describe("normalizeFingerprint", () => {
  void it("accepts colons or none, any case, and a sha256 prefix", () => {
    assert.equal(normalizeFingerprint(FP.toLowerCase()), FP);
    assert.equal(normalizeFingerprint(FP.replace(/:/g, "")), FP);
    assert.equal(normalizeFingerprint(`sha256/${FP}`), FP);
  });
  void it("refuses anything but 32 bytes of hex", () => {
    assert.throws(() => normalizeFingerprint("AB:CD"), ProxmoxConfigError);
    assert.throws(() => normalizeFingerprint(FP.replace("AB", "ZZ")), ProxmoxConfigError);
  });
});

void describe("resolveTlsPolicy", () => {
  const base = { ci: false, endpoint: "https://pve:8006" };
  void it("verifies against the system store by default", () => {
    assert.deepEqual(resolveTlsPolicy(undefined, { ...base, warn: () => assert.fail("no warning expected") }), { ca: undefined, pin: undefined, insecure: false });
  });
  void it("warns about insecure, and refuses it in CI mode", () => {
    const warnings: string[] = [];
    assert.equal(resolveTlsPolicy({ insecure: true }, { ...base, warn: (l) => warnings.push(l) }).insecure, true);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /TLS verification is disabled/);
    assert.throws(() => resolveTlsPolicy({ insecure: true }, { ...base, ci: true, warn: () => undefined }), /refused in CI mode/);
  });
  void it("refuses insecure combined with a pin", () => {
    assert.throws(() => resolveTlsPolicy({ insecure: true, fingerprint: FP }, { ...base, warn: () => undefined }), ProxmoxConfigError);
  });
  void it("reads a CA file, and refuses a missing or non-PEM one", () => {
    const cert = testCert();
    assert.equal(resolveTlsPolicy({ caFile: cert.certFile }, { ...base, warn: () => undefined }).ca, cert.cert);
    assert.throws(() => resolveTlsPolicy({ caFile: "/nonexistent/ca.pem" }, { ...base, warn: () => undefined }), /cannot read tls.caFile/);
    assert.throws(() => resolveTlsPolicy({ caFile: tempFile("ca.pem", "hello") }, { ...base, warn: () => undefined }), /not a PEM/);
  });
  void it("normalises the pin", () => {
    assert.equal(resolveTlsPolicy({ fingerprint: FP.toLowerCase() }, { ...base, warn: () => undefined }).pin, FP);
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
