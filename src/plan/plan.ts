import { dockerImage, proxmoxContainer } from "../config/resource-types/index.ts";
import type { ResolvedContainer } from "../config/resource-types/index.ts";
import { parseDependency } from "../config/repository.ts";
import type { EnvironmentConfig } from "../config/environment.ts";
import type { Service, ResourceDecl } from "../config/service.ts";
import type { Inventory } from "../proxmox/inventory.ts";
import { topologicalWaves } from "../util/graph.ts";
import { DEFAULT_STRATEGY, placeContainer, STRATEGIES } from "./placement.ts";
import { matchTemplate } from "./templates.ts";
import { guestSystem } from "./guest-system.ts";
import { planBase } from "./base-plan.ts";
import { effectivePins } from "../provision/docker-pins.ts";
import type { ContainerInputs, CurrentState, NodeCandidateCode, PlanProblem, PlannedContainer, PlannedImage, PlannedResource, ServicePlan } from "./types.ts";
import { envFileOf } from "../config/homelab-dir.ts";
import { managedDescription } from "../data/identity.ts";

/** Memory (MB) placed per node so far in one run, so services planned together spread out. */
export type Reservations = Map<string, number>;

/** Everything planning one service needs; all of it data. */
export interface PlanInput {
  service: Service;
  env: EnvironmentConfig;
  inventory: Inventory;
  current: CurrentState;
  sshPublicKey: string;
  strategy?: string;
  /** Shared across the services of one run; updated with what this service places. */
  reservations?: Reservations;
}

/** The Pulumi stack of a service in an environment. */
export function stackName(env: string, service: string): string {
  return `${env}.${service}`;
}

