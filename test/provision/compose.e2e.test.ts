/**
 * End to end (root, LXC, Docker): a real LXC container from the sandbox's
 * backend is provisioned over SSH with Docker from Debian's packages (through
 * the package cache on the bridge), the hello image is built on the host and
 * pushed to the registry on the bridge, and the compose project is deployed,
 * changed, fed hostile secrets, and rebooted. Traffic stays on this machine:
 * loopback and the lab's own bridge.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import type { LxcGuestBackend } from "../../src/sandbox/lxc/backend.ts";
import { buildComposeDeployment } from "../../src/provision/compose.ts";
import type { ComposeDeployment, ComposeDeploymentInput } from "../../src/provision/compose.ts";
import { parseSecretsFile, secretVariable } from "../../src/provision/compose-secrets.ts";
import { provisionCompose, readDeployedHash, removeCompose, restartCompose } from "../../src/provision/deploy.ts";
import type { ProvisionOptions, ProvisionTarget } from "../../src/provision/deploy.ts";
import { ensureImage } from "../../src/provision/image.ts";
import type { ImageResult } from "../../src/provision/image.ts";
import { KnownHosts, SshError, connectSsh, withSsh } from "../../src/provision/ssh.ts";
import type { SshExecutor } from "../../src/provision/ssh.ts";
import { ROOT, backendDocker, ensureLabHost, fetchPage, helloContext, makeKey, startBackend, startGuest } from "./lab.ts";

const BRIDGE = "hlprv0";
const SUBNET = "10.87.72.0/24";
const VMID = 400;
const PWNED = "/tmp/homelab-pwned";

describe("[root][lxc][docker] provisioning a compose service end to end", { timeout: 45 * 60_000 }, () => {
  let dir = "";
  let backend: LxcGuestBackend | undefined;
  let docker: Docker | undefined;
  let key: { privateKey: string; publicKey: string; file: string };
  let address = "";
  let target: ProvisionTarget;
  let image: ImageResult;
  let helloCompose = "";
  const figures: string[] = [];
  const opts: ProvisionOptions = { docker: { source: "distribution" }, waitTimeoutSec: 120 };

  before(async () => {
    await ensureLabHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-provision-e2e-"));
    key = await makeKey(join(dir, "ssh"));
    // With its own Docker Engine, which builds and pushes the images.
    backend = await startBackend(join(dir, "state"), BRIDGE, SUBNET, false, true);
    docker = backendDocker(backend);
    address = await startGuest(backend, VMID, key.publicKey, "hello");
    target = { address, privateKey: key.privateKey, privateKeyFile: key.file, knownHostsFile: join(dir, "ssh", "known_hosts") };
    helloCompose = await readFile(join(ROOT, "services/hello/docker-compose.yaml"), "utf8");
  });

  after(async () => {
    if (figures.length > 0) console.log(`provisioning figures:\n  ${figures.join("\n  ")}`);
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function ssh<T>(f: (ex: SshExecutor) => Promise<T>): Promise<T> {
    return withSsh({ host: address, privateKey: key.privateKey, knownHosts: new KnownHosts(target.knownHostsFile) }, f);
  }

  async function sh(command: string): Promise<string> {
    return ssh(async (ex) => (await ex.run(`${command}\n`, { what: command })).stdout.trim());
  }

  function helloDeployment(compose = helloCompose, over: Partial<ComposeDeploymentInput> = {}): ComposeDeployment {
    assert.ok(backend);
    return buildComposeDeployment({
      service: "hello",
      composeFiles: [{ path: "docker-compose.yaml", content: compose }],
      secrets: {},
      images: [{ name: "hello-web", ref: image.ref, path: "./docker/web" }],
      registries: [{ url: backend.registry, insecure: true }],
      ...over,
    });
  }

  test("SSH: the first contact pins the container's host key; a different pinned key is refused", async () => {
    await ssh(async (ex) => assert.equal((await ex.run("hostname\n")).stdout.trim(), "hello"));
    const kh = new KnownHosts(target.knownHostsFile);
    const pinned = await kh.lookup(address);
    assert.ok(pinned, "pinned on first contact");
    const real = await readFile(join(dir, "state", "lxc", backend?.containerName(VMID) ?? "", "rootfs/etc/ssh/ssh_host_ed25519_key.pub"), "utf8");
    assert.equal(pinned.base64, real.split(" ")[1], "the pin is the container's own key");

    // Pretend the container was replaced behind homelab's back.
    const other = (await makeKey(join(dir, "other"))).publicKey.split(" ");
    await kh.pin(address, 22, { type: other[0] ?? "", base64: other[1] ?? "" });
    await assert.rejects(connectSsh({ host: address, privateKey: key.privateKey, knownHosts: kh }, { timeoutMs: 10_000 }), (e: unknown) => e instanceof SshError && e.kind === "host-key-changed" && e.message.includes(target.knownHostsFile));
    assert.equal(await kh.forget(address), true);
    await ssh(async (ex) => ex.run("true\n"));
    assert.equal((await kh.lookup(address))?.base64, pinned.base64);
  });

  test("the hello image is built on the host, tagged by content hash and pushed to the registry on the bridge; an unchanged context is not rebuilt", async () => {
    assert.ok(backend && docker);
    const ctx = await helloContext(dir);
    const lines: string[] = [];
    const spec = { id: "hello_web_image", name: "hello-web", context: ctx, registry: { url: backend.registry, insecure: true } };
    image = await ensureImage(spec, { docker, onOutput: (l) => lines.push(l) });
    assert.equal(image.built, true);
    assert.equal(image.pushed, true);
    assert.match(image.ref, new RegExp(`^${backend.registry.replace(/\./g, "\\.")}/hello-web:[0-9a-f]{16}$`));
    assert.ok(lines.some((l) => /^Step \d+\/\d+ : COPY busybox/.test(l)), "build output streamed");
    figures.push(`image build ${image.buildMs} ms, push ${image.pushMs} ms`);
    const again = await ensureImage(spec, { docker });
    assert.equal(again.built, false);
    assert.equal(again.pushed, false);
    assert.equal(again.reason, "already in the registry");
    assert.equal(again.ref, image.ref);
  });

  test("a build failure names the failing step and shows its output", async () => {
    assert.ok(docker);
    const ctx = await helloContext(join(dir, "bad"));
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo making things; echo it broke >&2; exit 3\"]\n");
    await assert.rejects(ensureImage({ name: "hello-bad", context: ctx }, { docker }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /docker:image hello-bad: the build failed at Step 3\/\d+ : RUN/);
      assert.match(e.message, /it broke/);
      assert.match(e.message, /returned a non-zero code: 3/);
      return true;
    });
  });

  test("provisionCompose installs Docker from Debian's packages through the cache, deploys hello, and it answers on the bridge", async () => {
    const steps: string[] = [];
    const res = await provisionCompose(target, helloDeployment(), { ...opts, onStep: (s) => steps.push(s) });
    assert.deepEqual(steps, ["connect", "install-docker", "smoke-test", "apply", "wait"]);
    assert.equal(res.docker.alreadyPresent, false);
    assert.equal(res.docker.compose, "v1", "Debian 12 has Compose v1 only");
    assert.match(res.docker.packages, /^docker\.io 20\.10/);
    assert.equal(res.smoke, "passed");
    assert.equal(res.apply.action, "started");
    assert.deepEqual(res.wait.states, ["web=running/healthy"], "waited for the health check");
    figures.push(`Docker install through the package cache ${res.ms.install} ms, smoke test ${res.ms.smoke} ms, files + compose up ${res.ms.apply} ms, healthy after ${res.ms.wait} ms more (total ${res.ms.total} ms)`);
    const page = await fetchPage(`http://${address}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<h1>Hello from homelab<\/h1>/);
    assert.equal(await sh("systemctl is-active homelab-hello.service"), "active");
    assert.equal(await sh("systemctl is-enabled homelab-hello.service"), "enabled");
    assert.equal(await sh("stat -c %a /opt/homelab/hello/secrets.env"), "600");
    assert.equal(await readDeployedHash(target, "hello"), res.hash);
  });

  test("deploying the same again changes nothing and skips the install", async () => {
    const ctBefore = (await backend?.status(VMID))?.uptime ?? 0;
    const started = await sh("docker inspect --format '{{.State.StartedAt}}' hello_web_1");
    const res = await provisionCompose(target, helloDeployment(), opts);
    assert.equal(res.docker.alreadyPresent, true);
    assert.deepEqual(res.apply.changed, []);
    assert.equal(res.apply.action, "unchanged");
    assert.equal(await sh("docker inspect --format '{{.State.StartedAt}}' hello_web_1"), started, "the web container was not touched");
    assert.ok(((await backend?.status(VMID))?.uptime ?? 0) >= ctBefore);
    figures.push(`re-deploy with nothing changed ${res.ms.total} ms`);
  });

  test("a changed compose file updates the files and reloads only the compose project: the LXC container keeps running", async () => {
    const ctBefore = (await backend?.status(VMID))?.uptime ?? 0;
    const changed = helloCompose.replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      GREETING: changed\n");
    assert.notEqual(changed, helloCompose);
    const res = await provisionCompose(target, helloDeployment(changed), opts);
    assert.deepEqual(res.apply.changed.map((c) => c.role), ["compose"]);
    assert.equal(res.apply.action, "reloaded");
    assert.ok(((await backend?.status(VMID))?.uptime ?? 0) >= ctBefore, "the LXC container was not restarted or re-created");
    assert.match(await sh("docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' hello_web_1"), /^GREETING=changed$/m);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
    figures.push(`compose file change applied in ${res.ms.apply} ms (+ ${res.ms.wait} ms until healthy)`);
  });

  test("hostile secret values and names arrive byte-exact in the env file and in the container, and nothing runs", async () => {
    const hostile = `it's "quoted" $(touch ${PWNED}) \`touch ${PWNED}\` two  spaces\nsecond line; touch ${PWNED}\n\ttab \\ back\\slash '' \\' $HOME \${HOME} *`;
    const weirdKey = `we'ird $(touch ${PWNED}) name`;
    const weirdFile = `hostile 'compose' $(touch ${PWNED}) \`touch ${PWNED}\`.yaml`;
    const compose = `services:\n  app:\n    image: hello-web\n    environment:\n      SECRET: \${API_KEY}\n      WEIRD: \${${secretVariable(weirdKey)}}\n`;
    const d = buildComposeDeployment({
      service: "hostile",
      composeFiles: [{ path: weirdFile, content: compose }],
      secrets: { api_key: hostile, [weirdKey]: `second $(touch ${PWNED})` },
      images: [{ name: "hello-web", ref: image.ref }],
      registries: [{ url: backend?.registry ?? "", insecure: true }],
    });
    const res = await provisionCompose(target, d, opts);
    assert.equal(res.apply.action, "started");
    const envFile = await sh("cat /opt/homelab/hostile/secrets.env");
    const parsed = parseSecretsFile(`${envFile}\n`);
    assert.equal(parsed.get("API_KEY"), hostile, "byte-exact in the env file");
    const env = JSON.parse(await sh("docker inspect --format '{{json .Config.Env}}' hostile_app_1")) as string[];
    assert.ok(env.includes(`SECRET=${hostile}`), `SECRET arrives exactly: ${JSON.stringify(env)}`);
    assert.ok(env.includes(`WEIRD=second $(touch ${PWNED})`));
    assert.equal(await sh(`test -e ${PWNED} && echo yes || echo no`), "no", "nothing ran in the container");
    assert.equal(existsSync(PWNED), false, "nothing ran on the host");
    assert.equal(await sh(`ls /opt/homelab/hostile | grep -c "^hostile 'compose'"`), "1");
    await removeCompose(target, "hostile");
    assert.equal(await sh("test -e /opt/homelab/hostile && echo yes || echo no"), "no");
    assert.equal(await sh("docker ps -aq --filter label=com.docker.compose.project=hostile | wc -l"), "0");
  });

  test("restartCompose restarts the project through its unit and waits for it", async () => {
    const before = await sh("docker inspect --format '{{.State.StartedAt}}' hello_web_1");
    const wait = await restartCompose(target, "hello", opts);
    assert.equal(wait.ok, true);
    assert.notEqual(await sh("docker inspect --format '{{.State.StartedAt}}' hello_web_1"), before);
  });

  test("after a reboot of the LXC container the service comes back by itself (systemd)", async () => {
    assert.ok(backend);
    await backend.reboot(VMID);
    const t = Date.now();
    const page = await fetchPage(`http://${address}/`, 180_000);
    assert.match(page.body, /Hello from homelab/);
    figures.push(`reboot -> page answering again in ${Date.now() - t} ms`);
    assert.equal(await sh("systemctl is-active homelab-hello.service"), "active");
  });

  test("a failing service fails the wait with its last log lines", async () => {
    const broken = "services:\n  web:\n    image: hello-web\n    command: [\"/bin/busybox\", \"sh\", \"-c\", \"echo starting up; echo config is broken >&2; exit 4\"]\n";
    await assert.rejects(provisionCompose(target, helloDeployment(broken), { ...opts, waitTimeoutSec: 60 }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /container hello_web_1 of hello exited with code 4/);
      assert.match(e.message, /config is broken/);
      return true;
    });
    // Back to the good one.
    await provisionCompose(target, helloDeployment(), opts);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
  });
});
