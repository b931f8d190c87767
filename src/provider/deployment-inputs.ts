/**
 * `homelab:compose:Deployment`: a service's Docker Compose project inside
 * its container. Its inputs carry the compose files' content (so a preview
 * knows exactly what would be deployed), the images' pushed references, and
 * only a hash of the secrets; `check` adds the per-file hashes of what would
 * be written, so a changed compose file shows as a changed `fileHashes`
 * entry. Every change is an update in place: files rewritten, the project
 * reloaded, the container never re-created. Pure.
 */
import { z } from "zod";
import { buildComposeDeployment } from "../provision/compose.ts";
import type { ComposeDeployment } from "../provision/compose.ts";
import { diffDeployments } from "../provision/compose-files.ts";
import type { RegistryAccess } from "../provision/compose-files.ts";
import type { BuiltImage } from "../provision/compose-images.ts";
import { SECRET_SIG, SIG_KEY, isUnknown, propertyBag } from "./inputs.ts";
import type { PropertyBag } from "./inputs.ts";
import { checkProperties, parseState, sameData } from "./schema.ts";
import { CODENAME, PIN_PACKAGES } from "../provision/docker-pins.ts";
import type { DockerPins } from "../provision/docker-pins.ts";
import type { Checked } from "./schema.ts";

/** The Pulumi type token of the resource. */
import { DEPLOYMENT_TYPE } from "./tokens.ts";
export { DEPLOYMENT_TYPE };

/** A compose file as the program read it: path relative to service.yaml, content. */
export interface ComposeFileInput {
  path: string;
  content: string;
}

/** A registry the containers pull from (credentials come from the environment, by name or address). */
export interface DeploymentRegistryInput {
  name?: string;
  url: string;
  insecure: boolean;
}

/** The inputs of a `homelab:compose:Deployment`. */
export interface DeploymentInputs {
  /** The service's name: its compose project, unit (`homelab-<service>.service`), folder (`/opt/homelab/<service>`) and secrets. */
  service: string;
  /** The compose project name; must be the service's name (default). */
  project: string;
  /** The container's IPv4 address (the Container's `address` output). */
  address: string;
  /** The container's id (the Container's `vmid` output): a replaced container (new vmid, maybe the same address) is provisioned afresh. */
  vmid?: number;
  /** The compose files in order, as `readComposeFiles(serviceDir, files)` returns them. */
  composeFiles: ComposeFileInput[];
  /** The service's images (the Image outputs): compose `image: <name>` becomes `ref`; a `build:` of `path` (relative to service.yaml) too. */
  images: BuiltImage[];
  /** Registries to pull from: plain-HTTP ones go into Docker's daemon.json, ones with credentials into root's Docker config. */
  registries: DeploymentRegistryInput[];
  /** Where Docker comes from in the container: Docker's apt repository (pinned), or the distribution's packages (offline, the sandbox). */
  dockerSource: "docker" | "distribution";
  /** The folder in the container (a data volume's mount path) holding the project's named volumes (`docker.volumes_on`). */
  volumesDir?: string;
  /** With Docker's repository: the exact versions installed, per release codename (the container's release picks its own). */
  dockerPins?: Record<string, DockerPins>;
  /**
   * sha256 of the secret files (secrets.env, registry credentials): a Pulumi secret. `check` computes
   * it from the service's secrets when the program leaves it out.
   */
  secretsHash?: string;
  /** Per deployed non-secret file, sha256 of its content: computed by `check` (a program's value is replaced). */
  fileHashes?: Record<string, string>;
}

/** What a `homelab:compose:Deployment` reports. */
export interface DeploymentOutputs extends DeploymentInputs {
  secretsHash: string;
  fileHashes: Record<string, string>;
  /** sha256 of everything deployed (as in the container's `.homelab-hash`): a Pulumi secret. */
  hash: string;
  /** The deployment's folder and unit in the container. */
  dir: string;
  unit: string;
  /** Image references the compose files were given (file, service, from, to). */
  rewrites: Array<{ file: string; service: string; from: string; to: string }>;
  /** E.g. a `build:` the container cannot do. */
  warnings: string[];
  /** Docker in the container, e.g. `docker.io 20.10.24 / compose v1`. */
  docker: string;
  /**
   * Set by a refresh when the container no longer has what was deployed (a file changed or gone, the unit not
   * running): the next deploy applies the deployment again.
   */
  drift?: string[];
}

