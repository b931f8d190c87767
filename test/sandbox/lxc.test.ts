import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TEMPLATE, sleep, withSandbox } from "./helpers.ts";
import type { TestClient } from "./helpers.ts";

type Config = Record<string, string | number>;
const errorsOf = (body: unknown): Record<string, string> => (body as { errors: Record<string, string> }).errors;

async function config(c: TestClient, node: string, vmid: number): Promise<Config> {
  return (await c.ok("GET", `/nodes/${node}/lxc/${vmid}/config`)) as Config;
}

describe("sandbox containers", () => {
  it("create is a task: UPID, running then stopped, `lock: create` meanwhile, log ending TASK OK", async () => {
    await withSandbox({ taskDurationMs: 1000 }, async (c) => {
      const upid = String(await c.ok("POST", "/nodes/pve-01/lxc", { form: { vmid: "101", ostemplate: TEMPLATE, rootfs: "local-lvm:8", unprivileged: "1" } }));
      assert.match(upid, /^UPID:pve-01:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzcreate:101:root@pam!homelab:$/);
      const running = (await c.ok("GET", `/nodes/pve-01/tasks/${encodeURIComponent(upid)}/status`)) as Record<string, unknown>;
      assert.equal(running["status"], "running");
      assert.equal(running["exitstatus"], undefined);
      assert.equal(running["type"], "vzcreate");
      const during = await config(c, "pve-01", 101);
      assert.equal(during["lock"], "create");
      assert.equal(during["hostname"], undefined, "Proxmox writes the config only once the template is unpacked");
      const status = (await c.ok("GET", "/nodes/pve-01/lxc/101/status/current")) as Record<string, unknown>;
      assert.equal(status["lock"], "create");
      const done = await c.waitTask("pve-01", upid);
      assert.equal(done.exitstatus, "OK");
      assert.equal((await config(c, "pve-01", 101))["lock"], undefined);
      const log = await c.call("GET", `/nodes/pve-01/tasks/${encodeURIComponent(upid)}/log`);
      const lines = (log.body as { data: { n: number; t: string }[]; total: number }).data;
      assert.equal(lines.at(-1)?.t, "TASK OK");
      assert.equal(lines[0]?.n, 1);
      assert.equal((log.body as { total: number }).total, lines.length);
      const page = (await c.ok("GET", `/nodes/pve-01/tasks/${encodeURIComponent(upid)}/log?start=1&limit=1`)) as { n: number }[];
      assert.deepEqual(page.map((l) => l.n), [2]);
    });
  });

  it("unknown or malformed UPIDs are parameter errors", async () => {
    await withSandbox({}, async (c) => {
      const bad = await c.call("GET", "/nodes/pve-01/tasks/nope/status");
      assert.deepEqual(errorsOf(bad.body), { upid: "unable to parse worker upid" });
      const unknown = await c.call("GET", `/nodes/pve-01/tasks/${encodeURIComponent("UPID:pve-01:00001234:00001234:65000000:vzstart:100:root@pam:")}/status`);
      assert.deepEqual(errorsOf(unknown.body), { upid: "no such task" });
    });
  });

  it("config file lock: a change waits for a busy container and times out like Proxmox", async () => {
    await withSandbox({ taskDurationMs: 2500, lockTimeoutMs: 100 }, async (c) => {
      const upid = await c.ok("POST", "/nodes/pve-01/lxc", { form: { vmid: "102", ostemplate: TEMPLATE, rootfs: "local-lvm:4" } });
      const del = await c.call("DELETE", "/nodes/pve-01/lxc/102");
      assert.equal(del.status, 500);
      assert.equal(del.reason, "CT is locked (create)");
      const busy = await c.call("PUT", "/nodes/pve-01/lxc/102/config", { form: { memory: "1024" } });
      assert.equal(busy.status, 500);
      assert.equal(busy.reason, "can't lock file '/run/lock/lxc/pve-config-102.lock' - got timeout");
      // Start takes the lock in its worker, as Proxmox does: the timeout is the task's failure.
      const start = await c.ok("POST", "/nodes/pve-01/lxc/102/status/start");
      assert.equal((await c.waitTask("pve-01", start)).exitstatus, "can't lock file '/run/lock/lxc/pve-config-102.lock' - got timeout");
      await c.waitTask("pve-01", upid);
      assert.equal((await c.call("PUT", "/nodes/pve-01/lxc/102/config", { form: { memory: "1024" } })).status, 200);
    });
    await withSandbox({ taskDurationMs: 200, lockTimeoutMs: 2000 }, async (c) => {
      await c.ok("POST", "/nodes/pve-01/lxc", { form: { vmid: "103", ostemplate: TEMPLATE, rootfs: "local-lvm:4" } });
      // Within the timeout, the change waits for the create task and then applies.
      const t0 = Date.now();
      assert.equal((await c.call("PUT", "/nodes/pve-01/lxc/103/config", { form: { memory: "2048" } })).status, 200);
      assert.ok(Date.now() - t0 >= 100);
      assert.equal((await config(c, "pve-01", 103))["memory"], 2048);
    });
  });

  it("a container whose config carries a lock refuses changes: `CT is locked (...)`", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt("pve-01", 104);
      await c.ok("PUT", "/nodes/pve-01/lxc/104/config", { form: { lock: "backup" } });
      const start = await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/104/status/start"));
      assert.equal(start.exitstatus, "CT is locked (backup)");
      const del = await c.call("DELETE", "/nodes/pve-01/lxc/104");
      assert.equal(del.status, 500);
      assert.equal(del.reason, "CT is locked (backup)");
      const put = await c.call("PUT", "/nodes/pve-01/lxc/104/config", { form: { memory: "1024" } });
      assert.equal(put.reason, "CT is locked (backup)");
      await c.ok("PUT", "/nodes/pve-01/lxc/104/config", { form: { delete: "lock" } });
      assert.equal((await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/104/status/start"))).exitstatus, "OK");
      const missing = await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/999/status/start"));
      assert.equal(missing.exitstatus, "Configuration file 'nodes/pve-01/lxc/999.conf' does not exist");
      assert.equal((await c.call("POST", "/nodes/pve-01/lxc/999/status/reboot")).reason, "VM 999 not running");
    });
  });

  it("nextid is a string, honours a wanted id, and two creators racing for it: one gets `already exists`", async () => {
    await withSandbox({ taskDurationMs: 100 }, async (c) => {
      assert.equal(await c.ok("GET", "/cluster/nextid"), "100");
      assert.equal(await c.ok("GET", "/cluster/nextid?vmid=500"), "500");
      const [a, b] = [await c.ok("GET", "/cluster/nextid"), await c.ok("GET", "/cluster/nextid")];
      assert.equal(a, b);
      const form = { vmid: String(a), ostemplate: TEMPLATE, rootfs: "local-lvm:4" };
      const [r1, r2] = await Promise.all([c.call("POST", "/nodes/pve-01/lxc", { form }), c.call("POST", "/nodes/pve-02/lxc", { form })]);
      const statuses = [r1.status, r2.status].sort();
      assert.deepEqual(statuses, [200, 500]);
      const loser = r1.status === 500 ? r1 : r2;
      const winnerNode = r1.status === 200 ? "pve-01" : "pve-02";
      assert.equal(loser.reason, `CT 100 already exists on node '${winnerNode}'`);
      assert.equal(await c.ok("GET", "/cluster/nextid"), "101");
      const taken = await c.call("GET", "/cluster/nextid?vmid=100");
      assert.equal(taken.status, 400);
      assert.deepEqual(errorsOf(taken.body), { vmid: "VM 100 already exists" });
    });
  });

  it("defaults: hostname CT<vmid>, unprivileged unless `unprivileged=0`, memory/swap 512, generated hwaddr", async () => {
    await withSandbox({}, async (c) => {
      await c.ok("POST", "/nodes/pve-02/lxc", { form: { vmid: "110", ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", rootfs: "local-lvm:8", net0: "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1" } });
      await sleep(60);
      const cfg = await config(c, "pve-02", 110);
      assert.equal(cfg["hostname"], "CT110");
      assert.equal(cfg["unprivileged"], 1, "create defaults to unprivileged, unlike the config option's default");
      assert.equal(cfg["memory"], 512);
      assert.equal(cfg["swap"], 512);
      assert.equal(cfg["ostype"], "ubuntu");
      assert.equal(cfg["arch"], "amd64");
      assert.equal(cfg["rootfs"], "local-lvm:vm-110-disk-0,size=8G");
      assert.match(String(cfg["net0"]), /^name=eth0,bridge=vmbr0,gw=10\.0\.0\.1,hwaddr=BC:24:11(:[0-9A-F]{2}){3},ip=10\.0\.0\.5\/24,type=veth$/);
      assert.match(String(cfg["digest"]), /^[0-9a-f]{40}$/);
      await c.createCt("pve-02", 111, { hostname: "web-1", unprivileged: "0" });
      const cfg2 = await config(c, "pve-02", 111);
      assert.equal(cfg2["unprivileged"], undefined, "a privileged container has no `unprivileged` line");
      assert.equal(cfg2["hostname"], "web-1");
      const list = (await c.ok("GET", "/nodes/pve-02/lxc")) as { vmid: number; name: string; status: string }[];
      assert.deepEqual(list.map((g) => [g.vmid, g.name, g.status]).sort(), [[110, "CT110", "stopped"], [111, "web-1", "stopped"]]);
    });
  });

  it("tags are lowercased, de-duplicated and sorted, whatever the separator", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt("pve-01", 120, { tags: "Web;db,web  Tier-1" });
      assert.equal((await config(c, "pve-01", 120))["tags"], "db;tier-1;web");
      await c.ok("PUT", "/nodes/pve-01/lxc/120/config", { form: { tags: "zeta a a" } });
      assert.equal((await config(c, "pve-01", 120))["tags"], "a;zeta");
      const res = (await c.ok("GET", "/cluster/resources?type=vm")) as { vmid: number; tags?: string }[];
      assert.equal(res.find((r) => r.vmid === 120)?.tags, "a;zeta");
      const bad = await c.call("PUT", "/nodes/pve-01/lxc/120/config", { form: { tags: "ok;no:colon" } });
      assert.equal(bad.status, 400);
      assert.match(errorsOf(bad.body)["tags"] ?? "", /invalid tag 'no:colon'/);
    });
  });

  it("net0, rootfs, features and ostemplate are validated", async () => {
    await withSandbox({}, async (c) => {
      const bad = await c.call("POST", "/nodes/pve-01/lxc", {
        form: { vmid: "130", ostemplate: TEMPLATE, net0: "name=eth0,bridge=vmbr0,ip=10.0.0.300/24", features: "nesting=1,bogus=1", rootfs: "local-lvm:8,size=huge" },
      });
      assert.equal(bad.status, 400);
      const errors = errorsOf(bad.body);
      assert.equal(errors["net0"], "invalid format - format error");
      assert.match(errors["net0.ip"] ?? "", /ipv4 network configuration/);
      assert.match(errors["features"] ?? "", /invalid key in comma-separated list property: bogus/);
      assert.match(errors["rootfs.size"] ?? "", /unable to parse size/);
      const noName = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "130", ostemplate: TEMPLATE, net0: "bridge=vmbr0,ip=dhcp" } });
      assert.equal(errorsOf(noName.body)["net0.name"], "property is missing and it is not optional");
      const badMac = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "130", ostemplate: TEMPLATE, net0: "name=eth0,hwaddr=01:00:00:00:00:01" } });
      assert.match(errorsOf(badMac.body)["net0.hwaddr"] ?? "", /unicast MAC/);
      // A missing template is only found by the task, as on Proxmox: clients must read the task's exit status.
      const noTemplate = await c.createCt("pve-01", 130, { ostemplate: "local:vztmpl/debian-99-standard_99.0-1_amd64.tar.zst" });
      assert.equal(noTemplate.exitstatus, "unable to create CT 130 - volume 'local:vztmpl/debian-99-standard_99.0-1_amd64.tar.zst' does not exist");
      assert.equal((await c.call("GET", "/nodes/pve-01/lxc/130/config")).status, 500, "a failed create leaves nothing");
      const vols = (await c.ok("GET", "/nodes/pve-01/storage/local-lvm/content")) as { vmid: number }[];
      assert.ok(!vols.some((v) => v.vmid === 130), "nor its volumes");
      const badStorage = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "130", ostemplate: "nfs:vztmpl/x.tar.zst", rootfs: "local-lvm:8" } });
      assert.equal(badStorage.reason, "storage 'nfs' does not exist");
      const dirRoot = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "130", ostemplate: TEMPLATE } });
      assert.equal(dirRoot.status, 400);
      assert.deepEqual(errorsOf(dirRoot.body), { storage: "storage 'local' does not support container directories" });
      const bare = await c.createCt("pve-01", 133, { rootfs: "3", storage: "local-lvm" });
      assert.equal(bare.exitstatus, "OK");
      assert.equal((await config(c, "pve-01", 133))["rootfs"], "local-lvm:vm-133-disk-0,size=3G");
      const mpOnly = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "134", ostemplate: TEMPLATE, storage: "local-lvm", mp0: "local-lvm:2,mp=/data" } });
      assert.equal(mpOnly.reason, "mount points configured, but 'rootfs' not set - aborting");
      const withMp = await c.createCt("pve-01", 134, { mp0: "local-lvm:2,mp=/data" });
      assert.equal(withMp.exitstatus, "OK");
      assert.equal((await config(c, "pve-01", 134))["mp0"], "local-lvm:vm-134-disk-1,mp=/data,size=2G");
      const badBridge = await c.createCt("pve-01", 131, { net0: "name=eth0,bridge=vmbr7,ip=dhcp" });
      assert.equal(badBridge.exitstatus, "OK");
      const up = await c.ok("POST", "/nodes/pve-01/lxc/131/status/start");
      const st = await c.waitTask("pve-01", up);
      assert.equal(st.exitstatus, "bridge 'vmbr7' does not exist");
      const log = (await c.ok("GET", `/nodes/pve-01/tasks/${encodeURIComponent(String(up))}/log`)) as { t: string }[];
      assert.equal(log.at(-1)?.t, "TASK ERROR: bridge 'vmbr7' does not exist");
      // JSON bodies are accepted too.
      const json = await c.call("POST", "/nodes/pve-01/lxc", { json: { vmid: 132, ostemplate: TEMPLATE, rootfs: "local-lvm:2", unprivileged: true, features: "nesting=1" } });
      assert.equal(json.status, 200);
    });
  });

  it("only root@pam, not a token, may set features other than nesting", async () => {
    await withSandbox({}, async (c, sb) => {
      const token = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "140", ostemplate: TEMPLATE, rootfs: "local-lvm:4", unprivileged: "1", features: "nesting=1,keyctl=1" } });
      assert.equal(token.status, 403);
      assert.equal(token.reason, "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)");
      const privileged = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "140", ostemplate: TEMPLATE, rootfs: "local-lvm:4", unprivileged: "0", features: "nesting=1" } });
      assert.equal(privileged.status, 403);
      assert.match(privileged.reason, /privileged container is only allowed for root@pam/);
      assert.equal((await c.createCt("pve-01", 140, { features: "nesting=1" })).exitstatus, "OK");
      const change = await c.call("PUT", "/nodes/pve-01/lxc/140/config", { form: { features: "nesting=1,keyctl=1" } });
      assert.equal(change.status, 403);
      const t = (await c.ok("POST", "/access/ticket", { auth: "none", form: { username: "root@pam", password: sb.rootPassword } })) as { ticket: string; CSRFPreventionToken: string };
      const root = { ticket: t.ticket, csrf: t.CSRFPreventionToken };
      assert.equal((await c.call("PUT", "/nodes/pve-01/lxc/140/config", { auth: root, form: { features: "nesting=1,keyctl=1" } })).status, 200);
      assert.equal((await config(c, "pve-01", 140))["features"], "keyctl=1,nesting=1");
      const create = await c.call("POST", "/nodes/pve-01/lxc", { auth: root, form: { vmid: "141", ostemplate: TEMPLATE, rootfs: "local-lvm:4", features: "nesting=1,keyctl=1,fuse=1" } });
      assert.equal(create.status, 200);
      // The token may still toggle nesting alone, but not name another flag even with its current value's opposite.
      assert.equal((await c.call("PUT", "/nodes/pve-01/lxc/140/config", { form: { features: "keyctl=1" } })).status, 200);
      assert.equal((await c.call("PUT", "/nodes/pve-01/lxc/140/config", { form: { features: "keyctl=1,nesting=0,fuse=0" } })).status, 403);
      // On a new container, naming any flag but nesting counts as a change (Proxmox compares keys, not values).
      const explicitOff = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "142", ostemplate: TEMPLATE, rootfs: "local-lvm:4", features: "nesting=1,keyctl=0" } });
      assert.equal(explicitOff.status, 403);
      const bind = await c.call("POST", "/nodes/pve-01/lxc", { form: { vmid: "142", ostemplate: TEMPLATE, rootfs: "local-lvm:4", mp0: "/srv/data,mp=/data" } });
      assert.equal(bind.reason, "Permission check failed (mount point type bind is only allowed for root@pam)");
      const dev = await c.call("PUT", "/nodes/pve-01/lxc/140/config", { form: { dev0: "/dev/fuse" } });
      assert.equal(dev.reason, "Permission check failed (configuring device passthrough is only allowed for root@pam)");
      const rootBind = await c.call("POST", "/nodes/pve-01/lxc", { auth: root, form: { vmid: "143", ostemplate: TEMPLATE, rootfs: "local-lvm:4", mp0: "/srv/data,mp=/data" } });
      assert.equal(rootBind.status, 200);
    });
  });

  it("start/stop/shutdown/reboot are tasks; interfaces are null while stopped, link-local only until DHCP answers", async () => {
    await withSandbox({ dhcpDelayMs: 1500 }, async (c) => {
      await c.createCt("pve-01", 150, { net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
      assert.equal(await c.ok("GET", "/nodes/pve-01/lxc/150/interfaces"), null);
      const notRunning = await c.call("POST", "/nodes/pve-01/lxc/150/status/stop");
      assert.equal(notRunning.reason, "CT 150 not running");
      const st = await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/150/status/start"));
      assert.equal(st.type, "vzstart");
      assert.equal(st.exitstatus, "OK");
      const again = await c.call("POST", "/nodes/pve-01/lxc/150/status/start");
      assert.equal(again.reason, "CT 150 already running");
      const early = (await c.ok("GET", "/nodes/pve-01/lxc/150/interfaces")) as { name: string; inet?: string; inet6?: string }[];
      const eth0 = early.find((i) => i.name === "eth0");
      assert.equal(eth0?.inet, undefined);
      assert.match(eth0?.inet6 ?? "", /^fe80::/);
      await sleep(1600);
      const later = (await c.ok("GET", "/nodes/pve-01/lxc/150/interfaces")) as { name: string; inet?: string }[];
      assert.match(later.find((i) => i.name === "eth0")?.inet ?? "", /^\d+\.\d+\.\d+\.\d+\/24$/);
      const status = (await c.ok("GET", "/nodes/pve-01/lxc/150/status/current")) as { status: string; mem: number; maxmem: number };
      assert.equal(status.status, "running");
      assert.ok(status.mem > 0 && status.mem <= status.maxmem);
      assert.equal((await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/150/status/reboot"))).type, "vzreboot");
      assert.equal((await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/150/status/shutdown", { form: { timeout: "5", forceStop: "1" } }))).exitstatus, "OK");
      assert.equal(((await c.ok("GET", "/nodes/pve-01/lxc/150/status/current")) as { status: string }).status, "stopped");
      assert.equal(await c.ok("GET", "/nodes/pve-01/lxc/150/interfaces"), null);
      const skip = await c.call("POST", "/nodes/pve-01/lxc/150/status/start", { form: { skiplock: "1" } });
      assert.deepEqual(errorsOf(skip.body), { skiplock: "Only root may use this option." });
    });
  });

  it("config changes apply live; delete removes keys; read-only and conflicting changes are refused", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt("pve-03", 160, { memory: "1024", description: "hello", onboot: "1" });
      await c.waitTask("pve-03", await c.ok("POST", "/nodes/pve-03/lxc/160/status/start"));
      const before = (await c.ok("GET", "/nodes/pve-03/lxc/160/status/current")) as { maxmem: number; mem: number };
      const digest = String((await config(c, "pve-03", 160))["digest"]);
      await c.ok("PUT", "/nodes/pve-03/lxc/160/config", { form: { memory: "4096", cores: "2", hostname: "renamed", description: "# notes\nline 2", digest } });
      const after = (await c.ok("GET", "/nodes/pve-03/lxc/160/status/current")) as { maxmem: number; mem: number; cpus: number; name: string };
      assert.equal(after.maxmem, 4096 * 1024 * 1024);
      assert.ok(after.mem > before.mem, "the running guest's use follows its new limit");
      assert.equal(after.cpus, 2);
      assert.equal(after.name, "renamed");
      const cfg = await config(c, "pve-03", 160);
      assert.equal(cfg["description"], "# notes\nline 2");
      const stale = await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { memory: "512", digest } });
      assert.match(stale.reason, /detected modified configuration/);
      await c.ok("PUT", "/nodes/pve-03/lxc/160/config", { form: { delete: "description,onboot" } });
      const cfg2 = await config(c, "pve-03", 160);
      assert.equal(cfg2["description"], undefined);
      assert.equal(cfg2["onboot"], undefined);
      const both = await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { cores: "1", delete: "cores" } });
      assert.equal(both.status, 400);
      const ro = await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { unprivileged: "0" } });
      assert.equal(ro.reason, "unable to modify read-only option: 'unprivileged'");
      // Deleting what is not set is only a warning on Proxmox.
      assert.equal((await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { delete: "nameserver" } })).status, 200);
      const required = await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { delete: "memory" } });
      assert.equal(required.reason, "unable to delete required option 'memory'");
      const badStorage = await c.call("PUT", "/nodes/pve-03/lxc/160/config", { form: { mp0: "local:1,mp=/x" } });
      assert.equal(badStorage.reason, "storage 'local' does not allow content type 'rootdir' (Container)");
      const net = String(cfg2["net0"]);
      await c.ok("PUT", "/nodes/pve-03/lxc/160/config", { form: { net0: "name=eth0,bridge=vmbr0,ip=10.1.1.9/24" } });
      const hw = /hwaddr=([^,]+)/.exec(net)?.[1];
      assert.ok(hw !== undefined && String((await config(c, "pve-03", 160))["net0"]).includes(`hwaddr=${hw}`), "hwaddr is kept");
      const missing = await c.call("GET", "/nodes/pve-01/lxc/160/config");
      assert.equal(missing.status, 500);
      assert.equal(missing.reason, "Configuration file 'nodes/pve-01/lxc/160.conf' does not exist");
    });
  });

  it("a running container takes memory, cores, tags, hostname at once; other changes wait for the next start", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt("pve-01", 165, { features: "nesting=1" });
      await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/165/status/start"));
      await c.ok("PUT", "/nodes/pve-01/lxc/165/config", { form: { memory: "768", searchdomain: "lan", delete: "features" } });
      const shown = await config(c, "pve-01", 165);
      assert.equal(shown["memory"], 768);
      assert.equal(shown["searchdomain"], "lan", "GET config shows pending values by default");
      assert.equal(shown["features"], undefined);
      const current = (await c.ok("GET", "/nodes/pve-01/lxc/165/config?current=1")) as Config;
      assert.equal(current["memory"], 768);
      assert.equal(current["searchdomain"], undefined);
      assert.equal(current["features"], "nesting=1");
      await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/165/status/reboot"));
      const applied = (await c.ok("GET", "/nodes/pve-01/lxc/165/config?current=1")) as Config;
      assert.equal(applied["searchdomain"], "lan");
      assert.equal(applied["features"], undefined);
    });
  });

  it("delete is a task, refused for running or protected containers; force stops first", async () => {
    await withSandbox({}, async (c) => {
      await c.createCt("pve-01", 170, { protection: "1" });
      const prot = await c.call("DELETE", "/nodes/pve-01/lxc/170");
      assert.equal(prot.status, 500);
      assert.equal(prot.reason, "can't remove CT 170 - protection mode enabled");
      await c.ok("PUT", "/nodes/pve-01/lxc/170/config", { form: { protection: "0" } });
      await c.waitTask("pve-01", await c.ok("POST", "/nodes/pve-01/lxc/170/status/start"));
      const running = await c.call("DELETE", "/nodes/pve-01/lxc/170");
      assert.equal(running.reason, "unable to destroy CT 170 - container is running");
      const forceBad = await c.call("DELETE", "/nodes/pve-01/lxc/170?force=true");
      assert.equal(forceBad.status, 400);
      const st = await c.waitTask("pve-01", await c.ok("DELETE", "/nodes/pve-01/lxc/170?force=1&purge=1&destroy-unreferenced-disks=1"));
      assert.equal(st.type, "vzdestroy");
      assert.equal(st.exitstatus, "OK");
      assert.equal((await c.call("GET", "/nodes/pve-01/lxc/170/config")).status, 500);
      const vols = (await c.ok("GET", "/nodes/pve-01/storage/local-lvm/content")) as { vmid: number }[];
      assert.ok(!vols.some((v) => v.vmid === 170), "volumes are freed");
    });
  });

  it("node memory and CPU use follow guests as they come and go; over-commit is allowed", async () => {
    await withSandbox({}, async (c) => {
      type NodeStatus = { memory: { used: number; total: number }; cpu: number };
      const idle = (await c.ok("GET", "/nodes/pve-02/status")) as NodeStatus;
      const otherIdle = (await c.ok("GET", "/nodes/pve-01/status")) as NodeStatus;
      // pve-02 has 16 GiB; three 8 GiB guests over-commit it and are still accepted.
      for (const vmid of [180, 181, 182]) {
        assert.equal((await c.createCt("pve-02", vmid, { memory: "8192", cores: "4" })).exitstatus, "OK");
        assert.equal((await c.waitTask("pve-02", await c.ok("POST", `/nodes/pve-02/lxc/${vmid}/status/start`))).exitstatus, "OK");
      }
      const busy = (await c.ok("GET", "/nodes/pve-02/status")) as NodeStatus;
      assert.ok(busy.memory.used > idle.memory.used);
      assert.ok(busy.cpu > idle.cpu);
      const resources = (await c.ok("GET", "/cluster/resources")) as { id: string; mem: number; maxmem: number; cpu: number }[];
      const node = resources.find((r) => r.id === "node/pve-02");
      assert.equal(node?.mem, busy.memory.used);
      const guests = resources.filter((r) => r.id.startsWith("lxc/"));
      assert.equal(guests.reduce((s, g) => s + g.maxmem, 0), 3 * 8192 * 1024 * 1024);
      await c.waitTask("pve-02", await c.ok("POST", "/nodes/pve-02/lxc/180/status/stop"));
      await c.waitTask("pve-02", await c.ok("DELETE", "/nodes/pve-02/lxc/181?force=1"));
      const less = (await c.ok("GET", "/nodes/pve-02/status")) as NodeStatus;
      assert.ok(less.memory.used < busy.memory.used);
      const other = (await c.ok("GET", "/nodes/pve-01/status")) as NodeStatus;
      assert.equal(other.memory.used, otherIdle.memory.used, "other nodes are unaffected");
    });
  });
});
