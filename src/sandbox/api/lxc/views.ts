/** How containers are shown: the summary of the list, status and cluster resources endpoints, and their interfaces. */
import { guestCores } from "../../cluster.ts";
import type { GuestState } from "../../cluster.ts";
import type { GuestInterface } from "../../guest-backend.ts";
import type { SandboxState } from "../types.ts";
import { rootfsSize } from "./volumes.ts";

const MiB = 1024 ** 2;

/** The state of a guest as the status, list and resources endpoints show it. */
export async function guestSummary(state: SandboxState, g: GuestState): Promise<Record<string, unknown>> {
  const nodeCores = state.cluster.node(g.node).spec.cores;
  const st = g.created ? await state.cluster.backend.status(g.vmid) : { running: false, uptime: 0, mem: 0 };
  const cores = guestCores(g, nodeCores);
  const maxdisk = rootfsSize(g.config);
  const out: Record<string, unknown> = {
    vmid: g.vmid,
    name: String(g.config["hostname"] ?? `CT${g.vmid}`),
    status: st.running ? "running" : "stopped",
    type: "lxc",
    cpus: cores,
    cpu: st.running ? 0.002 * cores : 0,
    maxmem: Number(g.config["memory"] ?? 512) * MiB,
    mem: st.mem,
    maxswap: Number(g.config["swap"] ?? 512) * MiB,
    swap: 0,
    maxdisk,
    disk: g.created ? Math.min(maxdisk, 600 * MiB) : 0,
    uptime: st.uptime,
    netin: st.running ? 1024 * st.uptime : 0,
    netout: st.running ? 512 * st.uptime : 0,
    diskread: 0,
    diskwrite: 0,
  };
  if (g.config["tags"] !== undefined) out["tags"] = g.config["tags"];
  if (g.config["lock"] !== undefined) out["lock"] = g.config["lock"];
  if (g.config["template"] === 1) out["template"] = 1;
  return out;
}

/** One interface as `GET .../interfaces` answers it (both the old and the newer field names). */
export function interfaceView(i: GuestInterface): Record<string, unknown> {
  const addresses: Record<string, unknown>[] = [];
  for (const [addr, family] of [[i.inet, "inet"], [i.inet6, "inet6"]] as const) {
    if (addr === undefined) continue;
    const [ip, prefix] = addr.split("/");
    addresses.push({ "ip-address": ip, "ip-address-type": family, prefix: Number(prefix) });
  }
  const out: Record<string, unknown> = { name: i.name, hwaddr: i.hwaddr, "hardware-address": i.hwaddr, "ip-addresses": addresses };
  if (i.inet !== undefined) out["inet"] = i.inet;
  if (i.inet6 !== undefined) out["inet6"] = i.inet6;
  return out;
}
