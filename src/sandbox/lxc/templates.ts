/**
 * The sandbox's container templates: Debian 12 and Debian 13 root trees made
 * with debootstrap (systemd, sshd), packed the way Proxmox ships them
 * (`debian-12-standard_12.7-1_amd64.tar.zst`, `debian-13-standard_13.1-2_amd64.tar.zst`)
 * and cached per machine. Proxmox VE 9 offers both, so a container asking for
 * `*debian*` `>=12` gets 13 there and here alike.
 *
 * One recipe per release, each with its own stamp: changing one rebuilds
 * only that one, and the releases' debootstraps run side by side (mostly
 * waiting on the archive). Within a release one debootstrap feeds every
 * version: a second one would double the build time for trees that differ
 * only in a label. The versions exist so that template constraints have
 * something to choose. debootstrap on a Debian 12 host knows trixie (its
 * script is sid's), and Debian's archive keyring there signs both.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, writeFile, rename } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import type { TemplateInfo } from "../guest-backend.ts";
import type { Command, Executor } from "./exec.ts";
import { acquireFileLock } from "./lock.ts";
import { removeTreeCommand, unmountUnderCommands } from "./commands.ts";

/** One Debian release the sandbox builds, and the template versions made from it (newest first). */
export interface TemplateRecipe {
  /** debootstrap's suite and the release's codename. */
  suite: "bookworm" | "trixie";
  /** Debian's major version, as in `debian-13-standard`. */
  major: number;
  versions: readonly string[];
}

/** The releases built. 13.1-2 is the Debian 13 template Proxmox VE 9's appliance index offers. */
export const TEMPLATE_RECIPES: readonly TemplateRecipe[] = [
  { suite: "bookworm", major: 12, versions: ["12.7-1", "12.2-1"] },
  { suite: "trixie", major: 13, versions: ["13.1-2"] },
];

/** Every version built, newest first. */
export const TEMPLATE_VERSIONS: readonly string[] = TEMPLATE_RECIPES.flatMap((r) => r.versions).sort((a, b) => compareTemplateVersions(b, a));

function compareTemplateVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map(Number);
  const pb = b.split(/[.-]/).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The recipe a version belongs to. */
export function recipeOf(version: string): TemplateRecipe {
  const r = TEMPLATE_RECIPES.find((x) => x.versions.includes(version));
  if (!r) throw new Error(`no template recipe makes version ${version} (built: ${TEMPLATE_VERSIONS.join(", ")})`);
  return r;
}

/** Packages on top of debootstrap's minbase; what a Proxmox Debian template has that provisioning relies on. */
export const TEMPLATE_PACKAGES: readonly string[] = [
  "systemd-sysv",
  "openssh-server",
  "iproute2",
  "ca-certificates",
  "dbus",
  "procps",
  "curl",
  "iputils-ping",
  "less",
  "netbase",
];

/** Debian's archive; the host must reach it at build time. */
export const DEFAULT_MIRROR = "http://deb.debian.org/debian";

/** The tarball name Proxmox uses for a Debian standard template of `version` (`12.7-1` → `debian-12-standard_12.7-1_amd64.tar.zst`). */
export function templateFileName(version: string): string {
  return `debian-${version.split(".")[0] ?? ""}-standard_${version}_amd64.tar.zst`;
}

/** The `local:vztmpl/...` volid of a template file. */
export function templateVolid(fileName: string): string {
  return `local:vztmpl/${fileName}`;
}

/** Where templates are cached: `${HOMELAB_CACHE:-$HOME/.cache/homelab}/templates`. */
export function defaultTemplateDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.HOMELAB_CACHE ?? join(env.XDG_CACHE_HOME ?? join(env.HOME ?? homedir(), ".cache"), "homelab");
  return join(cache, "templates");
}

/** The debootstrap run that makes the root tree of a release. */
export function debootstrapCommand(rootfs: string, mirror: string = DEFAULT_MIRROR, suite: TemplateRecipe["suite"] = "bookworm"): Command {
  return {
    argv: ["debootstrap", "--variant=minbase", `--include=${TEMPLATE_PACKAGES.join(",")}`, "--components=main", suite, rootfs, mirror],
    timeoutMs: 20 * 60_000,
  };
}

