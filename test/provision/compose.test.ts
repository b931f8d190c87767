import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { buildComposeDeployment } from "../../src/provision/compose.ts";
import type { ComposeDeployment, ComposeDeploymentInput } from "../../src/provision/compose.ts";
import { ComposeInputError, composeProjectName, composeWrapper, daemonJson, diffDeployments, dockerConfigJson, systemdUnit, unitName } from "../../src/provision/compose-files.ts";
import { composeImages, declaresHealthchecks, rewriteImages } from "../../src/provision/compose-images.ts";
import { applyScript, parseApplyOutput, parseWaitOutput, readHashScript, removeScript, restartScript, waitScript } from "../../src/provision/compose-scripts.ts";
import { parseSecretsFile, secretsFile, secretVariable } from "../../src/provision/compose-secrets.ts";
import { HOSTILE, fakePrograms, runScript, scratch, shellSyntaxOk } from "./helpers.ts";

const COMPOSE = `# the web
services:
  web:
    image: hello-web # rewritten
    ports:
      - "80:80"
  db:
    image: postgres:16
`;

function input(over: Partial<ComposeDeploymentInput> = {}): ComposeDeploymentInput {
  return {
    service: "hello",
    composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }],
    secrets: { api_key: "k1", db_password: "p w" },
    images: [{ name: "hello-web", ref: "10.87.53.1:5000/hello-web:0123456789abcdef", path: "./docker/web" }],
    registries: [{ url: "10.87.53.1:5000", insecure: true }],
    ...over,
  };
}

describe("names", () => {
  test("project, unit and secret variable names", () => {
    assert.equal(composeProjectName("peach"), "peach");
    assert.equal(unitName("peach"), "homelab-peach.service");
    assert.throws(() => composeProjectName("Peach"), ComposeInputError);
    assert.throws(() => composeProjectName("a b"), ComposeInputError);
    assert.equal(secretVariable("api_key"), "API_KEY");
    assert.equal(secretVariable("db.pass-word"), "DB_PASS_WORD");
  });
});

describe("secrets file", () => {
  test("one export per secret, in key order, values quoted", () => {
    const f = secretsFile({ b: "2", a: "it's" });
    assert.deepEqual(f.variables, ["A", "B"]);
    assert.match(f.content, /^export A='it'\\''s'\nexport B=2\n$/m);
  });

  test("refuses keys that collide or are not variable names", () => {
    assert.throws(() => secretsFile({ "a-b": "1", a_b: "2" }), /both become the variable A_B/);
    assert.throws(() => secretsFile({ "1st": "x" }), /not a valid variable name/);
  });

  test("hostile values: sourcing exports them byte-exact and runs nothing; the parser reads them back", () => {
    const s = scratch();
    try {
      const secrets: Record<string, string> = {};
      HOSTILE.forEach((v, i) => (secrets[`k${i}`] = v));
      const f = secretsFile(secrets);
      writeFileSync(join(s.dir, "secrets.env"), f.content);
      for (const [i, v] of HOSTILE.entries()) {
        const r = runScript(`. ./secrets.env\nprintf '%s' "$K${i}"\n`, { cwd: s.dir });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, v, `K${i}`);
      }
      assert.deepEqual(readdirSync(s.dir), ["secrets.env"], "nothing in a value ran");
      const parsed = parseSecretsFile(f.content);
      HOSTILE.forEach((v, i) => assert.equal(parsed.get(`K${i}`), v));
    } finally {
      s.done();
    }
  });
});

