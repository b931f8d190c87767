/**
 * How a container's config changes, as pve-container applies it: the
 * stored form of each option (tags normalised, a NIC's hwaddr kept or
 * generated, property strings rendered), what a running container takes at
 * once and what waits as a pending change for its next start, deletes, and
 * what a config means to the guest backend.
 */
import { guestCores } from "../../cluster.ts";
import type { ConfigValue, GuestState } from "../../cluster.ts";
import { generateMac, normalizeTags } from "../../formats.ts";
import type { GuestNetwork, GuestSpec, TemplateInfo } from "../../guest-backend.ts";
import type { Rule, Scalar } from "../../params.ts";
import type { TaskContext } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { checkChange, checkDelete } from "./checks.ts";
import { CREATE_ONLY, NOT_CONFIG, configRule, propertyOf, render } from "./schema.ts";
import { allocateMount, freeUnused, keepAsUnused, rootfsSize } from "./volumes.ts";

const GiB = 1024 ** 3;

/** Options a running container takes at once; the rest wait for its next start. */
const LIVE_OPTIONS = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock", "memory", "swap", "cpulimit", "cpuunits"]);
const LIVE_DELETES = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock", "swap", "cpulimit", "cpuunits"]);

function asConfigValue(rule: Rule | undefined, v: Scalar): ConfigValue {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (rule?.type === "string") return String(v);
  return v;
}

/** Turns a `net[n]` value into its stored form (hwaddr kept or generated, `type=veth`). */
function storeNet(name: string, text: string, previous: string | undefined): string {
  const net = propertyOf(name, text);
  const old = previous !== undefined ? propertyOf(name, previous) : {};
  net["hwaddr"] ??= old["hwaddr"] ?? generateMac();
  net["type"] = "veth";
  return render(net, ["name"]);
}

/** The stored form of an option other than a mount point; `previous` is the NIC it replaces. */
function storedValue(key: string, value: Scalar, previous: ConfigValue | undefined): ConfigValue {
  if (key === "tags") return normalizeTags(String(value));
  if (/^net\d+$/.test(key)) return storeNet(key, String(value), previous === undefined ? undefined : String(previous));
  if (key === "features") return render(propertyOf(key, String(value)), []);
  if (key === "rootfs") return render(propertyOf(key, String(value)), ["volume"]);
  return asConfigValue(configRule(key), value);
}

function osTypeOf(template: string): string {
  const m = /vztmpl\/([a-z]+)-/.exec(template);
  const os = m?.[1] ?? "unmanaged";
  return ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos"].includes(os) ? os : "unmanaged";
}

/** A new container's config from its create parameters; volumes are allocated by the task, defaults filled there. */
export function createConfig(params: Record<string, Scalar>, ostemplate: string, unprivileged: boolean): Record<string, ConfigValue> {
  const config: Record<string, ConfigValue> = { arch: "amd64", ostype: osTypeOf(ostemplate) };
  for (const [key, value] of Object.entries(params)) {
    if (NOT_CONFIG.has(key) || CREATE_ONLY.has(key) || key === "rootfs" || /^(mp|unused)\d+$/.test(key) || key === "unprivileged") continue;
    const stored = storedValue(key, value, undefined);
    if (key === "tags" && stored === "") continue;
    config[key] = stored;
  }
  if (unprivileged) config["unprivileged"] = 1;
  return config;
}

/** A config update worked out and checked, not yet applied. */
export interface ConfigUpdate {
  /** Stored values by option, new mount volumes already allocated. */
  changes: Record<string, ConfigValue>;
  /** Deleted options that are set (Proxmox only warns about the others). */
  removals: string[];
}

/** Checks an update's deletes and values and works out their stored form, in pve-container's order. */
export function planUpdate(state: SandboxState, g: GuestState, params: Record<string, Scalar>, deletes: string[]): ConfigUpdate {
  const removals: string[] = [];
  for (const key of deletes) {
    const current = g.pending[key] ?? g.config[key];
    if (current === undefined) continue;
    checkDelete(g, key);
    removals.push(key);
  }
  const changes: Record<string, ConfigValue> = {};
  for (const [key, value] of Object.entries(params).sort(([a], [b]) => a.localeCompare(b))) {
    if (NOT_CONFIG.has(key)) continue;
    checkChange(g, key, value);
    if (/^mp\d+$/.test(key)) changes[key] = allocateMount(state, g.node, g.vmid, key, String(value));
    else changes[key] = storedValue(key, value, g.pending[key] ?? g.config[key]);
  }
  return { changes, removals };
}

