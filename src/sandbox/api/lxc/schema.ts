/**
 * What each LXC endpoint accepts, as pve-container's API schema declares it
 * (the checker refuses anything else with a 400), and the property strings
 * of config options read and written in the form Proxmox stores them.
 */
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
  formatPropertyString,
} from "../../formats.ts";
import { propertyValues, ruleFor } from "../../params.ts";
import type { ParamSpec, PropertyValues, Rule } from "../../params.ts";
import { NODE, STORAGE, VMID } from "../common.ts";

const optBool: Rule = { type: "boolean", optional: true };
const optStr = (extra: Partial<Extract<Rule, { type: "string" }>> = {}): Rule => ({ type: "string", optional: true, ...extra });
const optInt = (minimum: number): Rule => ({ type: "integer", optional: true, minimum });

/** Proxmox's entrypoint pattern: no control characters except tab to shift-in. */
function checkNoControl(v: string): string | undefined {
  const bad = [...v].some((ch) => {
    const c = ch.charCodeAt(0);
    return c <= 0x08 || (c >= 0x10 && c <= 0x1f) || c === 0x7f;
  });
  return bad ? "value does not match the regex pattern" : undefined;
}

/** `pve-configid`, the format of snapshot names. */
export function checkSnapname(v: string): string | undefined {
  return /^[a-z][a-z0-9_-]+$/i.test(v) ? undefined : `invalid configuration ID '${v}'`;
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

/** Every config option, indexed families included. */
const CONFIG_OPTIONS: ParamSpec = { rules: CONFIG_RULES, indexed: INDEXED };

/** `POST /nodes/{node}/lxc`. */
export const CREATE_PARAMS: ParamSpec = {
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

/** `PUT /nodes/{node}/lxc/{vmid}/config`. */
export const UPDATE_PARAMS: ParamSpec = {
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

/** Parameters of create and update that are not config options. */
export const NOT_CONFIG = new Set(["node", "vmid", "delete", "digest", "revert"]);
/** Parameters only create takes, which it does not store as they are (`lock` it sets itself). */
export const CREATE_ONLY = new Set(["ostemplate", "bwlimit", "force", "ha-managed", "ignore-unpack-errors", "password", "pool", "restore", "ssh-public-keys", "start", "storage", "unique", "lock"]);

/** The endpoints on one container that take nothing else. */
export const NODE_VMID: ParamSpec = { rules: { node: NODE, vmid: VMID } };
/** `GET /nodes/{node}/lxc`. */
export const LIST_PARAMS: ParamSpec = { rules: { node: NODE } };
/** `DELETE /nodes/{node}/lxc/{vmid}`. */
export const DESTROY_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, "destroy-unreferenced-disks": optBool, force: optBool, purge: optBool } };
/** `GET /nodes/{node}/lxc/{vmid}/config`. */
export const READ_CONFIG_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, current: optBool, snapshot: optStr({ maxLength: 40, format: checkSnapname }) } };
/** `POST .../status/start`. */
export const START_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, debug: optBool, skiplock: optBool } };
/** `POST .../status/stop`. */
export const STOP_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, "overrule-shutdown": optBool, skiplock: optBool } };
/** `POST .../status/shutdown`. */
export const SHUTDOWN_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, forceStop: optBool, timeout: optInt(0) } };
/** `POST .../status/reboot`. */
export const REBOOT_PARAMS: ParamSpec = { rules: { ...NODE_VMID.rules, timeout: optInt(0) } };

/** The rule of a config option (`net3` finds the `net` family's). */
export function configRule(name: string): Rule | undefined {
  return ruleFor(CONFIG_OPTIONS, name);
}

/** Reads a property-string option (`net0`, `rootfs`, `features`...) that the checker has accepted. */
export function propertyOf(name: string, text: string): PropertyValues {
  return propertyValues(configRule(name), name, text);
}

/** Renders checked property values as Proxmox writes them (`volume` bare, `name` first). */
export function render(values: PropertyValues, first: string[]): string {
  return first[0] === "volume" ? formatPropertyString(values, [], "volume") : formatPropertyString(values, first);
}
