/**
 * Addresses on the sandbox bridge: its /24, the host's address on it, the
 * pool guests with `ip=dhcp` draw from, and reading what `ip -json` reports.
 * Pure functions.
 */
import type { GuestInterface } from "../guest-backend.ts";

/** The bridge's subnet: a /24, the host on `.1`. */
export interface Subnet {
  /** Network address, e.g. `10.87.53.0`. */
  network: string;
  prefix: number;
  /** The host's address on the bridge (`.1`). */
  hostAddress: string;
}

/** Parses `a.b.c.d` into a number, or throws. */
export function ipToInt(ip: string): number {
  const parts = ip.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** Formats a number as `a.b.c.d`. */
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** Parses a `/24` such as `10.87.53.0/24` (only /24 is supported: one bridge, up to 253 guests). */
export function parseSubnet(cidr: string): Subnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m?.[1] || m[2] !== "24") throw new Error(`sandbox subnet must be an IPv4 /24 such as 10.87.53.0/24, got ${cidr}`);
  const base = ipToInt(m[1]) - (ipToInt(m[1]) % 256);
  return { network: intToIp(base), prefix: 24, hostAddress: intToIp(base + 1) };
}

/** Whether two IPv4 CIDR ranges overlap. */
export function cidrOverlaps(a: string, b: string): boolean {
  const range = (cidr: string): [number, number] => {
    const [ip, p] = cidr.split("/");
    const prefix = p === undefined ? 32 : Number(p);
    const size = 2 ** (32 - prefix);
    const start = ipToInt(ip ?? "") - (ipToInt(ip ?? "") % size);
    return [start, start + size - 1];
  };
  const [as, ae] = range(a);
  const [bs, be] = range(b);
  return as <= be && bs <= ae;
}

/** Whether `ip` lies in the subnet. */
function inSubnet(ip: string, subnet: Subnet): boolean {
  return cidrOverlaps(`${ip}/32`, `${subnet.network}/${subnet.prefix}`);
}

