/**
 * A container's data through the sandbox's HTTPS API (memory backend), as
 * pve-container and pve-storage behave: mount points and their volumes,
 * unused disks, move_volume (reassign and storage move), resize, snapshots
 * with their locks and parent chain, vzdump backups on `local` and restore.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DIR_VOLUME_STORAGE } from "../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../src/sandbox/server.ts";
import { TEMPLATE, sleep, withSandbox } from "./helpers.ts";
import type { Credentials, TaskStatus, TestClient } from "./helpers.ts";

type Config = Record<string, string | number>;
type Content = { volid: string; content: string; vmid?: number; size?: number; format?: string; ctime?: number; subtype?: string; notes?: string; protected?: number };
const errorsOf = (body: unknown): Record<string, string> => (body as { errors: Record<string, string> }).errors;
const GiB = 1024 ** 3;
const N = "pve-01";

async function config(c: TestClient, vmid: number, query = ""): Promise<Config> {
  return (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/config${query}`)) as Config;
}

async function content(c: TestClient, storage: string, query = ""): Promise<Content[]> {
  return (await c.ok("GET", `/nodes/${N}/storage/${storage}/content${query}`)) as Content[];
}

async function task(c: TestClient, method: string, path: string, form: Record<string, string> = {}, auth?: Credentials): Promise<TaskStatus> {
  return c.waitTask(N, await c.ok(method, path, { form, ...(auth ? { auth } : {}) }));
}

async function start(c: TestClient, vmid: number): Promise<void> {
  assert.equal((await task(c, "POST", `/nodes/${N}/lxc/${vmid}/status/start`)).exitstatus, "OK");
}

/** root@pam itself (a ticket): only it may use bind mounts. */
async function rootAuth(c: TestClient, sb: RunningSandbox): Promise<Credentials> {
  const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as { ticket: string; CSRFPreventionToken: string };
  return { ticket: t.ticket, csrf: t.CSRFPreventionToken };
}

/** Polls a config until `pred` holds (a task's lock shows while it runs). */
async function seen(c: TestClient, vmid: number, pred: (cfg: Config) => boolean): Promise<Config> {
  for (let i = 0; i < 200; i++) {
    const cfg = await config(c, vmid);
    if (pred(cfg)) return cfg;
    await sleep(5);
  }
  throw new Error(`CT ${vmid}: condition never seen`);
}

