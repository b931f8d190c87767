/**
 * End to end (root, LXC, Docker): the provider's three resources driven
 * in-process as the engine drives them (check, diff, create, read, update,
 * delete), against the sandbox API backed by real LXC containers on a bridge
 * of this test's own. The hello image is built by the backend's own Docker
 * Engine on the host and pushed to the backend's registry; the container gets Docker from
 * Debian's packages through the package cache; the page is fetched from the
 * host. Traffic stays on this machine.
 */
import assert from "node:assert/strict";
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureSshKey } from "../../src/provision/ssh-key.ts";
import type { ContainerInputs } from "../../src/plan/types.ts";
import { registryHasTag } from "../../src/provision/image.ts";
import { readComposeFiles } from "../../src/provision/inputs.ts";
import { KnownHosts, withSsh } from "../../src/provision/ssh.ts";
import type { LogEntry } from "../../src/provider/log.ts";
import { HomelabProvider } from "../../src/provider/provider.ts";
import { createLxcBackend } from "../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../src/sandbox/lxc/backend.ts";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../src/sandbox/server.ts";
import { ROOT, ensureLabHost, fetchPage } from "../provision/lab.ts";

type Bag = Record<string, unknown>;

const BRIDGE = "hlprvt1";
const SUBNET = "10.87.74.0/24";
const ENV = "test";
const SIG = "4dabf18193072939515e22adb298388d";
const CONTAINER_URN = "urn:pulumi:test.hello::homelab::homelab:proxmox:Container::hello_container";
const IMAGE_URN = "urn:pulumi:test.hello::homelab::homelab:docker:Image::hello_web_image";
const DEPLOY_URN = "urn:pulumi:test.hello::homelab::homelab:compose:Deployment::hello_container_compose";
const FIRST_SECRET = "first s3cret 'quoted' $(not run)";
const SECOND_SECRET = "second-s3cret-value";

/** The value inside a Pulumi secret wrapper (fails when the value is not wrapped). */
function secret(v: unknown): unknown {
  assert.ok(v !== null && typeof v === "object" && (v as Bag)[SIG] !== undefined, `expected a secret, got ${JSON.stringify(v)}`);
  return (v as Bag)["value"];
}

