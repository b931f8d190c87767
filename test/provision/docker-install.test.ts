import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_DOCKER_VERSIONS,
  RUNC_APPARMOR_HINT,
  SMOKE_IMAGE,
  explainDockerFailure,
  installDockerScript,
  parseInstallOutput,
  smokeTestScript,
} from "../../src/provision/docker-install.ts";
import { fakePrograms, runScript, scratch, shellSyntaxOk } from "./helpers.ts";

/**
 * Fakes for the distribution install: dpkg-query answers from files under
 * root/pkgs (name -> version), apt-get records its calls and "installs" what
 * it is asked, docker answers as v1 or v2 depending on what is installed.
 */
function fakeApt(root: string, candidates: Record<string, string>): NodeJS.ProcessEnv {
  const policy = Object.entries(candidates)
    .map(([p, v]) => `  ${p}) echo "$1:"; echo "  Candidate: ${v}" ;;`)
    .join("\n");
  return {
    PATH: fakePrograms(root, {
      "dpkg-query": [
        `P=${root}/pkgs`,
        'pkg=$(eval echo "\\${$#}")',
        'if [ ! -f "$P/$pkg" ]; then exit 1; fi',
        'case "$2" in *Status*) printf "install ok installed" ;; *) cat "$P/$pkg" ;; esac',
      ].join("\n"),
      "apt-get": [
        `echo "apt-get $*" >> ${root}/apt-calls`,
        `mkdir -p ${root}/pkgs`,
        'for a in "$@"; do case "$a" in -*|install|update) ;; *=*) echo "${a#*=}" > "' + root + '/pkgs/${a%%=*}" ;; *) echo 1.0 > "' + root + '/pkgs/$a" ;; esac; done',
      ].join("\n"),
      "apt-cache": `shift\ncase "$1" in\n${policy}\n  *) echo "$1:"; echo "  Candidate: (none)" ;;\nesac`,
      "apt-mark": `echo "apt-mark $*" >> ${root}/apt-calls`,
      find: "exit 0",
      systemctl: "exit 0",
      docker: `case "$1 $2" in\n  "compose version") [ -f ${root}/pkgs/docker-compose-plugin ] ;;\n  "info "*) exit 0 ;;\n  *) exit 0 ;;\nesac`,
      "docker-compose": "exit 0",
    }),
  };
}

describe("installDockerScript: distribution packages", () => {
  test("valid sh; installs docker.io and v1 docker-compose when the release has no plugin, without recommends", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "20.10.24", "docker-compose": "1.29.2-3" });
      const script = installDockerScript({ source: "distribution" });
      assert.ok(shellSyntaxOk(script).ok);
      const r = runScript(script, { env });
      assert.equal(r.code, 0, r.stderr);
      const calls = readFileSync(join(s.dir, "apt-calls"), "utf8");
      assert.match(calls, /apt-get .*update/);
      assert.match(calls, /apt-get .*install --no-install-recommends --allow-downgrades docker.io docker-compose$/m);
      assert.doesNotMatch(calls, /apt-mark hold/, "nothing pinned, nothing held");
      const rep = parseInstallOutput(r.stdout);
      assert.equal(rep.alreadyPresent, false);
      assert.equal(rep.compose, "v1");
      assert.match(rep.packages, /^docker\.io 1\.0 docker-compose 1\.0$/);
    } finally {
      s.done();
    }
  });

  test("prefers the Compose plugin where the release has one", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "26.1", "docker-compose-plugin": "2.30", "docker-compose": "2.30" });
      const r = runScript(installDockerScript({ source: "distribution" }), { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(join(s.dir, "apt-calls"), "utf8"), /install --no-install-recommends --allow-downgrades docker.io docker-compose-plugin$/m);
      assert.equal(parseInstallOutput(r.stdout).compose, "v2");
    } finally {
      s.done();
    }
  });

  test("idempotent: a second run finds Docker and Compose and calls apt-get not at all", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "20.10.24", "docker-compose": "1.29.2-3" });
      const script = installDockerScript({ source: "distribution" });
      assert.equal(runScript(script, { env }).code, 0);
      runScript(`rm -f '${join(s.dir, "apt-calls")}'`);
      const r = runScript(script, { env });
      assert.equal(r.code, 0, r.stderr);
      assert.throws(() => readFileSync(join(s.dir, "apt-calls")), /ENOENT/);
      assert.equal(parseInstallOutput(r.stdout).alreadyPresent, true);
    } finally {
      s.done();
    }
  });

  test("pinned versions are installed exactly and held; a different installed version is replaced", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "20.10.24", "docker-compose": "1.29.2-3" });
      const script = installDockerScript({ source: "distribution", versions: { docker: "20.10.24+dfsg1-1+deb12u1+b6", compose: "1.29.2-3" } });
      assert.equal(runScript(script, { env }).code, 0);
      const calls = readFileSync(join(s.dir, "apt-calls"), "utf8");
      assert.match(calls, /install --no-install-recommends --allow-downgrades docker.io=20.10.24\+dfsg1-1\+deb12u1\+b6 docker-compose=1.29.2-3$/m);
      assert.match(calls, /apt-mark hold docker.io docker-compose/);
      // Same pins again: nothing to do.
      runScript(`rm -f '${join(s.dir, "apt-calls")}'`);
      assert.equal(parseInstallOutput(runScript(script, { env }).stdout).alreadyPresent, true);
      // Another pin: installs again.
      const other = installDockerScript({ source: "distribution", versions: { docker: "20.10.25" } });
      assert.equal(parseInstallOutput(runScript(other, { env }).stdout).alreadyPresent, false);
    } finally {
      s.done();
    }
  });

  test("says so when the release has no Compose at all", () => {
    const s = scratch();
    try {
      const r = runScript(installDockerScript({ source: "distribution" }), { env: fakeApt(s.dir, { "docker.io": "20.10" }) });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no Compose package in this release/);
    } finally {
      s.done();
    }
  });
});

