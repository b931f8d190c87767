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
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bridgeLinks, LxcWorld, page, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hlprov0";
const SUBNET = "10.87.84.0/24";

void describe("[root][lxc][docker][pulumi] homelab deploy provisions compose services on the lxc sandbox", { timeout: 45 * 60_000 }, () => {
  let world: LxcWorld | undefined;
  const w = (): LxcWorld => {
    assert.ok(world, "no world: before() failed");
    return world;
  };

  before(async () => {
    world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-provisioning-e2e-" });
    world.addHello("hello", "Hello from homelab");
    world.addHello("hello2", "Hello from the other one");
    await world.start();
  });

  after(async () => {
    if (!world) return;
    if (world.figures.length > 0) console.log(`provisioning e2e figures:\n  ${world.figures.join("\n  ")}`);
    await world.close();
  });

  void it("deploy hello: the image is built and pushed, the page answers from the host with the expected body", async () => {
    const dry = await w().homelab("--env", "sandbox", "deploy", "hello", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /\+ create\s+hello_web_image/);
    assert.match(dry.stdout, /\+ create\s+hello_container\.compose/);
    await w().deploy("hello");
    const c = await w().container("hello");
    const p = await page(`http://${c.address}/`);
    assert.equal(p?.status, 200);
    assert.match(p?.body ?? "", /Hello from homelab/);
    const s = (await w().status()).services.find((x) => x.service === "hello");
    const image = s?.resources.find((r) => r.type === "homelab:docker:Image");
    assert.match(image?.detail ?? "", new RegExp(`^${SUBNET.replace(/0\/24$/, "1").replace(/\./g, "\\.")}:5000/hello-web:[0-9a-f]{16}$`));
    const compose = s?.resources.find((r) => r.type === "homelab:compose:Deployment");
    assert.match(compose?.detail ?? "", /compose via homelab-hello\.service/);
  });

  void it("deploy hello again with nothing changed: no changes", async () => {
    const r = await w().deploy("hello");
    assert.match(r.stdout, /no changes|unchanged/);
    assert.doesNotMatch(r.stdout, /updated|created|replaced/);
  });

  void it("reboot the container through the Proxmox API: the service comes back by itself", async () => {
    const c = await w().container("hello");
    await w().admin.lxc.reboot(c.node, c.vmid);
    const ms = await waitForPage(`http://${c.address}/`, "Hello from homelab", 120_000);
    w().figures.push(`reboot → page answers again: ${(ms / 1000).toFixed(1)} s after the reboot task`);
  });

  void it("a compose file change updates the project in place: same vmid, container not restarted", async () => {
    const before = await w().container("hello");
    const up1 = (await w().admin.lxc.status(before.node, before.vmid)).uptime ?? 0;
    const file = join(w().repo, "services/hello/docker-compose.yaml");
    writeFileSync(file, readFileSync(file, "utf8").replace("restart: unless-stopped", "restart: unless-stopped\n    environment:\n      GREETING: \"changed by the test\""));
    const dry = await w().homelab("--env", "sandbox", "deploy", "hello", "--dry-run");
    assert.match(dry.stdout, /~ update\s+hello_container\.compose/);
    assert.match(dry.stdout, /compose files changed: docker-compose\.yaml/);
    assert.doesNotMatch(dry.stdout, /(update|replace|create|delete)\s+hello_container\s/);
    assert.match(dry.stdout, /no change\s+hello_container\n/);
    const t = Date.now();
    await w().deploy("hello");
    w().figures.push(`redeploy after a compose change: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const after = await w().container("hello");
    assert.equal(after.vmid, before.vmid);
    const up2 = (await w().admin.lxc.status(after.node, after.vmid)).uptime ?? 0;
    assert.ok(up2 >= up1, `uptime went from ${up1} to ${up2}: the container restarted`);
    await waitForPage(`http://${after.address}/`, "Hello from homelab", 60_000);
  });

  void it("an image source change rebuilds, pushes and redeploys: the new page is served from the same container", async () => {
    const before = await w().container("hello");
    const refBefore = (await w().status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    writeFileSync(join(w().repo, "services/hello/docker/web/www/index.html"), "<h1>Hello again, rebuilt</h1>\n");
    const r = await w().deploy("hello");
    assert.match(r.stdout, /hello_web_image/);
    const refAfter = (await w().status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    assert.notEqual(refAfter, refBefore);
    const after = await w().container("hello");
    assert.equal(after.vmid, before.vmid);
    await waitForPage(`http://${after.address}/`, "Hello again, rebuilt", 60_000);
  });

  void it("destroy hello: its container and its network interface are gone, hello2 still answers", async () => {
    await w().deploy("hello2");
    const other = await w().container("hello2");
    await waitForPage(`http://${other.address}/`, "Hello from the other one", 60_000);
    const gone = await w().container("hello");
    const linksBefore = await bridgeLinks(BRIDGE);
    assert.equal(linksBefore.length, 2, `two guests, two links on ${BRIDGE}: ${linksBefore.join(", ")}`);
    const d = await w().homelab("--env", "sandbox", "destroy", "hello", "--yes");
    assert.equal(d.code, 0, `${d.stdout}\n${d.stderr}`);
    const cts = (await w().admin.cluster.resources({ type: "vm" })).filter((r) => r.type === "lxc");
    assert.ok(!cts.some((r) => r.vmid === gone.vmid), `CT ${gone.vmid} still exists`);
    assert.ok(cts.some((r) => r.vmid === other.vmid));
    // hello's veth went with its container; hello2's is the one left.
    const linksAfter = await bridgeLinks(BRIDGE);
    assert.equal(linksAfter.length, 1, linksAfter.join(", "));
    assert.ok(linksBefore.includes(linksAfter[0] ?? ""));
    assert.equal((await page(`http://${gone.address}/`))?.body.includes("Hello again") ?? false, false);
    await waitForPage(`http://${other.address}/`, "Hello from the other one", 30_000);
  });
});
