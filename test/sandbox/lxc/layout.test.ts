import { test } from "node:test";
import assert from "node:assert/strict";
import { lxcConfig } from "../../../src/sandbox/lxc/commands.ts";
import { createExecutor } from "../../../src/sandbox/lxc/exec.ts";
import { GuestFiles } from "../../../src/sandbox/lxc/guest-files.ts";
import { backendLayout, dockerRunDirOf, guestPaths } from "../../../src/sandbox/lxc/layout.ts";
import { VolumeStore } from "../../../src/sandbox/lxc/volumes.ts";
import { parseSubnet } from "../../../src/sandbox/lxc/net.ts";
import type { GuestSpec } from "../../../src/sandbox/guest-backend.ts";

const layout = (docker: boolean) =>
  backendLayout({ stateDir: "/s", bridge: "hlsbx0", subnet: parseSubnet("10.87.53.0/24"), templateDir: "/c/templates", packageCacheDir: "/c/acng", docker });

test("backendLayout: services on the bridge's host address, state under the state folder, dockerd only when asked", () => {
  const l = layout(false);
  assert.equal(l.registry, "10.87.53.1:5000");
  assert.equal(l.packageCacheUrl, "http://10.87.53.1:3142");
  assert.deepEqual([l.lxcpath, l.runDir, l.logDir, l.registryDir, l.storageDir], ["/s/lxc", "/s/run", "/s/logs", "/s/registry", "/s/storage"]);
  assert.equal(l.docker, undefined);
  assert.equal(layout(true).docker?.socket, `${dockerRunDirOf("hlsbx0")}/docker.sock`);
});

test("guestPaths: one folder per guest named <bridge>-<vmid> under the lxcpath; its data lives in its root volume", () => {
  const p = guestPaths(layout(false), 101);
  assert.deepEqual(p.ref, { lxcpath: "/s/lxc", name: "hlsbx0-101" });
  assert.equal(p.dir, "/s/lxc/hlsbx0-101");
  for (const f of [p.rootfs, p.config, p.consoleLog, p.startLog]) assert.ok(f.startsWith(`${p.dir}/`), f);
  const store = new VolumeStore(createExecutor(), layout(false).storageDir);
  const root = store.rootLayout({ node: "pve-01", storage: "local-lvm", name: "vm-101-disk-0" });
  assert.equal(root.dir, "/s/storage/pve-01/local-lvm/vm-101-disk-0");
  for (const f of [root.upper, root.work, root.docker, root.root]) assert.ok(f.startsWith(`${root.dir}/`), f);
  assert.equal(store.dir({ node: "pve-02", storage: "local-dir", name: "101/vm-101-disk-1.raw" }), "/s/storage/pve-02/local-dir/101/vm-101-disk-1.raw");
  assert.equal(store.snapshotDir({ node: "pve-01", storage: "local-lvm", name: "vm-101-disk-1" }, "before"), "/s/storage/pve-01/local-lvm/.snap/before/vm-101-disk-1");
  assert.throws(() => store.dir({ node: "pve-01", storage: "local-lvm", name: "../../etc" }), /not a volume the sandbox makes/);
});

test("GuestFiles.lxcParams: the config points at the guest's own paths, on the backend's bridge, with its addresses", () => {
  const l = layout(false);
  const store = new VolumeStore(createExecutor(), l.storageDir);
  const files = new GuestFiles({ ex: createExecutor(), layout: l, host: { cpus: 4, memsw: false }, store });
  const spec: GuestSpec = {
    vmid: 101,
    node: "pve-01",
    hostname: "peach",
    template: { volid: "local:vztmpl/x.tar.zst", size: 1, ctime: 1 },
    rootfs: { node: "pve-01", storage: "local-lvm", name: "vm-101-disk-0" },
    mounts: [
      { key: "mp1", path: "/srv/my data", readOnly: true, hostPath: "/tank/media" },
      { key: "mp0", path: "/srv", readOnly: false, volume: { node: "pve-01", storage: "local-lvm", name: "vm-101-disk-1" } },
    ],
    memoryMb: 512,
    swapMb: 256,
    cores: 2,
    diskGb: 4,
    net: [{ name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:00:00:01", ip: "dhcp" }],
    sshPublicKeys: "",
    unprivileged: true,
    features: { nesting: true, keyctl: false },
  };
  const paths = guestPaths(l, 101);
  const params = files.lxcParams(spec, paths, [{ cidr: "10.87.53.2/24", gateway: "10.87.53.1" }]);
  assert.equal(params.memswBytes, undefined, "no memsw line where the kernel has no swap accounting");
  const conf = lxcConfig(params).split("\n");
  for (const line of [
    `lxc.rootfs.path = dir:${paths.rootfs}`,
    `lxc.console.logfile = ${paths.consoleLog}`,
    "lxc.mount.entry = /s/storage/pve-01/local-lvm/vm-101-disk-0/docker var/lib/docker none bind,create=dir 0 0",
    // Mount points: the volume's folder, a host folder read-only; parents first, spaces escaped as fstab wants.
    "lxc.mount.entry = /s/storage/pve-01/local-lvm/vm-101-disk-1 srv none bind,create=dir 0 0",
    "lxc.mount.entry = /tank/media srv/my\\040data none bind,create=dir,ro 0 0",
    // The API's bridge name is Proxmox's; every guest sits on the backend's own bridge.
    "lxc.net.0.link = hlsbx0",
    "lxc.net.0.ipv4.address = 10.87.53.2/24",
    // Two of the host's four CPUs, spread by vmid.
    "lxc.cgroup.cpuset.cpus = 1,2",
  ]) {
    assert.ok(conf.includes(line), `missing: ${line}\n${conf.join("\n")}`);
  }
  assert.ok(conf.indexOf("lxc.mount.entry = /s/storage/pve-01/local-lvm/vm-101-disk-1 srv none bind,create=dir 0 0") < conf.indexOf("lxc.mount.entry = /tank/media srv/my\\040data none bind,create=dir,ro 0 0"));
  const withSwap = new GuestFiles({ ex: createExecutor(), layout: l, host: { cpus: 4, memsw: true }, store }).lxcParams(spec, paths, []);
  assert.equal(withSwap.memswBytes, (512 + 256) * 1024 * 1024);
});
