import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, utimesSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadRepository, type Repository } from "../../src/config/repository.ts";
import { validateCacheFile } from "../../src/config/homelab-dir.ts";
import { loadRepositoryCached } from "../../src/config/validate-cache.ts";
import { checkProbes, readBounded, recordProbes } from "../../src/config/fs-probe.ts";
import { CONTAINER, findDiag, makeRepo } from "../helpers/repo.ts";

const APP = `name: app
description: the app
resources:
  - id: img
    type: docker:image
    name: app_image
    path: ./docker
    registry: local_registry
  - id: web
    type: proxmox:container
    image: { name: "*debian*", version: ">=12" }
    host:
      tags: [tier:1]
    docker: { compose: true }
    depends_on: [img]
monitoring:
  health_checks:
    - { type: http, url: "http://{address}:80/" }
`;

/** A valid service with an image, a compose file and monitoring; one valid pair across services; one with an error, one with a warning. */
const FILES = {
  "services/app/service.yaml": APP,
  "services/app/docker/Dockerfile": "FROM scratch\n",
  "services/app/docker-compose.yaml": "services:\n  web: { image: app_image }\n",
  "services/db/service.yaml": `name: db\nresources:\n${CONTAINER}`,
  "services/client/service.yaml": `name: client\nresources:\n${CONTAINER}    depends_on: [db.web]\n`,
  "services/bad/service.yaml": `name: bad\nresources:\n${CONTAINER}    depend_on: [x]\n`,
  "services/warn/service.yaml": `name: warn\nresources:\n${CONTAINER.replace("tier:1", "tier:9")}`,
};

/** A Repository as plain data: sources dropped, values as JSON has them (an absent and an undefined field are alike). */
function plain(r: Repository): unknown {
  const strip = <T extends { source?: unknown }>(x: T | undefined) => (x ? { ...x, source: null } : x);
  return JSON.parse(
    JSON.stringify({
      env: strip(r.env),
      envFromFile: r.envFromFile,
      diagnostics: r.diagnostics,
      loads: r.loads.map((l) => ({ ...l, service: strip(l.service) })),
      services: [...r.services.keys()],
    }),
  ) as unknown;
}

type CacheJson = { node: string; tool: string[][]; environments: Record<string, unknown>; services: Record<string, { probes: unknown[]; service: { description?: string } }[]> };
const readCache = (root: string) => JSON.parse(readFileSync(validateCacheFile(root), "utf8")) as CacheJson;
const svcFile = (root: string, name: string) => join(root, "services", name, "service.yaml");

/** Loads a repository cold, then warm from the cache; asserts both equal the uncached load; returns the repository for more. */
async function warm(envName: string | undefined) {
  const repo = makeRepo(FILES);
  const uncached = plain(loadRepository({ root: repo.root, envName }));
  assert.deepEqual(plain(await loadRepositoryCached({ root: repo.root, envName })), uncached, "cold");
  assert.ok(existsSync(validateCacheFile(repo.root)), "the cache file is written");
  assert.deepEqual(plain(await loadRepositoryCached({ root: repo.root, envName })), uncached, "warm");
  return repo;
}

/** Asserts the cached load equals the uncached one now, and returns it. */
async function same(root: string, envName: string | undefined, only?: string[]): Promise<Repository> {
  const cached = await loadRepositoryCached({ root, envName, ...(only ? { only } : {}) });
  assert.deepEqual(plain(cached), plain(loadRepository({ root, envName, ...(only ? { only } : {}) })));
  return cached;
}

