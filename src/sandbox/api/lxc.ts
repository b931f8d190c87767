/**
 * `/nodes/{node}/lxc/...`: containers with Proxmox's semantics: creation
 * as a task under `lock: create` while holding the config file lock, start
 * and stop as tasks, live config changes, the feature-flag permission rule
 * for tokens, and delete refused for running or protected containers.
 */
import { failure, paramError, permissionDenied } from "../errors.ts";
import {
  DEV_FORMAT,
  FEATURES_FORMAT,
  MP_FORMAT,
  NET_FORMAT,
  ROOTFS_FORMAT,
  STARTUP_FORMAT,
  UNUSED_FORMAT,
  checkConfigIdList,
  checkDnsName,
  checkTagList,
  formatDiskSize,
  formatPropertyString,
  generateMac,
  normalizeTags,
  parseDiskSize,
  parseNewVolume,
  splitList,
} from "../formats.ts";
import { STORAGES, configDigest, guestCores } from "../cluster.ts";
import type { ConfigValue, GuestState } from "../cluster.ts";
import type { GuestNetwork, GuestSpec, TemplateInfo } from "../guest-backend.ts";
import { propertyValues, ruleFor } from "../params.ts";
import type { ParamSpec, PropertyValues, Rule, Scalar } from "../params.ts";
import type { TaskContext } from "../tasks.ts";
import { NODE, STORAGE, VMID, flag, num, reqNum, reqStr, str } from "./common.ts";
import type { Call, Endpoint, Reply, SandboxState } from "./types.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const optBool: Rule = { type: "boolean", optional: true };
const optStr = (extra: Partial<Extract<Rule, { type: "string" }>> = {}): Rule => ({ type: "string", optional: true, ...extra });

/** Proxmox's entrypoint pattern: no control characters except tab to shift-in. */
function checkNoControl(v: string): string | undefined {
  const bad = [...v].some((ch) => {
    const c = ch.charCodeAt(0);
    return c <= 0x08 || (c >= 0x10 && c <= 0x1f) || c === 0x7f;
  });
  return bad ? "value does not match the regex pattern" : undefined;
}