describe("sandbox: mount points and their volumes", () => {
  it("create allocates mount point volumes after the root volume; GET config shows them as Proxmox writes them", async () => {
    await withSandbox({}, async (c) => {
      const st = await c.createCt(N, 101, { mp0: "local-lvm:2,mp=/data,backup=1", mp1: "local-lvm:0.5,mp=/srv/cache" });
      assert.equal(st.exitstatus, "OK");
      const cfg = await config(c, 101);
      assert.equal(cfg["rootfs"], "local-lvm:vm-101-disk-0,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:vm-101-disk-1,backup=1,mp=/data,size=2G");
      assert.equal(cfg["mp1"], "local-lvm:vm-101-disk-2,mp=/srv/cache,size=512M");
      const vols = await content(c, "local-lvm", "?vmid=101");
      assert.deepEqual(vols.map((v) => [v.volid, v.content, v.size, v.format]), [
        ["local-lvm:vm-101-disk-0", "rootdir", 8 * GiB, "raw"],
        ["local-lvm:vm-101-disk-1", "rootdir", 2 * GiB, "raw"],
        ["local-lvm:vm-101-disk-2", "rootdir", 512 * 1024 ** 2, "raw"],
      ]);
      const noPath = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "102", ostemplate: TEMPLATE, rootfs: "local-lvm:4", mp0: "local-lvm:1" } });
      assert.equal(noPath.status, 400);
      assert.equal(errorsOf(noPath.body)["mp0.mp"], "property is missing and it is not optional");
    });
  });

  it("bind mounts: only root@pam, never a token; kept as given", async (t) => {
    await withSandbox({}, async (c, sb) => {
      await c.createCt(N, 103);
      const token = await c.call("PUT", `/nodes/${N}/lxc/103/config`, { form: { mp0: "/srv/media,mp=/media,ro=1" } });
      assert.equal(token.status, 403);
      assert.equal(token.reason, "Permission check failed (mount point type bind is only allowed for root@pam)");
      const root = await rootAuth(c, sb);
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/103/config`, { auth: root, form: { mp0: "/srv/media,mp=/media,ro=1" } })).status, 200);
      assert.equal((await config(c, 103))["mp0"], "/srv/media,mp=/media,ro=1");
      t.diagnostic("the memory backend has no host folders to check; the lxc backend fails the start when /srv/media is missing");
    });
  });

  it("a new mount point is hot-plugged into a running container; changing one waits for the next start", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 104);
      await start(c, 104);
      await c.ok("PUT", `/nodes/${N}/lxc/104/config`, { form: { mp0: "local-lvm:1,mp=/data" } });
      assert.equal((await config(c, 104, "?current=1"))["mp0"], "local-lvm:vm-104-disk-1,mp=/data,size=1G", "running: applied at once");
      await c.ok("PUT", `/nodes/${N}/lxc/104/config`, { form: { mp0: "local-lvm:2,mp=/data2" } });
      assert.equal((await config(c, 104, "?current=1"))["mp0"], "local-lvm:vm-104-disk-1,mp=/data,size=1G");
      assert.equal((await config(c, 104))["mp0"], "local-lvm:2,mp=/data2", "pending, its volume not allocated yet");
      assert.equal((await content(c, "local-lvm", "?vmid=104")).length, 2);
      await c.waitTask(N, await c.ok("POST", `/nodes/${N}/lxc/104/status/reboot`));
      const after = await config(c, 104, "?current=1");
      assert.equal(after["mp0"], "local-lvm:vm-104-disk-2,mp=/data2,size=2G");
      assert.equal(after["unused0"], "local-lvm:vm-104-disk-1", "the replaced volume is kept as unused");
    });
  });

  it("removing a mount point keeps its volume as unusedN (at the next start when running); deleting unusedN frees it", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 105, { mp0: "local-lvm:1,mp=/a", mp1: "local-lvm:1,mp=/b" });
      await c.ok("PUT", `/nodes/${N}/lxc/105/config`, { form: { delete: "mp0" } });
      let cfg = await config(c, 105);
      assert.equal(cfg["mp0"], undefined);
      assert.equal(cfg["unused0"], "local-lvm:vm-105-disk-1");
      await start(c, 105);
      await c.ok("PUT", `/nodes/${N}/lxc/105/config`, { form: { delete: "mp1" } });
      assert.equal((await config(c, 105, "?current=1"))["mp1"], "local-lvm:vm-105-disk-2,mp=/b,size=1G", "a running container keeps it until its next start");
      assert.equal((await config(c, 105))["mp1"], undefined);
      await c.waitTask(N, await c.ok("POST", `/nodes/${N}/lxc/105/status/reboot`));
      cfg = await config(c, 105);
      assert.equal(cfg["unused1"], "local-lvm:vm-105-disk-2");
      // unused[n] goes at once, even while running, and takes its volume with it.
      await c.ok("PUT", `/nodes/${N}/lxc/105/config`, { form: { delete: "unused0" } });
      assert.deepEqual((await content(c, "local-lvm", "?vmid=105")).map((v) => v.volid), ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-2"]);
      // Re-attaching an unused volume as a mount point drops the unused entry, as writing the config does.
      await c.waitTask(N, await c.ok("POST", `/nodes/${N}/lxc/105/status/stop`));
      await c.ok("PUT", `/nodes/${N}/lxc/105/config`, { form: { mp3: "local-lvm:vm-105-disk-2,mp=/again" } });
      cfg = await config(c, 105);
      assert.equal(cfg["mp3"], "local-lvm:vm-105-disk-2,mp=/again,size=1G");
      assert.equal(cfg["unused1"], undefined);
      const prot = await c.ok("PUT", `/nodes/${N}/lxc/105/config`, { form: { protection: "1" } });
      assert.equal(prot, null);
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/105/config`, { form: { delete: "mp3" } })).reason, "can't remove CT 105 drive 'mp3' - protection mode enabled");
    });
  });

  it("destroy frees the volumes its config names (unused included); a volume of its id the config does not name survives, as `images`", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 106, { mp0: "local-lvm:1,mp=/a", mp1: "local-lvm:1,mp=/b" });
      await c.ok("PUT", `/nodes/${N}/lxc/106/config`, { form: { delete: "mp1" } });
      // A volume of 106's id that no config names (as pve-storage allocates one on request).
      const orphan = await c.ok("POST", `/nodes/${N}/storage/local-lvm/content`, { form: { vmid: "106", filename: "vm-106-disk-7", size: "1G" } });
      assert.equal(orphan, "local-lvm:vm-106-disk-7");
      const badName = await c.call("POST", `/nodes/${N}/storage/local-lvm/content`, { form: { vmid: "106", filename: "vm-107-disk-1", size: "1G" } });
      assert.equal(badName.reason, "illegal name 'vm-107-disk-1' - should be 'vm-106-*'");
      assert.deepEqual((await content(c, "local-lvm", "?vmid=106")).map((v) => [v.volid, v.content]), [
        ["local-lvm:vm-106-disk-0", "rootdir"],
        ["local-lvm:vm-106-disk-1", "rootdir"],
        ["local-lvm:vm-106-disk-2", "rootdir"],
        ["local-lvm:vm-106-disk-7", "rootdir"],
      ]);
      const destroyed = await task(c, "DELETE", `/nodes/${N}/lxc/106`);
      assert.equal(destroyed.exitstatus, "OK");
      // Once no container has the id, pve-storage lists its volumes as `images`: that is how orphaned data shows.
      assert.deepEqual((await content(c, "local-lvm", "?vmid=106")).map((v) => [v.volid, v.content]), [["local-lvm:vm-106-disk-7", "images"]]);
      assert.deepEqual(await content(c, "local-lvm", "?content=rootdir&vmid=106"), []);
      // A new container with that id finds it again (and uses the next free disk numbers).
      await c.createCt(N, 106);
      assert.equal((await config(c, 106))["rootfs"], "local-lvm:vm-106-disk-0,size=8G");
      await c.ok("PUT", `/nodes/${N}/lxc/106/config`, { form: { mp0: "local-lvm:vm-106-disk-7,mp=/kept" } });
      assert.equal((await config(c, 106))["mp0"], "local-lvm:vm-106-disk-7,mp=/kept,size=1G");
      await c.ok("PUT", `/nodes/${N}/lxc/106/config`, { form: { delete: "mp0" } });
      await c.ok("POST", `/nodes/${N}/storage/local-lvm/content`, { form: { vmid: "106", filename: "vm-106-disk-8", size: "512M" } });
      // destroy-unreferenced-disks frees every volume of the id.
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/106?destroy-unreferenced-disks=1`)).exitstatus, "OK");
      assert.deepEqual(await content(c, "local-lvm", "?vmid=106"), []);
      // An orphan goes with DELETE .../content/{volume}, a task.
      await c.ok("POST", `/nodes/${N}/storage/local-lvm/content`, { form: { vmid: "109", filename: "vm-109-disk-0", size: "1G" } });
      const del = await task(c, "DELETE", `/nodes/${N}/storage/local-lvm/content/local-lvm:vm-109-disk-0`);
      assert.equal(del.exitstatus, "OK");
      assert.equal(del.id, "109@local-lvm");
      assert.deepEqual(await content(c, "local-lvm", "?vmid=109"), []);
      // A volume a running container mounts cannot go (LVM refuses an open volume).
      await c.createCt(N, 108, { mp0: "local-lvm:1,mp=/m" });
      await start(c, 108);
      const busy = await task(c, "DELETE", `/nodes/${N}/storage/local-lvm/content/local-lvm:vm-108-disk-1`);
      assert.equal(busy.exitstatus, "lvremove 'pve/vm-108-disk-1' error:   Logical volume pve/vm-108-disk-1 in use.");
    });
  });
});

describe("sandbox: move_volume", () => {
  it("reassigns a stopped container's mount point to another container: renamed vm-<target>-disk-<n>, same options, a task", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 120, { mp0: "local-lvm:3,mp=/data,backup=1" });
      await c.createCt(N, 121, { mp0: "local-lvm:1,mp=/other" });
      const upid = String(await c.ok("POST", `/nodes/${N}/lxc/120/move_volume`, { form: { volume: "mp0", "target-vmid": "121", "target-volume": "mp1" } }));
      assert.match(upid, /^UPID:pve-01:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:move_volume:120-mp0>121-mp1:root@pam!homelab:$/);
      const st = await c.waitTask(N, upid);
      assert.equal(st.exitstatus, "OK");
      const log = (await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(upid)}/log`)) as { t: string }[];
      assert.deepEqual(log.map((l) => l.t).slice(0, 3), ["moving volume 'mp0' from container '120' to '121'", "removing volume 'mp0' from container '120' config", "target container '121' updated with 'mp1'"]);
      assert.equal((await config(c, 120))["mp0"], undefined);
      assert.equal((await config(c, 121))["mp1"], "local-lvm:vm-121-disk-2,backup=1,mp=/data,size=3G");
      const vols = await content(c, "local-lvm");
      assert.ok(vols.some((v) => v.volid === "local-lvm:vm-121-disk-2" && v.vmid === 121 && v.size === 3 * GiB));
      assert.ok(!vols.some((v) => v.volid === "local-lvm:vm-120-disk-1"));
      // The key defaults to the source key; into a running container it is hot-plugged.
      await c.createCt(N, 122, { mp0: "local-lvm:1,mp=/x" });
      await start(c, 121);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/122/move_volume`, { volume: "mp0", "target-vmid": "121", "target-volume": "mp7" })).exitstatus, "OK");
      assert.equal((await config(c, 121, "?current=1"))["mp7"], "local-lvm:vm-121-disk-3,mp=/x,size=1G");
      // An unused volume may leave a running container (it is not mounted), only as unused.
      await c.ok("PUT", `/nodes/${N}/lxc/121/config`, { form: { delete: "unused9" } });
      await c.createCt(N, 123, { mp0: "local-lvm:1,mp=/y" });
      await c.ok("PUT", `/nodes/${N}/lxc/123/config`, { form: { delete: "mp0" } });
      await start(c, 123);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/123/move_volume`, { volume: "unused0", "target-vmid": "120" })).exitstatus, "OK");
      assert.equal((await config(c, 120))["unused0"], "local-lvm:vm-120-disk-1");
    });
  });

  it("refuses what pve-container refuses, with its words, before the task", async () => {
    await withSandbox({ storages: [{ storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" }, { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] }, DIR_VOLUME_STORAGE] }, async (c, sb) => {
      const root = await rootAuth(c, sb);
      await c.createCt(N, 130, { mp0: "local-lvm:1,mp=/data", mp2: "local-dir:1,mp=/plain" });
      await c.createCt(N, 131, { mp0: "local-lvm:1,mp=/taken" });
      await c.createCt("pve-02", 132);
      await c.ok("PUT", `/nodes/${N}/lxc/130/config`, { auth: root, form: { mp1: "/srv/media,mp=/media" } });
      const reason = async (form: Record<string, string>, vmid = 130): Promise<string> => {
        const a = await c.call("POST", `/nodes/${N}/lxc/${vmid}/move_volume`, { form });
        assert.equal(a.status, 500, JSON.stringify(a.body));
        return a.reason;
      };
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", storage: "local-lvm" }), "either set storage or target-vmid, but not both");
      const neither = await c.call("POST", `/nodes/${N}/lxc/130/move_volume`, { form: { volume: "mp0" } });
      assert.equal(neither.status, 400);
      assert.deepEqual(errorsOf(neither.body), { "target-vmid": "both 'storage' and 'target-vmid' missing, either needs to be set", storage: "both 'storage' and 'target-vmid' missing, either needs to be set" });
      assert.equal(await reason({ volume: "rootfs", "target-vmid": "131", "target-volume": "mp3" }), "Cannot move to/from 'rootfs'");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", "target-volume": "rootfs" }), "Cannot move to/from 'rootfs'");
      assert.equal(await reason({ volume: "unused0", "target-vmid": "131", "target-volume": "mp3" }), "Moving an unused volume to a used one is not possible");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "139" }), "could not find CT 139");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "132" }), "Both containers need to be on the same node (pve-01 != pve-02)");
      assert.equal(await reason({ volume: "mp5", "target-vmid": "131" }), "volume 'mp5' for container '130' does not exist");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131" }), "Target volume key 'mp0' is already in use for container '131'");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", "target-volume": "mp1", digest: "0".repeat(40) }), "Container 130: detected modified configuration - file changed by other user? Try again.");
      // A bind mount fails the storage feature check first, exactly as in pve-container's order.
      assert.equal(await reason({ volume: "mp1", "target-vmid": "131", "target-volume": "mp4" }), "Storage does not support moving of this disk to another container");
      await c.ok("PUT", `/nodes/${N}/lxc/131/config`, { form: { lock: "backup" } });
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", "target-volume": "mp1" }), "CT is locked (backup)");
      await c.ok("PUT", `/nodes/${N}/lxc/131/config`, { form: { delete: "lock" } });
      await start(c, 130);
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", "target-volume": "mp1" }), "Cannot move in-use volume while the source CT is running - detach or shutdown first");
      assert.equal(await reason({ volume: "mp0", storage: "local-dir" }), "cannot move volumes of a running container");
      await c.waitTask(N, await c.ok("POST", `/nodes/${N}/lxc/130/status/stop`));
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/130/snapshot`, { snapname: "pin" })).exitstatus, "snapshot feature is not available", "mp2 lies on a dir storage");
      await c.ok("PUT", `/nodes/${N}/lxc/130/config`, { auth: root, form: { delete: "mp1,mp2" } });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/130/snapshot`, { snapname: "pin" })).exitstatus, "OK");
      assert.equal(await reason({ volume: "mp0", "target-vmid": "131", "target-volume": "mp1" }), "Cannot move volume used by a snapshot to another container");
      assert.equal(await reason({ volume: "mp0", storage: "local-dir", delete: "1" }), "you can't move a volume with snapshots and delete the source");
      assert.equal(await reason({ volume: "unused0", storage: "local-dir" }), "cannot move volume 'unused0', only configured volumes can be moved to another storage");
      const missing = await c.call("POST", `/nodes/${N}/lxc/130/move_volume`, { form: { volume: "mp9", storage: "local-dir" } });
      assert.equal(missing.reason, "format error");
      const badKey = await c.call("POST", `/nodes/${N}/lxc/130/move_volume`, { form: { volume: "mp256", "target-vmid": "131" } });
      assert.equal(badKey.status, 400);
    });
  });

  it("moves a volume to another storage under `lock: disk`: the copy replaces it, the old one stays unused unless delete=1", async () => {
    await withSandbox({ taskDurationMs: 200, storages: [{ storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" }, { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] }, DIR_VOLUME_STORAGE] }, async (c) => {
      await c.createCt(N, 140, { mp0: "local-lvm:2,mp=/data,backup=1" });
      const upid = await c.ok("POST", `/nodes/${N}/lxc/140/move_volume`, { form: { volume: "mp0", storage: "local-dir" } });
      assert.equal((await config(c, 140))["lock"], "disk", "locked from the request on");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/140/config`, { form: { memory: "1024" } })).reason, "CT is locked (disk)");
      const st = await c.waitTask(N, upid);
      assert.equal(st.exitstatus, "OK");
      assert.equal(st.type, "move_volume");
      assert.equal(st.id, "140");
      const cfg = await config(c, 140);
      assert.equal(cfg["lock"], undefined);
      assert.equal(cfg["mp0"], "local-dir:140/vm-140-disk-0.raw,backup=1,mp=/data,size=2G");
      assert.equal(cfg["unused0"], "local-lvm:vm-140-disk-1");
      const dir = await content(c, "local-dir", "?content=rootdir");
      assert.deepEqual(dir.map((v) => [v.volid, v.format, v.size]), [["local-dir:140/vm-140-disk-0.raw", "raw", 2 * GiB]]);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/140/move_volume`, { volume: "rootfs", storage: "local-dir", delete: "1" })).exitstatus, "OK");
      const after = await config(c, 140);
      assert.equal(after["rootfs"], "local-dir:140/vm-140-disk-1.raw,size=8G");
      assert.ok(!(await content(c, "local-lvm")).some((v) => v.volid === "local-lvm:vm-140-disk-0"), "delete=1 frees the source");
      const toLocal = await task(c, "POST", `/nodes/${N}/lxc/140/move_volume`, { volume: "mp0", storage: "local" });
      assert.equal(toLocal.exitstatus, "content type 'rootdir' is not available or configured on storage 'local'");
      assert.equal((await config(c, 140))["lock"], undefined, "a failed move unlocks");
    });
  });
});

