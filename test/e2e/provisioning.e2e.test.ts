/**
 * Provisioning end to end, as a user runs it: `homelab sandbox start
 * --backend lxc` (real LXC guests, the sandbox's registry and Docker
 * Engine), then `homelab deploy` of two copies of the hello service (an image
 * built FROM scratch around Debian's static busybox, pushed to the registry,
 * run by Docker Compose inside the container) through the real Pulumi engine
 * and provider plugin. `hello` asks for `*debian*` `>=12` and gets Debian 13
 * with its Compose v2 (docker-compose 2.26), as on a Proxmox VE 9 cluster;
 * `hello2` asks for `^12` and gets Debian 12 with Compose v1 (1.29). Each
 * step checks both where it applies, as a user would: the preview says which
 * Debian and which Compose, the page answers from the host, a reboot brings
 * it back by itself, a compose change updates in place; then an image change
 * rebuilds and redeploys, and destroy removes one service while the other
 * keeps answering.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bridgeLinks, LxcWorld, page, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hlprov0";
const SUBNET = "10.87.84.0/24";

/** The two guests: what each asks for, what it must get, and what it serves. */
const GUESTS = [
  { service: "hello", text: "Hello from homelab", codename: "trixie", compose: "v2", composeVersion: /^2\.\d+\.\d+/, container: "hello-web-1" },
  { service: "hello2", text: "Hello from the other one", codename: "bookworm", compose: "v1", composeVersion: /^1\.\d+\.\d+$/, container: "hello2_web_1" },
] as const;