/** Turns one service into a plan: templates matched, nodes chosen, every input decided. Pure. */
export function planService(input: PlanInput): { plan: ServicePlan | undefined; problems: PlanProblem[] } {
  const { service, env, inventory } = input;
  const problems: PlanProblem[] = [];
  const strategy = STRATEGIES.get(input.strategy ?? DEFAULT_STRATEGY);
  if (!strategy) {
    return { plan: undefined, problems: [{ service: service.name, resource: "", message: `unknown placement strategy "${input.strategy ?? ""}"`, hint: `known: ${[...STRATEGIES.keys()].join(", ")}` }] };
  }
  const reservations = input.reservations ?? new Map<string, number>();
  const resources: PlannedResource[] = [];
  const notes: string[] = [];
  // Any image or compose container: with provisioning off the plan says what it leaves out.
  let wantsProvisioning = false;
  const tokenOnly = env.proxmox !== undefined && env.proxmox.username === undefined;
  // Bind mounts need root@pam itself; a token (even root's) is refused by Proxmox.
  const rootPassword = env.proxmox === undefined || env.proxmox.username === "root@pam";
  for (const decl of service.resources) {
    const deps = splitDeps(decl, service.name);
    if (decl.type === dockerImage.type) {
      wantsProvisioning = true;
      const s = dockerImage.resolve(decl.spec, env, service.dir);
      const reg = s.registry !== undefined ? env.registries[s.registry] : undefined;
      const image: PlannedImage = {
        kind: "docker:image",
        id: decl.id,
        protect: decl.protect,
        ...deps,
        name: s.name,
        context: s.context,
        dockerfile: s.dockerfile,
        buildArgs: s.build_args,
        registry: reg ? { name: reg.name, url: reg.url, insecure: reg.insecure } : undefined,
      };
      resources.push(image);
      continue;
    }
    if (decl.type !== proxmoxContainer.type) {
      notes.push(`${decl.id}: resource type ${decl.type} has no planner`);
      continue;
    }
    const s = proxmoxContainer.resolve(decl.spec, env, service.dir);
    const current = input.current.get(decl.id);
    const nodesWithTemplate = new Set<string>();
    for (const t of inventory.templates) {
      if (matchTemplate([t], { pattern: s.image.name, version: s.image.version }).chosen) for (const n of t.nodes) nodesWithTemplate.add(n);
    }
    const placement = placeContainer(inventory.nodes, env.hosts, { tags: s.host.tags, memoryMb: s.host.resources.memory, cores: s.host.resources.cores, current: current?.node, nodesWithTemplate }, strategy, reservations);
    if (placement.chosen === undefined) {
      problems.push({
        service: service.name,
        resource: decl.id,
        message: `no node can take ${decl.id}: ${placement.candidates.map((c) => `${c.node}: ${c.reason}`).join("; ") || "the cluster reports no nodes"}`,
        hint: placementHint(placement.candidates.map((c) => c.code), s.host.tags, s.image, env),
      });
      continue;
    }
    const onNode = inventory.templates.filter((t) => t.nodes.includes(placement.chosen ?? ""));
    const template = matchTemplate(onNode, { pattern: s.image.name, version: s.image.version, current: current?.template, preferredStorage: env.defaults.templateStorage });
    if (!template.chosen) {
      problems.push({ service: service.name, resource: decl.id, message: `no template on ${placement.chosen} matches ${s.image.name} ${s.image.version}`, hint: "download one (pveam) or relax image.version" });
      continue;
    }
    if (!placement.sticky) reservations.set(placement.chosen, (reservations.get(placement.chosen) ?? 0) + s.host.resources.memory);
    const docker = s.docker.compose;
    wantsProvisioning ||= docker;
    const keyctl = docker && s.unprivileged;
    if (keyctl && tokenOnly) {
      problems.push({
        service: service.name,
        resource: decl.id,
        message: `${decl.id} runs Docker in an unprivileged container, which needs the keyctl feature; Proxmox lets only root@pam set it, not an API token`,
        at: { file: `services/${service.name}/service.yaml`, ...service.source.locate(["resources", decl.index, "docker", "compose"]) },
        hint: `set unprivileged: false on ${decl.id} (a privileged container needs only nesting), or give homelab:proxmox a root@pam username with password_file`,
      });
      continue;
    }
    const at = (...path: (string | number)[]): PlanProblem["at"] => ({ file: `services/${service.name}/service.yaml`, ...service.source.locate(["resources", decl.index, ...path]) });
    if (s.bind_mounts.length > 0 && !rootPassword) {
      problems.push({
        service: service.name,
        resource: decl.id,
        at: at("bind_mounts"),
        message: `${decl.id} has bind mounts, which only root@pam may set on Proxmox (not an API token, even root's)`,
        hint: `give homelab:proxmox a root@pam username with password_file in ${envFileOf(env)} (the token stays in use for everything else), or use volumes instead`,
      });
      continue;
    }
    const storageProblem = volumeStorageProblem(s.volumes, placement.chosen, inventory);
    if (storageProblem) {
      problems.push({ service: service.name, resource: decl.id, message: storageProblem.message, hint: storageProblem.hint, at: at("volumes", storageProblem.index, "storage") });
      continue;
    }
    // Docker comes from a Docker-ready base where it will be installed at all (provisioning on).
    const base = docker && env.provisioning ? planBase({ env, inventory, node: placement.chosen, template: template.chosen.volid, unprivileged: s.unprivileged, diskGb: s.host.resources.disk, sshPublicKey: input.sshPublicKey }) : undefined;
    const inputs: ContainerInputs = {
      node: placement.chosen,
      template: template.chosen.volid,
      hostname: s.hostname,
      description: managedDescription({ service: service.name, resource: decl.id, environment: env.name }),
      tags: ["homelab", service.name.replace(/[^a-z0-9_+.-]/g, "-")],
      memory: s.host.resources.memory,
      swap: s.host.resources.swap,
      cores: s.host.resources.cores,
      storage: env.defaults.storage,
      diskGb: s.host.resources.disk,
      volumes: s.volumes.map((v) => ({ name: v.name, sizeGb: v.size, path: v.path, storage: v.storage, backup: v.backup })),
      bindMounts: s.bind_mounts.map((b) => ({ host: b.host, path: b.path, readOnly: b.read_only })),
      bridge: s.network.bridge,
      ip: s.network.ip,
      ...(s.network.gateway ? { gateway: s.network.gateway } : {}),
      unprivileged: s.unprivileged,
      nesting: docker,
      keyctl,
      sshPublicKeys: input.sshPublicKey,
      onBoot: true,
      protection: decl.protect,
      ...(base?.mode === "clone" ? { base: base.key } : {}),
    };
    const kept = current?.node !== undefined && current.node !== placement.chosen ? (current.volumes ?? []) : [];
    const planned: PlannedContainer = {
      kind: "proxmox:container",
      id: decl.id,
      protect: decl.protect,
      ...deps,
      inputs,
      template: { chosen: template.chosen.volid, sticky: template.sticky, candidates: template.candidates },
      placement: { chosen: placement.chosen, sticky: placement.sticky, strategy: strategy.name, candidates: placement.candidates },
      compose: docker && env.provisioning ? composeOf(service.dir, s) : undefined,
      ...(kept.length > 0 && current?.node !== undefined ? { dataMove: { from: current.node, to: placement.chosen, volumes: kept } } : {}),
      // Docker only where it will be installed: with provisioning off nothing is.
      system: guestSystem(template.chosen.volid, docker && env.provisioning ? { source: env.docker.source, ...(env.docker.versions ? { pins: env.docker.versions } : {}) } : undefined),
      ...(base ? { base } : {}),
    };
    resources.push(planned);
  }
  if (problems.length > 0) return { plan: undefined, problems };
  if (!env.provisioning && wantsProvisioning) {
    notes.push(`provisioning is off in environment ${env.name} (homelab:provisioning: false): containers are created, but images are not built and compose projects not deployed`);
  }
  const dependsOnServices = [...new Set(resources.flatMap((r) => r.crossDependsOn.map((d) => d.service)))].sort();
  return { plan: { service: service.name, environment: env.name, stack: stackName(env.name, service.name), resources, dependsOnServices, notes, provisioning: provisioningOf(env) }, problems };
}