describe("image rewriting", () => {
  const images = [{ name: "hello-web", ref: "reg:5000/hello-web:abc", path: "docker/web" }];

  test("image: <name> and <name>:latest become the pushed ref; others and comments stay", () => {
    const r = rewriteImages("c.yaml", COMPOSE.replace("db:", "web2:\n    image: hello-web:latest\n  db:"), images);
    assert.deepEqual(r.rewrites.map((x) => [x.service, x.from, x.to]), [
      ["web", "hello-web", "reg:5000/hello-web:abc"],
      ["web2", "hello-web:latest", "reg:5000/hello-web:abc"],
    ]);
    assert.match(r.content, /image: reg:5000\/hello-web:abc/);
    assert.match(r.content, /image: postgres:16/);
    assert.match(r.content, /# the web/);
    assert.deepEqual(composeImages(r.content), ["reg:5000/hello-web:abc", "reg:5000/hello-web:abc", "postgres:16"]);
  });

  test("a pinned tag other than latest is the user's choice and stays", () => {
    const text = "services:\n  web:\n    image: hello-web:1.0\n";
    assert.equal(rewriteImages("c.yaml", text, images).content, text);
  });

  test("a build: of the image's folder is replaced by the image", () => {
    const r = rewriteImages("c.yaml", "services:\n  web:\n    build: ./docker/web/\n", images);
    assert.equal(r.rewrites.length, 1);
    assert.doesNotMatch(r.content, /build/);
    assert.match(r.content, /image: reg:5000\/hello-web:abc/);
    const long = rewriteImages("c.yaml", "services:\n  web:\n    build:\n      context: docker/web\n", images);
    assert.match(long.content, /image: reg:5000\/hello-web:abc/);
  });

  test("another build: is left with a warning (the container cannot build)", () => {
    const text = "services:\n  web:\n    build: ./elsewhere\n";
    const r = rewriteImages("c.yaml", text, images);
    assert.equal(r.content, text);
    assert.match(r.warnings[0] ?? "", /c.yaml: service web has a build/);
  });

  test("no match keeps the text byte for byte", () => {
    const text = "services:\n  x:\n    image:   nginx   # spaced\n";
    assert.equal(rewriteImages("c.yaml", text, images).content, text);
  });

  test("health checks are detected", () => {
    assert.equal(declaresHealthchecks("services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, true]\n"), true);
    assert.equal(declaresHealthchecks(COMPOSE), false);
  });
});

describe("registry settings", () => {
  test("daemon.json lists insecure registries only, sorted, without scheme", () => {
    assert.equal(daemonJson([{ url: "b:5000", insecure: true }, { url: "http://a:5000/", insecure: true }, { url: "secure.lan", insecure: false }]), '{\n  "insecure-registries": [\n    "a:5000",\n    "b:5000"\n  ]\n}\n');
    assert.equal(daemonJson([{ url: "secure.lan", insecure: false }]), undefined);
  });

  test("docker config.json carries credentials for registries with a username", () => {
    const text = dockerConfigJson([{ url: "r:5000", insecure: false, username: "u", password: "p:w" }, { url: "x", insecure: false }]);
    assert.ok(text);
    assert.deepEqual(JSON.parse(text), { auths: { "r:5000": { auth: Buffer.from("u:p:w").toString("base64") } } });
    assert.equal(dockerConfigJson([{ url: "x", insecure: false }]), undefined);
  });
});

describe("unit and wrapper", () => {
  test("the unit runs the wrapper: up -d --remove-orphans at start and reload, down at stop, after Docker", () => {
    const u = systemdUnit({ service: "peach", dir: "/opt/homelab/peach" });
    for (const line of [
      "Type=oneshot",
      "RemainAfterExit=yes",
      "After=docker.service network-online.target",
      "Requires=docker.service",
      "ExecStart=/opt/homelab/peach/compose up -d --remove-orphans",
      "ExecReload=/opt/homelab/peach/compose up -d --remove-orphans",
      "ExecStop=/opt/homelab/peach/compose down",
      "WantedBy=multi-user.target",
      "WorkingDirectory=/opt/homelab/peach",
    ]) {
      assert.ok(u.split("\n").includes(line), `unit has ${line}`);
    }
  });

  test("the wrapper passes hostile compose paths and secrets to Compose exactly (v2 and v1)", () => {
    const s = scratch();
    try {
      const weird = "we'ird $(touch PWNED) `touch PWNED` name\twith tab.yaml";
      const d = buildComposeDeployment(input({ baseDir: join(s.dir, "opt"), composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }, { path: weird, content: "services: {}\n" }], secrets: { api_key: HOSTILE.join("|") } }));
      for (const f of d.files.filter((x) => x.path.startsWith(d.dir))) {
        mkdirSync(dirname(f.path), { recursive: true });
        writeFileSync(f.path, f.content, { mode: f.mode });
      }
      // Both Compose flavours, chosen by whether `docker compose version` works.
      for (const v2 of [true, false]) {
        const path = fakePrograms(s.dir, {
          docker: v2 ? `if [ "$1 $2" = "compose version" ]; then exit 0; fi\nprintf '%s\\0' docker "$@"; printf 'KEY=%s' "$API_KEY"` : "exit 1",
          "docker-compose": `printf '%s\\0' docker-compose "$@"; printf 'KEY=%s' "$API_KEY"`,
        });
        const r = runScript(`exec ${join(d.dir, "compose")} up -d\n`, { env: { PATH: path }, cwd: s.dir });
        assert.equal(r.code, 0, r.stderr);
        const [args, key] = r.stdout.split("KEY=");
        const words = (args ?? "").split("\0").slice(0, -1);
        const prefix = v2 ? ["docker", "compose"] : ["docker-compose"];
        assert.deepEqual(words, [...prefix, "-p", "hello", "-f", join(d.dir, "docker-compose.yaml"), "-f", join(d.dir, weird), "up", "-d"]);
        assert.equal(key, HOSTILE.join("|"));
      }
      assert.ok(!existsSync(join(s.dir, "PWNED")), "nothing in a name ran");
    } finally {
      s.done();
    }
  });

  test("the wrapper is valid sh and says when no Compose is installed", () => {
    const text = composeWrapper({ service: "x", dir: "/nonexistent", composePaths: ["/nonexistent/a.yaml"] });
    assert.ok(shellSyntaxOk(text).ok);
    assert.match(text, /neither 'docker compose' nor 'docker-compose'/);
  });
});

