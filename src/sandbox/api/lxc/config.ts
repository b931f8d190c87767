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
import type { GuestChange, GuestNetwork, GuestSpec, TemplateInfo } from "../../guest-backend.ts";
import type { Rule, Scalar } from "../../params.ts";
import type { TaskContext } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { paramError } from "../../errors.ts";
import { checkChange, checkDelete } from "./checks.ts";
import { CREATE_ONLY, NOT_CONFIG, configRule, propertyOf, render } from "./schema.ts";
import {
  addUnused,
  allocateMount,
  deleteMountVolume,
  dropUsedUnused,
  freeVolume,
  guestMount,
  guestMounts,
  isVolumeInUse,
  mountKeys,
  mountType,
  rootfsRef,
  rootfsSize,
  usedVolumes,
  volumeOf,
} from "./volumes.ts";

const GiB = 1024 ** 3;

/** Options a running container takes as they are (pve-container's "fast plug" options). */
const FASTPLUG = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"]);

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
  /** Stored values by option; new volumes (`STORAGE:SIZE`) are allocated when the change applies. */
  changes: Record<string, ConfigValue>;
  /** Deleted options that are set now or pending (Proxmox only warns about the others). */
  removals: string[];
  /** Pending changes to drop (`revert`). */
  reverts: string[];
}

/** Checks an update's deletes and values and works out their stored form, in pve-container's order. */
export function planUpdate(state: SandboxState, g: GuestState, params: Record<string, Scalar>, deletes: string[], reverts: string[] = []): ConfigUpdate {
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
    checkChange(state, g, key, value);
    if (/^mp\d+$/.test(key)) changes[key] = render(propertyOf(key, String(value)), ["volume"]);
    else changes[key] = storedValue(key, value, g.pending[key] ?? g.config[key]);
  }
  return { changes, removals, reverts };
}

/** The working copy of a guest's config while a change is applied. */
interface Draft {
  config: Record<string, ConfigValue>;
  pending: Record<string, ConfigValue>;
  pendingDelete: string[];
}

/** A working copy of a guest's config, pending values and pending deletes. */
function draftOf(g: GuestState): Draft {
  return { config: { ...g.config }, pending: { ...g.pending }, pendingDelete: [...g.pendingDelete] };
}

/** Drops pending values equal to the current ones and pending deletes of options that are not set (`cleanup_pending`). */
function cleanupPending(d: Draft): void {
  for (const key of Object.keys(d.pending)) if (d.config[key] !== undefined && d.pending[key] === d.config[key]) delete d.pending[key];
  d.pendingDelete = d.pendingDelete.filter((k) => d.config[k] !== undefined);
}

/**
 * Applies a pending `mp[n]`, as `apply_pending_mountpoint` does: a new
 * volume is allocated; on a running guest it is mounted at once (a mount
 * point that exists already is left pending); the volume it replaces
 * becomes unused.
 */
async function applyPendingMount(state: SandboxState, g: GuestState, d: Draft, key: string, running: boolean): Promise<"applied" | "skip"> {
  const old = d.config[key];
  if (running && old !== undefined) return "skip";
  const { value, allocated } = await allocateMount(state, g.node, g.vmid, key, String(d.pending[key]));
  if (running) {
    try {
      await state.cluster.backend.setMounts(g.vmid, rootfsRef(state, g.node, d.config), guestMounts(state, g.node, { ...d.config, [key]: value }), [guestMount(state, g.node, key, value)]);
    } catch (e) {
      if (allocated) await freeVolume(state, allocated).catch(() => undefined);
      throw e;
    }
  }
  d.config[key] = value;
  delete d.pending[key];
  if (old !== undefined) {
    const volume = volumeOf(key, String(old));
    if (mountType(volume) === "volume" && !usedVolumes(d.config).includes(volume)) addUnused(d.config, volume);
  }
  return "applied";
}

/** Deletes `unusedN`'s volume unless the rest of the config or a snapshot still uses it (`delete_mountpoint_volume` behind an unused disk's delete). */
async function deleteUnused(state: SandboxState, g: GuestState, d: Draft, key: string, volume: string): Promise<void> {
  const rest = { ...d.config };
  delete rest[key];
  if (!isVolumeInUse(g, rest, volume, true, true)) await deleteMountVolume(state, g.node, g.vmid, volume);
}

