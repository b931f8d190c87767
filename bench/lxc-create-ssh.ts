/**
 * Time from create to SSH answering with the lxc backend (root, LXC), with
 * the template already cached: create, start, and the first successful SSH
 * command with the injected key. Also the backend's own start and close.
 * `node bench/lxc-create-ssh.ts [ROUNDS]` (default 5).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLxcBackend } from "../src/sandbox/lxc/backend.ts";
import { hostKeyOf, makeKey, testSpec, waitForSsh } from "../test/sandbox/lxc/helpers.ts";

const rounds = Number(process.argv[2] ?? 5);
const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-bench-"));
const stateDir = join(dir, "state");
const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
try {
  const key = await makeKey(join(dir, "key"));
  let t = Date.now();
  const backend = await createLxcBackend({ stateDir, bridge: "hlsbxb0", subnet: "10.87.63.0/24" });
  console.log(`backend start (bridge, rules, lxcfs, registry, package cache; templates ${backend.templateBuild.built ? "built" : "cached"}): ${fmt(Date.now() - t)}`);
  const template = (await backend.listTemplates()).find((x) => x.volid.includes("12.7-1"));
  if (!template) throw new Error("no 12.7-1 template");
  const times: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const vmid = 200 + i;
      t = Date.now();
      await backend.create(testSpec(vmid, template, key.publicKey, { features: { nesting: true, keyctl: false } }));
      const created = Date.now() - t;
      await backend.start(vmid);
      const started = Date.now() - t;
      const inet = (await backend.interfaces(vmid))?.find((x) => x.name === "eth0")?.inet ?? "";
      await waitForSsh({ host: inet.split("/")[0] ?? "", privateKey: key.privateKey, hostKey: await hostKeyOf(stateDir, backend.containerName(vmid)) });
      const total = Date.now() - t;
      times.push(total);
      console.log(`round ${i + 1}: create ${fmt(created)}, running ${fmt(started)}, SSH answering ${fmt(total)}`);
      await backend.destroy(vmid);
    }
  } finally {
    t = Date.now();
    await backend.close();
    console.log(`backend close: ${fmt(Date.now() - t)}`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`create -> SSH: median ${fmt(sorted[Math.floor(sorted.length / 2)] ?? 0)}, max ${fmt(sorted.at(-1) ?? 0)} over ${rounds} rounds (target < 15 s)`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
