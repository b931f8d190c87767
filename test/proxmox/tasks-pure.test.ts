import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProxmoxValidationError } from "../../src/proxmox/errors.ts";
import { formatUpid, parseUpid, pollDelay, taskOutcome } from "../../src/proxmox/tasks.ts";

const UPID = "UPID:pve-02:0001E240:0098967F:6650A1B2:vzcreate:105:homelab@pve!deploy:";

void describe("UPID", () => {
  void it("parses every field (hex numbers) and formats back to the same string", () => {
    const upid = parseUpid(UPID);
    assert.deepEqual(upid, { node: "pve-02", pid: 0x1e240, pstart: 0x98967f, starttime: 0x6650a1b2, type: "vzcreate", id: "105", user: "homelab@pve!deploy" });
    assert.equal(formatUpid(upid), UPID);
  });
  void it("allows an empty id", () => {
    assert.equal(parseUpid("UPID:pve-01:00001234:00005678:6650A1B2:download::root@pam:").id, "");
  });
  void it("refuses what is not a UPID", () => {
    assert.throws(() => parseUpid("UPID:pve-01:12:34"), ProxmoxValidationError);
    assert.throws(() => parseUpid(UPID.slice(0, -1)), ProxmoxValidationError);
  });
});

void describe("taskOutcome", () => {
  void it("counts OK and WARNINGS: N as success, anything else as failure", () => {
    assert.deepEqual(taskOutcome("OK"), { ok: true, warnings: 0 });
    assert.deepEqual(taskOutcome("WARNINGS: 3"), { ok: true, warnings: 3 });
    assert.deepEqual(taskOutcome("unable to create CT 105 - no space left"), { ok: false, warnings: 0 });
    assert.deepEqual(taskOutcome(undefined), { ok: false, warnings: 0 });
  });
});

void describe("pollDelay", () => {
  void it("grows by the factor and stops at the maximum", () => {
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => pollDelay(n, 100, 2, 500)), [100, 200, 400, 500, 500]);
  });
});
