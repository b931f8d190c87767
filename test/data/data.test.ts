import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { identityOf, keptDescription, managedDescription, sameIdentity } from "../../src/data/identity.ts";
import { dataVolumes, freeMountIndexes, mountChanges, noMountChange, sizeInGb } from "../../src/data/mounts.ts";
import { backupNotes, deployIdOfSnapshot, isDeployId, newDeployId, parseBackupNotes, snapshotName } from "../../src/data/safety.ts";
import { adoptionPlan } from "../../src/provider/container-data.ts";
import { parseLxcConfig } from "../../src/proxmox/lxc-types.ts";
import type { ContainerVolume } from "../../src/plan/types.ts";

const ID = { service: "peach", resource: "peach_container", environment: "prod" };
const vol = (name: string, path: string, sizeGb = 1, over: Partial<ContainerVolume> = {}): ContainerVolume => ({ name, sizeGb, path, storage: "local-lvm", backup: true, ...over });

void describe("identity in a container's notes", () => {
  void it("reads back what the planner and a destroy write; ignores other notes", () => {
    assert.deepEqual(identityOf(managedDescription(ID)), { identity: ID, kept: false });
    assert.deepEqual(identityOf(keptDescription(ID, "after its resource was deleted", new Date("2026-12-07T10:00:00Z"))), { identity: ID, kept: true });
    assert.equal(identityOf("my own notes"), undefined);
    assert.equal(identityOf(undefined), undefined);
    assert.equal(sameIdentity(ID, { ...ID, environment: "sandbox" }), false);
  });
  void it("a kept container's notes say how to reattach and how to delete", () => {
    const text = keptDescription(ID, "after its resource was deleted", new Date("2026-12-07T10:00:00Z"));
    assert.match(text, /homelab --env prod deploy peach/);
    assert.match(text, /destroy peach --delete-data/);
  });
});

void describe("snapshot and backup names", () => {
  void it("deploy ids are unique per run and name valid Proxmox snapshots (a letter first, at most 40)", () => {
    const id = newDeployId(new Date("2026-12-07T10:30:05Z"), () => 0.5);
    assert.match(id, /^20261207_103005_[a-z0-9]{4}$/);
    assert.equal(isDeployId(id), true);
    const name = snapshotName(id);
    assert.match(name, /^[a-z][a-z0-9_-]{1,39}$/);
    assert.equal(deployIdOfSnapshot(name), id);
    assert.equal(deployIdOfSnapshot("before-upgrade"), undefined);
    assert.notEqual(newDeployId(), newDeployId());
  });
  void it("backup notes carry the identity, the reason and the deploy, and parse back", () => {
    const notes = backupNotes(ID, "replace", "20261207_103005_abcd");
    assert.deepEqual(parseBackupNotes(notes), { identity: ID, why: "before replacing the container", deployId: "20261207_103005_abcd" });
    assert.equal(parseBackupNotes("vzdump of my own"), undefined);
  });
});

