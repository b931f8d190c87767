/**
 * Between the resource's inputs and Proxmox's container config: the create
 * parameters, the config change that brings a live container to the inputs,
 * the state read back from a live container, and its address. Pure.
 */
import type { ContainerInputs, ContainerOutputs } from "../plan/types.ts";
import { featuresNeedRoot } from "../proxmox/lxc-format.ts";
import type { LxcFeatures, LxcMountPoint, LxcNetwork } from "../proxmox/lxc-format.ts";
import type { LxcConfig, LxcConfigUpdate, LxcCreateParams, LxcInterface } from "../proxmox/lxc-types.ts";
import { staticAddress } from "./diff.ts";
import type { ContainerState } from "./inputs.ts";
import { normalizeTags } from "./inputs.ts";
import { bindMount, mountIndex, sizeInGb } from "../data/mounts.ts";

/** The feature flags the inputs ask for; flags that are off are left out, so nothing is sent for them. */
export function featuresOf(inputs: Pick<ContainerInputs, "nesting" | "keyctl">): LxcFeatures {
  return { ...(inputs.nesting ? { nesting: true } : {}), ...(inputs.keyctl ? { keyctl: true } : {}) };
}

/** True when only `root@pam` itself may create a container with these inputs' features. */
export function inputsNeedRoot(inputs: Pick<ContainerInputs, "nesting" | "keyctl" | "unprivileged">): boolean {
  return featuresNeedRoot(featuresOf(inputs), inputs.unprivileged);
}

/**
 * True when only `root@pam` may make this change of feature flags: creating (or replacing)
 * with flags that need root, turning keyctl on or off, or changing nesting of a privileged container.
 */
export function featureChangeNeedsRoot(before: ContainerState | undefined, after: Pick<ContainerInputs, "nesting" | "keyctl" | "unprivileged">, replacing: boolean): boolean {
  if (before === undefined || replacing) return inputsNeedRoot(after);
  const keyctl = (before.keyctl ?? false) !== after.keyctl;
  const nesting = (before.nesting ?? false) !== after.nesting;
  return keyctl || (nesting && !after.unprivileged);
}

function network(inputs: Pick<ContainerInputs, "bridge" | "ip" | "gateway">, base: LxcNetwork | undefined): LxcNetwork {
  const { gw: _oldGw, ...rest } = base ?? { name: "eth0" };
  const gw = staticAddress(inputs.ip) !== undefined ? inputs.gateway : undefined;
  // The rest of the old interface (hwaddr above all) is kept: a new MAC would mean a new DHCP lease.
  return { ...rest, name: base?.name ?? "eth0", bridge: inputs.bridge, ip: inputs.ip, ...(gw !== undefined ? { gw } : {}) };
}

/**
 * The create parameters. Protection is left off here and set once the container runs,
 * so a failed creation can still be removed. Volumes are not among them: they come after
 * the create, each moved from the container this one succeeds or made afresh, at the
 * mount point of its place in the list (`mp0` for the first); bind mounts follow them.
 */
export function createParams(inputs: ContainerInputs, vmid: number): LxcCreateParams {
  const features = featuresOf(inputs);
  const mp: Record<number, LxcMountPoint> = {};
  inputs.bindMounts.forEach((b, i) => (mp[inputs.volumes.length + i] = bindMount(b)));
  return {
    vmid,
    ostemplate: inputs.template,
    hostname: inputs.hostname,
    memory: inputs.memory,
    swap: inputs.swap,
    cores: inputs.cores,
    rootfs: { storage: inputs.storage, sizeGb: inputs.diskGb },
    net0: network(inputs, undefined),
    unprivileged: inputs.unprivileged,
    onboot: inputs.onBoot,
    ...(inputs.description !== "" ? { description: inputs.description } : {}),
    ...(inputs.tags.length > 0 ? { tags: inputs.tags } : {}),
    ...(Object.keys(features).length > 0 ? { features } : {}),
    ...(inputs.sshPublicKeys.trim() !== "" ? { sshPublicKeys: inputs.sshPublicKeys } : {}),
    ...(Object.keys(mp).length > 0 ? { mp } : {}),
  };
}

/** A config change and what it means for a running container. */
export interface ConfigChange {
  update: LxcConfigUpdate;
  /** The config keys set or deleted. */
  keys: string[];
  /** Something that applies only at the next start changed (features, hostname). */
  restart: boolean;
  /** net0 changed, so the address may change. */
  network: boolean;
}

