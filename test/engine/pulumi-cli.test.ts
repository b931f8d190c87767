import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { promisify } from "node:util";
import {
  PINNED_PULUMI_VERSION,
  PulumiCliNotFoundError,
  isAcceptedPulumiVersion,
  parsePinFile,
  parsePulumiVersionOutput,
  pulumiCacheDir,
  pulumiEngineEnv,
  resolvePulumiCli,
} from "../../src/engine/pulumi-cli.ts";

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");

describe("Pulumi CLI versions", () => {
  test("the pin is a plain version and matches scripts/pulumi-version", async () => {
    assert.match(PINNED_PULUMI_VERSION, /^\d+\.\d+\.\d+$/);
    const text = await readFile(path.join(repoRoot, "scripts", "pulumi-version"), "utf8");
    assert.equal(parsePinFile(text), PINNED_PULUMI_VERSION);
  });

  test("the pin file parser skips comments and blank lines and drops a leading v", () => {
    assert.equal(parsePinFile("# comment\n\n  v3.274.1  \n9.9.9\n"), "3.274.1");
    assert.throws(() => parsePinFile("# only a comment\n", "pins"), /pins must hold one version like 3\.274\.1/);
    assert.throws(() => parsePinFile("3.274\n"), /must hold one version/);
  });

  test("`pulumi version` output is parsed, and empty output gives no version", () => {
    assert.equal(parsePulumiVersionOutput("v3.274.1\n"), "3.274.1");
    assert.equal(parsePulumiVersionOutput("  v3.275.0-alpha.1+dirty\nwarning: something\n"), "3.275.0-alpha.1+dirty");
    assert.equal(parsePulumiVersionOutput(""), undefined);
    assert.equal(parsePulumiVersionOutput("pulumi: not a version\n"), undefined);
  });

  test("accepted versions: same major, at or above the minimum", () => {
    const cases: [string, boolean][] = [
      ["3.274.1", true],
      ["3.274.2", true],
      ["3.300.0", true],
      ["3.274.2-alpha.1", true],
      ["3.274.1+build.5", true],
      ["3.274.0", false],
      ["3.99.9", false],
      ["3.274.1-alpha.1", false],
      ["4.0.0", false],
      ["2.999.0", false],
      ["garbage", false],
    ];
    for (const [version, expected] of cases) {
      assert.equal(isAcceptedPulumiVersion(version, "3.274.1"), expected, version);
    }
  });

  test("the engine environment disables the update check and plugin downloads and puts the CLI first on PATH", () => {
    const env = pulumiEngineEnv({ path: "/opt/pulumi/bin/pulumi" }, { PATH: "/usr/bin:/bin" });
    assert.equal(env.PULUMI_SKIP_UPDATE_CHECK, "true");
    assert.equal(env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION, "true");
    assert.equal(env.PATH, "/opt/pulumi/bin:/usr/bin:/bin");
    assert.equal(pulumiEngineEnv().PATH, undefined);
  });

  test("the cache folder follows HOMELAB_CACHE, then XDG_CACHE_HOME, then HOME", () => {
    assert.equal(pulumiCacheDir({ HOMELAB_CACHE: "/c" }, "v3.1.2"), "/c/pulumi-v3.1.2");
    assert.equal(pulumiCacheDir({ XDG_CACHE_HOME: "/x" }, "3.1.2"), "/x/homelab/pulumi-v3.1.2");
    assert.equal(pulumiCacheDir({ HOME: "/h" }, "3.1.2"), "/h/.cache/homelab/pulumi-v3.1.2");
  });
});

