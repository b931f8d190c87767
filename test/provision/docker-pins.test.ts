import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CONTAINERD_BEFORE_RUNC_1_3_3,
  DEFAULT_DOCKER_PINS,
  DOCKER_RELEASES,
  bundlesRunc133,
  checkPin,
  effectivePins,
  releaseSuffix,
} from "../../src/provision/docker-pins.ts";
import { loadRepository } from "../../src/config/repository.ts";
import { findDiag, makeRepo } from "../helpers/repo.ts";

describe("Docker's packages, pinned per release", () => {
  test("every default is an exact version for its own release (Docker's suffix), docker-ce with its epoch; one version of each package across releases", () => {
    assert.deepEqual(Object.keys(DEFAULT_DOCKER_PINS).sort(), Object.keys(DOCKER_RELEASES).sort());
    for (const [codename, pins] of Object.entries(DEFAULT_DOCKER_PINS)) {
      const suffix = releaseSuffix(codename);
      assert.ok(suffix);
      for (const key of ["docker", "containerd", "compose"] as const) {
        assert.ok(pins[key].endsWith(suffix), `${codename} ${key} ${pins[key]}`);
        assert.equal(checkPin(codename, key, pins[key]), undefined, `${codename} ${key}`);
      }
      // One reviewed set: Engine 28.5.2, containerd.io 1.7.29-1 (runc 1.3.3), Compose 2.40.3.
      assert.equal(pins.docker, `5:28.5.2-1${suffix}`);
      assert.equal(pins.containerd, `1.7.29-1${suffix}`);
      assert.equal(pins.compose, `2.40.3-1${suffix}`);
      assert.equal(CONTAINERD_BEFORE_RUNC_1_3_3[codename], `1.7.28-1${suffix}`);
    }
    assert.equal(releaseSuffix("trixie"), "~debian.13~trixie");
    assert.equal(releaseSuffix("noble"), "~ubuntu.24.04~noble");
    assert.equal(releaseSuffix("plucky"), undefined);
  });

  test("which containerd.io carries the runc that unfixed Proxmox nodes refuse: 1.7.28-2 on, not 1.7.28-1", () => {
    assert.equal(bundlesRunc133("1.7.28-1~debian.13~trixie"), false);
    assert.equal(bundlesRunc133("1.7.27-1"), false);
    assert.equal(bundlesRunc133("1.6.33-1"), false);
    assert.equal(bundlesRunc133("1.7.28-2~debian.13~trixie"), true);
    assert.equal(bundlesRunc133("1.7.29-1~debian.12~bookworm"), true);
    assert.equal(bundlesRunc133("2.2.1-1~debian.13~trixie"), true);
    for (const v of Object.values(CONTAINERD_BEFORE_RUNC_1_3_3)) assert.equal(bundlesRunc133(v), false, v);
    for (const p of Object.values(DEFAULT_DOCKER_PINS)) assert.equal(bundlesRunc133(p.containerd), true, "the defaults keep runc's CVE fixes");
  });

  test("overrides replace single packages of a release; a release without defaults needs all three", () => {
    const e = effectivePins({ trixie: { containerd: "1.7.28-1~debian.13~trixie" }, plucky: { docker: "5:28.5.2-1~ubuntu.25.04~plucky" } });
    assert.deepEqual(e["trixie"], { ...DEFAULT_DOCKER_PINS["trixie"], containerd: "1.7.28-1~debian.13~trixie" });
    assert.deepEqual(e["bookworm"], DEFAULT_DOCKER_PINS["bookworm"]);
    assert.equal(e["plucky"], undefined);
    const full = effectivePins({ plucky: { docker: "5:28.5.2-1~ubuntu.25.04~plucky", containerd: "1.7.29-1~ubuntu.25.04~plucky", compose: "2.40.3-1~ubuntu.25.04~plucky" } });
    assert.equal(full["plucky"]?.compose, "2.40.3-1~ubuntu.25.04~plucky");
  });

  test("checkPin: a bare upstream version, another release's build, a missing epoch, junk: each refused with what to write", () => {
    assert.match(checkPin("trixie", "containerd", "1.7.28")?.message ?? "", /containerd\.io "1\.7\.28" is not a version for trixie/);
    assert.match(checkPin("trixie", "containerd", "1.7.28")?.hint ?? "", /end in ~debian\.13~trixie \(a bare upstream version matches no package\)/);
    assert.match(checkPin("trixie", "containerd", "1.7.28-1~debian.12~bookworm")?.hint ?? "", /built for bookworm; trixie's end in ~debian\.13~trixie/);
    assert.match(checkPin("trixie", "docker", "28.5.2-1~debian.13~trixie")?.message ?? "", /lacks Docker's epoch/);
    assert.equal(checkPin("trixie", "docker", "28.5.2-1~debian.13~trixie")?.hint, "write 5:28.5.2-1~debian.13~trixie");
    assert.match(checkPin("trixie", "compose", "latest")?.message ?? "", /"latest" is not an apt version of docker-compose-plugin/);
    assert.equal(checkPin("plucky", "compose", "2.40.3-1~ubuntu.25.04~plucky"), undefined, "releases homelab does not know: any exact version");
  });
});

describe("homelab:docker_versions in an environment file", () => {
  const envWith = (lines: string[], source = "docker"): { root: string; cleanup: () => void } =>
    makeRepo({ "Pulumi.test.yaml": ["config:", "  homelab:tier1_hosts: [pve-01]", `  homelab:docker_source: ${source}`, "  homelab:docker_versions:", ...lines, ""].join("\n") });

  test("valid overrides load and reach the environment", () => {
    const repo = envWith(["    trixie:", '      containerd: "1.7.28-1~debian.13~trixie"']);
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      assert.deepEqual(r.diagnostics, []);
      assert.deepEqual(r.env.docker.versions, { trixie: { containerd: "1.7.28-1~debian.13~trixie" } });
    } finally {
      repo.cleanup();
    }
  });

  test("a wrong version is an error at its FILE:LINE:COL, naming the setting and what to write", () => {
    const repo = envWith(["    bookworm:", "      docker: 5:28.5.2-1~debian.12~bookworm", "      containerd: 1.7.28", "    trixie:", "      compose: 2.40.3-1~debian.12~bookworm"]);
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      const d = findDiag(r.diagnostics, "homelab:docker_versions.bookworm.containerd");
      assert.equal(d.file, `${repo.root}/Pulumi.test.yaml`);
      assert.deepEqual([d.line, d.col], [7, 19]);
      assert.match(d.message, /containerd\.io "1\.7\.28" is not a version for bookworm/);
      assert.match(d.hint ?? "", /e\.g\. 1\.7\.29-1~debian\.12~bookworm/);
      const t = findDiag(r.diagnostics, "homelab:docker_versions.trixie.compose");
      assert.deepEqual([t.line, t.col], [9, 16]);
      assert.match(t.hint ?? "", /built for bookworm/);
      assert.ok(r.diagnostics.every((x) => x.severity === "error"));
    } finally {
      repo.cleanup();
    }
  });

  test("a release homelab has no pins for must give all three; a bad codename is refused", () => {
    const repo = envWith(["    plucky:", "      docker: 5:28.5.2-1~ubuntu.25.04~plucky", "    Trixie:", "      containerd: 1.7.28-1~debian.13~trixie"]);
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      const p = findDiag(r.diagnostics, "no pins of its own for plucky");
      assert.deepEqual([p.line, p.col], [5, 5]);
      assert.match(p.message, /give containerd \(containerd\.io\), compose \(docker-compose-plugin\) too/);
      const t = findDiag(r.diagnostics, '"Trixie" is not a release codename');
      assert.deepEqual([t.line, t.col], [7, 5]);
      assert.match(t.hint ?? "", /lowercase, e\.g\. bookworm, trixie/);
    } finally {
      repo.cleanup();
    }
  });

  test("an unknown package key is refused by the schema, with its place", () => {
    const repo = envWith(["    noble:", "      containerd_io: 1.7.29-1~ubuntu.24.04~noble"]);
    try {
      const d = findDiag(loadRepository({ root: repo.root, envName: "test" }).diagnostics, "containerd_io");
      assert.deepEqual([d.line, d.col], [6, 7]);
    } finally {
      repo.cleanup();
    }
  });

  test("with docker_source: distribution the pins are moot: a warning, the environment still loads", () => {
    const repo = envWith(["    trixie:", "      containerd: 1.7.28-1~debian.13~trixie"], "distribution");
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      const w = findDiag(r.diagnostics, "pins Docker's own packages");
      assert.equal(w.severity, "warning");
      assert.equal(w.line, 5);
      assert.equal(r.env.docker.source, "distribution");
      assert.equal(r.envFromFile, true);
    } finally {
      repo.cleanup();
    }
  });
});
