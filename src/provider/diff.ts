/**
 * What a change of a container's inputs does: nothing, an in-place update
 * (some of which only apply at the next start), or a replacement. Pure, so
 * the preview's answer and the update's behaviour come from one table.
 */
import type { ContainerInputs } from "../plan/types.ts";
import type { ContainerState } from "./inputs.ts";
import { CONTAINER_INPUT_KEYS, normalizeTags } from "./inputs.ts";

/** How a change of one input is carried out. */
export type ChangeKind = "replace" | "update" | "ignore";

/**
 * Per input: `replace` where Proxmox cannot change it on an existing container
 * (template, node, privilege, root disk storage and size), `update` where a config
 * change does, `ignore` where Proxmox only uses the value at creation.
 */
export const CHANGE_KIND: Readonly<Record<keyof ContainerInputs, ChangeKind>> = {
  node: "replace",
  template: "replace",
  unprivileged: "replace",
  storage: "replace",
  // The client has no disk resize (and Proxmox cannot shrink), so any size change replaces.
  diskGb: "replace",
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
      return Array.isArray(a) && Array.isArray(b) && normalizeTags(a).join(";") === normalizeTags(b).join(";");
    case "description":
      // Proxmox may hand the notes back with a trailing newline.
      return String(a ?? "").trimEnd() === String(b ?? "").trimEnd();
    case "gateway":
      return String(a ?? "") === String(b ?? "");
    case "ip":
      return typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();
    default:
      return a !== undefined && a === b;
  }
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
  const restart = replaces.length === 0 && updates.some((k) => APPLIED_AT_START.has(k));
  return { changed, replaces, updates, deleteBeforeReplace, restart };
}
