/**
 * The lxc backend's whole lifecycle through the sandbox's HTTPS API, driven by
 * the project's Proxmox client as the tool drives it (root, LXC, Docker):
 * templates listed as vztmpl content, create / start / reboot / shutdown /
 * stop / delete as tasks, `interfaces` for the address, live `PUT config`,
 * SSH with the injected key, Docker inside a nesting guest, and nothing left
 * once the sandbox closes. Guests are reached only over the test's own bridge.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseApiToken } from "../../../src/proxmox/auth.ts";
import { createProxmoxClient } from "../../../src/proxmox/client.ts";
import type { ProxmoxClient } from "../../../src/proxmox/client.ts";
import { ProxmoxNotFoundError, ProxmoxTaskError } from "../../../src/proxmox/errors.ts";
import type { LxcCreateParams } from "../../../src/proxmox/lxc-types.ts";
import { parseTemplateVolid } from "../../../src/proxmox/storage.ts";
import { createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../../src/sandbox/lxc/backend.ts";
import { TEMPLATE_VERSIONS, recipeOf, templateFileName } from "../../../src/sandbox/lxc/templates.ts";
import { startSandboxServer } from "../../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../../src/sandbox/server.ts";
import { ensureSandboxHost, host, hostKeyOf, leftovers, makeKey, sshRun, waitForSsh } from "./helpers.ts";
import type { SshTarget } from "./helpers.ts";

const NODE = "pve-01";
const BRIDGE = "hlsbxt5";
const SUBNET = "10.87.65.0/24";
const PREFIX = "10.87.65.";
const TEMPLATE = `local:vztmpl/${templateFileName("12.7-1")}`;
const MiB = 1024 * 1024;
// Prints "running", or the failed units when systemd is degraded (so a mismatch names them).
const SYSTEMD = "systemctl is-system-running --wait || systemctl --failed --no-legend";

describe("[root][lxc][docker] the lxc sandbox through its HTTPS API, used by the Proxmox client as the tool uses it", { timeout: 40 * 60_000 }, () => {
  let dir = "";
  let stateDir = "";
  let backend: LxcGuestBackend;
  let sandbox: RunningSandbox;
  let client: ProxmoxClient;
  let key: { privateKey: string; publicKey: string };
  let closed = false;

  before(async () => {
    await ensureSandboxHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-lxc-api-life-"));
    stateDir = join(dir, "lxc-state");
    key = await makeKey(join(dir, "key"));
    // With its Docker Engine, as `homelab sandbox start` runs it: the Docker test builds there.
    backend = await createLxcBackend({ stateDir, bridge: BRIDGE, subnet: SUBNET, docker: true });
    sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api") });
    // As the provider builds it from the sandbox's environment file: the token and the pinned certificate.
    client = createProxmoxClient({ endpoint: sandbox.url, auth: parseApiToken(sandbox.token), tls: { fingerprint: sandbox.fingerprint } });
  });

  after(async () => {
    await client?.close();
    if (!closed) await sandbox?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Creates a container through the API (the client allocates the id) and returns its id. */
  async function create(over: Partial<LxcCreateParams> = {}): Promise<number> {
    const result = await client.lxc.create(NODE, {
      ostemplate: TEMPLATE,
      memory: 512,
      cores: 1,
      net0: { name: "eth0", bridge: "vmbr0", ip: "dhcp" },
      rootfs: { storage: "local-lvm", sizeGb: 8 },
      sshPublicKeys: key.publicKey,
      ...over,
    });
    assert.equal(result.exitstatus, "OK");
    return result.vmid;
  }

  /** eth0's IPv4 address as the API's `interfaces` reports it. */
  async function address(vmid: number): Promise<string> {
    const ifaces = await client.lxc.interfaces(NODE, vmid);
    const inet = ifaces?.find((i) => i.name === "eth0")?.inet;
    assert.ok(inet, `CT ${vmid} reports an eth0 address: ${JSON.stringify(ifaces)}`);
    const addr = inet.split("/")[0] ?? "";
    assert.ok(addr.startsWith(PREFIX), `${addr} lies in ${SUBNET}`);
    return addr;
  }

  async function target(vmid: number): Promise<SshTarget> {
    return { host: await address(vmid), privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) };
  }

  async function sh(vmid: number, command: string, timeoutMs = 60_000): Promise<string> {
    const r = await sshRun(await target(vmid), command, timeoutMs);
    assert.equal(r.code, 0, `'${command}' on CT ${vmid} failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  test("the API lists the backend's templates as vztmpl content on local, every version", async () => {
    const listed = await client.storage.templates(NODE, "local");
    const volids = listed.map((t) => t.volid);
    for (const v of TEMPLATE_VERSIONS) assert.ok(volids.includes(`local:vztmpl/${templateFileName(v)}`), `${v} in ${volids.join(", ")}`);
    for (const t of listed) {
      assert.match(t.volid, /^local:vztmpl\/debian-(12|13)-standard_\1\.\d+-\d+_amd64\.tar\.zst$/);
      assert.ok((t.size ?? 0) > 10_000_000, `${t.volid} is a real root tree`);
    }
  });

  test("a container from every listed template boots with systemd running, reports its address, answers SSH with the injected key and its hostname", async (t) => {
    const listed = await client.storage.templates(NODE, "local");
    assert.ok(listed.length >= TEMPLATE_VERSIONS.length);
    for (const tpl of listed) {
      const version = parseTemplateVolid(tpl.volid).version ?? "";
      const hostname = `peach-${version.replace(/\W/g, "-")}`;
      const started = Date.now();
      const vmid = await create({ ostemplate: tpl.volid, hostname });
      await client.lxc.start(NODE, vmid);
      await waitForSsh(await target(vmid));
      t.diagnostic(`${version}: create -> SSH answering in ${Date.now() - started} ms (CT ${vmid})`);
      assert.equal(await sh(vmid, "hostname"), hostname);
      assert.equal(await sh(vmid, SYSTEMD, 120_000), "running");
      assert.equal(await sh(vmid, "cat /etc/homelab-template"), `debian-${recipeOf(version).major}-standard ${version}`);
      assert.equal(await sh(vmid, ". /etc/os-release && echo $VERSION_CODENAME"), recipeOf(version).suite);
      assert.equal(await sh(vmid, "systemctl is-active ssh"), "active");
      const st = await client.lxc.status(NODE, vmid);
      assert.equal(st.status, "running");
      assert.ok((st.mem ?? 0) > 0, "memory in use is reported");
      assert.ok((st.uptime ?? -1) >= 0);
      await client.lxc.stop(NODE, vmid);
      await client.lxc.delete(NODE, vmid);
    }
  });

  test("memory and cores sent through the API are the limits inside; PUT config memory= and cores= apply live", async () => {
    const vmid = await create({ hostname: "limits", memory: 384, cores: 1 });
    await client.lxc.start(NODE, vmid);
    await waitForSsh(await target(vmid));
    assert.equal(await sh(vmid, "nproc"), "1");
    assert.equal(await sh(vmid, "grep -c ^processor /proc/cpuinfo"), "1");
    assert.equal(await sh(vmid, "awk '/^MemTotal/ {print $2}' /proc/meminfo"), String(384 * 1024));
    assert.equal(await sh(vmid, "free -m | awk '/^Mem/ {print $2}'"), "384");
    assert.equal((await client.lxc.status(NODE, vmid)).maxmem, 384 * MiB);

    await client.lxc.updateConfig(NODE, vmid, { memory: 640, cores: 2 });
    assert.equal(await sh(vmid, "free -m | awk '/^Mem/ {print $2}'"), "640");
    assert.equal(await sh(vmid, "awk '/^MemTotal/ {print $2}' /proc/meminfo"), String(640 * 1024));
    const hostCpus = Number((await host(["nproc"])).trim());
    assert.equal(await sh(vmid, "nproc"), String(Math.min(2, hostCpus)));
    // Applied, not pending: the running config has it, and the guest was never restarted.
    const current = await client.lxc.config(NODE, vmid, { current: true });
    assert.equal(current.memory, 640);
    assert.equal(current.cores, 2);
    assert.equal((await client.lxc.status(NODE, vmid)).maxmem, 640 * MiB);
    await client.lxc.delete(NODE, vmid, { force: true });
  });

  // Shared by the Docker, reboot, shutdown/stop and delete tests, which follow one guest.
  let docker = 0;

  test("[docker] Docker inside a nesting=1 container runs an image built on the host and pulled from the sandbox registry; reboot through the API keeps it", async (t) => {
    docker = await create({ hostname: "docker-host", memory: 1024, features: { nesting: true } });
    await client.lxc.start(NODE, docker);
    await waitForSsh(await target(docker));
    // The API reports what was asked, though the guest runs privileged underneath.
    const config = await client.lxc.config(NODE, docker);
    assert.equal(config.unprivileged, true);
    assert.deepEqual(config.features, { nesting: true });

    const dockerEnv = { ...process.env, DOCKER_HOST: backend.dockerHost ?? "" };
    const image = `${backend.registry}/homelab-test/hello:1`;
    const ctx = join(dir, "image");
    await mkdir(ctx, { recursive: true });
    await copyFile("/bin/busybox", join(ctx, "busybox"));
    await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "hello from the sandbox registry"]\n');
    await host(["docker", "build", "--network", "none", "-t", image, ctx], dockerEnv);
    await host(["docker", "push", image], dockerEnv);

    const installStarted = Date.now();
    await sh(docker, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io", 15 * 60_000);
    t.diagnostic(`docker.io installed through the package cache in ${Date.now() - installStarted} ms`);
    await sh(docker, `mkdir -p /etc/docker && echo '{"insecure-registries":["${backend.registry}"]}' > /etc/docker/daemon.json && systemctl restart docker`);
    assert.equal(await sh(docker, "docker info --format '{{.Driver}}'"), "overlay2");
    assert.equal(await sh(docker, `docker run --rm ${image}`, 120_000), "hello from the sandbox registry");

    // Reboot: systemd comes up running again, with the files, the address and Docker's images; /run starts empty.
    const addressBefore = await address(docker);
    await sh(docker, "echo kept > /root/marker && touch /run/volatile-marker");
    const rebootStarted = Date.now();
    await client.lxc.reboot(NODE, docker);
    await waitForSsh(await target(docker), 120_000);
    t.diagnostic(`reboot -> SSH answering in ${Date.now() - rebootStarted} ms`);
    assert.equal((await client.lxc.status(NODE, docker)).status, "running");
    assert.equal(await sh(docker, SYSTEMD, 120_000), "running");
    assert.equal(await address(docker), addressBefore);
    assert.equal(await sh(docker, "cat /root/marker"), "kept");
    assert.equal(await sh(docker, "test -e /run/volatile-marker && echo still || echo gone"), "gone");
    assert.equal(await sh(docker, "systemctl is-active docker"), "active");
    assert.equal(await sh(docker, `docker run --rm ${image}`, 120_000), "hello from the sandbox registry");
  });

  test("shutdown and stop through the API make interfaces null; start brings the guest back", async () => {
    assert.ok(docker > 0, "the Docker test made the guest");
    await client.lxc.shutdown(NODE, docker, { timeoutSec: 60, forceStop: true });
    assert.equal((await client.lxc.status(NODE, docker)).status, "stopped");
    assert.equal(await client.lxc.interfaces(NODE, docker), null);
    await client.lxc.start(NODE, docker);
    await waitForSsh(await target(docker));
    await client.lxc.stop(NODE, docker);
    assert.equal(await client.lxc.interfaces(NODE, docker), null);
    const st = await client.lxc.status(NODE, docker);
    assert.equal(st.status, "stopped");
    assert.equal(st.uptime ?? 0, 0);
  });

  test("delete through the API removes the container, its files and mounts", async () => {
    assert.ok(docker > 0, "the Docker test made the guest");
    const name = backend.containerName(docker);
    const ctDir = join(stateDir, "lxc", name);
    assert.ok((await stat(ctDir)).isDirectory());
    await client.lxc.delete(NODE, docker);
    await assert.rejects(stat(ctDir), { code: "ENOENT" });
    assert.ok(!(await host(["lxc-ls", "-P", join(stateDir, "lxc"), "-1"])).split(/\s+/).includes(name));
    assert.ok(!(await readFile("/proc/mounts", "utf8")).includes(ctDir));
    await assert.rejects(client.lxc.status(NODE, docker), ProxmoxNotFoundError);
    assert.ok(!(await client.lxc.list(NODE)).some((c) => c.vmid === docker));
  });

  test("two containers created in parallel through the API get different ids and addresses, answer SSH and reach each other", async () => {
    // One with start=1 in the create, one created then started as the provider does.
    const [a, b] = await Promise.all([
      create({ hostname: "apple", start: true }),
      (async () => {
        const vmid = await create({ hostname: "banana" });
        await client.lxc.start(NODE, vmid);
        return vmid;
      })(),
    ]);
    assert.notEqual(a, b);
    const [ipA, ipB] = [await address(a), await address(b)];
    assert.notEqual(ipA, ipB);
    await Promise.all([a, b].map(async (vmid) => waitForSsh(await target(vmid))));
    assert.equal(await sh(a, "hostname"), "apple");
    assert.equal(await sh(b, "hostname"), "banana");
    // Guests on the bridge reach each other (the FORWARD rules let bridged traffic through).
    assert.equal(await sh(a, `ping -c1 -W2 ${ipB} >/dev/null && echo ok`), "ok");
  });

  test("a static ip= is used as given; a clashing or foreign one fails the create and leaves no container", async () => {
    const vmid = await create({ hostname: "static", net0: { name: "eth0", bridge: "vmbr0", ip: `${PREFIX}150/24`, gw: `${PREFIX}1` } });
    await client.lxc.start(NODE, vmid);
    assert.equal(await address(vmid), `${PREFIX}150`);
    await waitForSsh(await target(vmid));
    for (const [ip, why] of [[`${PREFIX}150/24`, /already in use/], ["192.0.2.77/24", /outside/]] as const) {
      const id = await client.cluster.nextId();
      await assert.rejects(create({ vmid: id, net0: { name: "eth0", bridge: "vmbr0", ip } }), (err: unknown) => {
        assert.ok(err instanceof ProxmoxTaskError, String(err));
        assert.match(err.message, why);
        return true;
      });
      await assert.rejects(client.lxc.status(NODE, id), ProxmoxNotFoundError);
    }
  });

  test("closing the sandbox leaves no container, bridge, link, iptables rule, mount, process or address", async () => {
    const where = { stateDir, bridge: BRIDGE, hostAddress: backend.hostAddress };
    assert.ok((await leftovers(where)).length > 0, "running guests count as leftovers before close");
    await sandbox.close();
    closed = true;
    assert.deepEqual(await leftovers(where), []);
    const rest = await readdir(stateDir).catch(() => []);
    assert.deepEqual(rest.filter((f) => f !== "registry.yml"), []);
  });
});
