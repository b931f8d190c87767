/**
 * Provisioning end to end, as a user runs it: `homelab sandbox start
 * --backend lxc` (real LXC guests, the sandbox's registry and Docker
 * Engine), then `homelab deploy` of the hello service (an image built
 * FROM scratch around Debian's static busybox, pushed to the registry, run
 * by Docker Compose inside the container) through the real Pulumi engine
 * and provider plugin. Each step checks what a user would: the page
 * answers from the host, a reboot brings it back by itself, a compose
 * change updates in place, an image change rebuilds and redeploys, and
 * destroy removes one service while another keeps answering.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import type { ProxmoxClient } from "../../src/proxmox/client.ts";
import { ensureSandboxHost, leftovers } from "../sandbox/lxc/helpers.ts";
import { killPlugins, REPO } from "./helpers.ts";

const ENTRY = join(REPO, "src", "cli", "entry.ts");
const BRIDGE = "hlprov0";
const SUBNET = "10.87.84.0/24";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface StatusJson {
  services: Array<{ service: string; state: string; resources: Array<{ id: string; type: string; vmid?: number; node?: string; address?: string; detail?: string }> }>;
}

/** The host-side interfaces on the sandbox's bridge (one veth per running guest). */
function bridgeLinks(): Promise<string[]> {
  return new Promise((resolve, reject) =>
    execFile("ip", ["-json", "link", "show", "master", BRIDGE], (e, out) => (e ? reject(new Error(`ip link show master ${BRIDGE}: ${e.message}`)) : resolve((JSON.parse(out || "[]") as Array<{ ifname: string }>).map((l) => l.ifname)))),
  );
}

