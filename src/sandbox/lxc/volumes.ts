/**
 * The lxc backend's storages on this machine: every volume is a folder
 * `<state>/storage/<node>/<storage>/<volume name>` that outlives its guest;
 * a storage snapshot is a full copy in `.snap/<snapshot>/<volume name>`
 * (taken while the guest is frozen); backups are files in `dump/`.
 *
 * A root volume holds the guest's tree in one of two layouts: `upper/` and
 * `work/` over a template's unpacked tree named in `.sandbox-overlay-base` (an overlay: a new
 * guest copies nothing), or a plain `root/` (a restored guest). Either way
 * `docker/` is the guest's /var/lib/docker, which Docker's overlay2 needs
 * outside the overlay root. A mount point's volume is the folder itself.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { BackupRef, VolumeRef } from "../guest-backend.ts";
import { removeTreeCommand } from "./commands.ts";
import type { Command } from "./exec.ts";
import type { Executor } from "./exec.ts";

/** Where a root volume keeps the guest's tree. */
export interface RootLayout {
  dir: string;
  /** Overlay layout: the guest's own changes, and overlayfs's work folder. */
  upper: string;
  work: string;
  /** A file naming the template tree below `upper`. */
  baseFile: string;
  /** Plain layout: the whole tree. */
  root: string;
  /** The guest's /var/lib/docker. */
  docker: string;
}

/** Names the template tree below a root volume's overlay layer (a name no guest data has at a volume's top). */
const BASE_FILE = ".sandbox-overlay-base";

const SAFE_NAME = /^(?:\d+\/)?[a-z]+-\d+-disk-\d+(?:\.raw|\.subvol)?$/;
const SAFE_PART = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

function checkRef(ref: VolumeRef): void {
  if (!SAFE_PART.test(ref.node) || !SAFE_PART.test(ref.storage) || !SAFE_NAME.test(ref.name)) {
    throw new Error(`not a volume the sandbox makes: ${ref.node}/${ref.storage}:${ref.name}`);
  }
}

