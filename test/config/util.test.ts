import { test } from "node:test";
import assert from "node:assert/strict";
import { checkConstraint, compareVersions, normalizeVersion, versionSatisfies } from "../../src/util/versions.ts";
import { closest, editDistance } from "../../src/util/suggest.ts";
import { globMatcher } from "../../src/util/glob.ts";
import { findCycles, topologicalWaves } from "../../src/util/graph.ts";
import { firstInvalidUtf8 } from "../../src/config/source.ts";

test("Proxmox versions normalise to semver", () => {
  assert.equal(normalizeVersion("12.7-1"), "12.7.1");
  assert.equal(normalizeVersion("22.04-1"), "22.4.1");
  assert.equal(normalizeVersion("24.04"), "24.4.0");
  assert.equal(normalizeVersion("12"), "12.0.0");
  assert.equal(normalizeVersion("edge"), undefined);
  assert.ok(versionSatisfies("12.7-1", ">=12"));
  assert.ok(versionSatisfies("24.04-2", "~24.04"));
  assert.ok(!versionSatisfies("22.04-1", "~24.04"));
  assert.ok(versionSatisfies("12.7-1", ">=12.7-1"));
  assert.ok(!versionSatisfies("12.2-1", "^12.7"));
  assert.ok(compareVersions("12.10-1", "12.9-1") > 0);
});

test("constraints: invalid vs unsatisfiable", () => {
  assert.deepEqual(checkConstraint(">=12"), { ok: true, range: ">=12.0.0" });
  assert.equal(checkConstraint("lots").ok, false);
  const c = checkConstraint(">=12 <11");
  assert.ok(!c.ok && c.reason === "unsatisfiable");
});

test("suggestions are bounded to likely typos", () => {
  assert.equal(editDistance("depend_on", "depends_on"), 1);
  assert.equal(editDistance("godo", "good"), 1);
  assert.equal(closest("depend_on", ["depends_on", "protect", "id"]), "depends_on");
  assert.equal(closest("xyz", ["depends_on", "protect"]), undefined);
});

test("glob matcher takes one argument (no filter() index trap)", () => {
  const m = globMatcher("*debian*");
  assert.deepEqual(["debian-12-standard_12.7-1_amd64.tar.zst", "ubuntu-24.04", "Debian-11"].filter(m), ["debian-12-standard_12.7-1_amd64.tar.zst", "Debian-11"]);
});

test("graphs: cycles found once, waves ordered", () => {
  const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", []]]);
  assert.deepEqual(findCycles(g), [["a", "b", "c", "a"]]);
  assert.deepEqual(topologicalWaves(new Map([["app", ["db"]], ["db", []], ["web", ["app", "db"]], ["x", []]])), [["db", "x"], ["app"], ["web"]]);
  assert.throws(() => topologicalWaves(g), /cycle/);
});

test("UTF-8 validation finds the first bad byte, accepts good multibyte text", () => {
  assert.equal(firstInvalidUtf8(Buffer.from("héllo ✓ 𝄞")), -1);
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xc3])), 1);
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80])), 1); // a surrogate
});
