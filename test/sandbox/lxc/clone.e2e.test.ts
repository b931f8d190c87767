/**
 * Templates and clones in the lxc backend, through the sandbox's HTTPS API
 * (root, LXC, Docker inside the guests): a container with a file, a volume
 * and Docker holding an image becomes a template; a linked clone (an overlay
 * over the template's tree, Docker's image layers shared) and a full clone
 * (copied) both boot, have the file, the package and the image, get their own
 * addresses and machine-ids, keep the template's SSH host keys (Proxmox does
 * not renew them on clone), and change nothing of each other or of the
 * template. The template cannot start. Destroying it while a linked clone
 * runs is allowed (LVM-thin), and the clone lives on; on ZFS it is refused.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../../src/sandbox/lxc/backend.ts";
import { templateFileName } from "../../../src/sandbox/lxc/templates.ts";
import { DEFAULT_STORAGES, ZFS_VOLUME_STORAGE, startSandboxServer } from "../../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../../src/sandbox/server.ts";
import { TestClient } from "../helpers.ts";
import type { TaskStatus } from "../helpers.ts";
import { ensureSandboxHost, hostKeyOf, leftovers, makeKey, sshRun, waitForSsh } from "./helpers.ts";

const N = "pve-01";
const BRIDGE = "hlcln0";
const SUBNET = "10.87.99.0/24";
const TEMPLATE = `local:vztmpl/${templateFileName("13.1-2")}`;
type Config = Record<string, string | number>;

describe("[root][lxc][docker] templates and clones in the lxc sandbox: linked and full clones of a Docker base", { timeout: 30 * 60_000 }, () => {
  let dir = "";
  let stateDir = "";
  let backend: LxcGuestBackend;
  let sandbox: RunningSandbox;
  let c: TestClient;
  let key: { privateKey: string; publicKey: string };
  let closed = false;
  const addresses = new Map<number, string>();

  before(async () => {
    await ensureSandboxHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-lxc-clone-"));
    stateDir = join(dir, "lxc-state");
    key = await makeKey(join(dir, "ssh"));
    backend = await createLxcBackend({ stateDir, bridge: BRIDGE, subnet: SUBNET });
    sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api"), storages: [...DEFAULT_STORAGES, ZFS_VOLUME_STORAGE] });
    c = new TestClient(sandbox);
  });

  after(async () => {
    c?.close();
    if (!closed) await sandbox?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function task(method: string, path: string, form: Record<string, string> = {}): Promise<TaskStatus> {
    return c.waitTask(N, await c.ok(method, path, { form }), 15 * 60_000);
  }

  async function ok(method: string, path: string, form: Record<string, string> = {}): Promise<TaskStatus> {
    const st = await task(method, path, form);
    if (st.exitstatus !== "OK") {
      const log = (await c.ok("GET", `/nodes/${N}/tasks/${encodeURIComponent(st.upid)}/log?limit=0`)) as { t: string }[];
      assert.fail(`${method} ${path}: ${st.exitstatus ?? ""}\n${log.map((l) => l.t).join("\n")}`);
    }
    return st;
  }

  async function config(vmid: number): Promise<Config> {
    return (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/config`)) as Config;
  }

  /** Runs a shell command inside a running guest (as `pct exec` does). */
  async function sh(vmid: number, command: string): Promise<string> {
    const r = await backend.exec(vmid, ["sh", "-c", command]);
    if (r.code !== 0) assert.fail(`CT ${vmid}: ${command}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** The guest's IPv4 address from `interfaces`, once DHCP (the backend's pool) gave one. */
  async function address(vmid: number): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const list = (await c.ok("GET", `/nodes/${N}/lxc/${vmid}/interfaces`)) as { name: string; inet?: string }[] | null;
      const inet = list?.find((x) => x.name === "eth0")?.inet;
      if (inet) return inet.split("/")[0] ?? "";
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`CT ${vmid} has no address`);
  }

  /** Starts a guest and waits for SSH with the key the template was made with, pinning the host key its root holds. */
  async function boot(vmid: number): Promise<number> {
    const started = Date.now();
    await ok("POST", `/nodes/${N}/lxc/${vmid}/status/start`);
    const host = await address(vmid);
    addresses.set(vmid, host);
    await waitForSsh({ host, privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) }, 60_000);
    return Date.now() - started;
  }

  function volumeDir(volid: string): string {
    const [storage, name] = volid.split(":");
    return join(stateDir, "storage", N, storage ?? "", (name ?? "").replaceAll("/", "+"));
  }

  const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
  const rootVolume = async (vmid: number): Promise<string> => String((await config(vmid))["rootfs"]).split(",")[0] ?? "";

  let templateHostKey = "";
  let templateMachineId = "";

  test("a container with a file, a volume and Docker holding an image becomes a template", async (t) => {
    await ok("POST", `/nodes/${N}/lxc`, {
      vmid: "100",
      ostemplate: TEMPLATE,
      hostname: "docker-base",
      rootfs: "local-lvm:8",
      mp0: "local-lvm:1,mp=/data,backup=1",
      memory: "1024",
      features: "nesting=1",
      net0: "name=eth0,bridge=vmbr0,ip=dhcp",
      "ssh-public-keys": key.publicKey,
    });
    await boot(100);
    await sh(100, "echo from-the-base > /root/base-file && echo on-the-volume > /data/volume-file");
    const installStarted = Date.now();
    await sh(100, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io docker-cli");
    t.diagnostic(`docker.io installed in ${Date.now() - installStarted} ms`);
    // A one-layer image made inside the guest from the host's static busybox.
    await copyFile("/bin/busybox", join(stateDir, "lxc", backend.containerName(100), "rootfs/root/busybox"));
    await sh(100, "mkdir -p /tmp/img && cp /root/busybox /tmp/img/busybox && chmod +x /tmp/img/busybox && tar -C /tmp/img -c . | docker import -c 'ENTRYPOINT [\"/busybox\"]' - tiny:1 >/dev/null");
    assert.equal(await sh(100, "docker run --rm tiny:1 echo hi-from-the-base"), "hi-from-the-base");
    templateMachineId = await sh(100, "cat /etc/machine-id");
    assert.match(templateMachineId, /^[0-9a-f]{32}$/, "systemd gave the base a machine-id");
    templateHostKey = await hostKeyOf(stateDir, backend.containerName(100));
    await ok("POST", `/nodes/${N}/lxc/100/status/shutdown`, { timeout: "60" });

    const converted = Date.now();
    const answer = await c.call("POST", `/nodes/${N}/lxc/100/template`);
    assert.deepEqual(answer.body, { data: null });
    const [conversion] = (await c.ok("GET", `/nodes/${N}/tasks?vmid=100&typefilter=vztemplate&source=all`)) as { upid: string }[];
    assert.ok(conversion);
    assert.equal((await c.waitTask(N, conversion.upid)).exitstatus, "OK");
    t.diagnostic(`template conversion took ${Date.now() - converted} ms`);
    const cfg = await config(100);
    assert.equal(cfg["template"], 1);
    assert.equal(cfg["rootfs"], "local-lvm:base-100-disk-0,size=8G");
    assert.equal(cfg["mp0"], "local-lvm:base-100-disk-1,backup=1,mp=/data,size=1G");
    assert.equal(await readFile(join(volumeDir("local-lvm:base-100-disk-0"), "upper/root/base-file"), "utf8"), "from-the-base\n", "the base volume is the container's data, renamed");
    assert.equal(await exists(volumeDir("local-lvm:vm-100-disk-0")), false);
    // The template's root is mounted read-only: nothing can write into a base.
    const mounts = await readFile("/proc/mounts", "utf8");
    const line = mounts.split("\n").find((l) => l.split(" ")[1] === join(stateDir, "lxc", backend.containerName(100), "rootfs"));
    assert.match(line ?? "", /\bro\b/, line);
    assert.equal((await task("POST", `/nodes/${N}/lxc/100/status/start`)).exitstatus, "you can't start a CT if it's a template");
    // Its options still change (the hostname reaches each clone's files when it is made, not the read-only base).
    await c.ok("PUT", `/nodes/${N}/lxc/100/config`, { form: { hostname: "docker-base-2", memory: "2048" } });
    assert.equal(await readFile(join(volumeDir("local-lvm:base-100-disk-0"), "upper/etc/hostname"), "utf8"), "docker-base\n");
  });

  test("a linked and a full clone: made from the template, both boot with the file, the volume, Docker and its image, their own addresses and machine-ids", async (t) => {
    const linkedStarted = Date.now();
    await ok("POST", `/nodes/${N}/lxc/100/clone`, { newid: "101", hostname: "linked" });
    t.diagnostic(`linked clone took ${Date.now() - linkedStarted} ms`);
    const fullStarted = Date.now();
    await ok("POST", `/nodes/${N}/lxc/100/clone`, { newid: "102", hostname: "full", full: "1" });
    t.diagnostic(`full clone took ${Date.now() - fullStarted} ms`);
    assert.equal(await rootVolume(101), "local-lvm:vm-101-disk-0");
    assert.equal(await rootVolume(102), "local-lvm:vm-102-disk-0");
    // On disk: the linked clone's root is an empty layer over the base's tree; the full clone has its own copy.
    const linked = volumeDir("local-lvm:vm-101-disk-0");
    assert.deepEqual((await readFile(join(linked, ".sandbox-overlay-base"), "utf8")).split("\n")[0], join(volumeDir("local-lvm:base-100-disk-0"), "upper"));
    assert.equal(await exists(join(linked, "upper/root/base-file")), false, "a linked clone copies nothing of the base's tree");
    assert.equal(await readFile(join(volumeDir("local-lvm:vm-102-disk-0"), "upper/root/base-file"), "utf8"), "from-the-base\n", "a full clone copies");
    // Proxmox clears the machine-id of a clone (post_clone_hook) and keeps its SSH host keys.
    assert.equal(await readFile(join(stateDir, "lxc", backend.containerName(101), "rootfs/etc/machine-id"), "utf8"), "\n");
    for (const vmid of [101, 102]) assert.equal(await hostKeyOf(stateDir, backend.containerName(vmid)), templateHostKey, `CT ${vmid} keeps the template's host key`);
    const bootMs = await boot(101);
    t.diagnostic(`linked clone: start request to SSH answering ${bootMs} ms`);
    await boot(102);
    assert.notEqual(addresses.get(101), addresses.get(102));
    const ids = new Set([templateMachineId]);
    for (const [vmid, hostname] of [[101, "linked"], [102, "full"]] as const) {
      const target = { host: addresses.get(vmid) ?? "", privateKey: key.privateKey, hostKey: templateHostKey };
      assert.equal((await sshRun(target, "cat /root/base-file")).stdout, "from-the-base\n", `CT ${vmid} over SSH`);
      assert.equal(await sh(vmid, "hostname"), hostname);
      assert.equal(await sh(vmid, "cat /data/volume-file"), "on-the-volume");
      assert.match(await sh(vmid, "docker --version"), /^Docker version/);
      assert.equal(await sh(vmid, `docker run --rm tiny:1 echo hi-from-${vmid}`), `hi-from-${vmid}`);
      const id = await sh(vmid, "cat /etc/machine-id");
      assert.match(id, /^[0-9a-f]{32}$/);
      assert.ok(!ids.has(id), `CT ${vmid} has a machine-id of its own`);
      ids.add(id);
      assert.equal((await config(vmid))["template"], undefined);
    }
  });

  test("a change in one clone is seen neither in the other nor in the template", async () => {
    await sh(101, "echo changed-in-101 > /root/base-file && echo only-101 > /root/new-file && echo 101 > /data/volume-file && docker rmi tiny:1 >/dev/null");
    await sh(102, "echo changed-in-102 > /root/base-file");
    assert.equal(await sh(102, "cat /root/base-file"), "changed-in-102");
    assert.equal(await sh(102, "test -e /root/new-file && echo yes || echo no"), "no");
    assert.equal(await sh(102, "cat /data/volume-file"), "on-the-volume");
    assert.equal(await sh(102, "docker run --rm tiny:1 echo still-here"), "still-here");
    assert.equal(await sh(101, "cat /root/base-file"), "changed-in-101");
    const base = volumeDir("local-lvm:base-100-disk-0");
    assert.equal(await readFile(join(base, "upper/root/base-file"), "utf8"), "from-the-base\n");
    assert.equal(await readFile(join(volumeDir("local-lvm:base-100-disk-1"), "volume-file"), "utf8"), "on-the-volume\n");
    const layers = await readdir(join(base, "docker/overlay2"));
    assert.ok(layers.length > 1, "the template still has its image's layer");
    // A third clone still gets the image the first one removed.
    await ok("POST", `/nodes/${N}/lxc/100/clone`, { newid: "103", hostname: "third" });
    await boot(103);
    assert.equal(await sh(103, "docker run --rm tiny:1 echo third"), "third");
    assert.equal(await sh(103, "cat /root/base-file"), "from-the-base");
  });

  test("destroying the template while a linked clone runs is allowed (LVM-thin) and the clone lives on; its base goes with the last clone", async () => {
    await ok("DELETE", `/nodes/${N}/lxc/100`);
    assert.equal(await exists(volumeDir("local-lvm:base-100-disk-0")), false);
    const retired = join(stateDir, "storage", ".retired");
    assert.equal((await readdir(retired)).length, 1, "the base's tree waits for its clones");
    assert.equal(await sh(101, "cat /root/base-file"), "changed-in-101");
    await ok("POST", `/nodes/${N}/lxc/101/status/reboot`);
    assert.match(await sh(101, "docker --version"), /^Docker version/, "the base's tree (Docker installed there) is still below the clone after a reboot");
    assert.equal(await sh(101, "cat /root/new-file"), "only-101");
    await ok("DELETE", `/nodes/${N}/lxc/101?force=1`);
    assert.equal((await readdir(retired)).length, 1, "CT 103 still stands on it");
    await ok("DELETE", `/nodes/${N}/lxc/103?force=1`);
    assert.deepEqual(await readdir(retired), [], "no clone left: the base's tree is gone");
    assert.equal(await sh(102, "cat /root/base-file"), "changed-in-102", "the full clone never depended on it");
  });

  test("on ZFS (local-zfs) the template's destroy is refused while a linked clone names its base", async () => {
    await ok("POST", `/nodes/${N}/lxc`, { vmid: "110", ostemplate: TEMPLATE, rootfs: "local-zfs:4", net0: "name=eth0,bridge=vmbr0,ip=dhcp", "ssh-public-keys": key.publicKey });
    await c.ok("POST", `/nodes/${N}/lxc/110/template`);
    for (let i = 0; i < 200 && (await config(110))["template"] !== 1; i++) await new Promise((r) => setTimeout(r, 50));
    await ok("POST", `/nodes/${N}/lxc/110/clone`, { newid: "111" });
    assert.equal(await rootVolume(111), "local-zfs:basevol-110-disk-0/subvol-111-disk-0");
    assert.equal((await task("DELETE", `/nodes/${N}/lxc/110`)).exitstatus, "base volume 'basevol-110-disk-0' is still in use by linked clones");
    await boot(111);
    assert.equal(await sh(111, "cat /etc/hostname"), "CT110", "the clone keeps the template's hostname when none is given");
    await ok("DELETE", `/nodes/${N}/lxc/111?force=1`);
    await ok("DELETE", `/nodes/${N}/lxc/110`);
  });

  test("a template's backup restores as a template (a plain tree) whose linked clone boots with its files and its static address", async () => {
    await ok("POST", `/nodes/${N}/lxc`, { vmid: "120", ostemplate: TEMPLATE, rootfs: "local-lvm:4", net0: "name=eth0,bridge=vmbr0,ip=10.87.99.50/24", "ssh-public-keys": key.publicKey });
    await ok("POST", `/nodes/${N}/lxc/120/status/start`);
    await sh(120, "echo in-120 > /root/f");
    await ok("POST", `/nodes/${N}/lxc/120/status/shutdown`, { timeout: "60" });
    await c.ok("POST", `/nodes/${N}/lxc/120/template`);
    const [conversion] = (await c.ok("GET", `/nodes/${N}/tasks?vmid=120&typefilter=vztemplate&source=all`)) as { upid: string }[];
    assert.equal((await c.waitTask(N, conversion?.upid)).exitstatus, "OK");
    await ok("POST", `/nodes/${N}/vzdump`, { vmid: "120", storage: "local", compress: "zstd" });
    const [backup] = (await c.ok("GET", `/nodes/${N}/storage/local/content?content=backup&vmid=120`)) as { volid: string }[];
    assert.ok(backup);
    await ok("POST", `/nodes/${N}/lxc`, { vmid: "121", ostemplate: backup.volid, restore: "1", storage: "local-lvm" });
    assert.equal(await rootVolume(121), "local-lvm:base-121-disk-0");
    assert.equal((await config(121))["template"], 1);
    await ok("POST", `/nodes/${N}/lxc/121/clone`, { newid: "122", hostname: "from-a-backup" });
    assert.deepEqual((await readFile(join(volumeDir("local-lvm:vm-122-disk-0"), ".sandbox-overlay-base"), "utf8")).trim(), join(volumeDir("local-lvm:base-121-disk-0"), "root"));
    await boot(122);
    assert.equal(addresses.get(122), "10.87.99.50", "the templates never run: the address they were given is free for the clone");
    assert.equal(await sh(122, "cat /root/f"), "in-120");
    assert.equal(await sh(122, "hostname"), "from-a-backup");
    // The sandbox hands out addresses at create: a second clone with the same static address fails, where Proxmox would clash at start.
    assert.equal((await task("POST", `/nodes/${N}/lxc/121/clone`, { newid: "123" })).exitstatus, "clone failed: ip=10.87.99.50/24: address already in use by another guest");
    assert.equal((await c.call("GET", `/nodes/${N}/lxc/123/config`)).status, 500);
    for (const vmid of [122, 121, 120]) await ok("DELETE", `/nodes/${N}/lxc/${vmid}?force=1`);
  });

  test("a base cleaned for cloning (no SSH host keys, machine-id 'uninitialized'): each clone's first boot makes its own host keys and machine-id (Debian 13's sshd-keygen)", async () => {
    await ok("POST", `/nodes/${N}/lxc`, { vmid: "130", ostemplate: TEMPLATE, rootfs: "local-lvm:4", net0: "name=eth0,bridge=vmbr0,ip=dhcp", "ssh-public-keys": key.publicKey });
    await boot(130);
    const baseKey = await hostKeyOf(stateDir, backend.containerName(130));
    const baseId = await sh(130, "cat /etc/machine-id");
    await sh(130, "rm -f /etc/ssh/ssh_host_* && echo uninitialized > /etc/machine-id");
    await ok("POST", `/nodes/${N}/lxc/130/status/shutdown`, { timeout: "60" });
    await c.ok("POST", `/nodes/${N}/lxc/130/template`);
    const [conversion] = (await c.ok("GET", `/nodes/${N}/tasks?vmid=130&typefilter=vztemplate&source=all`)) as { upid: string }[];
    assert.equal((await c.waitTask(N, conversion?.upid)).exitstatus, "OK");
    const keys = new Set([baseKey]);
    const ids = new Set([baseId]);
    for (const vmid of [131, 132]) {
      await ok("POST", `/nodes/${N}/lxc/130/clone`, { newid: String(vmid) });
      // pve-container leaves 'uninitialized' as it is, so systemd sees a first boot.
      assert.equal(await readFile(join(stateDir, "lxc", backend.containerName(vmid), "rootfs/etc/machine-id"), "utf8"), "uninitialized\n");
      await ok("POST", `/nodes/${N}/lxc/${vmid}/status/start`);
      const host = await address(vmid);
      const keyFile = join(stateDir, "lxc", backend.containerName(vmid), "rootfs/etc/ssh/ssh_host_ed25519_key.pub");
      let hostKey = "";
      for (let i = 0; i < 200 && hostKey === ""; i++) hostKey = await readFile(keyFile, "utf8").catch(async () => (await new Promise((r) => setTimeout(r, 100)), ""));
      assert.ok(hostKey !== "", `CT ${vmid} made its host key at first boot`);
      await waitForSsh({ host, privateKey: key.privateKey, hostKey }, 60_000);
      assert.ok(!keys.has(hostKey), `CT ${vmid}'s host key is its own`);
      keys.add(hostKey);
      const id = await sh(vmid, "cat /etc/machine-id");
      assert.match(id, /^[0-9a-f]{32}$/);
      assert.ok(!ids.has(id), `CT ${vmid}'s machine-id is its own`);
      ids.add(id);
    }
    for (const vmid of [131, 132, 130]) await ok("DELETE", `/nodes/${N}/lxc/${vmid}?force=1`);
  });

  test("closing the sandbox leaves nothing behind", async () => {
    await sandbox.close();
    closed = true;
    assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: backend.hostAddress }), []);
  });
});