describe("installDockerScript: Docker's repository (data only; it needs the internet)", () => {
  const script = installDockerScript({ source: "docker" });

  test("valid sh with Docker's repository, key, pinned default versions, hold", () => {
    assert.ok(shellSyntaxOk(script).ok);
    assert.match(script, /REPO=https:\/\/download\.docker\.com\/linux/);
    assert.match(script, /signed-by=\/etc\/apt\/keyrings\/docker\.asc/);
    assert.match(script, new RegExp(`V_DOCKER=${DEFAULT_DOCKER_VERSIONS.docker.replace(/\./g, "\\.")}`));
    assert.match(script, new RegExp(`V_COMPOSE=${DEFAULT_DOCKER_VERSIONS.compose.replace(/\./g, "\\.")}`));
    assert.match(script, /"docker-ce=\$a" "docker-ce-cli=\$b" "containerd.io=\$c" "docker-compose-plugin=\$d"/);
    assert.match(script, /apt-mark hold docker-ce docker-ce-cli containerd.io docker-compose-plugin/);
  });

  test("its version picker takes the repository's full version of the pinned upstream version", () => {
    const s = scratch();
    try {
      const pick = script.split("\n").find((l) => l.startsWith("pick() {"));
      assert.ok(pick);
      const env = {
        PATH: fakePrograms(s.dir, {
          "apt-cache": [
            "echo ' docker-ce | 5:28.5.20-1~debian.12~bookworm | https://x stable/amd64 Packages'",
            "echo ' docker-ce | 5:28.5.2-1~debian.12~bookworm | https://x stable/amd64 Packages'",
            "echo ' docker-ce | 5:28.5.1-1~debian.12~bookworm | https://x stable/amd64 Packages'",
          ].join("\n"),
        }),
      };
      const r = runScript(`${pick}\npick docker-ce 28.5.2\npick docker-ce 29.0.0\n`, { env });
      assert.equal(r.stdout, "5:28.5.2-1~debian.12~bookworm\n", "exact upstream version only (not 28.5.20), nothing for a missing one");
    } finally {
      s.done();
    }
  });

  test("versions can be moved", () => {
    assert.match(installDockerScript({ source: "docker", versions: { docker: "27.5.1" } }), /V_DOCKER=27\.5\.1/);
  });
});

describe("smoke test", () => {
  test("imports busybox-static as a tiny image and runs it", () => {
    const s = smokeTestScript();
    assert.ok(shellSyntaxOk(s).ok);
    assert.match(s, /busybox-static/);
    assert.match(s, /docker import/);
    assert.ok(s.includes(`docker run --rm ${SMOKE_IMAGE} /bin/busybox echo homelab-smoke-ok`));
  });
});

describe("smoke test, run", () => {
  test("runs once per Docker version: an update with the same Docker skips it, a new Docker runs it again", () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-smoke-"));
    try {
      const bin = join(dir, "bin");
      mkdirSync(bin);
      // A stand-in docker: its version comes from a file; each `run` is counted.
      writeFileSync(
        join(bin, "docker"),
        `#!/bin/sh\ncase "$1" in\n  version) cat ${dir}/version ;;\n  image) exit 0 ;;\n  run) echo run >> ${dir}/runs; echo homelab-smoke-ok ;;\nesac\n`,
        { mode: 0o755 },
      );
      writeFileSync(join(dir, "version"), "20.10.24\n");
      const mark = join(dir, "state", "docker-smoke-ok");
      const run = () => execFileSync("sh", ["-c", smokeTestScript(mark)], { env: { ...process.env, PATH: `${bin}:${process.env["PATH"] ?? ""}` }, encoding: "utf8" });
      const runs = () => (existsSync(join(dir, "runs")) ? readFileSync(join(dir, "runs"), "utf8").trim().split("\n").length : 0);
      assert.match(run(), /^homelab-smoke-ok$/m);
      assert.equal(runs(), 1);
      assert.equal(readFileSync(mark, "utf8"), "20.10.24\n");
      assert.match(run(), /homelab-smoke-ok \(passed before with Docker 20\.10\.24\)/);
      assert.equal(runs(), 1);
      writeFileSync(join(dir, "version"), "27.5.1\n");
      run();
      assert.equal(runs(), 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("explainDockerFailure", () => {
  test("the runc / AppArmor breakage of unprivileged Proxmox containers is named with its fix", () => {
    const samples = [
      "docker: Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied: unknown.",
      "Error response from daemon: AppArmor enabled on system but the docker-default profile could not be loaded: running `apparmor_parser` failed",
      "OCI runtime create failed: runc create failed: unable to start container process: error during container init: write /proc/self/attr/apparmor/exec: no such file or directory",
    ];
    for (const s of samples) assert.equal(explainDockerFailure(s), RUNC_APPARMOR_HINT, s);
    assert.match(RUNC_APPARMOR_HINT, /nesting=1,keyctl=1 \(keyctl needs root@pam\) or use a privileged container/);
  });

  test("missing nesting and a dead daemon get their own advice; other errors none", () => {
    assert.match(explainDockerFailure("failed to mount overlay: operation not permitted") ?? "", /nesting=1/);
    assert.match(explainDockerFailure("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?") ?? "", /dockerd is not running/);
    assert.equal(explainDockerFailure("E: Unable to locate package docker.io"), undefined);
  });
});
