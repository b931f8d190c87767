/**
 * End to end: the lxc backend makes real containers (root, LXC). Guests are
 * reached only over the backend's own bridge; nothing here talks to any
 * other address.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TemplateInfo } from "../../../src/sandbox/guest-backend.ts";
import { cleanUpLxcBackend, createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../../src/sandbox/lxc/backend.ts";
import { TEMPLATE_VERSIONS, templateFileName } from "../../../src/sandbox/lxc/templates.ts";
import {
  ensureSandboxHost,
  host,
  hostKeyOf,
  leftovers,
  makeKey,
  sshRun,
  startPrivateDockerd,
  testSpec,
  waitForSsh,
} from "./helpers.ts";
import type { SshTarget } from "./helpers.ts";

const BRIDGE = "hlsbxt0";
const SUBNET = "10.87.60.0/24";

describe("[root][lxc] lxc guest backend", { timeout: 40 * 60_000 }, () => {
  let dir = "";
  let stateDir = "";
  let backend: LxcGuestBackend;
  let key: { privateKey: string; publicKey: string };
  let templates: TemplateInfo[] = [];
  let closed = false;

  before(async () => {
    await ensureSandboxHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-lxc-e2e-"));
    stateDir = join(dir, "state");
    key = await makeKey(join(dir, "key"));
    backend = await createLxcBackend({ stateDir, bridge: BRIDGE, subnet: SUBNET });
    templates = await backend.listTemplates();
  });

  after(async () => {
    if (!closed) await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function template(version: string): TemplateInfo {
    const t = templates.find((x) => x.volid.endsWith(`/${templateFileName(version)}`));
    assert.ok(t, `template ${version} is listed`);
    return t;
  }

  async function address(vmid: number): Promise<string> {
    const ifaces = await backend.interfaces(vmid);
    const inet = ifaces?.find((i) => i.name === "eth0")?.inet;
    assert.ok(inet, `CT ${vmid} reports an eth0 address: ${JSON.stringify(ifaces)}`);
    return inet.split("/")[0] ?? "";
  }

  async function target(vmid: number): Promise<SshTarget> {
    return { host: await address(vmid), privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) };
  }

  async function sh(vmid: number, command: string, timeoutMs = 60_000): Promise<string> {
    const r = await sshRun(await target(vmid), command, timeoutMs);
    assert.equal(r.code, 0, `'${command}' on CT ${vmid} failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  test("templates are registered as vztmpl content, more than one version", () => {
    assert.ok(templates.length >= 2);
    for (const v of TEMPLATE_VERSIONS) {
      const t = template(v);
      assert.match(t.volid, /^local:vztmpl\/debian-12-standard_12\.\d+-1_amd64\.tar\.zst$/);
      assert.ok(t.size > 10_000_000, "a real root tree");
      assert.ok(t.path);
    }
  });

  test("every template version boots with systemd, reports its address, answers SSH with the key and its hostname", async (t) => {
    let vmid = 110;
    for (const version of TEMPLATE_VERSIONS) {
      vmid++;
      const started = Date.now();
      await backend.create(testSpec(vmid, template(version), key.publicKey, { hostname: `peach-${vmid}` }));
      await backend.start(vmid);
      const addr = await address(vmid);
      assert.ok(addr.startsWith("10.87.60."), addr);
      await waitForSsh(await target(vmid));
      t.diagnostic(`${version}: create -> SSH answering in ${Date.now() - started} ms`);
      assert.equal(await sh(vmid, "hostname"), `peach-${vmid}`);
      assert.equal(await sh(vmid, "systemctl is-system-running --wait || systemctl --failed --no-legend"), "running");
      assert.equal(await sh(vmid, "cat /etc/homelab-template"), `debian-12-standard ${version}`);
      assert.equal(await sh(vmid, "systemctl is-active ssh"), "active");
      const st = await backend.status(vmid);
      assert.equal(st.running, true);
      assert.ok(st.mem > 0, "memory in use is reported");
      await backend.destroy(vmid);
    }
  });

  test("memory and cores show up inside the guest as its limits, and change live", async () => {
    await backend.create(testSpec(120, template("12.7-1"), key.publicKey, { memoryMb: 384, cores: 1 }));
    await backend.start(120);
    await waitForSsh(await target(120));
    assert.equal(await sh(120, "nproc"), "1");
    assert.equal(await sh(120, "grep -c ^processor /proc/cpuinfo"), "1");
    assert.equal(await sh(120, "awk '/^MemTotal/ {print $2}' /proc/meminfo"), String(384 * 1024));
    assert.equal(await sh(120, "free -m | awk '/^Mem/ {print $2}'"), "384");
    await backend.update(120, { memoryMb: 640, cores: 2 });
    assert.equal(await sh(120, "awk '/^MemTotal/ {print $2}' /proc/meminfo"), String(640 * 1024));
    const hostCpus = Number((await host(["nproc"])).trim());
    assert.equal(await sh(120, "nproc"), String(Math.min(2, hostCpus)));
    await backend.destroy(120);
  });

  test("Docker inside a nesting guest runs an image built on the host and pulled from the sandbox registry; reboot keeps it", async (t) => {
    await backend.create(testSpec(130, template("12.7-1"), key.publicKey, { features: { nesting: true, keyctl: false }, memoryMb: 1024 }));
    await backend.start(130);
    await waitForSsh(await target(130));

    const dockerd = await startPrivateDockerd(join(dir, "dockerd"), backend.registry);
    try {
      const ctx = join(dir, "image");
      await rm(ctx, { recursive: true, force: true });
      await host(["mkdir", "-p", ctx]);
      await copyFile("/bin/busybox", join(ctx, "busybox"));
      await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "hello from the sandbox registry"]\n');
      const image = `${backend.registry}/homelab-test/hello:1`;
      await host(["docker", "build", "--network", "none", "-t", image, ctx], dockerd.env);
      await host(["docker", "push", image], dockerd.env);

      const installStarted = Date.now();
      await sh(130, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io", 15 * 60_000);
      t.diagnostic(`docker.io installed through the package cache in ${Date.now() - installStarted} ms`);
      await sh(130, `mkdir -p /etc/docker && echo '{"insecure-registries":["${backend.registry}"]}' > /etc/docker/daemon.json && systemctl restart docker`);
      assert.equal(await sh(130, "docker info --format '{{.Driver}}'"), "overlay2");
      assert.equal(await sh(130, `docker run --rm ${image}`, 120_000), "hello from the sandbox registry");

      // Reboot: the guest comes back with its files, its address and Docker's images; /run starts empty.
      const before = await address(130);
      await sh(130, "echo kept > /root/marker && touch /run/volatile-marker");
      await backend.reboot(130);
      await waitForSsh(await target(130), 120_000);
      assert.equal(await address(130), before);
      assert.equal(await sh(130, "cat /root/marker"), "kept");
      assert.equal(await sh(130, "test -e /run/volatile-marker && echo still || echo gone"), "gone");
      assert.equal(await sh(130, "systemctl is-active docker || (sleep 5; systemctl is-active docker)"), "active");
      assert.match(await sh(130, "docker image ls --format '{{.Repository}}:{{.Tag}}'"), /homelab-test\/hello:1/);
    } finally {
      await dockerd.stop();
    }
  });

  test("shutdown and stop make interfaces null; start brings the guest back", async () => {
    assert.ok((await backend.status(130)).running);
    await backend.shutdown(130, 60, true);
    assert.equal((await backend.status(130)).running, false);
    assert.equal(await backend.interfaces(130), null);
    await backend.start(130);
    await waitForSsh(await target(130));
    await backend.stop(130);
    assert.equal(await backend.interfaces(130), null);
    assert.deepEqual(await backend.status(130), { running: false, uptime: 0, mem: 0 });
  });

  test("destroy removes the container and its files", async () => {
    const name = backend.containerName(130);
    const ctDir = join(stateDir, "lxc", name);
    assert.ok((await stat(ctDir)).isDirectory());
    await backend.destroy(130);
    await assert.rejects(stat(ctDir), { code: "ENOENT" });
    assert.ok(!(await host(["lxc-ls", "-P", join(stateDir, "lxc"), "-1"])).includes(name));
    assert.ok(!(await host(["cat", "/proc/mounts"])).includes(ctDir));
    await assert.rejects(backend.status(130), /does not exist/);
  });

  test("two guests created in parallel get different addresses and both answer", async () => {
    const t = template("12.2-1");
    await Promise.all([140, 141].map(async (vmid) => {
      await backend.create(testSpec(vmid, t, key.publicKey));
      await backend.start(vmid);
    }));
    const [a, b] = [await address(140), await address(141)];
    assert.notEqual(a, b);
    await Promise.all([140, 141].map(async (vmid) => waitForSsh(await target(vmid))));
    assert.equal(await sh(140, "hostname"), "ct140");
    assert.equal(await sh(141, "hostname"), "ct141");
    // Guests on the bridge reach each other (the FORWARD rules let bridged traffic through).
    assert.equal(await sh(140, `ping -c1 -W2 ${b} >/dev/null && echo ok`), "ok");
  });

  test("a static ip= is used as given; a clashing or foreign one is refused", async () => {
    const t = template("12.7-1");
    await backend.create(testSpec(150, t, key.publicKey, { net: [{ name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:7E:01:50", ip: "10.87.60.150/24", gw: "10.87.60.1" }] }));
    await backend.start(150);
    assert.equal(await address(150), "10.87.60.150");
    await waitForSsh(await target(150));
    await assert.rejects(backend.create(testSpec(151, t, key.publicKey, { net: [{ name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:7E:01:51", ip: "10.87.60.150/24" }] })), /already in use/);
    await assert.rejects(backend.create(testSpec(152, t, key.publicKey, { net: [{ name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:7E:01:52", ip: "192.0.2.77/24" }] })), /outside/);
    await assert.rejects(backend.status(151), /does not exist/);
  });

  test("close removes every container, the bridge, the rules, mounts and processes", async () => {
    assert.ok((await leftovers({ stateDir, bridge: BRIDGE, hostAddress: backend.hostAddress })).length > 0, "running guests count as leftovers before close");
    await backend.close();
    closed = true;
    assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: backend.hostAddress }), []);
    const rest = await readdir(stateDir).catch(() => []);
    assert.deepEqual(rest.filter((f) => f !== "registry.yml"), []);
  });
});

describe("[root][lxc] lxc backend after a crash", { timeout: 20 * 60_000 }, () => {
  const bridge = "hlsbxt1";
  const subnet = "10.87.61.0/24";
  const hostAddress = "10.87.61.1";

  /** Runs a sandbox in a child process with one guest, then kills it with SIGKILL. */
  async function crashOne(dir: string, stateDir: string): Promise<void> {
    const child = spawn(process.execPath, [join(import.meta.dirname, "fixtures/crash-child.ts"), stateDir, bridge, subnet, join(dir, "key/id_ed25519.pub")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => child.on("close", () => r()));
    const deadline = Date.now() + 5 * 60_000;
    while (!out.includes("ready") && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /ready hlsbxt1-300/, `child did not get ready: ${err}`);
    child.kill("SIGKILL");
    await exited;
    const left = await leftovers({ stateDir, bridge, hostAddress });
    assert.ok(left.some((l) => l.startsWith("bridge")), `the killed sandbox left its bridge: ${left.join("; ")}`);
    assert.ok(left.some((l) => l.startsWith("running containers")), "and its guest");
    assert.ok(left.some((l) => l.startsWith("iptables")), "and its rules");
    assert.ok(left.some((l) => l.startsWith("process")), "and its registry and package cache");
  }

  test("a second start cleans up what a killed sandbox left, and close leaves nothing", async () => {
    await ensureSandboxHost();
    const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-crash-"));
    const stateDir = join(dir, "state");
    try {
      const key = await makeKey(join(dir, "key"));
      await crashOne(dir, stateDir);
      const backend = await createLxcBackend({ stateDir, bridge, subnet });
      try {
        const now = await leftovers({ stateDir, bridge, hostAddress });
        assert.ok(!now.some((l) => l.includes("hlsbxt1-300")), `old guest gone: ${now.join("; ")}`);
        assert.equal((await host(["iptables-save"])).split("\n").filter((l) => l.includes(`homelab-sandbox:${bridge}`)).length, 3, "rules made once, not twice");
        // The address the dead guest had is free again.
        const t = (await backend.listTemplates())[0];
        assert.ok(t);
        await backend.create(testSpec(301, t, key.publicKey));
        await backend.start(301);
        assert.equal((await backend.interfaces(301))?.find((i) => i.name === "eth0")?.inet, "10.87.61.2/24");
      } finally {
        await backend.close();
      }
      assert.deepEqual(await leftovers({ stateDir, bridge, hostAddress }), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("cleanUpLxcBackend alone (sandbox stop after a crash) removes what a killed sandbox left", async () => {
    await ensureSandboxHost();
    const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-crash-"));
    const stateDir = join(dir, "state");
    try {
      await makeKey(join(dir, "key"));
      await crashOne(dir, stateDir);
      await cleanUpLxcBackend({ stateDir, bridge });
      assert.deepEqual(await leftovers({ stateDir, bridge, hostAddress }), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
