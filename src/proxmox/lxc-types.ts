/**
 * The data of the LXC calls: the parameters of create and config updates
 * with the forms Proxmox reads, the config as read back (parsed), and the
 * answers' schemas. The property strings inside them are lxc-format.ts's.
 */
import { z } from "zod";
import type { FormParams, FormValue } from "./http.ts";
import { formatFeatures, formatMountPoint, formatNetwork, formatRootfs, formatTags, invalidParam, parseFeatures, parseMountPoint, parseNetwork, parseRootfs, parseTags } from "./lxc-format.ts";
import type { LxcFeatures, LxcMountInfo, LxcMountPoint, LxcNetwork, LxcRootfs, LxcRootfsInfo } from "./lxc-format.ts";
import { flag, num } from "./schema.ts";

/** Parameters shared by create and config updates. */
export interface LxcSettings {
  hostname?: string;
  /** MiB. */
  memory?: number;
  /** MiB. */
  swap?: number;
  cores?: number;
  cpulimit?: number;
  net0?: LxcNetwork;
  /** Further interfaces by index (`{ 1: {...} }` is `net1`). */
  net?: Readonly<Record<number, LxcNetwork>>;
  /** Mount points by index (`{ 0: {...} }` is `mp0`). */
  mp?: Readonly<Record<number, LxcMountPoint>>;
  /** Written lowercased, de-duplicated and sorted, as Proxmox stores them. */
  tags?: readonly string[];
  features?: LxcFeatures;
  description?: string;
  onboot?: boolean;
  /** Proxmox's protection flag: refuses removal of the container and its disks. */
  protection?: boolean;
  nameserver?: string;
  searchdomain?: string;
  timezone?: string;
}

/** Parameters of `POST /nodes/{node}/lxc`. */
export interface LxcCreateParams extends LxcSettings {
  /** Leave out to allocate one with `/cluster/nextid` (and retry when another creator takes it). */
  vmid?: number;
  /** Template volid, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`. */
  ostemplate: string;
  rootfs?: LxcRootfs;
  /** Default storage for the root disk. */
  storage?: string;
  /** OpenSSH public keys for root, one per entry. */
  sshPublicKeys?: string | readonly string[];
  /** Restore from a backup: `ostemplate` is then the backup's volid (`local:backup/vzdump-lxc-...`). */
  restore?: boolean;
  /** With `restore`: overwrite the existing container of this vmid (it must be stopped). */
  force?: boolean;
  /** With `restore`: give the restored container new MAC addresses. */
  unique?: boolean;
  /** Never logged and redacted from errors. */
  password?: string;
  unprivileged?: boolean;
  start?: boolean;
  ostype?: string;
  arch?: string;
  pool?: string;
}

/** A config change: settings to set, names to delete, and the digest that guards against lost updates. */
export interface LxcConfigUpdate extends LxcSettings {
  /** Settings to remove, e.g. `["net1", "description"]`. */
  delete?: readonly string[];
  /** The `digest` of the config this change was based on. */
  digest?: string;
}

/** A container config as read back, parsed. */
export interface LxcConfig {
  hostname: string | undefined;
  memory: number | undefined;
  swap: number | undefined;
  cores: number | undefined;
  ostype: string | undefined;
  arch: string | undefined;
  description: string | undefined;
  tags: string[];
  features: LxcFeatures;
  unprivileged: boolean;
  onboot: boolean;
  protection: boolean;
  net: Record<number, LxcNetwork>;
  rootfs: LxcRootfsInfo | undefined;
  /** Mount points by index. */
  mounts: Record<number, LxcMountInfo>;
  /** Unused volumes (`unusedN`: detached, still on storage) by index. */
  unused: Record<number, string>;
  /** The snapshot the current state descends from. */
  parent: string | undefined;
  lock: string | undefined;
  /** A template (`template: 1`): cannot be started, only cloned. */
  template: boolean;
  digest: string | undefined;
  /** Every key as Proxmox returned it. */
  raw: Record<string, string | number>;
}

function formatSshKeys(keys: string | readonly string[]): string {
  const list = (typeof keys === "string" ? keys.split("\n") : [...keys]).map((k) => k.trim()).filter((k) => k !== "");
  return list.join("\n") + (list.length > 0 ? "\n" : "");
}

function settingsForm(settings: LxcSettings): Record<string, FormValue> {
  const form: Record<string, FormValue> = {
    hostname: settings.hostname,
    memory: settings.memory,
    swap: settings.swap,
    cores: settings.cores,
    cpulimit: settings.cpulimit,
    description: settings.description,
    onboot: settings.onboot,
    nameserver: settings.nameserver,
    searchdomain: settings.searchdomain,
    timezone: settings.timezone,
  };
  if (settings.hostname !== undefined && !/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(settings.hostname)) {
    throw invalidParam("hostname", `${JSON.stringify(settings.hostname)} is not a DNS name`, "use letters, digits and '-', e.g. peach");
  }
  // Only when given, so forms without it keep their exact shape.
  if (settings.protection !== undefined) form.protection = settings.protection;
  if (settings.net0 !== undefined) form.net0 = formatNetwork(settings.net0, "net0");
  for (const [index, net] of Object.entries(settings.net ?? {})) form[`net${index}`] = formatNetwork(net, `net${index}`);
  for (const [index, mount] of Object.entries(settings.mp ?? {})) form[`mp${index}`] = formatMountPoint(mount, `mp${index}`);
  if (settings.tags !== undefined) form.tags = formatTags(settings.tags);
  if (settings.features !== undefined) form.features = formatFeatures(settings.features);
  return form;
}

