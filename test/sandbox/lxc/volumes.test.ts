/**
 * The lxc backend's volume store on plain folders (no root, no LXC): what a
 * base volume, a linked clone and a full clone are on disk, how a linked
 * clone shares Docker's image layers (hard links) but copies the rest, and
 * how a freed base volume waits in `.retired/` for the last clone standing
 * on it.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { VolumeRef } from "../../../src/sandbox/guest-backend.ts";
import { createExecutor } from "../../../src/sandbox/lxc/exec.ts";
import { VolumeStore } from "../../../src/sandbox/lxc/volumes.ts";

const LAYER = "a".repeat(64);
const CONTAINER_LAYER = "b".repeat(64);

describe("lxc volume store: base volumes and clones", () => {
  let dir = "";
  let store: VolumeStore;
  const ref = (name: string, storage = "local-lvm"): VolumeRef => ({ node: "pve-01", storage, name });
  const inode = async (p: string): Promise<number> => (await stat(p)).ino;
  const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "homelab-volumes-"));
    store = new VolumeStore(createExecutor(), join(dir, "storage"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A root volume as a created guest leaves it: an overlay layer over a template tree, and Docker's data with one image layer and one container layer. */
  async function guestRoot(r: VolumeRef): Promise<string> {
    await store.allocate(r);
    const l = await store.initOverlayRoot(r, join(dir, "template-tree"));
    await mkdir(join(l.upper, "root"), { recursive: true });
    await writeFile(join(l.upper, "root/file"), "base\n");
    const d = l.docker;
    await mkdir(join(d, "image/overlay2/layerdb/sha256/c0ffee"), { recursive: true });
    await writeFile(join(d, "image/overlay2/layerdb/sha256/c0ffee/cache-id"), LAYER);
    await mkdir(join(d, `overlay2/${LAYER}/diff/bin`), { recursive: true });
    await writeFile(join(d, `overlay2/${LAYER}/diff/bin/tool`), "binary");
    await writeFile(join(d, `overlay2/${LAYER}/link`), "SHORT");
    await mkdir(join(d, `overlay2/${CONTAINER_LAYER}/diff`), { recursive: true });
    await writeFile(join(d, `overlay2/${CONTAINER_LAYER}/diff/written`), "by a container");
    await mkdir(join(d, "overlay2/l"), { recursive: true });
    await symlink(`../${LAYER}/diff`, join(d, "overlay2/l/SHORT"));
    await mkdir(join(d, "containers"), { recursive: true });
    await writeFile(join(d, "containers/state.json"), "{}");
    return l.dir;
  }

  it("a linked clone of a root volume: an empty layer over the base's tree, Docker's image layers hard-linked, the rest copied", async () => {
    const base = await guestRoot(ref("vm-100-disk-0"));
    await store.rename(ref("vm-100-disk-0"), ref("base-100-disk-0"));
    const baseDir = store.dir(ref("base-100-disk-0"));
    assert.equal(await exists(base), false);
    await store.clone({ from: ref("base-100-disk-0"), to: ref("vm-101-disk-0"), root: true, linked: true });
    const clone = store.dir(ref("vm-101-disk-0"));
    assert.deepEqual(await store.lowers(ref("vm-101-disk-0")), [join(baseDir, "upper"), join(dir, "template-tree")]);
    assert.deepEqual(await readdir(join(clone, "upper")), []);
    const tool = `docker/overlay2/${LAYER}/diff/bin/tool`;
    assert.equal(await inode(join(clone, tool)), await inode(join(baseDir, tool)), "an image layer's files are shared");
    for (const p of [`docker/overlay2/${LAYER}/link`, `docker/overlay2/${CONTAINER_LAYER}/diff/written`, "docker/containers/state.json", "docker/image/overlay2/layerdb/sha256/c0ffee/cache-id"]) {
      assert.notEqual(await inode(join(clone, p)), await inode(join(baseDir, p)), `${p} is copied`);
      assert.equal(await readFile(join(clone, p), "utf8"), await readFile(join(baseDir, p), "utf8"));
    }
    assert.equal(await readFile(join(clone, "docker/overlay2/l/SHORT/bin/tool"), "utf8"), "binary", "the short links still resolve");
  });

  it("a full clone copies the root's own layer and Docker's data, and stands on the same read-only layers below", async () => {
    await store.clone({ from: ref("base-100-disk-0"), to: ref("vm-102-disk-0"), root: true, linked: false });
    const full = store.dir(ref("vm-102-disk-0"));
    const baseDir = store.dir(ref("base-100-disk-0"));
    assert.deepEqual(await store.lowers(ref("vm-102-disk-0")), [join(dir, "template-tree")]);
    assert.equal(await readFile(join(full, "upper/root/file"), "utf8"), "base\n");
    const tool = `docker/overlay2/${LAYER}/diff/bin/tool`;
    assert.notEqual(await inode(join(full, tool)), await inode(join(baseDir, tool)));
    // A mount point's volume is copied, linked or not.
    await store.allocate(ref("base-100-disk-1"));
    await writeFile(join(store.dir(ref("base-100-disk-1")), "data.txt"), "volume");
    await store.clone({ from: ref("base-100-disk-1"), to: ref("vm-101-disk-1"), root: false, linked: true });
    assert.equal(await readFile(join(store.dir(ref("vm-101-disk-1")), "data.txt"), "utf8"), "volume");
  });

  it("a freed base volume waits in .retired/ for the clones (and their snapshots) standing on it, then goes", async () => {
    const retired = join(dir, "storage/.retired");
    await store.snapshot(ref("vm-101-disk-0"), "s1");
    await store.free(ref("base-100-disk-0"));
    assert.equal(await exists(store.dir(ref("base-100-disk-0"))), false);
    const [kept] = await readdir(retired);
    assert.ok(kept);
    assert.deepEqual(await store.lowers(ref("vm-101-disk-0")), [join(retired, kept, "upper"), join(dir, "template-tree")], "the clone follows its base");
    assert.deepEqual(await store.snapshotLowers(ref("vm-101-disk-0"), "s1"), [join(retired, kept, "upper"), join(dir, "template-tree")], "so does its snapshot");
    assert.equal(await readFile(join(retired, kept, "upper/root/file"), "utf8"), "base\n");
    await store.deleteSnapshot(ref("vm-101-disk-0"), "s1");
    await store.free(ref("vm-101-disk-0"));
    assert.deepEqual(await readdir(retired), [], "the last clone took its base with it");
    assert.equal(await readFile(join(store.dir(ref("vm-102-disk-0")), "upper/root/file"), "utf8"), "base\n", "the full clone never needed it");
  });

  it("a chain: a clone made a template, its own clone; freeing from the bottom keeps every layer until nothing stands on it", async () => {
    const retired = join(dir, "storage/.retired");
    await guestRoot(ref("vm-110-disk-0"));
    await store.rename(ref("vm-110-disk-0"), ref("base-110-disk-0"));
    await store.clone({ from: ref("base-110-disk-0"), to: ref("vm-111-disk-0"), root: true, linked: true });
    await store.rename(ref("vm-111-disk-0"), ref("base-111-disk-0"));
    await store.clone({ from: ref("base-111-disk-0"), to: ref("vm-112-disk-0"), root: true, linked: true });
    assert.deepEqual(await store.lowers(ref("vm-112-disk-0")), [join(store.dir(ref("base-111-disk-0")), "upper"), join(store.dir(ref("base-110-disk-0")), "upper"), join(dir, "template-tree")]);
    await store.free(ref("base-110-disk-0"));
    await store.free(ref("base-111-disk-0"));
    assert.equal((await readdir(retired)).length, 2);
    const lowers = (await store.lowers(ref("vm-112-disk-0"))) ?? [];
    assert.equal(lowers.length, 3);
    for (const l of lowers.slice(0, 2)) assert.ok(l.startsWith(`${retired}/`), l);
    await store.free(ref("vm-112-disk-0"));
    assert.deepEqual(await readdir(retired), []);
  });

  it("a ZFS linked clone's folder does not live inside its base's", async () => {
    const zfs = (name: string): VolumeRef => ref(name, "local-zfs");
    await guestRoot(zfs("subvol-120-disk-0"));
    await store.rename(zfs("subvol-120-disk-0"), zfs("basevol-120-disk-0"));
    await store.clone({ from: zfs("basevol-120-disk-0"), to: zfs("basevol-120-disk-0/subvol-121-disk-0"), root: true, linked: true });
    assert.equal(store.dir(zfs("basevol-120-disk-0/subvol-121-disk-0")), join(dir, "storage/pve-01/local-zfs/basevol-120-disk-0+subvol-121-disk-0"));
    assert.deepEqual((await readdir(store.dir(zfs("basevol-120-disk-0")))).sort(), [".sandbox-overlay-base", "docker", "upper", "work"]);
  });
});
