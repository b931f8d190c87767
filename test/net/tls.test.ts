/** The TLS policy shared by the Proxmox client and the monitor's http checks. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TlsSettingsError, normalizeFingerprint, resolveTlsPolicy } from "../../src/net/tls.ts";
import { tempFile, testCert } from "../proxmox/helpers/fake-server.ts";

const FP = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

void describe("normalizeFingerprint", () => {
  void it("accepts colons or none, any case, and a sha256 prefix", () => {
    assert.equal(normalizeFingerprint(FP.toLowerCase()), FP);
    assert.equal(normalizeFingerprint(FP.replace(/:/g, "")), FP);
    assert.equal(normalizeFingerprint(`sha256/${FP}`), FP);
  });
  void it("refuses anything but 32 bytes of hex", () => {
    assert.throws(() => normalizeFingerprint("AB:CD"), TlsSettingsError);
    assert.throws(() => normalizeFingerprint(FP.replace("AB", "ZZ")), TlsSettingsError);
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
    assert.throws(() => resolveTlsPolicy({ insecure: true, fingerprint: FP }, { ...base, warn: () => undefined }), TlsSettingsError);
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
