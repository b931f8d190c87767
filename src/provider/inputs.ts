/**
 * The boundary between the Pulumi engine's untyped property bags and the
 * provider's typed values: secret and unknown markers, the input schema of
 * `homelab:proxmox:Container` with its defaults, and lenient parsing of the
 * stored state (which may come from an older provider version).
 */
import { z } from "zod";
import { BUILTIN_DEFAULTS } from "../config/environment.ts";
import type { ContainerInputs, ContainerOutputs } from "../plan/types.ts";

/** How the engine marks a value not known during a preview (`@pulumi/pulumi/runtime/rpc`). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/** The key and value that mark a secret in a property bag (`@pulumi/pulumi/runtime/rpc`). */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** A property bag as the engine sends it, secrets revealed. */
export type PropertyBag = Record<string, unknown>;

/** Removes the engine's secret wrappers (the plugin accepts secrets; none of the container's inputs is one). */
function revealSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revealSecrets);
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[SIG_KEY] === SECRET_SIG) return revealSecrets(record["value"]);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) out[k] = revealSecrets(v);
    return out;
  }
  return value;
}

/** Reads the engine's property bag (`undefined`/non-objects become empty). */
export function propertyBag(value: unknown): PropertyBag {
  const revealed = revealSecrets(value);
  return revealed !== null && typeof revealed === "object" && !Array.isArray(revealed) ? (revealed as PropertyBag) : {};
}

/** True when the value (or anything inside it) is unknown during a preview. */
export function isUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(isUnknown);
  if (value !== null && typeof value === "object") return Object.values(value).some(isUnknown);
  return false;
}