/** Options a container's config may hold, with the rules both create and update use. */
const CONFIG_RULES: Record<string, Rule> = {
  arch: optStr({ enum: ["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"] }),
  cmode: optStr({ enum: ["shell", "console", "tty"] }),
  console: optBool,
  cores: { type: "integer", optional: true, minimum: 1, maximum: 8192 },
  cpulimit: { type: "number", optional: true, minimum: 0, maximum: 8192 },
  cpuunits: { type: "integer", optional: true, minimum: 0, maximum: 500000 },
  debug: optBool,
  description: optStr({ maxLength: 8192 }),
  entrypoint: optStr({ format: checkNoControl }),
  env: optStr(),
  features: optStr({ property: FEATURES_FORMAT }),
  hookscript: optStr({ pattern: /^[^:\s]+:.+$/ }),
  hostname: optStr({ maxLength: 255, format: checkDnsName }),
  lock: optStr({ enum: ["backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"] }),
  memory: { type: "integer", optional: true, minimum: 16 },
  nameserver: optStr(),
  onboot: optBool,
  ostype: optStr({ enum: ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"] }),
  protection: optBool,
  rootfs: optStr({ property: ROOTFS_FORMAT }),
  searchdomain: optStr(),
  startup: optStr({ property: STARTUP_FORMAT }),
  swap: { type: "integer", optional: true, minimum: 0 },
  tags: optStr({ format: checkTagList }),
  template: optBool,
  timezone: optStr(),
  tty: { type: "integer", optional: true, minimum: 0, maximum: 6 },
  unprivileged: optBool,
};

const INDEXED: ParamSpec["indexed"] = {
  net: { rule: optStr({ property: NET_FORMAT }), count: 32 },
  mp: { rule: optStr({ property: MP_FORMAT }), count: 256 },
  dev: { rule: optStr({ property: DEV_FORMAT }), count: 256 },
  unused: { rule: optStr({ property: UNUSED_FORMAT }), count: 256 },
};

const CREATE_PARAMS: ParamSpec = {
  rules: {
    ...CONFIG_RULES,
    node: NODE,
    vmid: VMID,
    ostemplate: { type: "string", maxLength: 255 },
    bwlimit: { type: "number", optional: true, minimum: 0 },
    force: optBool,
    "ha-managed": optBool,
    "ignore-unpack-errors": optBool,
    password: optStr({ minLength: 5 }),
    pool: optStr(),
    restore: optBool,
    "ssh-public-keys": optStr(),
    start: optBool,
    storage: { ...STORAGE, optional: true },
    unique: { type: "boolean", optional: true, requires: "restore" },
  },
  indexed: INDEXED,
};

const UPDATE_PARAMS: ParamSpec = {
  rules: {
    ...CONFIG_RULES,
    node: NODE,
    vmid: VMID,
    delete: optStr({ format: checkConfigIdList }),
    digest: optStr({ maxLength: 40 }),
    revert: optStr({ format: checkConfigIdList }),
  },
  indexed: INDEXED,
};

const NOT_CONFIG = new Set(["node", "vmid", "delete", "digest", "revert"]);
const CREATE_ONLY = new Set(["ostemplate", "bwlimit", "force", "ha-managed", "ignore-unpack-errors", "password", "pool", "restore", "ssh-public-keys", "start", "storage", "unique", "lock"]);


/** Options a running container takes at once; the rest wait for its next start. */
const LIVE_OPTIONS = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock", "memory", "swap", "cpulimit", "cpuunits"]);
const LIVE_DELETES = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock", "swap", "cpulimit", "cpuunits"]);

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

function rootfsSize(config: Record<string, ConfigValue>): number {
  const m = /(?:^|,)size=([^,]+)/.exec(String(config["rootfs"] ?? ""));
  return m ? parseDiskSize(m[1] ?? "0") : 0;
}

function parseProp(spec: ParamSpec, name: string, text: string): PropertyValues {
  return propertyValues(ruleFor(spec, name), name, text);
}

/** Proxmox's mount point types: a storage volume, a bind-mounted host path, or a device. */
function mountType(volume: string): "volume" | "bind" | "device" {
  if (volume.startsWith("/dev/")) return "device";
  return volume.startsWith("/") ? "bind" : "volume";
}

function flagText(v: Scalar | undefined): string {
  if (v === undefined) return "";
  return typeof v === "boolean" ? (v ? "1" : "0") : String(v);
}

/**
 * Proxmox's permission rules for config changes by anyone but `root@pam`
 * itself (an API token of root is not root@pam): feature flags other than
 * `nesting`, bind and device mounts, device passthrough and hookscripts.
 */
function checkConfigPermission(
  user: string,
  unprivileged: boolean,
  oldConfig: Record<string, ConfigValue> | undefined,
  params: Record<string, Scalar>,
  deletes: string[],
): void {
  if (user === "root@pam") return;
  const check = (key: string, deleting: boolean): void => {
    if (key === "rootfs" || /^mp\d+$/.test(key)) {
      if (deleting) return;
      const type = mountType(String(parseProp(UPDATE_PARAMS, key, String(params[key]))["volume"]));
      if (type !== "volume") throw permissionDenied(`mount point type ${type} is only allowed for root@pam`);
    } else if (/^dev\d+$/.test(key)) {
      throw permissionDenied("configuring device passthrough is only allowed for root@pam");
    } else if (key === "hookscript") {
      throw permissionDenied("changing the hookscript is only allowed for root@pam");
    } else if (key === "features") {
      if (!unprivileged) throw permissionDenied("changing feature flags for privileged container is only allowed for root@pam");
      const old = oldConfig?.["features"] !== undefined ? parseProp(UPDATE_PARAMS, "features", String(oldConfig["features"])) : undefined;
      const onlyNesting = (f: PropertyValues): boolean => Object.keys(f).length === 1 && f["nesting"] === true;
      let otherChanged: boolean;
      if (deleting) {
        otherChanged = old !== undefined && Object.keys(old).length > 0 && !onlyNesting(old);
      } else {
        const next = parseProp(UPDATE_PARAMS, "features", String(params["features"]));
        if (old !== undefined && Object.keys(old).length > 0) {
          const keys = new Set([...Object.keys(old), ...Object.keys(next)]);
          otherChanged = [...keys].some((f) => f !== "nesting" && flagText(old[f]) !== flagText(next[f]));
        } else {
          otherChanged = Object.keys(next).length > 0 && !onlyNesting(next);
        }
      }
      if (otherChanged) throw permissionDenied("changing feature flags (except nesting) is only allowed for root@pam");
    }
  };
  for (const key of Object.keys(params)) if (!NOT_CONFIG.has(key)) check(key, false);
  for (const key of deletes) check(key, true);
}

/** Renders checked property values as Proxmox writes them (`volume` bare, `name` first). */
function render(values: PropertyValues, first: string[]): string {
  return first[0] === "volume" ? formatPropertyString(values, [], "volume") : formatPropertyString(values, first);
}

/** Turns a `net[n]` value into its stored form (hwaddr kept or generated, `type=veth`). */
function storeNet(name: string, text: string, previous: string | undefined): string {
  const net = parseProp(UPDATE_PARAMS, name, text);
  const old = previous !== undefined ? parseProp(UPDATE_PARAMS, name, previous) : {};
  net["hwaddr"] ??= old["hwaddr"] ?? generateMac();
  net["type"] = "veth";
  return render(net, ["name"]);
}

function guestNetworks(config: Record<string, ConfigValue>): GuestNetwork[] {
  const out: GuestNetwork[] = [];
  for (let i = 0; i < 32; i++) {
    const v = config[`net${i}`];
    if (v === undefined) continue;
    const net = parseProp(UPDATE_PARAMS, `net${i}`, String(v));
    const n: GuestNetwork = {
      name: String(net["name"]),
      bridge: String(net["bridge"] ?? ""),
      hwaddr: String(net["hwaddr"]),
      ip: String(net["ip"] ?? "manual"),
    };
    if (net["gw"] !== undefined) n.gw = String(net["gw"]);
    out.push(n);
  }
  return out;
}

/** Checks that a mount's storage exists and holds container volumes, as create does before forking. */
function checkMountStorage(volume: string): void {
  if (mountType(volume) !== "volume") return;
  const sid = volume.slice(0, volume.indexOf(":"));
  checkRootdirStorage(sid);
}

function checkRootdirStorage(sid: string): void {
  const storage = STORAGES.find((s) => s.storage === sid);
  if (!storage) throw failure(`storage '${sid}' does not exist`);
  if (!storage.content.includes("rootdir")) throw paramError({ storage: `storage '${sid}' does not support container directories` });
}

/** Allocates a mount volume given as `STORAGE:SIZE_GB`; existing volumes and host paths are kept as given. */
function allocateMount(state: SandboxState, node: string, vmid: number, name: string, text: string): string {
  const values = parseProp(UPDATE_PARAMS, name, text);
  const volume = String(values["volume"]);
  if (mountType(volume) !== "volume") return render(values, ["volume"]);
  const fresh = parseNewVolume(volume);
  if (!fresh) {
    const existing = state.cluster.volumes.get(volume);
    if (!existing || existing.vmid !== vmid) throw failure(`volume '${volume}' does not exist`);
    values["size"] ??= formatDiskSize(existing.size);
    return render(values, ["volume"]);
  }
  const vol = state.cluster.allocateVolume(node, fresh.storage, vmid, Math.round(fresh.sizeGb * GiB));
  values["volume"] = vol.volid;
  values["size"] = formatDiskSize(vol.size);
  return render(values, ["volume"]);
}

function asConfigValue(rule: Rule | undefined, v: Scalar): ConfigValue {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (rule?.type === "string") return String(v);
  return v;
}

function osTypeOf(template: string): string {
  const m = /vztmpl\/([a-z]+)-/.exec(template);
  const os = m?.[1] ?? "unmanaged";
  return ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos"].includes(os) ? os : "unmanaged";
}

function checkLock(g: GuestState): void {
  const lock = g.config["lock"];
  if (lock !== undefined) throw failure(`CT is locked (${String(lock)})`);
}

async function withFileLock<T>(state: SandboxState, vmid: number, body: () => Promise<T> | T): Promise<T> {
  const release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
  try {
    return await body();
  } finally {
    release();
  }
}

/** Backend changes implied by a config change. */
function backendChange(state: SandboxState, g: GuestState, before: Record<string, ConfigValue>, after: Record<string, ConfigValue>): Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname">> {
  const change: Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname">> = {};
  if (after["memory"] !== before["memory"]) change.memoryMb = Number(after["memory"] ?? 512);
  if (after["swap"] !== before["swap"]) change.swapMb = Number(after["swap"] ?? 512);
  if (after["cores"] !== before["cores"]) change.cores = guestCores({ ...g, config: after }, state.cluster.node(g.node).spec.cores);
  if (after["hostname"] !== before["hostname"]) change.hostname = String(after["hostname"] ?? `CT${g.vmid}`);
  return change;
}

/** Applies pending changes, as Proxmox does when a container starts. */
async function applyPending(state: SandboxState, g: GuestState, ctx: TaskContext): Promise<void> {
  if (Object.keys(g.pending).length === 0 && g.pendingDelete.length === 0) return;
  const before = g.config;
  const after: Record<string, ConfigValue> = { ...before, ...g.pending };
  for (const key of g.pendingDelete) delete after[key];
  ctx.log(`applying pending changes: ${[...Object.keys(g.pending), ...g.pendingDelete.map((k) => `-${k}`)].join(", ")}`);
  const change = backendChange(state, g, before, after);
  if (Object.keys(change).length > 0) await state.cluster.backend.update(g.vmid, change);
  g.config = after;
  g.pending = {};
  g.pendingDelete = [];
}

async function startGuest(state: SandboxState, g: GuestState, ctx: TaskContext): Promise<void> {
  await applyPending(state, g, ctx);
  const node = state.cluster.node(g.node);
  for (const net of guestNetworks(g.config)) {
    if (net.bridge !== "" && !node.bridges.includes(net.bridge)) throw new Error(`bridge '${net.bridge}' does not exist`);
  }
  const st = await state.cluster.backend.status(g.vmid);
  if (st.running) throw new Error(`CT ${g.vmid} already running`);
  await state.cluster.backend.start(g.vmid);
  g.running = true;
}

async function create(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const nodeName = reqStr(params, "node");
  state.cluster.node(nodeName);
  const vmid = reqNum(params, "vmid");
  if (flag(params, "restore")) throw failure("restore is not supported by the sandbox", 501);
  const exists = (): void => {
    const existing = state.cluster.guests.get(vmid);
    if (existing) throw failure(`CT ${vmid} already exists on node '${existing.node}'`);
  };
  exists();
  const pool = str(params, "pool");
  if (pool !== undefined) throw permissionDenied(`pool '${pool}' does not exist`);
  // Proxmox's create makes unprivileged containers unless told otherwise (the config option's own default is 0).
  const unprivileged = flag(params, "unprivileged") ?? true;
  const storage = str(params, "storage") ?? "local";
  const ostemplate = reqStr(params, "ostemplate");

  const mounts: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key !== "rootfs" && !/^mp\d+$/.test(key)) continue;
    // A bare number means a new volume of that many GiB on `storage`.
    mounts[key] = /^\d+(\.\d+)?$/.test(String(value)) ? `${storage}:${String(value)}` : String(value);
  }
  checkConfigPermission(user, unprivileged, undefined, { ...params, ...mounts }, []);
  const templateSid = /^([^:/\s]+):/.exec(ostemplate)?.[1];
  if (templateSid === undefined) throw failure(`unable to parse volume ID '${ostemplate}'`);
  if (!STORAGES.some((s) => s.storage === templateSid)) throw failure(`storage '${templateSid}' does not exist`);
  if (Object.keys(mounts).length > 0 && mounts["rootfs"] === undefined) throw failure("mount points configured, but 'rootfs' not set - aborting");
  for (const [key, text] of Object.entries(mounts)) checkMountStorage(String(parseProp(UPDATE_PARAMS, key, text)["volume"]));
  if (mounts["rootfs"] === undefined) checkRootdirStorage(storage);
  const template: TemplateInfo | undefined = (await state.cluster.templates(nodeName)).find((t) => t.volid === ostemplate);

  const config: Record<string, ConfigValue> = { arch: "amd64", ostype: osTypeOf(ostemplate) };
  for (const [key, value] of Object.entries(params)) {
    if (NOT_CONFIG.has(key) || CREATE_ONLY.has(key) || key === "rootfs" || /^(mp|unused)\d+$/.test(key) || key === "unprivileged") continue;
    if (key === "tags") {
      const tags = normalizeTags(String(value));
      if (tags !== "") config["tags"] = tags;
    } else if (/^net\d+$/.test(key)) {
      config[key] = storeNet(key, String(value), undefined);
    } else if (key === "features") {
      config[key] = render(parseProp(UPDATE_PARAMS, key, String(value)), []);
    } else {
      config[key] = asConfigValue(ruleFor(CREATE_PARAMS, key), value);
    }
  }
  if (unprivileged) config["unprivileged"] = 1;

  // Nothing awaits between this check and registering the guest, so two creators of one id cannot both pass.
  exists();
  const g: GuestState = { vmid, node: nodeName, config: { lock: "create" }, pending: {}, pendingDelete: [], created: false, running: false };
  state.cluster.guests.set(vmid, g);
  let release: () => void;
  try {
    release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
  } catch (e) {
    state.cluster.guests.delete(vmid);
    throw e;
  }
  const features = config["features"] !== undefined ? parseProp(UPDATE_PARAMS, "features", String(config["features"])) : {};
  const startAfter = flag(params, "start") ?? false;
  let made = false;
  const upid = state.tasks.start(nodeName, "vzcreate", String(vmid), user, {
    errorPrefix: `unable to create CT ${vmid} -`,
    async run(ctx) {
      for (const [key, text] of Object.entries({ rootfs: `${storage}:4`, ...mounts })) {
        config[key] = allocateMount(state, nodeName, vmid, key, text);
        const vol = String(parseProp(UPDATE_PARAMS, key, String(config[key]))["volume"]);
        if (mountType(vol) === "volume") ctx.log(`  Logical volume "${vol.replace(/^[^:]+:/, "")}" created.`);
      }
      if (!template) throw new Error(`volume '${ostemplate}' does not exist`);
      const name = ostemplate.replace(/^[^:]+:vztmpl\//, "");
      ctx.log(`extracting archive '/var/lib/vz/template/cache/${name}'`);
      config["hostname"] ??= `CT${vmid}`;
      config["memory"] ??= 512;
      config["swap"] ??= 512;
      const spec: GuestSpec = {
        vmid,
        node: nodeName,
        hostname: String(config["hostname"]),
        template,
        memoryMb: Number(config["memory"]),
        swapMb: Number(config["swap"]),
        cores: guestCores({ ...g, config }, state.cluster.node(nodeName).spec.cores),
        diskGb: rootfsSize(config) / GiB,
        net: guestNetworks(config),
        sshPublicKeys: str(params, "ssh-public-keys") ?? "",
        unprivileged,
        features: { nesting: features["nesting"] === true, keyctl: features["keyctl"] === true },
      };
      await state.cluster.backend.create(spec);
      made = true;
      ctx.log(`Total bytes read: ${template.size * 4} (${Math.round((template.size * 4) / MiB)}MiB)`);
      ctx.log(`Detected container architecture: ${String(config["arch"])}`);
      ctx.log("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...");
      g.config = { ...config };
      g.created = true;
      if (startAfter) await startGuest(state, g, ctx);
    },
    async onError() {
      if (made) await state.cluster.backend.destroy(vmid);
      state.cluster.guests.delete(vmid);
      state.cluster.freeVolumes(vmid);
    },
    finally: () => release(),
  });
  return { data: upid };
}