/** Applies pending changes of a stopped guest (`vmconfig_apply_pending`); `only` limits it to the options a request touched. */
async function applyPendingStopped(state: SandboxState, g: GuestState, d: Draft, only: Set<string> | undefined, errors: Record<string, string>): Promise<void> {
  for (const key of [...d.pendingDelete].sort()) {
    if (only && !only.has(key)) continue;
    try {
      const old = d.config[key];
      if (/^mp\d+$/.test(key) && old !== undefined) {
        const volume = volumeOf(key, String(old));
        if (mountType(volume) === "volume") addUnused(d.config, volume);
      } else if (/^unused\d+$/.test(key) && old !== undefined) {
        await deleteUnused(state, g, d, key, String(old));
      }
      delete d.config[key];
      d.pendingDelete = d.pendingDelete.filter((k) => k !== key);
    } catch (e) {
      errors[key] = `unable to apply pending change ${key} : ${(e as Error).message}`;
    }
  }
  cleanupPending(d);
  for (const key of Object.keys(d.pending).sort()) {
    if (only && !only.has(key)) continue;
    try {
      if (/^mp\d+$/.test(key)) {
        await applyPendingMount(state, g, d, key, false);
        continue;
      }
      d.config[key] = d.pending[key] as ConfigValue;
      delete d.pending[key];
    } catch (e) {
      errors[key] = `unable to apply pending change ${key} : ${(e as Error).message}`;
    }
  }
}

/** What a running guest takes at once (`vmconfig_hotplug_pending`); the rest stays pending for its next start. */
async function hotplugPending(state: SandboxState, g: GuestState, d: Draft, only: Set<string>, errors: Record<string, string>): Promise<void> {
  for (const key of Object.keys(d.pending).sort()) {
    if (only.has(key) && FASTPLUG.has(key)) {
      d.config[key] = d.pending[key] as ConfigValue;
      delete d.pending[key];
    }
  }
  for (const key of [...d.pendingDelete].sort()) {
    if (!only.has(key)) continue;
    try {
      const old = d.config[key];
      if (/^unused\d+$/.test(key) && old !== undefined) {
        await deleteUnused(state, g, d, key, String(old));
      } else if (!FASTPLUG.has(key) && !["swap", "cpulimit", "cpuunits"].includes(key) && !/^net\d+$/.test(key)) {
        continue; // not hot-pluggable: stays pending
      }
      delete d.config[key];
      d.pendingDelete = d.pendingDelete.filter((k) => k !== key);
    } catch (e) {
      errors[key] = `unable to hotplug ${key}: ${(e as Error).message}`;
    }
  }
  for (const key of Object.keys(d.pending).sort()) {
    if (!only.has(key)) continue;
    try {
      if (/^mp\d+$/.test(key)) {
        await applyPendingMount(state, g, d, key, true);
        continue;
      }
      if (!["cpulimit", "cpuunits", "memory", "swap"].includes(key) && !/^net\d+$/.test(key)) continue;
      d.config[key] = d.pending[key] as ConfigValue;
      delete d.pending[key];
    } catch (e) {
      errors[key] = `unable to hotplug ${key}: ${(e as Error).message}`;
    }
  }
}

/**
 * Applies an update as `update_pct_config` does: every change goes to the
 * pending section first; a stopped container takes it at once, a running
 * one takes what it can hot-plug (memory, cores, NICs, new mount points...)
 * and keeps the rest pending for its next start. A removed mount point's
 * volume becomes `unused[n]`; deleting `unused[n]` frees the volume. Errors
 * are Proxmox's 400 with one message per option, and change nothing;
 * with `warnInto` (a worker's update) they are warnings instead.
 */
export async function applyUpdate(state: SandboxState, g: GuestState, update: ConfigUpdate, running: boolean, warnInto?: TaskContext): Promise<void> {
  const d = draftOf(g);
  for (const key of update.reverts) {
    delete d.pending[key];
    d.pendingDelete = d.pendingDelete.filter((k) => k !== key);
  }
  for (const key of update.removals) if (!d.pendingDelete.includes(key)) d.pendingDelete.push(key);
  for (const [key, value] of Object.entries(update.changes)) {
    d.pending[key] = value;
    d.pendingDelete = d.pendingDelete.filter((k) => k !== key);
  }
  cleanupPending(d);
  const only = new Set([...update.removals, ...Object.keys(update.changes)]);
  const errors: Record<string, string> = {};
  if (running) await hotplugPending(state, g, d, only, errors);
  else await applyPendingStopped(state, g, d, only, errors);
  if (Object.keys(errors).length > 0) {
    // A worker (move_volume) only warns and keeps the change pending; a request fails whole.
    if (!warnInto) throw paramError(errors);
    for (const message of Object.values(errors)) warnInto.warn(message);
  }
  await commit(state, g, d);
}

