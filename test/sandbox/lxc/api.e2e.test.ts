/**
 * The lxc backend behind the sandbox's Proxmox-compatible HTTPS API, used the
 * way the tool uses it (root, LXC): templates listed as vztmpl content,
 * nextid + create with `start=1`, `interfaces` for the address, SSH with the
 * injected key, stop, delete, and nothing left after the sandbox closes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import { startSandboxServer } from "../../../src/sandbox/server.ts";
import { TestClient } from "../helpers.ts";
import { ensureSandboxHost, hostKeyOf, leftovers, makeKey, sshRun, waitForSsh } from "./helpers.ts";

const NODE = "pve-01";

test("[root][lxc] through the sandbox API: parallel creates get their own ids and addresses, boot, answer SSH; stop and delete are real", { timeout: 20 * 60_000 }, async (t) => {
  await ensureSandboxHost();
  const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-api-"));
  const stateDir = join(dir, "lxc-state");
  const bridge = "hlsbxt2";
  const backend = await createLxcBackend({ stateDir, bridge, subnet: "10.87.62.0/24" });
  const sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api") });
  const client = new TestClient(sandbox);
  try {
    const key = await makeKey(join(dir, "key"));
    const content = (await client.ok("GET", `/nodes/${NODE}/storage/local/content?content=vztmpl`)) as Array<{ volid: string }>;
    const volids = content.map((c) => c.volid);
    assert.ok(volids.includes("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"), volids.join(", "));
    assert.ok(volids.includes("local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst"));

    // As the tool does: take nextid, create; on an id race, take the next one.
    const createOne = async (hostname: string): Promise<{ vmid: number; ms: number }> => {
      const started = Date.now();
      for (let attempt = 0; attempt < 10; attempt++) {
        const vmid = Number(await client.ok("GET", "/cluster/nextid"));
        const a = await client.call("POST", `/nodes/${NODE}/lxc`, {
          form: {
            vmid: String(vmid),
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            hostname,
            memory: "512",
            cores: "1",
            rootfs: "local-lvm:8",
            unprivileged: "1",
            features: "nesting=1",
            net0: "name=eth0,bridge=vmbr0,ip=dhcp",
            "ssh-public-keys": key.publicKey,
            start: "1",
          },
        });
        if (a.status !== 200 && /already exists/.test(a.reason + a.text)) continue;
        assert.equal(a.status, 200, `${a.status} ${a.reason} ${a.text}`);
        const upid = (a.body as { data: string }).data;
        const task = await client.waitTask(NODE, upid, 120_000);
        assert.equal(task.exitstatus, "OK", JSON.stringify(task));
        const addr = await ipOf(vmid);
        await waitForSsh({ host: addr, privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) });
        return { vmid, ms: Date.now() - started };
      }
      throw new Error("could not get an id in 10 attempts");
    };
    const ipOf = async (vmid: number): Promise<string> => {
      const ifaces = (await client.ok("GET", `/nodes/${NODE}/lxc/${vmid}/interfaces`)) as Array<{ name: string; inet?: string }> | null;
      const inet = ifaces?.find((i) => i.name === "eth0")?.inet;
      assert.ok(inet, `interfaces of ${vmid}: ${JSON.stringify(ifaces)}`);
      return inet.split("/")[0] ?? "";
    };

    const [a, b] = await Promise.all([createOne("apple"), createOne("banana")]);
    t.diagnostic(`create request -> SSH answering: ${a.ms} ms and ${b.ms} ms (two in parallel)`);
    assert.notEqual(a.vmid, b.vmid);
    const [ipA, ipB] = [await ipOf(a.vmid), await ipOf(b.vmid)];
    assert.notEqual(ipA, ipB);
    const hostname = await sshRun({ host: ipA, privateKey: key.privateKey }, "hostname");
    assert.equal(hostname.stdout.trim(), "apple");

    // The API still reports what was asked, though the guest runs privileged underneath.
    const config = (await client.ok("GET", `/nodes/${NODE}/lxc/${a.vmid}/config`)) as Record<string, unknown>;
    assert.equal(config["unprivileged"], 1);
    assert.equal(config["features"], "nesting=1");

    const stop = await client.ok("POST", `/nodes/${NODE}/lxc/${a.vmid}/status/stop`);
    assert.equal((await client.waitTask(NODE, stop, 60_000)).exitstatus, "OK");
    assert.equal(await client.ok("GET", `/nodes/${NODE}/lxc/${a.vmid}/interfaces`), null);
    const current = (await client.ok("GET", `/nodes/${NODE}/lxc/${a.vmid}/status/current`)) as { status: string };
    assert.equal(current.status, "stopped");

    const del = await client.ok("DELETE", `/nodes/${NODE}/lxc/${a.vmid}`);
    assert.equal((await client.waitTask(NODE, del, 60_000)).exitstatus, "OK");
    await assert.rejects(stat(join(stateDir, "lxc", backend.containerName(a.vmid))), { code: "ENOENT" });
  } finally {
    client.close();
    await sandbox.close();
    await backend.close();
  }
  try {
    assert.deepEqual(await leftovers({ stateDir, bridge, hostAddress: backend.hostAddress }), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