/** The form of `POST /nodes/{node}/lxc` for a given vmid. Pure. */
export function lxcCreateForm(params: LxcCreateParams, vmid: number): FormParams {
  if (!Number.isInteger(vmid) || vmid < 100) throw invalidParam("vmid", `${vmid} is not a guest id (100 or more)`, "leave vmid out to allocate one");
  if (params.ostemplate.trim() === "") throw invalidParam("ostemplate", "is empty", "give a template volid such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
  return {
    vmid,
    ostemplate: params.ostemplate,
    ...settingsForm(params),
    rootfs: params.rootfs !== undefined ? formatRootfs(params.rootfs) : undefined,
    storage: params.storage,
    "ssh-public-keys": params.sshPublicKeys !== undefined ? formatSshKeys(params.sshPublicKeys) : undefined,
    password: params.password,
    unprivileged: params.unprivileged,
    start: params.start,
    restore: params.restore,
    force: params.force,
    unique: params.unique,
    ostype: params.ostype,
    arch: params.arch,
    pool: params.pool,
  };
}

/** The form of `PUT /nodes/{node}/lxc/{vmid}/config`. Pure. */
export function lxcUpdateForm(update: LxcConfigUpdate): FormParams {
  const form = settingsForm(update);
  if (update.delete !== undefined && update.delete.length > 0) {
    for (const key of update.delete) {
      if (!/^[a-z][a-z0-9_-]*$/.test(key)) throw invalidParam("delete", `${JSON.stringify(key)} is not a setting name`, "e.g. net1, description");
      if (form[key] !== undefined) throw invalidParam("delete", `${key} is both set and deleted`, "do one or the other");
    }
    form.delete = update.delete.join(",");
  }
  form.digest = update.digest;
  return form;
}

/** Parses a raw container config into typed fields (keeping the raw keys). Pure. */
export function parseLxcConfig(raw: Record<string, string | number>): LxcConfig {
  const str = (key: string): string | undefined => (raw[key] === undefined ? undefined : String(raw[key]));
  const int = (key: string): number | undefined => (raw[key] === undefined ? undefined : Number(raw[key]));
  const net: Record<number, LxcNetwork> = {};
  const mounts: Record<number, LxcMountInfo> = {};
  const unused: Record<number, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    const m = /^(net|mp|unused)(\d+)$/.exec(key);
    if (m?.[1] === "net") net[Number(m[2])] = parseNetwork(String(value));
    else if (m?.[1] === "mp") mounts[Number(m[2])] = parseMountPoint(String(value));
    else if (m?.[1] === "unused") unused[Number(m[2])] = String(value);
  }
  const rootfs = str("rootfs");
  const features = str("features");
  return {
    hostname: str("hostname"),
    memory: int("memory"),
    swap: int("swap"),
    cores: int("cores"),
    ostype: str("ostype"),
    arch: str("arch"),
    description: str("description"),
    tags: parseTags(str("tags")),
    features: features !== undefined ? parseFeatures(features) : {},
    unprivileged: str("unprivileged") === "1",
    onboot: str("onboot") === "1",
    protection: str("protection") === "1",
    net,
    rootfs: rootfs !== undefined ? parseRootfs(rootfs) : undefined,
    mounts,
    unused,
    parent: str("parent"),
    lock: str("lock"),
    template: str("template") === "1",
    digest: str("digest"),
    raw,
  };
}

/**
 * `unprivileged` of a create that does not send it: Proxmox's create makes an unprivileged
 * container unless told otherwise (pve-container: `$unprivileged = 1 if !defined($unprivileged)`;
 * the config option's own default, for a container without the line, is 0).
 */
export const CREATE_UNPRIVILEGED_DEFAULT = true;

/** The answer of `GET /nodes/{node}/lxc/{vmid}/config`, unparsed. */
export const lxcConfigSchema = z.record(z.string(), z.union([z.string(), z.number()]));

/** The answer of `GET /nodes/{node}/lxc/{vmid}/status/current`. */
export const lxcStatusSchema = z.object({
  vmid: num,
  status: z.enum(["running", "stopped"]),
  name: z.string().optional(),
  uptime: num.optional(),
  cpu: num.optional(),
  cpus: num.optional(),
  mem: num.optional(),
  maxmem: num.optional(),
  maxswap: num.optional(),
  disk: num.optional(),
  maxdisk: num.optional(),
  lock: z.string().optional(),
  tags: z.string().optional(),
  template: flag.optional(),
});

