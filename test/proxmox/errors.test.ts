import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ProxmoxAlreadyExistsError,
  ProxmoxApiError,
  ProxmoxAuthError,
  ProxmoxLockedError,
  ProxmoxNotFoundError,
  ProxmoxTaskError,
  classifyApiFailure,
  classifyTaskFailure,
  contextFromPath,
  redactSecrets,
} from "../../src/proxmox/errors.ts";

const ctx = (method: string, path: string) => contextFromPath(method, path);

void describe("contextFromPath", () => {
  void it("reads node and vmid from a guest path", () => {
    assert.deepEqual(ctx("POST", "/nodes/pve-02/lxc/105/status/start"), { method: "POST", path: "/nodes/pve-02/lxc/105/status/start", node: "pve-02", vmid: 105 });
  });
  void it("reads the node alone from a node path", () => {
    assert.deepEqual(ctx("GET", "/nodes/pve-01/storage"), { method: "GET", path: "/nodes/pve-01/storage", node: "pve-01" });
  });
  void it("has neither for cluster paths", () => {
    assert.deepEqual(ctx("GET", "/cluster/nextid"), { method: "GET", path: "/cluster/nextid" });
  });
});

void describe("classifyApiFailure", () => {
  void it("turns a locked guest (reason phrase only) into ProxmoxLockedError with the issue's wording", () => {
    const error = classifyApiFailure({ status: 500, reason: "CT is locked (create)", body: { data: null } }, ctx("POST", "/nodes/pve-02/lxc/105/status/start"));
    assert.ok(error instanceof ProxmoxLockedError);
    assert.equal(error.lock, "create");
    assert.equal(error.kind, "guest");
    assert.equal(error.vmid, 105);
    assert.equal(error.explain(), "CT 105 is locked (create): another operation is running on it; retry, or check the task log on node pve-02");
  });

  void it("prefers the body's message over the reason phrase", () => {
    const error = classifyApiFailure({ status: 500, reason: "Internal Server Error", body: { data: null, message: "CT 107 is locked (backup)\n" } }, ctx("PUT", "/nodes/pve-01/lxc/107/config"));
    assert.ok(error instanceof ProxmoxLockedError);
    assert.equal(error.lock, "backup");
    assert.equal(error.message, "CT 107 is locked (backup)");
  });

  void it("recognises a config lock timeout", () => {
    const error = classifyApiFailure({ status: 500, reason: "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout", body: null }, ctx("PUT", "/nodes/pve-01/lxc/105/config"));
    assert.ok(error instanceof ProxmoxLockedError);
    assert.equal(error.kind, "timeout");
    assert.match(error.message, /CT 105/);
  });

  void it("lists every parameter error of a 400", () => {
    const error = classifyApiFailure(
      { status: 400, reason: "Parameter verification failed.", body: { data: null, errors: { memory: "value must be at least 16\n", onboot: "type check ('boolean') failed - got 'true'" } } },
      ctx("POST", "/nodes/pve-01/lxc"),
    );
    assert.equal(error.constructor, ProxmoxApiError);
    assert.deepEqual(error.paramErrors, { memory: "value must be at least 16", onboot: "type check ('boolean') failed - got 'true'" });
    assert.equal(error.message, "Parameter verification failed: memory: value must be at least 16; onboot: type check ('boolean') failed - got 'true'");
    assert.equal(error.hint, "fix the parameters memory, onboot");
  });

  void it("recognises a lost id race, from the reason or from the errors map", () => {
    const fromReason = classifyApiFailure({ status: 500, reason: "CT 101 already exists on node 'pve-01'", body: null }, ctx("POST", "/nodes/pve-01/lxc"));
    assert.ok(fromReason instanceof ProxmoxAlreadyExistsError);
    assert.equal(fromReason.vmid, 101);
    const fromMap = classifyApiFailure({ status: 400, reason: "Parameter verification failed.", body: { errors: { vmid: "VM 100 already exists" } } }, ctx("GET", "/cluster/nextid"));
    assert.ok(fromMap instanceof ProxmoxAlreadyExistsError);
    assert.equal(fromMap.vmid, 100);
  });

  void it("recognises missing things", () => {
    const error = classifyApiFailure({ status: 500, reason: "Configuration file 'nodes/pve-01/lxc/999.conf' does not exist", body: null }, ctx("GET", "/nodes/pve-01/lxc/999/config"));
    assert.ok(error instanceof ProxmoxNotFoundError);
    assert.ok(classifyApiFailure({ status: 404, reason: "Not Found", body: null }, ctx("GET", "/x")) instanceof ProxmoxNotFoundError);
    const node = classifyApiFailure({ status: 500, reason: "hostname lookup 'pve-09' failed - failed to get address info for: pve-09: Name or service not known", body: null }, ctx("GET", "/nodes/pve-09/status"));
    assert.ok(node instanceof ProxmoxNotFoundError);
    assert.equal(node.node, "pve-09");
  });

  void it("gives 401 a credentials hint that depends on the auth kind", () => {
    const token = classifyApiFailure({ status: 401, reason: "authentication failure", body: null, authKind: "token" }, ctx("GET", "/version"));
    assert.ok(token instanceof ProxmoxAuthError);
    assert.match(token.hint, /API token/);
    const ticket = classifyApiFailure({ status: 401, reason: "authentication failure", body: null, authKind: "ticket" }, ctx("GET", "/version"));
    assert.match(ticket.hint, /username and password/);
  });

  void it("explains the root-only feature flags", () => {
    const error = classifyApiFailure(
      { status: 403, reason: "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)", body: null },
      ctx("POST", "/nodes/pve-01/lxc"),
    );
    assert.ok(error instanceof ProxmoxAuthError);
    assert.match(error.hint, /only root@pam/);
  });

  void it("tells a lost update (digest mismatch) to read again", () => {
    const error = classifyApiFailure({ status: 500, reason: "detected modified configuration - file changed by other user? Try again.", body: null }, ctx("PUT", "/nodes/pve-01/config"));
    assert.equal(error.constructor, ProxmoxApiError);
    assert.match(error.hint, /read it again/);
  });

  void it("falls back to a generic API error with the status when nothing else is known", () => {
    const error = classifyApiFailure({ status: 503, reason: "", body: undefined }, ctx("GET", "/version"));
    assert.equal(error.constructor, ProxmoxApiError);
    assert.equal(error.message, "HTTP 503");
    assert.equal(error.status, 503);
  });
});

