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
  TEMPLATE_PACKAGES,
  TEMPLATE_REMOVALS,
  TEMPLATE_VERSIONS,
  templateFileName,
  templateFiles,
  templateVolid,
  unpackCommand,
} from "../../../src/sandbox/lxc/templates.ts";

test("template names follow Proxmox's pattern and versions read as semver-like 12.x-1", () => {
  assert.ok(TEMPLATE_VERSIONS.length >= 2, "constraints need more than one version to choose from");
  for (const v of TEMPLATE_VERSIONS) assert.match(templateFileName(v), /^debian-12-standard_12\.\d+-1_amd64\.tar\.zst$/);
  assert.equal(templateVolid("debian-12-standard_12.7-1_amd64.tar.zst"), "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
});

test("debootstrap makes a minbase bookworm with systemd and sshd", () => {
  const argv = debootstrapCommand("/b/rootfs", "http://deb.example/debian").argv;
  assert.equal(argv[0], "debootstrap");
  assert.ok(argv.includes("--variant=minbase"));
  const include = argv.find((a) => a.startsWith("--include="))?.split("=")[1]?.split(",") ?? [];
  for (const p of ["systemd-sysv", "openssh-server", "iproute2", "ca-certificates"]) assert.ok(include.includes(p), p);
  assert.deepEqual(argv.slice(-3), ["bookworm", "/b/rootfs", "http://deb.example/debian"]);
  assert.deepEqual(include, [...TEMPLATE_PACKAGES]);
});

test("template files: sources for the mirror incl. security, empty machine id; host keys removed", () => {
  const files = templateFiles("http://deb.example/debian");
  const sources = files.find((f) => f.path === "etc/apt/sources.list")?.content ?? "";
  assert.match(sources, /^deb http:\/\/deb\.example\/debian bookworm main/m);
  assert.match(sources, /^deb http:\/\/deb\.example\/debian-security bookworm-security main/m);
  assert.equal(files.find((f) => f.path === "etc/machine-id")?.content, "");
  assert.ok(TEMPLATE_REMOVALS.includes("etc/ssh/ssh_host_ed25519_key"));
  assert.ok(files.every((f) => !f.path.startsWith("/")), "paths are relative to the tree");
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