/** Provisioning settings of a plan: with Docker's repository, the exact versions per release travel with it. */
function provisioningOf(env: EnvironmentConfig): ServicePlan["provisioning"] {
  if (env.docker.source !== "docker") return { enabled: env.provisioning, dockerSource: env.docker.source };
  return { enabled: env.provisioning, dockerSource: "docker", dockerPins: effectivePins(env.docker.versions) };
}

/** The compose project of a container: its files, and where its named volumes live when `docker.volumes_on` says. Pure. */
function composeOf(dir: string, s: ResolvedContainer): NonNullable<PlannedContainer["compose"]> {
  const on = s.docker.volumes_on !== undefined ? s.volumes.find((v) => v.name === s.docker.volumes_on) : undefined;
  return { dir, files: s.docker.compose_files, ...(on ? { volumesDir: on.path } : {}) };
}

/** A volume on a storage the node does not have, or one that cannot hold container volumes. Pure. */
function volumeStorageProblem(volumes: ResolvedContainer["volumes"], node: string, inventory: Inventory): { message: string; hint: string; index: number } | undefined {
  // An inventory that lists no storages (an older snapshot) cannot tell.
  if (inventory.storages.length === 0) return undefined;
  for (const [index, v] of volumes.entries()) {
    const onNode = inventory.storages.filter((x) => x.node === node);
    const st = onNode.find((x) => x.storage === v.storage);
    const usable = onNode.filter((x) => x.content.includes("rootdir")).map((x) => x.storage);
    if (!st) return { index, message: `volume "${v.name}" is on storage "${v.storage}", which node ${node} does not have`, hint: usable.length > 0 ? `use one of: ${usable.join(", ")}` : "add a storage for container volumes (content rootdir) to the node" };
    if (!st.content.includes("rootdir")) return { index, message: `volume "${v.name}" is on storage "${v.storage}", which cannot hold container volumes (its content is ${st.content.join(", ") || "none"})`, hint: usable.length > 0 ? `use one of: ${usable.join(", ")}` : "enable content rootdir on a storage of the node" };
  }
  return undefined;
}

/** What to do when no node can take a container, from why each node could not. */
function placementHint(codes: readonly NodeCandidateCode[], tags: string[], image: { name: string; version: string }, env: EnvironmentConfig): string {
  const file = envFileOf(env);
  const only = (...allowed: NodeCandidateCode[]): boolean => codes.every((c) => allowed.includes(c));
  if (codes.length === 0) return "check that the Proxmox API lists the cluster's nodes";
  if (only("missing-tags")) return `tag a node with ${tags.join(", ")} under homelab:hosts in ${file}`;
  if (only("missing-tags", "no-template")) {
    return `no template matching ${image.name} ${image.version} is on a node with the tags: download one there (pveam download), or relax image.version`;
  }
  if (only("missing-tags", "offline")) return "bring a tagged node back online";
  return "free memory on a tagged node, lower host.resources.memory, or add a node";
}

function splitDeps(decl: ResourceDecl, service: string): { dependsOn: string[]; crossDependsOn: { service: string; id: string }[] } {
  const dependsOn: string[] = [];
  const crossDependsOn: { service: string; id: string }[] = [];
  for (const d of decl.dependsOn) {
    const p = parseDependency(d, service);
    if (p.service === service) dependsOn.push(p.id);
    else crossDependsOn.push(p);
  }
  return { dependsOn, crossDependsOn };
}

/** Services in dependency order, as waves whose members can deploy concurrently. */
export function serviceWaves(services: ReadonlyMap<string, Service>): string[][] {
  const graph = new Map<string, string[]>();
  for (const [name, s] of services) {
    const deps = new Set<string>();
    for (const r of s.resources) for (const d of r.dependsOn) {
      const p = parseDependency(d, name);
      if (p.service !== name && services.has(p.service)) deps.add(p.service);
    }
    graph.set(name, [...deps]);
  }
  return topologicalWaves(graph);
}

/** The services that (transitively) depend on `failed`: they must not deploy after it fails. */
export function dependentsOf(services: ReadonlyMap<string, Service>, failed: string): Set<string> {
  const out = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [name, s] of services) {
      if (out.has(name) || name === failed) continue;
      const deps = s.resources.flatMap((r) => r.dependsOn.map((d) => parseDependency(d, name).service));
      if (deps.includes(failed) || deps.some((d) => out.has(d))) {
        out.add(name);
        grew = true;
      }
    }
  }
  return out;
}
