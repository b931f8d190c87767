import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  RUNC_APPARMOR_HINT,
  SMOKE_IMAGE,
  composeKindOf,
  explainDockerFailure,
  installDockerScript,
  parseInstallOutput,
  parseProbeOutput,
  probeScript,
  runcSysctlHint,
  smokeTestScript,
} from "../../src/provision/docker-install.ts";
import { DEFAULT_DOCKER_PINS, effectivePins } from "../../src/provision/docker-pins.ts";
import { ensureDocker, ProvisionError, restartCompose } from "../../src/provision/deploy.ts";
import type { RemoteExecutor, RunResult } from "../../src/provision/ssh.ts";
import { fakePrograms, runScript, scratch, shellSyntaxOk } from "./helpers.ts";

/** The error every container start gave on Proxmox nodes without lxc-pve 6.0.5-2 once runc 1.3.3 came (opencontainers/runc#4968). */
const RUNC_SYSCTL_ERROR =
  "docker: Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied: unknown.";

/** The install script reading a fake /etc/os-release (the script reads that path, nothing else of the release). */
function withOsRelease(script: string, dir: string, id: string, codename: string): string {
  const file = join(dir, "os-release");
  writeFileSync(file, `ID=${id}\nVERSION_CODENAME=${codename}\n`);
  return script.replaceAll("/etc/os-release", file);
}

/**
 * Fakes for the distribution install: dpkg-query answers from files under
 * root/pkgs (name -> version), apt-get records its calls and "installs" what
 * it is asked (the candidate's version unless pinned), docker and
 * docker-compose report the Compose version of what is installed, as the
 * real ones do: `docker compose` works where a Compose 2 package is in (a
 * plugin; Debian 13's `docker-compose` is one), `docker-compose` wherever a
 * docker-compose package is.
 */
function fakeApt(root: string, candidates: Record<string, string>): NodeJS.ProcessEnv {
  const policy = Object.entries(candidates)
    .map(([p, v]) => `  ${p}) echo "$1:"; echo "  Candidate: ${v}" ;;`)
    .join("\n");
  const candidateOf = Object.entries(candidates)
    .map(([p, v]) => `    ${p}) v='${v}' ;;`)
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
        'for a in "$@"; do',
        '  case "$a" in',
        "    -*|install|update|remove) ;;",
        `    *=*) printf '%s' "\${a#*=}" > "${root}/pkgs/\${a%%=*}" ;;`,
        `    *) v=1.0; case "$a" in\n${candidateOf}\n    esac; printf '%s' "$v" > "${root}/pkgs/$a" ;;`,
        "  esac",
        "done",
      ].join("\n"),
      "apt-cache": `shift\ncase "$1" in\n${policy}\n  *) echo "$1:"; echo "  Candidate: (none)" ;;\nesac`,
      "apt-mark": `echo "apt-mark $*" >> ${root}/apt-calls`,
      find: "exit 0",
      systemctl: "exit 0",
      docker: [
        // Where the CLI is a package of its own, `docker` exists only once it is installed.
        ...("docker-cli" in candidates ? [`[ -f ${root}/pkgs/docker-cli ] || exit 127`] : []),
        'case "$1 $2" in',
        '  "compose version")',
        "    for p in docker-compose-plugin docker-compose-v2 docker-compose; do",
        `      if [ -f ${root}/pkgs/$p ]; then v=$(cat ${root}/pkgs/$p); case "$v" in 1.*) ;; *) echo "\${v%%-*}"; exit 0 ;; esac; fi`,
        "    done",
        "    echo \"docker: 'compose' is not a docker command.\" >&2; exit 1 ;;",
        '  "info "*) exit 0 ;;',
        "  *) exit 0 ;;",
        "esac",
      ].join("\n"),
      "docker-compose": `if [ -f ${root}/pkgs/docker-compose ]; then v=$(cat ${root}/pkgs/docker-compose); echo "\${v%%-*}"; else exit 127; fi`,
    }),
  };
}