function checkSkiplock(call: Call): boolean {
  const skip = flag(call.params, "skiplock") ?? false;
  if (skip && call.user !== "root@pam") throw paramError({ skiplock: "Only root may use this option." });
  return skip;
}

type Action = "start" | "stop" | "shutdown" | "reboot";

async function statusAction(call: Call, action: Action): Promise<Reply> {
  const { params, state, user } = call;
  const node = reqStr(params, "node");
  state.cluster.node(node);
  const vmid = reqNum(params, "vmid");
  const skiplock = action === "start" || action === "stop" ? checkSkiplock(call) : false;
  // Like Proxmox, only the running state is checked before the task; the
  // config, its lock and the config file lock are the worker's business.
  const known = state.cluster.guests.get(vmid);
  const running = known !== undefined && known.node === node && known.created && (await state.cluster.backend.status(vmid)).running;
  if (action === "start" && running) throw failure(`CT ${vmid} already running`);
  if ((action === "stop" || action === "shutdown") && !running) throw failure(`CT ${vmid} not running`);
  // Proxmox's own wording for reboot.
  if (action === "reboot" && !running) throw failure(`VM ${vmid} not running`);
  const backend = state.cluster.backend;
  let release: (() => void) | undefined;
  const upid = state.tasks.start(node, `vz${action}`, String(vmid), user, {
    // The worker takes the config file lock first and keeps it while it works.
    async before() {
      release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
      const g = state.cluster.guest(node, vmid);
      if (!skiplock) checkLock(g);
    },
    async run(ctx) {
      const g = state.cluster.guest(node, vmid);
      switch (action) {
        case "start":
          await startGuest(state, g, ctx);
          return;
        case "stop":
          await backend.stop(vmid);
          g.running = false;
          return;
        case "shutdown":
          await backend.shutdown(vmid, num(params, "timeout") ?? 60, flag(params, "forceStop") ?? false);
          g.running = false;
          return;
        case "reboot":
          // Proxmox reboots by a shutdown and a start, which applies pending changes.
          await backend.shutdown(vmid, num(params, "timeout") ?? 60, true);
          g.running = false;
          await startGuest(state, g, ctx);
          return;
      }
    },
    finally: () => release?.(),
  });
  return { data: upid };
}

