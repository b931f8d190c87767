/**
 * Proxmox client figures against a 3-node sandbox (memory backend):
 *  1. requests needed to load the inventory and plan N services (sandbox counters),
 *     next to what asking per service would cost;
 *  2. per-call overhead: median latency of GET /version through the client vs. a
 *     bare undici request on an equally configured dispatcher.
 * Usage: node bench/proxmox-client.ts [--services 50] [--calls 500]
 */
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { createProxmoxClient } from "../src/proxmox/client.ts";
import { parseApiToken } from "../src/proxmox/auth.ts";
import type { Inventory } from "../src/proxmox/inventory.ts";
import { templatesOnNode } from "../src/proxmox/inventory.ts";
import { startSandboxServer } from "../src/sandbox/server.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "50" }, calls: { type: "string", default: "500" } } });
const SERVICES = Number(values.services);
const CALLS = Number(values.calls);
const MiB = 1024 ** 2;

/** A stand-in for the planner: a debian >= 12 template and the node with the most free memory, from the snapshot only. */
function planAll(inventory: Inventory, count: number): Map<string, number> {
  const free = new Map(inventory.nodes.map((n) => [n.name, n.memFree]));
  const placed = new Map<string, number>();
  for (let i = 0; i < count; i += 1) {
    const need = 512 * MiB;
    const candidates = [...free.entries()]
      .filter(([node, mem]) => mem >= need && templatesOnNode(inventory, node).some((t) => t.name.includes("debian") && Number(t.version?.split(".")[0]) >= 12))
      .sort((a, b) => b[1] - a[1]);
    const chosen = candidates[0];
    if (!chosen) throw new Error(`service ${i}: no node fits`);
    free.set(chosen[0], chosen[1] - need);
    placed.set(chosen[0], (placed.get(chosen[0]) ?? 0) + 1);
  }
  return placed;
}

function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

const sb = await startSandboxServer({ port: 0, taskDurationMs: 5 });
const client = createProxmoxClient({ endpoint: sb.url, auth: parseApiToken(sb.token), tls: { fingerprint: sb.fingerprint } });
try {
  // Some existing guests, so the snapshot is not trivially empty.
  for (const node of ["pve-01", "pve-02", "pve-03"]) {
    for (let i = 0; i < 3; i += 1) {
      await client.lxc.create(node, { ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", rootfs: { storage: "local-lvm", sizeGb: 4 }, memory: 1024 }, { wait: { initialDelayMs: 5 } });
    }
  }

  sb.counters.reset();
  const inventory = await client.loadInventory();
  const placement = planAll(inventory, SERVICES);
  const snapshot = sb.counters.get();
  console.log(`inventory + plan of ${SERVICES} services on ${inventory.nodes.length} nodes (${inventory.guests.length} guests, ${inventory.templates.length} templates): ${total(snapshot)} requests`);
  for (const [route, n] of Object.entries(snapshot)) console.log(`  ${n} × ${route}`);
  console.log(`  placement: ${[...placement.entries()].map(([n, c]) => `${n}=${c}`).join(", ")}`);

  // For comparison: what asking the cluster per service would cost (node status and template list per node).
  sb.counters.reset();
  for (let i = 0; i < SERVICES; i += 1) {
    await Promise.all(inventory.nodes.map(async (n) => Promise.all([client.nodes.status(n.name), client.storage.templates(n.name, "local")])));
  }
  console.log(`per-service lookups instead (status + templates of each node): ${total(sb.counters.get())} requests`);

  // Per-call overhead.
  const bare = new Pool(sb.url, { connect: { ca: sb.caPem, maxCachedSessions: 0 }, connections: 1, allowH2: false });
  const authorization = `PVEAPIToken=${sb.token}`;
  const bareCall = async (): Promise<void> => {
    const res = await bare.request({ method: "GET", path: "/api2/json/version", headers: { authorization } });
    JSON.parse(await res.body.text());
  };
  const clientCall = async (): Promise<void> => {
    await client.version.get();
  };
  const time = async (fn: () => Promise<void>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  for (let i = 0; i < 100; i += 1) {
    await bareCall();
    await clientCall();
  }
  const viaBare: number[] = [];
  const viaClient: number[] = [];
  // Interleaved so drift (GC, CPU frequency) hits both alike.
  for (let i = 0; i < CALLS; i += 1) {
    viaBare.push(await time(bareCall));
    viaClient.push(await time(clientCall));
  }
  await bare.close();
  const mb = median(viaBare);
  const mc = median(viaClient);
  console.log(`GET /version, N=${CALLS}, sequential, keep-alive, sandbox on loopback:`);
  console.log(`  bare undici: median ${mb.toFixed(3)} ms, p90 ${quantile(viaBare, 0.9).toFixed(3)} ms`);
  console.log(`  client:      median ${mc.toFixed(3)} ms, p90 ${quantile(viaClient, 0.9).toFixed(3)} ms`);
  console.log(`  overhead per call: ${(mc - mb).toFixed(3)} ms (median difference)`);
} finally {
  await client.close();
  await sb.close();
}
