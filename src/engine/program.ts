/**
 * The inline Pulumi program of one service: its plan turned into the homelab
 * provider's resources (served by the plugin `pulumi-resource-homelab`):
 * `homelab:docker:Image` per docker:image, `homelab:proxmox:Container` per
 * container, and `homelab:compose:Deployment` per container that runs a
 * compose project; with `protect`, dependencies inside the service, and
 * dependencies on other services' resources read through StackReference.
 */
import type { DockerPins } from "../provision/docker-pins.ts";
import { relative, sep } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { ContainerInputs, PlannedContainer, PlannedImage, PlannedResource, ServicePlan } from "../plan/types.ts";
import { PROJECT, stackName } from "./stacks.ts";
import { CONTAINER_TYPE, DEPLOYMENT_TYPE, IMAGE_TYPE } from "./state.ts";

/** The inputs of an image, as planned (the program adds the context's hash when it runs). */
export interface ImageSpecInputs {
  name: string;
  context: string;
  dockerfile: string;
  buildArgs: Record<string, string>;
  registry?: { name: string; url: string; insecure: boolean };
}

/** A compose deployment, as planned (the program reads the files and wires in the container's address and the images' references). */
export interface DeploymentSpecInputs {
  service: string;
  /** The container it runs in (a resource id of this service). */
  container: string;
  /** The service folder and its compose files (absolute, in order). */
  dir: string;
  composeFiles: string[];
  /** The service's images: compose files name them; each is pulled by the reference its build pushed. */
  images: Array<{ id: string; name: string; path: string }>;
  registries: Array<{ name: string; url: string; insecure: boolean }>;
  dockerSource: "docker" | "distribution";
  /** Where the project's named volumes live in the container (`docker.volumes_on`'s mount path). */
  volumesDir?: string;
  /** With Docker's repository: the exact versions per release codename. */
  dockerPins?: Record<string, DockerPins>;
}

interface SpecBase {
  id: string;
  protect: boolean;
  /** Resources of this service it waits for (skipped ones removed). */
  dependsOn: string[];
  crossDependsOn: { service: string; id: string }[];
}

/** A resource the program declares. Pure data, for tests and rendering. */
export type ResourceSpec =
  | (SpecBase & { type: typeof CONTAINER_TYPE; inputs: ContainerInputs })
  | (SpecBase & { type: typeof IMAGE_TYPE; inputs: ImageSpecInputs })
  | (SpecBase & { type: typeof DEPLOYMENT_TYPE; inputs: DeploymentSpecInputs });

/** A planned resource the program leaves out, and why. */
export interface SkippedResource {
  id: string;
  kind: string;
  reason: string;
}

/** The Pulumi name of the compose deployment inside container `id` (resource ids have no dots, so it cannot clash). */
function deploymentName(containerId: string): string {
  return `${containerId}.compose`;
}

/** The resources a plan deploys, and those it skips (with the reason). Pure. */
export function resourceSpecs(plan: ServicePlan): { specs: ResourceSpec[]; skipped: SkippedResource[] } {
  const skipped: SkippedResource[] = [];
  const images: PlannedImage[] = [];
  const containers: PlannedContainer[] = [];
  for (const r of plan.resources) {
    if (r.kind === "proxmox:container") containers.push(r);
    else if (plan.provisioning.enabled) images.push(r);
    else skipped.push({ id: r.id, kind: r.kind, reason: `provisioning is off in environment ${plan.environment} (homelab:provisioning: false): the image is not built` });
  }
  const ids = new Set<string>([...images, ...containers].map((r) => r.id));
  const base = (r: PlannedResource): SpecBase => ({ id: r.id, protect: r.protect, dependsOn: r.dependsOn.filter((d) => ids.has(d)), crossDependsOn: r.crossDependsOn });
  const specs: ResourceSpec[] = [];
  for (const r of images) {
    const inputs: ImageSpecInputs = { name: r.name, context: r.context, dockerfile: r.dockerfile, buildArgs: r.buildArgs, ...(r.registry ? { registry: r.registry } : {}) };
    specs.push({ ...base(r), type: IMAGE_TYPE, inputs });
  }
  const registries = [...new Map(images.flatMap((i) => (i.registry ? [[i.registry.name, i.registry] as const] : []))).values()];
  for (const r of containers) {
    specs.push({ ...base(r), type: CONTAINER_TYPE, inputs: r.inputs });
    if (r.compose === undefined || !plan.provisioning.enabled) continue;
    const dir = r.compose.dir;
    specs.push({
      id: deploymentName(r.id),
      type: DEPLOYMENT_TYPE,
      // Taking the compose project down is as destructive as deleting its container.
      protect: r.protect,
      dependsOn: [r.id, ...images.map((i) => i.id)],
      crossDependsOn: [],
      inputs: {
        service: plan.service,
        container: r.id,
        dir,
        composeFiles: r.compose.files,
        images: images.map((i) => ({ id: i.id, name: i.name, path: relativePath(dir, i.context) })),
        registries,
        dockerSource: plan.provisioning.dockerSource,
        ...(r.compose.volumesDir !== undefined ? { volumesDir: r.compose.volumesDir } : {}),
        ...(plan.provisioning.dockerPins ? { dockerPins: plan.provisioning.dockerPins } : {}),
      },
    });
  }
  return { specs: dependencyOrder(specs), skipped };
}

