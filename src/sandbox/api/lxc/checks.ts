/**
 * What pve-container refuses beyond its schema, with its wording: the
 * permission rules for anyone but `root@pam`, config locks and `skiplock`,
 * digests, protection, read-only and required options, and the state a
 * container must be in for each action.
 */
import { guestDigest } from "../../cluster.ts";
import type { ConfigValue, GuestState } from "../../cluster.ts";
import { failure, paramError, permissionDenied } from "../../errors.ts";
import type { PropertyValues, Scalar } from "../../params.ts";
import { flag, str } from "../common.ts";
import type { SandboxState } from "../types.ts";
import { NOT_CONFIG, propertyOf } from "./schema.ts";
import { parseVolumeName } from "../../storage.ts";
import { checkCreateVolumes, checkMountChange, isMountKey, mountType, volumeOf } from "./volumes.ts";

function flagText(v: Scalar | undefined): string {
  if (v === undefined) return "";
  return typeof v === "boolean" ? (v ? "1" : "0") : String(v);
}

/**
 * Proxmox's permission rules for config changes by anyone but `root@pam`
 * itself (an API token of root is not root@pam): feature flags other than
 * `nesting`, bind and device mounts, device passthrough and hookscripts.
 */
export function checkConfigPermission(
  user: string,
  unprivileged: boolean,
  oldConfig: Record<string, ConfigValue> | undefined,
  params: Record<string, Scalar>,
  deletes: string[],
): void {
  if (user === "root@pam") return;
  const check = (key: string, deleting: boolean): void => {
    if (isMountKey(key)) {
      if (deleting) return;
      const type = mountType(volumeOf(key, String(params[key])));
      if (type !== "volume") throw permissionDenied(`mount point type ${type} is only allowed for root@pam`);
    } else if (/^dev\d+$/.test(key)) {
      throw permissionDenied("configuring device passthrough is only allowed for root@pam");
    } else if (key === "hookscript") {
      throw permissionDenied("changing the hookscript is only allowed for root@pam");
    } else if (key === "features") {
      if (!unprivileged) throw permissionDenied("changing feature flags for privileged container is only allowed for root@pam");
      const old = oldConfig?.["features"] !== undefined ? propertyOf("features", String(oldConfig["features"])) : undefined;
      const onlyNesting = (f: PropertyValues): boolean => Object.keys(f).length === 1 && f["nesting"] === true;
      let otherChanged: boolean;
      if (deleting) {
        otherChanged = old !== undefined && Object.keys(old).length > 0 && !onlyNesting(old);
      } else {
        const next = propertyOf("features", String(params["features"]));
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

/** Refuses a container whose config carries a `lock:` (backup, create, snapshot...). */
export function checkLock(g: GuestState): void {
  const lock = g.config["lock"];
  if (lock !== undefined) throw failure(`CT is locked (${String(lock)})`);
}

/** `skiplock`: only root@pam may pass a config lock. */
export function checkSkiplock(params: Record<string, Scalar>, user: string): boolean {
  const skip = flag(params, "skiplock") ?? false;
  if (skip && user !== "root@pam") throw paramError({ skiplock: "Only root may use this option." });
  return skip;
}

/** Refuses an id that a container on any node has. */
export function checkIdFree(state: SandboxState, vmid: number): void {
  const existing = state.cluster.guests.get(vmid);
  if (existing) throw failure(`CT ${vmid} already exists on node '${existing.node}'`);
}

/** What a create asks for, as the handler read it. */
export interface CreateRequest {
  node: string;
  vmid: number;
  ostemplate: string;
  /** For new volumes given as a bare size, and the default root volume. */
  storage: string;
  /** As asked; a restore leaves it to the archive when not given. */
  unprivileged: boolean | undefined;
  /** The `rootfs` and `mp[n]` asked for (see `requestedMounts`). */
  mounts: Record<string, string>;
  restore: boolean;
  force: boolean;
}

/** The content type a volume id names on its storage (`parse_volname`), failing with the plugin's message. */
function contentOf(state: SandboxState, volid: string): string {
  const sid = /^([^:/\s]+):/.exec(volid)?.[1];
  if (sid === undefined) throw failure(`unable to parse volume ID '${volid}'`);
  const def = state.cluster.storage(sid);
  const name = volid.slice(sid.length + 1);
  if (def.type === "lvmthin") {
    if (!/^(vm|base)-\d+-/.test(name)) throw failure(`unable to parse lvm volume name '${name}'`);
    return "images";
  }
  if (def.type === "zfspool") {
    if (!parseVolumeName(def, name)) throw failure(`unable to parse zfs volume name '${name}'`);
    return "images";
  }
  const m = /^(vztmpl|backup|iso|snippets|import)\/[^/]+$/.exec(name);
  if (m) return m[1] ?? "";
  if (/^\d+\/\S+$/.test(name)) return "images";
  throw failure(`unable to parse directory volume name '${name}'`);
}

/**
 * Refuses a create or restore before its task starts, in pve-container's
 * order; says whether a restore goes over an existing container (`force`).
 */
export async function checkCreate(state: SandboxState, user: string, params: Record<string, Scalar>, req: CreateRequest): Promise<{ existed: boolean }> {
  const same = state.cluster.guests.get(req.vmid);
  const existed = same !== undefined && same.node === req.node;
  if (!(existed && req.restore && req.force)) {
    checkIdFree(state, req.vmid);
  } else if (same) {
    if (await isRunning(state, same)) throw failure("can't overwrite running container");
    if (same.config["protection"] === 1) throw failure(`unable to restore CT ${req.vmid} - protection mode enabled`);
  }
  const pool = str(params, "pool");
  if (pool !== undefined) throw permissionDenied(`pool '${pool}' does not exist`);
  checkConfigPermission(user, req.unprivileged ?? false, undefined, { ...params, ...req.mounts }, []);
  const wanted = req.restore ? "backup" : "vztmpl";
  if (contentOf(state, req.ostemplate) !== wanted) throw failure(`unable to use volume ${req.ostemplate} - content type needs to be '${wanted}'`);
  checkCreateVolumes(state, req.mounts, req.storage);
  return { existed };
}

/** Refuses setting an option and deleting it in one request. */
export function checkDeleteConflicts(params: Record<string, Scalar>, deletes: string[]): void {
  for (const key of deletes) {
    if (key in params) throw paramError({ delete: `you can't use '-${key}' and -delete ${key}' at the same time` });
  }
}

/** Refuses a locked container's update, unless it only deletes `lock` (the sandbox's stand-in for `pct unlock`). */
export function checkUpdateLock(g: GuestState, params: Record<string, Scalar>, deletes: string[]): void {
  const onlyUnlock = deletes.length === 1 && deletes[0] === "lock" && Object.keys(params).every((k) => NOT_CONFIG.has(k));
  if (!onlyUnlock) checkLock(g);
}

/** Whether a guest exists on its backend and runs. */
export async function isRunning(state: SandboxState, g: GuestState): Promise<boolean> {
  return g.created && (await state.cluster.backend.status(g.vmid)).running;
}

/** Refuses an update made against another version of the config. */
export function checkDigest(g: GuestState, digest: string | undefined): void {
  if (digest !== undefined && digest !== guestDigest(g)) {
    throw failure("detected modified configuration - file changed by other user? Try again.");
  }
}

/** Refuses deleting a required or read-only option, or a drive of a protected container. */
export function checkDelete(g: GuestState, key: string): void {
  if (["memory", "rootfs", "ostype"].includes(key)) throw failure(`unable to delete required option '${key}'`);
  if (key === "unprivileged") throw failure("unable to delete read-only option: 'unprivileged'");
  if (/^(mp|unused)\d+$/.test(key) && g.config["protection"] === 1) throw failure(`can't remove CT ${g.vmid} drive '${key}' - protection mode enabled`);
}

/** Refuses changing a read-only option, or a volume as `checkMountChange` says. */
export function checkChange(state: SandboxState, g: GuestState, key: string, value: Scalar): void {
  if (key === "unprivileged") throw failure("unable to modify read-only option: 'unprivileged'");
  if (isMountKey(key)) checkMountChange(state, g, key, String(value));
}

/** A container's power actions. */
export type Action = "start" | "stop" | "shutdown" | "reboot";

/**
 * Refuses an action for a container in the wrong running state. Like
 * Proxmox, only that is checked before the task; the config, its lock and
 * the config file lock are the worker's business.
 */
export async function checkActionState(state: SandboxState, node: string, vmid: number, action: Action): Promise<void> {
  const known = state.cluster.guests.get(vmid);
  const running = known !== undefined && known.node === node && known.created && (await state.cluster.backend.status(vmid)).running;
  if (action === "start" && running) throw failure(`CT ${vmid} already running`);
  if ((action === "stop" || action === "shutdown") && !running) throw failure(`CT ${vmid} not running`);
  // Proxmox's own wording for reboot.
  if (action === "reboot" && !running) throw failure(`VM ${vmid} not running`);
}

/** Refuses destroying a protected or locked container, or a running one without `force`. */
export async function checkDestroyable(state: SandboxState, g: GuestState, force: boolean): Promise<void> {
  if (g.config["protection"] === 1) throw failure(`can't remove CT ${g.vmid} - protection mode enabled`);
  checkLock(g);
  if (!force && (await isRunning(state, g))) throw failure(`unable to destroy CT ${g.vmid} - container is running`);
}