void describe("[root][lxc][docker][pulumi] homelab deploy provisions compose services on the lxc sandbox, on Debian 13 (Compose v2) and Debian 12 (Compose v1)", { timeout: 45 * 60_000 }, () => {
  let world: LxcWorld | undefined;
  const w = (): LxcWorld => {
    assert.ok(world, "no world: before() failed");
    return world;
  };

  before(async () => {
    world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-provisioning-e2e-" });
    world.addHello("hello", "Hello from homelab");
    world.addHello("hello2", "Hello from the other one", { version: "^12" });
    await world.start();
  });

  after(async () => {
    if (!world) return;
    if (world.figures.length > 0) console.log(`provisioning e2e figures:\n  ${world.figures.join("\n  ")}`);
    await world.close();
  });

  void it("the preview says which Debian and which Compose each container gets; deploy: images built and pushed, both pages answer, Debian 13 runs Compose v2 and Debian 12 Compose v1", async () => {
    const dry = await w().homelab("--env", "sandbox", "deploy", "hello", "hello2", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /\+ create\s+hello_web_image/);
    assert.match(dry.stdout, /\+ create\s+hello_container\.compose/);
    assert.match(dry.stdout, /\+ create\s+hello_container\s+on pve-0\d, debian-13-standard_13\.1-2_amd64, 512 MB, 1 core\(s\), Debian 13 \(trixie\), Compose v2/);
    assert.match(dry.stdout, /\+ create\s+hello2_container\s+on pve-0\d, debian-12-standard_12\.7-1_amd64, 512 MB, 1 core\(s\), Debian 12 \(bookworm\), Compose v1/);
    assert.match(dry.stdout, /system\s+Debian 13 \(trixie\); Docker 26\.1\.5, Compose v2 2\.26\.1 \(Debian's docker\.io, docker-cli and docker-compose\)/);
    assert.match(dry.stdout, /system\s+Debian 12 \(bookworm\); Docker 20\.10\.24, Compose v1 1\.29\.2 \(Debian's docker\.io and docker-compose\)/);

    await w().deploy("hello", "hello2");
    const status = await w().status();
    for (const g of GUESTS) {
      const c = await w().container(g.service);
      const p = await page(`http://${c.address}/`);
      assert.equal(p?.status, 200, g.service);
      assert.match(p?.body ?? "", new RegExp(g.text));
      const s = status.services.find((x) => x.service === g.service);
      const image = s?.resources.find((r) => r.type === "homelab:docker:Image");
      assert.match(image?.detail ?? "", new RegExp(`^${SUBNET.replace(/0\/24$/, "1").replace(/\./g, "\\.")}:5000/${g.service}-web:[0-9a-f]{16}$`));
      const compose = s?.resources.find((r) => r.type === "homelab:compose:Deployment");
      assert.match(compose?.detail ?? "", new RegExp(`compose via homelab-${g.service}\\.service, .* / compose ${g.compose} \\d+\\.\\d+\\.\\d+ on debian ${g.codename}`));
      // In the guest: the release, the Compose that runs the project (v1 and v2 name containers differently).
      const inside = await w().guestDocker(c.address, g.service);
      assert.equal(inside.codename, g.codename);
      assert.match(inside.compose, g.composeVersion);
      assert.deepEqual(inside.containers, [g.container]);
    }
  });

  void it("deploy both again with nothing changed: no changes", async () => {
    const r = await w().deploy("hello", "hello2");
    assert.match(r.stdout, /no changes|unchanged/);
    assert.doesNotMatch(r.stdout, /updated|created|replaced/);
  });

  void it("reboot both containers through the Proxmox API: each service comes back by itself", async () => {
    await Promise.all(
      GUESTS.map(async (g) => {
        const c = await w().container(g.service);
        await w().admin.lxc.reboot(c.node, c.vmid);
        const ms = await waitForPage(`http://${c.address}/`, g.text, 120_000);
        w().figures.push(`${g.service} (${g.codename}): reboot → page answers again: ${(ms / 1000).toFixed(1)} s after the reboot task`);
      }),
    );
  });

  void it("a compose file change updates each project in place: same vmid, container not restarted, Compose v2 and v1 alike", async () => {
    const before = new Map<string, { vmid: number; uptime: number }>();
    for (const g of GUESTS) {
      const c = await w().container(g.service);
      before.set(g.service, { vmid: c.vmid, uptime: (await w().admin.lxc.status(c.node, c.vmid)).uptime ?? 0 });
      const file = join(w().repo, `services/${g.service}/docker-compose.yaml`);
      writeFileSync(file, readFileSync(file, "utf8").replace("restart: unless-stopped", "restart: unless-stopped\n    environment:\n      GREETING: \"changed by the test\""));
    }
    const dry = await w().homelab("--env", "sandbox", "deploy", "hello", "hello2", "--dry-run");
    for (const g of GUESTS) {
      assert.match(dry.stdout, new RegExp(`~ update\\s+${g.service}_container\\.compose`));
      assert.doesNotMatch(dry.stdout, new RegExp(`(update|replace|create|delete)\\s+${g.service}_container\\s`));
      assert.match(dry.stdout, new RegExp(`no change\\s+${g.service}_container\\n`));
    }
    assert.equal(dry.stdout.match(/compose files changed: docker-compose\.yaml/g)?.length, 2, dry.stdout);
    const t = Date.now();
    await w().deploy("hello", "hello2");
    w().figures.push(`redeploy of both after a compose change: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    for (const g of GUESTS) {
      const after = await w().container(g.service);
      assert.equal(after.vmid, before.get(g.service)?.vmid);
      const up2 = (await w().admin.lxc.status(after.node, after.vmid)).uptime ?? 0;
      assert.ok(up2 >= (before.get(g.service)?.uptime ?? 0), `${g.service}: uptime went down to ${up2}: the container restarted`);
      await waitForPage(`http://${after.address}/`, g.text, 60_000);
      const env = await w().guest(after.address, `docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' ${g.container}`);
      assert.match(env.stdout, /^GREETING=changed by the test$/m, `${g.service}: the project was not re-created with the change`);
    }
  });

  void it("an image source change rebuilds, pushes and redeploys: the new page is served from the same container", async () => {
    const before = await w().container("hello");
    const refBefore = (await w().status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    writeFileSync(join(w().repo, "services/hello/docker/web/www/index.html"), "<h1>Hello again, rebuilt</h1>\n");
    // The new page, and the health check that the deploy's health gate runs, say the same.
    w().edit("services/hello/service.yaml", (t) => t.replace(/expect_body: .*$/m, "expect_body: Hello again, rebuilt"));
    const r = await w().deploy("hello");
    assert.match(r.stdout, /hello_web_image/);
    const refAfter = (await w().status()).services.find((x) => x.service === "hello")?.resources.find((r) => r.type === "homelab:docker:Image")?.detail;
    assert.notEqual(refAfter, refBefore);
    const after = await w().container("hello");
    assert.equal(after.vmid, before.vmid);
    await waitForPage(`http://${after.address}/`, "Hello again, rebuilt", 60_000);
  });

  void it("destroy hello: its container and its network interface are gone, hello2 still answers", async () => {
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
