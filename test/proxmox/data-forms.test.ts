import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatMountPoint, parseMountPoint } from "../../src/proxmox/lxc-format.ts";
import { lxcCreateForm, lxcUpdateForm, moveVolumeForm, parseLxcConfig, resizeForm } from "../../src/proxmox/lxc-types.ts";
import { ProxmoxValidationError } from "../../src/proxmox/errors.ts";

void describe("mount points, resize, move_volume and restore as Proxmox reads them", () => {
  void it("formats new volumes, existing volumes and bind mounts; parses them back", () => {
    assert.equal(formatMountPoint({ kind: "new", storage: "local-lvm", sizeGb: 2, mp: "/srv/data", backup: true }), "local-lvm:2,mp=/srv/data,backup=1");
    assert.equal(formatMountPoint({ kind: "volume", volume: "local-lvm:vm-105-disk-1", mp: "/srv/data", size: "2G", backup: false }), "local-lvm:vm-105-disk-1,mp=/srv/data,size=2G,backup=0");
    assert.equal(formatMountPoint({ kind: "bind", host: "/mnt/media", mp: "/media", readOnly: true }), "/mnt/media,mp=/media,ro=1");
    assert.deepEqual(parseMountPoint("local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=2G,acl=1"), { volume: "local-lvm:vm-105-disk-1", type: "volume", mp: "/srv/data", size: "2G", backup: true, readOnly: false, options: { acl: "1" } });
    assert.equal(parseMountPoint("/mnt/media,mp=/media,ro=1").type, "bind");
    assert.equal(parseMountPoint("/dev/sdb1,mp=/disk").type, "device");
  });
  void it("refuses paths Proxmox cannot take, before sending", () => {
    assert.throws(() => formatMountPoint({ kind: "new", storage: "local-lvm", sizeGb: 1, mp: "/" }), ProxmoxValidationError);
    assert.throws(() => formatMountPoint({ kind: "new", storage: "local-lvm", sizeGb: 1, mp: "/a,b" }), ProxmoxValidationError);
    assert.throws(() => formatMountPoint({ kind: "bind", host: "rel", mp: "/x" }), ProxmoxValidationError);
    assert.throws(() => formatMountPoint({ kind: "new", storage: "local-lvm", sizeGb: 0, mp: "/x" }), ProxmoxValidationError);
  });
  void it("config updates and creates carry mpN; a config read gives mounts, unused disks and the parent snapshot", () => {
    assert.equal(lxcUpdateForm({ mp: { 3: { kind: "new", storage: "local-lvm", sizeGb: 1, mp: "/x" } } })["mp3"], "local-lvm:1,mp=/x");
    const create = lxcCreateForm({ ostemplate: "local:backup/vzdump-lxc-105-2026_12_07-10_00_00.tar.zst", restore: true, force: true, storage: "local-lvm" }, 105);
    assert.deepEqual([create["restore"], create["force"], create["storage"]], [true, true, "local-lvm"]);
    const c = parseLxcConfig({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data", unused2: "local-lvm:vm-105-disk-9", parent: "homelab_20261207_100000_abcd" });
    assert.deepEqual([Object.keys(c.mounts), c.unused, c.parent], [["0"], { 2: "local-lvm:vm-105-disk-9" }, "homelab_20261207_100000_abcd"]);
  });
  void it("resize and move_volume forms; rootfs cannot go to another container", () => {
    assert.deepEqual(resizeForm("mp0", 5), { disk: "mp0", size: "5G", digest: undefined });
    assert.throws(() => resizeForm("net0", 5), ProxmoxValidationError);
    assert.deepEqual(moveVolumeForm({ volume: "mp0", targetVmid: 107, targetVolume: "mp1" }), { volume: "mp0", "target-vmid": 107, "target-volume": "mp1", digest: undefined, "target-digest": undefined });
    assert.deepEqual(moveVolumeForm({ volume: "mp0", storage: "tank", deleteSource: true }), { volume: "mp0", storage: "tank", delete: true, digest: undefined });
    assert.throws(() => moveVolumeForm({ volume: "rootfs", targetVmid: 107 }), ProxmoxValidationError);
  });
});
