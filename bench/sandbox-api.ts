/**
 * Sandbox API figures: requests per second for a cheap GET and for
 * `GET /cluster/resources` with many guests, over keep-alive HTTPS, and
 * the latency of a create -> start -> stop -> delete cycle with zero-length
 * tasks (the sandbox's own overhead, not a simulated Proxmox's).
 * Usage: node bench/sandbox-api.ts [--seconds N] [--guests N] [--concurrency N]
 */
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { startSandboxServer } from "../src/sandbox/server.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "3" }, guests: { type: "string", default: "200" }, concurrency: { type: "string", default: "8" } } });
const SECONDS = Number(values.seconds);
const GUESTS = Number(values.guests);
const CONCURRENCY = Number(values.concurrency);

const sb = await startSandboxServer({ taskDurationMs: 0 });
const agent = new Agent({ connect: { ca: sb.caPem }, connections: CONCURRENCY, pipelining: 1 });
const headers = { authorization: `PVEAPIToken=${sb.token}` };

async function call(method: "GET" | "POST" | "DELETE", path: string, form?: Record<string, string>): Promise<unknown> {
  const res = await request(`${sb.url}/api2/json${path}`, {
    method,
    headers: form ? { ...headers, "content-type": "application/x-www-form-urlencoded" } : headers,
    body: form ? new URLSearchParams(form).toString() : null,
    dispatcher: agent,
  });
  const body = (await res.body.json()) as { data: unknown };
  if (res.statusCode !== 200) throw new Error(`${method} ${path}: ${res.statusCode}`);
  return body.data;
}

async function waitTask(upid: unknown): Promise<void> {
  for (;;) {
    const st = (await call("GET", `/nodes/pve-01/tasks/${encodeURIComponent(String(upid))}/status`)) as { status: string; exitstatus?: string };
    if (st.status === "stopped") {
      if (st.exitstatus !== "OK") throw new Error(`task failed: ${st.exitstatus}`);
      return;
    }
  }
}

async function rate(label: string, path: string): Promise<void> {
  const end = Date.now() + SECONDS * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        await call("GET", path);
        n++;
      }
    }),
  );
  console.log(`${label.padEnd(40)} ${(n / SECONDS).toFixed(0).padStart(7)} req/s`);
}

try {
  await rate("GET /version", "/version");
  const t0 = performance.now();
  for (let i = 0; i < GUESTS; i++) {
    await waitTask(await call("POST", "/nodes/pve-01/lxc", { vmid: String(1000 + i), ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", rootfs: "local-lvm:1" }));
  }
  console.log(`${`create ${GUESTS} guests (sequential)`.padEnd(40)} ${((performance.now() - t0) / GUESTS).toFixed(2).padStart(7)} ms each`);
  await rate(`GET /cluster/resources (${GUESTS} guests)`, "/cluster/resources");
  const cycles = 50;
  const t1 = performance.now();
  for (let i = 0; i < cycles; i++) {
    const vmid = String(5000 + i);
    await waitTask(await call("POST", "/nodes/pve-01/lxc", { vmid, ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", rootfs: "local-lvm:1" }));
    await waitTask(await call("POST", `/nodes/pve-01/lxc/${vmid}/status/start`));
    await waitTask(await call("POST", `/nodes/pve-01/lxc/${vmid}/status/stop`));
    await waitTask(await call("DELETE", `/nodes/pve-01/lxc/${vmid}`));
  }
  console.log(`${"create/start/stop/delete cycle".padEnd(40)} ${((performance.now() - t1) / cycles).toFixed(2).padStart(7)} ms each`);
  const counts = sb.counters.get();
  console.log(`requests served: ${Object.values(counts).reduce((a, b) => a + b, 0)}`);
} finally {
  await agent.close();
  await sb.close();
}