describe("installDockerScript: distribution packages", () => {
  test("Debian 12: valid sh; docker.io and docker-compose, without recommends; Compose v1 by the version it reports", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "20.10.24+dfsg1-1+deb12u1+b6", "docker-compose": "1.29.2-3" });
      const script = installDockerScript({ source: "distribution" });
      assert.ok(shellSyntaxOk(script).ok);
      const r = runScript(withOsRelease(script, s.dir, "debian", "bookworm"), { env });
      assert.equal(r.code, 0, r.stderr);
      const calls = readFileSync(join(s.dir, "apt-calls"), "utf8");
      assert.match(calls, /apt-get .*update/);
      assert.match(calls, /apt-get .*install --no-install-recommends --allow-downgrades docker.io docker-compose$/m);
      assert.doesNotMatch(calls, /apt-mark hold/, "nothing pinned, nothing held");
      const rep = parseInstallOutput(r.stdout);
      assert.equal(rep.alreadyPresent, false);
      assert.equal(rep.compose, "v1");
      assert.equal(rep.composeVersion, "1.29.2");
      assert.deepEqual(rep.os, { id: "debian", codename: "bookworm" });
      assert.equal(rep.packages, "docker.io 20.10.24+dfsg1-1+deb12u1+b6 docker-compose 1.29.2-3");
    } finally {
      s.done();
    }
  });

  test("Debian 13: the CLI is its own package (docker-cli) and is installed; `docker-compose` there is Compose v2, told by its version", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "26.1.5+dfsg1-9+deb13u1+b1", "docker-cli": "26.1.5+dfsg1-9+deb13u1+b1", "docker-compose": "2.26.1-4" });
      const r = runScript(withOsRelease(installDockerScript({ source: "distribution" }), s.dir, "debian", "trixie"), { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(join(s.dir, "apt-calls"), "utf8"), /install --no-install-recommends --allow-downgrades docker.io docker-cli docker-compose$/m);
      const rep = parseInstallOutput(r.stdout);
      assert.equal(rep.compose, "v2", "the package is named docker-compose, but it is Compose 2");
      assert.equal(rep.composeVersion, "2.26.1");
      assert.deepEqual(rep.os, { id: "debian", codename: "trixie" });
      // A second run finds it all, docker-cli included.
      runScript(`rm -f '${join(s.dir, "apt-calls")}'`);
      const again = runScript(withOsRelease(installDockerScript({ source: "distribution" }), s.dir, "debian", "trixie"), { env });
      assert.equal(parseInstallOutput(again.stdout).alreadyPresent, true, again.stderr);
      assert.equal(existsSync(join(s.dir, "apt-calls")), false);
      // Without docker-cli (removed by hand) it is not "present": the CLI comes back.
      rmSync(join(s.dir, "pkgs", "docker-cli"));
      const third = runScript(withOsRelease(installDockerScript({ source: "distribution" }), s.dir, "debian", "trixie"), { env });
      assert.equal(parseInstallOutput(third.stdout).alreadyPresent, false);
      assert.match(readFileSync(join(s.dir, "apt-calls"), "utf8"), /docker-cli/);
    } finally {
      s.done();
    }
  });

  test("prefers the Compose plugin where the release has one", () => {
    const s = scratch();
    try {
      const env = fakeApt(s.dir, { "docker.io": "26.1", "docker-compose-plugin": "2.30.0-1", "docker-compose": "1.29.2-3" });
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

  test("pinned versions are installed exactly and held (docker-cli at the engine's version); a different installed version is replaced", () => {
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

      const t = scratch();
      try {
        const env13 = fakeApt(t.dir, { "docker.io": "26.1.5", "docker-cli": "26.1.5", "docker-compose": "2.26.1-4" });
        assert.equal(runScript(installDockerScript({ source: "distribution", versions: { docker: "26.1.5+dfsg1-9+deb13u1+b1" } }), { env: env13 }).code, 0);
        const c13 = readFileSync(join(t.dir, "apt-calls"), "utf8");
        assert.match(c13, /install --no-install-recommends --allow-downgrades docker.io=26.1.5\+dfsg1-9\+deb13u1\+b1 docker-cli=26.1.5\+dfsg1-9\+deb13u1\+b1 docker-compose$/m);
        assert.match(c13, /apt-mark hold docker.io docker-cli docker-compose/);
      } finally {
        t.done();
      }
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

describe("Compose v1 or v2, by the version it reports", () => {
  test("real outputs of Debian 12's, Debian 13's and Docker's Compose", () => {
    assert.deepEqual(composeKindOf("1.29.2"), { kind: "v1", version: "1.29.2" });
    assert.deepEqual(composeKindOf("docker-compose version 1.29.2, build unknown"), { kind: "v1", version: "1.29.2" });
    assert.deepEqual(composeKindOf("2.26.1-4"), { kind: "v2", version: "2.26.1" });
    assert.deepEqual(composeKindOf("Docker Compose version 2.26.1-4"), { kind: "v2", version: "2.26.1" });
    assert.deepEqual(composeKindOf("v2.40.3"), { kind: "v2", version: "2.40.3" });
    assert.deepEqual(composeKindOf("Docker Compose version v2.40.3"), { kind: "v2", version: "2.40.3" });
    assert.deepEqual(composeKindOf("5.0.2"), { kind: "v2", version: "5.0.2" }, "Compose 5 is the Go Compose: v2's command line");
    assert.deepEqual(composeKindOf(""), { kind: "none", version: "" });
    assert.deepEqual(composeKindOf("docker: 'compose' is not a docker command."), { kind: "none", version: "" });
  });

  test("the script's own reading agrees, and the report keeps the version", () => {
    const s = scratch();
    try {
      const script = installDockerScript({ source: "distribution" });
      const fns = script.split("\n").filter((l) => l.startsWith("compose_version() {") || l.startsWith("compose_kind() {")).join("\n");
      for (const [plugin, standalone, kind] of [
        ["", "1.29.2", "v1"],
        ["2.26.1-4", "2.26.1-4", "v2"],
        ["v2.40.3", "", "v2"],
        ["", "", "none"],
      ] as const) {
        const env = {
          PATH: fakePrograms(s.dir, {
            docker: plugin ? `echo '${plugin}'` : "exit 1",
            "docker-compose": standalone ? `echo '${standalone}'` : "exit 127",
          }),
        };
        assert.equal(runScript(`${fns}\ncompose_kind\n`, { env }).stdout.trim(), kind, `${plugin}/${standalone}`);
      }
      const rep = parseInstallOutput("HOMELAB-OS debian trixie\nHOMELAB-DOCKER-INSTALLED docker.io 26.1.5 docker-compose 2.26.1-4\nHOMELAB-COMPOSE v2 2.26.1-4\n");
      assert.deepEqual([rep.compose, rep.composeVersion, rep.os.codename], ["v2", "2.26.1", "trixie"]);
    } finally {
      s.done();
    }
  });
});

/**
 * Fakes for Docker's repository: madison lists what the repository has
 * (newest first, as apt does), dpkg-query what is installed; the file system
 * paths the script writes (/etc/apt/...) are moved into the scratch folder.
 */
function fakeDockerRepo(root: string, repository: Record<string, string[]>): { env: NodeJS.ProcessEnv; localize(script: string): string } {
  const madison = Object.entries(repository)
    .map(([p, vs]) => `  ${p}) ${vs.map((v) => `echo ' ${p} | ${v} | https://download.docker.com/linux/debian trixie/stable amd64 Packages'`).join("; ")} ;;`)
    .join("\n");
  const env = {
    PATH: fakePrograms(root, {
      "dpkg-query": [`P=${root}/pkgs`, 'pkg=$(eval echo "\\${$#}")', 'if [ ! -f "$P/$pkg" ]; then exit 1; fi', 'case "$2" in *Status*) printf "install ok installed" ;; *) cat "$P/$pkg" ;; esac'].join("\n"),
      dpkg: "echo amd64",
      "apt-get": [`echo "apt-get $*" >> ${root}/apt-calls`, `mkdir -p ${root}/pkgs`, 'for a in "$@"; do case "$a" in *=*) printf \'%s\' "${a#*=}" > "' + root + '/pkgs/${a%%=*}" ;; esac; done'].join("\n"),
      "apt-cache": `case "$1" in\n  madison) case "$2" in\n${madison}\n  esac ;;\n  policy) echo "$2:"; echo "  Candidate: (none)" ;;\nesac`,
      "apt-mark": `echo "apt-mark $*" >> ${root}/apt-calls`,
      curl: `echo "curl $*" >> ${root}/apt-calls`,
      install: "exit 0",
      chmod: "exit 0",
      find: "exit 0",
      systemctl: "exit 0",
      docker: 'case "$1 $2" in "compose version") echo 2.40.3 ;; *) exit 0 ;; esac',
    }),
  };
  mkdirSync(join(root, "sources.list.d"), { recursive: true });
  return { env, localize: (script) => script.replaceAll("/etc/apt/", `${root}/`) };
}

const TRIXIE_REPO = {
  "docker-ce": ["5:29.1.5-1~debian.13~trixie", "5:28.5.20-1~debian.13~trixie", "5:28.5.2-1~debian.13~trixie", "5:28.5.1-1~debian.13~trixie"],
  "docker-ce-cli": ["5:29.1.5-1~debian.13~trixie", "5:28.5.2-1~debian.13~trixie", "5:28.5.1-1~debian.13~trixie"],
  // Newest first: a prefix "1.7.28-" would pick 1.7.28-2, runc 1.3.3.
  "containerd.io": ["2.2.1-1~debian.13~trixie", "1.7.29-1~debian.13~trixie", "1.7.28-2~debian.13~trixie", "1.7.28-1~debian.13~trixie", "1.7.28-0~debian.13~trixie"],
  "docker-compose-plugin": ["5.0.2-1~debian.13~trixie", "2.40.3-1~debian.13~trixie"],
};

describe("installDockerScript: Docker's repository, exact versions per release (run against a fake repository)", () => {
  test("valid sh with Docker's repository and key; installs exactly the release's pins, not the newest of a prefix, and holds them", () => {
    const s = scratch();
    try {
      const repo = fakeDockerRepo(s.dir, TRIXIE_REPO);
      const script = installDockerScript({ source: "docker" });
      assert.ok(shellSyntaxOk(script).ok);
      assert.match(script, /REPO=https:\/\/download\.docker\.com\/linux/);
      assert.match(script, /signed-by=\/etc\/apt\/keyrings\/docker\.asc/);
      const r = runScript(repo.localize(withOsRelease(script, s.dir, "debian", "trixie")), { env: repo.env });
      assert.equal(r.code, 0, r.stderr);
      const calls = readFileSync(join(s.dir, "apt-calls"), "utf8");
      const pins = DEFAULT_DOCKER_PINS["trixie"];
      assert.ok(pins);
      assert.ok(calls.includes(`install --no-install-recommends --allow-downgrades docker-ce=${pins.docker} docker-ce-cli=${pins.docker} containerd.io=${pins.containerd} docker-compose-plugin=${pins.compose}`), calls);
      assert.equal(pins.containerd, "1.7.29-1~debian.13~trixie");
      assert.match(calls, /apt-mark hold docker-ce docker-ce-cli containerd.io docker-compose-plugin/);
      assert.match(calls, /curl -fsSL https:\/\/download\.docker\.com\/linux\/debian\/gpg/);
      // (/etc/apt/ is this test's scratch folder)
      assert.equal(readFileSync(join(s.dir, "sources.list.d", "docker.list"), "utf8"), `deb [arch=amd64 signed-by=${s.dir}/keyrings/docker.asc] https://download.docker.com/linux/debian trixie stable\n`);
      const rep = parseInstallOutput(r.stdout);
      assert.equal(rep.packages, `docker-ce ${pins.docker} containerd.io ${pins.containerd} docker-compose-plugin ${pins.compose}`);
      // Again: everything at its pin, nothing to do.
      runScript(`rm -f '${join(s.dir, "apt-calls")}'`);
      const again = runScript(repo.localize(withOsRelease(script, s.dir, "debian", "trixie")), { env: repo.env });
      assert.equal(parseInstallOutput(again.stdout).alreadyPresent, true, again.stderr);
      assert.equal(existsSync(join(s.dir, "apt-calls")), false);
    } finally {
      s.done();
    }
  });

  test("the environment's pin replaces a default (containerd.io 1.7.28-1 for an unfixed node): installed with a downgrade, held", () => {
    const s = scratch();
    try {
      const repo = fakeDockerRepo(s.dir, TRIXIE_REPO);
      const pins = effectivePins({ trixie: { containerd: "1.7.28-1~debian.13~trixie" } });
      mkdirSync(join(s.dir, "pkgs"), { recursive: true });
      writeFileSync(join(s.dir, "pkgs", "containerd.io"), "1.7.29-1~debian.13~trixie");
      const r = runScript(repo.localize(withOsRelease(installDockerScript({ source: "docker", pins }), s.dir, "debian", "trixie")), { env: repo.env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(join(s.dir, "apt-calls"), "utf8"), /--allow-downgrades docker-ce=5:28\.5\.2-1~debian\.13~trixie docker-ce-cli=5:28\.5\.2-1~debian\.13~trixie containerd\.io=1\.7\.28-1~debian\.13~trixie /);
      assert.equal(readFileSync(join(s.dir, "pkgs", "containerd.io"), "utf8"), "1.7.28-1~debian.13~trixie");
    } finally {
      s.done();
    }
  });

  test("a pinned version the repository lacks stops before installing anything, naming the setting and what the repository has", () => {
    const s = scratch();
    try {
      const repo = fakeDockerRepo(s.dir, TRIXIE_REPO);
      const pins = effectivePins({ trixie: { containerd: "1.7.27-1~debian.13~trixie" } });
      const r = runScript(repo.localize(withOsRelease(installDockerScript({ source: "docker", pins }), s.dir, "debian", "trixie")), { env: repo.env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Docker's repository has no containerd\.io 1\.7\.27-1~debian\.13~trixie for debian trixie \(newest there: 2\.2\.1-1~debian\.13~trixie 1\.7\.29-1~debian\.13~trixie .*\): change homelab:docker_versions\.trixie\.containerd/);
      assert.doesNotMatch(readFileSync(join(s.dir, "apt-calls"), "utf8"), /install --no-install-recommends --allow-downgrades docker-ce/);
    } finally {
      s.done();
    }
  });

  test("a release without pins is refused with the setting to add", () => {
    const s = scratch();
    try {
      const repo = fakeDockerRepo(s.dir, TRIXIE_REPO);
      const r = runScript(repo.localize(withOsRelease(installDockerScript({ source: "docker" }), s.dir, "ubuntu", "plucky")), { env: repo.env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no pinned Docker versions for ubuntu plucky: add them to the environment as homelab:docker_versions: \{ plucky: \{ docker: \.\.\., containerd: \.\.\., compose: \.\.\. \} \}/);
      const alpine = runScript(repo.localize(withOsRelease(installDockerScript({ source: "docker" }), s.dir, "alpine", "")), { env: repo.env });
      assert.equal(alpine.code, 1);
      assert.match(alpine.stderr, /Docker's repository has no packages for alpine here; use the distribution's packages/);
    } finally {
      s.done();
    }
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
  test("runc 1.3.3 on a node without the fixed lxc-pve: update lxc-pve, or pin containerd.io before 1.7.28-2 for the container's release", () => {
    const hint = explainDockerFailure(RUNC_SYSCTL_ERROR, { source: "docker", codename: "trixie" }) ?? "";
    assert.match(hint, /AppArmor profile refuses how runc 1\.3\.3 and later/);
    assert.match(hint, /update lxc-pve on the node to 6\.0\.5-2 or newer/);
    assert.match(hint, /homelab:docker_versions: \{ trixie: \{ containerd: "1\.7\.28-1~debian\.13~trixie" \} \}/);
    assert.match(explainDockerFailure(RUNC_SYSCTL_ERROR, { source: "docker", codename: "bookworm" }) ?? "", /containerd: "1\.7\.28-1~debian\.12~bookworm"/);
    // The release unknown: the form of the pin and an example.
    assert.match(explainDockerFailure(RUNC_SYSCTL_ERROR) ?? "", /<codename>: \{ containerd: "1\.7\.28-1~<distro>\.<version>~<codename>" \}/);
    // Debian's own packages: there is no containerd.io to pin.
    assert.match(explainDockerFailure(RUNC_SYSCTL_ERROR, { source: "distribution", codename: "trixie" }) ?? "", /use Docker's repository \(homelab:docker_source: docker\) with containerd\.io pinned before 1\.7\.28-2/);
    // As Compose v2 prints it from `up`.
    assert.equal(explainDockerFailure(`Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied: unknown`, { codename: "noble" }), runcSysctlHint({ codename: "noble" }));
  });

  test("the runc / AppArmor breakage of unprivileged Proxmox containers is named with its fix", () => {
    const samples = [
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

/** An executor that answers scripts by what they are (their comment line), like a container would. */
function scripted(answers: Array<[RegExp, RunResult]>): RemoteExecutor & { ran: string[] } {
  const ran: string[] = [];
  return {
    address: "10.0.0.9",
    ran,
    run(script: string): Promise<RunResult> {
      ran.push(script);
      const hit = answers.find(([re]) => re.test(script));
      return Promise.resolve(hit ? hit[1] : { code: 0, stdout: "", stderr: "" });
    },
    upload: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

describe("the Docker-in-LXC failure, through a deploy and a monitor restart", () => {
  test("deploy: the smoke test's error becomes what to do, for the container's release", async () => {
    const ex = scripted([
      [/install Docker Engine and Compose from Docker's repository/, { code: 0, stdout: "HOMELAB-OS debian trixie\nHOMELAB-DOCKER-INSTALLED docker-ce 5:28.5.2-1~debian.13~trixie containerd.io 1.7.29-1~debian.13~trixie docker-compose-plugin 2.40.3-1~debian.13~trixie\nHOMELAB-COMPOSE v2 2.40.3\n", stderr: "" }],
      [/can Docker start a container here/, { code: 1, stdout: "", stderr: `${RUNC_SYSCTL_ERROR}\nSee 'docker run --help'.\n` }],
    ]);
    const err = await ensureDocker(ex, { docker: { source: "docker" } }).then(
      () => assert.fail("the smoke test failed; ensureDocker must throw"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProvisionError);
    assert.equal(err.step, "smoke-test");
    assert.match(err.message, /starting a test container failed on 10\.0\.0\.9 \(exit 1\)/);
    assert.match(err.message, /\| docker: Error response from daemon: .*ip_unprivileged_port_start/);
    assert.match(err.hint ?? "", /update lxc-pve on the node to 6\.0\.5-2 or newer/);
    assert.match(err.hint ?? "", /containerd: "1\.7\.28-1~debian\.13~trixie"/);
    assert.equal(ex.ran.length, 2, "the release was known from the install: no extra question");
  });

  test("monitor restart: the unit's journal (where Compose said it) is read back, the release asked, and the advice given", async () => {
    const journal = `Container hello-web-1  Starting\nError response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied: unknown\nhomelab-hello.service: Main process exited, code=exited, status=1/FAILURE\n`;
    const ex = scripted([
      [/systemctl restart '?homelab-hello\.service/, { code: 1, stdout: "", stderr: `Job for homelab-hello.service failed because the control process exited with error code.\n${journal}` }],
      [/HOMELAB-PROBE/, { code: 0, stdout: "HOMELAB-PROBE bookworm docker\n", stderr: "" }],
    ]);
    const err = await restartCompose({ address: "10.0.0.9", privateKey: "", knownHostsFile: "/nonexistent" }, "hello", { executor: ex }).then(
      () => assert.fail("the restart failed; restartCompose must throw"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProvisionError);
    assert.equal(err.step, "restart");
    assert.match(err.hint ?? "", /lxc-pve .*6\.0\.5-2/);
    assert.match(err.hint ?? "", /containerd: "1\.7\.28-1~debian\.12~bookworm"/);
    // The script prints the journal itself when the restart fails.
    assert.match(ex.ran[0] ?? "", /journalctl -u '?homelab-hello\.service'? -n 50/);
  });

  test("the probe reads the release and where Docker came from", () => {
    const s = scratch();
    try {
      const env = { PATH: fakePrograms(s.dir, { "dpkg-query": 'case "$3" in containerd.io) printf "install ok installed" ;; *) exit 1 ;; esac' }) };
      const out = runScript(withOsRelease(probeScript(), s.dir, "debian", "trixie"), { env }).stdout;
      assert.deepEqual(parseProbeOutput(out), { codename: "trixie", source: "docker" });
      assert.deepEqual(parseProbeOutput("HOMELAB-PROBE unknown unknown\n"), {});
    } finally {
      s.done();
    }
  });
});
