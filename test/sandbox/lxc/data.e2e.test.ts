/**
 * A container's data in the lxc backend, through the sandbox's HTTPS API
 * (root, LXC): a file written inside a guest onto a volume survives a
 * reboot, a reassign to another guest, a snapshot + change + rollback, a
 * vzdump + destroy + restore; a volume grows; a host folder is bind-mounted.
 * Volumes are folders of the sandbox's state folder, and closing the sandbox
 * leaves none of them, nor their snapshots or archives.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../../src/sandbox/lxc/backend.ts";
import { templateFileName } from "../../../src/sandbox/lxc/templates.ts";
import { startSandboxServer } from "../../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../../src/sandbox/server.ts";
import { TestClient } from "../helpers.ts";
import type { Credentials, TaskStatus } from "../helpers.ts";
import { ensureSandboxHost, leftovers } from "./helpers.ts";

const run = promisify(execFile);
const N = "pve-01";
const BRIDGE = "hldat0";
const SUBNET = "10.87.95.0/24";
const TEMPLATE = `local:vztmpl/${templateFileName("12.7-1")}`;
type Config = Record<string, string | number>;

describe("[root][lxc] a container's data in the lxc sandbox: volumes, reassign, snapshots, vzdump and restore", { timeout: 20 * 60_000 }, () => {
  let dir = "";
  let stateDir = "";
  let backend: LxcGuestBackend;
  let sandbox: RunningSandbox;
  let c: TestClient;
  let root: Credentials;
  let closed = false;

  before(async () => {
    await ensureSandboxHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-lxc-data-"));
    stateDir = join(dir, "lxc-state");
    backend = await createLxcBackend({ stateDir, bridge: BRIDGE, subnet: SUBNET });
    sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api") });
    c = new TestClient(sandbox);
    const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sandbox.rootPassword } })) as { ticket: string; CSRFPreventionToken: string };
    root = { ticket: t.ticket, csrf: t.CSRFPreventionToken };
  });

  after(async () => {
    c?.close();
    if (!closed) await sandbox?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function task(method: string, path: string, form: Record<string, string> = {}, auth?: Credentials): Promise<TaskStatus> {
    const st = await c.waitTask(N, await c.ok(method, path, { form, ...(auth ? { auth } : {}) }), 10 * 60_000);
    return st;
  }

  async function ok(method: string, path: string, form: Record<string, string> = {}, auth?: Credentials): Promise<void> {
    const st = await task(method, path, form, auth);
    if (st.exitstatus !== "OK") {
      const log = (await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(st.upid)}/log?limit=0`)) as { t: string }[];
      assert.fail(`${method} ${path}: ${st.exitstatus ?? ""}\n${log.map((l) => l.t).join("\n")}`);
    }
  }

  async function config(vmid: number): Promise<Config> {
    return (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/config`)) as Config;
  }

  /** Runs a shell command inside a running guest (as `pct exec` does). */
  async function sh(vmid: number, command: string): Promise<string> {
    const r = await backend.exec(vmid, ["sh", "-c", command]);
    return r.stdout.trim();
  }

  async function create(vmid: number, extra: Record<string, string> = {}): Promise<void> {
    await ok("POST", `/nodes/${N}/lxc`, { vmid: String(vmid), ostemplate: TEMPLATE, rootfs: "local-lvm:4", net0: "name=eth0,bridge=vmbr0,ip=dhcp", ...extra });
  }

  /** A volume's folder on this machine. */
  function volumeDir(volid: string): string {
    const [storage, name] = volid.split(":");
    return join(stateDir, "storage", N, storage ?? "", name ?? "");
  }

  const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

  test("a volume is a folder that its guest writes to and that survives a reboot; resize records the new size", async () => {
    await create(101, { mp0: "local-lvm:1,mp=/data,backup=1" });
    await ok("POST", `/nodes/${N}/lxc/101/status/start`);
    await sh(101, "echo v1 > /data/hello.txt");
    const volid = String((await config(101))["mp0"]).split(",")[0] ?? "";
    assert.equal(volid, "local-lvm:vm-101-disk-1");
    assert.equal(await readFile(join(volumeDir(volid), "hello.txt"), "utf8"), "v1\n", "the guest wrote into the volume's folder");
    assert.equal(await sh(101, "stat -c %U /data/hello.txt"), "root");
    await ok("POST", `/nodes/${N}/lxc/101/status/reboot`);
    assert.equal(await sh(101, "cat /data/hello.txt"), "v1");
    await ok("PUT", `/nodes/${N}/lxc/101/resize`, { disk: "mp0", size: "+1G" });
    assert.equal((await config(101))["mp0"], "local-lvm:vm-101-disk-1,backup=1,mp=/data,size=2G");
    assert.equal(await sh(101, "cat /data/hello.txt"), "v1");
  });

  test("a new mount point is hot-plugged into the running guest; a host folder is bind-mounted (root@pam), read-only when asked", async () => {
    await c.ok("PUT", `/nodes/${N}/lxc/101/config`, { form: { mp1: "local-lvm:1,mp=/scratch" } });
    assert.equal(await sh(101, "echo s > /scratch/s.txt && cat /scratch/s.txt"), "s", "mounted at once, no restart");
    const hostDir = join(dir, "media");
    await run("mkdir", ["-p", hostDir]);
    await writeFile(join(hostDir, "song.txt"), "la\n");
    await c.ok("PUT", `/nodes/${N}/lxc/101/config`, { auth: root, form: { mp2: `${hostDir},mp=/media,ro=1` } });
    assert.equal(await sh(101, "cat /media/song.txt"), "la");
    assert.match(await sh(101, "touch /media/new 2>&1 || echo refused"), /Read-only file system|refused/);
    await c.ok("PUT", `/nodes/${N}/lxc/101/config`, { auth: root, form: { mp3: `${hostDir},mp=/rw` } });
    await sh(101, "echo from-guest > /rw/out.txt");
    assert.equal(await readFile(join(hostDir, "out.txt"), "utf8"), "from-guest\n");
    // A bind mount makes snapshots impossible, as on Proxmox.
    assert.equal((await task("POST", `/nodes/${N}/lxc/101/snapshot`, { snapname: "nope" })).exitstatus, "snapshot feature is not available");
    // A missing host folder fails the start, with Proxmox's words.
    await create(102);
    await c.ok("PUT", `/nodes/${N}/lxc/102/config`, { auth: root, form: { mp0: `${join(dir, "missing")},mp=/m` } });
    assert.equal((await task("POST", `/nodes/${N}/lxc/102/status/start`)).exitstatus, `directory '${join(dir, "missing")}' does not exist`);
    await ok("DELETE", `/nodes/${N}/lxc/102`);
    // Removing the bind mounts waits for the next start (pending), as it does on Proxmox.
    await c.ok("PUT", `/nodes/${N}/lxc/101/config`, { auth: root, form: { delete: "mp2,mp3" } });
    await ok("POST", `/nodes/${N}/lxc/101/status/reboot`);
    assert.equal(await sh(101, "ls /media | wc -l"), "0");
    assert.equal(await readFile(join(hostDir, "song.txt"), "utf8"), "la\n", "the host folder is untouched");
  });

  test("snapshot + change + rollback: the old content is back, root and volume alike", async () => {
    await sh(101, "echo v1 > /data/hello.txt && echo keep > /root/root-file");
    const upid = await c.ok("POST", `/nodes/${N}/lxc/101/snapshot`, { form: { snapname: "before", description: "v1" } });
    const st = await c.waitTask(N, upid, 10 * 60_000);
    assert.equal(st.exitstatus, "OK");
    assert.ok(await exists(join(stateDir, "storage", N, "local-lvm", ".snap", "before", "vm-101-disk-1", "hello.txt")), "the snapshot is a real copy");
    await sh(101, "echo v2 > /data/hello.txt && rm /root/root-file && echo new > /root/later");
    assert.equal(await sh(101, "cat /data/hello.txt"), "v2");
    await ok("POST", `/nodes/${N}/lxc/101/snapshot/before/rollback`, { start: "1" });
    assert.equal(await sh(101, "cat /data/hello.txt"), "v1");
    assert.equal(await sh(101, "cat /root/root-file"), "keep");
    assert.equal(await sh(101, "test -e /root/later && echo yes || echo no"), "no");
    assert.equal(await sh(101, "cat /scratch/s.txt"), "s", "a volume the snapshot has is rolled back, not emptied");
    await ok("DELETE", `/nodes/${N}/lxc/101/snapshot/before`);
    assert.ok(!(await exists(join(stateDir, "storage", N, "local-lvm", ".snap", "before", "vm-101-disk-1"))));
  });

  test("vzdump + destroy + restore: a real tar.zst with the config inside; the file is back in a new guest", async () => {
    await sh(101, "echo v1 > /data/hello.txt && echo gone > /scratch/s.txt && echo t > /tmp/excluded");
    const st = await task("POST", `/nodes/${N}/vzdump`, { vmid: "101", storage: "local", mode: "snapshot", compress: "zstd", "notes-template": "{{guestname}}" });
    assert.equal(st.exitstatus, "OK");
    const [b] = (await c.ok("GET", `/nodes/${N}/storage/local/content?content=backup&vmid=101`)) as { volid: string; size: number; notes?: string }[];
    assert.ok(b);
    assert.equal(b.notes, "CT101");
    const file = join(stateDir, "storage", N, "local", "dump", b.volid.slice("local:backup/".length));
    assert.equal((await stat(file)).size, b.size);
    const { stdout: list } = await run("tar", ["--zstd", "-tf", file], { maxBuffer: 64 * 1024 * 1024 });
    const members = list.split("\n");
    assert.equal(members[0], "./etc/vzdump/pct.conf", "the config comes first");
    assert.ok(members.includes("./data/hello.txt"), "a mount point with backup=1 is in");
    assert.ok(!members.includes("./scratch/s.txt"), "one without backup is not");
    assert.ok(!members.includes("./tmp/excluded"), "vzdump's standard excludes apply");
    assert.ok(members.includes("./etc/hostname"));
    const { stdout: conf } = await run("tar", ["--zstd", "-xOf", file, "./etc/vzdump/pct.conf"]);
    assert.match(conf, /^mp0: local-lvm:vm-101-disk-1,backup=1,mp=\/data,size=2G$/m);
    assert.doesNotMatch(conf, /^lock:/m);
    await ok("POST", `/nodes/${N}/lxc/101/status/stop`);
    const dataDir = volumeDir("local-lvm:vm-101-disk-1");
    await ok("DELETE", `/nodes/${N}/lxc/101`);
    assert.ok(!(await exists(dataDir)), "destroy frees the volume's folder");
    await ok("POST", `/nodes/${N}/lxc`, { vmid: "105", ostemplate: b.volid, restore: "1", storage: "local-lvm" });
    const cfg = await config(105);
    assert.equal(cfg["mp0"], "local-lvm:vm-105-disk-1,backup=1,mp=/data,size=2G");
    assert.equal(cfg["mp1"], "local-lvm:vm-105-disk-2,mp=/scratch,size=1G");
    await ok("POST", `/nodes/${N}/lxc/105/status/start`);
    assert.equal(await sh(105, "cat /data/hello.txt"), "v1");
    assert.equal(await sh(105, "cat /root/root-file"), "keep");
    assert.equal(await sh(105, "ls -A /scratch | wc -l"), "0", "a mount point without backup comes back empty");
    assert.equal(await sh(105, "test -e /etc/vzdump/pct.conf && echo yes || echo no"), "no");
    // Prints "running", or the failed units when systemd is degraded (so a mismatch names them).
    assert.equal(await sh(105, "systemctl is-system-running --wait || systemctl --failed --no-legend"), "running");
  });

  test("reassign: a stopped guest's volume moves to a running guest with its data (hot-plugged there); its folder is renamed", async () => {
    await create(103, { mp0: "local-lvm:1,mp=/data" });
    await ok("POST", `/nodes/${N}/lxc/103/status/start`);
    await sh(103, "echo moved > /data/x.txt");
    await ok("POST", `/nodes/${N}/lxc/103/status/shutdown`, { timeout: "30", forceStop: "1" });
    await create(104);
    await ok("POST", `/nodes/${N}/lxc/104/status/start`);
    await ok("POST", `/nodes/${N}/lxc/103/move_volume`, { volume: "mp0", "target-vmid": "104", "target-volume": "mp0" });
    assert.equal((await config(104))["mp0"], "local-lvm:vm-104-disk-1,mp=/data,size=1G");
    assert.equal(await sh(104, "cat /data/x.txt"), "moved");
    assert.ok(!(await exists(volumeDir("local-lvm:vm-103-disk-1"))));
    assert.equal(await readFile(join(volumeDir("local-lvm:vm-104-disk-1"), "x.txt"), "utf8"), "moved\n");
    // And it stays there across the target's reboot.
    await ok("POST", `/nodes/${N}/lxc/104/status/reboot`);
    assert.equal(await sh(104, "cat /data/x.txt"), "moved");
  });

  test("closing the sandbox leaves no guest, mount, volume, snapshot or archive", async () => {
    await sandbox.close();
    closed = true;
    assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: "10.87.95.1" }), []);
    assert.deepEqual(await readdir(stateDir).then((e) => e.filter((x) => x === "storage")), []);
  });
});
