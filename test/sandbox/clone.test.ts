/**
 * Templates and clones through the sandbox's HTTPS API (memory backend), as
 * pve-container and pve-storage make them: `POST .../template` (a null
 * answer, a `vztemplate` task, base volumes), what a template refuses, and
 * `POST .../clone` (its locks, the new config, linked and full clones, every
 * refusal with Proxmox's words), the task list a client finds the template's
 * task in, and freeing a base volume linked clones use (LVM-thin allows it,
 * ZFS refuses).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_STORAGES, DIR_VOLUME_STORAGE, ZFS_VOLUME_STORAGE } from "../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../src/sandbox/server.ts";
import { withSandbox } from "./helpers.ts";
import type { Credentials, TaskStatus, TestClient } from "./helpers.ts";

type Config = Record<string, string | number>;
type Task = { upid: string; type: string; id: string; status?: string; endtime?: number; starttime: number; user: string };
const N = "pve-01";
const ALL_STORAGES = [...DEFAULT_STORAGES, DIR_VOLUME_STORAGE, ZFS_VOLUME_STORAGE];
const MAC = /hwaddr=([0-9A-F:]{17})/;

async function config(c: TestClient, vmid: number): Promise<Config> {
  return (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/config`)) as Config;
}

async function task(c: TestClient, method: string, path: string, form: Record<string, string> = {}, auth?: Credentials): Promise<TaskStatus> {
  return c.waitTask(N, await c.ok(method, path, { form, ...(auth ? { auth } : {}) }));
}

/** The reason phrase of a refused request (Proxmox's message). */
async function refused(c: TestClient, method: string, path: string, form: Record<string, string> = {}): Promise<string> {
  const a = await c.call(method, path, { form });
  assert.notEqual(a.status, 200, `${method} ${path} should be refused`);
  return a.reason;
}

/** The tasks of a container on the node, newest first. */
async function tasksOf(c: TestClient, vmid: number, query = ""): Promise<Task[]> {
  return (await c.ok("GET", `/nodes/${N}/tasks?vmid=${vmid}&source=all${query}`)) as Task[];
}

/** Converts a container into a template, as a client must: POST answers null, the `vztemplate` task is found in the task list and waited on. */
async function makeTemplate(c: TestClient, vmid: number): Promise<TaskStatus> {
  const answer = await c.call("POST", `/nodes/${N}/lxc/${vmid}/template`);
  assert.equal(answer.status, 200, answer.reason);
  assert.deepEqual(answer.body, { data: null });
  const [t] = await tasksOf(c, vmid, "&typefilter=vztemplate");
  assert.ok(t, "the vztemplate task is listed");
  return c.waitTask(N, t.upid);
}

async function rootAuth(c: TestClient, sb: RunningSandbox): Promise<Credentials> {
  const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as { ticket: string; CSRFPreventionToken: string };
  return { ticket: t.ticket, csrf: t.CSRFPreventionToken };
}

/** A container holding a root, a backed-up mount point and an unused disk, ready to become a template. */
async function baseCt(c: TestClient, vmid: number, extra: Record<string, string> = {}): Promise<void> {
  assert.equal((await c.createCt(N, vmid, { mp0: "local-lvm:2,mp=/data,backup=1", hostname: "base", description: "the base", tags: "homelab;base", features: "nesting=1", memory: "1024", ...extra })).exitstatus, "OK");
  await c.ok("PUT", `/nodes/${N}/lxc/${vmid}/config`, { form: { mp1: "local-lvm:1,mp=/scratch" } });
  await c.ok("PUT", `/nodes/${N}/lxc/${vmid}/config`, { form: { delete: "mp1" } });
  assert.equal((await config(c, vmid))["unused0"], `local-lvm:vm-${vmid}-disk-2`);
}