async function destroy(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = reqStr(params, "node");
  state.cluster.node(node);
  const vmid = reqNum(params, "vmid");
  const force = flag(params, "force") ?? false;
  const early = async (g: GuestState): Promise<boolean> => {
    if (g.config["protection"] === 1) throw failure(`can't remove CT ${vmid} - protection mode enabled`);
    checkLock(g);
    const running = g.created && (await state.cluster.backend.status(vmid)).running;
    if (running && !force) throw failure(`unable to destroy CT ${vmid} - container is running`);
    return running;
  };
  await early(state.cluster.guest(node, vmid));
  let release: (() => void) | undefined;
  let g: GuestState | undefined;
  const upid = state.tasks.start(node, "vzdestroy", String(vmid), user, {
    async before() {
      release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
      // Checked again under the lock: the container may have changed meanwhile.
      g = state.cluster.guest(node, vmid);
      await early(g);
    },
    async run(ctx) {
      if (g?.created) {
        if ((await state.cluster.backend.status(vmid)).running) {
          ctx.log(`forced to stop CT ${vmid} before destroying!`);
          await state.cluster.backend.stop(vmid);
          g.running = false;
        }
        await state.cluster.backend.destroy(vmid);
      }
      for (const v of state.cluster.volumes.values()) {
        if (v.vmid === vmid) ctx.log(`  Logical volume "${v.volid.replace(/^[^:]+:/, "")}" successfully removed.`);
      }
      state.cluster.freeVolumes(vmid);
      if (flag(params, "purge")) ctx.log(`purging CT ${vmid} from related configurations..`);
      // Only now the config goes, so the id cannot be reused while its volumes are removed.
      state.cluster.guests.delete(vmid);
    },
    finally: () => release?.(),
  });
  return { data: upid };
}