/** The lowest free guest address (`.2` to `.254`), or undefined when the pool is exhausted. */
export function allocateAddress(subnet: Subnet, used: ReadonlySet<string>): string | undefined {
  const base = ipToInt(subnet.network);
  for (let i = 2; i <= 254; i++) {
    const ip = intToIp(base + i);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/** A guest interface's address as the backend configures it. */
export interface PlannedAddress {
  /** CIDR, e.g. `10.87.53.5/24`; absent for `ip=manual`. */
  cidr?: string;
  gateway?: string;
}

/**
 * Decides a guest interface's address from its `ip=`: a static CIDR inside
 * the subnet is used as given, `dhcp` draws from the pool (what a DHCP server
 * on the bridge would hand out), `manual` gets none.
 */
export function planAddress(ip: string, subnet: Subnet, used: ReadonlySet<string>): PlannedAddress {
  if (ip === "manual" || ip === "") return {};
  if (ip === "dhcp") {
    const free = allocateAddress(subnet, used);
    if (!free) throw new Error(`no free address left in ${subnet.network}/${subnet.prefix}`);
    return { cidr: `${free}/${subnet.prefix}`, gateway: subnet.hostAddress };
  }
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(ip);
  if (!m?.[1]) throw new Error(`ip=${ip}: expected dhcp, manual or an IPv4 CIDR`);
  const addr = m[1];
  if (!inSubnet(addr, subnet)) {
    throw new Error(`ip=${ip} is outside the sandbox bridge's subnet ${subnet.network}/${subnet.prefix}; use an address in it or ip=dhcp`);
  }
  if (addr === subnet.hostAddress || addr === subnet.network || addr.endsWith(".255")) {
    throw new Error(`ip=${ip} is reserved on the sandbox bridge`);
  }
  if (used.has(addr)) throw new Error(`ip=${ip}: address already in use by another guest`);
  return { cidr: `${addr}/${subnet.prefix}`, gateway: subnet.hostAddress };
}

/** How many of the latest released addresses a new guest does not get while others are free. */
const COOLING = 16;

/**
 * The guest addresses taken on one subnet. Taking is synchronous, so
 * parallel creates never share an address. Like a DHCP server, it does not
 * hand a just-released address to the next guest while others are free: the
 * host's neighbour cache still maps it to the old guest's MAC for a while,
 * and the new guest would be unreachable until that entry expires.
 */
export class AddressPool {
  private readonly used = new Set<string>();
  /** Released addresses, oldest first; the newest are avoided while others are free. */
  private readonly released: string[] = [];
  private readonly subnet: Subnet;

  constructor(subnet: Subnet) {
    this.subnet = subnet;
  }

  /** Plans each interface's address (see `planAddress`) and takes them; takes none when one fails. */
  take(ips: readonly string[]): { planned: PlannedAddress[]; taken: string[] } {
    const planned: PlannedAddress[] = [];
    const taken: string[] = [];
    try {
      for (const ip of ips) {
        const cooling = new Set([...this.used, ...this.released.slice(-COOLING)]);
        let p: PlannedAddress;
        try {
          p = ip === "dhcp" ? planAddress(ip, this.subnet, cooling) : planAddress(ip, this.subnet, this.used);
        } catch {
          p = planAddress(ip, this.subnet, this.used);
        }
        planned.push(p);
        const addr = p.cidr?.split("/")[0];
        if (addr) {
          this.used.add(addr);
          taken.push(addr);
        }
      }
    } catch (err) {
      // Never a guest's: back without cooling.
      for (const a of taken) this.used.delete(a);
      throw err;
    }
    return { planned, taken };
  }

  /** Gives addresses back. */
  release(addresses: readonly string[]): void {
    for (const a of addresses) {
      if (!this.used.delete(a)) continue;
      const i = this.released.indexOf(a);
      if (i >= 0) this.released.splice(i, 1);
      this.released.push(a);
    }
    if (this.released.length > COOLING * 4) this.released.splice(0, this.released.length - COOLING * 4);
  }

  /** Gives every address back, and forgets which were released (a new start). */
  clear(): void {
    this.used.clear();
    this.released.length = 0;
  }
}

interface IpJsonAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
}
interface IpJsonLink {
  ifname?: string;
  address?: string;
  flags?: string[];
  operstate?: string;
  addr_info?: IpJsonAddrInfo[];
}

/**
 * Turns `ip -json addr show` output into Proxmox's `interfaces` answer. An
 * address is reported only while its link is up, as the guest really has it.
 */
export function parseIpAddrJson(json: string): GuestInterface[] {
  const links = JSON.parse(json) as IpJsonLink[];
  const out: GuestInterface[] = [];
  for (const link of links) {
    if (!link.ifname) continue;
    const iface: GuestInterface = { name: link.ifname, hwaddr: link.address ?? "00:00:00:00:00:00" };
    const up = (link.flags ?? []).includes("UP") && (link.flags ?? []).includes("LOWER_UP");
    if (up) {
      const v4 = (link.addr_info ?? []).find((a) => a.family === "inet");
      const v6 = (link.addr_info ?? []).find((a) => a.family === "inet6");
      if (v4?.local) iface.inet = `${v4.local}/${v4.prefixlen ?? 32}`;
      if (v6?.local) iface.inet6 = `${v6.local}/${v6.prefixlen ?? 128}`;
    }
    out.push(iface);
  }
  return out;
}

interface IpJsonRoute {
  dst?: string;
}

/** IPv4 ranges the host already uses (its addresses and routes), from `ip -json` output. */
export function hostRanges(addrJson: string, routeJson: string): string[] {
  const ranges: string[] = [];
  for (const link of JSON.parse(addrJson) as IpJsonLink[]) {
    for (const a of link.addr_info ?? []) {
      if (a.family === "inet" && a.local && link.ifname !== "lo") ranges.push(`${a.local}/${a.prefixlen ?? 32}`);
    }
  }
  for (const r of JSON.parse(routeJson) as IpJsonRoute[]) {
    if (r.dst && r.dst !== "default" && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r.dst) && !r.dst.startsWith("127.")) ranges.push(r.dst);
  }
  return ranges;
}

/** The host ranges that collide with the subnet. */
export function subnetConflicts(subnet: Subnet, ranges: readonly string[]): string[] {
  return ranges.filter((r) => cidrOverlaps(r, `${subnet.network}/${subnet.prefix}`));
}
