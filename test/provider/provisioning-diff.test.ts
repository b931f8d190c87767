/**
 * The contracts of `homelab:docker:Image` and `homelab:compose:Deployment`
 * without Docker or containers: input checks and defaults, what check
 * computes (context hash, per-file hashes, the secrets' hash as a Pulumi
 * secret), and what each change does (update, never a replacement, except a
 * different service), with the preview's wording.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildComposeDeployment } from "../../src/provision/compose.ts";
import { hashDigests, hashFiles } from "../../src/provision/compose-files.ts";
import type { DeployFile } from "../../src/provision/compose-files.ts";
import { inspectScript, parseInspectOutput } from "../../src/provision/compose-scripts.ts";
import { hashContext } from "../../src/provision/image.ts";
import { checkDeploymentInputs, describeDeploymentChange, diffDeployment, parseDeploymentState } from "../../src/provider/deployment-inputs.ts";
import { deploymentSecrets } from "../../src/provider/deployment-secrets.ts";
import { checkImageInputs, diffImage, parseImageState } from "../../src/provider/image-inputs.ts";
import { SECRET_SIG, SIG_KEY, UNKNOWN } from "../../src/provider/inputs.ts";
import type { LogEntry } from "../../src/provider/log.ts";
import { HomelabProvider } from "../../src/provider/provider.ts";
import { loadEnvironment } from "../../src/config/environment.ts";
import { effectivePins } from "../../src/provision/docker-pins.ts";

type Bag = Record<string, unknown>;

const IMAGE_URN = "urn:pulumi:test.hello::homelab::homelab:docker:Image::hello_web_image";
const DEPLOY_URN = "urn:pulumi:test.hello::homelab::homelab:compose:Deployment::hello_compose";
const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const COMPOSE = "services:\n  web:\n    image: hello-web\n    ports:\n      - \"80:80\"\n";
const SECRET_VALUE = "do-not-leak $(this) 'please'";

function isSecret(v: unknown): v is Bag {
  return v !== null && typeof v === "object" && (v as Bag)[SIG_KEY] === SECRET_SIG;
}

void describe("homelab:docker:Image inputs and diff", () => {
  void it("applies defaults and refuses bad names, relative contexts, escaping Dockerfiles and unknown properties", () => {
    const ok = checkImageInputs({ name: "hello-web", context: "/srv/ctx", ref: undefined, __defaults: [] });
    assert.ok(ok.ok);
    assert.deepEqual(ok.inputs, { name: "hello-web", context: "/srv/ctx", dockerfile: "Dockerfile", buildArgs: {} });
    const bad = checkImageInputs({ name: "Hello Web", context: "ctx", dockerfile: "../Dockerfile", contextHash: "xyz", colour: "red" });
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.ok ? [] : bad.failures.map((f) => f.property).sort(), ["colour", "context", "contextHash", "dockerfile", "name"]);
    const missing = checkImageInputs({});
    assert.deepEqual(missing.ok ? [] : missing.failures.map((f) => f.reason).sort(), ["context is required", "name is required"]);
  });

  void it("keeps values unknown during a preview aside and still checks the rest", () => {
    const c = checkImageInputs({ name: "hello-web", context: "/srv/ctx", contextHash: UNKNOWN });
    assert.ok(c.ok);
    assert.deepEqual([...c.unknown], ["contextHash"]);
    assert.equal(c.bag["contextHash"], UNKNOWN);
  });

  void it("a new content hash, name, registry address, Dockerfile or build arg is an update; the context's folder alone is not", () => {
    const olds = parseImageState({ name: "hello-web", context: "/a/ctx", dockerfile: "Dockerfile", buildArgs: { A: "1", B: "2" }, registry: { url: "reg:5000", insecure: true }, contextHash: HASH_A, ref: "reg:5000/hello-web:aaaa", tag: "aaaa", hash: HASH_A });
    const same = { name: "hello-web", context: "/a/ctx", dockerfile: "Dockerfile", buildArgs: { B: "2", A: "1" }, registry: { url: "http://reg:5000/", insecure: true }, contextHash: HASH_A };
    assert.deepEqual(diffImage(olds, same).changed, []);
    assert.deepEqual(diffImage(olds, { ...same, context: "/b/other-checkout" }).changed, [], "a moved checkout with the same content is the same image");
    assert.deepEqual(diffImage(olds, { ...same, contextHash: HASH_B }).changed, ["contextHash"]);
    assert.deepEqual(diffImage(olds, { ...same, name: "hello" }).changed, ["name"]);
    assert.deepEqual(diffImage(olds, { ...same, registry: { url: "other:5000", insecure: true } }).changed, ["registry"]);
    assert.deepEqual(diffImage(olds, { ...same, registry: undefined }).changed, ["registry"]);
    assert.deepEqual(diffImage(olds, { ...same, buildArgs: { A: "1" } }).changed, ["buildArgs"]);
    assert.deepEqual(diffImage(olds, { ...same, dockerfile: "Dockerfile.prod" }).changed, ["dockerfile"]);
    assert.deepEqual(diffImage(olds, same, new Set(["contextHash"])).changed, ["contextHash"], "unknown counts as changed");
  });
});

void describe("homelab:docker:Image through the provider (no Docker needed for check and diff)", () => {
  let dir: string;
  let ctx: string;
  const p = new HomelabProvider({ env: {} });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "homelab-image-check-"));
    ctx = join(dir, "web");
    await mkdir(join(ctx, "www"), { recursive: true });
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY www /www\n");
    await writeFile(join(ctx, "www/index.html"), "<h1>one</h1>\n");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  void it("check computes the context hash hashContext gives, and keeps one the program passed", async () => {
    const checked = await p.check(IMAGE_URN, {}, { name: "hello-web", context: ctx });
    assert.deepEqual(checked.failures ?? [], []);
    assert.equal((checked.inputs as Bag)["contextHash"], (await hashContext({ context: ctx })).hash);
    const given = await p.check(IMAGE_URN, {}, { name: "hello-web", context: ctx, contextHash: HASH_A });
    assert.equal((given.inputs as Bag)["contextHash"], HASH_A);
  });

  void it("check names a missing context or Dockerfile by property", async () => {
    const gone = await p.check(IMAGE_URN, {}, { name: "hello-web", context: join(dir, "nowhere") });
    assert.deepEqual(gone.failures, [{ property: "context", reason: `the build context ${join(dir, "nowhere")} does not exist` }]);
    const noFile = await p.check(IMAGE_URN, {}, { name: "hello-web", context: ctx, dockerfile: "Dockerfile.missing" });
    assert.equal(noFile.failures?.[0]?.property, "dockerfile");
    assert.match(noFile.failures?.[0]?.reason ?? "", /no Dockerfile\.missing in /);
  });

  void it("an edited file in the context changes the hash, which diff reports as an update (never a replace)", async () => {
    const first = await p.check(IMAGE_URN, {}, { name: "hello-web", context: ctx });
    const state = { ...(first.inputs as Bag), ref: "hello-web:x", tag: "x", hash: (first.inputs as Bag)["contextHash"] };
    assert.deepEqual(await p.diff("hello-web", IMAGE_URN, state, first.inputs), { changes: false, replaces: [], deleteBeforeReplace: false });
    await writeFile(join(ctx, "www/index.html"), "<h1>two</h1>\n");
    const second = await p.check(IMAGE_URN, state, { name: "hello-web", context: ctx });
    assert.notEqual((second.inputs as Bag)["contextHash"], (first.inputs as Bag)["contextHash"]);
    assert.deepEqual(await p.diff("hello-web", IMAGE_URN, state, second.inputs), { changes: true, replaces: [], deleteBeforeReplace: false });
  });

  void it("delete removes nothing (pushed tags stay) and needs no Docker Engine", async () => {
    await p.delete("reg/hello-web", IMAGE_URN, { name: "hello-web", ref: "reg/hello-web:x", tag: "x" });
  });
});

void describe("homelab:compose:Deployment inputs and diff", () => {
  let root: string;
  const logs: LogEntry[] = [];
  let p: HomelabProvider;
  const base = (over: Bag = {}): Bag => ({
    service: "hello",
    address: "10.0.0.5",
    vmid: 105,
    composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }],
    images: [{ name: "hello-web", ref: "reg:5000/hello-web:1111111111111111", path: "./docker/web" }],
    registries: [{ name: "local_registry", url: "reg:5000", insecure: true }],
    dockerSource: "distribution",
    ...over,
  });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "homelab-deploy-check-"));
    await mkdir(join(root, "services/hello"), { recursive: true });
    await writeFile(join(root, "Pulumi.test.yaml"), 'config:\n  homelab:environment: development\n  homelab:registries:\n    local_registry: { url: "reg:5000", insecure: true }\n');
    await writeFile(join(root, "services/hello/.secrets.example.yaml"), "api_key: the key\n");
    await writeFile(join(root, "services/hello/.secrets.yaml"), `api_key: ${JSON.stringify(SECRET_VALUE)}\n`, { mode: 0o600 });
    p = new HomelabProvider({ env: { HOMELAB_ROOT: root, HOMELAB_ENV: "test" }, logSink: (e) => logs.push(e) });
  });
  after(() => rm(root, { recursive: true, force: true }));

  /** check, then a state as create would leave it (outputs = checked inputs plus computed fields). */
  async function deployed(news: Bag): Promise<Bag> {
    const checked = await p.check(DEPLOY_URN, {}, news);
    assert.deepEqual(checked.failures ?? [], []);
    return { ...(checked.inputs as Bag), hash: { [SIG_KEY]: SECRET_SIG, value: HASH_A }, dir: "/opt/homelab/hello", unit: "homelab-hello.service", rewrites: [], warnings: [], docker: "docker.io 20.10 / compose v1" };
  }

  void it("check applies defaults, sets the project, and refuses what cannot be deployed, by property", () => {
    const c = checkDeploymentInputs({ service: "hello", address: "10.0.0.5", composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }] });
    assert.ok(c.ok);
    assert.equal(c.inputs.project, "hello");
    assert.equal(c.inputs.dockerSource, "docker");
    assert.deepEqual(c.inputs.images, []);
    const bad = checkDeploymentInputs({ service: "Hello!", address: "somewhere", composeFiles: [], dockerSource: "snap", extra: 1 });
    assert.deepEqual(bad.ok ? [] : bad.failures.map((f) => f.property).sort(), ["address", "composeFiles", "dockerSource", "extra", "service"]);
    const project = checkDeploymentInputs({ service: "hello", project: "other", address: "10.0.0.5", composeFiles: [{ path: "a.yaml", content: "" }] });
    assert.deepEqual(project.ok ? [] : project.failures, [{ property: "project", reason: "project must be the service's name (hello): homelab names the compose project after the service" }]);
  });

  void it("check adds the hash of each file it would write, and the secrets' hash as a Pulumi secret, read from the service's secrets", async () => {
    const checked = await p.check(DEPLOY_URN, {}, base());
    assert.deepEqual(checked.failures ?? [], []);
    const inputs = checked.inputs as Bag;
    assert.deepEqual(Object.keys(inputs["fileHashes"] as Bag).sort(), ["/etc/docker/daemon.json", "/etc/systemd/system/homelab-hello.service", "/opt/homelab/hello/compose", "/opt/homelab/hello/docker-compose.yaml"]);
    const secretsHash = inputs["secretsHash"];
    assert.ok(isSecret(secretsHash), "wrapped as a secret");
    const env = loadEnvironment(root, "test").env;
    assert.ok(env);
    const expected = await deploymentSecrets({ root, env, service: "hello", registries: [{ url: "reg:5000", insecure: true }], processEnv: {} });
    assert.equal(secretsHash["value"], expected.hash, "the same hash the engine's program gets from deploymentSecrets");
    assert.equal(expected.secrets.get("api_key"), SECRET_VALUE);
    assert.equal(JSON.stringify(checked).includes(SECRET_VALUE), false, "never the value");
    // A value the program passed is kept, and wrapped.
    const given = await p.check(DEPLOY_URN, {}, base({ secretsHash: { [SIG_KEY]: SECRET_SIG, value: HASH_B } }));
    assert.deepEqual((given.inputs as Bag)["secretsHash"], { [SIG_KEY]: SECRET_SIG, value: HASH_B });
  });

  void it("a secret from the environment variable wins over the file, as in the CLI; a missing one fails check by name, without values", async () => {
    const fromEnv = new HomelabProvider({ env: { HOMELAB_ROOT: root, HOMELAB_ENV: "test", HELLO_API_KEY: "from the environment" } });
    const a = await fromEnv.check(DEPLOY_URN, {}, base());
    const b = await p.check(DEPLOY_URN, {}, base());
    assert.notDeepEqual((a.inputs as Bag)["secretsHash"], (b.inputs as Bag)["secretsHash"]);
    await writeFile(join(root, "services/hello/.secrets.example.yaml"), "api_key: the key\ndb_password: another\n");
    try {
      const missing = await p.check(DEPLOY_URN, {}, base());
      assert.deepEqual(missing.failures, [
        {
          property: "secretsHash",
          reason:
            'services/hello/.secrets.example.yaml:2:1: required secret "db_password" of service hello is not provided: set HELLO_DB_PASSWORD, add "db_password" to services/hello/.secrets.yaml or (encrypted) .secrets.sops.yaml, or give it a command in .secrets.example.yaml, or provide it from a Pulumi ESC environment',
        },
      ]);
    } finally {
      await writeFile(join(root, "services/hello/.secrets.example.yaml"), "api_key: the key\n");
    }
  });

  void it("an image being rebuilt (its ref unknown in the preview) leaves the file hashes unknown: an update", async () => {
    const state = await deployed(base());
    const checked = await p.check(DEPLOY_URN, state, base({ images: [{ name: "hello-web", ref: UNKNOWN }] }));
    assert.equal((checked.inputs as Bag)["fileHashes"], UNKNOWN);
    assert.deepEqual(await p.diff("hello", DEPLOY_URN, state, checked.inputs), { changes: true, replaces: [], deleteBeforeReplace: false });
  });

  void it("no change, a compose file change, a new image tag, a secret, a new container: each an update in place, said precisely", async () => {
    const state = await deployed(base());
    const diffOf = async (news: Bag, env?: Record<string, string>): Promise<{ changes: boolean | undefined; replaces: string[] | undefined; said: string[] }> => {
      const provider = env ? new HomelabProvider({ env: { HOMELAB_ROOT: root, HOMELAB_ENV: "test", ...env }, logSink: (e) => logs.push(e) }) : p;
      const checked = await provider.check(DEPLOY_URN, state, news);
      const mark = logs.length;
      const d = await provider.diff("hello", DEPLOY_URN, state, checked.inputs);
      return { changes: d.changes, replaces: d.replaces, said: logs.slice(mark).map((l) => l.message) };
    };
    assert.deepEqual(await diffOf(base()), { changes: false, replaces: [], said: [] });
    assert.deepEqual(await diffOf(base({ composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE.replace("80:80", "8080:80") }] })), {
      changes: true,
      replaces: [],
      said: ["update: compose files changed: docker-compose.yaml"],
    });
    assert.deepEqual(await diffOf(base({ images: [{ name: "hello-web", ref: "reg:5000/hello-web:2222222222222222", path: "./docker/web" }] })), {
      changes: true,
      replaces: [],
      said: ["update: compose files changed: docker-compose.yaml"],
    });
    assert.deepEqual(await diffOf(base({ composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }, { path: "override.yaml", content: "services: {}\n" }] })), {
      changes: true,
      replaces: [],
      said: ["update: changed: the compose wrapper; compose files added: override.yaml"],
    });
    assert.deepEqual(await diffOf(base(), { HELLO_API_KEY: "rotated" }), { changes: true, replaces: [], said: ["update: secrets changed"] });
    assert.deepEqual(await diffOf(base({ vmid: 106 })), { changes: true, replaces: [], said: ["update: new container (CT 106 at 10.0.0.5): provisioned from scratch"] });
    assert.deepEqual(await diffOf(base({ address: UNKNOWN, vmid: UNKNOWN })), { changes: true, replaces: [], said: ["update: the container changes: provisioned once it exists"] });
    assert.deepEqual(await diffOf(base({ vmid: undefined })), { changes: false, replaces: [], said: [] }, "a program that stops passing the vmid changes nothing");
    assert.deepEqual(await diffOf(base({ registries: [{ url: "reg:5000", insecure: false }] })), { changes: true, replaces: [], said: ["update: removed: /etc/docker/daemon.json"] });
    const other = await diffOf(base({ service: "other" }));
    assert.equal(other.changes, true);
    assert.deepEqual(other.replaces, ["service"]);
  });

  void it("Docker's exact versions are an input: a moved pin is an update in place that names the package and both versions; a first pin says so", async () => {
    const pins = effectivePins();
    const state = await deployed(base({ dockerSource: "docker", dockerPins: pins }));
    const diffOf = async (news: Bag): Promise<{ changes: boolean | undefined; replaces: string[] | undefined; said: string[] }> => {
      const checked = await p.check(DEPLOY_URN, state, news);
      assert.deepEqual(checked.failures ?? [], []);
      const mark = logs.length;
      const d = await p.diff("hello", DEPLOY_URN, state, checked.inputs);
      return { changes: d.changes, replaces: d.replaces, said: logs.slice(mark).map((l) => l.message) };
    };
    assert.deepEqual(await diffOf(base({ dockerSource: "docker", dockerPins: pins })), { changes: false, replaces: [], said: [] });
    const moved = effectivePins({ trixie: { containerd: "1.7.28-1~debian.13~trixie" } });
    assert.deepEqual(await diffOf(base({ dockerSource: "docker", dockerPins: moved })), {
      changes: true,
      replaces: [],
      said: ["update: Docker pins: trixie containerd.io 1.7.29-1~debian.13~trixie → 1.7.28-1~debian.13~trixie"],
    });
    assert.deepEqual(describeDeploymentChange({ service: "hello", dockerSource: "docker" }, { service: "hello", dockerSource: "docker", dockerPins: pins }), [
      "Docker's packages pinned to exact versions (installed at those versions and held)",
    ]);
    const bad = checkDeploymentInputs({ ...base(), dockerPins: { Trixie: { docker: "x" } } });
    assert.deepEqual(bad.ok ? [] : [...new Set(bad.failures.map((f) => f.property.split(".")[0]))], ["dockerPins"]);
  });

  void it("a different service replaces, the old project removed first (they would share ports)", () => {
    const d = diffDeployment(parseDeploymentState({ service: "hello", fileHashes: {} }), { service: "other", project: "other", fileHashes: {} });
    assert.deepEqual(d.replaces, ["service"]);
  });

  void it("drift recorded by a refresh is a change, and said", async () => {
    const state = { ...(await deployed(base())), drift: ["/opt/homelab/hello/docker-compose.yaml was changed in the container"] };
    const checked = await p.check(DEPLOY_URN, state, base());
    const mark = logs.length;
    assert.equal((await p.diff("hello", DEPLOY_URN, state, checked.inputs)).changes, true);
    assert.deepEqual(logs.slice(mark).map((l) => l.message), ["update: drift: /opt/homelab/hello/docker-compose.yaml was changed in the container"]);
  });

  void it("describeDeploymentChange reads the engine's old and new inputs (secret values as the engine shows them)", () => {
    const olds = { service: "hello", dir: "/opt/homelab/hello", fileHashes: { "/opt/homelab/hello/docker-compose.yaml": HASH_A, "/opt/homelab/hello/compose": HASH_A }, secretsHash: "[secret]" };
    const news = { service: "hello", fileHashes: { "/opt/homelab/hello/docker-compose.yaml": HASH_B, "/opt/homelab/hello/compose": HASH_A }, secretsHash: "[secret]" };
    assert.deepEqual(describeDeploymentChange(olds, news), ["compose files changed: docker-compose.yaml"]);
    assert.deepEqual(describeDeploymentChange(olds, { ...news, fileHashes: UNKNOWN }), ["compose files change with the rebuilt images"]);
  });

  void it("create without HOMELAB_ROOT says how the provider is meant to run; invalid inputs fail create by property", async () => {
    const bare = new HomelabProvider({ env: {} });
    await assert.rejects(bare.create(DEPLOY_URN, { ...base(), secretsHash: HASH_A }), /deploying hello to 10\.0\.0\.5: the homelab provider needs HOMELAB_ROOT and HOMELAB_ENV/);
    await assert.rejects(p.create(DEPLOY_URN, base({ address: "nowhere" })), /invalid inputs: address: address must be the container's IPv4 address/);
  });
});