void describe("[root][lxc][docker] homelab:docker:Image and homelab:compose:Deployment against LXC containers", { timeout: 30 * 60_000 }, () => {
  let dir = "";
  let root = "";
  let backend: LxcGuestBackend | undefined;
  let sandbox: RunningSandbox | undefined;
  let p: HomelabProvider;
  let publicKey = "";
  const logs: LogEntry[] = [];
  const figures: string[] = [];
  // Filled as the resources are made.
  let container: { id: string; outs: Bag } = { id: "", outs: {} };
  let image: { id: string; outs: Bag } = { id: "", outs: {} };
  let deployment: { id: string; outs: Bag } = { id: "", outs: {} };
  let address = "";

  const serviceDir = (): string => join(root, "services", "hello");

  before(async () => {
    await ensureLabHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-provider-provisioning-"));
    // With its own Docker Engine, which builds the image and pushes it to the backend's registry.
    backend = await createLxcBackend({ stateDir: join(dir, "lxc"), bridge: BRIDGE, subnet: SUBNET, docker: true });
    sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api") });

    // A homelab repository: the environment (root@pam for the privileged container's nesting), the hello service
    // with Debian's static busybox in its build context, a secret, and the environment's SSH key.
    root = join(dir, "repo");
    await mkdir(join(root, "services"), { recursive: true });
    await cp(join(ROOT, "services/hello"), serviceDir(), { recursive: true });
    await copyFile("/bin/busybox", join(serviceDir(), "docker/web/busybox"));
    await writeFile(join(serviceDir(), ".secrets.example.yaml"), "greeting: shown to nobody\n");
    await writeFile(join(serviceDir(), ".secrets.yaml"), `greeting: ${JSON.stringify(FIRST_SECRET)}\n`, { mode: 0o600 });
    await writeFile(join(root, "token-secret"), sandbox.tokenSecret + "\n", { mode: 0o600 });
    await writeFile(join(root, "root-password"), sandbox.rootPassword + "\n", { mode: 0o600 });
    await writeFile(
      join(root, `Pulumi.${ENV}.yaml`),
      [
        "config:",
        "  homelab:environment: development",
        "  homelab:proxmox:",
        `    endpoint: ${sandbox.url}`,
        `    token_id: ${JSON.stringify(sandbox.tokenId)}`,
        "    token_secret_file: token-secret",
        "    username: root@pam",
        "    password_file: root-password",
        `    fingerprint: ${JSON.stringify(sandbox.fingerprint)}`,
        "  homelab:registries:",
        `    local_registry: { url: "${backend.registry}", insecure: true }`,
        "",
      ].join("\n"),
    );
    publicKey = ensureSshKey(root, ENV).publicKey;
    p = new HomelabProvider({
      env: { HOMELAB_ROOT: root, HOMELAB_ENV: ENV, HOMELAB_VERBOSE: "true", DOCKER_HOST: backend.dockerHost ?? "" },
      timeouts: { taskMs: 120_000, addressMs: 60_000, shutdownSec: 20, pollMs: 250, taskPollMs: 100 },
      deployment: { waitTimeoutSec: 120 },
      logSink: (e) => logs.push(e),
    });
  });

  after(async () => {
    if (figures.length > 0) console.log(`provider provisioning figures:\n  ${figures.join("\n  ")}`);
    await p?.cancel();
    await sandbox?.close();
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function containerInputs(): ContainerInputs {
    return {
      node: "pve-01",
      template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
      hostname: "hello",
      description: "Managed by homelab: service hello, environment test.",
      tags: ["homelab", "hello"],
      memory: 1024,
      swap: 256,
      cores: 2,
      storage: "local-lvm",
      diskGb: 8,
      volumes: [],
      bindMounts: [],
      bridge: "vmbr0",
      ip: "dhcp",
      unprivileged: false,
      nesting: true,
      keyctl: false,
      sshPublicKeys: publicKey,
      onBoot: true,
      protection: false,
    };
  }

  function imageInputs(): Bag {
    assert.ok(backend);
    // No contextHash: check computes it (a program may pass hashContext's hash itself).
    return { name: "hello-web", context: join(serviceDir(), "docker/web"), registry: { name: "local_registry", url: backend.registry, insecure: true } };
  }

  async function deploymentInputs(): Promise<Bag> {
    assert.ok(backend);
    return {
      service: "hello",
      address,
      vmid: Number(container.id),
      composeFiles: await readComposeFiles(serviceDir(), [join(serviceDir(), "docker-compose.yaml")]),
      images: [{ name: "hello-web", ref: image.outs["ref"], path: "./docker/web" }],
      registries: [{ name: "local_registry", url: backend.registry, insecure: true }],
      dockerSource: "distribution",
    };
  }

  /** check, then create or update as the diff says (never a replacement here). */
  async function apply(urn: string, current: { id: string; outs: Bag }, news: Bag): Promise<{ id: string; outs: Bag; changed: boolean }> {
    const checked = await p.check(urn, current.outs, news);
    assert.deepEqual(checked.failures ?? [], []);
    if (current.id === "") {
      const created = await p.create(urn, checked.inputs);
      return { id: created.id, outs: created.outs as Bag, changed: true };
    }
    const d = await p.diff(current.id, urn, current.outs, checked.inputs);
    assert.deepEqual(d.replaces ?? [], [], "never a replacement");
    if (d.changes !== true) return { ...current, changed: false };
    const updated = await p.update(current.id, urn, current.outs, checked.inputs);
    return { id: current.id, outs: updated.outs as Bag, changed: true };
  }

  async function sh(command: string): Promise<string> {
    const key = await readFile(join(root, ".homelab/ssh", ENV, "id_ed25519"), "utf8");
    return withSsh({ host: address, privateKey: key, knownHosts: new KnownHosts(join(root, ".homelab/ssh", ENV, "known_hosts")) }, async (ex) => (await ex.run(`${command}\n`, { what: command })).stdout.trim());
  }

  void it("creates the Container, then the Image (built, pushed), then the Deployment (Docker, files, unit): the page answers", async () => {
    let t = Date.now();
    container = await apply(CONTAINER_URN, container, containerInputs() as unknown as Bag);
    address = String(container.outs["address"]);
    assert.match(address, /^10\.87\.74\.\d+$/);
    figures.push(`Container create ${Date.now() - t} ms`);

    t = Date.now();
    const checkedImage = await p.check(IMAGE_URN, {}, imageInputs());
    assert.match(String((checkedImage.inputs as Bag)["contextHash"]), /^[0-9a-f]{64}$/, "check computed the context hash");
    image = await apply(IMAGE_URN, image, imageInputs());
    const ref = String(image.outs["ref"]);
    assert.equal(ref, `${backend?.registry ?? ""}/hello-web:${String(image.outs["tag"])}`);
    assert.equal(String(image.outs["contextHash"]).slice(0, 16), image.outs["tag"]);
    assert.equal(image.id, `${backend?.registry ?? ""}/hello-web`);
    assert.equal(await registryHasTag({ url: backend?.registry ?? "", insecure: true }, "hello-web", String(image.outs["tag"])), true, "pushed");
    const imageLogs = logs.filter((l) => l.urn === IMAGE_URN);
    assert.ok(imageLogs.some((l) => !l.ephemeral && /^Step \d+\/\d+ : COPY busybox/.test(l.message)), "verbose: the build output is passed on");
    assert.ok(imageLogs.some((l) => l.ephemeral && /^built .*hello-web:[0-9a-f]{16} in \d+ ms, pushed/.test(l.message)), "a status line says what was done");
    figures.push(`Image create (build + push) ${Date.now() - t} ms`);

    t = Date.now();
    const news = await deploymentInputs();
    const checked = await p.check(DEPLOY_URN, {}, news);
    assert.deepEqual(checked.failures ?? [], []);
    const inputs = checked.inputs as Bag;
    assert.match(String(secret(inputs["secretsHash"])), /^[0-9a-f]{64}$/, "the secrets' hash is a Pulumi secret");
    assert.deepEqual(Object.keys(inputs["fileHashes"] as Bag).sort(), ["/etc/docker/daemon.json", "/etc/systemd/system/homelab-hello.service", "/opt/homelab/hello/compose", "/opt/homelab/hello/docker-compose.yaml"]);
    deployment = await apply(DEPLOY_URN, deployment, news);
    assert.equal(deployment.id, "hello");
    const outs = deployment.outs;
    assert.match(String(secret(outs["hash"])), /^[0-9a-f]{64}$/);
    assert.equal(secret(outs["secretsHash"]), secret(inputs["secretsHash"]));
    // Debian 12's Compose is v1, by the version it reports; the release read from the container.
    assert.match(String(outs["docker"]), /^docker\.io 20\.10.* \/ compose v1 1\.29\.2 on debian bookworm$/);
    assert.deepEqual(outs["rewrites"], [{ file: "docker-compose.yaml", service: "web", from: "hello-web", to: ref }]);
    assert.equal(JSON.stringify([checked, outs, logs]).includes(FIRST_SECRET), false, "the secret's value is in no input, output or message");
    figures.push(`Deployment create (Docker from the package cache, files, compose up, healthy) ${Date.now() - t} ms`);

    const page = await fetchPage(`http://${address}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Hello from homelab/);
    assert.equal(await sh("systemctl is-active homelab-hello.service"), "active");
    assert.equal(await sh(". /opt/homelab/hello/secrets.env && printf '%s' \"$GREETING\""), FIRST_SECRET, "the secret arrived exactly");
    const statuses = logs.filter((l) => l.urn === DEPLOY_URN && l.ephemeral).map((l) => l.message);
    assert.ok(statuses.some((m) => /installing Docker/.test(m)) && statuses.some((m) => /hello: started/.test(m)), statuses.join(" | "));
  });

  void it("with nothing changed, check and diff say no change", async () => {
    for (const [urn, current, news] of [
      [CONTAINER_URN, container, containerInputs() as unknown as Bag],
      [IMAGE_URN, image, imageInputs()],
      [DEPLOY_URN, deployment, await deploymentInputs()],
    ] as const) {
      const checked = await p.check(urn, current.outs, news);
      assert.equal((await p.diff(current.id, urn, current.outs, checked.inputs)).changes, false, urn);
    }
  });

  void it("refresh: the deployment reads back as deployed; a file edited in the container and a stopped unit are drift, and the next update repairs them", async () => {
    const clean = await p.read(deployment.id, DEPLOY_URN, deployment.outs);
    assert.equal(clean.id, "hello");
    assert.equal((clean.props as Bag)["drift"], undefined);
    assert.deepEqual((clean.props as Bag)["fileHashes"], deployment.outs["fileHashes"]);
    assert.equal(secret((clean.props as Bag)["secretsHash"]), secret(deployment.outs["secretsHash"]));

    await sh("echo '# edited by hand' >> /opt/homelab/hello/docker-compose.yaml && systemctl stop homelab-hello.service");
    const drifted = await p.read(deployment.id, DEPLOY_URN, deployment.outs);
    const props = drifted.props as Bag;
    assert.deepEqual(props["drift"], ["/opt/homelab/hello/docker-compose.yaml was changed in the container", "homelab-hello.service is inactive, not active"]);
    assert.notEqual((drifted.inputs as Bag)["fileHashes"], undefined);
    const checked = await p.check(DEPLOY_URN, props, await deploymentInputs());
    const d = await p.diff(deployment.id, DEPLOY_URN, props, checked.inputs);
    assert.deepEqual(d, { changes: true, replaces: [], deleteBeforeReplace: false });
    const updated = await p.update(deployment.id, DEPLOY_URN, props, checked.inputs);
    deployment = { id: deployment.id, outs: updated.outs as Bag };
    assert.equal(deployment.outs["drift"], undefined);
    assert.doesNotMatch(await sh("cat /opt/homelab/hello/docker-compose.yaml"), /edited by hand/);
    assert.equal(await sh("systemctl is-active homelab-hello.service"), "active");
    assert.equal(((await p.read(deployment.id, DEPLOY_URN, deployment.outs)).props as Bag)["drift"], undefined, "repaired");
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
  });

  void it("a changed compose file is an update in place: same vmid, the LXC container keeps running, only the project reloads", async () => {
    assert.ok(backend);
    const vmid = Number(container.id);
    const uptime = (await backend.status(vmid)).uptime;
    const file = join(serviceDir(), "docker-compose.yaml");
    const text = await readFile(file, "utf8");
    await writeFile(file, text.replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      HELLO_VERSION: \"2\"\n"));
    const news = await deploymentInputs();
    const checked = await p.check(DEPLOY_URN, deployment.outs, news);
    const before = logs.length;
    const d = await p.diff(deployment.id, DEPLOY_URN, deployment.outs, checked.inputs);
    assert.deepEqual(d, { changes: true, replaces: [], deleteBeforeReplace: false });
    assert.ok(logs.slice(before).some((l) => l.urn === DEPLOY_URN && l.message === "update: compose files changed: docker-compose.yaml"), "the diff says which file");
    const t = Date.now();
    deployment = await apply(DEPLOY_URN, deployment, news);
    figures.push(`compose file change → update ${Date.now() - t} ms`);
    assert.equal(Number(container.id), vmid);
    assert.ok((await backend.status(vmid)).uptime >= uptime, "the LXC container was not restarted or re-created");
    assert.match(await sh("docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' hello_web_1"), /^HELLO_VERSION=2$/m);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
  });

  void it("a changed secret updates secrets.env only; the state has its hash, as a secret, never the value", async () => {
    await writeFile(join(serviceDir(), ".secrets.yaml"), `greeting: ${SECOND_SECRET}\n`, { mode: 0o600 });
    const before = secret(deployment.outs["secretsHash"]);
    const news = await deploymentInputs();
    const checked = await p.check(DEPLOY_URN, deployment.outs, news);
    assert.notEqual(secret((checked.inputs as Bag)["secretsHash"]), before);
    const mark = logs.length;
    deployment = await apply(DEPLOY_URN, deployment, news);
    assert.ok(logs.slice(mark).some((l) => l.message === "update: secrets changed"));
    assert.equal(await sh(". /opt/homelab/hello/secrets.env && printf '%s' \"$GREETING\""), SECOND_SECRET);
    assert.equal(JSON.stringify([checked, deployment.outs, logs]).includes(SECOND_SECRET), false);
  });

  void it("a changed build context is a new tag: the Image updates (build, push), then the Deployment pulls it", async () => {
    const index = join(serviceDir(), "docker/web/www/index.html");
    await writeFile(index, (await readFile(index, "utf8")).replace("Hello from homelab", "Hello from homelab, version 2"));
    const oldRef = String(image.outs["ref"]);
    const t = Date.now();
    image = await apply(IMAGE_URN, image, imageInputs());
    assert.notEqual(image.outs["ref"], oldRef);
    figures.push(`context change → image update (build + push) ${Date.now() - t} ms`);
    const news = await deploymentInputs();
    const checked = await p.check(DEPLOY_URN, deployment.outs, news);
    const mark = logs.length;
    assert.equal((await p.diff(deployment.id, DEPLOY_URN, deployment.outs, checked.inputs)).changes, true);
    assert.ok(logs.slice(mark).some((l) => l.message === "update: compose files changed: docker-compose.yaml"));
    deployment = await apply(DEPLOY_URN, deployment, news);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab, version 2/);
    // The old tag stays in the registry (a rollback may want it).
    assert.equal(await registryHasTag({ url: backend?.registry ?? "", insecure: true }, "hello-web", oldRef.split(":").pop() ?? ""), true);
  });

  void it("a build failure names the failing step and shows its output", async () => {
    const ctx = join(dir, "broken");
    await mkdir(ctx, { recursive: true });
    await copyFile("/bin/busybox", join(ctx, "busybox"));
    await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo making things; echo it broke >&2; exit 3"]\n');
    const urn = "urn:pulumi:test.hello::homelab::homelab:docker:Image::broken_image";
    const checked = await p.check(urn, {}, { name: "broken", context: ctx });
    await assert.rejects(p.create(urn, checked.inputs), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^docker:image broken_image: the build failed at Step 3\/\d+ : RUN/);
      assert.match(e.message, /\| making things/);
      assert.match(e.message, /\| it broke/);
      assert.match(e.message, /returned a non-zero code: 3/);
      return true;
    });
  });

  void it("deletes all: the Deployment leaves the container clean, the Image's tags stay in the registry, the Container goes with its host key", async () => {
    assert.ok(sandbox && backend);
    await p.delete(deployment.id, DEPLOY_URN, deployment.outs);
    assert.equal(await sh("test -e /opt/homelab/hello && echo yes || echo no"), "no");
    assert.equal(await sh("test -e /etc/systemd/system/homelab-hello.service && echo yes || echo no"), "no");
    assert.equal(await sh("docker ps -aq | wc -l"), "0");

    await p.delete(image.id, IMAGE_URN, image.outs);
    assert.equal((await p.read(image.id, IMAGE_URN, image.outs)).id, image.id, "the tag is still in the registry");

    await p.delete(container.id, CONTAINER_URN, container.outs);
    const kh = new KnownHosts(join(root, ".homelab/ssh", ENV, "known_hosts"));
    assert.equal(await kh.lookup(address), undefined, "the container's host key is forgotten");
    // The container is gone: deleting its deployment again (a retried destroy) is success, and a refresh forgets it.
    await p.delete(deployment.id, DEPLOY_URN, deployment.outs);
    assert.deepEqual(await p.read(deployment.id, DEPLOY_URN, deployment.outs), { id: "", props: {} });
    assert.deepEqual((await p.context.client().cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc"), [], "no container left");
  });
});
