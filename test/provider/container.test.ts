import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ContainerInputs } from "../../src/plan/types.ts";
import type { HomelabProvider } from "../../src/provider/provider.ts";
import { resourceType } from "../../src/provider/provider.ts";
import { KnownHosts } from "../../src/provision/ssh.ts";
import { FAST, URN, inputs, startWorld } from "./helpers.ts";
import type { World } from "./helpers.ts";

type Bag = Record<string, unknown>;

/** check then create, as the engine does; returns the id and outputs. */
async function createChecked(p: HomelabProvider, news: ContainerInputs): Promise<{ id: string; outs: Bag }> {
  const checked = await p.check(URN, {}, news);
  assert.deepEqual(checked.failures ?? [], []);
  const created = await p.create(URN, checked.inputs);
  return { id: created.id, outs: created.outs as Bag };
}

function errorOf(e: unknown): Error & { id?: string; reasons?: string[] } {
  assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
  return e;
}

void describe("homelab:proxmox:Container against the sandbox", () => {
  let world: World;
  let p: HomelabProvider;
  before(async () => {
    world = await startWorld();
    p = world.provider();
  });
  after(() => world.close());

  void it("routes by the URN's type", () => {
    assert.equal(resourceType(URN), "homelab:proxmox:Container");
    assert.equal(resourceType("urn:pulumi:s::p::my:Parent$homelab:proxmox:Container::x"), "homelab:proxmox:Container");
  });

  void it("refuses a type it does not serve", async () => {
    await assert.rejects(p.check("urn:pulumi:s::p::homelab:proxmox:VirtualMachine::x", {}, {}), /no resource type "homelab:proxmox:VirtualMachine" \(it serves homelab:proxmox:Container, homelab:docker:Image, homelab:compose:Deployment\)/);
  });

  void it("create applies every input, starts the container and reports its address", async () => {
    const want = inputs({ hostname: "apply", ip: "10.20.0.11/24", tags: ["Web", "homelab"] });
    const { id, outs } = await createChecked(p, want);
    const vmid = Number(id);
    assert.equal(outs["vmid"], vmid);
    assert.equal(outs["address"], "10.20.0.11");
    assert.equal(outs["node"], "pve-01");
    const config = await world.admin.lxc.config("pve-01", vmid);
    assert.equal(config.hostname, "apply");
    assert.equal(config.memory, 512);
    assert.equal(config.swap, 256);
    assert.equal(config.cores, 1);
    assert.equal(config.description, want.description);
    assert.deepEqual(config.tags, ["homelab", "web"]);
    assert.deepEqual(config.features, { nesting: true });
    assert.equal(config.unprivileged, true);
    assert.equal(config.onboot, true);
    assert.equal(config.protection, false);
    assert.equal(config.rootfs?.volume.startsWith("local-lvm:"), true);
    assert.equal(config.rootfs?.size, "4G");
    assert.deepEqual({ ...config.net[0], hwaddr: "" }, { name: "eth0", bridge: "vmbr0", gw: "10.20.0.1", hwaddr: "", ip: "10.20.0.11/24", type: "veth" });
    assert.equal((await world.admin.lxc.status("pve-01", vmid)).status, "running");
    assert.deepEqual(outs["tags"], ["homelab", "web"]);
    assert.equal(outs["sshPublicKeys"], want.sshPublicKeys);
    await p.delete(id, URN, outs);
  });

  void it("create with dhcp waits for the lease", async () => {
    const { id, outs } = await createChecked(p, inputs({ hostname: "leased", ip: "dhcp", gateway: undefined }));
    assert.match(String(outs["address"]), /^10\.10\.0\.\d+$/);
    assert.equal("gateway" in outs, false);
    await p.delete(id, URN, outs);
  });

  void it("read reports the live container, and drift made behind its back", async () => {
    const want = inputs({ hostname: "drift", ip: "10.20.0.12/24" });
    const { id, outs } = await createChecked(p, want);
    const first = await p.read(id, URN, outs);
    assert.equal(first.id, id);
    assert.deepEqual(first.props, outs);
    assert.equal((await p.diff(id, URN, first.props, want)).changes, false);

    await world.admin.lxc.updateConfig("pve-01", Number(id), { memory: 1024, tags: ["homelab", "drift", "manual"], onboot: false });
    const drifted = await p.read(id, URN, first.props);
    const props = drifted.props as Bag;
    assert.equal(props["memory"], 1024);
    assert.deepEqual(props["tags"], ["drift", "homelab", "manual"]);
    assert.equal(props["onBoot"], false);
    assert.equal((drifted.inputs as Bag)["memory"], 1024);
    assert.equal("vmid" in (drifted.inputs as Bag), false);
    const d = await p.diff(id, URN, drifted.props, want);
    assert.deepEqual(d, { changes: true, replaces: [], deleteBeforeReplace: false });

    // The update that follows brings it back.
    await p.update(id, URN, drifted.props, want);
    const config = await world.admin.lxc.config("pve-01", Number(id));
    assert.equal(config.memory, 512);
    assert.equal(config.onboot, true);
    await p.delete(id, URN, outs);
  });

  void it("read finds a container that is no longer on the node the state names", async () => {
    const { id, outs } = await createChecked(p, inputs({ hostname: "moved", ip: "10.20.0.13/24" }));
    const r = await p.read(id, URN, { ...outs, node: "pve-02" });
    assert.equal(r.id, id);
    assert.equal((r.props as Bag)["node"], "pve-01");
    await p.delete(id, URN, outs);
  });

  void it("update changes in place, keeps the vmid, and restarts for hostname and features", async () => {
    const want = inputs({ hostname: "inplace", ip: "10.20.0.14/24" });
    const { id, outs } = await createChecked(p, want);
    const changed = inputs({ hostname: "inplace-2", ip: "10.20.0.15/24", gateway: "10.20.0.1", memory: 768, swap: 0, cores: 2, tags: ["homelab", "other"], description: "new notes", nesting: false, onBoot: false });
    const diff = await p.diff(id, URN, outs, changed);
    assert.deepEqual(diff.replaces, []);
    assert.equal(diff.changes, true);
    const shutdowns = world.sandbox.counters.get()["POST /nodes/{node}/lxc/{vmid}/status/shutdown"] ?? 0;
    const updated = await p.update(id, URN, outs, changed);
    const after = updated.outs as Bag;
    assert.equal(after["vmid"], Number(id));
    assert.equal(after["address"], "10.20.0.15");
    assert.equal(after["hostname"], "inplace-2");
    const config = await world.admin.lxc.config("pve-01", Number(id));
    assert.equal(config.hostname, "inplace-2");
    assert.equal(config.memory, 768);
    assert.equal(config.swap, 0);
    assert.equal(config.cores, 2);
    assert.equal(config.description, "new notes");
    assert.deepEqual(config.tags, ["homelab", "other"]);
    assert.deepEqual(config.features, {});
    assert.equal(config.onboot, false);
    assert.equal(config.net[0]?.ip, "10.20.0.15/24");
    assert.equal(config.net[0]?.hwaddr, (await world.admin.lxc.config("pve-01", Number(id))).net[0]?.hwaddr);
    assert.equal((world.sandbox.counters.get()["POST /nodes/{node}/lxc/{vmid}/status/shutdown"] ?? 0) - shutdowns, 1);
    assert.equal((await world.admin.lxc.status("pve-01", Number(id))).status, "running");
    assert.deepEqual(await world.containersNamed("inplace-2"), [Number(id)]);

    // A memory-only change does not restart.
    const shutdownsBefore = world.sandbox.counters.get()["POST /nodes/{node}/lxc/{vmid}/status/shutdown"] ?? 0;
    await p.update(id, URN, after, { ...changed, memory: 640 });
    assert.equal(world.sandbox.counters.get()["POST /nodes/{node}/lxc/{vmid}/status/shutdown"] ?? 0, shutdownsBefore);
    assert.equal((await world.admin.lxc.config("pve-01", Number(id))).memory, 640);
    await p.delete(id, URN, after);
  });

  void it("update starts a container found stopped", async () => {
    const { id, outs } = await createChecked(p, inputs({ hostname: "stopped", ip: "10.20.0.16/24" }));
    await world.admin.lxc.stop("pve-01", Number(id));
    const updated = await p.update(id, URN, outs, inputs({ hostname: "stopped", ip: "10.20.0.16/24" }));
    assert.equal((updated.outs as Bag)["address"], "10.20.0.16");
    assert.equal((await world.admin.lxc.status("pve-01", Number(id))).status, "running");
    await p.delete(id, URN, updated.outs);
  });

  void it("diff asks to replace for what Proxmox cannot change, deleting first on a shared static address", async () => {
    const olds = { ...inputs(), vmid: 100, address: "10.20.0.5" };
    assert.deepEqual(await p.diff("100", URN, olds, inputs({ template: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst" })), {
      changes: true,
      replaces: ["template"],
      deleteBeforeReplace: true,
    });
    assert.deepEqual(await p.diff("100", URN, olds, inputs({ node: "pve-02", ip: "10.20.0.6/24" })), { changes: true, replaces: ["node"], deleteBeforeReplace: false });
    assert.deepEqual(await p.diff("100", URN, olds, inputs({ sshPublicKeys: "ssh-ed25519 AAAAnother" })), { changes: false, replaces: [], deleteBeforeReplace: false });
  });

  void it("delete refuses a container under Proxmox protection, with the fix; it goes once protection is off", async () => {
    const want = inputs({ hostname: "guarded", ip: "10.20.0.17/24", protection: true });
    const { id, outs } = await createChecked(p, want);
    assert.equal((await world.admin.lxc.config("pve-01", Number(id))).protection, true);
    await assert.rejects(p.delete(id, URN, outs), (e: unknown) => {
      const err = errorOf(e);
      assert.match(err.message, /protection on/);
      assert.match(err.message, /protect: false/);
      assert.match(err.message, /homelab deploy/);
      return true;
    });
    assert.equal((await world.admin.lxc.status("pve-01", Number(id))).status, "running");
    const unguarded = await p.update(id, URN, outs, { ...want, protection: false });
    assert.equal((await world.admin.lxc.config("pve-01", Number(id))).protection, false);
    await p.delete(id, URN, unguarded.outs);
    assert.deepEqual(await world.containersNamed("guarded"), []);
  });

  void it("delete stops and destroys; a container already gone is success and read reports it gone", async () => {
    const { id, outs } = await createChecked(p, inputs({ hostname: "doomed", ip: "10.20.0.18/24" }));
    const destroys = world.sandbox.counters.get()["DELETE /nodes/{node}/lxc/{vmid}"] ?? 0;
    await p.delete(id, URN, outs);
    assert.equal((world.sandbox.counters.get()["DELETE /nodes/{node}/lxc/{vmid}"] ?? 0) - destroys, 1);
    assert.deepEqual(await world.containersNamed("doomed"), []);
    await p.delete(id, URN, outs);
    assert.deepEqual(await p.read(id, URN, outs), { id: "", props: {} });
    await assert.rejects(p.update(id, URN, outs, inputs({ hostname: "doomed", ip: "10.20.0.18/24" })), /no longer exists.*deploy --refresh/);
  });

  void it("delete and a changed address forget the container's pinned SSH host key, and only its own", async () => {
    const file = join(world.root, ".homelab", "ssh", "test", "known_hosts");
    await mkdir(join(world.root, ".homelab", "ssh", "test"), { recursive: true });
    const key = { type: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIKo2b7dTUrlgvEvSbbV9xvc7W5oEXAMPLEKEYONLY" };
    const kh = new KnownHosts(file);
    for (const a of ["10.20.0.31", "10.20.0.32", "10.20.0.33"]) await kh.pin(a, 22, key);
    const { id, outs } = await createChecked(p, inputs({ hostname: "pinned", ip: "10.20.0.31/24" }));
    // A new static address: the old one is no longer this container's.
    const moved = await p.update(id, URN, outs, inputs({ hostname: "pinned", ip: "10.20.0.32/24" }));
    assert.equal((moved.outs as Bag)["address"], "10.20.0.32");
    assert.equal(await kh.lookup("10.20.0.31"), undefined);
    assert.deepEqual(await kh.lookup("10.20.0.32"), key);
    await p.delete(id, URN, moved.outs);
    assert.equal(await kh.lookup("10.20.0.32"), undefined);
    assert.deepEqual(await kh.lookup("10.20.0.33"), key, "other containers' keys stay");
    assert.match(await readFile(file, "utf8"), /^10\.20\.0\.33 ssh-ed25519 /);
  });

  void it("leaves alone a container that now holds the id but is not its own", async () => {
    const { id, outs } = await createChecked(p, inputs({ hostname: "mine", ip: "10.20.0.19/24" }));
    await world.admin.lxc.updateConfig("pve-01", Number(id), { hostname: "stranger", description: "someone else's" });
    assert.deepEqual(await p.read(id, URN, outs), { id: "", props: {} });
    await p.delete(id, URN, outs);
    assert.deepEqual(await world.containersNamed("stranger"), [Number(id)]);
    await world.admin.lxc.stop("pve-01", Number(id));
    await world.admin.lxc.delete("pve-01", Number(id), { purge: true });
  });

  void it("keyctl with a token fails in check, naming the fixes", async () => {
    const r = await p.check(URN, {}, inputs({ keyctl: true }));
    assert.equal(r.failures?.length, 1);
    assert.equal(r.failures?.[0]?.property, "keyctl");
    const reason = r.failures?.[0]?.reason ?? "";
    assert.match(reason, /need root@pam/);
    assert.match(reason, /authenticates as root@pam!homelab/);
    assert.match(reason, /password_file/);
    assert.match(reason, /Pulumi\.test\.yaml/);
    assert.match(reason, /nesting only/);

    const privileged = await p.check(URN, {}, inputs({ unprivileged: false, nesting: true }));
    assert.equal(privileged.failures?.[0]?.property, "nesting");
    assert.match(privileged.failures?.[0]?.reason ?? "", /privileged container/);

    // Flags a container already has need no permission to keep.
    const kept = await p.check(URN, inputs({ keyctl: true }), inputs({ keyctl: true, memory: 1024 }));
    assert.deepEqual(kept.failures, []);
    assert.deepEqual((await p.check(URN, {}, inputs({ nesting: true, keyctl: false }))).failures, []);
    // Turning keyctl off is a change only root@pam may make too, as is any flag of a privileged container.
    const off = await p.check(URN, inputs({ keyctl: true }), inputs({ keyctl: false }));
    assert.equal(off.failures?.[0]?.property, "keyctl");
    assert.match(off.failures?.[0]?.reason ?? "", /changing the features to nesting=1 need root@pam/);
    const privilegedOff = await p.check(URN, inputs({ unprivileged: false, nesting: true }), inputs({ unprivileged: false, nesting: false }));
    assert.equal(privilegedOff.failures?.[0]?.property, "nesting");
    // A replacement creates anew, so flags kept from before need root@pam again.
    const replaced = await p.check(URN, inputs({ keyctl: true }), inputs({ keyctl: true, template: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst" }));
    assert.equal(replaced.failures?.[0]?.property, "keyctl");
  });

  void it("check reports invalid inputs by property without needing the cluster", async () => {
    const r = await p.check(URN, {}, { ...inputs(), memory: "lots", hostname: "no_underscores" });
    assert.deepEqual(new Set(r.failures?.map((f) => f.property)), new Set(["memory", "hostname"]));
  });

  void it("two creates at once get different ids, each exactly one container", async () => {
    const a = world.provider();
    const b = world.provider();
    const [x, y] = await Promise.all([createChecked(a, inputs({ hostname: "twin-a", ip: "10.20.0.21/24" })), createChecked(b, inputs({ hostname: "twin-b", ip: "10.20.0.22/24" }))]);
    assert.notEqual(x.id, y.id);
    assert.deepEqual(await world.containersNamed("twin-a"), [Number(x.id)]);
    assert.deepEqual(await world.containersNamed("twin-b"), [Number(y.id)]);
    await Promise.all([a.delete(x.id, URN, x.outs), b.delete(y.id, URN, y.outs)]);
  });
});

void describe("root@pam password credentials", () => {
  let world: World;
  before(async () => {
    world = await startWorld({ rootPassword: true });
  });
  after(() => world.close());

  void it("let check pass keyctl and create sets it with root@pam, while the token does the rest", async () => {
    const p = world.provider();
    const want = inputs({ hostname: "docker", keyctl: true, ip: "10.20.0.30/24" });
    const { id, outs } = await createChecked(p, want);
    assert.deepEqual((await world.admin.lxc.config("pve-01", Number(id))).features, { nesting: true, keyctl: true });
    // Turning keyctl off needs root@pam too; the update uses it for that.
    const off = await p.update(id, URN, outs, { ...want, keyctl: false });
    assert.deepEqual((await world.admin.lxc.config("pve-01", Number(id))).features, { nesting: true });
    assert.equal((off.outs as Bag)["keyctl"], false);
    const privileged = await createChecked(p, inputs({ hostname: "privileged", unprivileged: false, nesting: true, ip: "10.20.0.31/24" }));
    const config = await world.admin.lxc.config("pve-01", Number(privileged.id));
    assert.equal(config.unprivileged, false);
    assert.deepEqual(config.features, { nesting: true });
    await p.delete(id, URN, off.outs);
    await p.delete(privileged.id, URN, privileged.outs);
  });
});

void describe("failures say what to do and leave nothing behind", () => {
  let world: World;
  before(async () => {
    world = await startWorld({ sandbox: { dhcpDelayMs: 60_000 } });
  });
  after(() => world.close());

  void it("without HOMELAB_ROOT and HOMELAB_ENV the provider says how it is meant to run", async () => {
    const p = world.provider({ env: {} });
    await assert.rejects(p.create(URN, inputs()), /needs HOMELAB_ROOT and HOMELAB_ENV.*homelab deploy/);
    await assert.rejects(p.check(URN, {}, inputs({ keyctl: true })), /HOMELAB_ROOT/);
  });

  void it("an unknown environment is named", async () => {
    const p = world.provider({ env: { ...world.env, HOMELAB_ENV: "nope" } });
    await assert.rejects(p.create(URN, inputs()), /environment "nope"/);
  });

  void it("a missing token file is named, and a wrong secret never appears in the error", async () => {
    const secretFile = join(world.root, "token-secret");
    await rm(secretFile);
    try {
      await assert.rejects(world.provider().create(URN, inputs()), /cannot read token_secret_file .*token-secret \(ENOENT\)/);
      const wrong = "0badf00d-0000-4000-8000-000000000000";
      await writeFile(secretFile, wrong + "\n", { mode: 0o600 });
      await assert.rejects(world.provider().create(URN, inputs({ hostname: "badauth" })), (e: unknown) => {
        const err = errorOf(e);
        assert.match(err.message, /authentication failed/);
        assert.equal(err.message.includes(wrong), false);
        return true;
      });
    } finally {
      await writeFile(secretFile, world.sandbox.tokenSecret + "\n", { mode: 0o600 });
    }
    assert.deepEqual(await world.containersNamed("badauth"), []);
  });

  void it("a token read once per process; a rotated secret is read by the next process", async () => {
    const p = world.provider();
    const { id, outs } = await createChecked(p, inputs({ hostname: "rotate", ip: "10.20.0.40/24" }));
    await writeFile(join(world.root, "token-secret"), "not-the-secret-anymore\n");
    try {
      // A new plugin process (a new provider) reads the file again, and fails with the wrong secret.
      await assert.rejects(world.provider().read(id, URN, outs), /authentication failed/);
    } finally {
      await writeFile(join(world.root, "token-secret"), world.sandbox.tokenSecret + "\n", { mode: 0o600 });
    }
    await world.provider().delete(id, URN, outs);
    assert.deepEqual(await world.containersNamed("rotate"), []);
  });

  void it("an unknown node or template fails before anything exists", async () => {
    const p = world.provider();
    await assert.rejects(p.create(URN, inputs({ hostname: "nowhere", node: "pve-09" })), /creating container nowhere on pve-09: .*pve-09/);
    await assert.rejects(p.create(URN, inputs({ hostname: "notemplate", template: "local:vztmpl/nothing_1.0_amd64.tar.zst" })), /nothing_1\.0_amd64/);
    assert.deepEqual(await world.containersNamed("nowhere"), []);
    assert.deepEqual(await world.containersNamed("notemplate"), []);
  });

  void it("a container that cannot start is removed, and the error says so", async () => {
    const p = world.provider();
    await assert.rejects(p.create(URN, inputs({ hostname: "nobridge", bridge: "vmbr9", ip: "10.20.0.41/24" })), (e: unknown) => {
      const err = errorOf(e);
      assert.match(err.message, /vmbr9/);
      assert.match(err.message, /removed/);
      assert.equal(err.id, undefined);
      return true;
    });
    assert.deepEqual(await world.containersNamed("nobridge"), []);
  });

  void it("an address that never comes is a clear timeout, and the container is removed", async () => {
    const p = world.provider({ timeouts: { ...FAST, addressMs: 300 } });
    await assert.rejects(p.create(URN, inputs({ hostname: "nolease", ip: "dhcp", gateway: undefined })), /no IPv4 address on eth0 .*DHCP server on bridge vmbr0/);
    assert.deepEqual(await world.containersNamed("nolease"), []);
  });
});

void describe("injected faults: create succeeds or fails cleanly, never two containers", () => {
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(() => world.close());

  async function outcome(p: HomelabProvider, want: ContainerInputs): Promise<{ id: string | undefined; error: (Error & { id?: string }) | undefined }> {
    try {
      const r = await createChecked(p, want);
      return { id: r.id, error: undefined };
    } catch (e) {
      const error = errorOf(e);
      return { id: error.id, error };
    }
  }

  void it("5xx on half the reads: everything still works", async () => {
    const p = world.provider();
    const reads = ["config", "status/current", "interfaces"].map((s) => `GET /nodes/{node}/lxc/{vmid}/${s}`);
    world.sandbox.faults.set({ errorRate: 0.5, routes: [...reads, "GET /nodes/{node}/tasks/{upid}/status", "GET /cluster/nextid", "GET /cluster/resources"] });
    try {
      const want = inputs({ hostname: "flaky-reads", ip: "10.20.0.50/24" });
      const { id, outs } = await createChecked(p, want);
      const r = await p.read(id, URN, outs);
      assert.equal(r.id, id);
      const u = await p.update(id, URN, outs, { ...want, memory: 1024 });
      assert.equal((u.outs as Bag)["memory"], 1024);
      await p.delete(id, URN, u.outs);
    } finally {
      world.sandbox.faults.clear();
    }
    assert.deepEqual(await world.containersNamed("flaky-reads"), []);
  });

  void it("failing create and start tasks: each create succeeds once or leaves nothing", async () => {
    const p = world.provider();
    world.sandbox.faults.set({ taskFailRate: 0.5, taskTypes: ["vzcreate", "vzstart"] });
    const results: { hostname: string; id: string | undefined; failed: boolean }[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const hostname = `taskfail-${i}`;
        const r = await outcome(p, inputs({ hostname, ip: `10.20.1.${i + 1}/24` }));
        results.push({ hostname, id: r.id, failed: r.error !== undefined });
        if (r.error) assert.match(r.error.message, /creating container taskfail-\d/);
      }
    } finally {
      world.sandbox.faults.clear();
    }
    assert.ok(results.some((r) => r.failed), "the fault should make some creates fail");
    assert.ok(results.some((r) => !r.failed), "some creates should succeed");
    for (const r of results) {
      const found = await world.containersNamed(r.hostname);
      if (r.failed && r.id === undefined) assert.deepEqual(found, [], `${r.hostname} failed but left a container`);
      else assert.deepEqual(found, [Number(r.id)], `${r.hostname}: exactly its own container`);
    }
  });

  void it("a create task slower than the wait is recorded as partial, and the next update finishes it", async () => {
    const slow = world.provider({ timeouts: { ...FAST, taskMs: 200 } });
    world.sandbox.faults.set({ taskDelayMs: 1200, taskTypes: ["vzcreate"] });
    const want = inputs({ hostname: "slowpoke", ip: "10.20.0.51/24" });
    let failure: Error & { id?: string; properties?: Bag };
    try {
      const r = await outcome(slow, want);
      assert.ok(r.error, "the create should not finish within 200 ms");
      failure = r.error;
    } finally {
      world.sandbox.faults.clear();
    }
    assert.match(failure.message, /still locked \(create\) 0\.2 s after its creation began/);
    assert.match(failure.message, /next deploy/);
    assert.ok(failure.id !== undefined, "the error carries the id so the engine records the container");
    // Still being created: Proxmox shows no hostname yet, but the id is taken.
    assert.equal((await world.admin.lxc.config("pve-01", Number(failure.id))).lock, "create");
    // A refresh meanwhile keeps what the state says.
    const during = await world.provider().read(failure.id, URN, failure.properties ?? {});
    assert.deepEqual(during, { id: failure.id, props: failure.properties });
    const p = world.provider();
    const u = await p.update(failure.id, URN, failure.properties ?? {}, want);
    assert.equal((u.outs as Bag)["address"], "10.20.0.51");
    assert.equal((await world.admin.lxc.status("pve-01", Number(failure.id))).status, "running");
    assert.deepEqual(await world.containersNamed("slowpoke"), [Number(failure.id)]);
    await p.delete(failure.id, URN, u.outs);
  });

  void it("dropped create and start requests are repeated (create with the same id): one container each", async () => {
    const p = world.provider();
    const count = (route: string): number => world.sandbox.counters.get()[route] ?? 0;
    const creates = count("POST /nodes/{node}/lxc");
    const starts = count("POST /nodes/{node}/lxc/{vmid}/status/start");
    // Every second request of these routes is cut: a's start, b's first create, b's start.
    world.sandbox.faults.set({ dropRate: 0.5, routes: ["POST /nodes/{node}/lxc", "POST /nodes/{node}/lxc/{vmid}/status/start"] });
    const made: { id: string; outs: Bag }[] = [];
    try {
      made.push(await createChecked(p, inputs({ hostname: "dropped-a", ip: "10.20.0.52/24" })));
      made.push(await createChecked(p, inputs({ hostname: "dropped-b", ip: "10.20.0.56/24" })));
    } finally {
      world.sandbox.faults.clear();
    }
    assert.equal(count("POST /nodes/{node}/lxc") - creates, 3);
    assert.equal(count("POST /nodes/{node}/lxc/{vmid}/status/start") - starts, 4);
    assert.deepEqual(await world.containersNamed("dropped-a"), [Number(made[0]?.id)]);
    assert.deepEqual(await world.containersNamed("dropped-b"), [Number(made[1]?.id)]);
    for (const m of made) await p.delete(m.id, URN, m.outs);
  });

  void it("every create request dropped or refused: a clean failure, nothing made", async () => {
    const p = world.provider();
    world.sandbox.faults.set({ dropRate: 1, routes: ["POST /nodes/{node}/lxc"] });
    try {
      await assert.rejects(p.create(URN, inputs({ hostname: "unreachable", ip: "10.20.0.53/24" })), /creating container unreachable/);
    } finally {
      world.sandbox.faults.clear();
    }
    world.sandbox.faults.set({ errorRate: 1, routes: ["POST /nodes/{node}/lxc"] });
    try {
      await assert.rejects(p.create(URN, inputs({ hostname: "refused", ip: "10.20.0.54/24" })), /injected fault/);
    } finally {
      world.sandbox.faults.clear();
    }
    assert.deepEqual(await world.containersNamed("unreachable"), []);
    assert.deepEqual(await world.containersNamed("refused"), []);
  });

  void it("failing destroy tasks: delete retries until the container is gone", async () => {
    const p = world.provider();
    const { id, outs } = await createChecked(p, inputs({ hostname: "sticky", ip: "10.20.0.55/24" }));
    world.sandbox.faults.set({ taskFailRate: 0.5, taskTypes: ["vzdestroy", "vzshutdown"] });
    try {
      await p.delete(id, URN, outs);
    } finally {
      world.sandbox.faults.clear();
    }
    assert.deepEqual(await world.containersNamed("sticky"), []);
  });
});