test("validate cache: a second load is served from the cache and equals the uncached load; only valid services are stored", async () => {
  const repo = await warm("test");
  try {
    const cache = readCache(repo.root);
    assert.deepEqual(Object.keys(cache.services).sort(), ["app", "client", "db"].map((n) => svcFile(repo.root, n)).sort());
    assert.deepEqual(Object.keys(cache.environments), ["test"]);
    // Really served from it: an edit made to the stored entry shows.
    const entry = cache.services[svcFile(repo.root, "app")]?.[0];
    assert.ok(entry);
    entry.service.description = "from the cache";
    writeFileSync(validateCacheFile(repo.root), JSON.stringify(cache));
    const r = await loadRepositoryCached({ root: repo.root, envName: "test" });
    assert.equal(r.services.get("app")?.description, "from the cache");
    // A service from the cache still locates positions in its file.
    assert.deepEqual(r.services.get("app")?.source.locate(["resources", 1, "depends_on", 0]), { line: 15, col: 18 });
  } finally {
    repo.cleanup();
  }
});

test("validate cache: editing service.yaml invalidates it and the new error is located", async () => {
  const repo = await warm("test");
  try {
    writeFileSync(svcFile(repo.root, "app"), APP.replace("    registry:", "    registy:"));
    const r = await same(repo.root, "test");
    const d = findDiag(r.diagnostics, 'unknown field "registy"');
    assert.deepEqual([d.file, d.line, d.col], [svcFile(repo.root, "app"), 8, 5]);
    assert.equal(readCache(repo.root).services[svcFile(repo.root, "app")], undefined, "an invalid service leaves the cache");
    // Fixed again: valid, and stored again.
    writeFileSync(svcFile(repo.root, "app"), APP);
    assert.deepEqual((await same(repo.root, "test")).diagnostics.filter((x) => x.file.includes("/app/")), []);
    assert.ok(readCache(repo.root).services[svcFile(repo.root, "app")]);
  } finally {
    repo.cleanup();
  }
});

test("validate cache: a changed compose file, a removed Dockerfile each invalidate the service", async () => {
  const repo = await warm("test");
  try {
    writeFileSync(join(repo.root, "services/app/docker-compose.yaml"), "version: '3'\n");
    let d = findDiag((await same(repo.root, "test")).diagnostics, "declares no `services:`");
    assert.deepEqual([d.line, d.col], [14, 24]);
    writeFileSync(join(repo.root, "services/app/docker-compose.yaml"), FILES["services/app/docker-compose.yaml"]);
    assert.equal((await same(repo.root, "test")).services.has("app"), true);
    rmSync(join(repo.root, "services/app/docker/Dockerfile"));
    d = findDiag((await same(repo.root, "test")).diagnostics, 'no Dockerfile in "./docker"');
    assert.deepEqual([d.file, d.line, d.col], [svcFile(repo.root, "app"), 7, 11]);
  } finally {
    repo.cleanup();
  }
});

test("validate cache: a changed environment file invalidates the environment and the services checked against it", async () => {
  const repo = await warm("test");
  try {
    const envFile = join(repo.root, "Pulumi.test.yaml");
    writeFileSync(envFile, readFileSync(envFile, "utf8").replace("local_registry:", "other_registry:"));
    const r = await same(repo.root, "test");
    const d = findDiag(r.diagnostics, 'registry "local_registry" is not defined in environment "test"');
    assert.deepEqual([d.file, d.line, d.col], [svcFile(repo.root, "app"), 8, 15]);
    assert.deepEqual(Object.keys(r.env.registries), ["other_registry"]);
    // An environment with an error is reported, not cached; the services are then checked without it.
    writeFileSync(envFile, "config:\n  homelab:default_memroy: 1\n");
    const broken = await same(repo.root, "test");
    assert.equal(findDiag(broken.diagnostics, 'unknown setting "homelab:default_memroy"').line, 2);
    assert.equal(broken.envFromFile, false);
    assert.equal(readCache(repo.root).environments["test"], undefined);
  } finally {
    repo.cleanup();
  }
});

test("validate cache: cross-service checks run every time, also for services served from the cache", async () => {
  const repo = await warm("test");
  try {
    writeFileSync(svcFile(repo.root, "db"), `name: db\nresources:\n${CONTAINER.replace("id: web", "id: web2")}`);
    const r = await same(repo.root, "test");
    const d = findDiag(r.diagnostics, 'service "db" has no resource "web"');
    assert.deepEqual([d.file, d.line, d.col], [svcFile(repo.root, "client"), 10, 18]);
    assert.equal(r.services.has("client"), false);
    // Only the named services' problems, as without the cache.
    assert.deepEqual((await same(repo.root, "test", ["db"])).diagnostics, []);
  } finally {
    repo.cleanup();
  }
});