describe("sandbox: POST .../template", () => {
  it("answers null and runs a vztemplate task that renames each volume to its base volume and sets template: 1", async () => {
    await withSandbox({}, async (c) => {
      await baseCt(c, 100);
      const before = await config(c, 100);
      const st = await makeTemplate(c, 100);
      assert.equal(st.exitstatus, "OK");
      assert.equal(st.type, "vztemplate");
      assert.equal(st.id, "100");
      const cfg = await config(c, 100);
      assert.equal(cfg["template"], 1);
      assert.equal(cfg["rootfs"], "local-lvm:base-100-disk-0,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:base-100-disk-1,backup=1,mp=/data,size=2G");
      assert.equal(cfg["unused0"], "local-lvm:vm-100-disk-2", "unused disks keep their names");
      for (const key of ["hostname", "memory", "net0", "features", "tags", "description"]) assert.equal(cfg[key], before[key], key);
      const vols = ((await c.ok("GET", `/nodes/${N}/storage/local-lvm/content?vmid=100`)) as { volid: string }[]).map((v) => v.volid);
      assert.deepEqual(vols, ["local-lvm:base-100-disk-0", "local-lvm:base-100-disk-1", "local-lvm:vm-100-disk-2"]);
      // Shown as a template everywhere a client looks.
      assert.equal(((await c.ok("GET", `/nodes/${N}/lxc/100/status/current`)) as Config)["template"], 1);
      const listed = ((await c.ok("GET", `/nodes/${N}/lxc`)) as Config[]).find((g) => g["vmid"] === 100);
      assert.equal(listed?.["template"], 1);
      const resource = ((await c.ok("GET", "/cluster/resources?type=vm")) as Config[]).find((r) => r["vmid"] === 100);
      assert.equal(resource?.["template"], 1);
      // A new volume added to a template is an ordinary one, numbered after the base volumes.
      await c.ok("PUT", `/nodes/${N}/lxc/100/config`, { form: { mp2: "local-lvm:1,mp=/extra" } });
      assert.equal((await config(c, 100))["mp2"], "local-lvm:vm-100-disk-3,mp=/extra,size=1G");
    });
  });

  it("is refused for a running, locked, snapshotted or missing container and for a template, before any task", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 101);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/101/status/start`)).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/101/template`), "you can't convert a CT to template if the CT is running");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/101/snapshot`, { snapname: "s1" })).exitstatus, "OK");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/101/status/stop`)).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/101/template`), "unable to create template, because CT contains snapshots");
      await c.createCt(N, 102);
      await c.ok("PUT", `/nodes/${N}/lxc/102/config`, { form: { lock: "backup" } });
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/102/template`), "CT is locked (backup)");
      await c.ok("PUT", `/nodes/${N}/lxc/102/config`, { form: { delete: "lock" } });
      assert.equal((await makeTemplate(c, 102)).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/102/template`), "you can't convert a template to a template");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/999/template`), "Configuration file 'nodes/pve-01/lxc/999.conf' does not exist");
      assert.deepEqual((await tasksOf(c, 101, "&typefilter=vztemplate")).length, 0, "no task for a refused conversion");
    });
  });

  it("fails its task for a bind mount (no template feature) and leaves the container as it was", async () => {
    await withSandbox({}, async (c, sb) => {
      await c.createCt(N, 103);
      await c.ok("PUT", `/nodes/${N}/lxc/103/config`, { auth: await rootAuth(c, sb), form: { mp0: "/srv/media,mp=/media" } });
      const st = await makeTemplate(c, 103);
      assert.equal(st.exitstatus, "Template feature is not available for '/srv/media'");
      const cfg = await config(c, 103);
      assert.equal(cfg["template"], undefined);
      assert.equal(cfg["rootfs"], "local-lvm:vm-103-disk-0,size=8G");
    });
  });

  it("a template on a dir storage gets a read-only base image name; on ZFS a basevol", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c) => {
      await c.createCt(N, 104, { rootfs: "local-dir:4" });
      assert.equal((await makeTemplate(c, 104)).exitstatus, "OK");
      assert.equal((await config(c, 104))["rootfs"], "local-dir:104/base-104-disk-0.raw,size=4G");
      await c.createCt(N, 105, { rootfs: "local-zfs:4" });
      assert.equal((await config(c, 105))["rootfs"], "local-zfs:subvol-105-disk-0,size=4G");
      assert.equal((await makeTemplate(c, 105)).exitstatus, "OK");
      assert.equal((await config(c, 105))["rootfs"], "local-zfs:basevol-105-disk-0,size=4G");
      const detail = (await c.ok("GET", `/nodes/${N}/storage/local-zfs/content/local-zfs:basevol-105-disk-0`)) as { path: string; format: string };
      assert.deepEqual([detail.path, detail.format], ["/rpool/data/basevol-105-disk-0", "subvol"]);
    });
  });

  it("a template cannot be started, snapshotted or give volumes away; its options still change, `template` too", async () => {
    await withSandbox({}, async (c) => {
      await baseCt(c, 106);
      await makeTemplate(c, 106);
      await c.createCt(N, 107);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/106/status/start`)).exitstatus, "you can't start a CT if it's a template");
      assert.equal(((await c.ok("GET", `/nodes/${N}/lxc/106/status/current`)) as Config)["status"], "stopped");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/106/snapshot`, { snapname: "s1" })).exitstatus, "you can't take a snapshot if it's a template");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/106/move_volume`, { volume: "mp0", "target-vmid": "107", "target-volume": "mp0" }), "Can't move volumes from or to template CT");
      // pve-container refuses no config change of a template.
      await c.ok("PUT", `/nodes/${N}/lxc/106/config`, { form: { memory: "2048", description: "changed", hostname: "base-2" } });
      assert.equal((await config(c, 106))["memory"], 2048);
      // No longer a template, it still stands on read-only base volumes: Proxmox's start fails mounting them.
      await c.ok("PUT", `/nodes/${N}/lxc/106/config`, { form: { delete: "template" } });
      assert.equal((await config(c, 106))["template"], undefined);
      assert.match(String((await task(c, "POST", `/nodes/${N}/lxc/106/status/start`)).exitstatus), /^sandbox: volume 'local-lvm:base-106-disk-0' is a template's base volume, which is read-only/);
      // Reboot and stop find it not running, as any stopped container.
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/106/status/reboot`), "VM 106 not running");
    });
  });

  it("GET .../feature: a template's base volumes clone, a container's volumes clone only from a snapshot (LVM-thin)", async () => {
    await withSandbox({}, async (c) => {
      await baseCt(c, 108);
      const feature = async (vmid: number, q: string): Promise<unknown> => ((await c.ok("GET", `/nodes/${N}/lxc/${vmid}/feature?${q}`)) as { hasFeature: number }).hasFeature;
      assert.equal(await feature(108, "feature=clone"), 0);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/108/snapshot`, { snapname: "s1" })).exitstatus, "OK");
      assert.equal(await feature(108, "feature=clone&snapname=s1"), 1);
      await c.createCt(N, 109);
      await makeTemplate(c, 109);
      assert.equal(await feature(109, "feature=clone"), 1);
      assert.equal(await feature(109, "feature=copy"), 1);
      assert.equal(await feature(109, "feature=snapshot"), 0);
    });
  });
});

describe("sandbox: POST .../clone", () => {
  it("a linked clone of a template: locks on both while the vzclone task runs, the template's config with new MACs and volumes, and nothing of its own", async () => {
    await withSandbox({ taskDurationMs: 300 }, async (c) => {
      await baseCt(c, 100);
      await c.ok("PUT", `/nodes/${N}/lxc/100/config`, { form: { net1: "name=eth1,bridge=vmbr0,ip=10.10.0.50/24" } });
      assert.equal((await makeTemplate(c, 100)).exitstatus, "OK");
      const tpl = await config(c, 100);
      const upid = await c.ok("POST", `/nodes/${N}/lxc/100/clone`, { form: { newid: "201", hostname: "web-1", description: "a clone" } });
      assert.match(String(upid), /^UPID:pve-01:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzclone:100:root@pam!homelab:$/);
      // Before the task has done anything: the template holds `lock: disk`, the new id `lock: create` and no volumes yet.
      assert.equal((await config(c, 100))["lock"], "disk");
      const early = await config(c, 201);
      assert.equal(early["lock"], "create");
      assert.equal(early["rootfs"], undefined);
      assert.equal(early["hostname"], "web-1");
      assert.equal((await refused(c, "POST", `/nodes/${N}/lxc/100/clone`, { newid: "202" })), "CT is locked (disk)", "a second clone of the same template waits for the first");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/201/status/start`)).exitstatus, "CT is locked (create)");
      const st = await c.waitTask(N, upid);
      assert.equal(st.exitstatus, "OK");
      const cfg = await config(c, 201);
      assert.equal(cfg["lock"], undefined);
      assert.equal((await config(c, 100))["lock"], undefined, "the template is unlocked");
      assert.equal(cfg["rootfs"], "local-lvm:vm-201-disk-0,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:vm-201-disk-1,backup=1,mp=/data,size=2G");
      assert.equal(cfg["unused0"], undefined, "unused disks are not cloned");
      assert.equal(cfg["template"], undefined);
      assert.equal(cfg["hostname"], "web-1");
      assert.equal(cfg["description"], "a clone");
      for (const key of ["memory", "swap", "features", "tags", "arch", "ostype", "unprivileged"]) assert.equal(cfg[key], tpl[key], key);
      for (const key of ["net0", "net1"]) {
        assert.notEqual(MAC.exec(String(cfg[key]))?.[1], MAC.exec(String(tpl[key]))?.[1], `${key} gets a new MAC`);
        assert.equal(String(cfg[key]).replace(MAC, ""), String(tpl[key]).replace(MAC, ""), `${key} is otherwise the template's`);
      }
      assert.ok(String(cfg["net1"]).includes("ip=10.10.0.50/24"), "a static address is copied as it is");
      const vols = ((await c.ok("GET", `/nodes/${N}/storage/local-lvm/content?vmid=201`)) as { volid: string; size: number }[]).map((v) => [v.volid, v.size]);
      assert.deepEqual(vols, [["local-lvm:vm-201-disk-0", 8 * 1024 ** 3], ["local-lvm:vm-201-disk-1", 2 * 1024 ** 3]]);
      // The clone is a container like any other: it starts, and its snapshots are its own.
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/201/status/start`)).exitstatus, "OK");
      const snaps = (await c.ok("GET", `/nodes/${N}/lxc/201/snapshot`)) as { name: string }[];
      assert.deepEqual(snaps.map((s) => s.name), ["current"]);
      // The task list finds the clone under the template's id.
      const listed = await tasksOf(c, 100, "&typefilter=vzclone");
      assert.deepEqual(listed.map((t) => [t.upid, t.status]), [[String(upid), "OK"]]);
    });
  });

  it("without hostname the clone keeps the source's; a full clone copies every volume onto the requested storage", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c) => {
      await baseCt(c, 100);
      await makeTemplate(c, 100);
      const st = await task(c, "POST", `/nodes/${N}/lxc/100/clone`, { newid: "202", full: "1", storage: "local-dir" });
      assert.equal(st.exitstatus, "OK");
      const log = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(st.upid)}/log`)) as { t: string }[]).map((l) => l.t);
      assert.ok(log.includes("creating a clone of container 100 with ID 202"), log.join("\n"));
      assert.ok(log.includes("create full clone of mountpoint rootfs (local-lvm:base-100-disk-0)"), log.join("\n"));
      const cfg = await config(c, 202);
      assert.equal(cfg["hostname"], "base");
      assert.equal(cfg["description"], "the base");
      assert.equal(cfg["rootfs"], "local-dir:202/vm-202-disk-0.raw,size=8G");
      assert.equal(cfg["mp0"], "local-dir:202/vm-202-disk-1.raw,backup=1,mp=/data,size=2G");
      // A full clone of an ordinary container is the default; it keeps none of the source's snapshots.
      await c.createCt(N, 110, { hostname: "plain" });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/110/snapshot`, { snapname: "s1" })).exitstatus, "OK");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/110/clone`, { newid: "203" })).exitstatus, "OK");
      const copy = await config(c, 203);
      assert.equal(copy["rootfs"], "local-lvm:vm-203-disk-0,size=8G");
      assert.equal(copy["parent"], undefined);
      assert.deepEqual(((await c.ok("GET", `/nodes/${N}/lxc/203/snapshot`)) as { name: string }[]).map((s) => s.name), ["current"]);
    });
  });

  it("clones a snapshot's config: a running container only from a snapshot, linked only where the storage clones snapshots", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 111, { memory: "512" });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/111/status/start`)).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/111/clone`, { newid: "204" }), "Full clone of a running container is only possible from a snapshot");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/111/snapshot`, { snapname: "s1", description: "at 512" })).exitstatus, "OK");
      await c.ok("PUT", `/nodes/${N}/lxc/111/config`, { form: { memory: "2048" } });
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/111/clone`, { newid: "204", snapname: "nope" }), "snapshot 'nope' does not exist");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/111/clone`, { newid: "204", snapname: "s1" })).exitstatus, "OK");
      const cfg = await config(c, 204);
      assert.equal(cfg["memory"], 512, "the snapshot's config, not the current one");
      assert.equal(cfg["description"], "at 512", "the snapshot's description comes along");
      assert.equal(cfg["snaptime"], undefined);
      // LVM-thin clones a snapshot as a linked clone too (full=0).
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/111/clone`, { newid: "205", snapname: "s1", full: "0" })).exitstatus, "OK");
      assert.equal((await config(c, 205))["rootfs"], "local-lvm:vm-205-disk-0,size=8G");
    });
  });

  it("refuses with Proxmox's words before any task, and then leaves no new container and the source unlocked", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c, sb) => {
      await c.createCt(N, 112);
      await c.createCt(N, 113);
      const cases: Array<[Record<string, string>, string]> = [
        [{ newid: "206", full: "0" }, "Linked clone feature for 'local-lvm:vm-112-disk-0' is not available"],
        [{ newid: "206", full: "0", storage: "local-lvm" }, "parameter 'storage' not allowed for linked clones"],
        [{ newid: "113" }, "CT 113 already exists on node 'pve-01'"],
        [{ newid: "112" }, "CT 112 already exists on node 'pve-01'"],
        [{ newid: "206", target: "pve-02" }, "can't clone CT to node 'pve-02' (CT uses local storage)"],
        [{ newid: "206", target: "pve-09" }, "no such cluster node 'pve-09'"],
        [{ newid: "206", target: "pve-02", storage: "local-lvm" }, "can't clone to non-shared storage 'local-lvm'"],
        [{ newid: "206", storage: "nowhere" }, "storage 'nowhere' does not exist"],
        [{ newid: "206", pool: "web" }, "Permission check failed (pool 'web' does not exist)"],
      ];
      for (const [form, reason] of cases) {
        assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/112/clone`, form), reason, JSON.stringify(form));
        assert.equal((await config(c, 112))["lock"], undefined, `unlocked after ${JSON.stringify(form)}`);
        assert.equal((await c.call("GET", `/nodes/${N}/lxc/206/config`)).status, 500, "no new container");
      }
      // target naming the source's own node is no target at all.
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/112/clone`, { newid: "206", target: N })).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/999/clone`, { newid: "207" }), "Configuration file 'nodes/pve-01/lxc/999.conf' does not exist");
      assert.equal(await refused(c, "POST", `/nodes/pve-02/lxc/112/clone`, { newid: "207" }), "Configuration file 'nodes/pve-02/lxc/112.conf' does not exist");
      await c.ok("PUT", `/nodes/${N}/lxc/113/config`, { form: { lock: "backup" } });
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/113/clone`, { newid: "207" }), "CT is locked (backup)");
      // Bind mounts are not cloned (checked key by key in sorted order: mp1 before rootfs).
      await c.ok("PUT", `/nodes/${N}/lxc/113/config`, { form: { delete: "lock" } });
      await c.ok("PUT", `/nodes/${N}/lxc/113/config`, { auth: await rootAuth(c, sb), form: { mp1: "/srv/media,mp=/media" } });
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/113/clone`, { newid: "207" }), "unable to clone mountpoint 'mp1' (type bind)");
      // A dir storage cannot link-clone even a template's base image (its clones would be qcow2).
      await c.createCt(N, 114, { rootfs: "local-dir:4" });
      assert.equal((await makeTemplate(c, 114)).exitstatus, "OK");
      assert.equal(await refused(c, "POST", `/nodes/${N}/lxc/114/clone`, { newid: "207" }), "Linked clone feature for 'local-dir:114/base-114-disk-0.raw' is not available");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/114/clone`, { newid: "207", full: "1" })).exitstatus, "OK");
      assert.equal((await config(c, 207))["rootfs"], "local-dir:207/vm-207-disk-0.raw,size=4G");
      // Bad parameters are the schema's 400s.
      const bad = await c.call("POST", `/nodes/${N}/lxc/112/clone`, { form: { newid: "99", hostname: "not a name", full: "yes" } });
      assert.equal(bad.status, 400);
      assert.deepEqual(Object.keys((bad.body as { errors: Record<string, string> }).errors).sort(), ["full", "hostname", "newid"]);
    });
  });

  it("a failing clone task ('clone failed: ...') frees what it made, removes the new config and unlocks the source", async () => {
    await withSandbox({}, async (c) => {
      await baseCt(c, 115);
      await makeTemplate(c, 115);
      const st = await task(c, "POST", `/nodes/${N}/lxc/115/clone`, { newid: "208", full: "1", storage: "local" });
      assert.equal(st.exitstatus, "clone failed: content type 'rootdir' is not available or configured on storage 'local'");
      assert.equal((await c.call("GET", `/nodes/${N}/lxc/208/config`)).status, 500);
      assert.equal((await config(c, 115))["lock"], undefined);
      assert.deepEqual(await c.ok("GET", `/nodes/${N}/storage/local-lvm/content?vmid=208`), []);
      assert.equal(await c.ok("GET", "/cluster/nextid?vmid=208"), "208", "the id is free again");
    });
  });

  it("destroying a template with linked clones: LVM-thin allows it and the clones live on; ZFS refuses while a clone names its base", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c) => {
      await c.createCt(N, 120);
      await makeTemplate(c, 120);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/120/clone`, { newid: "220" })).exitstatus, "OK");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/120`)).exitstatus, "OK");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/220/status/start`)).exitstatus, "OK");

      await c.createCt(N, 121, { rootfs: "local-zfs:4" });
      await makeTemplate(c, 121);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/121/clone`, { newid: "221" })).exitstatus, "OK");
      assert.equal((await config(c, 221))["rootfs"], "local-zfs:basevol-121-disk-0/subvol-221-disk-0,size=4G");
      const zfs = ((await c.ok("GET", `/nodes/${N}/storage/local-zfs/content`)) as { volid: string; vmid: number }[]).map((v) => [v.volid, v.vmid]);
      assert.deepEqual(zfs, [["local-zfs:basevol-121-disk-0", 121], ["local-zfs:basevol-121-disk-0/subvol-221-disk-0", 221]]);
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/121`)).exitstatus, "base volume 'basevol-121-disk-0' is still in use by linked clones");
      assert.equal((await config(c, 121))["template"], 1, "the template is whole");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/storage/local-zfs/content/local-zfs:basevol-121-disk-0`)).exitstatus, "base volume 'basevol-121-disk-0' is still in use by linked clones");
      // A clone of the clone-made-template names its own base.
      assert.equal((await makeTemplate(c, 221)).exitstatus, "OK");
      assert.equal((await config(c, 221))["rootfs"], "local-zfs:basevol-121-disk-0/basevol-221-disk-0,size=4G");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/221/clone`, { newid: "222" })).exitstatus, "OK");
      assert.equal((await config(c, 222))["rootfs"], "local-zfs:basevol-221-disk-0/subvol-222-disk-0,size=4G");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/222`)).exitstatus, "OK");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/221`)).exitstatus, "OK");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/121`)).exitstatus, "OK", "no clone left: the template goes");
    });
  });

  it("ZFS rolls back only to a volume's most recent snapshot", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c) => {
      await c.createCt(N, 123, { rootfs: "local-zfs:4" });
      for (const s of ["s1", "s2"]) assert.equal((await task(c, "POST", `/nodes/${N}/lxc/123/snapshot`, { snapname: s })).exitstatus, "OK");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/123/snapshot/s1/rollback`)).exitstatus, "can't rollback, 's1' is not most recent snapshot on 'local-zfs:subvol-123-disk-0'");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/123/snapshot/s2/rollback`)).exitstatus, "OK");
    });
  });

  it("a template's volume moved to another storage arrives as a base volume; a template's backup restores as a template", async () => {
    await withSandbox({ storages: ALL_STORAGES }, async (c) => {
      await baseCt(c, 124);
      await makeTemplate(c, 124);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/124/move_volume`, { volume: "mp0", storage: "local-dir", delete: "1" })).exitstatus, "OK");
      assert.equal((await config(c, 124))["mp0"], "local-dir:124/base-124-disk-0.raw,backup=1,mp=/data,size=2G");
      const dump = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "124", storage: "local", compress: "zstd" });
      assert.equal(dump.exitstatus, "OK");
      const [backup] = (await c.ok("GET", `/nodes/${N}/storage/local/content?content=backup&vmid=124`)) as { volid: string }[];
      assert.ok(backup);
      const st = await task(c, "POST", `/nodes/${N}/lxc`, { vmid: "125", ostemplate: backup.volid, restore: "1", storage: "local-lvm" });
      assert.equal(st.exitstatus, "OK");
      const log = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(st.upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.ok(log.includes("Convert restored container to template..."), log.join("\n"));
      const cfg = await config(c, 125);
      assert.equal(cfg["template"], 1);
      assert.equal(cfg["rootfs"], "local-lvm:base-125-disk-0,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:base-125-disk-1,backup=1,mp=/data,size=2G");
    });
  });
});

describe("sandbox: GET /nodes/{node}/tasks", () => {
  it("lists finished tasks newest first by default, running ones with source=active, filtered by id, type, status, and paged", async () => {
    await withSandbox({ taskDurationMs: 150 }, async (c) => {
      await c.createCt(N, 130);
      await c.createCt(N, 131);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/131/status/start`)).exitstatus, "OK");
      const failed = await task(c, "POST", `/nodes/${N}/lxc/130/snapshot/nope/rollback`);
      assert.notEqual(failed.exitstatus, "OK");
      const running = await c.ok("POST", `/nodes/${N}/lxc/130/status/start`);
      const active = (await c.ok("GET", `/nodes/${N}/tasks?source=active`)) as Task[];
      assert.deepEqual(active.map((t) => [t.upid, t.status, t.endtime]), [[running, undefined, undefined]]);
      const archive = (await c.ok("GET", `/nodes/${N}/tasks`)) as Task[];
      assert.deepEqual(archive.map((t) => [t.type, t.id, t.status]), [
        ["vzrollback", "130", failed.exitstatus],
        ["vzstart", "131", "OK"],
        ["vzcreate", "131", "OK"],
        ["vzcreate", "130", "OK"],
      ]);
      assert.deepEqual(((await c.ok("GET", `/nodes/${N}/tasks?vmid=131`)) as Task[]).map((t) => t.type), ["vzstart", "vzcreate"]);
      assert.deepEqual(((await c.ok("GET", `/nodes/${N}/tasks?typefilter=vzcreate&limit=1&start=1`)) as Task[]).map((t) => t.id), ["130"]);
      assert.deepEqual(((await c.ok("GET", `/nodes/${N}/tasks?errors=1`)) as Task[]).map((t) => t.type), ["vzrollback"]);
      assert.deepEqual(((await c.ok("GET", `/nodes/${N}/tasks?statusfilter=ok&vmid=130`)) as Task[]).map((t) => t.type), ["vzcreate"]);
      const all = await c.call("GET", `/nodes/${N}/tasks?source=all&limit=2`);
      assert.deepEqual(((all.body as { data: Task[] }).data).map((t) => t.upid)[0], running);
      assert.equal((all.body as { total: number }).total, 5);
      assert.equal(((await c.ok("GET", `/nodes/pve-02/tasks`)) as Task[]).length, 0, "another node's tasks are its own");
      await c.waitTask(N, running);
    });
  });
});
