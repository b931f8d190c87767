/**
 * The property strings of LXC containers, parsed and formatted: network
 * interfaces (`net0`), the root disk (`rootfs`), features, tags. Proxmox packs
 * these settings into one `key=value,...` string each; the structures here are
 * what the rest of the client works with. Pure.
 */
import { ProxmoxValidationError } from "./errors.ts";

/** A container network interface (`net0`, ...), structured. */
export interface LxcNetwork {
  /** Name inside the container, e.g. `eth0`. */
  name: string;
  bridge?: string;
  hwaddr?: string;
  /** `dhcp`, `manual`, or IPv4/CIDR such as `10.0.0.5/24`. */
  ip?: string;
  gw?: string;
  /** `dhcp`, `auto`, `manual`, or IPv6/CIDR. */
  ip6?: string;
  gw6?: string;
  firewall?: boolean;
  /** VLAN tag. */
  tag?: number;
  trunks?: number[];
  mtu?: number;
  /** Rate limit in MB/s. */
  rate?: number;
  linkDown?: boolean;
  hostManaged?: boolean;
  type?: "veth";
}

/** The root disk for create: a new volume of `sizeGb` GiB on `storage`, or an existing volume. */
export type LxcRootfs = { storage: string; sizeGb: number } | { volume: string; size?: string };

/** The root disk as a config read reports it. */
export interface LxcRootfsInfo {
  volume: string;
  /** As written, e.g. `8G`. */
  size: string | undefined;
  /** The other options (`acl`, `quota`, ...) as written. */
  options: Record<string, string>;
}

/** Container features (`features: nesting=1,keyctl=1`). */
export interface LxcFeatures {
  nesting?: boolean;
  keyctl?: boolean;
  fuse?: boolean;
  mknod?: boolean;
  forceRwSys?: boolean;
  /** Allowed file system types for mounts, e.g. `["nfs", "cifs"]`. */
  mount?: string[];
}

const NAME = /^[-_.\w]+$/;
const TAG = /^[a-z0-9_][a-z0-9_+.-]*$/;

/** A parameter refused before sending, named as Proxmox names it. */
export function invalidParam(param: string, message: string, hint: string): ProxmoxValidationError {
  return new ProxmoxValidationError(param, `${param}: ${message}`, hint);
}

function propertyValue(param: string, key: string, value: string): string {
  if (/[,=\n]/.test(value)) {
    throw invalidParam(param, `${key} value ${JSON.stringify(value)} contains ',', '=' or a newline`, "Proxmox property strings cannot carry these characters");
  }
  return value;
}

const b01 = (v: boolean): string => (v ? "1" : "0");

/** Serialises a network interface to its property string (`name=eth0,bridge=vmbr0,ip=dhcp`). Pure. */
export function formatNetwork(net: LxcNetwork, param = "net0"): string {
  if (!NAME.test(net.name)) throw invalidParam(param, `interface name ${JSON.stringify(net.name)} is invalid`, "use a name like eth0");
  if (net.bridge !== undefined && !NAME.test(net.bridge)) throw invalidParam(param, `bridge ${JSON.stringify(net.bridge)} is invalid`, "use a bridge name like vmbr0");
  if (net.ip !== undefined && !/^(?:dhcp|manual|\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2})$/.test(net.ip)) {
    throw invalidParam(param, `ip ${JSON.stringify(net.ip)} is not dhcp, manual or IPv4/CIDR`, "e.g. ip: 10.0.0.5/24 with gw: 10.0.0.1, or ip: dhcp");
  }
  const parts: string[] = [`name=${net.name}`];
  const add = (key: string, value: string | number | boolean | undefined): void => {
    if (value === undefined) return;
    parts.push(`${key}=${typeof value === "boolean" ? b01(value) : propertyValue(param, key, String(value))}`);
  };
  add("bridge", net.bridge);
  add("hwaddr", net.hwaddr);
  add("ip", net.ip);
  add("gw", net.gw);
  add("ip6", net.ip6);
  add("gw6", net.gw6);
  add("firewall", net.firewall);
  add("tag", net.tag);
  add("trunks", net.trunks?.join(";"));
  add("mtu", net.mtu);
  add("rate", net.rate);
  add("link_down", net.linkDown);
  add("host-managed", net.hostManaged);
  add("type", net.type);
  return parts.join(",");
}