/** Fetches a page with a short timeout; undefined when nothing answers. */
async function page(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

/** Polls a URL until its body includes `text`; returns the milliseconds it took. */
async function waitForPage(url: string, text: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  let last = "";
  while (Date.now() - start < timeoutMs) {
    const p = await page(url);
    if (p?.status === 200 && p.body.includes(text)) return Date.now() - start;
    last = p ? `${p.status}: ${p.body.slice(0, 200)}` : "no answer";
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} did not serve "${text}" within ${timeoutMs} ms (last: ${last})`);
}

void describe("[root][lxc][docker][pulumi] homelab deploy provisions compose services on the lxc sandbox", { timeout: 45 * 60_000 }, () => {
  let repo = "";
  let admin: ProxmoxClient | undefined;
  const figures: string[] = [];

  function homelab(...args: string[]): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [ENTRY, "--dir", repo, ...args],
        {
          timeout: 20 * 60_000,
          maxBuffer: 64 * 1024 * 1024,
          env: {
            ...process.env,
            PATH: `${dirname(process.execPath)}${delimiter}${process.env["PATH"] ?? ""}`,
            HOMELAB_FROM_SOURCE: "1",
            HOMELAB_NODE: process.execPath,
            PULUMI_HOME: join(repo, ".pulumi-home"),
            NO_COLOR: "1",
            CI: "",
          },
        },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  async function status(): Promise<StatusJson> {
    const r = await homelab("--env", "sandbox", "status", "--json");
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  }

  async function container(service: string): Promise<{ vmid: number; node: string; address: string }> {
    const s = (await status()).services.find((x) => x.service === service);
    const c = s?.resources.find((r) => r.type === "homelab:proxmox:Container");
    assert.ok(c?.vmid !== undefined && c.node !== undefined && c.address !== undefined, JSON.stringify(s));
    return { vmid: c.vmid, node: c.node, address: c.address };
  }

  async function deploy(...services: string[]): Promise<Run> {
    const t = Date.now();
    const r = await homelab("--env", "sandbox", "deploy", ...services, "--yes");
    figures.push(`deploy ${services.join(" ")}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** A copy of services/hello named `name`, serving `text`, with Debian's static busybox in its image folder. */
  function addHello(name: string, text: string): void {
    const dir = join(repo, "services", name);
    cpSync(join(REPO, "services", "hello"), dir, { recursive: true });
    copyFileSync("/bin/busybox", join(dir, "docker/web/busybox"));
    const yaml = readFileSync(join(dir, "service.yaml"), "utf8").replace(/^name: hello$/m, `name: ${name}`).replace(/hello_/g, `${name}_`).replace(/name: hello-web/, `name: ${name}-web`);
    writeFileSync(join(dir, "service.yaml"), yaml);
    writeFileSync(join(dir, "docker-compose.yaml"), readFileSync(join(dir, "docker-compose.yaml"), "utf8").replace(/^( +image: )hello-web$/m, `$1${name}-web`));
    writeFileSync(join(dir, "docker/web/www/index.html"), `<h1>${text}</h1>\n`);
  }

  before(async () => {
    await ensureSandboxHost();
    repo = mkdtempSync(join(tmpdir(), "homelab-provisioning-e2e-"));
    copyFileSync(join(REPO, "Pulumi.yaml"), join(repo, "Pulumi.yaml"));
    addHello("hello", "Hello from homelab");
    addHello("hello2", "Hello from the other one");
    const t = Date.now();
    const started = await homelab("sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE, "--subnet", SUBNET, "--task-duration", "100", "--json");
    assert.equal(started.code, 0, started.stderr);
    figures.push(`sandbox start: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const info = JSON.parse(started.stdout) as { url: string; token: string; tokenSecretFile: string; fingerprint: string };
    admin = createProxmoxClient({ endpoint: info.url, auth: { tokenId: info.token, tokenSecret: readFileSync(info.tokenSecretFile, "utf8").trim() }, tls: { fingerprint: info.fingerprint } });
  });

  after(async () => {
    if (figures.length > 0) console.log(`provisioning e2e figures:\n  ${figures.join("\n  ")}`);
    await admin?.close();
    if (repo) {
      killPlugins(repo);
      const stopped = await homelab("sandbox", "stop");
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.deepEqual(await leftovers({ stateDir: join(repo, ".homelab", "sandbox", "lxc"), bridge: BRIDGE, hostAddress: SUBNET.replace(/0\/24$/, "1") }), []);
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it("deploy hello: the image is built and pushed, the page answers from the host with the expected body", async () => {
    const dry = await homelab("--env", "sandbox", "deploy", "hello", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /\+ create\s+hello_web_image/);
    assert.match(dry.stdout, /\+ create\s+hello_container\.compose/);
    await deploy("hello");
    const c = await container("hello");
    const p = await page(`http://${c.address}/`);
    assert.equal(p?.status, 200);
    assert.match(p?.body ?? "", /Hello from homelab/);
    const s = (await status()).services.find((x) => x.service === "hello");
    const image = s?.resources.find((r) => r.type === "homelab:docker:Image");
    assert.match(image?.detail ?? "", new RegExp(`^${SUBNET.replace(/0\/24$/, "1").replace(/\./g, "\\.")}:5000/hello-web:[0-9a-f]{16}$`));
    const compose = s?.resources.find((r) => r.type === "homelab:compose:Deployment");
    assert.match(compose?.detail ?? "", /compose via homelab-hello\.service/);
  });

  void it("deploy hello again with nothing changed: no changes", async () => {
    const r = await deploy("hello");
    assert.match(r.stdout, /no changes|unchanged/);
    assert.doesNotMatch(r.stdout, /updated|created|replaced/);
  });

  void it("reboot the container through the Proxmox API: the service comes back by itself", async () => {
    const c = await container("hello");
    assert.ok(admin);
    await admin.lxc.reboot(c.node, c.vmid);
    const ms = await waitForPage(`http://${c.address}/`, "Hello from homelab", 120_000);
    figures.push(`reboot → page answers again: ${(ms / 1000).toFixed(1)} s after the reboot task`);
  });

  void it("a compose file change updates the project in place: same vmid, container not restarted", async () => {
    const before = await container("hello");
    assert.ok(admin);
    const up1 = (await admin.lxc.status(before.node, before.vmid)).uptime ?? 0;
    const file = join(repo, "services/hello/docker-compose.yaml");
    writeFileSync(file, readFileSync(file, "utf8").replace("restart: unless-stopped", "restart: unless-stopped\n    environment:\n      GREETING: \"changed by the test\""));
    const dry = await homelab("--env", "sandbox", "deploy", "hello", "--dry-run");
    assert.match(dry.stdout, /~ update\s+hello_container\.compose/);
    assert.match(dry.stdout, /compose files changed: docker-compose\.yaml/);
    assert.doesNotMatch(dry.stdout, /(update|replace|create|delete)\s+hello_container\s/);
    assert.match(dry.stdout, /no change\s+hello_container\n/);
    const t = Date.now();
    await deploy("hello");
    figures.push(`redeploy after a compose change: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const after = await container("hello");
    assert.equal(after.vmid, before.vmid);
    const up2 = (await admin.lxc.status(after.node, after.vmid)).uptime ?? 0;
    assert.ok(up2 >= up1, `uptime went from ${up1} to ${up2}: the container restarted`);
    await waitForPage(`http://${after.address}/`, "Hello from homelab", 60_000);
  });

  void it("an image source change rebuilds, pushes and redeploys: the new page is served from the same container", async () => {
    const before = await container("hello");
    const refBefore = (await status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    writeFileSync(join(repo, "services/hello/docker/web/www/index.html"), "<h1>Hello again, rebuilt</h1>\n");
    const r = await deploy("hello");
    assert.match(r.stdout, /hello_web_image/);
    const refAfter = (await status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    assert.notEqual(refAfter, refBefore);
    const after = await container("hello");
    assert.equal(after.vmid, before.vmid);
    await waitForPage(`http://${after.address}/`, "Hello again, rebuilt", 60_000);
  });

  void it("destroy hello: its container and its network interface are gone, hello2 still answers", async () => {
    await deploy("hello2");
    const other = await container("hello2");
    await waitForPage(`http://${other.address}/`, "Hello from the other one", 60_000);
    const gone = await container("hello");
    const linksBefore = await bridgeLinks();
    assert.equal(linksBefore.length, 2, `two guests, two links on ${BRIDGE}: ${linksBefore.join(", ")}`);
    const d = await homelab("--env", "sandbox", "destroy", "hello", "--yes");
    assert.equal(d.code, 0, `${d.stdout}\n${d.stderr}`);
    assert.ok(admin);
    const cts = (await admin.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc");
    assert.ok(!cts.some((r) => r.vmid === gone.vmid), `CT ${gone.vmid} still exists`);
    assert.ok(cts.some((r) => r.vmid === other.vmid));
    // hello's veth went with its container; hello2's is the one left.
    const linksAfter = await bridgeLinks();
    assert.equal(linksAfter.length, 1, linksAfter.join(", "));
    assert.ok(linksBefore.includes(linksAfter[0] ?? ""));
    assert.equal((await page(`http://${gone.address}/`))?.body.includes("Hello again") ?? false, false);
    await waitForPage(`http://${other.address}/`, "Hello from the other one", 30_000);
  });
});
