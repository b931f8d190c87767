/**
 * The value formats Proxmox checks (node names, VM ids, DNS names, tags,
 * MAC and IP addresses) and the LXC property-string formats (`net[n]`,
 * `rootfs`, `mp[n]`, `features`, ...), written as rules for `params.ts`.
 * Pure.
 */
import { randomBytes } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import type { PropertyFormat, Rule, StringRule } from "./params.ts";

const NODE_NAME = /^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const DNS_LABEL = "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?";
const DNS_NAME = new RegExp(`^(?=.{1,255}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const STORAGE_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
const CONFIG_ID = /^[a-z][a-z0-9_-]+$/i;
const TAG = /^[a-z0-9_][a-z0-9_\-+.]*$/i;
const MAC = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/i;
const BRIDGE = /^[-_.\w\d]+$/;

/** `pve-node`. */
export function checkNodeName(v: string): string | undefined {
  return NODE_NAME.test(v) ? undefined : "value does not look like a valid node name";
}

/** `dns-name`. */
export function checkDnsName(v: string): string | undefined {
  return DNS_NAME.test(v) ? undefined : "value does not look like a valid DNS name";
}

/** `pve-storage-id`. */
export function checkStorageId(v: string): string | undefined {
  return STORAGE_ID.test(v) ? undefined : `storage ID '${v}' contains illegal characters`;
}

/** `pve-configid-list`: config keys separated by commas, semicolons or spaces. */
export function checkConfigIdList(v: string): string | undefined {
  for (const id of splitList(v)) {
    if (!CONFIG_ID.test(id)) return `invalid configuration ID '${id}'`;
  }
  return undefined;
}

/** Splits a Proxmox list value (`a;b`, `a,b` or `a b`). */
export function splitList(v: string): string[] {
  return v.split(/[;,\s\0]+/).filter((x) => x !== "");
}

/** `pve-tag-list`. */
export function checkTagList(v: string): string | undefined {
  for (const tag of splitList(v)) {
    if (!TAG.test(tag)) return `invalid tag '${tag}'`;
  }
  return undefined;
}

/** Tags as Proxmox stores them: lowercased, de-duplicated, sorted, `;`-joined. */
export function normalizeTags(v: string): string {
  return [...new Set(splitList(v).map((t) => t.toLowerCase()))].sort().join(";");
}

/** `mac-addr`: a unicast MAC. */
function checkMac(v: string): string | undefined {
  return MAC.test(v) ? undefined : "value does not look like a valid unicast MAC address";
}

/** A MAC in Proxmox's own range (BC:24:11), as it generates for new NICs. */
export function generateMac(bytes: Buffer = randomBytes(3)): string {
  const tail = [...bytes.subarray(0, 3)].map((b) => b.toString(16).padStart(2, "0").toUpperCase());
  return ["BC", "24", "11", ...tail].join(":");
}

/** An IPv4 network in CIDR form (`10.0.0.5/24`). */
function isIpv4Cidr(v: string): boolean {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(v);
  return m !== null && isIPv4(m[1] ?? "") && Number(m[2]) <= 32;
}

function isIpv6Cidr(v: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
  return m !== null && isIPv6(m[1] ?? "") && Number(m[2]) <= 128;
}

/** `pve-ipv4-config`. */
function checkIpv4Config(v: string): string | undefined {
  return v === "dhcp" || v === "manual" || isIpv4Cidr(v)
    ? undefined
    : "value does not look like a valid ipv4 network configuration";
}

function checkIpv6Config(v: string): string | undefined {
  return ["dhcp", "auto", "manual"].includes(v) || isIpv6Cidr(v)
    ? undefined
    : "value does not look like a valid ipv6 network configuration";
}

/** `disk-size`: a number with an optional K/M/G/T unit. */
function checkDiskSize(v: string): string | undefined {
  return /^\d+(\.\d+)?[KMGT]?$/.test(v) ? undefined : `unable to parse size '${v}'`;
}

/** Bytes of a `disk-size` value (no unit = bytes, as Proxmox reads `size=`). */
export function parseDiskSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(v);
  if (!m) return 0;
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] ?? ""] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

/** Renders bytes as Proxmox writes `size=` (`8G`, `512M`). */
export function formatDiskSize(bytes: number): string {
  for (const [unit, f] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const) {
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return String(bytes);
}

const str = (extra: Partial<StringRule> = {}): StringRule => ({ type: "string", optional: true, ...extra });
const bool: Rule = { type: "boolean", optional: true };

/** `net[n]` of a container. */
export const NET_FORMAT: PropertyFormat = {
  fields: {
    name: { type: "string", pattern: BRIDGE },
    bridge: str({ pattern: BRIDGE }),
    firewall: bool,
    gw: str({ format: (v) => (isIPv4(v) ? undefined : "value does not look like a valid IPv4 address") }),
    gw6: str({ format: (v) => (isIPv6(v) ? undefined : "value does not look like a valid IPv6 address") }),
    "host-managed": bool,
    hwaddr: str({ format: checkMac }),
    ip: str({ format: checkIpv4Config }),
    ip6: str({ format: checkIpv6Config }),
    link_down: bool,
    mtu: { type: "integer", optional: true, minimum: 64, maximum: 65535 },
    rate: { type: "number", optional: true, minimum: 0 },
    tag: { type: "integer", optional: true, minimum: 1, maximum: 4094 },
    trunks: str({ pattern: /^\d+(?:;\d+)*$/ }),
    type: str({ enum: ["veth"] }),
  },
};

const MOUNT_OPTIONS = /^(discard|lazytime|noatime|nodev|noexec|nosuid)(;(discard|lazytime|noatime|nodev|noexec|nosuid))*$/;

/** `rootfs`: `STORAGE:SIZE_GB` for a new volume, or an existing volume id. */
export const ROOTFS_FORMAT: PropertyFormat = {
  defaultKey: "volume",
  fields: {
    volume: { type: "string", format: checkMountVolume },
    acl: bool,
    mountoptions: str({ pattern: MOUNT_OPTIONS }),
    quota: bool,
    replicate: bool,
    ro: bool,
    shared: bool,
    size: str({ format: checkDiskSize }),
  },
};

/** `mp[n]`: like `rootfs` plus a mount path. */
export const MP_FORMAT: PropertyFormat = {
  defaultKey: "volume",
  fields: {
    ...ROOTFS_FORMAT.fields,
    mp: { type: "string", pattern: /^\/.*$/ },
    backup: bool,
    keepattrs: bool,
  },
};

/** `features`. */
export const FEATURES_FORMAT: PropertyFormat = {
  fields: {
    force_rw_sys: bool,
    fuse: bool,
    keyctl: bool,
    mknod: bool,
    mount: str({ pattern: /^[a-zA-Z0-9_; ]+$/ }),
    nesting: bool,
  },
};

/** `dev[n]`. */
export const DEV_FORMAT: PropertyFormat = {
  defaultKey: "path",
  fields: {
    path: str({ pattern: /^\/dev\/.+$/ }),
    "deny-write": bool,
    gid: { type: "integer", optional: true, minimum: 0 },
    uid: { type: "integer", optional: true, minimum: 0 },
    mode: str({ pattern: /^0[0-7]{3}$/ }),
  },
};

/** `unused[n]`. */
export const UNUSED_FORMAT: PropertyFormat = {
  defaultKey: "volume",
  fields: { volume: { type: "string", pattern: /^[^:\s]+:.+$/ } },
};

/** `startup`: `[order=]N,up=N,down=N`. */
export const STARTUP_FORMAT: PropertyFormat = {
  defaultKey: "order",
  fields: {
    order: { type: "integer", optional: true, minimum: 0 },
    up: { type: "integer", optional: true, minimum: 0 },
    down: { type: "integer", optional: true, minimum: 0 },
  },
};

/** A mount volume: `STORAGE:SIZE_GB`, `STORAGE:VOLUME`, a bare size in GiB (on `storage`), or an absolute host path (root only). */
function checkMountVolume(v: string): string | undefined {
  if (v.startsWith("/") || /^\d+(\.\d+)?$/.test(v)) return undefined;
  const m = /^([^:\s]+):(\S+)$/.exec(v);
  if (!m || checkStorageId(m[1] ?? "") !== undefined) return `unable to parse volume ID '${v}'`;
  return undefined;
}

/** A new-volume request (`local-lvm:8`): storage and size in GiB, or undefined for an existing volume. */
export function parseNewVolume(v: string): { storage: string; sizeGb: number } | undefined {
  const m = /^([^:\s]+):(\d+(?:\.\d+)?)$/.exec(v);
  if (!m) return undefined;
  return { storage: m[1] ?? "", sizeGb: Number(m[2]) };
}

/**
 * Renders property values back into `key=value,...` as Proxmox writes them:
 * the default key's value bare and first, then `order`, then the rest sorted.
 */
export function formatPropertyString(values: Record<string, string | number | boolean>, order: string[] = [], defaultKey?: string): string {
  const text = (v: string | number | boolean | undefined): string => (typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  const rest = Object.keys(values).filter((k) => k !== defaultKey);
  const keys = [...order.filter((k) => rest.includes(k)), ...rest.filter((k) => !order.includes(k)).sort()];
  const parts = keys.map((k) => `${k}=${text(values[k])}`);
  if (defaultKey !== undefined && defaultKey in values) parts.unshift(text(values[defaultKey]));
  return parts.join(",");
}

/** The IPv6 link-local address a MAC gives (EUI-64), with its prefix. */
export function linkLocalFor(mac: string): string {
  const b = mac.split(":").map((x) => parseInt(x, 16));
  const e = [(b[0] ?? 0) ^ 2, b[1] ?? 0, b[2] ?? 0, 0xff, 0xfe, b[3] ?? 0, b[4] ?? 0, b[5] ?? 0];
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push((((e[i] ?? 0) << 8) | (e[i + 1] ?? 0)).toString(16));
  return `fe80::${groups.join(":")}/64`;
}