const NODE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const TEMPLATE = /^[A-Za-z][-_.A-Za-z0-9]*:vztmpl\/[^\s,=]+$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const STORAGE = /^[A-Za-z][-_.A-Za-z0-9]*$/;
const BRIDGE = /^[-_.A-Za-z0-9]+$/;
const OCTET = "(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)";
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const IPV4_CIDR = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}/(?:[1-2]?\\d|3[0-2])$`);
/** Proxmox's tag syntax, after lowercasing. */
const TAG = /^[a-z0-9_][a-z0-9_+.-]*$/;

/** Tags as Proxmox stores them: lowercased, de-duplicated, sorted. Pure. */
export function normalizeTags(tags: readonly string[]): string[] {
  return [...new Set(tags.map((t) => t.trim().toLowerCase()).filter((t) => t !== ""))].sort();
}

const D = BUILTIN_DEFAULTS;

const MOUNT_PATH = /^\/[^,=\s]+$/;

const volumeSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, { error: "a volume name is lowercase letters, digits, _ and -" }),
  sizeGb: z.number({ error: "sizeGb must be a number of GB" }).positive({ error: "sizeGb must be positive" }),
  path: z.string().regex(MOUNT_PATH, { error: "path must be an absolute path without commas, '=' or spaces" }),
  storage: z.string().regex(STORAGE, { error: "storage must be a Proxmox storage id, e.g. local-lvm" }),
  backup: z.boolean().default(true),
});

const bindMountSchema = z.strictObject({
  host: z.string().regex(MOUNT_PATH, { error: "host must be an absolute path on the node without commas, '=' or spaces" }),
  path: z.string().regex(MOUNT_PATH, { error: "path must be an absolute path without commas, '=' or spaces" }),
  readOnly: z.boolean().default(false),
});

/** The inputs of `homelab:proxmox:Container`, with the provider's defaults. */
export const containerInputsSchema = z
  .strictObject({
    node: z.string().regex(NODE, { error: "node must be a Proxmox node name, e.g. pve-01" }),
    template: z.string().regex(TEMPLATE, { error: "template must be a template volid, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst" }),
    hostname: z.string().regex(HOSTNAME, { error: "hostname must be a DNS name: letters, digits and '-', e.g. peach" }),
    description: z.string().max(8192, { error: "description is longer than Proxmox's 8192 characters" }).default(""),
    tags: z
      .array(z.string())
      .default([])
      .transform(normalizeTags)
      .superRefine((tags, ctx) => {
        for (const t of tags) {
          if (!TAG.test(t)) ctx.addIssue({ code: "custom", message: `tag ${JSON.stringify(t)} is not a Proxmox tag: use letters, digits and _ + - . (write tier:1 as tier-1)` });
        }
      }),
    memory: z.int({ error: "memory must be a whole number of MB" }).min(16, { error: "memory must be at least 16 MB" }).default(D.memory),
    swap: z.int({ error: "swap must be a whole number of MB" }).min(0, { error: "swap cannot be negative" }).default(D.swap),
    cores: z.int({ error: "cores must be a whole number" }).min(1, { error: "cores must be at least 1" }).max(8192).default(D.cores),
    storage: z.string().regex(STORAGE, { error: "storage must be a Proxmox storage id, e.g. local-lvm" }).default(D.storage),
    diskGb: z.number({ error: "diskGb must be a number of GB" }).positive({ error: "diskGb must be positive" }).default(D.disk),
    volumes: z.array(volumeSchema).default([]),
    bindMounts: z.array(bindMountSchema).default([]),
    bridge: z.string().regex(BRIDGE, { error: "bridge must be a bridge name, e.g. vmbr0" }).default(D.bridge),
    ip: z
      .string()
      .transform((ip) => (ip.toLowerCase() === "dhcp" ? "dhcp" : ip))
      .pipe(z.string().refine((ip) => ip === "dhcp" || IPV4_CIDR.test(ip), { error: 'ip must be "dhcp" or an IPv4 address with prefix, e.g. 192.168.1.50/24' }))
      .default("dhcp"),
    gateway: z.string().regex(IPV4, { error: "gateway must be an IPv4 address, e.g. 192.168.1.1" }).optional(),
    unprivileged: z.boolean().default(true),
    nesting: z.boolean().default(false),
    keyctl: z.boolean().default(false),
    sshPublicKeys: z.string().default(""),
    onBoot: z.boolean().default(false),
    protection: z.boolean().default(false),
    base: z.string().regex(/^[0-9a-f]{16}$/, { error: "base must be a Docker-ready base's key (16 hex digits)" }).optional(),
  })
  .superRefine((v, ctx) => {
    const paths = new Set<string>();
    const names = new Set<string>();
    for (const m of [...v.volumes, ...v.bindMounts]) {
      if (paths.has(m.path)) ctx.addIssue({ code: "custom", path: ["volumes"], message: `mount path ${m.path} is used twice` });
      paths.add(m.path);
    }
    for (const vol of v.volumes) {
      if (names.has(vol.name)) ctx.addIssue({ code: "custom", path: ["volumes"], message: `volume name ${vol.name} is used twice` });
      names.add(vol.name);
    }
    if (v.gateway !== undefined && v.ip === "dhcp") {
      ctx.addIssue({ code: "custom", path: ["gateway"], message: "gateway is only used with a static ip; set ip to an address such as 192.168.1.50/24, or drop the gateway" });
    }
  });

const INPUT_KEYS = Object.keys(containerInputsSchema.shape) as (keyof ContainerInputs)[];

/** Properties the provider computes; a program may name them (as undefined) to declare them as outputs. */
const OUTPUT_ONLY: ReadonlySet<string> = new Set(["vmid", "address", "volumeKeys"]);

/** The names of the container's inputs, in schema order. */
export const CONTAINER_INPUT_KEYS: readonly (keyof ContainerInputs)[] = INPUT_KEYS;

/** One failed input: the property and why. */
export interface InputFailure {
  property: string;
  reason: string;
}

/** The outcome of checking a container's inputs. */
export type CheckedInputs =
  | { ok: true; inputs: ContainerInputs; unknown: ReadonlySet<keyof ContainerInputs>; bag: PropertyBag }
  | { ok: false; failures: InputFailure[] };

/**
 * Validates inputs and applies defaults. Values unknown during a preview are not
 * validated: they are kept as they are in `bag` and listed in `unknown`. Pure.
 */
export function checkContainerInputs(raw: unknown): CheckedInputs {
  const bag = propertyBag(raw);
  const unknown = new Set<keyof ContainerInputs>();
  const known: PropertyBag = {};
  const failures: InputFailure[] = [];
  for (const [key, value] of Object.entries(bag)) {
    // Engine bookkeeping such as `__defaults`, and the outputs a program declares as placeholders, are not inputs.
    if (key.startsWith("__") || OUTPUT_ONLY.has(key)) continue;
    if (value === null || value === undefined) continue;
    if (!(INPUT_KEYS as string[]).includes(key)) {
      failures.push({ property: key, reason: `unknown property "${key}" of homelab:proxmox:Container` });
      continue;
    }
    if (isUnknown(value)) unknown.add(key as keyof ContainerInputs);
    else known[key] = value;
  }
  // An unknown value stands in for a valid one, so the rest can still be checked.
  const schema = containerInputsSchema.safeParse({ ...known, ...placeholders(unknown) });
  if (!schema.success) {
    for (const issue of schema.error.issues) {
      const property = issue.path.length > 0 ? issue.path.map(String).join(".") : "";
      const missing = issue.code === "invalid_type" && issue.path.length === 1 && known[String(issue.path[0])] === undefined;
      failures.push({ property, reason: missing ? `${property} is required` : issue.message });
    }
  }
  if (failures.length > 0 || !schema.success) return { ok: false, failures };
  const inputs: ContainerInputs = schema.data;
  const out: PropertyBag = { ...withoutUndefined(inputs) };
  for (const key of unknown) out[key] = bag[key];
  return { ok: true, inputs, unknown, bag: out };
}

function placeholders(keys: ReadonlySet<keyof ContainerInputs>): PropertyBag {
  const sample: ContainerInputs = {
    node: "pve",
    template: "local:vztmpl/unknown.tar.zst",
    hostname: "unknown",
    description: "",
    tags: [],
    memory: D.memory,
    swap: D.swap,
    cores: D.cores,
    storage: D.storage,
    diskGb: D.disk,
    volumes: [],
    bindMounts: [],
    bridge: D.bridge,
    ip: "10.0.0.1/24",
    unprivileged: true,
    nesting: false,
    keyctl: false,
    sshPublicKeys: "",
    onBoot: false,
    protection: false,
  };
  const out: PropertyBag = {};
  for (const key of keys) out[key] = key === "gateway" ? "10.0.0.1" : sample[key];
  return out;
}

/** Drops keys whose value is undefined (protobuf Structs cannot carry them). Pure. */
export function withoutUndefined<T extends object>(value: T): PropertyBag {
  const out: PropertyBag = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v;
  return out;
}

/** What is known of a container from its stored state: every field optional, wrong types dropped. */
export type ContainerState = Partial<ContainerOutputs>;

const stateFields = {
  node: z.string(),
  template: z.string(),
  hostname: z.string(),
  description: z.string(),
  tags: z.array(z.string()),
  memory: z.number(),
  swap: z.number(),
  cores: z.number(),
  storage: z.string(),
  diskGb: z.number(),
  volumes: z.array(z.object({ name: z.string(), sizeGb: z.number(), path: z.string(), storage: z.string(), backup: z.boolean() })),
  bindMounts: z.array(z.object({ host: z.string(), path: z.string(), readOnly: z.boolean() })),
  volumeKeys: z.record(z.string(), z.string()),
  bridge: z.string(),
  ip: z.string(),
  gateway: z.string(),
  unprivileged: z.boolean(),
  nesting: z.boolean(),
  keyctl: z.boolean(),
  sshPublicKeys: z.string(),
  onBoot: z.boolean(),
  protection: z.boolean(),
  base: z.string(),
  vmid: z.number(),
  address: z.string(),
} satisfies Record<keyof ContainerOutputs, z.ZodType>;

/** Parses stored state leniently: a field of the wrong type is treated as not known. Pure. */
export function parseContainerState(raw: unknown): ContainerState {
  const bag = propertyBag(raw);
  const out: ContainerState = {};
  for (const [key, schema] of Object.entries(stateFields)) {
    const value = bag[key];
    if (value === undefined || value === null || isUnknown(value)) continue;
    const parsed = schema.safeParse(value);
    if (parsed.success) (out as Record<string, unknown>)[key] = parsed.data;
  }
  return out;
}
