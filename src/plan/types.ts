/**
 * What planning produces: per service, the resources with every input
 * decided (template, node, sizes), and why. Planning is pure: it reads the
 * validated config, an inventory snapshot and the current deployment, and
 * returns data. The engine turns a ServicePlan into Pulumi resources.
 */
import type { BaseSpec } from "../provision/base.ts";
import type { DockerPins } from "../provision/docker-pins.ts";
import type { GuestSystem } from "./guest-system.ts";

/**
 * A data volume: a Proxmox mount point (`mpN`) on a storage, named so it can
 * be found again when the container is rebuilt (its volume then moves to the
 * new container instead of being made afresh).
 */
export interface ContainerVolume {
  /** Its name in service.yaml: the volume's identity across rebuilds. */
  name: string;
  /** GiB; growing it resizes in place, Proxmox cannot shrink. */
  sizeGb: number;
  /** The mount path inside the container. */
  path: string;
  storage: string;
  /** Whether vzdump backups include it. */
  backup: boolean;
}

/** A folder of the node mounted into the container (root@pam only). */
export interface ContainerBindMount {
  host: string;
  path: string;
  readOnly: boolean;
}

/** How a compose container gets Docker: cloned from a Docker-ready base (by its content key), or installed. */
export type BasePlan =
  | { mode: "clone"; key: string; spec: BaseSpec; vmid: number | undefined; reason: string }
  | { mode: "install"; reason: string };

/** The inputs of a `homelab:proxmox:Container` resource, exactly as the provider receives them. */
export interface ContainerInputs {
  /** Proxmox node to create the container on. */
  node: string;
  /** Template volid, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`. */
  template: string;
  hostname: string;
  /** The container's notes: says it is managed by homelab, for which service and environment. */
  description: string;
  /** Proxmox tags (lowercase, valid Proxmox tag syntax): at least `homelab` and the service name. */
  tags: string[];
  /** MB. */
  memory: number;
  /** MB. */
  swap: number;
  cores: number;
  /** Root disk: storage and size in GB. */
  storage: string;
  diskGb: number;
  /** Data volumes, in mount order. */
  volumes: ContainerVolume[];
  bindMounts: ContainerBindMount[];
  bridge: string;
  /** `dhcp` or CIDR. */
  ip: string;
  gateway?: string;
  unprivileged: boolean;
  /** Docker inside needs nesting (and keyctl when unprivileged). */
  nesting: boolean;
  keyctl: boolean;
  /** OpenSSH public key line(s) for root, used by provisioning. */
  sshPublicKeys: string;
  /** Start the container when its node boots. */
  onBoot: boolean;
  /** Proxmox's own `protection` flag, set for `protect: true` resources so Proxmox refuses deletion too. */
  protection: boolean;
  /**
   * The content key of the Docker-ready base to clone the container from (creation only; a base
   * missing on the node makes the provider create from `template` instead).
   */
  base?: string;
}

/** Outputs of a `homelab:proxmox:Container`. */
export interface ContainerOutputs extends ContainerInputs {
  vmid: number;
  /** IPv4 address without prefix, once known. */
  address: string | undefined;
  /** Which mount point holds each volume, by name (`{ data: "mp0" }`). */
  volumeKeys: Record<string, string>;
}

/** Why a template was (or was not) chosen. */
export interface TemplateCandidate {
  volid: string;
  version: string | undefined;
  matched: boolean;
  /** e.g. "newest matching", "name does not match *debian*", "version 11.7-1 does not satisfy >=12". */
  reason: string;
}

/**
 * Why a node was or was not chosen, as a code that hints and renderers can
 * branch on: `chosen`, `ranked-lower` and `sticky` / `stays` for eligible
 * nodes; `missing-tags`, `no-template`, `offline`, `low-memory` for the others.
 */
export type NodeCandidateCode = "chosen" | "ranked-lower" | "sticky" | "stays" | "missing-tags" | "no-template" | "offline" | "low-memory";