/**
 * Applies an update: at once when the container is stopped; while it runs,
 * the options it takes live at once (new mount points and NICs are
 * hot-plugged) and the rest as pending changes. The backend follows.
 */
export async function applyUpdate(state: SandboxState, g: GuestState, update: ConfigUpdate, running: boolean): Promise<void> {
  const { changes, removals } = update;
  const before = g.config;
  const next: Record<string, ConfigValue> = { ...before };
  const pending = { ...g.pending };
  const pendingDelete = g.pendingDelete.filter((k) => !(k in changes));
  for (const [key, value] of Object.entries(changes)) {
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
      if (/^mp\d+$/.test(key) && old !== undefined) keepAsUnused(state, next, key, old);
      if (/^unused\d+$/.test(key) && old !== undefined) freeUnused(state, old);
    } else if (!pendingDelete.includes(key)) {
      pendingDelete.push(key);
    }
  }
  const change = backendChange(state, g, before, next);
  if (g.created && Object.keys(change).length > 0) await state.cluster.backend.update(g.vmid, change);
  g.config = next;
  g.pending = pending;
  g.pendingDelete = pendingDelete;
}

/** The config with pending changes laid over it, as `GET .../config` shows by default. */
export function withPending(g: GuestState): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = { ...g.config, ...g.pending };
  for (const key of g.pendingDelete) delete out[key];
  return out;
}

/** Applies pending changes, as Proxmox does when a container starts. */
export async function applyPending(state: SandboxState, g: GuestState, ctx: TaskContext): Promise<void> {
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

/** What the backend changes on a guest when its config goes from `before` to `after`. */
function backendChange(state: SandboxState, g: GuestState, before: Record<string, ConfigValue>, after: Record<string, ConfigValue>): Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname">> {
  const change: Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname">> = {};
  if (after["memory"] !== before["memory"]) change.memoryMb = Number(after["memory"] ?? 512);
  if (after["swap"] !== before["swap"]) change.swapMb = Number(after["swap"] ?? 512);
  if (after["cores"] !== before["cores"]) change.cores = guestCores({ ...g, config: after }, state.cluster.node(g.node).spec.cores);
  if (after["hostname"] !== before["hostname"]) change.hostname = String(after["hostname"] ?? `CT${g.vmid}`);
  return change;
}

/** The NICs of a config, as the backend wires them. */
export function guestNetworks(config: Record<string, ConfigValue>): GuestNetwork[] {
  const out: GuestNetwork[] = [];
  for (let i = 0; i < 32; i++) {
    const v = config[`net${i}`];
    if (v === undefined) continue;
    const net = propertyOf(`net${i}`, String(v));
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

/** Fills the options every container has once it is made (Proxmox writes them at create). */
export function fillCreateDefaults(config: Record<string, ConfigValue>, vmid: number): void {
  config["hostname"] ??= `CT${vmid}`;
  config["memory"] ??= 512;
  config["swap"] ??= 512;
}

/** What the backend makes for a container with this (complete) config. */
export function guestSpec(
  state: SandboxState,
  g: GuestState,
  config: Record<string, ConfigValue>,
  made: { template: TemplateInfo; sshPublicKeys: string; unprivileged: boolean },
): GuestSpec {
  const features = config["features"] !== undefined ? propertyOf("features", String(config["features"])) : {};
  return {
    vmid: g.vmid,
    node: g.node,
    hostname: String(config["hostname"]),
    template: made.template,
    memoryMb: Number(config["memory"]),
    swapMb: Number(config["swap"]),
    cores: guestCores({ ...g, config }, state.cluster.node(g.node).spec.cores),
    diskGb: rootfsSize(config) / GiB,
    net: guestNetworks(config),
    sshPublicKeys: made.sshPublicKeys,
    unprivileged: made.unprivileged,
    features: { nesting: features["nesting"] === true, keyctl: features["keyctl"] === true },
  };
}