describe("sandbox: resize", () => {
  it("grows a volume (absolute or +N) as a task and records the size; refuses shrinking, same size, bind mounts, other owners", async () => {
    await withSandbox({}, async (c, sb) => {
      await c.createCt(N, 150, { mp0: "local-lvm:2,mp=/data" });
      const grow = await task(c, "PUT", `/nodes/${N}/lxc/150/resize`, { disk: "mp0", size: "+1G" });
      assert.equal(grow.type, "resize");
      assert.equal(grow.exitstatus, "OK");
      assert.equal((await config(c, 150))["mp0"], "local-lvm:vm-150-disk-1,mp=/data,size=3G");
      assert.equal((await task(c, "PUT", `/nodes/${N}/lxc/150/resize`, { disk: "rootfs", size: "10G" })).exitstatus, "OK");
      assert.equal((await config(c, 150))["rootfs"], "local-lvm:vm-150-disk-0,size=10G");
      assert.equal((await content(c, "local-lvm", "?vmid=150")).find((v) => v.volid === "local-lvm:vm-150-disk-0")?.size, 10 * GiB);
      const shrink = await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "rootfs", size: "4G" } });
      assert.equal(shrink.status, 500);
      assert.equal(shrink.reason, "unable to shrink disk size");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "rootfs", size: "10G" } })).reason, "disk is already at specified size");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "mp3", size: "+1G" } })).reason, "format error");
      const badSize = await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "mp0", size: "-1G" } });
      assert.equal(badSize.status, 400);
      assert.equal(errorsOf(badSize.body)["size"], "value does not match the regex pattern");
      const root = await rootAuth(c, sb);
      await c.ok("PUT", `/nodes/${N}/lxc/150/config`, { auth: root, form: { mp1: "/srv/media,mp=/media" } });
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "mp1", size: "+1G" } })).reason, "unable to parse volume ID '/srv/media'");
      // A volume of another container attached here (shared) is not this one's to grow.
      await c.createCt(N, 151, { mp0: "local-lvm:1,mp=/x" });
      await c.ok("PUT", `/nodes/${N}/lxc/150/config`, { form: { mp2: "local-lvm:vm-151-disk-1,mp=/shared" } });
      assert.equal((await config(c, 150))["mp2"], "local-lvm:vm-151-disk-1,mp=/shared,size=1G");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "mp2", size: "+1G" } })).reason, "can't resize mount point owned by another container (151)");
      await start(c, 150);
      assert.equal((await task(c, "PUT", `/nodes/${N}/lxc/150/resize`, { disk: "mp0", size: "4G" })).exitstatus, "OK", "online growth works");
      await c.ok("PUT", `/nodes/${N}/lxc/150/config`, { form: { lock: "snapshot" } });
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/150/resize`, { form: { disk: "mp0", size: "+1G" } })).reason, "CT is locked (snapshot)");
    });
  });
});

describe("sandbox: snapshots", () => {
  it("create is a task holding `lock: snapshot`; the list has each snapshot and `current`; parents chain", async () => {
    await withSandbox({ taskDurationMs: 20 }, async (c) => {
      await c.createCt(N, 160, { mp0: "local-lvm:1,mp=/data", memory: "512" });
      const first = await task(c, "POST", `/nodes/${N}/lxc/160/snapshot`, { snapname: "one", description: "first one" });
      assert.equal(first.type, "vzsnapshot");
      assert.equal(first.exitstatus, "OK");
      await c.ok("PUT", `/nodes/${N}/lxc/160/config`, { form: { memory: "1024" } });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/160/snapshot`, { snapname: "two" })).exitstatus, "OK");
      const list = (await c.ok("GET", `/nodes/${N}/lxc/160/snapshot`)) as Record<string, unknown>[];
      assert.deepEqual(list.map((s) => [s["name"], s["parent"], s["description"]]), [
        ["one", undefined, "first one"],
        ["two", "one", ""],
        ["current", "two", "You are here!"],
      ]);
      const current = list.at(-1) ?? {};
      assert.equal(current["running"], 0);
      assert.equal(current["digest"], (await config(c, 160))["digest"]);
      assert.ok(typeof list[0]?.["snaptime"] === "number" && list[0]["snaptime"] > 1_600_000_000);
      assert.equal((await config(c, 160))["parent"], "two");
      const snapCfg = (await c.ok("GET", `/nodes/${N}/lxc/160/snapshot/one/config`)) as Config;
      assert.equal(snapCfg["memory"], 512);
      assert.equal(snapCfg["description"], "first one");
      assert.equal(snapCfg["mp0"], "local-lvm:vm-160-disk-1,mp=/data,size=1G");
      assert.equal(snapCfg["parent"], undefined);
      const viaConfig = await config(c, 160, "?snapshot=two");
      assert.equal(viaConfig["memory"], 1024);
      assert.equal(viaConfig["parent"], "one");
      assert.equal(viaConfig["digest"], (await config(c, 160))["digest"]);
      const both = await c.call("GET", `/nodes/${N}/lxc/160/config?snapshot=two&current=1`);
      assert.equal(both.status, 400);
      assert.deepEqual(await c.ok("GET", `/nodes/${N}/lxc/160/snapshot/one`), [{ cmd: "rollback" }, { cmd: "config" }]);
      await c.ok("PUT", `/nodes/${N}/lxc/160/snapshot/one/config`, { form: { description: "renamed" } });
      assert.equal(((await c.ok("GET", `/nodes/${N}/lxc/160/snapshot/one/config`)) as Config)["description"], "renamed");
      assert.equal((await c.call("GET", `/nodes/${N}/lxc/160/snapshot/nope/config`)).reason, "snapshot 'nope' does not exist");
      assert.deepEqual(await c.ok("GET", `/nodes/${N}/lxc/160/feature?feature=snapshot`), { hasFeature: 1 });
    });
    await withSandbox({ dataDelayMs: 300 }, async (c) => {
      await c.createCt(N, 161, { mp0: "local-lvm:1,mp=/data" });
      await start(c, 161);
      const upid = await c.ok("POST", `/nodes/${N}/lxc/161/snapshot`, { form: { snapname: "live" } });
      const during = await seen(c, 161, (cfg) => cfg["lock"] !== undefined);
      assert.equal(during["lock"], "snapshot", "held while the volumes are copied");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/161/config`, { form: { memory: "1024" } })).reason, "CT is locked (snapshot)");
      const midway = (await c.ok("GET", `/nodes/${N}/lxc/161/snapshot`)) as Record<string, unknown>[];
      assert.equal(midway.find((s) => s["name"] === "live")?.["snapstate"], "prepare");
      assert.equal((await c.waitTask(N, upid)).exitstatus, "OK");
      const list = (await c.ok("GET", `/nodes/${N}/lxc/161/snapshot`)) as Record<string, unknown>[];
      assert.equal(list.at(-1)?.["running"], 1);
      assert.equal(list[0]?.["snapstate"], undefined);
      const rb = await c.ok("POST", `/nodes/${N}/lxc/161/snapshot/live/rollback`);
      assert.equal((await seen(c, 161, (cfg) => cfg["lock"] !== undefined))["lock"], "rollback");
      assert.equal((await c.waitTask(N, rb)).exitstatus, "OK");
      const del = await c.ok("DELETE", `/nodes/${N}/lxc/161/snapshot/live`);
      assert.equal((await seen(c, 161, (cfg) => cfg["lock"] !== undefined))["lock"], "snapshot-delete");
      assert.equal((await c.waitTask(N, del)).exitstatus, "OK");
      assert.equal((await config(c, 161))["lock"], undefined);
    });
  });

  it("refuses as Proxmox does: reserved and duplicate names, bind mounts, storages without snapshots, locked containers", async () => {
    await withSandbox({ storages: [{ storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" }, { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] }, DIR_VOLUME_STORAGE] }, async (c, sb) => {
      await c.createCt(N, 170);
      for (const name of ["current", "vzdump"]) {
        const r = await c.call("POST", `/nodes/${N}/lxc/170/snapshot`, { form: { snapname: name } });
        assert.equal(r.status, 500);
        assert.equal(r.reason, `unable to use snapshot name '${name}' (reserved name)`);
      }
      // pve-configid: a letter, then at least one more letter, digit, - or _.
      for (const bad of ["9lives", "a"]) {
        const r = await c.call("POST", `/nodes/${N}/lxc/170/snapshot`, { form: { snapname: bad } });
        assert.equal(r.status, 400);
        assert.equal(errorsOf(r.body)["snapname"], `invalid format - invalid configuration ID '${bad}'`);
      }
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot`, { snapname: "aa" })).exitstatus, "OK");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot`, { snapname: "aa" })).exitstatus, "snapshot name 'aa' already used");
      await c.ok("PUT", `/nodes/${N}/lxc/170/config`, { auth: await rootAuth(c, sb), form: { mp0: "/srv/media,mp=/media" } });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot`, { snapname: "bb" })).exitstatus, "snapshot feature is not available");
      assert.deepEqual(await c.ok("GET", `/nodes/${N}/lxc/170/feature?feature=snapshot`), { hasFeature: 0 });
      assert.deepEqual(await c.ok("GET", `/nodes/${N}/lxc/170/feature?feature=snapshot&snapname=aa`), { hasFeature: 0 });
      assert.equal((await c.call("GET", `/nodes/${N}/lxc/170/feature?feature=snapshot&snapname=zz`)).reason, "snapshot 'zz' does not exist");
      await c.ok("PUT", `/nodes/${N}/lxc/170/config`, { form: { delete: "mp0" } });
      await c.createCt(N, 171, { rootfs: "local-dir:4" });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/171/snapshot`, { snapname: "bb" })).exitstatus, "snapshot feature is not available");
      await c.ok("PUT", `/nodes/${N}/lxc/170/config`, { form: { lock: "backup" } });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot`, { snapname: "cc" })).exitstatus, "CT is locked (backup)");
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/170/snapshot/aa`)).exitstatus, "CT is locked (backup)");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot/aa/rollback`)).exitstatus, "CT is locked (backup)");
      await c.ok("PUT", `/nodes/${N}/lxc/170/config`, { form: { delete: "lock" } });
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/170/snapshot/zz`)).exitstatus, "snapshot 'zz' does not exist");
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/170/snapshot/zz/rollback`)).exitstatus, "snapshot 'zz' does not exist");
    });
  });

  it("rollback stops a running container, brings back the snapshot's config (volumes added since become unused), start=1 starts it", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 180, { memory: "512", mp0: "local-lvm:1,mp=/data" });
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/180/snapshot`, { snapname: "base" })).exitstatus, "OK");
      await c.ok("PUT", `/nodes/${N}/lxc/180/config`, { form: { memory: "2048", hostname: "changed", mp1: "local-lvm:1,mp=/later", description: "kept" } });
      await start(c, 180);
      await c.ok("PUT", `/nodes/${N}/lxc/180/config`, { form: { searchdomain: "lan" } });
      const rb = await task(c, "POST", `/nodes/${N}/lxc/180/snapshot/base/rollback`);
      assert.equal(rb.type, "vzrollback");
      assert.equal(rb.exitstatus, "OK");
      const status = (await c.ok("GET", `/nodes/${N}/lxc/180/status/current`)) as { status: string; maxmem: number; name: string };
      assert.equal(status.status, "stopped", "Proxmox stops it hard for the rollback and leaves it stopped");
      const cfg = await config(c, 180);
      assert.equal(cfg["memory"], 512);
      assert.equal(cfg["hostname"], "CT180");
      assert.equal(cfg["mp1"], undefined);
      assert.equal(cfg["unused0"], "local-lvm:vm-180-disk-2", "the volume added after the snapshot is kept as unused");
      assert.equal(cfg["description"], "kept", "the description is the current one's");
      assert.equal(cfg["searchdomain"], undefined, "pending changes are dropped");
      assert.equal(cfg["parent"], "base");
      assert.equal(status.maxmem, 512 * 1024 * 1024);
      assert.equal((await task(c, "POST", `/nodes/${N}/lxc/180/snapshot/base/rollback`, { start: "1" })).exitstatus, "OK");
      assert.equal(((await c.ok("GET", `/nodes/${N}/lxc/180/status/current`)) as { status: string }).status, "running");
    });
  });

  it("delete is a task under `lock: snapshot-delete`; the parent links skip the deleted snapshot", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 190);
      for (const s of ["s1", "s2", "s3"]) assert.equal((await task(c, "POST", `/nodes/${N}/lxc/190/snapshot`, { snapname: s })).exitstatus, "OK");
      const del = await task(c, "DELETE", `/nodes/${N}/lxc/190/snapshot/s2`);
      assert.equal(del.type, "vzdelsnapshot");
      assert.equal(del.exitstatus, "OK");
      const list = (await c.ok("GET", `/nodes/${N}/lxc/190/snapshot`)) as Record<string, unknown>[];
      assert.deepEqual(list.map((s) => [s["name"], s["parent"]]), [["s1", undefined], ["s3", "s1"], ["current", "s3"]]);
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/190/snapshot/s3`)).exitstatus, "OK");
      assert.equal((await config(c, 190))["parent"], "s1");
      assert.equal((await config(c, 190))["lock"], undefined);
      // The snapshots are part of the config file: its digest changes with them.
      const before = (await config(c, 190))["digest"];
      assert.equal((await task(c, "DELETE", `/nodes/${N}/lxc/190/snapshot/s1`)).exitstatus, "OK");
      assert.notEqual((await config(c, 190))["digest"], before);
      assert.equal((await config(c, 190))["parent"], undefined);
    });
  });
});