/** Writes a worked-out config back: the backend follows (limits, hostname, mount points), unused entries still in use go. */
async function commit(state: SandboxState, g: GuestState, d: Draft): Promise<void> {
  dropUsedUnused(d.config);
  const change = backendChange(state, g, g.config, d.config);
  if (g.created && Object.keys(change).length > 0) await state.cluster.backend.update(g.vmid, change);
  if (g.created && mountsChanged(g.config, d.config)) {
    // Hot-plugged mount points are mounted already; the rest apply at the next start.
    await state.cluster.backend.setMounts(g.vmid, rootfsRef(state, g.node, d.config), guestMounts(state, g.node, d.config), []);
  }
  g.config = d.config;
  g.pending = d.pending;
  g.pendingDelete = d.pendingDelete;
}

function mountsChanged(before: Record<string, ConfigValue>, after: Record<string, ConfigValue>): boolean {
  const keys = new Set([...mountKeys(before), ...mountKeys(after)]);
  return [...keys].some((k) => before[k] !== after[k]);
}

/** The config with pending changes laid over it, as `GET .../config` shows by default. */
export function withPending(g: GuestState): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = { ...g.config, ...g.pending };
  for (const key of g.pendingDelete) delete out[key];
  return out;
}

/** Applies pending changes, as Proxmox does when a container starts; a change that fails is logged and stays pending. */
export async function applyPending(state: SandboxState, g: GuestState, ctx: TaskContext): Promise<void> {
  if (Object.keys(g.pending).length === 0 && g.pendingDelete.length === 0) return;
  ctx.log(`applying pending changes: ${[...Object.keys(g.pending), ...g.pendingDelete.map((k) => `-${k}`)].join(", ")}`);
  const d = draftOf(g);
  const errors: Record<string, string> = {};
  await applyPendingStopped(state, g, d, undefined, errors);
  for (const message of Object.values(errors)) ctx.warn(message);
  await commit(state, g, d);
}

/** What the backend changes on a guest (limits, hostname, being a template) when its config goes from `before` to `after`. */
export function backendChange(state: SandboxState, g: GuestState, before: Record<string, ConfigValue>, after: Record<string, ConfigValue>): GuestChange {
  const change: GuestChange = {};
  if (after["memory"] !== before["memory"]) change.memoryMb = Number(after["memory"] ?? 512);
  if (after["swap"] !== before["swap"]) change.swapMb = Number(after["swap"] ?? 512);
  if (after["cores"] !== before["cores"]) change.cores = guestCores({ ...g, config: after }, state.cluster.node(g.node).spec.cores);
  if (after["hostname"] !== before["hostname"]) change.hostname = String(after["hostname"] ?? `CT${g.vmid}`);
  if ((after["template"] === 1) !== (before["template"] === 1)) change.isTemplate = after["template"] === 1;
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
  made: { template: TemplateInfo | undefined; sshPublicKeys: string; unprivileged: boolean; cloned?: boolean },
): GuestSpec {
  const features = config["features"] !== undefined ? propertyOf("features", String(config["features"])) : {};
  return {
    vmid: g.vmid,
    node: g.node,
    hostname: String(config["hostname"]),
    template: made.template,
    rootfs: rootfsRef(state, g.node, config),
    mounts: guestMounts(state, g.node, config),
    memoryMb: Number(config["memory"]),
    swapMb: Number(config["swap"]),
    cores: guestCores({ ...g, config }, state.cluster.node(g.node).spec.cores),
    diskGb: rootfsSize(config) / GiB,
    net: guestNetworks(config),
    sshPublicKeys: made.sshPublicKeys,
    unprivileged: made.unprivileged,
    features: { nesting: features["nesting"] === true, keyctl: features["keyctl"] === true },
    isTemplate: config["template"] === 1,
    cloned: made.cloned ?? false,
  };
}
