/**
 * LXC containers: typed create and config parameters (serialised to the
 * form and property strings Proxmox expects), lifecycle calls waited on
 * through the task module, and id allocation that survives a race with
 * another creator.
 */
import { z } from "zod";
import type { ClusterApi } from "./cluster.ts";
import { ProxmoxAlreadyExistsError, ProxmoxAuthError, ProxmoxLockedError, ProxmoxTaskError, ProxmoxValidationError, contextFromPath } from "./errors.ts";
import { apiPath, backoffDelay, retryDecision } from "./http.ts";
import type { FormParams, FormValue, ProxmoxHttp, RetryState } from "./http.ts";
import { flag, num } from "./schema.ts";
import type { TaskResult, TasksApi, WaitOptions } from "./tasks.ts";

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
  lock: string | undefined;
  digest: string | undefined;
  /** Every key as Proxmox returned it. */
  raw: Record<string, string | number>;
}

const NAME = /^[-_.\w]+$/;
const TAG = /^[a-z0-9_][a-z0-9_+.-]*$/;

function invalid(param: string, message: string, hint: string): ProxmoxValidationError {
  return new ProxmoxValidationError(param, `${param}: ${message}`, hint);
}

function propertyValue(param: string, key: string, value: string): string {
  if (/[,=\n]/.test(value)) {
    throw invalid(param, `${key} value ${JSON.stringify(value)} contains ',', '=' or a newline`, "Proxmox property strings cannot carry these characters");
  }
  return value;
}

const b01 = (v: boolean): string => (v ? "1" : "0");

/** Serialises a network interface to its property string (`name=eth0,bridge=vmbr0,ip=dhcp`). Pure. */
export function formatNetwork(net: LxcNetwork, param = "net0"): string {
  if (!NAME.test(net.name)) throw invalid(param, `interface name ${JSON.stringify(net.name)} is invalid`, "use a name like eth0");
  if (net.bridge !== undefined && !NAME.test(net.bridge)) throw invalid(param, `bridge ${JSON.stringify(net.bridge)} is invalid`, "use a bridge name like vmbr0");
  if (net.ip !== undefined && !/^(?:dhcp|manual|\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2})$/.test(net.ip)) {
    throw invalid(param, `ip ${JSON.stringify(net.ip)} is not dhcp, manual or IPv4/CIDR`, "e.g. ip: 10.0.0.5/24 with gw: 10.0.0.1, or ip: dhcp");
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
    if (!NAME.test(rootfs.storage)) throw invalid("rootfs", `storage ${JSON.stringify(rootfs.storage)} is invalid`, "use a storage id like local-lvm");
    if (!Number.isFinite(rootfs.sizeGb) || rootfs.sizeGb <= 0) throw invalid("rootfs", `size ${rootfs.sizeGb} GiB is not positive`, "give the disk size in GiB, e.g. 8");
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
    for (const fs of features.mount) if (!/^[A-Za-z0-9_]+$/.test(fs)) throw invalid("features", `mount type ${JSON.stringify(fs)} is invalid`, "e.g. nfs, cifs");
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
      throw invalid("tags", `tag ${JSON.stringify(tag)} is invalid`, "Proxmox tags are letters, digits and _ + - . (no ':' or spaces); write tier:1 as tier-1");
    }
    normal.add(t);
  }
  return [...normal].sort().join(";");
}

/** Splits a tag list as Proxmox returns it (`;`, `,` or spaces). Pure. */
export function parseTags(text: string | undefined): string[] {
  return (text ?? "").split(/[;, ]+/).filter((t) => t !== "");
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
    throw invalid("hostname", `${JSON.stringify(settings.hostname)} is not a DNS name`, "use letters, digits and '-', e.g. peach");
  }
  // Only when given, so forms without it keep their exact shape.
  if (settings.protection !== undefined) form.protection = settings.protection;
  if (settings.net0 !== undefined) form.net0 = formatNetwork(settings.net0, "net0");
  for (const [index, net] of Object.entries(settings.net ?? {})) form[`net${index}`] = formatNetwork(net, `net${index}`);
  if (settings.tags !== undefined) form.tags = formatTags(settings.tags);
  if (settings.features !== undefined) form.features = formatFeatures(settings.features);
  return form;
}