/** The config change that brings a live container to the inputs; `unprivileged`, template and disk are not changeable here. */
export function configChange(config: LxcConfig, inputs: ContainerInputs): ConfigChange {
  const update: LxcConfigUpdate = {};
  const remove: string[] = [];
  let restart = false;
  if (config.hostname !== inputs.hostname) {
    update.hostname = inputs.hostname;
    restart = true;
  }
  if ((config.description ?? "").trimEnd() !== inputs.description.trimEnd()) {
    if (inputs.description === "") remove.push("description");
    else update.description = inputs.description;
  }
  if (normalizeTags(config.tags).join(";") !== normalizeTags(inputs.tags).join(";")) {
    if (inputs.tags.length === 0) remove.push("tags");
    else update.tags = inputs.tags;
  }
  if (config.memory !== inputs.memory) update.memory = inputs.memory;
  if (config.swap !== inputs.swap) update.swap = inputs.swap;
  if (config.cores !== inputs.cores) update.cores = inputs.cores;
  if (config.onboot !== inputs.onBoot) update.onboot = inputs.onBoot;
  if (config.protection !== inputs.protection) update.protection = inputs.protection;
  if ((config.features.nesting === true) !== inputs.nesting || (config.features.keyctl === true) !== inputs.keyctl) {
    // Other flags someone set by hand (fuse, mount, ...) are kept.
    const { nesting: _n, keyctl: _k, ...others } = config.features;
    const features: LxcFeatures = { ...others, ...featuresOf(inputs) };
    const empty = Object.values(features).every((v) => v === false || v === undefined || (Array.isArray(v) && v.length === 0));
    if (empty) remove.push("features");
    else update.features = features;
    restart = true;
  }
  const current = config.net[0];
  const wanted = network(inputs, current);
  const networkChanged =
    current === undefined || current.bridge !== wanted.bridge || (current.ip ?? "").toLowerCase() !== (wanted.ip ?? "").toLowerCase() || (current.gw ?? "") !== (wanted.gw ?? "");
  if (networkChanged) update.net0 = wanted;
  if (remove.length > 0) update.delete = remove;
  const keys = [...Object.keys(update).filter((k) => k !== "delete"), ...remove];
  return { update, keys, restart, network: networkChanged };
}

/** The IPv4 address (no prefix) of eth0 once it has a routable one; link-local and loopback do not count. */
export function eth0Address(interfaces: readonly LxcInterface[] | null): string | undefined {
  const eth0 = interfaces?.find((i) => i.name === "eth0");
  const address = eth0?.inet?.split("/")[0];
  if (address === undefined || !/^\d{1,3}(?:\.\d{1,3}){3}$/.test(address)) return undefined;
  if (address.startsWith("169.254.") || address.startsWith("127.") || address === "0.0.0.0") return undefined;
  return address;
}

/**
 * The resource's state as read from a live container. Template and SSH keys cannot be
 * read back from Proxmox, so they keep their stored values.
 */
export function liveState(config: LxcConfig, stored: ContainerState, where: { node: string; vmid: number; address: string | undefined }): ContainerOutputs {
  const net = config.net[0];
  const volume = config.rootfs?.volume ?? "";
  const description = config.description ?? "";
  return {
    node: where.node,
    template: stored.template ?? "",
    hostname: config.hostname ?? stored.hostname ?? "",
    // Same notes modulo a trailing newline keep the stored text, so the state stays as written.
    description: stored.description !== undefined && stored.description.trimEnd() === description.trimEnd() ? stored.description : description,
    tags: normalizeTags(config.tags),
    // Proxmox leaves out what is at its default.
    memory: config.memory ?? 512,
    swap: config.swap ?? 512,
    cores: config.cores ?? stored.cores ?? 1,
    storage: volume.includes(":") ? volume.slice(0, volume.indexOf(":")) : (stored.storage ?? ""),
    diskGb: sizeInGb(config.rootfs?.size) ?? stored.diskGb ?? 0,
    ...liveMounts(config, stored),
    bridge: net?.bridge ?? "",
    ip: net?.ip ?? "",
    ...(net?.gw !== undefined ? { gateway: net.gw } : {}),
    unprivileged: config.unprivileged,
    nesting: config.features.nesting === true,
    keyctl: config.features.keyctl === true,
    sshPublicKeys: stored.sshPublicKeys ?? "",
    onBoot: config.onboot,
    protection: config.protection,
    vmid: where.vmid,
    address: where.address,
  };
}

/** The volumes and bind mounts of a live container that the state knows as homelab's, read back. */
function liveMounts(config: LxcConfig, stored: ContainerState): Pick<ContainerOutputs, "volumes" | "bindMounts" | "volumeKeys"> {
  const volumes: ContainerOutputs["volumes"] = [];
  const volumeKeys: Record<string, string> = {};
  for (const v of stored.volumes ?? []) {
    const key = stored.volumeKeys?.[v.name];
    const index = mountIndex(key) ?? Number(Object.entries(config.mounts).find(([, m]) => m.type === "volume" && m.mp === v.path)?.[0] ?? -1);
    const m = config.mounts[index];
    if (m === undefined || m.type !== "volume") continue;
    volumeKeys[v.name] = `mp${index}`;
    const colon = m.volume.indexOf(":");
    volumes.push({ name: v.name, sizeGb: sizeInGb(m.size) ?? v.sizeGb, path: m.mp, storage: colon > 0 ? m.volume.slice(0, colon) : v.storage, backup: m.backup });
  }
  const bindMounts: ContainerOutputs["bindMounts"] = [];
  for (const b of stored.bindMounts ?? []) {
    const m = Object.values(config.mounts).find((x) => x.type === "bind" && x.mp === b.path);
    if (m) bindMounts.push({ host: m.volume, path: m.mp, readOnly: m.readOnly });
  }
  return { volumes, bindMounts, volumeKeys };
}

/**
 * Whether a live container is the one the state describes: its hostname or its notes
 * match. A vmid freed and reused by someone else is then never updated or destroyed.
 */
export function isSameContainer(config: LxcConfig, stored: ContainerState): boolean {
  if (stored.hostname === undefined && stored.description === undefined) return true;
  // Proxmox fills the config only when creation ends.
  if (config.lock === "create" && config.hostname === undefined) return true;
  if (stored.hostname !== undefined && config.hostname === stored.hostname) return true;
  return stored.description !== undefined && stored.description.trim() !== "" && (config.description ?? "").trimEnd() === stored.description.trimEnd();
}