describe("buildComposeDeployment", () => {
  test("files, modes, roles and compose paths in order", () => {
    const d = buildComposeDeployment(input({ composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }, { path: "./prod/override.yaml", content: "services: {}\n" }] }));
    assert.equal(d.project, "hello");
    assert.equal(d.dir, "/opt/homelab/hello");
    assert.deepEqual(d.composePaths, ["/opt/homelab/hello/docker-compose.yaml", "/opt/homelab/hello/prod/override.yaml"]);
    assert.deepEqual(
      d.files.map((f) => [f.path, f.mode.toString(8), f.role, f.secret]),
      [
        ["/opt/homelab/hello/docker-compose.yaml", "644", "compose", false],
        ["/opt/homelab/hello/prod/override.yaml", "644", "compose", false],
        ["/opt/homelab/hello/secrets.env", "600", "secrets", true],
        ["/opt/homelab/hello/compose", "755", "wrapper", false],
        ["/etc/systemd/system/homelab-hello.service", "644", "unit", false],
        ["/etc/docker/daemon.json", "644", "daemon-json", false],
      ],
    );
    assert.deepEqual(d.secretVariables, ["API_KEY", "DB_PASSWORD"]);
    assert.equal(d.rewrites.length, 1);
    assert.match(d.files[0]?.content ?? "", /10\.87\.53\.1:5000\/hello-web:0123456789abcdef/);
  });

  test("refuses paths outside the service, with line breaks, twice, or named like homelab's own files", () => {
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [{ path: "../x.yaml", content: "" }] })), /inside the service folder/);
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [{ path: "/etc/x.yaml", content: "" }] })), /inside the service folder/);
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [{ path: "a\nb.yaml", content: "" }] })), /line break/);
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [{ path: "a.yaml", content: "" }, { path: "./a.yaml", content: "" }] })), /listed twice/);
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [{ path: "compose", content: "" }] })), /homelab uses/);
    assert.throws(() => buildComposeDeployment(input({ composeFiles: [] })), /no compose files/);
  });

  test("hashes are stable and say what changed: compose file, secret, or nothing", () => {
    const a = buildComposeDeployment(input());
    const same = buildComposeDeployment(input({ secrets: new Map([["db_password", "p w"], ["api_key", "k1"]]) }));
    assert.deepEqual(same.hashes, a.hashes, "secret order and Map vs object do not matter");
    assert.match(a.hashes.all, /^[0-9a-f]{64}$/);

    const composeChanged = buildComposeDeployment(input({ composeFiles: [{ path: "docker-compose.yaml", content: `${COMPOSE}# more\n` }] }));
    assert.notEqual(composeChanged.hashes.files, a.hashes.files);
    assert.equal(composeChanged.hashes.secrets, a.hashes.secrets);
    assert.deepEqual(diffDeployments(a.hashes, composeChanged.hashes), { changed: ["/opt/homelab/hello/docker-compose.yaml"], added: [], removed: [], secretsChanged: false });

    const secretChanged = buildComposeDeployment(input({ secrets: { api_key: "k2", db_password: "p w" } }));
    assert.equal(secretChanged.hashes.files, a.hashes.files);
    assert.notEqual(secretChanged.hashes.secrets, a.hashes.secrets);
    assert.notEqual(secretChanged.hashes.all, a.hashes.all);
    assert.deepEqual(diffDeployments(a.hashes, secretChanged.hashes), { changed: [], added: [], removed: [], secretsChanged: true });
    assert.ok(!Object.keys(a.hashes.perFile).some((p) => p.endsWith("secrets.env")), "secret files are not listed per file");

    const imageChanged = buildComposeDeployment(input({ images: [{ name: "hello-web", ref: "10.87.53.1:5000/hello-web:fedcba9876543210" }] }));
    assert.notEqual(imageChanged.hashes.files, a.hashes.files, "a new image tag changes the compose file");
  });
});

