/**
 * A container's data operations in the lxc sandbox, through its HTTPS API
 * (root, LXC): a running guest with a 1 GiB volume filled with 1 GiB of
 * random data, then the time of each task from request to `stopped`:
 * snapshot (the guest frozen while its root and volume are copied),
 * rollback, vzdump (`snapshot` mode, zstd) and restore into a new guest, and
 * a reassign of the volume to another guest. Tasks take no extra time
 * (`taskDurationMs: 0`), so the figures are the backend's own work.
 * `node bench/sandbox-data.ts [SIZE_MIB]` (default 1024).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLxcBackend } from "../src/sandbox/lxc/backend.ts";
import { templateFileName } from "../src/sandbox/lxc/templates.ts";
import { startSandboxServer } from "../src/sandbox/server.ts";
import { TestClient } from "../test/sandbox/helpers.ts";

const sizeMib = Number(process.argv[2] ?? 1024);
const N = "pve-01";
const TEMPLATE = `local:vztmpl/${templateFileName("12.7-1")}`;
const dir = await mkdtemp(join(tmpdir(), "homelab-data-bench-"));
const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const backend = await createLxcBackend({ stateDir: join(dir, "state"), bridge: "hldat1", subnet: "10.87.96.0/24" });
const sandbox = await startSandboxServer({ backend, taskDurationMs: 0, stateDir: join(dir, "api") });
const c = new TestClient(sandbox);

/** Runs a task on N to its end; resolves to its milliseconds. */
const timed = (method: string, path: string, form: Record<string, string> = {}): Promise<number> => c.timedTask(N, method, path, form);

async function sh(vmid: number, command: string): Promise<string> {
  return (await backend.exec(vmid, ["sh", "-c", command])).stdout.trim();
}

try {
  await timed("POST", `/nodes/${N}/lxc`, { vmid: "100", ostemplate: TEMPLATE, rootfs: "local-lvm:4", mp0: `local-lvm:${Math.ceil(sizeMib / 1024)},mp=/data,backup=1`, net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
  await timed("POST", `/nodes/${N}/lxc/100/status/start`);
  let t = Date.now();
  await sh(100, `head -c ${sizeMib}M /dev/urandom > /data/fill && sync`);
  console.log(`fill: ${sizeMib} MiB of random data written into the volume in ${fmt(Date.now() - t)}`);
  const checksum = await sh(100, "md5sum /data/fill | cut -d' ' -f1");

  console.log(`snapshot (running guest frozen, root + ${sizeMib} MiB volume copied): ${fmt(await timed("POST", `/nodes/${N}/lxc/100/snapshot`, { snapname: "bench" }))}`);
  await sh(100, "echo changed > /data/fill");
  console.log(`rollback (guest stopped, root + volume copied back): ${fmt(await timed("POST", `/nodes/${N}/lxc/100/snapshot/bench/rollback`))}`);
  await timed("POST", `/nodes/${N}/lxc/100/status/start`);
  if ((await sh(100, "md5sum /data/fill | cut -d' ' -f1")) !== checksum) throw new Error("rollback did not bring the data back");
  await timed("DELETE", `/nodes/${N}/lxc/100/snapshot/bench`);

  const vzdump = await timed("POST", `/nodes/${N}/vzdump`, { vmid: "100", storage: "local", mode: "snapshot", compress: "zstd" });
  const [archive] = (await c.ok("GET", `/nodes/${N}/storage/local/content?content=backup&vmid=100`)) as { volid: string; size: number }[];
  if (!archive) throw new Error("no archive");
  console.log(`vzdump (snapshot mode: copy, then tar + zstd of root and volume): ${fmt(vzdump)}, archive ${(archive.size / 1024 ** 2).toFixed(0)} MiB`);
  const suspend = await timed("POST", `/nodes/${N}/vzdump`, { vmid: "100", storage: "local", mode: "suspend", compress: "zstd" });
  console.log(`vzdump (suspend mode: guest frozen while tar + zstd run): ${fmt(suspend)}`);

  console.log(`restore into a new guest (volumes allocated, archive unpacked): ${fmt(await timed("POST", `/nodes/${N}/lxc`, { vmid: "101", ostemplate: archive.volid, restore: "1", storage: "local-lvm" }))}`);
  await timed("POST", `/nodes/${N}/lxc/101/status/start`);
  if ((await sh(101, "md5sum /data/fill | cut -d' ' -f1")) !== checksum) throw new Error("the restored guest has other data");
  await timed("POST", `/nodes/${N}/lxc/101/status/stop`);

  await timed("POST", `/nodes/${N}/lxc/100/status/stop`);
  t = Date.now();
  await timed("POST", `/nodes/${N}/lxc/100/move_volume`, { volume: "mp0", "target-vmid": "101", "target-volume": "mp1" });
  console.log(`reassign of the ${sizeMib} MiB volume to another guest (a rename): ${fmt(Date.now() - t)}`);
} finally {
  c.close();
  const t = Date.now();
  await sandbox.close();
  console.log(`sandbox close (guests, volumes, snapshots, archives removed): ${fmt(Date.now() - t)}`);
  await rm(dir, { recursive: true, force: true });
}