describe("scripts/setup-pulumi.sh helpers (sourced, nothing built)", () => {
  const script = path.join(repoRoot, "scripts", "setup-pulumi.sh");

  // Sources the script (which then only defines its functions) and runs BODY.
  async function bash(body: string): Promise<{ stdout: string; stderr: string }> {
    const env = { ...process.env };
    delete env.GOSUMDB;
    return execFileAsync("bash", ["-c", `. "$1"\n${body}`, "bash", script], { env, encoding: "utf8" });
  }

  test("version_ok agrees with isAcceptedPulumiVersion", async () => {
    const versions = ["3.274.1", "3.274.2", "3.300.0", "3.274.2-alpha.1", "3.274.1+build.5", "3.274.0", "3.99.9",
      "3.274.1-alpha.1", "4.0.0", "2.999.0", "garbage"];
    const { stdout } = await bash(
      `PULUMI_PIN=3.274.1\nfor v in ${versions.join(" ")}; do if version_ok "$v"; then echo "$v yes"; else echo "$v no"; fi; done`,
    );
    const expected = versions.map((v) => `${v} ${isAcceptedPulumiVersion(v, "3.274.1") ? "yes" : "no"}`);
    assert.deepEqual(stdout.trim().split("\n"), expected);
  });

  test("the pin the script reads is PINNED_PULUMI_VERSION", async () => {
    const { stdout } = await bash('echo "$PULUMI_PIN"');
    assert.equal(stdout.trim(), PINNED_PULUMI_VERSION);
  });

  test("consumer_replaces keeps replaces to other modules and drops those to folders", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "homelab-gomod-"));
    try {
      const gomod = path.join(dir, "go.mod");
      await writeFile(
        gomod,
        [
          "module example.com/m",
          "replace github.com/pulumi/pulumi/sdk/v3 => ../sdk",
          "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e",
          "replace (",
          "\ta.example/x v1.0.0 => b.example/y v1.2.3 // pinned",
          "\tc.example/z => /abs/folder",
          ")",
          "require a.example/x v1.0.0",
        ].join("\n"),
      );
      const { stdout } = await bash(`consumer_replaces "${gomod}"`);
      assert.deepEqual(stdout.trim().split("\n"), [
        "github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e",
        "a.example/x@v1.0.0=b.example/y@v1.2.3",
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("go_step retries with GOSUMDB=off only when the checksum database is unreachable", async () => {
    const { stdout, stderr } = await bash(
      [
        'fakego() { if [ "${GOSUMDB:-}" = off ]; then echo built; else',
        '  echo "verifying x@v1: Get https://sum.golang.org/lookup/x@v1: dial tcp: i/o timeout" >&2; return 1; fi; }',
        'brokengo() { echo "compile error" >&2; return 2; }',
        'go_step fakego && rc=0 || rc=$?; echo "rc=$rc gosumdb=${GOSUMDB:-}"',
        "unset GOSUMDB",
        'go_step brokengo && rc=0 || rc=$?; echo "rc=$rc gosumdb=${GOSUMDB:-}"',
      ].join("\n"),
    );
    assert.deepEqual(stdout.trim().split("\n"), ["built", "rc=0 gosumdb=off", "rc=2 gosumdb="]);
    assert.match(stderr, /\[setup\] the Go checksum database is unreachable; continuing this build with GOSUMDB=off/);
    assert.match(stderr, /compile error/);
  });
});

describe("resolving the Pulumi CLI among fake binaries", () => {
  let dir = "";
  let env: NodeJS.ProcessEnv = {};

  // A shell script standing in for the CLI: prints VERSION for `pulumi version`.
  async function fake(file: string, output: string): Promise<string> {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `#!/bin/sh\nprintf '%s' '${output}'\n`);
    await chmod(file, 0o755);
    return file;
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "homelab-pulumi-cli-"));
    env = {
      PATH: `${dir}/path-a:${dir}/path-b`,
      PULUMI_HOME: `${dir}/pulumi-home`,
      HOMELAB_CACHE: `${dir}/cache`,
      HOME: `${dir}/home`,
    };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("nothing anywhere: the error lists what was checked and says to run scripts/setup.sh", async () => {
    const root = path.join(dir, "repo-empty");
    await fake(path.join(dir, "path-a", "pulumi"), "v3.100.0\n");
    await fake(path.join(dir, "pulumi-home", "bin", "pulumi"), "");
    await assert.rejects(resolvePulumiCli({ root, env, minVersion: "3.274.1" }), (err: unknown) => {
      assert.ok(err instanceof PulumiCliNotFoundError);
      assert.match(err.message, /Run scripts\/setup\.sh/);
      assert.match(err.message, /path-a\/pulumi: v3\.100\.0 is not accepted/);
      assert.match(err.message, /pulumi-home\/bin\/pulumi: `pulumi version` printed no version/);
      assert.match(err.message, /cache\/pulumi-v3\.274\.1\/bin\/pulumi: missing/);
      return true;
    });
  });

  test("PATH before PULUMI_HOME before the cache, skipping a too-old CLI", async () => {
    const root = path.join(dir, "repo-order");
    const cached = await fake(path.join(dir, "cache", "pulumi-v3.274.1", "bin", "pulumi"), "v3.274.1\n");
    assert.deepEqual(await resolvePulumiCli({ root, env, minVersion: "3.274.1" }), {
      path: cached,
      version: "3.274.1",
      source: "cache",
    });
    const home = await fake(path.join(dir, "pulumi-home", "bin", "pulumi"), "v3.280.0\n");
    assert.deepEqual(await resolvePulumiCli({ root, env, minVersion: "3.274.1" }), {
      path: home,
      version: "3.280.0",
      source: "pulumi-home",
    });
    const onPath = await fake(path.join(dir, "path-b", "pulumi"), "v3.275.0\n");
    assert.deepEqual(await resolvePulumiCli({ root, env, minVersion: "3.274.1" }), {
      path: onPath,
      version: "3.275.0",
      source: "path",
    });
  });

  test(".homelab/pulumi wins and its source is told from where it points", async () => {
    const root = path.join(dir, "repo-record");
    await mkdir(path.join(root, ".homelab"), { recursive: true });
    const cached = path.join(dir, "cache", "pulumi-v3.274.1", "bin", "pulumi");
    await writeFile(path.join(root, ".homelab", "pulumi"), `${cached}\n`);
    const cli = await resolvePulumiCli({ root, env, minVersion: "3.274.1" });
    assert.deepEqual(cli, { path: cached, version: "3.274.1", source: "cache" });
  });
});

describe("the real Pulumi CLI", () => {
  test("[pulumi] resolves the pinned CLI and `pulumi version` prints the pin", async () => {
    const cli = await resolvePulumiCli();
    assert.equal(cli.version, PINNED_PULUMI_VERSION);
    assert.ok(path.isAbsolute(cli.path), cli.path);
    const { stdout } = await execFileAsync(cli.path, ["version"], {
      env: { ...process.env, ...pulumiEngineEnv(cli) },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(stdout.trim(), `v${PINNED_PULUMI_VERSION}`);
  });
});