/** Copies entries into the existing folder `to`, keeping owners, modes, links, xattrs. */
function copyCommand(sources: string[], to: string): Command {
  return { argv: ["cp", "-a", "--reflink=auto", "--", ...sources, `${to}/`], timeoutMs: 60 * 60_000 };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The volumes, snapshots and backups of one lxc backend. */
export class VolumeStore {
  private readonly ex: Executor;
  private readonly root: string;

  constructor(ex: Executor, storageDir: string) {
    this.ex = ex;
    this.root = storageDir;
  }

  /** A volume's folder. */
  dir(ref: VolumeRef): string {
    checkRef(ref);
    return join(this.root, ref.node, ref.storage, ref.name);
  }

  /** A volume's copy for storage snapshot `snap`. */
  snapshotDir(ref: VolumeRef, snap: string): string {
    checkRef(ref);
    if (!SAFE_PART.test(snap)) throw new Error(`bad snapshot name ${snap}`);
    return join(this.root, ref.node, ref.storage, ".snap", snap, ref.name);
  }

  /** A backup archive's file. */
  backupPath(ref: BackupRef): string {
    if (!SAFE_PART.test(ref.node) || !SAFE_PART.test(ref.storage) || !/^vzdump-lxc-\d+-[\d_-]+\.tar(\.(zst|gz|lzo))?$/.test(ref.file)) {
      throw new Error(`not a backup the sandbox makes: ${ref.storage}:backup/${ref.file}`);
    }
    return join(this.root, ref.node, ref.storage, "dump", ref.file);
  }

  /** The layout folders of a root volume (they may not exist yet). */
  rootLayout(ref: VolumeRef): RootLayout {
    const dir = this.dir(ref);
    return { dir, upper: join(dir, "upper"), work: join(dir, "work"), baseFile: join(dir, BASE_FILE), root: join(dir, "root"), docker: join(dir, "docker") };
  }

  /** The template tree a root volume's overlay lies on, or undefined for a plain root. */
  async base(ref: VolumeRef): Promise<string | undefined> {
    const text = await readFile(this.rootLayout(ref).baseFile, "utf8").catch(() => undefined);
    return text?.trim() || undefined;
  }

  /** Makes a root volume an overlay layer over `base`. */
  async initOverlayRoot(ref: VolumeRef, base: string): Promise<RootLayout> {
    const l = this.rootLayout(ref);
    for (const d of [l.upper, l.work, l.docker]) await mkdir(d, { recursive: true });
    await writeFile(l.baseFile, `${base}\n`);
    return l;
  }

  /** Makes a root volume a plain tree (the target of a restore). */
  async initPlainRoot(ref: VolumeRef): Promise<RootLayout> {
    const l = this.rootLayout(ref);
    for (const d of [l.root, l.docker]) await mkdir(d, { recursive: true });
    return l;
  }

  async allocate(ref: VolumeRef): Promise<void> {
    const dir = this.dir(ref);
    if (await exists(dir)) throw new Error(`volume folder ${dir} exists already`);
    await mkdir(dir, { recursive: true });
  }

  /** Removes a volume and every snapshot of it. */
  async free(ref: VolumeRef): Promise<void> {
    await this.ex.run(removeTreeCommand(this.dir(ref)));
    const snaps = join(this.root, ref.node, ref.storage, ".snap");
    for (const snap of await readdir(snaps).catch(() => [] as string[])) {
      await this.ex.run(removeTreeCommand(join(snaps, snap, ref.name)));
    }
  }

  /** Renames a volume's folder (a reassign): instant, the data moves with it. */
  async rename(from: VolumeRef, to: VolumeRef): Promise<void> {
    const target = this.dir(to);
    if (await exists(target)) throw new Error(`target volume '${to.name}' already exists`);
    await mkdir(dirname(target), { recursive: true });
    await rename(this.dir(from), target);
  }

  /** Copies a volume into another (allocated, empty) one; an overlay's work folder starts empty. */
  async copy(from: VolumeRef, to: VolumeRef): Promise<void> {
    await this.copyTree(this.dir(from), this.dir(to));
  }

  /** Takes storage snapshot `snap` of a volume (a full copy). */
  async snapshot(ref: VolumeRef, snap: string): Promise<void> {
    const target = this.snapshotDir(ref, snap);
    if (await exists(target)) throw new Error(`snapshot '${snap}' of ${ref.name} exists already`);
    await mkdir(target, { recursive: true });
    try {
      await this.copyTree(this.dir(ref), target);
    } catch (e) {
      await this.ex.run(removeTreeCommand(target));
      throw e;
    }
  }

  /** Puts a volume's data back as snapshot `snap` has it (the snapshot stays). */
  async rollback(ref: VolumeRef, snap: string): Promise<void> {
    const source = this.snapshotDir(ref, snap);
    if (!(await exists(source))) throw new Error(`snapshot '${snap}' of ${ref.name} does not exist`);
    const dir = this.dir(ref);
    const old = `${dir}.rollback`;
    await this.ex.run(removeTreeCommand(old));
    await rename(dir, old);
    await mkdir(dir);
    await this.copyTree(source, dir);
    await this.ex.run(removeTreeCommand(old));
  }

  async deleteSnapshot(ref: VolumeRef, snap: string): Promise<void> {
    await this.ex.run(removeTreeCommand(this.snapshotDir(ref, snap)));
  }

  async freeBackup(ref: BackupRef): Promise<void> {
    await rm(this.backupPath(ref), { force: true });
  }

  /**
   * Copies a volume's entries. A root volume in the overlay layout (it has
   * its base file) leaves out overlayfs's work folder, which starts empty; a mount
   * point's volume is copied whole, whatever its folders are called.
   */
  private async copyTree(from: string, to: string): Promise<void> {
    const overlay = await exists(join(from, BASE_FILE));
    const entries = (await readdir(from)).filter((e) => !(overlay && e === "work"));
    if (entries.length > 0) await this.ex.run(copyCommand(entries.map((e) => join(from, e)), to));
    if (overlay) await mkdir(join(to, "work"), { recursive: true });
  }
}