async function updateConfig(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = reqStr(params, "node");
  state.cluster.node(node);
  const vmid = reqNum(params, "vmid");
  state.cluster.guest(node, vmid);
  const deletes = splitList(str(params, "delete") ?? "");
  for (const key of deletes) {
    if (key in params) throw paramError({ delete: `you can't use '-${key}' and -delete ${key}' at the same time` });
  }
  return withFileLock(state, vmid, async () => {
    const g = state.cluster.guest(node, vmid);
    // A sandbox stand-in for `pct unlock`: deleting only `lock` passes a lock.
    const onlyUnlock = deletes.length === 1 && deletes[0] === "lock" && Object.keys(params).every((k) => NOT_CONFIG.has(k));
    if (!onlyUnlock) checkLock(g);
    const digest = str(params, "digest");
    if (digest !== undefined && digest !== configDigest(g.config)) {
      throw failure("detected modified configuration - file changed by other user? Try again.");
    }
    checkConfigPermission(user, g.config["unprivileged"] === 1, g.config, params, deletes);

    const protectedMsg = (key: string): string => `can't update CT ${vmid} drive '${key}' - protection mode enabled`;
    const changes: Record<string, ConfigValue> = {};
    const removals: string[] = [];
    for (const key of deletes) {
      const current = g.pending[key] ?? g.config[key];
      // Proxmox only warns about deleting what is not set.
      if (current === undefined) continue;
      if (["memory", "rootfs", "ostype"].includes(key)) throw failure(`unable to delete required option '${key}'`);
      if (key === "unprivileged") throw failure("unable to delete read-only option: 'unprivileged'");
      if (/^(mp|unused)\d+$/.test(key) && g.config["protection"] === 1) throw failure(`can't remove CT ${vmid} drive '${key}' - protection mode enabled`);
      removals.push(key);
    }
    for (const [key, value] of Object.entries(params).sort(([a], [b]) => a.localeCompare(b))) {
      if (NOT_CONFIG.has(key)) continue;
      if (key === "unprivileged") throw failure("unable to modify read-only option: 'unprivileged'");
      if (key === "rootfs" || /^mp\d+$/.test(key)) {
        if (g.config["protection"] === 1) throw failure(protectedMsg(key));
        const volume = String(parseProp(UPDATE_PARAMS, key, String(value))["volume"]);
        if (mountType(volume) === "volume") {
          const sid = volume.slice(0, volume.indexOf(":"));
          const def = STORAGES.find((s) => s.storage === sid);
          if (!def) throw failure(`storage '${sid}' does not exist`);
          if (!def.content.includes("rootdir")) throw failure(`storage '${sid}' does not allow content type 'rootdir' (Container)`);
        }
        if (key === "rootfs") {
          const now = String(parseProp(UPDATE_PARAMS, "rootfs", String(g.config["rootfs"]))["volume"]);
          if (volume !== now) throw failure("sandbox: replacing the root volume is not supported; change its options only");
        }
      }
      if (key === "tags") changes[key] = normalizeTags(String(value));
      else if (/^net\d+$/.test(key)) {
        const old = g.pending[key] ?? g.config[key];
        changes[key] = storeNet(key, String(value), old === undefined ? undefined : String(old));
      } else if (/^mp\d+$/.test(key)) changes[key] = allocateMount(state, node, vmid, key, String(value));
      else if (key === "features") changes[key] = render(parseProp(UPDATE_PARAMS, key, String(value)), []);
      else if (key === "rootfs") changes[key] = render(parseProp(UPDATE_PARAMS, key, String(value)), ["volume"]);
      else changes[key] = asConfigValue(ruleFor(UPDATE_PARAMS, key), value);
    }

    const running = g.created && (await state.cluster.backend.status(vmid)).running;
    const before = g.config;
    const next: Record<string, ConfigValue> = { ...before };
    const pending = { ...g.pending };
    const pendingDelete = g.pendingDelete.filter((k) => !(k in changes));
    for (const [key, value] of Object.entries(changes)) {
      // A running container takes some options at once, and new mount points or NICs are hot-plugged.
      const live = !running || LIVE_OPTIONS.has(key) || /^net\d+$/.test(key) || (/^mp\d+$/.test(key) && before[key] === undefined);
      if (live) {
        if (key === "tags" && value === "") delete next[key];
        else next[key] = value;
        delete pending[key];
      } else {
        pending[key] = value;
      }
    }
    for (const key of removals) {
      if (!running || LIVE_DELETES.has(key) || /^(net|unused)\d+$/.test(key)) {
        const old = next[key];
        delete next[key];
        delete pending[key];
        if (/^mp\d+$/.test(key) && old !== undefined) {
          // Proxmox keeps a removed mount point's volume as an unused disk.
          const volume = String(parseProp(UPDATE_PARAMS, key, String(old))["volume"]);
          if (state.cluster.volumes.has(volume)) {
            let i = 0;
            while (next[`unused${i}`] !== undefined) i++;
            next[`unused${i}`] = volume;
          }
        }
        if (/^unused\d+$/.test(key) && old !== undefined) state.cluster.volumes.delete(String(old));
      } else if (!pendingDelete.includes(key)) {
        pendingDelete.push(key);
      }
    }
    const change = backendChange(state, g, before, next);
    if (g.created && Object.keys(change).length > 0) await state.cluster.backend.update(vmid, change);
    g.config = next;
    g.pending = pending;
    g.pendingDelete = pendingDelete;
    return { data: null };
  });
}

