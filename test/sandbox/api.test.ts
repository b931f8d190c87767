import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import { stat } from "node:fs/promises";
import type { TLSSocket } from "node:tls";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../src/sandbox/server.ts";
import { TestClient } from "./helpers.ts";

describe("sandbox API basics", () => {
  let sb: RunningSandbox;
  let c: TestClient;
  before(async () => {
    sb = await startSandboxServer({ taskDurationMs: 20 });
    c = new TestClient(sb);
  });
  after(async () => {
    c.close();
    await sb.close();
  });

  it("listens on loopback over HTTPS with a per-sandbox certificate, CA and fingerprint", async () => {
    assert.match(sb.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(sb.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const ca = new X509Certificate(sb.caPem);
    assert.equal(ca.ca, true);
    const keyMode = (await stat(`${sb.stateDir}/tls/server.key`)).mode & 0o777;
    assert.equal(keyMode, 0o600);
    // A client that pins the fingerprint (no CA) sees the same certificate.
    const seen = await new Promise<string>((resolve, reject) => {
      const req = request(`${sb.url}/api2/json/version`, { rejectUnauthorized: false, agent: false }, (res) => {
        const cert = (res.socket as TLSSocket).getPeerCertificate();
        res.resume();
        resolve(cert.fingerprint256);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(seen, sb.fingerprint);
  });

  it("a second sandbox gets its own certificate", async () => {
    const other = await startSandboxServer({});
    try {
      assert.notEqual(other.fingerprint, sb.fingerprint);
      assert.notEqual(other.tokenSecret, sb.tokenSecret);
    } finally {
      await other.close();
    }
  });

  it("GET /version", async () => {
    const v = (await c.ok("GET", "/version")) as Record<string, string>;
    assert.match(v["version"] ?? "", /^\d+\.\d+\.\d+$/);
    assert.match(v["release"] ?? "", /^\d+\.\d+$/);
  });

  it("models three nodes of different sizes by default", async () => {
    const nodes = (await c.ok("GET", "/nodes")) as { node: string; maxmem: number; maxcpu: number; status: string }[];
    assert.deepEqual(nodes.map((n) => n.node), ["pve-01", "pve-02", "pve-03"]);
    assert.equal(new Set(nodes.map((n) => n.maxmem)).size, 3);
    assert.equal(new Set(nodes.map((n) => n.maxcpu)).size, 3);
    assert.ok(nodes.every((n) => n.status === "online"));
    const st = (await c.ok("GET", "/nodes/pve-02/status")) as { memory: { total: number; used: number }; cpuinfo: { cpus: number } };
    assert.equal(st.memory.total, nodes[1]?.maxmem);
    assert.equal(st.cpuinfo.cpus, nodes[1]?.maxcpu);
  });

  it("the node count is configurable", async () => {
    const one = await startSandboxServer({ nodes: 5 });
    const c1 = new TestClient(one);
    try {
      const nodes = (await c1.ok("GET", "/nodes")) as { node: string }[];
      assert.deepEqual(nodes.map((n) => n.node), ["pve-01", "pve-02", "pve-03", "pve-04", "pve-05"]);
    } finally {
      c1.close();
      await one.close();
    }
  });

  it("unknown routes are 501 with Proxmox's reason phrase", async () => {
    const a = await c.call("GET", "/foo");
    assert.equal(a.status, 501);
    assert.equal(a.reason, "Method 'GET /foo' not implemented");
    const b = await c.call("POST", "/version");
    assert.equal(b.status, 501);
    assert.equal(b.reason, "Method 'POST /version' not implemented");
  });

  it("an unknown node is Proxmox's 500 with the message as reason phrase and in `message`", async () => {
    const a = await c.call("GET", "/nodes/pve-09/status");
    assert.equal(a.status, 500);
    assert.match(a.reason, /^hostname lookup 'pve-09' failed/);
    assert.equal((a.body as { message: string }).message, a.reason);
    assert.equal((a.body as { data: unknown }).data, null);
  });

  it("an unknown parameter is refused as Proxmox refuses it", async () => {
    const a = await c.call("GET", "/cluster/resources?type=vm&bogus=1");
    assert.equal(a.status, 400);
    assert.equal(a.reason, "Parameter verification failed.");
    assert.deepEqual(a.body, {
      data: null,
      message: "Parameter verification failed.",
      errors: { bogus: "property is not defined in schema and the schema does not allow additional properties" },
    });
  });

  it("enums, integer ranges and formats are checked, all errors at once", async () => {
    const a = await c.call("GET", "/cluster/resources?type=vms");
    assert.equal(a.status, 400);
    assert.match((a.body as { errors: Record<string, string> }).errors["type"] ?? "", /enumeration 'vm, storage, node, sdn'/);
    const b = await c.call("GET", "/cluster/nextid?vmid=99");
    assert.equal((b.body as { errors: Record<string, string> }).errors["vmid"], "value must have a minimum value of 100");
    const d = await c.call("GET", "/nodes/bad_name!/status");
    assert.equal(d.status, 400);
    assert.match((d.body as { errors: Record<string, string> }).errors["node"] ?? "", /node name/);
    const e = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "abc" } });
    const errors = (e.body as { errors: Record<string, string> }).errors;
    assert.equal(errors["vmid"], "type check ('integer') failed - got 'abc'");
    assert.equal(errors["ostemplate"], "property is missing and it is not optional");
  });

  it("form-encoded booleans are only 0 or 1; JSON true/false is accepted", async () => {
    const a = await c.call("GET", "/nodes/pve-01/storage?enabled=true");
    assert.equal(a.status, 400);
    assert.equal((a.body as { errors: Record<string, string> }).errors["enabled"], "type check ('boolean') failed - got 'true'");
    assert.equal((await c.call("GET", "/nodes/pve-01/storage?enabled=1")).status, 200);
    const form = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "150", ostemplate: "local:vztmpl/none.tar.zst", start: "yes" } });
    assert.equal(form.status, 400);
    assert.equal((form.body as { errors: Record<string, string> }).errors["start"], "type check ('boolean') failed - got 'yes'");
    const json = await c.call("POST", "/nodes/pve-01/lxc", { json: { vmid: 150, ostemplate: "nfs:vztmpl/none.tar.zst", rootfs: "local-lvm:1", start: true } });
    assert.equal(json.status, 500, "a JSON boolean passes the parameter check");
    assert.equal(json.reason, "storage 'nfs' does not exist");
    const jsonBad = await c.call("POST", "/nodes/pve-01/lxc", { json: { vmid: 150, ostemplate: "nfs:vztmpl/none.tar.zst", rootfs: "local-lvm:1", start: "true" } });
    assert.equal(jsonBad.status, 400);
  });

  it("storages: `local` holds templates, `local-lvm` holds container volumes; content filter", async () => {
    const all = (await c.ok("GET", "/nodes/pve-01/storage")) as { storage: string; content: string; type: string }[];
    assert.deepEqual(all.map((s) => s.storage), ["local", "local-lvm"]);
    const rootdir = (await c.ok("GET", "/nodes/pve-01/storage?content=rootdir")) as { storage: string }[];
    assert.deepEqual(rootdir.map((s) => s.storage), ["local-lvm"]);
    const content = (await c.ok("GET", "/nodes/pve-01/storage/local/content?content=vztmpl")) as { volid: string }[];
    const names = content.map((x) => x.volid);
    for (const t of ["debian-11-standard_11.7-1", "debian-12-standard_12.2-1", "debian-12-standard_12.7-1", "debian-13-standard_13.1-2", "ubuntu-22.04-standard_22.04-1", "ubuntu-24.04-standard_24.04-2"]) {
      assert.ok(names.includes(`local:vztmpl/${t}_amd64.tar.zst`), t);
    }
    const iso = (await c.ok("GET", "/nodes/pve-01/storage/local/content?content=iso")) as unknown[];
    assert.equal(iso.length, 0);
    const missing = await c.call("GET", "/nodes/pve-01/storage/nfs/content");
    assert.equal(missing.status, 500);
    assert.equal(missing.reason, "storage 'nfs' does not exist");
  });

  it("aplinfo lists downloadable templates and a download is a task that adds it to `local`", async () => {
    const list = (await c.ok("GET", "/nodes/pve-02/aplinfo")) as { template: string; os: string; type: string }[];
    // Not on the nodes from the start (Debian 11, 12 and 13 and Ubuntu 22.04 and 24.04 are).
    const wanted = list.find((t) => t.os === "ubuntu-25.04");
    assert.ok(wanted);
    const bad = await c.call("POST", "/nodes/pve-02/aplinfo", { form: { storage: "local", template: "nope.tar.zst" } });
    assert.equal(bad.status, 400);
    assert.deepEqual((bad.body as { errors: unknown }).errors, { template: "no such template" });
    const wrongStorage = await c.call("POST", "/nodes/pve-02/aplinfo", { form: { storage: "local-lvm", template: wanted.template } });
    assert.equal(wrongStorage.reason, "storage 'local-lvm' does not support templates");
    const upid = await c.ok("POST", "/nodes/pve-02/aplinfo", { form: { storage: "local", template: wanted.template } });
    assert.match(String(upid), /^UPID:pve-02:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:download:/);
    const st = await c.waitTask("pve-02", upid);
    assert.equal(st.exitstatus, "OK");
    const content = (await c.ok("GET", "/nodes/pve-02/storage/local/content")) as { volid: string }[];
    assert.ok(content.some((x) => x.volid === `local:vztmpl/${wanted.template}`));
    const elsewhere = (await c.ok("GET", "/nodes/pve-01/storage/local/content")) as { volid: string }[];
    assert.ok(!elsewhere.some((x) => x.volid === `local:vztmpl/${wanted.template}`), "local storage is per node");
  });

  it("node notes: GET/PUT /nodes/{node}/config with digest and delete", async () => {
    const before1 = (await c.ok("GET", "/nodes/pve-03/config")) as { digest: string; description?: string };
    assert.equal(before1.description, undefined);
    await c.ok("PUT", "/nodes/pve-03/config", { form: { description: "tier 2 box", digest: before1.digest } });
    const after1 = (await c.ok("GET", "/nodes/pve-03/config")) as { digest: string; description?: string };
    assert.equal(after1.description, "tier 2 box");
    const stale = await c.call("PUT", "/nodes/pve-03/config", { form: { description: "again", digest: before1.digest } });
    assert.equal(stale.status, 500);
    assert.match(stale.reason, /detected modified configuration/);
    await c.ok("PUT", "/nodes/pve-03/config", { form: { delete: "description" } });
    assert.equal(((await c.ok("GET", "/nodes/pve-03/config")) as { description?: string }).description, undefined);
  });

  it("cluster resources filter by type and list storages and nodes", async () => {
    const nodes = (await c.ok("GET", "/cluster/resources?type=node")) as { type: string; id: string }[];
    assert.deepEqual(nodes.map((n) => n.id), ["node/pve-01", "node/pve-02", "node/pve-03"]);
    const storages = (await c.ok("GET", "/cluster/resources?type=storage")) as { type: string; id: string }[];
    assert.ok(storages.every((s) => s.type === "storage"));
    assert.ok(storages.some((s) => s.id === "storage/pve-02/local-lvm"));
  });
});
