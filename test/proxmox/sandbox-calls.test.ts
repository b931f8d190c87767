/**
 * Every client call against the project's sandbox (memory backend), with
 * its error paths. Fault injection, locks, races, auth and TLS are in
 * sandbox-faults.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import type { ProxmoxClient } from "../../src/proxmox/client.ts";
import { ProxmoxApiError, ProxmoxAuthError, ProxmoxNotFoundError } from "../../src/proxmox/errors.ts";
import { lxcCreateForm } from "../../src/proxmox/lxc-types.ts";
import { CT, FAST_WAIT, TEMPLATE, count, sandbox, tokenClient } from "./helpers/sandbox.ts";
import type { RunningSandbox } from "./helpers/sandbox.ts";

const GiB = 1024 ** 3;
let sb: RunningSandbox;
let client: ProxmoxClient;

before(async () => {
  sb = await sandbox();
  client = tokenClient(sb);
});
after(async () => {
  await client.close();
  await sb.close();
});

void describe("sandbox: version, nodes, cluster", () => {
  void it("reads the version", async () => {
    const version = await client.version.get();
    assert.equal(version.release, "9.1");
    assert.match(version.version, /^9\.1\./);
  });

  void it("lists the nodes and reads one node's status", async () => {
    const nodes = await client.nodes.list();
    assert.deepEqual(nodes.map((n) => n.node).sort(), ["pve-01", "pve-02", "pve-03"]);
    const status = await client.nodes.status("pve-02");
    assert.equal(status.memory.total, 16 * GiB);
    assert.equal(status.cpuinfo.cpus, 4);
    assert.ok(status.memory.free <= status.memory.total);
  });

  void it("reports an unknown node as not found", async () => {
    const error = await client.nodes.status("pve-09").catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxNotFoundError);
    assert.equal(error.node, "pve-09");
  });

  void it("lists cluster resources, all or of one type", async () => {
    const all = await client.cluster.resources();
    assert.deepEqual([...new Set(all.map((r) => r.type))].sort(), ["node", "sdn", "storage"]);
    const nodes = await client.cluster.resources({ type: "node" });
    assert.equal(nodes.length, 3);
    assert.ok(nodes.every((n) => n.type === "node" && (n.maxmem ?? 0) > 0));
  });

  void it("allocates the next id, checks a given one, and refuses bad input", async () => {
    const id = await client.cluster.nextId();
    assert.ok(Number.isInteger(id) && id >= 100);
    assert.equal(await client.cluster.nextId(4242), 4242);
    const error = await client.cluster.nextId(5).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.equal(error.status, 400);
    assert.ok("vmid" in error.paramErrors);
  });
});

void describe("sandbox: node notes", () => {
  void it("writes, reads (UTF-8 intact) and deletes the notes, guarded by the digest", async () => {
    const notes = "Rack 2 — Grüße 🚀\nsecond line & more";
    const empty = await client.nodes.config("pve-03");
    assert.equal(empty.description, undefined);
    await client.nodes.setNotes("pve-03", notes, { digest: empty.digest! });
    const written = await client.nodes.config("pve-03");
    assert.equal(written.description, notes);
    const stale = await client.nodes.setNotes("pve-03", "lost update", { digest: empty.digest! }).catch((e: unknown) => e);
    assert.ok(stale instanceof ProxmoxApiError);
    assert.match(stale.hint, /read it again/);
    assert.equal((await client.nodes.config("pve-03")).description, notes);
    await client.nodes.setNotes("pve-03", "");
    assert.equal((await client.nodes.config("pve-03")).description, undefined);
  });
});

void describe("sandbox: storage and templates", () => {
  void it("lists storages, all or those holding templates", async () => {
    const all = await client.storage.list("pve-01");
    assert.deepEqual(all.map((s) => s.storage).sort(), ["local", "local-lvm"]);
    assert.ok(all.every((s) => s.total !== undefined && s.avail !== undefined));
    const templ = await client.storage.list("pve-01", { content: "vztmpl", enabled: true });
    assert.deepEqual(templ.map((s) => s.storage), ["local"]);
    assert.ok(templ[0]!.content.includes("vztmpl"));
  });

  void it("lists templates, and reports a missing storage as not found", async () => {
    const templates = await client.storage.templates("pve-01", "local");
    assert.ok(templates.some((t) => t.volid === TEMPLATE && t.size > 0));
    await assert.rejects(client.storage.content("pve-01", "nope"), ProxmoxNotFoundError);
  });

  void it("lists downloadable templates and downloads one into one node's storage", async () => {
    const index = await client.storage.aplinfo("pve-02");
    // Debian 13 is on every node from the start, as on Proxmox VE 9; Ubuntu 25.04 is not.
    const plucky = index.find((a) => a.template.startsWith("ubuntu-25.04-standard_"));
    assert.ok(plucky);
    const result = await client.storage.downloadTemplate("pve-02", "local", plucky.template, FAST_WAIT);
    assert.equal(result.exitstatus, "OK");
    assert.equal(result.type, "download");
    const volid = `local:vztmpl/${plucky.template}`;
    assert.ok((await client.storage.templates("pve-02", "local")).some((t) => t.volid === volid));
    assert.ok(!(await client.storage.templates("pve-01", "local")).some((t) => t.volid === volid));
  });

  void it("refuses an unknown template and a storage without templates", async () => {
    const unknown = await client.storage.startTemplateDownload("pve-01", "local", "nope_1_amd64.tar.zst").catch((e: unknown) => e);
    assert.ok(unknown instanceof ProxmoxApiError);
    assert.deepEqual(Object.keys(unknown.paramErrors), ["template"]);
    const noTemplates = await client.storage.startTemplateDownload("pve-01", "local-lvm", "debian-13-standard_13.1-2_amd64.tar.zst").catch((e: unknown) => e);
    assert.ok(noTemplates instanceof ProxmoxApiError);
    assert.match(noTemplates.message, /does not support templates/);
  });
});

void describe("sandbox: container lifecycle", () => {
  const node = "pve-01";
  let vmid: number;
  let createUpid: string;

  void it("creates a container from typed parameters and waits for the task", async () => {
    const result = await client.lxc.create(
      node,
      {
        ostemplate: TEMPLATE,
        hostname: "peach",
        memory: 2048,
        swap: 256,
        cores: 2,
        net0: { name: "eth0", bridge: "vmbr0", ip: "10.0.0.5/24", gw: "10.0.0.1", firewall: true },
        rootfs: { storage: "local-lvm", sizeGb: 8 },
        tags: ["Web", "homelab", "web"],
        features: { nesting: true },
        sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 user@host"],
        unprivileged: true,
        start: false,
        description: "Nginx Proxy Manager — Grüße",
        password: "s3cret-pw",
      },
      { wait: FAST_WAIT },
    );
    vmid = result.vmid;
    createUpid = result.upid;
    assert.ok(vmid >= 100);
    assert.equal(result.exitstatus, "OK");
    assert.equal(result.type, "vzcreate");
    assert.equal(count(sb, "POST /nodes/{node}/lxc"), 1);
  });

  void it("reads the config back, typed", async () => {
    const config = await client.lxc.config(node, vmid);
    assert.equal(config.hostname, "peach");
    assert.equal(config.memory, 2048);
    assert.equal(config.swap, 256);
    assert.equal(config.cores, 2);
    assert.deepEqual(config.tags, ["homelab", "web"]);
    assert.deepEqual(config.features, { nesting: true });
    assert.equal(config.unprivileged, true);
    assert.equal(config.net[0]?.ip, "10.0.0.5/24");
    assert.equal(config.net[0]?.firewall, true);
    assert.match(config.net[0]?.hwaddr ?? "", /^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/);
    assert.equal(config.rootfs?.volume, `local-lvm:vm-${vmid}-disk-0`);
    assert.equal(config.rootfs?.size, "8G");
    assert.equal(config.description, "Nginx Proxy Manager — Grüße");
    assert.equal(config.lock, undefined);
    assert.equal(config.raw.password, undefined);
    assert.ok(config.digest);
  });

  void it("reads the task's status and log", async () => {
    const status = await client.tasks.status(createUpid);
    assert.equal(status.status, "stopped");
    assert.equal(status.exitstatus, "OK");
    const log = await client.tasks.log(createUpid);
    assert.equal(log.lines.at(-1)?.t, "TASK OK");
    assert.equal(log.total, log.lines.length);
    assert.deepEqual(await client.tasks.logTail(createUpid, 1), ["TASK OK"]);
  });

  void it("reports a well-formed but unknown task as a parameter error", async () => {
    const error = await client.tasks.status("UPID:pve-01:00000001:00000001:00000001:vzstart:1:root@pam:").catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.deepEqual(Object.keys(error.paramErrors), ["upid"]);
  });

  void it("shows a stopped container with no interfaces", async () => {
    assert.equal((await client.lxc.status(node, vmid)).status, "stopped");
    assert.equal(await client.lxc.interfaces(node, vmid), null);
    assert.ok((await client.lxc.list(node)).some((c) => c.vmid === vmid && c.status === "stopped"));
  });

  void it("starts it; then it runs and shows its address; a second start fails", async () => {
    const result = await client.lxc.start(node, vmid, { wait: FAST_WAIT });
    assert.equal(result.type, "vzstart");
    const status = await client.lxc.status(node, vmid);
    assert.equal(status.status, "running");
    assert.equal(status.maxmem, 2048 * 1024 ** 2);
    const eth0 = (await client.lxc.interfaces(node, vmid))?.find((i) => i.name === "eth0");
    assert.equal(eth0?.inet, "10.0.0.5/24");
    const again = await client.lxc.start(node, vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
    assert.ok(again instanceof ProxmoxApiError);
    assert.match(again.message, /already running/);
  });

  void it("changes the config, deletes a key, and refuses a stale digest", async () => {
    const before = await client.lxc.config(node, vmid);
    await client.lxc.updateConfig(node, vmid, { memory: 1024, tags: ["homelab"], net: { 1: { name: "eth1", bridge: "vmbr0", ip: "manual" } }, delete: ["description"], digest: before.digest! });
    const after = await client.lxc.config(node, vmid);
    assert.equal(after.memory, 1024);
    assert.deepEqual(after.tags, ["homelab"]);
    assert.equal(after.net[1]?.name, "eth1");
    assert.equal(after.description, undefined);
    const stale = await client.lxc.updateConfig(node, vmid, { memory: 512, digest: before.digest! }).catch((e: unknown) => e);
    assert.ok(stale instanceof ProxmoxApiError);
    assert.equal((await client.lxc.config(node, vmid)).memory, 1024);
  });

  void it("refuses invalid config values with the parameter named", async () => {
    const error = await client.lxc.updateConfig(node, vmid, { memory: 8 }).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.equal(error.status, 400);
    assert.deepEqual(Object.keys(error.paramErrors), ["memory"]);
    assert.match(error.hint, /memory/);
  });

  void it("refuses to delete a running container", async () => {
    const error = await client.lxc.delete(node, vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.match(error.message, /running/);
  });

  void it("reboots, shuts down, and a stop of a stopped container fails", async () => {
    assert.equal((await client.lxc.reboot(node, vmid, { wait: FAST_WAIT })).type, "vzreboot");
    assert.equal((await client.lxc.status(node, vmid)).status, "running");
    assert.equal((await client.lxc.shutdown(node, vmid, { timeoutSec: 5, forceStop: true, wait: FAST_WAIT })).type, "vzshutdown");
    assert.equal((await client.lxc.status(node, vmid)).status, "stopped");
    const error = await client.lxc.stop(node, vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.match(error.message, /not running/);
  });

  void it("stops a running container", async () => {
    await client.lxc.start(node, vmid, { wait: FAST_WAIT });
    assert.equal((await client.lxc.stop(node, vmid, { wait: FAST_WAIT })).type, "vzstop");
    assert.equal((await client.lxc.status(node, vmid)).status, "stopped");
  });

  void it("deletes it; then it is not found", async () => {
    const result = await client.lxc.delete(node, vmid, { purge: true, destroyUnreferencedDisks: true, wait: FAST_WAIT });
    assert.equal(result.type, "vzdestroy");
    await assert.rejects(client.lxc.config(node, vmid), ProxmoxNotFoundError);
    await assert.rejects(client.lxc.status(node, vmid), ProxmoxNotFoundError);
    await assert.rejects(client.lxc.interfaces(node, vmid), ProxmoxNotFoundError);
    // Proxmox answers a start with a task and loads the config inside it; the task's failure is typed like the API's.
    const start = await client.lxc.start(node, vmid, { wait: FAST_WAIT }).catch((e: unknown) => e);
    assert.ok(start instanceof ProxmoxNotFoundError);
    assert.equal(start.message, `CT ${vmid} does not exist on node ${node}`);
    assert.match(start.hint, /removed/);
    assert.equal(start.vmid, vmid);
    assert.equal(start.path, `/nodes/${node}/lxc/${vmid}/status/start`);
    assert.equal(start.task?.type, "vzstart");
    assert.equal(start.task.exitstatus, `Configuration file 'nodes/${node}/lxc/${vmid}.conf' does not exist`);
    await assert.rejects(client.lxc.delete(node, vmid), ProxmoxNotFoundError);
  });
});

void describe("sandbox: create errors", () => {
  void it("names every bad parameter of a create", async () => {
    const error = await client.lxc.create("pve-01", { vmid: 300, ostemplate: TEMPLATE, memory: 1, swap: -1 }).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxApiError);
    assert.deepEqual(Object.keys(error.paramErrors).sort(), ["memory", "swap"]);
  });

  void it("reports a missing template as not found, with how to get it", async () => {
    // Proxmox reads the template only inside the create task.
    const error = await client.lxc.create("pve-01", { ...CT, vmid: 301, ostemplate: "local:vztmpl/nope_1_amd64.tar.zst" }, { wait: FAST_WAIT }).catch((e: unknown) => e);
    assert.ok(error instanceof ProxmoxNotFoundError);
    assert.equal(error.message, "template local:vztmpl/nope_1_amd64.tar.zst does not exist on node pve-01");
    assert.match(error.hint, /pveam update && pveam download local nope_1_amd64\.tar\.zst/);
    assert.match(error.hint, /aplinfo/);
    assert.equal(error.vmid, 301);
    assert.equal(error.task?.type, "vzcreate");
    assert.match(error.task.exitstatus ?? "", /^unable to create CT 301 - volume 'local:vztmpl\/nope_1_amd64\.tar\.zst' does not exist/);
    await assert.rejects(client.lxc.config("pve-01", 301), ProxmoxNotFoundError, "a failed create leaves nothing behind");
  });

  void it("refuses nesting on a privileged container for a token, with the reason", async () => {
    // Sent raw, past the client's own check, to see the server's answer.
    const raw = await client.http
      .call({ method: "POST", path: "/nodes/pve-01/lxc", params: lxcCreateForm({ ostemplate: TEMPLATE, unprivileged: false, features: { nesting: true } }, 302) }, z.string())
      .catch((e: unknown) => e);
    assert.ok(raw instanceof ProxmoxAuthError);
    assert.equal(raw.status, 403);
    assert.match(raw.hint, /privileged container/);
    const checked = await client.lxc.create("pve-01", { ...CT, vmid: 302, unprivileged: false, features: { nesting: true } }).catch((e: unknown) => e);
    assert.ok(checked instanceof ProxmoxAuthError);
    assert.equal(checked.preflight, true);
    assert.match(checked.message, /on a privileged container/);
    assert.match(checked.hint, /privileged container/);
  });

  void it("lets a token set nesting when unprivileged is left to Proxmox's default (unprivileged)", async () => {
    const { vmid } = await client.lxc.create("pve-01", { ...CT, vmid: 303, features: { nesting: true } }, { wait: FAST_WAIT });
    const config = await client.lxc.config("pve-01", vmid);
    assert.equal(config.unprivileged, true);
    assert.deepEqual(config.features, { nesting: true });
    await client.lxc.delete("pve-01", vmid, { purge: true, wait: FAST_WAIT });
  });
});