/** The config with pending changes laid over it, as `GET .../config` shows by default. */
function withPending(g: GuestState): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = { ...g.config, ...g.pending };
  for (const key of g.pendingDelete) delete out[key];
  return out;
}

const NODE_VMID: ParamSpec = { rules: { node: NODE, vmid: VMID } };

/** The endpoints of this module. */
export const lxcEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/nodes/{node}/lxc",
    params: { rules: { node: NODE } },
    async handle({ params, state }) {
      const node = reqStr(params, "node");
      state.cluster.node(node);
      const data: Record<string, unknown>[] = [];
      for (const g of state.cluster.guests.values()) if (g.node === node) data.push(await guestSummary(state, g));
      return { data };
    },
  },
  { method: "POST", path: "/nodes/{node}/lxc", params: CREATE_PARAMS, handle: create },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}",
    params: NODE_VMID,
    handle({ params, state }) {
      state.cluster.node(reqStr(params, "node"));
      state.cluster.guest(reqStr(params, "node"), reqNum(params, "vmid"));
      const subdirs = ["config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy", "remote_migrate", "migrate", "clone", "snapshot", "firewall", "rrd", "rrddata", "feature", "resize", "move_volume", "interfaces"];
      return Promise.resolve({ data: subdirs.map((subdir) => ({ subdir })) });
    },
  },
  { method: "DELETE", path: "/nodes/{node}/lxc/{vmid}", params: { rules: { ...NODE_VMID.rules, "destroy-unreferenced-disks": optBool, force: optBool, purge: optBool } }, handle: destroy },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/config",
    params: { rules: { ...NODE_VMID.rules, current: optBool, snapshot: optStr({ maxLength: 40 }) } },
    handle({ params, state }) {
      const node = reqStr(params, "node");
      state.cluster.node(node);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const snapshot = str(params, "snapshot");
      if (snapshot !== undefined) throw failure(`snapshot '${snapshot}' does not exist`);
      const config = flag(params, "current") ? g.config : withPending(g);
      return Promise.resolve({ data: { ...config, digest: configDigest(g.config) } });
    },
  },
  { method: "PUT", path: "/nodes/{node}/lxc/{vmid}/config", params: UPDATE_PARAMS, handle: updateConfig },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/status/current",
    params: NODE_VMID,
    async handle({ params, state }) {
      const node = reqStr(params, "node");
      state.cluster.node(node);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      return { data: { ...(await guestSummary(state, g)), ha: { managed: 0 } } };
    },
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/status/start",
    params: { rules: { ...NODE_VMID.rules, debug: optBool, skiplock: optBool } },
    handle: (call) => statusAction(call, "start"),
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/status/stop",
    params: { rules: { ...NODE_VMID.rules, "overrule-shutdown": optBool, skiplock: optBool } },
    handle: (call) => statusAction(call, "stop"),
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/status/shutdown",
    params: { rules: { ...NODE_VMID.rules, forceStop: optBool, timeout: { type: "integer", optional: true, minimum: 0 } } },
    handle: (call) => statusAction(call, "shutdown"),
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/status/reboot",
    params: { rules: { ...NODE_VMID.rules, timeout: { type: "integer", optional: true, minimum: 0 } } },
    handle: (call) => statusAction(call, "reboot"),
  },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/interfaces",
    params: NODE_VMID,
    async handle({ params, state }) {
      const node = reqStr(params, "node");
      state.cluster.node(node);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const list = g.created ? await state.cluster.backend.interfaces(g.vmid) : null;
      if (list === null) return { data: null };
      return {
        data: list.map((i) => {
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
        }),
      };
    },
  },
];