/** `GET /nodes/{node}/lxc/{vmid}/status/current`. */
export type LxcStatus = z.output<typeof lxcStatusSchema>;

/** The answer of `GET /nodes/{node}/lxc`. */
export const lxcListSchema = z.array(
  z.object({
    vmid: num,
    status: z.string(),
    name: z.string().optional(),
    tags: z.string().optional(),
    lock: z.string().optional(),
    maxmem: num.optional(),
    mem: num.optional(),
    cpus: num.optional(),
    template: flag.optional(),
  }),
);

/** One entry of `GET /nodes/{node}/lxc`. */
export type LxcSummary = z.output<typeof lxcListSchema>[number];

/** The answer of `GET /nodes/{node}/lxc/{vmid}/interfaces`: null while the container is stopped. */
export const lxcInterfacesSchema = z
  .array(
    z
      .object({
        name: z.string(),
        hwaddr: z.string().optional(),
        "hardware-address": z.string().optional(),
        inet: z.string().optional(),
        inet6: z.string().optional(),
      })
      .transform((i) => ({ name: i.name, hwaddr: i.hwaddr ?? i["hardware-address"] ?? "", inet: i.inet, inet6: i.inet6 })),
  )
  .nullable();

/** One interface of a running container. */
export interface LxcInterface {
  name: string;
  hwaddr: string;
  /** IPv4/CIDR, when it has one. */
  inet: string | undefined;
  inet6: string | undefined;
}

/** What `move_volume` moves, and where: another container on the same node, or another storage. */
export type LxcMoveVolume =
  | { volume: string; targetVmid: number; targetVolume?: string; digest?: string; targetDigest?: string }
  | { volume: string; storage: string; deleteSource?: boolean; digest?: string };

/** The form of `POST /nodes/{node}/lxc/{vmid}/move_volume`. Pure. */
export function moveVolumeForm(move: LxcMoveVolume): FormParams {
  const key = /^(?:mp\d+|unused\d+|rootfs)$/;
  if (!key.test(move.volume)) throw invalidParam("volume", `${JSON.stringify(move.volume)} is not rootfs, mpN or unusedN`, "name the config key, e.g. mp0");
  if ("targetVmid" in move) {
    if (move.volume === "rootfs" || move.targetVolume === "rootfs") throw invalidParam("volume", "the root volume cannot move to another container", "move a mount point (mpN)");
    if (move.targetVolume !== undefined && !key.test(move.targetVolume)) throw invalidParam("target-volume", `${JSON.stringify(move.targetVolume)} is not mpN or unusedN`, "e.g. mp0");
    return { volume: move.volume, "target-vmid": move.targetVmid, "target-volume": move.targetVolume, digest: move.digest, "target-digest": move.targetDigest };
  }
  return { volume: move.volume, storage: move.storage, delete: move.deleteSource, digest: move.digest };
}

/** The form of `PUT /nodes/{node}/lxc/{vmid}/resize` for an absolute size in GiB. Pure. */
export function resizeForm(disk: string, sizeGb: number, digest?: string): FormParams {
  if (!/^(?:rootfs|mp\d+)$/.test(disk)) throw invalidParam("disk", `${JSON.stringify(disk)} is not rootfs or mpN`, "e.g. rootfs or mp0");
  if (!Number.isFinite(sizeGb) || sizeGb <= 0) throw invalidParam("size", `${sizeGb} GiB is not positive`, "give the new size in GiB");
  return { disk, size: `${sizeGb}G`, digest };
}

/** One entry of `GET /nodes/{node}/lxc/{vmid}/snapshot`. */
export const lxcSnapshotListSchema = z.array(
  z.object({
    name: z.string(),
    description: z.string().optional(),
    parent: z.string().optional(),
    snaptime: num.optional(),
  }),
);

/** A snapshot of a container. */
export type LxcSnapshot = z.output<typeof lxcSnapshotListSchema>[number];

/** Parameters of `POST /nodes/{node}/lxc/{vmid}/clone`. */
export interface LxcCloneParams {
  newid: number;
  hostname?: string;
  description?: string;
  /** Copy every volume (always for a container that is not a template); false makes a linked clone of a template. */
  full?: boolean;
  /** Storage of a full clone's volumes. */
  storage?: string;
  /** Another node; only with shared storage. */
  target?: string;
  pool?: string;
  snapname?: string;
}

/** The form of `POST /nodes/{node}/lxc/{vmid}/clone`. Pure. */
export function cloneForm(p: LxcCloneParams): FormParams {
  if (!Number.isInteger(p.newid) || p.newid < 100) throw invalidParam("newid", `${p.newid} is not a guest id (100 or more)`, "allocate one with /cluster/nextid");
  return { newid: p.newid, hostname: p.hostname, description: p.description, full: p.full, storage: p.storage, target: p.target, pool: p.pool, snapname: p.snapname };
}