/** Splits a property string into its key/value pairs; a bare first item goes to `defaultKey`. Pure. */
export function parsePropertyString(text: string, defaultKey?: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(",").forEach((item, index) => {
    if (item === "") return;
    const eq = item.indexOf("=");
    if (eq < 0) {
      if (index === 0 && defaultKey !== undefined) out[defaultKey] = item;
      else out[item] = "1";
    } else {
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  });
  return out;
}

const asBool = (v: string | undefined): boolean | undefined => (v === undefined ? undefined : v === "1");
const asNum = (v: string | undefined): number | undefined => (v === undefined || v === "" ? undefined : Number(v));

/** Parses `net0`'s property string back into a structure. Pure. */
export function parseNetwork(text: string): LxcNetwork {
  const p = parsePropertyString(text);
  const net: LxcNetwork = { name: p.name ?? "" };
  const set = <K extends keyof LxcNetwork>(key: K, value: LxcNetwork[K] | undefined): void => {
    if (value !== undefined) net[key] = value;
  };
  set("bridge", p.bridge);
  set("hwaddr", p.hwaddr);
  set("ip", p.ip);
  set("gw", p.gw);
  set("ip6", p.ip6);
  set("gw6", p.gw6);
  set("firewall", asBool(p.firewall));
  set("tag", asNum(p.tag));
  set("trunks", p.trunks?.split(";").map(Number));
  set("mtu", asNum(p.mtu));
  set("rate", asNum(p.rate));
  set("linkDown", asBool(p.link_down));
  set("hostManaged", asBool(p["host-managed"]));
  if (p.type === "veth") net.type = "veth";
  return net;
}

/** Serialises the root disk for create: `local-lvm:8`, or `VOLUME,size=8G`. Pure. */
export function formatRootfs(rootfs: LxcRootfs): string {
  if ("storage" in rootfs) {
    if (!NAME.test(rootfs.storage)) throw invalidParam("rootfs", `storage ${JSON.stringify(rootfs.storage)} is invalid`, "use a storage id like local-lvm");
    if (!Number.isFinite(rootfs.sizeGb) || rootfs.sizeGb <= 0) throw invalidParam("rootfs", `size ${rootfs.sizeGb} GiB is not positive`, "give the disk size in GiB, e.g. 8");
    return `${rootfs.storage}:${rootfs.sizeGb}`;
  }
  const volume = propertyValue("rootfs", "volume", rootfs.volume);
  return rootfs.size !== undefined ? `${volume},size=${propertyValue("rootfs", "size", rootfs.size)}` : volume;
}

/** Parses the root disk of a config (`local-lvm:vm-101-disk-0,size=8G`). Pure. */
export function parseRootfs(text: string): LxcRootfsInfo {
  const { volume = "", size, ...options } = parsePropertyString(text, "volume");
  return { volume, size, options };
}

/**
 * A mount point to set (`mp0`, ...): a new volume of `sizeGb` GiB on `storage`,
 * an existing volume (by volid), or a host path bind-mounted (root@pam only).
 */
export type LxcMountPoint =
  | { kind: "new"; storage: string; sizeGb: number; mp: string; backup?: boolean; readOnly?: boolean }
  | { kind: "volume"; volume: string; mp: string; size?: string; backup?: boolean; readOnly?: boolean }
  | { kind: "bind"; host: string; mp: string; readOnly?: boolean };

/** A mount point as a config read reports it. */
export interface LxcMountInfo {
  /** A volid (`local-lvm:vm-105-disk-1`), a host path, or a device. */
  volume: string;
  type: "volume" | "bind" | "device";
  /** The path inside the container. */
  mp: string;
  /** As written, e.g. `1G`; volumes only. */
  size: string | undefined;
  /** Whether backups include it: Proxmox's default is off for a mount point (`backup=1` includes it). */
  backup: boolean;
  readOnly: boolean;
  /** The other options as written. */
  options: Record<string, string>;
}

const MOUNT_PATH = /^\/[^,=\n]*$/;

/** Serialises a mount point (`local-lvm:1,mp=/srv/data,backup=1`). Pure. */
export function formatMountPoint(mount: LxcMountPoint, param = "mp0"): string {
  if (!MOUNT_PATH.test(mount.mp) || mount.mp === "/") throw invalidParam(param, `mount path ${JSON.stringify(mount.mp)} is not an absolute path below /`, "e.g. /srv/data");
  const parts: string[] = [];
  if (mount.kind === "new") {
    if (!NAME.test(mount.storage)) throw invalidParam(param, `storage ${JSON.stringify(mount.storage)} is invalid`, "use a storage id like local-lvm");
    if (!Number.isFinite(mount.sizeGb) || mount.sizeGb <= 0) throw invalidParam(param, `size ${mount.sizeGb} GiB is not positive`, "give the volume size in GiB, e.g. 1");
    parts.push(`${mount.storage}:${mount.sizeGb}`);
  } else if (mount.kind === "volume") {
    parts.push(propertyValue(param, "volume", mount.volume));
  } else {
    if (!mount.host.startsWith("/")) throw invalidParam(param, `host path ${JSON.stringify(mount.host)} is not absolute`, "e.g. /mnt/tank/media");
    parts.push(propertyValue(param, "volume", mount.host));
  }
  parts.push(`mp=${mount.mp}`);
  if (mount.kind === "volume" && mount.size !== undefined) parts.push(`size=${propertyValue(param, "size", mount.size)}`);
  if (mount.kind !== "bind" && mount.backup !== undefined) parts.push(`backup=${b01(mount.backup)}`);
  if (mount.readOnly === true) parts.push("ro=1");
  return parts.join(",");
}

/** The type of a mount point's volume, as pve-container classifies it. Pure. */
export function mountTypeOf(volume: string): LxcMountInfo["type"] {
  if (volume.startsWith("/dev/")) return "device";
  return volume.startsWith("/") ? "bind" : "volume";
}

/** Parses a mount point of a config (`local-lvm:vm-105-disk-1,mp=/srv/data,backup=1,size=1G`). Pure. */
export function parseMountPoint(text: string): LxcMountInfo {
  const { volume = "", mp = "", size, backup, ro, ...options } = parsePropertyString(text, "volume");
  return { volume, type: mountTypeOf(volume), mp, size, backup: backup === "1", readOnly: ro === "1", options };
}

const FEATURE_KEYS: readonly [keyof LxcFeatures, string][] = [
  ["nesting", "nesting"],
  ["keyctl", "keyctl"],
  ["fuse", "fuse"],
  ["mknod", "mknod"],
  ["forceRwSys", "force_rw_sys"],
];

/** Serialises features (`nesting=1,keyctl=1`). Pure. */
export function formatFeatures(features: LxcFeatures): string {
  const parts: string[] = [];
  for (const [field, key] of FEATURE_KEYS) {
    const value = features[field];
    if (typeof value === "boolean") parts.push(`${key}=${b01(value)}`);
  }
  if (features.mount !== undefined && features.mount.length > 0) {
    for (const fs of features.mount) if (!/^[A-Za-z0-9_]+$/.test(fs)) throw invalidParam("features", `mount type ${JSON.stringify(fs)} is invalid`, "e.g. nfs, cifs");
    parts.push(`mount=${features.mount.join(";")}`);
  }
  return parts.join(",");
}

/** Parses a features property string. Pure. */
export function parseFeatures(text: string): LxcFeatures {
  const p = parsePropertyString(text);
  const out: LxcFeatures = {};
  for (const [field, key] of FEATURE_KEYS) {
    const value = asBool(p[key]);
    if (value !== undefined) (out as Record<string, boolean>)[field] = value;
  }
  if (p.mount !== undefined) out.mount = p.mount.split(";").filter((s) => s !== "");
  return out;
}

/**
 * True when only `root@pam` itself may set these features: anything but nesting, or (on a
 * container known to be privileged, `unprivileged === false`) any feature at all. Pure.
 */
export function featuresNeedRoot(features: LxcFeatures, unprivileged?: boolean): boolean {
  const others = features.keyctl === true || features.fuse === true || features.mknod === true || features.forceRwSys === true || (features.mount?.length ?? 0) > 0;
  return others || (unprivileged === false && features.nesting === true);
}

/** Tags as Proxmox stores them: validated, lowercased, de-duplicated, sorted, joined with `;`. Pure. */
export function formatTags(tags: readonly string[]): string {
  const normal = new Set<string>();
  for (const tag of tags) {
    const t = tag.trim().toLowerCase();
    if (!TAG.test(t)) {
      throw invalidParam("tags", `tag ${JSON.stringify(tag)} is invalid`, "Proxmox tags are letters, digits and _ + - . (no ':' or spaces); write tier:1 as tier-1");
    }
    normal.add(t);
  }
  return [...normal].sort().join(";");
}

/** Splits a tag list as Proxmox returns it (`;`, `,` or spaces). Pure. */
export function parseTags(text: string | undefined): string[] {
  return (text ?? "").split(/[;, ]+/).filter((t) => t !== "");
}
