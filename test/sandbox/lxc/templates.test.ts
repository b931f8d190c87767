import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  baseDirName,
  debootstrapCommand,
  defaultTemplateDir,
  listTemplates,
  packCommand,
  recipeId,
  recipeOf,
  stampName,
  DEFAULT_MIRROR,
  TEMPLATE_RECIPES,
  TEMPLATE_PACKAGES,
  TEMPLATE_REMOVALS,
  TEMPLATE_VERSIONS,
  templateFileName,
  templateFiles,
  templateVolid,
  unpackCommand,
  versionFile,
} from "../../../src/sandbox/lxc/templates.ts";

/** recipeId() of the Debian 12 templates before Debian 13 was added (commit ad1bf17), for Debian's own mirror. */
const BOOKWORM_RECIPE_BEFORE = "12995e4569ef56b4";

test("template names follow Proxmox's pattern: Debian 12 (two versions, so constraints have a choice) and Debian 13, newest first", () => {
  assert.deepEqual(TEMPLATE_VERSIONS, ["13.1-2", "12.7-1", "12.2-1"]);
  for (const v of TEMPLATE_VERSIONS) assert.match(templateFileName(v), /^debian-1[23]-standard_1[23]\.\d+-\d+_amd64\.tar\.zst$/);
  assert.equal(templateFileName("13.1-2"), "debian-13-standard_13.1-2_amd64.tar.zst");
  assert.equal(templateVolid("debian-12-standard_12.7-1_amd64.tar.zst"), "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
  assert.deepEqual(TEMPLATE_RECIPES.map((r) => [r.suite, r.major, stampName(r)]), [
    ["bookworm", 12, "debian-12-standard.recipe"],
    ["trixie", 13, "debian-13-standard.recipe"],
  ]);
  assert.equal(recipeOf("13.1-2").suite, "trixie");
  assert.equal(recipeOf("12.2-1").suite, "bookworm");
  assert.throws(() => recipeOf("11.7-1"), /no template recipe makes version 11\.7-1/);
  assert.equal(versionFile("13.1-2").content, "debian-13-standard 13.1-2\n");
});

test("debootstrap makes a minbase of the release with systemd and sshd", () => {
  const argv = debootstrapCommand("/b/rootfs", "http://deb.example/debian").argv;
  assert.equal(argv[0], "debootstrap");
  assert.ok(argv.includes("--variant=minbase"));
  const include = argv.find((a) => a.startsWith("--include="))?.split("=")[1]?.split(",") ?? [];
  for (const p of ["systemd-sysv", "openssh-server", "iproute2", "ca-certificates"]) assert.ok(include.includes(p), p);
  assert.deepEqual(argv.slice(-3), ["bookworm", "/b/rootfs", "http://deb.example/debian"]);
  assert.deepEqual(include, [...TEMPLATE_PACKAGES]);
  assert.deepEqual(debootstrapCommand("/b/rootfs", "http://deb.example/debian", "trixie").argv.slice(-3), ["trixie", "/b/rootfs", "http://deb.example/debian"]);
});

test("template files: sources for the mirror incl. security (Debian 13 in deb822, as it writes them), empty machine id; host keys removed", () => {
  const files = templateFiles("http://deb.example/debian");
  const sources = files.find((f) => f.path === "etc/apt/sources.list")?.content ?? "";
  assert.match(sources, /^deb http:\/\/deb\.example\/debian bookworm main/m);
  assert.match(sources, /^deb http:\/\/deb\.example\/debian-security bookworm-security main/m);
  assert.equal(files.find((f) => f.path === "etc/machine-id")?.content, "");
  assert.ok(TEMPLATE_REMOVALS.includes("etc/ssh/ssh_host_ed25519_key"));
  assert.ok(files.every((f) => !f.path.startsWith("/")), "paths are relative to the tree");
  const trixie = templateFiles("http://deb.example/debian", "trixie");
  assert.equal(trixie.find((f) => f.path === "etc/apt/sources.list")?.content, "", "debootstrap's one-line sources.list is emptied");
  const deb822 = trixie.find((f) => f.path === "etc/apt/sources.list.d/debian.sources")?.content ?? "";
  assert.match(deb822, /^URIs: http:\/\/deb\.example\/debian\nSuites: trixie trixie-updates\n/m);
  assert.match(deb822, /^URIs: http:\/\/deb\.example\/debian-security\nSuites: trixie-security\n/m);
});

test("each release has its own recipe id: Debian 12's is what it was before Debian 13 came (its cached templates stay valid)", () => {
  const [bookworm, trixie] = TEMPLATE_RECIPES;
  assert.ok(bookworm && trixie);
  assert.notEqual(recipeId("http://a/debian", bookworm), recipeId("http://a/debian", trixie));
  assert.equal(recipeId("http://a/debian"), recipeId("http://a/debian", bookworm));
  // The id of the Debian 12 recipe as the tool computed it before this change, for this mirror.
  assert.equal(recipeId(DEFAULT_MIRROR, bookworm), BOOKWORM_RECIPE_BEFORE);
});

test("pack and unpack keep owners and file capabilities and use zstd", () => {
  const pack = packCommand("/b/rootfs", "/t/x.tar.zst").argv;
  for (const a of ["--numeric-owner", "--xattrs", "--one-file-system"]) assert.ok(pack.includes(a), a);
  assert.ok(pack.some((a) => a.startsWith("--use-compress-program=zstd")));
  assert.deepEqual(pack.slice(-3), ["-C", "/b/rootfs", "."]);
  const unpack = unpackCommand("/t/x.tar.zst", "/r").argv;
  for (const a of ["--extract", "--numeric-owner", "--preserve-permissions", "--xattrs"]) assert.ok(unpack.includes(a), a);
  assert.deepEqual(unpack.slice(-2), ["-C", "/r"]);
});

test("recipeId changes with the mirror and is stable otherwise", () => {
  assert.equal(recipeId("http://a/debian"), recipeId("http://a/debian"));
  assert.notEqual(recipeId("http://a/debian"), recipeId("http://b/debian"));
});

test("defaultTemplateDir honours HOMELAB_CACHE, then XDG_CACHE_HOME, then HOME", () => {
  assert.equal(defaultTemplateDir({ HOMELAB_CACHE: "/c" }), "/c/templates");
  assert.equal(defaultTemplateDir({ XDG_CACHE_HOME: "/x", HOME: "/h" }), "/x/homelab/templates");
  assert.equal(defaultTemplateDir({ HOME: "/h" }), "/h/.cache/homelab/templates");
});

test("baseDirName keys the unpacked tree by tarball name and mtime", () => {
  assert.equal(baseDirName("debian-12-standard_12.7-1_amd64.tar.zst", 1700000000123.7), "debian-12-standard_12.7-1_amd64@1700000000123");
});

test("listTemplates lists tarballs as vztmpl content, sorted, ignoring other files", async () => {
  const dir = await mkdtemp(join(tmpdir(), "homelab-tpl-"));
  try {
    await writeFile(join(dir, "debian-12-standard_12.7-1_amd64.tar.zst"), "x".repeat(10));
    await writeFile(join(dir, "debian-12-standard_12.2-1_amd64.tar.zst"), "y");
    await writeFile(join(dir, "debian-12-standard.recipe"), "r");
    await writeFile(join(dir, "half.tar.zst.tmp"), "r");
    await utimes(join(dir, "debian-12-standard_12.7-1_amd64.tar.zst"), 1700000000, 1700000000);
    const list = await listTemplates(dir);
    assert.deepEqual(list.map((t) => t.volid), [
      "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst",
      "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    ]);
    assert.equal(list[1]?.size, 10);
    assert.equal(list[1]?.ctime, 1700000000);
    assert.equal(list[1]?.path, join(dir, "debian-12-standard_12.7-1_amd64.tar.zst"));
    assert.deepEqual(await listTemplates(join(dir, "missing")), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