/** The form of `POST /nodes/{node}/lxc` for a given vmid. Pure. */
export function lxcCreateForm(params: LxcCreateParams, vmid: number): FormParams {
  if (!Number.isInteger(vmid) || vmid < 100) throw invalid("vmid", `${vmid} is not a guest id (100 or more)`, "leave vmid out to allocate one");
  if (params.ostemplate.trim() === "") throw invalid("ostemplate", "is empty", "give a template volid such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
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
      if (!/^[a-z][a-z0-9_-]*$/.test(key)) throw invalid("delete", `${JSON.stringify(key)} is not a setting name`, "e.g. net1, description");
      if (form[key] !== undefined) throw invalid("delete", `${key} is both set and deleted`, "do one or the other");
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
  for (const [key, value] of Object.entries(raw)) {
    const m = /^net(\d+)$/.exec(key);
    if (m) net[Number(m[1])] = parseNetwork(String(value));
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
    lock: str("lock"),
    digest: str("digest"),
    raw,
  };
}

const configSchema = z.record(z.string(), z.union([z.string(), z.number()]));

const statusSchema = z.object({
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
export type LxcStatus = z.output<typeof statusSchema>;

const listSchema = z.array(
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
export type LxcSummary = z.output<typeof listSchema>[number];

const interfacesSchema = z
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

/** Options of the lifecycle calls that wait for their task. */
export interface TaskCallOptions {
  wait?: WaitOptions;
}

/**
 * `unprivileged` of a create that does not send it: Proxmox's create makes an unprivileged
 * container unless told otherwise (pve-container: `$unprivileged = 1 if !defined($unprivileged)`;
 * the config option's own default, for a container without the line, is 0).
 */
export const CREATE_UNPRIVILEGED_DEFAULT = true;

/** The result of create: the id it got, and the finished task. */
export interface LxcCreateResult extends TaskResult {
  vmid: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** LXC container calls. */
export class LxcApi {
  private readonly http: ProxmoxHttp;
  private readonly tasks: TasksApi;
  private readonly cluster: ClusterApi;

  constructor(http: ProxmoxHttp, tasks: TasksApi, cluster: ClusterApi) {
    this.http = http;
    this.tasks = tasks;
    this.cluster = cluster;
  }

  /** Containers on a node. */
  async list(node: string): Promise<LxcSummary[]> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc` }, listSchema);
  }

  /**
   * Creates a container and waits for it. Without `vmid`, allocates one and, if another
   * creator takes it first ("already exists"), allocates again; nothing else is retried.
   */
  async create(node: string, params: LxcCreateParams, options: TaskCallOptions = {}): Promise<LxcCreateResult> {
    const path = apiPath`/nodes/${node}/lxc`;
    if (params.features !== undefined) this.checkFeatures(params.features, params.unprivileged ?? CREATE_UNPRIVILEGED_DEFAULT, "POST", path, node);
    const allocate = params.vmid === undefined;
    const attempts = allocate ? this.http.retry.idRaceAttempts : 1;
    for (let attempt = 1; ; attempt += 1) {
      const vmid = params.vmid ?? (await this.cluster.nextId());
      const form = lxcCreateForm(params, vmid);
      try {
        const upid = await this.http.call({ method: "POST", path, params: form, secretParams: ["password"] }, z.string());
        const result = await this.tasks.wait(upid, options.wait, contextFromPath("POST", path));
        return { ...result, vmid };
      } catch (error) {
        // Only a lost id race is safe to repeat: the other creator's guest holds the id and ours does not exist.
        const lostRace =
          error instanceof ProxmoxAlreadyExistsError || (error instanceof ProxmoxTaskError && /already exists/.test(error.exitstatus ?? ""));
        if (!lostRace || attempt >= attempts) throw error;
        await sleep(backoffDelay(attempt, this.http.retry.baseDelayMs, this.http.retry.maxDelayMs, this.http.retry.random));
      }
    }
  }

  /** The container's config, parsed (`current` reads applied values instead of pending ones). */
  async config(node: string, vmid: number, options: { current?: boolean } = {}): Promise<LxcConfig> {
    const raw = await this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/config`, params: { current: options.current } }, configSchema);
    return parseLxcConfig(raw);
  }

  /** Changes the container's config. */
  async updateConfig(node: string, vmid: number, update: LxcConfigUpdate): Promise<void> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/config`;
    if (update.features !== undefined) this.checkFeatures(update.features, undefined, "PUT", path, node, vmid);
    await this.http.call({ method: "PUT", path, params: lxcUpdateForm(update) }, z.null());
  }

  /** Live status: running or stopped, uptime, memory. */
  async status(node: string, vmid: number): Promise<LxcStatus> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/status/current` }, statusSchema);
  }

  /** Starts the container and waits. */
  async start(node: string, vmid: number, options: TaskCallOptions = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "start", {}, options);
  }

  /** Stops the container hard and waits. */
  async stop(node: string, vmid: number, options: TaskCallOptions & { overruleShutdown?: boolean } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "stop", { "overrule-shutdown": options.overruleShutdown }, options);
  }

  /** Shuts the container down cleanly (hard stop after `timeoutSec` with `forceStop`) and waits. */
  async shutdown(node: string, vmid: number, options: TaskCallOptions & { timeoutSec?: number; forceStop?: boolean } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "shutdown", { timeout: options.timeoutSec, forceStop: options.forceStop }, options);
  }

  /** Reboots the container and waits. */
  async reboot(node: string, vmid: number, options: TaskCallOptions & { timeoutSec?: number } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "reboot", { timeout: options.timeoutSec }, options);
  }

  /** Destroys the container (it must be stopped unless `force`) and waits. */
  async delete(
    node: string,
    vmid: number,
    options: TaskCallOptions & { purge?: boolean; force?: boolean; destroyUnreferencedDisks?: boolean } = {},
  ): Promise<TaskResult> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}`;
    const upid = await this.http.call(
      { method: "DELETE", path, params: { purge: options.purge, force: options.force, "destroy-unreferenced-disks": options.destroyUnreferencedDisks } },
      z.string(),
    );
    return this.tasks.wait(upid, options.wait, contextFromPath("DELETE", path));
  }

  /** Interfaces with their addresses; null while the container is stopped. */
  async interfaces(node: string, vmid: number): Promise<LxcInterface[] | null> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/interfaces` }, interfacesSchema);
  }

  // Proxmox checks only the running state before a lifecycle task; the worker takes the config
  // file lock and checks the guest's lock first thing, before it acts. So a task refused on a
  // lock did nothing and is sent again like a synchronous lock refusal (which the transport
  // retries), under the same policy: `lockAttempts` tasks at most, the lock backoff between them.
  private async lifecycle(node: string, vmid: number, action: "start" | "stop" | "shutdown" | "reboot", params: FormParams, options: TaskCallOptions): Promise<TaskResult> {
    const path = `${apiPath`/nodes/${node}/lxc/${vmid}/status/`}${action}`;
    const origin = contextFromPath("POST", path);
    const state: RetryState = { idempotent: false, tries: 0, lockTries: 0, reauthed: false, canReauth: false };
    for (;;) {
      state.tries += 1;
      const upid = await this.http.call({ method: "POST", path, params }, z.string());
      try {
        return await this.tasks.wait(upid, options.wait, origin);
      } catch (error) {
        const decision = error instanceof ProxmoxLockedError ? retryDecision(error, state, this.http.retry) : undefined;
        if (decision?.retry !== true) throw error;
        state.lockTries += 1;
        this.http.log(`retry POST ${path} in ${decision.delayMs} ms (lock, task ${upid}): ${error instanceof Error ? error.message : String(error)}`);
        await sleep(decision.delayMs);
      }
    }
  }

  // Proxmox lets only root@pam itself (not even root's API tokens) set features other than
  // nesting, or any feature of a privileged container; refusing before the request gives a
  // clear error without a round trip. Unknown privilege (an update) is left to the server.
  private checkFeatures(features: LxcFeatures, unprivileged: boolean | undefined, method: string, path: string, node: string, vmid?: number): void {
    if (this.http.auth?.identity === "root@pam") return;
    if (!featuresNeedRoot(features, unprivileged)) return;
    throw new ProxmoxAuthError({
      method,
      path,
      node,
      vmid,
      status: 403,
      reason: "Permission check failed",
      message: `features ${formatFeatures(features)}${unprivileged === false ? " on a privileged container" : ""} need root@pam, and the client acts as ${this.http.auth?.identity ?? "nobody"}`,
      hint: "only root@pam itself may set features other than nesting, or any feature of a privileged container (an API token cannot, even root's): use an unprivileged container with nesting=1 only, use password credentials for root@pam, or set the features on the node with `pct set`",
      preflight: true,
    });
  }
}
