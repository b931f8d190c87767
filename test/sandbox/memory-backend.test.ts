import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GuestSpec } from "../../src/sandbox/guest-backend.ts";
import { MemoryBackend, defaultTemplates } from "../../src/sandbox/memory-backend.ts";

function spec(vmid: number, ip: string): GuestSpec {
  const template = defaultTemplates()[2];
  if (!template) throw new Error("no template");
  return {
    vmid,
    node: "pve-01",
    hostname: `ct${vmid}`,
    template,
    rootfs: { node: "pve-01", storage: "local-lvm", name: `vm-${vmid}-disk-0` },
    mounts: [],
    memoryMb: 1024,
    swapMb: 512,
    cores: 2,
    diskGb: 8,
    net: [{ name: "eth0", bridge: "vmbr0", hwaddr: "BC:24:11:00:00:01", ip }],
    sshPublicKeys: "",
    unprivileged: true,
    features: { nesting: true, keyctl: false },
  };
}

describe("memory guest backend", () => {
  it("lists the Debian and Ubuntu templates of `local`", async () => {
    const names = (await new MemoryBackend().listTemplates()).map((t) => t.volid);
    assert.ok(names.includes("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"));
    assert.ok(names.includes("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"));
    assert.ok(names.every((n) => n.endsWith("_amd64.tar.zst")));
  });

  it("follows a guest's life: stopped, running with uptime and memory, live updates, destroyed", async () => {
    let now = 1_000_000;
    const b = new MemoryBackend({ clock: () => now, dhcpDelayMs: 5000 });
    await b.create(spec(100, "dhcp"));
    await assert.rejects(b.create(spec(100, "dhcp")));
    assert.deepEqual(await b.status(100), { running: false, uptime: 0, mem: 0 });
    assert.equal(await b.interfaces(100), null);
    await b.start(100);
    now += 3000;
    const st = await b.status(100);
    assert.equal(st.running, true);
    assert.equal(st.uptime, 3);
    const before = st.mem;
    await b.update(100, { memoryMb: 4096 });
    assert.ok((await b.status(100)).mem > before);
    const early = await b.interfaces(100);
    assert.equal(early?.find((i) => i.name === "eth0")?.inet, undefined, "no lease yet");
    assert.equal(early?.find((i) => i.name === "lo")?.inet, "127.0.0.1/8");
    now += 2000;
    const lease = (await b.interfaces(100))?.find((i) => i.name === "eth0")?.inet;
    assert.match(lease ?? "", /^10\.10\.0\.\d+\/24$/);
    assert.equal((await b.interfaces(100))?.find((i) => i.name === "eth0")?.inet, lease, "the lease is stable");
    await b.stop(100);
    assert.equal(await b.interfaces(100), null);
    await b.destroy(100);
    await assert.rejects(b.status(100), /no guest 100/);
  });

  it("a static address shows at once", async () => {
    const b = new MemoryBackend({ dhcpDelayMs: 60_000 });
    await b.create(spec(101, "192.0.2.10/24"));
    await b.start(101);
    assert.equal((await b.interfaces(101))?.find((i) => i.name === "eth0")?.inet, "192.0.2.10/24");
  });
});