test("validate cache: a corrupt, malformed or foreign cache file is ignored and replaced", async () => {
  const repo = await warm("test");
  try {
    const file = validateCacheFile(repo.root);
    const good = readCache(repo.root);
    for (const bad of ["{not json", "[]", JSON.stringify({ ...good, services: { [svcFile(repo.root, "app")]: [{ context: 1 }] } })]) {
      writeFileSync(file, bad);
      await same(repo.root, "test");
      assert.ok(readCache(repo.root).services[svcFile(repo.root, "app")], `rewritten after ${bad.slice(0, 20)}`);
    }
    // Written by another build of the tool (a module of it, or the Node version, differs): its entries are not trusted.
    const other = readCache(repo.root);
    const entry = other.services[svcFile(repo.root, "app")]?.[0];
    assert.ok(entry);
    entry.service.description = "from another build";
    const [first, ...rest] = other.tool;
    const firstPath = first?.[0];
    assert.ok(firstPath !== undefined && /\/config\/[\w-]+\.ts$/.test(firstPath), firstPath);
    for (const foreign of [{ ...other, tool: [[firstPath, "another fingerprint"], ...rest] }, { ...other, tool: rest }, { ...other, node: "v0.0.0" }]) {
      writeFileSync(file, JSON.stringify(foreign));
      assert.equal((await same(repo.root, "test")).services.get("app")?.description, "the app");
    }
    // The same build: trusted.
    writeFileSync(file, JSON.stringify(other));
    assert.equal((await loadRepositoryCached({ root: repo.root, envName: "test" })).services.get("app")?.description, "from another build");
  } finally {
    repo.cleanup();
  }
});

test("validate cache: a cache that cannot be written is no error", async () => {
  const repo = makeRepo({ ...FILES, ".homelab": "a file where the folder would be\n" });
  try {
    await same(repo.root, "test");
    await same(repo.root, "test");
    assert.equal(readFileSync(join(repo.root, ".homelab"), "utf8"), "a file where the folder would be\n");
  } finally {
    repo.cleanup();
  }
});

test("validate cache: without an environment, and a removed service leaves the cache", async () => {
  const repo = await warm(undefined);
  try {
    rmSync(join(repo.root, "services/db"), { recursive: true });
    const r = await same(repo.root, undefined);
    assert.equal(r.envFromFile, false);
    findDiag(r.diagnostics, 'there is no service "db"');
    assert.equal(readCache(repo.root).services[svcFile(repo.root, "db")], undefined);
  } finally {
    repo.cleanup();
  }
});

test("fs-probe: a settled file gets a stat signature; a same-size edit with its mtime restored is still seen", async () => {
  const repo = makeRepo({ "f.yaml": "a: 1\n" });
  try {
    const f = join(repo.root, "f.yaml");
    const fresh = recordProbes(() => readBounded(f)).probes;
    assert.equal(fresh[0]?.length, 3, "a file changed just now gets no signature");
    await sleep(3100);
    const { probes } = recordProbes(() => readBounded(f));
    assert.equal(probes[0]?.length, 4, "a settled file gets one");
    assert.deepEqual(checkProbes(probes), { hold: true, refreshed: false });
    // Fresh probes are given the signature once the file has settled.
    assert.deepEqual(checkProbes(fresh), { hold: true, refreshed: true });
    assert.equal(fresh[0]?.length, 4);
    const { mtime, atime } = statSync(f);
    writeFileSync(f, "a: 2\n");
    utimesSync(f, atime, mtime);
    assert.equal(checkProbes(probes).hold, false);
  } finally {
    repo.cleanup();
  }
});