describe("sandbox: vzdump and restore", () => {
  it("vzdump is a task holding `lock: backup`; the archive lands on `local` with Proxmox's name and fields, notes and protection", async () => {
    await withSandbox({ dataDelayMs: 300 }, async (c, sb) => {
      await c.createCt(N, 200, { hostname: "peach", mp0: "local-lvm:1,mp=/data,backup=1", mp1: "local-lvm:1,mp=/cache" });
      await c.ok("PUT", `/nodes/${N}/lxc/200/config`, { auth: await rootAuth(c, sb), form: { mp2: "/srv/media,mp=/media" } });
      await start(c, 200);
      const upid = String(await c.ok("POST", `/nodes/${N}/vzdump`, { form: { vmid: "200", storage: "local", mode: "snapshot", compress: "zstd", "notes-template": "{{guestname}} on {{node}} ({{vmid}}, {{cluster}})\\nsecond line", protected: "1" } }));
      assert.match(upid, /:vzdump:200:root@pam!homelab:$/);
      const locked = await seen(c, 200, (cfg) => cfg["lock"] === "backup");
      assert.equal(locked["lock"], "backup");
      assert.equal((await c.call("PUT", `/nodes/${N}/lxc/200/config`, { form: { memory: "1024" } })).reason, "CT is locked (backup)");
      const st = await c.waitTask(N, upid);
      assert.equal(st.exitstatus, "OK");
      const log = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      for (const line of [
        "INFO: Starting Backup of VM 200 (lxc)",
        "INFO: status = running",
        "INFO: CT Name: peach",
        "INFO: including mount point rootfs ('/') in backup",
        "INFO: including mount point mp0 ('/data') in backup",
        "INFO: excluding volume mount point mp1 ('/cache') from backup (disabled)",
        "INFO: excluding bind mount point mp2 ('/media') from backup (not a volume)",
        "INFO: backup mode: snapshot",
        "INFO: create storage snapshot 'vzdump'",
        "INFO: cleanup temporary 'vzdump' snapshot",
        "INFO: Backup job finished successfully",
      ]) {
        assert.ok(log.includes(line), `log has ${line}:\n${log.join("\n")}`);
      }
      const cfg = await config(c, 200);
      assert.equal(cfg["lock"], undefined);
      assert.equal(cfg["parent"], undefined, "the temporary snapshot is gone, and with it its parent link");
      const backups = await content(c, "local", "?content=backup");
      assert.equal(backups.length, 1);
      const b = backups[0];
      assert.ok(b);
      assert.match(b.volid, /^local:backup\/vzdump-lxc-200-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.tar\.zst$/);
      assert.equal(b.content, "backup");
      assert.equal(b.format, "tar.zst");
      assert.equal(b.subtype, "lxc");
      assert.equal(b.vmid, 200);
      assert.equal(b.protected, 1);
      assert.equal(b.notes, "peach on pve-01 (200, sandbox)", "the list shows the first line of the notes");
      assert.ok((b.size ?? 0) > 0);
      const stamp = /(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})/.exec(b.volid);
      assert.ok(stamp);
      assert.equal(b.ctime, Math.floor(new Date(Number(stamp[1]), Number(stamp[2]) - 1, Number(stamp[3]), Number(stamp[4]), Number(stamp[5]), Number(stamp[6])).getTime() / 1000));
      const vol = encodeURIComponent(b.volid);
      const info = (await c.ok("GET", `/nodes/${N}/storage/local/content/${vol}`)) as Record<string, unknown>;
      assert.equal(info["notes"], "peach on pve-01 (200, sandbox)\nsecond line");
      assert.equal(info["protected"], 1);
      assert.equal(info["path"], `/var/lib/vz/dump/${b.volid.slice("local:backup/".length)}`);
      const del = await task(c, "DELETE", `/nodes/${N}/storage/local/content/${vol}`);
      assert.equal(del.type, "imgdel");
      assert.equal(del.id, "200@local");
      assert.equal(del.exitstatus, `cannot remove protected volume '${b.volid.slice("local:".length)}' on 'local'`);
      await c.ok("PUT", `/nodes/${N}/storage/local/content/${vol}`, { form: { protected: "0", notes: "kept by hand" } });
      const again = (await content(c, "local", "?content=backup&vmid=200"))[0];
      assert.equal(again?.protected, undefined);
      assert.equal(again?.notes, "kept by hand");
      const mismatch = await c.call("GET", `/nodes/${N}/storage/local-lvm/content/${vol}`);
      assert.equal(mismatch.status, 400);
      assert.deepEqual(errorsOf(mismatch.body), { volume: "storage ID mismatch (local != local-lvm)\n" });
      const notes = await c.call("PUT", `/nodes/${N}/storage/local-lvm/content/local-lvm:vm-200-disk-0`, { form: { notes: "x" } });
      assert.equal(notes.reason, "volume notes are not supported for PVE::Storage::LvmThinPlugin");
      assert.equal((await c.call("DELETE", `/nodes/${N}/storage/local/content/${vol}?delay=5`)).status, 200);
      assert.deepEqual(await content(c, "local", "?content=backup"), []);
    });
  });

  it("vzdump options and refusals: defaults (uncompressed .tar, snapshot mode), stop mode restarts, bad storage, other nodes, retention", async () => {
    await withSandbox({ storages: [{ storage: "local", type: "dir", content: ["backup", "iso", "vztmpl"], path: "/var/lib/vz" }, { storage: "local-lvm", type: "lvmthin", content: ["images", "rootdir"] }, DIR_VOLUME_STORAGE] }, async (c) => {
      await c.createCt(N, 210, { mp0: "local-dir:1,mp=/plain,backup=1" });
      await c.createCt("pve-02", 211);
      await start(c, 210);
      const st = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210" });
      assert.equal(st.exitstatus, "OK");
      const log = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(st.upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.ok(log.includes("INFO: mode failure - some volumes do not support snapshots"), log.join("\n"));
      assert.ok(log.includes("INFO: backup mode: suspend"));
      assert.match(log[0] ?? "", /^INFO: starting new backup job: vzdump 210/);
      const [first] = await content(c, "local", "?content=backup");
      assert.match(first?.volid ?? "", /\.tar$/, "compress defaults to 0");
      assert.equal(first?.format, "tar");
      const stop = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210", mode: "stop", compress: "gzip" });
      assert.equal(stop.exitstatus, "OK");
      const stopLog = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(stop.upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.ok(stopLog.includes("INFO: stopping virtual guest"));
      assert.ok(stopLog.includes("INFO: restarting vm"));
      assert.equal(((await c.ok("GET", `/nodes/${N}/lxc/210/status/current`)) as { status: string }).status, "running");
      assert.equal(await c.ok("POST", `/nodes/${N}/vzdump`, { form: { vmid: "211" } }), "OK", "a guest of another node is that node's job");
      const wrong = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210", storage: "local-lvm" });
      assert.equal(wrong.exitstatus, "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type");
      const unknown = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210,299", compress: "zstd" });
      assert.equal(unknown.exitstatus, "job errors");
      const uLog = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(unknown.upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.ok(uLog.includes("ERROR: Backup of VM 299 failed - unable to find VM '299'"), uLog.join("\n"));
      assert.ok(uLog.includes("INFO: Backup job finished with errors"));
      const bad = await c.call("POST", `/nodes/${N}/vzdump`, { form: { vmid: "210", all: "1" } });
      assert.deepEqual(errorsOf(bad.body), { all: "option conflicts with option 'vmid'" });
      const none = await c.call("POST", `/nodes/${N}/vzdump`, { form: { storage: "local" } });
      assert.deepEqual(errorsOf(none.body), { vmid: "property is missing" });
      const tmpl = await c.call("POST", `/nodes/${N}/vzdump`, { form: { vmid: "210", storage: "local", "notes-template": "{{name}}" } });
      assert.deepEqual(errorsOf(tmpl.body), { "notes-template": "found unknown: variable 'name' at char 2\n" });
      const needsStorage = await c.call("POST", `/nodes/${N}/vzdump`, { form: { vmid: "210", protected: "1" } });
      assert.deepEqual(errorsOf(needsStorage.body), { storage: "missing property - 'protected' requires this property" });
      const stdout = await c.call("POST", `/nodes/${N}/vzdump`, { form: { vmid: "210", stdout: "1" } });
      assert.deepEqual(errorsOf(stdout.body), { stdout: "option is only allowed on the command line interface." });
      // Retention: keep the last 2 unprotected backups of the guest; a protected one stays and does not count.
      const list0 = await content(c, "local", "?content=backup&vmid=210");
      assert.equal(list0.length, 3);
      await c.ok("PUT", `/nodes/${N}/storage/local/content/${encodeURIComponent(list0[0]?.volid ?? "")}`, { form: { protected: "1" } });
      await sleep(1100); // archive names carry seconds
      const pruned = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210", storage: "local", "prune-backups": "keep-last=2" });
      assert.equal(pruned.exitstatus, "OK");
      const pLog = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(pruned.upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.ok(pLog.includes("INFO: prune older backups with retention: keep-last=2"), pLog.join("\n"));
      assert.ok(pLog.includes("INFO: pruned 1 backup(s) not covered by keep-retention policy"), pLog.join("\n"));
      const left = await content(c, "local", "?content=backup&vmid=210");
      assert.equal(left.length, 3);
      assert.ok(left.some((b) => b.volid === list0[0]?.volid && b.protected === 1));
      const limit = await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "210", storage: "local", "prune-backups": "keep-last=1", remove: "0" });
      assert.equal(limit.exitstatus, "job errors");
    });
  });

  it("restore: the config from the archive, every mount point on new volumes of its size on `storage`; refusals before the task", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 220, { hostname: "peach", memory: "1024", mp0: "local-lvm:2,mp=/data,backup=1", mp1: "local-lvm:1,mp=/cache", tags: "web" });
      assert.equal((await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "220", storage: "local", compress: "zstd" })).exitstatus, "OK");
      const [archive] = await content(c, "local", "?content=backup&vmid=220");
      assert.ok(archive);
      const local = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "221", ostemplate: archive.volid, restore: "1" } });
      assert.equal(local.status, 400);
      assert.deepEqual(errorsOf(local.body), { storage: "storage 'local' does not support container directories" });
      const exists = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "220", ostemplate: archive.volid, restore: "1", storage: "local-lvm" } });
      assert.equal(exists.reason, "CT 220 already exists on node 'pve-01'");
      const template = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "221", ostemplate: TEMPLATE, restore: "1", storage: "local-lvm" } });
      assert.equal(template.reason, `unable to use volume ${TEMPLATE} - content type needs to be 'backup'`);
      const unique = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "221", ostemplate: archive.volid, unique: "1", storage: "local-lvm" } });
      assert.deepEqual(errorsOf(unique.body), { restore: "missing property - 'unique' requires this property" });
      const upid = String(await c.ok("POST", `/nodes/${N}/lxc`, { form: { vmid: "221", ostemplate: archive.volid, restore: "1", storage: "local-lvm", unique: "1", memory: "2048" } }));
      assert.match(upid, /:vzrestore:221:/);
      const st = await c.waitTask(N, upid);
      assert.equal(st.exitstatus, "OK");
      const src = await config(c, 220);
      const cfg = await config(c, 221);
      assert.equal(cfg["hostname"], "peach");
      assert.equal(cfg["tags"], "web");
      assert.equal(cfg["memory"], 2048, "what the request gives wins over the archive");
      assert.equal(cfg["unprivileged"], 1);
      assert.equal(cfg["rootfs"], "local-lvm:vm-221-disk-0,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:vm-221-disk-1,backup=1,mp=/data,size=2G");
      assert.equal(cfg["mp1"], "local-lvm:vm-221-disk-2,mp=/cache,size=1G", "a mount point without backup is recreated, empty");
      assert.notEqual(/hwaddr=([^,]+)/.exec(String(cfg["net0"]))?.[1], /hwaddr=([^,]+)/.exec(String(src["net0"]))?.[1], "unique: a new MAC");
      const log = ((await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(upid)}/log?limit=0`)) as { t: string }[]).map((l) => l.t);
      assert.equal(log[0], `recovering backed-up configuration from '${archive.volid}'`);
      assert.ok(log.includes(`restoring '${archive.volid}' now..`));
      assert.ok(log.includes("merging backed-up and given configuration.."));
      const missing = await task(c, "POST", `/nodes/${N}/lxc`, { vmid: "222", ostemplate: "local:backup/vzdump-lxc-220-2020_01_01-00_00_00.tar.zst", restore: "1", storage: "local-lvm" });
      assert.equal(missing.exitstatus, "unable to restore CT 222 - can't find file 'local:backup/vzdump-lxc-220-2020_01_01-00_00_00.tar.zst'");
      assert.equal((await c.call("GET", `/nodes/${N}/lxc/222/config`)).status, 500, "a failed restore leaves no container");
    });
  });

  it("force-restore over a stopped container destroys every volume its config names (backed up or not), keeps others of its id", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt(N, 230, { hostname: "before", mp0: "local-lvm:2,mp=/data,backup=1", mp1: "local-lvm:1,mp=/cache" });
      assert.equal((await task(c, "POST", `/nodes/${N}/vzdump`, { vmid: "230", storage: "local", compress: "zstd" })).exitstatus, "OK");
      const [archive] = await content(c, "local", "?content=backup&vmid=230");
      assert.ok(archive);
      await c.ok("PUT", `/nodes/${N}/lxc/230/config`, { form: { hostname: "after", mp2: "local-lvm:1,mp=/later" } });
      await c.ok("PUT", `/nodes/${N}/lxc/230/config`, { form: { delete: "mp2" } });
      // A volume of 230's id that its config does not name (here: one given to 231 and back as a bare... orphan on purpose).
      await c.createCt(N, 231, { mp0: "local-lvm:1,mp=/x" });
      await task(c, "POST", `/nodes/${N}/lxc/231/move_volume`, { volume: "mp0", "target-vmid": "230", "target-volume": "mp5" });
      await task(c, "POST", `/nodes/${N}/lxc/230/move_volume`, { volume: "mp5", "target-vmid": "231", "target-volume": "mp0" });
      const before = (await content(c, "local-lvm", "?vmid=230")).map((v) => v.volid);
      assert.deepEqual(before, ["local-lvm:vm-230-disk-0", "local-lvm:vm-230-disk-1", "local-lvm:vm-230-disk-2", "local-lvm:vm-230-disk-3"]);
      await start(c, 230);
      const running = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "230", ostemplate: archive.volid, restore: "1", force: "1", storage: "local-lvm" } });
      assert.equal(running.reason, "can't overwrite running container");
      await c.waitTask(N, await c.ok("POST", `/nodes/${N}/lxc/230/status/stop`));
      await c.ok("PUT", `/nodes/${N}/lxc/230/config`, { form: { protection: "1" } });
      const prot = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "230", ostemplate: archive.volid, restore: "1", force: "1", storage: "local-lvm" } });
      assert.equal(prot.reason, "unable to restore CT 230 - protection mode enabled");
      await c.ok("PUT", `/nodes/${N}/lxc/230/config`, { form: { protection: "0", lock: "backup" } });
      const locked = await c.call("POST", `/nodes/${N}/lxc`, { form: { vmid: "230", ostemplate: archive.volid, restore: "1", force: "1", storage: "local-lvm" } });
      assert.equal(locked.reason, "unable to restore CT 230 - CT is locked (backup)");
      await c.ok("PUT", `/nodes/${N}/lxc/230/config`, { form: { delete: "lock" } });
      const st = await task(c, "POST", `/nodes/${N}/lxc`, { vmid: "230", ostemplate: archive.volid, restore: "1", force: "1", storage: "local-lvm" });
      assert.equal(st.exitstatus, "OK");
      const cfg = await config(c, 230);
      assert.equal(cfg["hostname"], "before");
      assert.equal(cfg["unused0"], undefined);
      // New volumes were made next to the old ones, then the old ones went: rootfs, mp0, mp1 (no backup!) and the unused one.
      assert.equal(cfg["rootfs"], "local-lvm:vm-230-disk-4,size=8G");
      assert.equal(cfg["mp0"], "local-lvm:vm-230-disk-5,backup=1,mp=/data,size=2G");
      assert.equal(cfg["mp1"], "local-lvm:vm-230-disk-6,mp=/cache,size=1G");
      assert.deepEqual((await content(c, "local-lvm", "?vmid=230")).map((v) => v.volid), ["local-lvm:vm-230-disk-4", "local-lvm:vm-230-disk-5", "local-lvm:vm-230-disk-6"]);
    });
  });
});