/** A file the build writes into the tree. */
export interface TreeFile {
  path: string;
  content: string;
  mode?: number;
}

/**
 * Files written into the tree after debootstrap (paths relative to the tree).
 * Apt sources as each release writes them itself: Debian 13 in deb822
 * (`sources.list.d/debian.sources`), Debian 12 in `sources.list`.
 */
export function templateFiles(mirror: string = DEFAULT_MIRROR, suite: TemplateRecipe["suite"] = "bookworm"): TreeFile[] {
  const security = mirror.replace(/\/debian\/?$/, "/debian-security");
  const sources: TreeFile[] =
    suite === "bookworm"
      ? [{ path: "etc/apt/sources.list", content: `deb ${mirror} ${suite} main contrib\ndeb ${mirror} ${suite}-updates main contrib\ndeb ${security} ${suite}-security main contrib\n` }]
      : [
          { path: "etc/apt/sources.list", content: "" },
          {
            path: "etc/apt/sources.list.d/debian.sources",
            content:
              `Types: deb\nURIs: ${mirror}\nSuites: ${suite} ${suite}-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n` +
              `Types: deb\nURIs: ${security}\nSuites: ${suite}-security\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
          },
        ];
  return [
    ...sources,
    // systemd makes a fresh machine id at first boot of each container.
    { path: "etc/machine-id", content: "" },
    { path: "etc/hostname", content: "localhost\n" },
    // Containers talk only to this machine; the backend writes the real one.
    { path: "etc/resolv.conf", content: "" },
    // Like Proxmox templates: containers are reached over SSH as root with a key.
    {
      path: "etc/ssh/sshd_config.d/homelab.conf",
      content: "PermitRootLogin prohibit-password\nUseDNS no\n",
    },
  ];
}

/** Paths (relative to the tree) removed after debootstrap: per-machine secrets and caches. */
export const TEMPLATE_REMOVALS: readonly string[] = [
  // Every container gets its own host keys at create, as on Proxmox.
  "etc/ssh/ssh_host_rsa_key",
  "etc/ssh/ssh_host_rsa_key.pub",
  "etc/ssh/ssh_host_ecdsa_key",
  "etc/ssh/ssh_host_ecdsa_key.pub",
  "etc/ssh/ssh_host_ed25519_key",
  "etc/ssh/ssh_host_ed25519_key.pub",
  "var/lib/dbus/machine-id",
  "var/cache/apt/pkgcache.bin",
  "var/cache/apt/srcpkgcache.bin",
  "var/log/bootstrap.log",
];

/** The label file that makes each version's tree its own. */
export function versionFile(version: string): TreeFile {
  return { path: "etc/homelab-template", content: `debian-${version.split(".")[0] ?? ""}-standard ${version}\n` };
}

/** Packs the tree into a Proxmox-style `.tar.zst`, keeping owners, modes and file capabilities. */
export function packCommand(rootfs: string, outFile: string): Command {
  return {
    argv: [
      "tar",
      "--create",
      "--file",
      outFile,
      "--use-compress-program=zstd -T0 -6",
      "--numeric-owner",
      "--xattrs",
      "--xattrs-include=*",
      "--one-file-system",
      "-C",
      rootfs,
      ".",
    ],
    timeoutMs: 10 * 60_000,
  };
}

/** Unpacks a template tarball into an (existing, empty) rootfs folder. */
export function unpackCommand(tarball: string, rootfs: string): Command {
  return {
    argv: [
      "tar",
      "--extract",
      "--file",
      tarball,
      "--use-compress-program=zstd -d -T0",
      "--numeric-owner",
      "--preserve-permissions",
      "--xattrs",
      "--xattrs-include=*",
      "-C",
      rootfs,
    ],
    timeoutMs: 5 * 60_000,
  };
}

/** Removes apt's downloaded package lists and archives from the tree (they go stale and are large). */
function cleanAptCommands(rootfs: string): Command[] {
  return [
    { argv: ["find", join(rootfs, "var/lib/apt/lists"), "-maxdepth", "1", "-type", "f", "-delete"] },
    { argv: ["find", join(rootfs, "var/cache/apt/archives"), "-maxdepth", "1", "-name", "*.deb", "-delete"] },
  ];
}

/** Identifies a release's recipe, so a cached template made by an older recipe is rebuilt. */
export function recipeId(mirror: string = DEFAULT_MIRROR, recipe: TemplateRecipe = TEMPLATE_RECIPES[0] as TemplateRecipe): string {
  const r = {
    debootstrap: debootstrapCommand("ROOTFS", mirror, recipe.suite).argv,
    files: templateFiles(mirror, recipe.suite),
    removals: TEMPLATE_REMOVALS,
    clean: cleanAptCommands("ROOTFS").map((c) => c.argv),
    versions: recipe.versions.map((v) => [templateFileName(v), versionFile(v)]),
    pack: packCommand("ROOTFS", "OUT").argv,
  };
  return createHash("sha256").update(JSON.stringify(r)).digest("hex").slice(0, 16);
}

/** The stamp file holding a release's recipe id (`debian-13-standard.recipe`). */
export function stampName(recipe: TemplateRecipe): string {
  return `debian-${recipe.major}-standard.recipe`;
}

/** Lists the template tarballs in `dir` as `vztmpl` content. */
export async function listTemplates(dir: string): Promise<TemplateInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: TemplateInfo[] = [];
  for (const name of names.filter((n) => /\.tar\.(zst|gz|xz)$/.test(n)).sort()) {
    const path = join(dir, name);
    const st = await stat(path);
    out.push({ volid: templateVolid(name), size: st.size, ctime: Math.floor(st.mtimeMs / 1000), path });
  }
  return out;
}

async function upToDate(dir: string, mirror: string, recipe: TemplateRecipe): Promise<boolean> {
  try {
    if ((await readFile(join(dir, stampName(recipe)), "utf8")).trim() !== recipeId(mirror, recipe)) return false;
    for (const v of recipe.versions) await stat(join(dir, templateFileName(v)));
    return true;
  } catch {
    return false;
  }
}

async function stale(dir: string, mirror: string): Promise<TemplateRecipe[]> {
  const out: TemplateRecipe[] = [];
  for (const r of TEMPLATE_RECIPES) if (!(await upToDate(dir, mirror, r))) out.push(r);
  return out;
}

/** How a template build went. */
export interface TemplateBuildReport {
  built: boolean;
  /** Milliseconds spent (including waiting for another builder). */
  ms: number;
  /** The releases built this time. */
  releases?: string[];
}

/**
 * Makes sure every version's tarball exists in `dir` (built by the current
 * recipe of its release), building those missing, releases side by side.
 * A file lock keeps two processes from building at once; the second waits
 * and then finds them made.
 */
export async function ensureTemplates(options: {
  executor: Executor;
  dir?: string;
  mirror?: string;
  /** Told about slow steps (a first build takes minutes), whatever the executor's verbosity. */
  progress?: (message: string) => void;
}): Promise<{ templates: TemplateInfo[]; report: TemplateBuildReport }> {
  const dir = options.dir ?? defaultTemplateDir();
  const mirror = options.mirror ?? process.env.HOMELAB_DEBIAN_MIRROR ?? DEFAULT_MIRROR;
  const ex = options.executor;
  const say = (m: string): void => (options.progress ? options.progress(m) : ex.log(m));
  const started = Date.now();
  await mkdir(dir, { recursive: true });
  if ((await stale(dir, mirror)).length === 0) {
    return { templates: await listTemplates(dir), report: { built: false, ms: Date.now() - started } };
  }
  const lock = await acquireFileLock(join(dir, ".lock"), {
    onWait: () => say("waiting for another process building the templates"),
  });
  try {
    const todo = await stale(dir, mirror);
    if (todo.length === 0) {
      return { templates: await listTemplates(dir), report: { built: false, ms: Date.now() - started } };
    }
    say(`building the container templates once in ${dir} (debootstrap ${todo.map((r) => r.suite).join(" and ")} from ${mirror}; a few minutes)`);
    await Promise.all(todo.map((r) => buildRelease(ex, dir, mirror, r)));
    return { templates: await listTemplates(dir), report: { built: true, ms: Date.now() - started, releases: todo.map((r) => r.suite) } };
  } finally {
    await lock.release();
  }
}

/** debootstrap, clean and label one release's tree, pack each of its versions, keep the newest's tree as its unpacked base. */
async function buildRelease(ex: Executor, dir: string, mirror: string, recipe: TemplateRecipe): Promise<void> {
  const build = join(dir, `.build-${recipe.suite}`);
  const rootfs = join(build, "rootfs");
  // A crashed build may have left debootstrap's /proc and /sys mounts.
  await ex.runAll(await unmountUnderCommands(build));
  await ex.run(removeTreeCommand(build));
  await mkdir(rootfs, { recursive: true });
  await ex.run(debootstrapCommand(rootfs, mirror, recipe.suite));
  await ex.runAll(await unmountUnderCommands(build));
  for (const rel of TEMPLATE_REMOVALS) await rm(join(rootfs, rel), { force: true });
  await ex.runAll(cleanAptCommands(rootfs));
  for (const f of templateFiles(mirror, recipe.suite)) await writeTreeFile(rootfs, f);
  // Oldest first, so the tree left over is the newest version's and can
  // serve as its unpacked base without another (slow) unpack.
  let last = "";
  for (const version of [...recipe.versions].reverse()) {
    await writeTreeFile(rootfs, versionFile(version));
    last = join(dir, templateFileName(version));
    await ex.run(packCommand(rootfs, `${last}.tmp`));
    await rename(`${last}.tmp`, last);
  }
  const base = await baseDirFor(dir, last);
  await ex.run(removeTreeCommand(base));
  await mkdir(join(base, ".."), { recursive: true });
  await rename(rootfs, base);
  await writeFile(readyMarker(base), "");
  await writeFile(join(dir, stampName(recipe)), `${recipeId(mirror, recipe)}\n`);
  await ex.run(removeTreeCommand(build));
}

/** Writes one file into a tree (replacing a symlink rather than following it out of the tree). */
async function writeTreeFile(rootfs: string, f: TreeFile): Promise<void> {
  const path = join(rootfs, f.path);
  await mkdir(join(path, ".."), { recursive: true });
  await rm(path, { force: true });
  await writeFile(path, f.content, { mode: f.mode ?? 0o644 });
}

/**
 * Where the unpacked tree of a template tarball is kept: guests mount it as
 * the read-only lower layer of an overlay, so creating one copies nothing.
 * Keyed by the tarball's name and mtime, so a replaced tarball gets a new one.
 */
export function baseDirName(tarballName: string, mtimeMs: number): string {
  return `${tarballName.replace(/\.tar\.(zst|gz|xz)$/, "")}@${Math.floor(mtimeMs)}`;
}

/** The base folder of a tarball (see `baseDirName`), under `templateDir/.rootfs`. */
async function baseDirFor(templateDir: string, tarball: string): Promise<string> {
  const st = await stat(tarball);
  return join(templateDir, ".rootfs", baseDirName(basename(tarball), st.mtimeMs));
}

// Next to the base, not in it: the tree must stay exactly what the tarball holds.
function readyMarker(base: string): string {
  return `${base}.ready`;
}

/**
 * Returns the unpacked tree of `tarball`, unpacking it once per machine (a
 * file lock keeps two processes from unpacking the same one).
 */
export async function ensureBase(options: {
  executor: Executor;
  templateDir: string;
  tarball: string;
  progress?: (message: string) => void;
}): Promise<string> {
  const say = (m: string): void => (options.progress ? options.progress(m) : options.executor.log(m));
  const base = await baseDirFor(options.templateDir, options.tarball);
  const ready = async (): Promise<boolean> => {
    try {
      await stat(readyMarker(base));
      return true;
    } catch {
      return false;
    }
  };
  if (await ready()) return base;
  await mkdir(join(base, ".."), { recursive: true });
  const lock = await acquireFileLock(join(base, "..", ".lock"), {
    onWait: () => say(`waiting for another process unpacking ${basename(options.tarball)}`),
  });
  try {
    if (await ready()) return base;
    const tmp = `${base}.tmp`;
    await options.executor.run(removeTreeCommand(tmp));
    await options.executor.run(removeTreeCommand(base));
    await mkdir(tmp, { recursive: true });
    say(`unpacking ${basename(options.tarball)} once for its guests`);
    await options.executor.run(unpackCommand(options.tarball, tmp));
    await rename(tmp, base);
    await writeFile(readyMarker(base), "");
    return base;
  } finally {
    await lock.release();
  }
}