/** `./a/b` for a folder inside `dir`, with forward slashes (as compose files write paths). */
function relativePath(dir: string, abs: string): string {
  const rel = relative(dir, abs).split(sep).join("/");
  return rel === "" ? "." : rel.startsWith("..") ? rel : `./${rel}`;
}

/** Specs with each one after those it depends on (declaration order otherwise); cycles were refused by validation. */
function dependencyOrder(specs: ResourceSpec[]): ResourceSpec[] {
  const out: ResourceSpec[] = [];
  const placed = new Set<string>();
  let rest = specs;
  while (rest.length > 0) {
    const ready = rest.filter((s) => s.dependsOn.every((d) => placed.has(d)));
    const next = ready.length > 0 ? ready : rest;
    for (const s of next) {
      out.push(s);
      placed.add(s.id);
    }
    rest = rest.filter((s) => !placed.has(s.id));
  }
  return out;
}

/** A Proxmox LXC container managed by the homelab provider plugin. */
export class Container extends pulumi.CustomResource {
  declare readonly vmid: pulumi.Output<number>;
  declare readonly node: pulumi.Output<string>;
  declare readonly template: pulumi.Output<string>;
  declare readonly address: pulumi.Output<string | undefined>;

  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    // Undefined properties are the outputs the engine fills in from the provider.
    super(CONTAINER_TYPE, name, { ...args, vmid: undefined, address: undefined }, opts);
  }
}

/** A Docker image built and pushed by the homelab provider plugin. */
export class Image extends pulumi.CustomResource {
  declare readonly ref: pulumi.Output<string>;

  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(IMAGE_TYPE, name, { ...args, ref: undefined }, opts);
  }
}

/** A compose project inside a container, provisioned by the homelab provider plugin. */
export class Deployment extends pulumi.CustomResource {
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(DEPLOYMENT_TYPE, name, args, opts);
  }
}

/** How a cross-service dependency is honoured. */
export type CrossRefMode =
  /** Read the other stack and require the resource to exist there. */
  | "read"
  /** The other service deploys earlier in this run and is not deployed yet: nothing to read during a preview. */
  | "pending";

/** Options of `serviceProgram`. */
export interface ProgramOptions {
  plan: ServicePlan;
  /** Per referenced service; missing means "read". */
  crossRefs?: ReadonlyMap<string, CrossRefMode>;
  /** Input names whose values are wrapped as secrets (encrypted in the state). */
  secretInputs?: ReadonlySet<string>;
  /** The code's fingerprint, recorded in the stack's exports (see fingerprint.ts). */
  fingerprint?: string;
}

