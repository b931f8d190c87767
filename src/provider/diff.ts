/**
 * What a change of a container's inputs does: nothing, an in-place update
 * (some of which only apply at the next start), or a replacement. Pure, so
 * the preview's answer and the update's behaviour come from one table.
 */
import type { ContainerInputs, ContainerVolume } from "../plan/types.ts";
import type { ContainerState } from "./inputs.ts";
import { CONTAINER_INPUT_KEYS, normalizeTags } from "./inputs.ts";

/** How a change of one input is carried out. */
export type ChangeKind = "replace" | "update" | "ignore";

/**
 * Per input: `replace` where Proxmox cannot change it on an existing container
 * (template, node, privilege, root disk storage), `update` where a config change
 * or a resize does (disks only grow: a smaller size is refused by the check), `ignore`
 * where Proxmox only uses the value at creation.
 */
export const CHANGE_KIND: Readonly<Record<keyof ContainerInputs, ChangeKind>> = {
  node: "replace",
  template: "replace",
  unprivileged: "replace",
  storage: "replace",
  diskGb: "update",
  volumes: "update",
  bindMounts: "update",
  hostname: "update",
  description: "update",
  tags: "update",
  memory: "update",
  swap: "update",
  cores: "update",
  bridge: "update",
  ip: "update",
  gateway: "update",
  nesting: "update",
  keyctl: "update",
  onBoot: "update",
  protection: "update",
  // Proxmox writes the keys into the container at creation only; provisioning manages them later.
  sshPublicKeys: "ignore",
  // Which base a container was cloned from matters at its creation only: a new base changes no container.
  base: "ignore",
};

/** In-place changes Proxmox keeps pending until the container starts again. */
const APPLIED_AT_START: ReadonlySet<keyof ContainerInputs> = new Set(["hostname", "nesting", "keyctl"]);


/** The outcome of comparing a container's state with new inputs. */
export interface ContainerDiff {
  /** Every input that differs (ignored ones left out), in schema order. */
  changed: (keyof ContainerInputs)[];
  /** The changed inputs that force a replacement. */
  replaces: (keyof ContainerInputs)[];
  /** The changed inputs applied in place. */
  updates: (keyof ContainerInputs)[];
  /** Delete the old container before creating the new one (they would share a static address). */
  deleteBeforeReplace: boolean;
  /** An in-place change that applies only at the next start: a running container is restarted. */
  restart: boolean;
}

/**
 * Whether a volume change applies only at the next start: a volume removed (detached), or one
 * whose path or backup flag changed. A new volume is hot-plugged and a bigger one grows live.
 */
function volumesNeedRestart(olds: readonly ContainerVolume[], news: readonly ContainerVolume[]): boolean {
  return olds.some((o) => {
    const n = news.find((x) => x.name === o.name);
    return n === undefined || n.path !== o.path || n.backup !== o.backup;
  });
}

/** The address part of a static `ip` (`10.0.0.5/24` gives `10.0.0.5`); undefined for dhcp or nothing. Pure. */
export function staticAddress(ip: string | undefined): string | undefined {
  if (ip === undefined || ip.toLowerCase() === "dhcp" || ip === "manual" || ip === "") return undefined;
  return ip.split("/")[0];
}

/** Whether two values of one input mean the same to Proxmox. Pure. */
export function sameInput<K extends keyof ContainerInputs>(key: K, a: ContainerInputs[K] | undefined, b: ContainerInputs[K] | undefined): boolean {
  switch (key) {
    case "tags":
      // Proxmox lowercases, de-duplicates and sorts tags; a different order is no change.
      return Array.isArray(a) && Array.isArray(b) && normalizeTags(a.map(String)).join(";") === normalizeTags(b.map(String)).join(";");
    case "description":
      // Proxmox may hand the notes back with a trailing newline.
      return text(a).trimEnd() === text(b).trimEnd();
    case "gateway":
      return text(a) === text(b);
    case "volumes":
    case "bindMounts":
      // A state written before volumes existed has none; the order in service.yaml is no change (mount points keep their keys).
      return canonicalList(a) === canonicalList(b);
    case "ip":
      return typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();
    default:
      return a !== undefined && a === b;
  }
}

/** A scalar input as text; absent is empty. */
function text(value: unknown): string {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : "";
}

function canonicalList(value: unknown): string {
  const list = Array.isArray(value) ? value.map((x) => JSON.stringify(Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([k1], [k2]) => k1.localeCompare(k2))))) : [];
  return list.sort().join("\n");
}

/**
 * Compares the stored state with new inputs. Inputs in `unknown` (not known during a
 * preview) count as changed. Pure.
 */
export function diffContainer(olds: ContainerState, news: Partial<ContainerInputs>, unknown: ReadonlySet<keyof ContainerInputs> = new Set()): ContainerDiff {
  const changed: (keyof ContainerInputs)[] = [];
  for (const key of CONTAINER_INPUT_KEYS) {
    if (CHANGE_KIND[key] === "ignore") continue;
    if (unknown.has(key) || !sameInput(key, olds[key], news[key])) changed.push(key);
  }
  const replaces = changed.filter((k) => CHANGE_KIND[k] === "replace");
  const updates = changed.filter((k) => CHANGE_KIND[k] === "update");
  const oldAddress = staticAddress(olds.ip);
  // Two containers answering on one static address must never run at once, so the old one goes first;
  // otherwise the new one is made first and the service keeps running if its creation fails.
  const deleteBeforeReplace = replaces.length > 0 && oldAddress !== undefined && (unknown.has("ip") || staticAddress(news.ip) === oldAddress);
  const restart = replaces.length === 0 && (updates.some((k) => APPLIED_AT_START.has(k)) || (updates.includes("volumes") && volumesNeedRestart(olds.volumes ?? [], news.volumes ?? [])) || updates.includes("bindMounts"));
  return { changed, replaces, updates, deleteBeforeReplace, restart };
}