/** Why a node was (or was not) chosen. */
export interface NodeCandidate {
  node: string;
  eligible: boolean;
  code: NodeCandidateCode;
  /** e.g. "most free memory (12.1 GiB)", "missing tag tier:1", "offline", "not enough free memory: 1.2 GiB < 2 GiB". */
  reason: string;
  memFreeMb: number;
}

/** A planned container. */
export interface PlannedContainer {
  kind: "proxmox:container";
  id: string;
  protect: boolean;
  /** Ids in this service it waits for. */
  dependsOn: string[];
  /** Resources of other services it waits for (read through StackReference). */
  crossDependsOn: { service: string; id: string }[];
  inputs: ContainerInputs;
  template: { chosen: string; sticky: boolean; candidates: TemplateCandidate[] };
  placement: { chosen: string; sticky: boolean; strategy: string; candidates: NodeCandidate[] };
  /**
   * Set when the container moves to another node while it has volumes: Proxmox moves volumes
   * only between containers of one node, so the data stays behind (with the old container,
   * kept) and the new one starts empty. Deploys refuse it without --allow-delete.
   */
  dataMove?: { from: string; to: string; volumes: string[] };
  /**
   * The compose project provisioned inside (`docker.compose: true` and provisioning on): the
   * service folder, its compose files (absolute, in order), and the folder inside the container
   * that holds its named volumes (`docker.volumes_on`'s mount path), if any.
   */
  compose: { dir: string; files: string[]; volumesDir?: string } | undefined;
  /** The release its template is, and for Docker containers which Docker and Compose they get (shown by previews). */
  system?: GuestSystem;
  /** Compose containers: cloned from a Docker-ready base, or Docker installed; and why. */
  base?: BasePlan;
}

/** A planned Docker image: built from its folder, tagged by content hash, pushed to its registry. */
export interface PlannedImage {
  kind: "docker:image";
  id: string;
  protect: boolean;
  dependsOn: string[];
  crossDependsOn: { service: string; id: string }[];
  name: string;
  context: string;
  dockerfile: string;
  buildArgs: Record<string, string>;
  registry: { name: string; url: string; insecure: boolean } | undefined;
}

export type PlannedResource = PlannedContainer | PlannedImage;

/** One service's plan. */
export interface ServicePlan {
  service: string;
  environment: string;
  /** Pulumi stack name: `<environment>.<service>`. */
  stack: string;
  resources: PlannedResource[];
  /** Services whose resources this one depends on. */
  dependsOnServices: string[];
  /** Things the user should know, shown in previews (e.g. unsupported resource kinds). */
  notes: string[];
  /**
   * Whether images are built and compose projects provisioned (the environment's homelab:provisioning), where
   * containers get Docker from, and with Docker's repository the exact versions per release (homelab's pins
   * with the environment's homelab:docker_versions over them).
   */
  provisioning: { enabled: boolean; dockerSource: "docker" | "distribution"; dockerPins?: Record<string, DockerPins> };
}

/** What is deployed now, per resource id, as read from the service's stack (for sticky placement). */
export interface CurrentResource {
  node?: string;
  template?: string;
  vmid?: number;
  /** The names of its volumes, as recorded. */
  volumes?: string[];
}
export type CurrentState = ReadonlyMap<string, CurrentResource>;

/** A resource that cannot be planned, with what to do about it. */
export interface PlanProblem {
  service: string;
  resource: string;
  message: string;
  hint?: string;
  /** Where in the service's file the problem is (`services/<name>/service.yaml`, relative to the repository). */
  at?: { file: string; line: number; col: number };
}

/** A plan problem as one line: `FILE:LINE:COL: resource: message` where it has a place. Pure. */
export function problemText(p: PlanProblem): string {
  return `${p.at ? `${p.at.file}:${p.at.line}:${p.at.col}: ` : ""}${p.resource ? `${p.resource}: ` : ""}${p.message}`;
}