/** The inline program of one service's stack. */
export function serviceProgram(opts: ProgramOptions): () => Promise<Record<string, unknown>> {
  return async () => {
    const { plan } = opts;
    const { specs } = resourceSpecs(plan);
    const refs = new Map<string, pulumi.StackReference>();
    // Cross-service dependencies are checked before anything is declared, so a
    // missing dependency fails the run with a clear message and touches nothing.
    for (const spec of specs) {
      for (const dep of spec.crossDependsOn) {
        if ((opts.crossRefs?.get(dep.service) ?? "read") !== "read") continue;
        let ref = refs.get(dep.service);
        if (!ref) {
          ref = new pulumi.StackReference(`ref-${dep.service}`, { name: `${pulumi.getOrganization()}/${PROJECT}/${stackName(plan.environment, dep.service)}` });
          refs.set(dep.service, ref);
        }
        const details = await ref.getOutputDetails("resources");
        const value: unknown = details.value ?? details.secretValue;
        const deployed = value !== null && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
        if (deployed?.[dep.id] === undefined) {
          throw new Error(
            `${spec.id} depends on ${dep.service}.${dep.id}, which is not deployed in environment ${plan.environment}; run \`homelab deploy ${dep.service}\` first (or deploy both with --all)`,
          );
        }
      }
    }
    // Effects the plan leaves to run time: the images' context hashes (so a
    // preview shows a changed context as a changed input) and the compose files' content.
    const needsImages = specs.some((s) => s.type === IMAGE_TYPE);
    const hashContext = needsImages ? (await import("../provision/image.ts")).hashContext : undefined;
    const { readComposeFiles } = await import("../provision/inputs.ts");
    const created = new Map<string, pulumi.CustomResource>();
    const containers = new Map<string, Container>();
    const images = new Map<string, Image>();
    for (const spec of specs) {
      const dependsOn: pulumi.Resource[] = [];
      for (const d of spec.dependsOn) {
        const r = created.get(d);
        if (r) dependsOn.push(r);
      }
      for (const d of spec.crossDependsOn) {
        const ref = refs.get(d.service);
        if (ref) dependsOn.push(ref);
      }
      const options: pulumi.CustomResourceOptions = { protect: spec.protect, dependsOn };
      if (spec.type === CONTAINER_TYPE) {
        const args: pulumi.Inputs = {};
        for (const [k, v] of Object.entries(spec.inputs) as [string, unknown][]) args[k] = opts.secretInputs?.has(k) ? pulumi.secret(v) : v;
        const c = new Container(spec.id, args, options);
        containers.set(spec.id, c);
        created.set(spec.id, c);
      } else if (spec.type === IMAGE_TYPE) {
        const contextHash = hashContext ? (await hashContext({ context: spec.inputs.context, dockerfile: spec.inputs.dockerfile, buildArgs: spec.inputs.buildArgs })).hash : undefined;
        const i = new Image(spec.id, { ...spec.inputs, contextHash }, options);
        images.set(spec.id, i);
        created.set(spec.id, i);
      } else {
        const d = spec.inputs;
        const c = containers.get(d.container);
        if (!c) throw new Error(`internal: compose deployment ${spec.id} has no container ${d.container}`);
        const args: pulumi.Inputs = {
          service: d.service,
          project: d.service,
          address: c.address,
          vmid: c.vmid,
          composeFiles: await readComposeFiles(d.dir, d.composeFiles),
          images: d.images.map((i) => ({ name: i.name, path: i.path, ref: images.get(i.id)?.ref })),
          registries: d.registries,
          dockerSource: d.dockerSource,
          ...(d.volumesDir !== undefined ? { volumesDir: d.volumesDir } : {}),
          ...(d.dockerPins ? { dockerPins: d.dockerPins } : {}),
        };
        created.set(spec.id, new Deployment(spec.id, args, options));
      }
    }
    const resources: Record<string, pulumi.Output<unknown>> = {};
    for (const [id, c] of containers) {
      resources[id] = pulumi.all([c.vmid, c.node, c.address]).apply(([vmid, node, address]) => ({ type: CONTAINER_TYPE, vmid, node, address }));
    }
    for (const [id, i] of images) resources[id] = i.ref.apply((ref) => ({ type: IMAGE_TYPE, ref }));
    return { service: plan.service, environment: plan.environment, resources, ...(opts.fingerprint !== undefined ? { homelab: { fingerprint: opts.fingerprint } } : {}) };
  };
}
