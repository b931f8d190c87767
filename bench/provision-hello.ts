/**
 * The provisioning demo and its figures: deploys services/hello into a real
 * LXC container of the sandbox's backend (Docker from Debian's packages
 * through the package cache, the image built on this machine and pushed to
 * the registry on the bridge), prints where it answers, fetches the page, and
 * times each step. Then a no-op redeploy and a compose change.
 * Root only; everything stays on this machine (its own bridge).
 * Usage: node bench/provision-hello.ts [--keep] [--verbose]
 *   --keep     leave it running until Ctrl-C (then tear down)
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildComposeDeployment } from "../src/provision/compose.ts";
import { provisionCompose } from "../src/provision/deploy.ts";
import { ensureImage } from "../src/provision/image.ts";
import { ROOT, ensureLabHost, fetchPage, helloContext, makeKey, startBackend, startGuest, startPrivateDockerd } from "../test/provision/lab.ts";

const { values } = parseArgs({ options: { keep: { type: "boolean", default: false }, verbose: { type: "boolean", default: false } } });
if (process.getuid?.() !== 0) {
  console.error("the provisioning demo needs root (LXC containers, a dockerd)");
  process.exit(1);
}

const log = (s: string): void => console.log(`[provision-hello] ${s}`);
const dir = await mkdtemp(join(tmpdir(), "homelab-provision-demo-"));
const t0 = Date.now();
await ensureLabHost();
const backend = await startBackend(join(dir, "state"), "hlprvb", "10.87.73.0/24", values.verbose);
let dockerd: Awaited<ReturnType<typeof startPrivateDockerd>> | undefined;
try {
  log(`sandbox backend up: bridge ${backend.bridge}, registry ${backend.registry}, package cache ${backend.packageCache}`);
  const key = await makeKey(join(dir, "ssh"));
  let t = Date.now();
  const address = await startGuest(backend, 500, key.publicKey, "hello");
  log(`container 500 running at ${address} (${Date.now() - t} ms)`);
  dockerd = await startPrivateDockerd(join(dir, "dockerd"), backend.registry);

  t = Date.now();
  const image = await ensureImage(
    { id: "hello_web_image", name: "hello-web", context: await helloContext(dir), registry: { url: backend.registry, insecure: true } },
    { docker: dockerd.docker, ...(values.verbose ? { onOutput: (l: string) => console.log(`  | ${l}`) } : {}) },
  );
  log(`image ${image.ref}: built in ${image.buildMs} ms, pushed in ${image.pushMs} ms`);

  const compose = await readFile(join(ROOT, "services/hello/docker-compose.yaml"), "utf8");
  const deployment = (text: string): ReturnType<typeof buildComposeDeployment> =>
    buildComposeDeployment({
      service: "hello",
      composeFiles: [{ path: "docker-compose.yaml", content: text }],
      secrets: {},
      images: [{ name: "hello-web", ref: image.ref, path: "./docker/web" }],
      registries: [{ url: backend.registry, insecure: true }],
    });
  const target = { address, privateKey: key.privateKey, privateKeyFile: key.file, knownHostsFile: join(dir, "ssh", "known_hosts") };
  const opts = {
    docker: { source: "distribution" as const },
    onStep: (step: string, what: string) => log(`  ${step}: ${what}`),
    ...(values.verbose ? { onOutput: (c: string) => process.stdout.write(c.replace(/^/gm, "  | ")) } : {}),
  };

  const first = await provisionCompose(target, deployment(compose), opts);
  log(`deployed hello (${first.docker.packages}; Compose ${first.docker.compose}) in ${first.ms.total} ms:`);
  log(`  install Docker ${first.ms.install} ms, smoke test ${first.ms.smoke} ms, files + compose up ${first.ms.apply} ms, healthy after ${first.ms.wait} ms`);
  const page = await fetchPage(`http://${address}/`);
  log(`hello answers at http://${address}/ (HTTP ${page.status}): ${/<h1>(.*)<\/h1>/.exec(page.body)?.[1] ?? page.body.slice(0, 60)}`);

  const again = await provisionCompose(target, deployment(compose), opts);
  log(`redeploy with nothing changed: ${again.ms.total} ms (${again.apply.action})`);
  const changed = await provisionCompose(target, deployment(compose.replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      GREETING: changed\n")), opts);
  log(`compose file changed: ${changed.apply.changed.map((c) => c.path).join(", ")} → ${changed.apply.action} in ${changed.ms.apply} ms, healthy after ${changed.ms.wait} ms`);
  log(`total ${Date.now() - t0} ms`);

  if (values.keep) {
    log(`hello answers at http://${address}/ ; ssh -i ${key.file} -o UserKnownHostsFile=${target.knownHostsFile} root@${address}`);
    log("Ctrl-C tears it down");
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
  }
} finally {
  await dockerd?.stop();
  await backend.close();
  await rm(dir, { recursive: true, force: true });
}