const SERVICE = /^[a-z0-9][a-z0-9_-]*$/;
const OCTET = "(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)";
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const SHA256 = /^[0-9a-f]{64}$/;

/** The inputs of `homelab:compose:Deployment`, with defaults (`project` defaults to the service, in check). */
const deploymentInputsSchema = z.strictObject({
  service: z.string().regex(SERVICE, { error: "service must be a service name: lowercase letters, digits, _ and -" }),
  project: z.string().optional(),
  address: z.string().regex(IPV4, { error: "address must be the container's IPv4 address (the Container's address output)" }),
  vmid: z.int().min(100).optional(),
  composeFiles: z.array(z.strictObject({ path: z.string().min(1), content: z.string() })).min(1, { error: "composeFiles must list at least one compose file" }),
  images: z.array(z.strictObject({ name: z.string().min(1), ref: z.string().min(1), path: z.string().min(1).optional() })).default([]),
  registries: z.array(z.strictObject({ name: z.string().min(1).optional(), url: z.string().min(1), insecure: z.boolean().default(false) })).default([]),
  dockerSource: z.enum(["docker", "distribution"]).default("docker"),
  volumesDir: z.string().regex(/^\/[^,=\s]+$/, { error: "volumesDir must be an absolute path in the container" }).optional(),
  dockerPins: z
    .record(z.string().regex(CODENAME, { error: "dockerPins is keyed by release codename, e.g. trixie" }), z.strictObject({ docker: z.string().min(1), containerd: z.string().min(1), compose: z.string().min(1) }))
    .optional(),
  secretsHash: z.string().regex(SHA256, { error: "secretsHash must be a sha256 in hex (deploymentSecrets' hash)" }).optional(),
  fileHashes: z.record(z.string(), z.string()).optional(),
});

/** Properties the provider computes; a program may declare them (as undefined) to read them. */
const DEPLOYMENT_OUTPUT_ONLY: ReadonlySet<string> = new Set(["hash", "dir", "unit", "rewrites", "warnings", "docker", "drift"]);

/** The inputs after check: defaults applied, project set. */
export type CheckedDeployment = Omit<DeploymentInputs, "project"> & { project: string };

const PLACEHOLDERS: Record<string, unknown> = {
  service: "unknown",
  address: "10.0.0.1",
  vmid: 100,
  composeFiles: [{ path: "unknown.yaml", content: "" }],
  images: [],
  registries: [],
  dockerSource: "docker",
  dockerPins: {},
  secretsHash: "0".repeat(64),
  fileHashes: {},
};

/** Validates a deployment's inputs and applies defaults. Pure. */
export function checkDeploymentInputs(raw: unknown): Checked<CheckedDeployment> {
  const checked = checkProperties(deploymentInputsSchema, raw, { type: DEPLOYMENT_TYPE, ignore: DEPLOYMENT_OUTPUT_ONLY, placeholder: (key) => PLACEHOLDERS[key] });
  if (!checked.ok) return checked;
  const project = checked.inputs.project ?? checked.inputs.service;
  if (!checked.unknown.has("project") && !checked.unknown.has("service") && project !== checked.inputs.service) {
    return { ok: false, failures: [{ property: "project", reason: `project must be the service's name (${checked.inputs.service}): homelab names the compose project after the service` }] };
  }
  const inputs: CheckedDeployment = { ...checked.inputs, project };
  return { ok: true, inputs, unknown: checked.unknown, bag: { ...checked.bag, project: checked.unknown.has("project") ? checked.bag["project"] : project } };
}

/** What is known of a deployment from its stored state. */
export type DeploymentState = Partial<DeploymentOutputs>;

const stateFields = {
  service: z.string(),
  project: z.string(),
  address: z.string(),
  vmid: z.number(),
  composeFiles: z.array(z.object({ path: z.string(), content: z.string() })),
  images: z.array(z.object({ name: z.string(), ref: z.string(), path: z.string().optional() })),
  registries: z.array(z.object({ name: z.string().optional(), url: z.string(), insecure: z.boolean() })),
  dockerSource: z.enum(["docker", "distribution"]),
  volumesDir: z.string(),
  dockerPins: z.record(z.string(), z.object({ docker: z.string(), containerd: z.string(), compose: z.string() })),
  secretsHash: z.string(),
  fileHashes: z.record(z.string(), z.string()),
  hash: z.string(),
  dir: z.string(),
  unit: z.string(),
  rewrites: z.array(z.object({ file: z.string(), service: z.string(), from: z.string(), to: z.string() })),
  warnings: z.array(z.string()),
  docker: z.string(),
  drift: z.array(z.string()),
} satisfies Record<keyof DeploymentOutputs, z.ZodType>;

