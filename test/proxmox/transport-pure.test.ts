import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxConfigError,
  ProxmoxConnectionError,
  ProxmoxLockedError,
  ProxmoxNotFoundError,
  ProxmoxResponseError,
  ProxmoxTlsPinError,
} from "../../src/proxmox/errors.ts";
import { DEFAULT_RETRY, apiPath, backoffDelay, encodeForm, parseEndpoint, pathSegment, retryDecision, transportError } from "../../src/proxmox/http.ts";
import type { RetryState } from "../../src/proxmox/http.ts";

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

void describe("backoffDelay", () => {
  void it("grows exponentially, stays within [ceiling/2, ceiling], and is capped", () => {
    assert.equal(backoffDelay(1, 100, 10_000, () => 0), 50);
    assert.equal(backoffDelay(1, 100, 10_000, () => 0.999999), 100);
    assert.equal(backoffDelay(3, 100, 10_000, () => 0), 200);
    assert.equal(backoffDelay(20, 100, 1000, () => 1), 1000);
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

const api = (status: number, reason = "x", paramErrors: Record<string, string> = {}) =>
  new ProxmoxApiError({ method: "GET", path: "/x", status, reason, paramErrors, message: reason, hint: "" });
const conn = (maybeApplied: boolean) => new ProxmoxConnectionError({ method: "GET", path: "/x", code: "E", maybeApplied, message: "m", hint: "h" });
const state = (over: Partial<RetryState> = {}): RetryState => ({ idempotent: true, tries: 1, lockTries: 0, reauthed: false, canReauth: false, ...over });
const policy = { ...DEFAULT_RETRY, random: () => 0.5 };

void describe("retryDecision", () => {
  void it("retries reads on 5xx and broken connections, up to the attempt limit", () => {
    assert.equal(retryDecision(api(500), state(), policy).retry, true);
    assert.equal(retryDecision(api(503), state(), policy).retry, true);
    assert.equal(retryDecision(conn(true), state(), policy).retry, true);
    assert.equal(retryDecision(new ProxmoxResponseError("GET", "/x", "truncated"), state(), policy).retry, true);
    assert.equal(retryDecision(api(500), state({ tries: policy.attempts }), policy).retry, false);
  });
  void it("never repeats a write that may have reached the server", () => {
    assert.equal(retryDecision(api(500), state({ idempotent: false }), policy).retry, false);
    assert.equal(retryDecision(conn(true), state({ idempotent: false }), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxResponseError("POST", "/x", "truncated"), state({ idempotent: false }), policy).retry, false);
  });
  void it("repeats a write whose connection never opened", () => {
    assert.equal(retryDecision(conn(false), state({ idempotent: false }), policy).retry, true);
  });
  void it("does not retry 4xx, 501, not-found, parameter errors or TLS pin failures", () => {
    assert.equal(retryDecision(api(400), state(), policy).retry, false);
    assert.equal(retryDecision(api(501), state(), policy).retry, false);
    assert.equal(retryDecision(api(500, "x", { a: "b" }), state(), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxNotFoundError({ method: "GET", path: "/x", status: 500, reason: "x", message: "x", hint: "" }), state(), policy).retry, false);
    assert.equal(retryDecision(new ProxmoxTlsPinError("h", "A", "B"), state(), policy).retry, false);
  });
  void it("retries locks for writes too, with the lock budget", () => {
    const locked = new ProxmoxLockedError({ method: "POST", path: "/x", status: 500, reason: "x", message: "x", hint: "", lock: "create", kind: "guest" });
    const first = retryDecision(locked, state({ idempotent: false }), policy);
    assert.equal(first.retry && first.kind, "lock");
    assert.equal(retryDecision(locked, state({ idempotent: false, tries: 5, lockTries: policy.lockAttempts - 1 }), policy).retry, false);
  });
  void it("logs in again once after a 401 with a ticket, never with a token", () => {
    const unauthorized = new ProxmoxAuthError({ method: "POST", path: "/x", status: 401, reason: "x", message: "x", hint: "" });
    const decision = retryDecision(unauthorized, state({ idempotent: false, canReauth: true }), policy);
    assert.equal(decision.retry && decision.kind, "reauth");
    assert.equal(retryDecision(unauthorized, state({ canReauth: true, reauthed: true }), policy).retry, false);
    assert.equal(retryDecision(unauthorized, state({ canReauth: false }), policy).retry, false);
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