/** Builds a deployment under a scratch root: its own folder there, /etc paths moved there too. */
function localDeployment(root: string, over: Partial<ComposeDeploymentInput> = {}): ComposeDeployment {
  const d = buildComposeDeployment(input({ baseDir: join(root, "opt/homelab"), ...over }));
  return { ...d, files: d.files.map((f) => (f.path.startsWith(root) ? f : { ...f, path: join(root, f.path) })) };
}

/** Fake systemctl/journalctl recording calls; a unit is active once started, enabled once enabled. */
function fakeSystemd(root: string): NodeJS.ProcessEnv {
  const path = fakePrograms(root, {
    systemctl: `echo "systemctl $*" >> ${root}/calls\ncase "$1" in\n  is-active) shift; [ "$1" = --quiet ] && shift; [ -e "${root}/active-$1" ] ;;\n  is-enabled) shift; [ "$1" = --quiet ] && shift; [ -e "${root}/enabled-$1" ] ;;\n  enable) shift; [ "$1" = --quiet ] && shift; touch "${root}/enabled-$1" ;;\n  start) touch "${root}/active-$2" ;;\n  *) : ;;\nesac`,
    journalctl: `echo "journal of $*"`,
  });
  return { PATH: path };
}

describe("applyScript (run here against a scratch root, systemd faked)", () => {
  test("first run writes every file with its mode, starts the unit; a second run changes nothing and only reloads", () => {
    const s = scratch();
    try {
      const env = fakeSystemd(s.dir);
      const d = localDeployment(s.dir);
      assert.ok(shellSyntaxOk(applyScript(d)).ok);
      const first = runScript(applyScript(d), { env });
      assert.equal(first.code, 0, first.stderr);
      const r1 = parseApplyOutput(first.stdout);
      assert.equal(r1.action, "started");
      assert.deepEqual(r1.changed.map((c) => c.role).sort(), ["compose", "daemon-json", "secrets", "unit", "wrapper"]);
      for (const f of d.files) {
        assert.equal(readFileSync(f.path, "utf8"), f.content, f.path);
        assert.equal(statSync(f.path).mode & 0o777, f.mode, `${f.path} mode`);
      }
      assert.equal(readFileSync(join(d.dir, ".homelab-hash"), "utf8").trim(), d.hashes.all);
      const calls1 = readFileSync(join(s.dir, "calls"), "utf8");
      assert.match(calls1, /systemctl daemon-reload/);
      assert.match(calls1, /systemctl enable --quiet homelab-hello.service/);
      assert.match(calls1, /systemctl start homelab-hello.service/);
      assert.doesNotMatch(calls1, /reload docker/, "docker was not active, so not reloaded");
      assert.ok(!first.stdout.includes("p w") && !first.stderr.includes("p w"), "secret values are not printed");

      writeFileSync(join(s.dir, "calls"), "");
      const second = runScript(applyScript(d), { env });
      assert.equal(second.code, 0, second.stderr);
      const r2 = parseApplyOutput(second.stdout);
      assert.deepEqual(r2.changed, []);
      assert.equal(r2.action, "unchanged");
      const calls2 = readFileSync(join(s.dir, "calls"), "utf8");
      assert.doesNotMatch(calls2, /daemon-reload|start |enable --quiet/);
      assert.match(calls2, /systemctl reload homelab-hello.service/, "up -d again converges stopped containers");
      assert.ok(!readdirSync(d.dir).some((f) => f.endsWith(".homelab-new")), "no temporary files left");
    } finally {
      s.done();
    }
  });

  test("a changed compose file or secret rewrites just that file and reloads the project; a dropped compose file is removed", () => {
    const s = scratch();
    try {
      const env = fakeSystemd(s.dir);
      const two = [{ path: "docker-compose.yaml", content: COMPOSE }, { path: "extra.yaml", content: "services: {}\n" }];
      assert.equal(runScript(applyScript(localDeployment(s.dir, { composeFiles: two })), { env }).code, 0);
      writeFileSync(join(s.dir, "calls"), "");

      const changed = localDeployment(s.dir, { composeFiles: [{ path: "docker-compose.yaml", content: `${COMPOSE}# v2\n` }], secrets: { api_key: "new", db_password: "p w" } });
      const r = runScript(applyScript(changed), { env });
      assert.equal(r.code, 0, r.stderr);
      const rep = parseApplyOutput(r.stdout);
      assert.deepEqual(rep.changed.map((c) => c.role).sort(), ["compose", "secrets", "wrapper"]);
      assert.deepEqual(rep.removed, [join(changed.dir, "extra.yaml")]);
      assert.equal(rep.action, "reloaded");
      assert.ok(!existsSync(join(changed.dir, "extra.yaml")));
      assert.equal(parseSecretsFile(readFileSync(join(changed.dir, "secrets.env"), "utf8")).get("API_KEY"), "new");
      const calls = readFileSync(join(s.dir, "calls"), "utf8");
      assert.match(calls, /systemctl reload homelab-hello.service/);
      assert.doesNotMatch(calls, /daemon-reload|restart|stop/, "the unit file did not change and nothing is stopped");
    } finally {
      s.done();
    }
  });

  test("a failing start prints the unit's journal and fails", () => {
    const s = scratch();
    try {
      const path = fakePrograms(s.dir, { systemctl: `case "$1" in start) exit 1;; is-active) exit 3;; esac`, journalctl: `echo "compose said no"` });
      const r = runScript(applyScript(localDeployment(s.dir)), { env: { PATH: path } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /compose said no/);
    } finally {
      s.done();
    }
  });

  test("a hostile secret and compose file name are written byte-exact, and nothing runs", () => {
    const s = scratch();
    try {
      const env = fakeSystemd(s.dir);
      const name = "x $(touch PWNED) `touch PWNED` 'q'.yaml";
      const secret = HOSTILE.join("\n");
      const d = localDeployment(s.dir, { composeFiles: [{ path: name, content: "services: {}\n" }], secrets: { api_key: secret } });
      const r = runScript(applyScript(d), { env, cwd: s.dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(join(d.dir, name), "utf8"), "services: {}\n");
      assert.equal(parseSecretsFile(readFileSync(join(d.dir, "secrets.env"), "utf8")).get("API_KEY"), secret);
      assert.ok(!existsSync(join(s.dir, "PWNED")));
      // Applying again reads the manifest, which lists the hostile name: still nothing runs and the file stays.
      assert.equal(runScript(applyScript(d), { env, cwd: s.dir }).code, 0);
      assert.ok(existsSync(join(d.dir, name)));
      assert.ok(!existsSync(join(s.dir, "PWNED")));
    } finally {
      s.done();
    }
  });
});

describe("restart, remove and read scripts", () => {
  test("restart goes through the unit; remove disables it (down), deletes unit and folder; volumes only when asked", () => {
    // On failure the unit's journal is printed: that is where Compose said why (explainDockerFailure reads it).
    assert.match(restartScript("peach"), /^systemctl restart homelab-peach.service \|\| \{ code=\$\?; journalctl -u homelab-peach.service -n 50 --no-pager -o cat >&2 \|\| true; exit "\$code"; \}$/m);
    const rm = removeScript("peach");
    assert.match(rm, /systemctl disable --now homelab-peach.service/);
    assert.match(rm, /rm -f -- \/etc\/systemd\/system\/homelab-peach.service/);
    assert.match(rm, /rm -rf -- \/opt\/homelab\/peach$/m);
    assert.doesNotMatch(rm, / -v/);
    assert.match(removeScript("peach", { removeVolumes: true, removeImages: true }), /compose down -v --rmi all/);
    assert.match(readHashScript("peach"), /cat \/opt\/homelab\/peach\/.homelab-hash/);
    for (const t of [rm, restartScript("x"), readHashScript("x")]) assert.ok(shellSyntaxOk(t).ok);
  });
});

/** A fake `docker` for the wait script: containers and their states from files under root/containers. */
function fakeDocker(root: string): NodeJS.ProcessEnv {
  const path = fakePrograms(root, {
    docker: [
      `C=${root}/containers`,
      'case "$1" in',
      '  ps) ls "$C" 2>/dev/null ;;',
      '  inspect)',
      '    id=$(eval echo "\\${$#}")',
      '    [ -f "$C/$id" ] || exit 1',
      '    case "$3" in',
      "      *com.docker.compose.service*) cat \"$C/$id\" ;;",
      "      *Health.Log*) echo \"health output of $id\" ;;",
      "      *'{{.State.Status}} {{if'*) cut -d' ' -f2,3 \"$C/$id\" ;;",
      "      *) echo \"/$id\" ;;",
      "    esac ;;",
      '  logs) echo "log line of $4" ;;',
      "esac",
    ].join("\n"),
  });
  return { PATH: path };
}

function setContainers(root: string, states: Record<string, string>): void {
  const dir = join(root, "containers");
  runScript(`rm -rf '${dir}' && mkdir -p '${dir}'`);
  for (const [id, state] of Object.entries(states)) writeFileSync(join(dir, id), `${state}\n`);
}

describe("waitScript (run here with a fake docker)", () => {
  test("running and healthy containers: ok at once", () => {
    const s = scratch();
    try {
      setContainers(s.dir, { c1: "web running healthy 0 0 /hello-web-1", c2: "db running none 0 0 /hello-db-1" });
      const r = runScript(waitScript({ project: "hello", timeoutSec: 5 }), { env: fakeDocker(s.dir) });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const rep = parseWaitOutput(r.stdout, r.code);
      assert.equal(rep.ok, true);
      assert.deepEqual(rep.states.sort(), ["db=running/none", "web=running/healthy"]);
    } finally {
      s.done();
    }
  });

  test("a container that exited with an error fails at once, with its last log lines", () => {
    const s = scratch();
    try {
      setContainers(s.dir, { c1: "web exited none 2 0 /hello-web-1" });
      const started = Date.now();
      const r = runScript(waitScript({ project: "hello", timeoutSec: 30, logLines: 7 }), { env: fakeDocker(s.dir) });
      assert.equal(r.code, 3);
      assert.ok(Date.now() - started < 10_000, "did not wait for the timeout");
      const rep = parseWaitOutput(r.stdout, r.code);
      assert.deepEqual(rep.failed, { container: "hello-web-1", reason: "exited with code 2" });
      assert.match(r.stderr, /--- last 7 log lines of hello-web-1 ---/);
      assert.match(r.stderr, /log line of c1/);
    } finally {
      s.done();
    }
  });

  test("exited with 0 (a one-shot job) counts as done", () => {
    const s = scratch();
    try {
      setContainers(s.dir, { c1: "migrate exited none 0 0 /hello-migrate-1", c2: "web running none 0 0 /hello-web-1" });
      assert.equal(runScript(waitScript({ project: "hello", timeoutSec: 5 }), { env: fakeDocker(s.dir) }).code, 0);
    } finally {
      s.done();
    }
  });

  test("still starting at the deadline: timeout, naming what it waited for, with logs", () => {
    const s = scratch();
    try {
      setContainers(s.dir, { c1: "web running starting 0 0 /hello-web-1" });
      const r = runScript(waitScript({ project: "hello", timeoutSec: 2 }), { env: fakeDocker(s.dir) });
      assert.equal(r.code, 4);
      const rep = parseWaitOutput(r.stdout, r.code);
      assert.equal(rep.timedOut, true);
      assert.match(r.stdout, /HOMELAB-WAIT-TIMEOUT\s+web\(starting\)/);
      assert.match(r.stderr, /log line of c1/);
      assert.match(r.stderr, /health output of c1/);
    } finally {
      s.done();
    }
  });

  test("unhealthy past the grace time fails; no containers at all times out", () => {
    const s = scratch();
    try {
      setContainers(s.dir, { c1: "web running unhealthy 0 0 /hello-web-1" });
      const r = runScript(waitScript({ project: "hello", timeoutSec: 10, unhealthyGraceSec: 1 }), { env: fakeDocker(s.dir) });
      assert.equal(r.code, 3);
      assert.equal(parseWaitOutput(r.stdout, r.code).failed?.reason, "unhealthy");
      setContainers(s.dir, {});
      const none = runScript(waitScript({ project: "hello", timeoutSec: 1 }), { env: fakeDocker(s.dir) });
      assert.equal(none.code, 4);
      assert.match(none.stdout, /no containers yet/);
    } finally {
      s.done();
    }
  });
});