void describe("mount points against declared volumes", () => {
  const config = (raw: Record<string, string>) => parseLxcConfig(raw);

  void it("sizes: G, M, T and bytes", () => {
    assert.deepEqual([sizeInGb("8G"), sizeInGb("512M"), sizeInGb("1T"), sizeInGb(String(2 * 1024 ** 3)), sizeInGb("x")], [8, 0.5, 1024, 2, undefined]);
  });

  void it("nothing to do when the container has what is declared, found by recorded key or by path", () => {
    const c = config({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=1G" });
    const byKey = mountChanges(c.mounts, { volumes: [vol("data", "/srv/data")], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.equal(noMountChange(byKey), true);
    assert.deepEqual(byKey.keys, { data: "mp0" });
    const byPath = mountChanges(c.mounts, { volumes: [vol("data", "/srv/data")], bindMounts: [] }, { volumeKeys: {}, bindMounts: [] });
    assert.deepEqual([noMountChange(byPath), byPath.keys], [true, { data: "mp0" }]);
  });

  void it("a new volume gets the lowest free mount point; a bigger one grows; a smaller one is refused", () => {
    const c = config({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=2G", mp2: "/mnt/x,mp=/x" });
    const r = mountChanges(c.mounts, { volumes: [vol("data", "/srv/data", 5), vol("db", "/srv/db")], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.deepEqual(r.add.map((a) => [a.name, a.index]), [["db", 1]]);
    assert.deepEqual(r.grow, [{ name: "data", index: 0, fromGb: 2, toGb: 5 }]);
    assert.equal(r.restart, false);
    const shrink = mountChanges(c.mounts, { volumes: [vol("data", "/srv/data", 1)], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.deepEqual(shrink.shrink, [{ name: "data", fromGb: 2, toGb: 1 }]);
  });

  void it("a volume no longer declared is detached (restart), one made by hand is left alone", () => {
    const c = config({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data,size=1G", mp1: "local-lvm:vm-105-disk-2,mp=/srv/mine,size=1G" });
    const r = mountChanges(c.mounts, { volumes: [], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.deepEqual(r.detach, [{ index: 0, volume: "local-lvm:vm-105-disk-1", path: "/srv/data" }]);
    assert.equal(r.restart, true);
  });

  void it("a changed path or backup flag is rewritten at the next start; a storage change is reported", () => {
    const c = config({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=1G" });
    const moved = mountChanges(c.mounts, { volumes: [vol("data", "/srv/other")], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.equal(moved.modify[0]?.mount.mp, "/srv/other");
    assert.equal(moved.restart, true);
    const other = mountChanges(c.mounts, { volumes: [vol("data", "/srv/data", 1, { storage: "tank" })], bindMounts: [] }, { volumeKeys: { data: "mp0" }, bindMounts: [] });
    assert.deepEqual(other.storageMove, [{ name: "data", from: "local-lvm", to: "tank" }]);
  });

  void it("bind mounts: added, changed, removed (only those homelab made)", () => {
    const c = config({ mp0: "/mnt/media,mp=/media,ro=1", mp1: "/mnt/old,mp=/old" });
    const r = mountChanges(c.mounts, { volumes: [], bindMounts: [{ host: "/mnt/media", path: "/media", readOnly: false }, { host: "/mnt/new", path: "/new", readOnly: false }] }, { volumeKeys: {}, bindMounts: [{ host: "/mnt/old", path: "/old", readOnly: false }] });
    assert.deepEqual(r.bindModify.map((b) => b.index), [0]);
    assert.deepEqual(r.bindRemove, [1]);
    assert.deepEqual(r.bindAdd.map((b) => [b.index, b.mount.mp]), [[2, "/new"]]);
  });

  void it("data volumes are volume mount points and unused disks, never bind mounts", () => {
    const c = config({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/data", mp1: "/mnt/x,mp=/x", unused0: "local-lvm:vm-105-disk-3" });
    assert.deepEqual(dataVolumes(c).map((d) => d.key), ["mp0", "unused0"]);
    assert.deepEqual(freeMountIndexes([0, 1, 3], 3), [2, 4, 5]);
  });
});

void describe("adopting a predecessor's volumes", () => {
  void it("declared paths go to the declared key; everything else to unused keys, so nothing stays behind", () => {
    const c = parseLxcConfig({ mp0: "local-lvm:vm-105-disk-1,mp=/srv/db,size=3G", mp1: "local-lvm:vm-105-disk-2,mp=/srv/data,size=1G", mp2: "/mnt/x,mp=/x", unused0: "local-lvm:vm-105-disk-4" });
    const plan = adoptionPlan(c, { volumes: [vol("data", "/srv/data"), vol("db", "/srv/db")], bindMounts: [] });
    assert.deepEqual(
      plan.moves.map((m) => [m.from, m.to, m.name ?? null, m.sizeGb ?? null]),
      [
        ["mp0", "mp1", "db", 3],
        ["mp1", "mp0", "data", 1],
        ["unused0", "unused0", null, null],
      ],
    );
    const undeclared = adoptionPlan(c, { volumes: [], bindMounts: [] });
    assert.deepEqual(undeclared.moves.map((m) => m.to), ["unused0", "unused1", "unused2"]);
  });
});