/** Parses a deployment's stored state leniently (secrets revealed). Pure. */
export function parseDeploymentState(raw: unknown): DeploymentState {
  return parseState<DeploymentOutputs>(raw, stateFields);
}

/** Wraps a value as a Pulumi secret in a property bag (the plugin accepts and returns secrets). */
export function secretValue(value: unknown): PropertyBag {
  return { [SIG_KEY]: SECRET_SIG, value };
}

/** The registry list for building a deployment (credentials added by the caller). */
export function registriesOf(inputs: Pick<DeploymentInputs, "registries">): RegistryAccess[] {
  return inputs.registries.map((r) => ({ url: r.url, insecure: r.insecure }));
}

/**
 * The deployment built from the inputs with the given secrets and registry access:
 * the files, their hashes, the rewrites. With no secrets it gives the non-secret files
 * exactly (their hashes do not depend on secrets), which is what check needs. Pure.
 */
export function deploymentOf(inputs: Pick<DeploymentInputs, "service" | "composeFiles" | "images" | "volumesDir">, secrets: ReadonlyMap<string, string>, registries: readonly RegistryAccess[]): ComposeDeployment {
  return buildComposeDeployment({ service: inputs.service, composeFiles: inputs.composeFiles, secrets, images: inputs.images, registries, ...(inputs.volumesDir !== undefined ? { volumesDir: inputs.volumesDir } : {}) });
}

/** How one input's change is carried out. */
export type DeploymentChangeKind = "update" | "replace" | "ignore";

/**
 * Per input: a different service is a different project and unit (replace: the new one is
 * deployed, then the old one removed); everything else is applied in place. The compose files,
 * images and registries count through `fileHashes` (what would be written), so a comment-only
 * image list change that writes the same files is no change.
 */
const DEPLOYMENT_CHANGE_KIND: Readonly<Record<keyof DeploymentInputs, DeploymentChangeKind>> = {
  service: "replace",
  // Always the service's name (check refuses another).
  project: "ignore",
  address: "update",
  vmid: "update",
  dockerSource: "update",
  // New versions are installed in place (apt, then held); the container stays.
  dockerPins: "update",
  secretsHash: "update",
  fileHashes: "update",
  composeFiles: "ignore",
  images: "ignore",
  registries: "ignore",
  // Counted through the override file it writes.
  volumesDir: "ignore",
};

/** The outcome of comparing a deployment's state with new inputs. */
export interface DeploymentDiff {
  /** Inputs that differ (or are unknown), in the table's order. */
  changed: (keyof DeploymentInputs)[];
  replaces: (keyof DeploymentInputs)[];
  /** A refresh found the container different from what was deployed. */
  drift: string[];
  /** What the preview should say, e.g. `compose files changed: docker-compose.yaml`. */
  summary: string[];
}

/**
 * Compares the stored state with new (checked) inputs. Unknown inputs count as changed; an
 * unknown image list (an image being rebuilt) makes `fileHashes` unknown, hence changed. Pure.
 */
export function diffDeployment(olds: DeploymentState, news: Partial<CheckedDeployment>, unknown: ReadonlySet<string> = new Set()): DeploymentDiff {
  const changed: (keyof DeploymentInputs)[] = [];
  for (const [key, kind] of Object.entries(DEPLOYMENT_CHANGE_KIND) as [keyof DeploymentInputs, DeploymentChangeKind][]) {
    if (kind === "ignore") continue;
    if (key === "fileHashes" && (unknown.has("images") || unknown.has("composeFiles") || unknown.has("registries"))) {
      changed.push(key);
      continue;
    }
    if (unknown.has(key)) {
      changed.push(key);
      continue;
    }
    const a = olds[key];
    const b = news[key];
    // A program that stops passing the vmid changes nothing.
    const same = key === "vmid" && b === undefined ? true : sameData(a, b);
    if (!same) changed.push(key);
  }
  const drift = olds.drift ?? [];
  const replaces = changed.filter((k) => DEPLOYMENT_CHANGE_KIND[k] === "replace");
  return { changed, replaces, drift, summary: describeDeploymentChange(olds, news, unknown) };
}

/** Whether a deployed path is one of the compose files (not the wrapper, the unit or Docker's settings). */
function isComposePath(path: string, dir: string | undefined): boolean {
  return dir !== undefined && path.startsWith(`${dir}/`) && path !== `${dir}/compose`;
}