void describe("reading a deployment back (refresh)", () => {
  void it("hashes from digests equal hashes from contents, so files read back from a container compare with the state", () => {
    const d = buildComposeDeployment({ service: "hello", composeFiles: [{ path: "docker-compose.yaml", content: COMPOSE }], secrets: { api_key: SECRET_VALUE }, registries: [{ url: "reg:5000", insecure: true, username: "u", password: "p" }] });
    const sha = (t: string): string => createHash("sha256").update(t).digest("hex");
    assert.deepEqual(hashDigests(d.files.map((f) => ({ path: f.path, mode: f.mode, sha256: sha(f.content), secret: f.secret }))), d.hashes);
    assert.deepEqual(hashFiles(d.files), d.hashes);
  });

  void it("the inspect script reports each file's mode and digest (never its content), missing files, the unit and the recorded hash", async () => {
    const dir = await mkdtemp(join(tmpdir(), "homelab-inspect-"));
    try {
      const files: DeployFile[] = [
        { path: join(dir, "docker-compose.yaml"), content: COMPOSE, mode: 0o644, role: "compose", secret: false },
        { path: join(dir, "secrets.env"), content: `export API_KEY='${SECRET_VALUE}'\n`, mode: 0o600, role: "secrets", secret: true },
        { path: join(dir, "it's gone.yaml"), content: "", mode: 0o644, role: "compose", secret: false },
      ];
      for (const f of files.slice(0, 2)) {
        await writeFile(f.path, f.content);
        await chmod(f.path, f.mode);
      }
      await writeFile(join(dir, ".homelab-hash"), `${HASH_A}\n`);
      const run = spawnSync("sh", ["-s"], { input: inspectScript({ files, unitName: "homelab-nothing-here.service", dir }), encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.includes(SECRET_VALUE), false, "digests only");
      const report = parseInspectOutput(run.stdout);
      assert.deepEqual(report.files.get(files[0]?.path ?? ""), { mode: 0o644, sha256: createHash("sha256").update(COMPOSE).digest("hex") });
      assert.equal(report.files.get(files[1]?.path ?? "")?.mode, 0o600);
      assert.equal(report.files.has(files[2]?.path ?? ""), true);
      assert.equal(report.files.get(files[2]?.path ?? ""), undefined, "missing");
      assert.notEqual(report.unit, "active");
      assert.equal(report.recordedHash, HASH_A);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
