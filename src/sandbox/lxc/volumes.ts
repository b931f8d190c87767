/**
 * The lxc backend's storages on this machine: every volume is a folder
 * `<state>/storage/<node>/<storage>/<volume name>` that outlives its guest;
 * a storage snapshot is a full copy in `.snap/<snapshot>/<volume name>`
 * (taken while the guest is frozen); backups are files in `dump/`.
 *
 * A root volume holds the guest's tree in one of two layouts: `upper/` and
 * `work/` over read-only lower layers named in `.sandbox-overlay-base` (one
 * path a line, top first: a template's unpacked tree at the bottom, and
 * above it the trees of the base volumes a linked clone stands on; an
 * overlay, so a new guest or a linked clone copies nothing), or a plain
 * `root/` (a restored guest). Either way `docker/` is the guest's
 * /var/lib/docker, which Docker's overlay2 needs outside the overlay root.
 * A mount point's volume is the folder itself.
 *
 * A base volume (a template's) is never written again, so linked clones use
 * its tree as a lower layer and share its Docker image layers (hard links).
 * When a base volume is freed while clones still stand on it (LVM-thin
 * allows that, and its clones keep their data), its folder moves to
 * `.retired/` until the last volume using it is gone.
 */
import { chmod, chown, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { BackupRef, VolumeCloneRequest, VolumeRef } from "../guest-backend.ts";
import { removeTreeCommand } from "./commands.ts";
import type { Command } from "./exec.ts";
import type { Executor } from "./exec.ts";

/** Where a root volume keeps the guest's tree. */
export interface RootLayout {
  dir: string;
  /** Overlay layout: the guest's own changes, and overlayfs's work folder. */
  upper: string;
  work: string;
  /** A file naming the read-only layers below `upper`, top first. */
  baseFile: string;
  /** Plain layout: the whole tree. */
  root: string;
  /** The guest's /var/lib/docker. */
  docker: string;
}

/** Names the layers below a root volume's overlay layer (a name no guest data has at a volume's top). */
const BASE_FILE = ".sandbox-overlay-base";
/** Where freed base volumes wait for the last clone standing on them. */
const RETIRED = ".retired";

/** `vm-101-disk-0`, `101/vm-101-disk-0.raw` (dir), `basevol-100-disk-0/subvol-101-disk-0` (a ZFS linked clone). */
const SAFE_NAME = /^(?:(?:\d+|[a-z]+-\d+-disk-\d+)\/)?[a-z]+-\d+-disk-\d+(?:\.raw|\.subvol)?$/;
const SAFE_PART = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

function checkRef(ref: VolumeRef): void {
  if (!SAFE_PART.test(ref.node) || !SAFE_PART.test(ref.storage) || !SAFE_NAME.test(ref.name)) {
    throw new Error(`not a volume the sandbox makes: ${ref.node}/${ref.storage}:${ref.name}`);
  }
}

/**
 * A volume's folder name: a dir storage's owner folder stays a folder
 * (`101/vm-101-disk-0.raw`); a ZFS linked clone's base part does not, or
 * the clone would live inside its base's folder.
 */
function folderName(name: string): string {
  return /^\d+\//.test(name) ? name : name.replaceAll("/", "+");
}

/** Copies entries into the existing folder `to`, keeping owners, modes, links, xattrs. */
function copyCommand(sources: string[], to: string): Command {
  return { argv: ["cp", "-a", "--reflink=auto", "--", ...sources, `${to}/`], timeoutMs: 60 * 60_000 };
}

/** The layer list in a folder's base file (top first), or undefined when it has none. */
async function readLowers(dir: string): Promise<string[] | undefined> {
  const text = await readFile(join(dir, BASE_FILE), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.length > 0 ? lines : undefined;
}

async function writeLowers(dir: string, lowers: readonly string[]): Promise<void> {
  await writeFile(join(dir, BASE_FILE), `${lowers.join("\n")}\n`);
}

/** The `overlay2` folders of the image layers Docker's layer database names (`image/overlay2/layerdb/sha256/*\/cache-id`). */
async function imageLayers(dockerDir: string): Promise<Set<string>> {
  const db = join(dockerDir, "image/overlay2/layerdb/sha256");
  const ids = new Set<string>();
  for (const chain of await readdir(db).catch(() => [] as string[])) {
    const id = (await readFile(join(db, chain, "cache-id"), "utf8").catch(() => "")).trim();
    if (/^[0-9a-f]{64}$/.test(id)) ids.add(id);
  }
  return ids;
}

/** Gives `to` the owner and mode of `from` (a folder cp did not make). */
async function copyAttributes(from: string, to: string): Promise<void> {
  const st = await stat(from).catch(() => undefined);
  if (!st) return;
  await chown(to, st.uid, st.gid);
  await chmod(to, st.mode & 0o7777);
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
  /** Structural changes (free, rename, clone) one at a time: a clone must not see its base half retired. */
  private queue: Promise<unknown> = Promise.resolve();
  private retiredCount = 0;

  constructor(ex: Executor, storageDir: string) {
    this.ex = ex;
    this.root = storageDir;
  }

  /** A volume's folder. */
  dir(ref: VolumeRef): string {
    checkRef(ref);
    return join(this.root, ref.node, ref.storage, folderName(ref.name));
  }

  /** A volume's copy for storage snapshot `snap`. */
  snapshotDir(ref: VolumeRef, snap: string): string {
    checkRef(ref);
    if (!SAFE_PART.test(snap)) throw new Error(`bad snapshot name ${snap}`);
    return join(this.root, ref.node, ref.storage, ".snap", snap, folderName(ref.name));
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

  /** The read-only layers below a root volume's snapshot copy, top first, or undefined for a plain root. */
  async snapshotLowers(ref: VolumeRef, snap: string): Promise<string[] | undefined> {
    return readLowers(this.snapshotDir(ref, snap));
  }

  /** The read-only layers a root volume's overlay lies on, top first, or undefined for a plain root. */
  async lowers(ref: VolumeRef): Promise<string[] | undefined> {
    return readLowers(this.dir(ref));
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
    await this.allocateFolder(this.dir(ref));
  }

  private async allocateFolder(dir: string): Promise<void> {
    if (await exists(dir)) throw new Error(`volume folder ${dir} exists already`);
    await mkdir(dir, { recursive: true });
  }

  /**
   * Removes a volume and every snapshot of it. A base volume that linked
   * clones (or their snapshots) still stand on moves to `.retired/` instead,
   * and goes with the last of them.
   */
  async free(ref: VolumeRef): Promise<void> {
    await this.serial(async () => {
      const dir = this.dir(ref);
      if ((await this.layerUsers(dir)).length > 0) {
        const retired = join(this.root, RETIRED, `${Date.now()}-${++this.retiredCount}`);
        await mkdir(dirname(retired), { recursive: true });
        await this.moveLayers(dir, retired);
      } else {
        await this.ex.run(removeTreeCommand(dir));
      }
      const snaps = join(this.root, ref.node, ref.storage, ".snap");
      for (const snap of await readdir(snaps).catch(() => [] as string[])) {
        await this.ex.run(removeTreeCommand(join(snaps, snap, folderName(ref.name))));
      }
      await this.collectRetired();
    });
  }

  /** Renames a volume's folder (a reassign, a template's base volume): instant, the data moves with it, clones standing on it follow. */
  async rename(from: VolumeRef, to: VolumeRef): Promise<void> {
    await this.serial(async () => {
      const target = this.dir(to);
      if (await exists(target)) throw new Error(`target volume '${to.name}' already exists`);
      await mkdir(dirname(target), { recursive: true });
      await this.moveLayers(this.dir(from), target);
    });
  }

  /**
   * Makes `req.to` from `req.from`. A linked clone of a root volume is an
   * empty overlay layer over the base's tree and the layers below it, with
   * its own /var/lib/docker whose image layers are hard links to the base's
   * (Docker never writes into an image layer; everything else is copied).
   * Everything else is a copy: a full clone (the root's own layer and
   * Docker's data; the read-only layers below are shared, as every guest
   * shares its template's tree), a mount point's volume, and any clone of
   * a snapshot.
   */
  async clone(req: VolumeCloneRequest): Promise<void> {
    await this.serial(async () => {
      const to = this.dir(req.to);
      // A full clone's volume was allocated (empty) to check its storage; a linked clone's is made here.
      if ((await readdir(to).catch(() => undefined))?.length !== 0) await this.allocateFolder(to);
      try {
        const from = req.snapshot !== undefined ? this.snapshotDir(req.from, req.snapshot) : this.dir(req.from);
        if (!(await exists(from))) throw new Error(`volume '${req.from.name}'${req.snapshot !== undefined ? ` has no snapshot '${req.snapshot}'` : " does not exist"}`);
        const lowers = await readLowers(from);
        if (req.root && req.linked && req.snapshot === undefined) {
          const own = lowers !== undefined ? join(from, "upper") : join(from, "root");
          await writeLowers(to, [own, ...(lowers ?? [])]);
          for (const d of ["upper", "work"]) await mkdir(join(to, d));
          await this.shareDocker(join(from, "docker"), join(to, "docker"));
        } else {
          await this.copyTree(from, to);
          if (req.root) await mkdir(join(to, "docker"), { recursive: true });
        }
      } catch (e) {
        await this.ex.run(removeTreeCommand(to));
        throw e;
      }
    });
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

  /** Runs `body` after every structural change started before it. */
  private serial<T>(body: () => Promise<T>): Promise<T> {
    const next = this.queue.then(body, body);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Every folder that may hold a layer list: volumes and their snapshot copies on every node and storage, and retired bases. */
  private async layerHolders(): Promise<string[]> {
    const out: string[] = [];
    const list = (d: string): Promise<string[]> => readdir(d).catch(() => [] as string[]);
    const volumesIn = async (d: string): Promise<void> => {
      for (const e of await list(d)) {
        if (e === ".snap" || e === "dump") continue;
        // A dir storage's owner folder holds its volumes.
        if (/^\d+$/.test(e)) for (const v of await list(join(d, e))) out.push(join(d, e, v));
        else out.push(join(d, e));
      }
    };
    for (const node of await list(this.root)) {
      if (node === RETIRED) continue;
      for (const storage of await list(join(this.root, node))) {
        const sdir = join(this.root, node, storage);
        await volumesIn(sdir);
        for (const snap of await list(join(sdir, ".snap"))) await volumesIn(join(sdir, ".snap", snap));
      }
    }
    for (const r of await list(join(this.root, RETIRED))) out.push(join(this.root, RETIRED, r));
    return out;
  }

  /** The folders whose layer list names a layer inside `dir`. */
  private async layerUsers(dir: string): Promise<string[]> {
    const users: string[] = [];
    for (const holder of await this.layerHolders()) {
      if (holder === dir) continue;
      const lowers = await readLowers(holder);
      if (lowers?.some((l) => l.startsWith(`${dir}/`))) users.push(holder);
    }
    return users;
  }

  /** Moves a volume's folder and points every layer list naming a layer inside it at the new place. */
  private async moveLayers(from: string, to: string): Promise<void> {
    const users = await this.layerUsers(from);
    await rename(from, to);
    for (const u of users) {
      const lowers = await readLowers(u);
      if (lowers) await writeLowers(u, lowers.map((l) => (l.startsWith(`${from}/`) ? `${to}${l.slice(from.length)}` : l)));
    }
  }

  /** Removes retired bases no layer list names any more (one may free another below it). */
  private async collectRetired(): Promise<void> {
    for (;;) {
      const retired = (await readdir(join(this.root, RETIRED)).catch(() => [] as string[])).map((r) => join(this.root, RETIRED, r));
      let removed = false;
      for (const r of retired) {
        if ((await this.layerUsers(r)).length === 0) {
          await this.ex.run(removeTreeCommand(r));
          removed = true;
        }
      }
      if (!removed) return;
    }
  }

  /**
   * Docker's data for a linked clone: image layers (`overlay2/<id>/diff` of
   * every layer the layer database names) hard-linked, everything else
   * (container layers, metadata, volumes, the layer database itself)
   * copied, so the clone's Docker has the base's images at once and writes
   * only into files of its own.
   */
  private async shareDocker(from: string, to: string): Promise<void> {
    await mkdir(to, { recursive: true });
    await copyAttributes(from, to);
    const top = await readdir(from).catch(() => [] as string[]);
    const layers = await imageLayers(from);
    const overlay = join(from, "overlay2");
    const entries = top.includes("overlay2") ? await readdir(overlay) : [];
    const shared = entries.filter((e) => layers.has(e));
    const copied = top.filter((e) => e !== "overlay2" || shared.length === 0);
    if (shared.length > 0) {
      // Paths relative to `from`, so --parents rebuilds them below `to` with their owners and modes.
      await this.ex.run({ argv: ["cp", "-a", "--link", "--parents", "--", ...shared.map((id) => `overlay2/${id}/diff`), `${to}/`], cwd: from, timeoutMs: 60 * 60_000 });
      const rest = [...entries.filter((e) => !layers.has(e)).map((e) => `overlay2/${e}`)];
      for (const id of shared) for (const part of await readdir(join(overlay, id))) if (part !== "diff") rest.push(`overlay2/${id}/${part}`);
      copied.push(...rest);
    }
    if (copied.length > 0) await this.ex.run({ argv: ["cp", "-a", "--reflink=auto", "--parents", "--", ...copied, `${to}/`], cwd: from, timeoutMs: 60 * 60_000 });
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