/** A deployed path as the user knows it: a compose file relative to service.yaml, else what the file is. */
function label(path: string, dir: string | undefined): string {
  if (isComposePath(path, dir) && dir !== undefined) return path.slice(dir.length + 1);
  if (dir !== undefined && path === `${dir}/compose`) return "the compose wrapper";
  if (path.startsWith("/etc/systemd/system/")) return `the unit ${path.slice("/etc/systemd/system/".length)}`;
  return path;
}

/**
 * Says what a deployment change is, for a preview: `compose files changed: docker-compose.yaml`,
 * `secrets changed`, `new container (CT 105 at 10.0.0.7)`, drift found by a refresh. The engine
 * may call it with the old and new inputs of a resource event. Pure.
 */
export function describeDeploymentChange(olds: DeploymentState | PropertyBag, news: Partial<CheckedDeployment> | PropertyBag, unknown: ReadonlySet<string> = new Set()): string[] {
  const o = parseDeploymentState(olds);
  const bag = propertyBag(news);
  const n = parseDeploymentState(bag);
  const unknownKeys = new Set([...unknown, ...Object.keys(bag).filter((k) => isUnknown(bag[k]))]);
  const out: string[] = [];
  const dir = o.dir ?? (o.service !== undefined ? `/opt/homelab/${o.service}` : undefined);
  if (o.service !== undefined && n.service !== undefined && o.service !== n.service) out.push(`service ${o.service} → ${n.service}: the new project is deployed, then the old one removed`);
  if (unknownKeys.has("vmid") || unknownKeys.has("address")) out.push("the container changes: provisioned once it exists");
  else if ((n.vmid !== undefined && o.vmid !== undefined && o.vmid !== n.vmid) || (n.address !== undefined && o.address !== undefined && o.address !== n.address)) {
    out.push(`new container (CT ${n.vmid ?? o.vmid ?? "?"} at ${n.address ?? o.address ?? "?"}): provisioned from scratch`);
  }
  if (unknownKeys.has("images") || unknownKeys.has("composeFiles") || unknownKeys.has("fileHashes")) out.push("compose files change with the rebuilt images");
  else if (o.fileHashes !== undefined && n.fileHashes !== undefined) {
    const d = diffDeployments({ perFile: o.fileHashes, files: "", secrets: "", all: "" }, { perFile: n.fileHashes, files: "", secrets: "", all: "" });
    for (const [what, paths] of [
      ["changed", d.changed],
      ["added", d.added],
      ["removed", d.removed],
    ] as const) {
      const compose = paths.filter((p) => isComposePath(p, dir));
      const other = paths.filter((p) => !isComposePath(p, dir));
      if (compose.length > 0) out.push(`compose files ${what}: ${compose.map((p) => label(p, dir)).join(", ")}`);
      if (other.length > 0) out.push(`${what}: ${other.map((p) => label(p, dir)).join(", ")}`);
    }
  }
  if (unknownKeys.has("secretsHash") || (o.secretsHash !== undefined && n.secretsHash !== undefined && o.secretsHash !== n.secretsHash)) out.push("secrets changed");
  if (o.dockerSource !== undefined && n.dockerSource !== undefined && o.dockerSource !== n.dockerSource) out.push(`Docker source ${o.dockerSource} → ${n.dockerSource} (an installed Docker is kept)`);
  if (n.dockerPins !== undefined && !sameData(o.dockerPins, n.dockerPins)) out.push(...describePinChange(o.dockerPins, n.dockerPins));
  for (const d of o.drift ?? []) out.push(`drift: ${d}`);
  return out;
}

/** `Docker pins: trixie containerd.io 1.7.29-1~… → 1.7.28-1~…`, per release and package that changed. Pure. */
function describePinChange(before: Record<string, DockerPins> | undefined, after: Record<string, DockerPins>): string[] {
  if (before === undefined) return ["Docker's packages pinned to exact versions (installed at those versions and held)"];
  const changes: string[] = [];
  for (const codename of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    const a = before[codename];
    const b = after[codename];
    for (const key of ["docker", "containerd", "compose"] as const) {
      if (a?.[key] !== b?.[key]) changes.push(`${codename} ${PIN_PACKAGES[key]} ${a?.[key] ?? "(none)"} → ${b?.[key] ?? "(none)"}`);
    }
  }
  return changes.length > 0 ? [`Docker pins: ${changes.join(", ")}`] : [];
}