void describe("classifyTaskFailure", () => {
  const upid = (type: string, id: string) => `UPID:pve-01:00001234:00005678:6650A1B2:${type}:${id}:root@pam!homelab:`;
  const failed = (type: string, id: string, exitstatus: string | undefined) => ({
    upid: upid(type, id),
    node: "pve-01",
    type,
    id,
    exitstatus,
    logTail: ["starting", `TASK ERROR: ${exitstatus ?? ""}`],
  });
  const start = ctx("POST", "/nodes/pve-01/lxc/105/status/start");

  void it("turns a start of a container that does not exist into ProxmoxNotFoundError", () => {
    const failure = failed("vzstart", "105", "Configuration file 'nodes/pve-01/lxc/105.conf' does not exist");
    const error = classifyTaskFailure(failure, start);
    assert.ok(error instanceof ProxmoxNotFoundError);
    assert.equal(error.message, "CT 105 does not exist on node pve-01");
    assert.match(error.hint, /guest id/);
    assert.equal(error.node, "pve-01");
    assert.equal(error.vmid, 105);
    assert.equal(error.method, "POST");
    assert.equal(error.path, "/nodes/pve-01/lxc/105/status/start");
    assert.equal(error.status, 500);
    assert.equal(error.reason, failure.exitstatus);
    assert.deepEqual(error.task, failure);
  });

  void it("names a missing template and how to download it", () => {
    const error = classifyTaskFailure(
      failed("vzcreate", "301", "unable to create CT 301 - volume 'local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst' does not exist"),
      ctx("POST", "/nodes/pve-01/lxc"),
    );
    assert.ok(error instanceof ProxmoxNotFoundError);
    assert.equal(error.message, "template local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst does not exist on node pve-01");
    assert.equal(error.vmid, 301, "the vmid comes from the UPID when the request path has none");
    assert.match(error.hint, /pveam update && pveam download local debian-13-standard_13\.1-2_amd64\.tar\.zst/);
    assert.match(error.hint, /POST \/nodes\/pve-01\/aplinfo/);
    assert.match(error.hint, /pveam list local/);
    const file = classifyTaskFailure(failed("vzcreate", "302", "unable to create CT 302 - can't find file 'nas:vztmpl/x_1_amd64.tar.zst'"), ctx("POST", "/nodes/pve-01/lxc"));
    assert.ok(file instanceof ProxmoxNotFoundError);
    assert.match(file.hint, /pveam download nas x_1_amd64\.tar\.zst/);
  });

  void it("reads a guest lock or a config lock timeout like the API answer, so the same retry applies", () => {
    const guest = classifyTaskFailure(failed("vzstart", "105", "CT is locked (backup)"), start);
    assert.ok(guest instanceof ProxmoxLockedError);
    assert.equal(guest.kind, "guest");
    assert.equal(guest.lock, "backup");
    const sync = classifyApiFailure({ status: 500, reason: "CT is locked (backup)", body: null }, start);
    assert.equal(guest.explain(), sync.explain());
    assert.equal(guest.explain(), "CT 105 is locked (backup): another operation is running on it; retry, or check the task log on node pve-01");
    assert.equal(guest.task?.exitstatus, "CT is locked (backup)");
    assert.equal(sync.task, undefined);
    const timeout = classifyTaskFailure(failed("vzstop", "105", "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout"), ctx("POST", "/nodes/pve-01/lxc/105/status/stop"));
    assert.ok(timeout instanceof ProxmoxLockedError);
    assert.equal(timeout.kind, "timeout");
    assert.equal(timeout.explain(), "CT 105: timed out waiting for its config lock on node pve-01: another operation held the guest's configuration for too long; retry when it finishes");
  });

  void it("recognises a lost id race inside a create task", () => {
    const error = classifyTaskFailure(failed("vzcreate", "101", "unable to create CT 101 - CT 101 already exists on node 'pve-02'"), ctx("POST", "/nodes/pve-01/lxc"));
    assert.ok(error instanceof ProxmoxAlreadyExistsError);
    assert.equal(error.vmid, 101);
  });

  void it("leaves every other failure a ProxmoxTaskError, even one that says 'does not exist'", () => {
    for (const exitstatus of ["bridge 'vmbr7' does not exist", "unable to create CT 300 - volume 'local-lvm:vm-300-disk-0' does not exist", "command 'lxc-start -n 105' failed: exit code 1"]) {
      const error = classifyTaskFailure(failed("vzstart", "105", exitstatus), start);
      assert.equal(error.constructor, ProxmoxTaskError, exitstatus);
      assert.ok(error instanceof ProxmoxTaskError);
      assert.equal(error.message, `task vzstart 105 on pve-01 failed: ${exitstatus}`);
      assert.equal(error.exitstatus, exitstatus);
      assert.deepEqual(error.logTail, ["starting", `TASK ERROR: ${exitstatus}`]);
      assert.match(error.hint, /pvenode task log UPID:pve-01:/);
    }
    const silent = classifyTaskFailure(failed("download", "", undefined));
    assert.ok(silent instanceof ProxmoxTaskError);
    assert.equal(silent.message, "task download on pve-01 failed: no exit status");
  });

  void it("without the starting request, names the task's status call and the UPID's vmid", () => {
    const error = classifyTaskFailure(failed("vzstart", "105", "CT is locked (mounted)"));
    assert.ok(error instanceof ProxmoxLockedError);
    assert.equal(error.method, "GET");
    assert.equal(error.path, `/nodes/pve-01/tasks/${upid("vzstart", "105")}/status`);
    assert.equal(error.vmid, 105);
    assert.equal(error.message, "CT 105 is locked (mounted)");
  });
});

void describe("redactSecrets", () => {
  void it("replaces every occurrence and ignores tiny values", () => {
    assert.equal(redactSecrets("a s3cret b s3cret", ["s3cret", "ab"]), "a *** b ***");
  });
});
