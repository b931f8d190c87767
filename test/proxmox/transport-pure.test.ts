import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProxmoxConfigError, ProxmoxConnectionError } from "../../src/proxmox/errors.ts";
import { apiPath, encodeForm, parseEndpoint, pathSegment, transportError } from "../../src/proxmox/http.ts";

void describe("encodeForm", () => {
  void it("writes booleans as 1/0, numbers as text, and leaves out undefined and null", () => {
    assert.equal(encodeForm({ start: true, unprivileged: false, memory: 512, swap: undefined, pool: null }), "start=1&unprivileged=0&memory=512");
  });
  void it("percent-encodes UTF-8 and reserved characters", () => {
    const encoded = encodeForm({ description: "Grüße 🚀 a&b=c;d" });
    assert.equal(new URLSearchParams(encoded).get("description"), "Grüße 🚀 a&b=c;d");
    assert.match(encoded, /Gr%C3%BC%C3%9Fe/);
  });
  void it("refuses non-finite numbers", () => {
    assert.throws(() => encodeForm({ memory: Number.NaN }), ProxmoxConfigError);
  });
});

void describe("pathSegment and apiPath", () => {
  void it("keeps UPIDs readable and escapes slashes and spaces", () => {
    assert.equal(pathSegment("UPID:pve-01:0000ABCD:00112233:65A1B2C3:vzcreate:101:root@pam!t:"), "UPID:pve-01:0000ABCD:00112233:65A1B2C3:vzcreate:101:root@pam!t:");
    assert.equal(pathSegment("a/b c"), "a%2Fb%20c");
  });
  void it("escapes each interpolated value as one segment", () => {
    assert.equal(apiPath`/nodes/${"pve/01"}/lxc/${105}/config`, "/nodes/pve%2F01/lxc/105/config");
  });
  void it("refuses empty and dot segments", () => {
    assert.throws(() => pathSegment(".."), ProxmoxConfigError);
    assert.throws(() => pathSegment(""), ProxmoxConfigError);
  });
});

void describe("parseEndpoint", () => {
  void it("adds /api2/json", () => {
    assert.deepEqual(parseEndpoint("https://pve-01:8006", false), { origin: "https://pve-01:8006", basePath: "/api2/json", host: "pve-01:8006" });
    assert.equal(parseEndpoint("https://pve-01:8006/api2/json/", false).basePath, "/api2/json");
  });
  void it("refuses http unless insecure, credentials in the URL, and other paths", () => {
    assert.throws(() => parseEndpoint("http://pve-01:8006", false), ProxmoxConfigError);
    assert.equal(parseEndpoint("http://pve-01:8006", true).origin, "http://pve-01:8006");
    assert.throws(() => parseEndpoint("https://root:pw@pve-01:8006", false), (e: unknown) => e instanceof ProxmoxConfigError && !e.message.includes("pw"));
    assert.throws(() => parseEndpoint("https://pve-01:8006/other", false), ProxmoxConfigError);
    assert.throws(() => parseEndpoint("pve-01", false), ProxmoxConfigError);
  });
});

void describe("transportError", () => {
  void it("marks refused connections as not sent, resets as maybe applied, and redacts secrets", () => {
    const refused = transportError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "POST", "/x", "h:1", []);
    assert.ok(refused instanceof ProxmoxConnectionError);
    assert.equal(refused.maybeApplied, false);
    const reset = transportError(Object.assign(new Error("other side closed sekret-value"), { code: "UND_ERR_SOCKET" }), "POST", "/x", "h:1", ["sekret-value"]);
    assert.ok(reset instanceof ProxmoxConnectionError);
    assert.equal(reset.maybeApplied, true);
    assert.doesNotMatch(reset.message, /sekret-value/);
    assert.match(reset.hint, /may have been applied/);
  });
});
