/**
 * End to end: what the lxc backend must do that the sandbox's API cannot
 * reach (root, LXC): cleaning up after a sandbox process killed with
 * SIGKILL (its guests, daemons, and its volumes, snapshots and backups, but
 * never a host folder bind-mounted into a guest), on the next start or by
 * `cleanUpLxcBackend` alone. The lifecycle
 * of guests (boot, SSH, limits, Docker, reboot, stop, delete, parallel
 * creates, close) is tested through the HTTPS API in
 * api-lifecycle.e2e.test.ts. Guests are reached only over the backend's own
 * bridge; nothing here talks to any other address.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanUpLxcBackend, createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import { ensureSandboxHost, host, leftovers, makeKey, testSpec } from "./helpers.ts";

describe("[root][lxc] lxc backend after a crash", { timeout: 20 * 60_000 }, () => {
  const bridge = "hlsbxt1";
  const subnet = "10.87.61.0/24";
  const hostAddress = "10.87.61.1";

  /** Runs a sandbox in a child process with one guest (a volume, a snapshot, a backup, a host folder mounted), then kills it with SIGKILL. */
  async function crashOne(dir: string, stateDir: string): Promise<void> {
    await mkdir(join(dir, "host-folder"), { recursive: true });
    await writeFile(join(dir, "host-folder", "mine.txt"), "the user's\n");
    const child = spawn(process.execPath, [join(import.meta.dirname, "fixtures/crash-child.ts"), stateDir, bridge, subnet, join(dir, "key/id_ed25519.pub"), join(dir, "host-folder")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => child.on("close", () => r()));
    const deadline = Date.now() + 5 * 60_000;
    while (!out.includes("ready") && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    if (!out.includes("ready")) child.kill("SIGKILL");
    assert.match(out, /ready hlsbxt1-300/, `child did not get ready (exit ${String(child.exitCode)}): ${err}`);
    child.kill("SIGKILL");
    await exited;
    const left = await leftovers({ stateDir, bridge, hostAddress });
    assert.ok(left.some((l) => l.startsWith("bridge")), `the killed sandbox left its bridge: ${left.join("; ")}`);
    assert.ok(left.some((l) => l.startsWith("running containers")), "and its guest");
    assert.ok(left.some((l) => l.startsWith("iptables")), "and its rules");
    assert.ok(left.some((l) => l.startsWith("process")), "and its registry and package cache");
    assert.ok(left.some((l) => /^process \d+: dockerd /.test(l)), "and its dockerd");
    assert.ok(left.some((l) => /^process \d+: containerd --config \/run\/homelab-sandbox\/hlsbxt1\//.test(l)), "and dockerd's containerd, which names only the run folder");
    for (const f of ["local-lvm/vm-300-disk-1/file", "local-lvm/.snap/before/vm-300-disk-1/file", "local/dump/vzdump-lxc-300-2025_01_01-00_00_00.tar.zst"]) {
      assert.ok(await exists(join(stateDir, "storage/pve-01", f)), `and ${f}`);
    }
  }

  const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

  /** Removes a test's folder; when the test failed before its clean-up, what the crashed sandbox left goes first, so the folder can go and the failure is the one reported. */
  async function removeCrashDir(dir: string, stateDir: string): Promise<void> {
    if ((await leftovers({ stateDir, bridge, hostAddress })).length > 0) await cleanUpLxcBackend({ stateDir, bridge }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch((e: unknown) => process.stderr.write(`could not remove ${dir}: ${String(e)}\n`));
  }

  /** What the clean-up must remove (the state folder's volumes, snapshots and backups) and must keep (the user's host folder). */
  async function assertStorageCleaned(dir: string, stateDir: string): Promise<void> {
    assert.ok(!(await exists(join(stateDir, "storage"))), "volumes, snapshots and backups are gone");
    assert.equal(await readFile(join(dir, "host-folder", "mine.txt"), "utf8"), "the user's\n", "a bind-mounted host folder is left alone");
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
      await assertStorageCleaned(dir, stateDir);
    } finally {
      await removeCrashDir(dir, stateDir);
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
      await assertStorageCleaned(dir, stateDir);
    } finally {
      await removeCrashDir(dir, stateDir);
    }
  });
});
