import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { validateCacheFile } from "../../src/config/homelab-dir.ts";
import { fingerprint } from "../../src/util/hash.ts";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const MAIN = join(fileURLToPath(new URL("../..", import.meta.url)), "src/cli/main.ts");
const run = promisify(execFile);

/** Runs `homelab --dir ROOT --env test validate ...args` from source, the cache on unless CI is set. */
async function validate(root: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, "--dir", root, "--env", "test", "validate", ...args], { env: { ...process.env, NO_COLOR: "1", CI: "", ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const APP = `name: app
resources:
  - id: img
    type: docker:image
    name: app_image
    path: ./docker
    registry: local_registry
${CONTAINER}    docker: { compose: true }
    depends_on: [img]
`;

const FILES = {
  "services/app/service.yaml": APP,
  "services/app/docker/Dockerfile": "FROM scratch\n",
  "services/app/docker-compose.yaml": "services:\n  web: { image: app_image }\n",
  "services/bad/service.yaml": `name: bad\nresources:\n${CONTAINER}    depend_on: [x]\n`,
  "services/warn/service.yaml": `name: warn\nresources:\n${CONTAINER.replace("tier:1", "tier:9")}`,
};

test("validate prints the same from the cache as without it; --no-cache and CI=true write none", async () => {
  const repo = makeRepo(FILES);
  try {
    const fresh = await validate(repo.root, ["--no-cache"]);
    assert.equal(existsSync(validateCacheFile(repo.root)), false, "--no-cache writes no cache");
    assert.deepEqual(await validate(repo.root, [], { CI: "true" }), fresh);
    assert.equal(existsSync(validateCacheFile(repo.root)), false, "CI=true writes no cache");
    assert.equal(fresh.code, 1);
    assert.match(fresh.stderr, /^services\/bad\/service\.yaml:10:5: unknown field "depend_on" in resources\[0\]/m);
    assert.match(fresh.stderr, /^services\/warn\/service\.yaml:9:13: warning: no host in environment "test" carries all of the tags tier:9/m);
    assert.match(fresh.stderr, /3 service\(s\) checked against environment test: 1 error\(s\), 1 warning\(s\)/);
    assert.deepEqual(await validate(repo.root), fresh, "first run, filling the cache");
    assert.ok(existsSync(validateCacheFile(repo.root)));
    assert.deepEqual(await validate(repo.root), fresh, "second run, from the cache");
    const json = await validate(repo.root, ["--json", "--no-cache"]);
    assert.deepEqual(await validate(repo.root, ["--json"]), json);
    assert.equal((JSON.parse(json.stdout) as { errors: number }).errors, 1);
  } finally {
    repo.cleanup();
  }
});

test("an edited service.yaml shows its new error at FILE:LINE:COL on the next validate", async () => {
  const repo = makeRepo(FILES);
  try {
    assert.doesNotMatch((await validate(repo.root)).stderr, /services\/app\//);
    writeFileSync(join(repo.root, "services/app/service.yaml"), APP.replace("    registry:", "    registy:"));
    const r = await validate(repo.root);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^services\/app\/service\.yaml:7:5: unknown field "registy" in resources\[0\] \(did you mean "registry"\?\)$/m);
  } finally {
    repo.cleanup();
  }
});

test("--no-cache and CI=true do not read the cache: a stale entry is trusted only without them", async () => {
  const repo = makeRepo(FILES);
  try {
    await validate(repo.root);
    // Make the cache lie: app's entry vouches for a service.yaml that now has an error.
    const file = join(repo.root, "services/app/service.yaml");
    const broken = APP.replace("    registry:", "    registy:");
    writeFileSync(file, broken);
    const cache = JSON.parse(readFileSync(validateCacheFile(repo.root), "utf8")) as { services: Record<string, { probes: unknown[][] }[]> };
    const probes = cache.services[file]?.[0]?.probes;
    assert.ok(probes && probes[0]?.[0] === file);
    probes[0] = [file, "read", fingerprint(broken)];
    writeFileSync(validateCacheFile(repo.root), JSON.stringify(cache));
    assert.doesNotMatch((await validate(repo.root)).stderr, /registy/, "the cache is read");
    assert.match((await validate(repo.root, ["--no-cache"])).stderr, /^services\/app\/service\.yaml:7:5: unknown field "registy"/m);
    assert.match((await validate(repo.root, [], { CI: "1" })).stderr, /^services\/app\/service\.yaml:7:5: unknown field "registy"/m);
  } finally {
    repo.cleanup();
  }
});

test("a corrupt cache file is ignored, and replaced", async () => {
  const repo = makeRepo(FILES);
  try {
    const fresh = await validate(repo.root, ["--no-cache"]);
    await validate(repo.root);
    writeFileSync(validateCacheFile(repo.root), '{"format":1,"services":{"x"');
    assert.deepEqual(await validate(repo.root), fresh);
    const rewritten = JSON.parse(readFileSync(validateCacheFile(repo.root), "utf8")) as { services: Record<string, unknown> };
    assert.deepEqual(Object.keys(rewritten.services), [join(repo.root, "services/app/service.yaml")]);
  } finally {
    repo.cleanup();
  }
});
