/**
 * The inline Pulumi program of one service: its plan turned into
 * `homelab:proxmox:Container` resources (served by the provider plugin
 * `pulumi-resource-homelab`), with `protect`, dependencies inside the service,
 * and dependencies on other services' resources read through StackReference.
 * `docker:image` resources are not deployable yet: they are left out, and
 * the specs say so for the output.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ContainerInputs, PlannedResource, ServicePlan } from "../plan/types.ts";
import { PROJECT, stackName } from "./stacks.ts";
import { CONTAINER_TYPE } from "./state.ts";

/** A resource the program declares. Pure data, for tests and rendering. */
export interface ResourceSpec {
  id: string;
  type: typeof CONTAINER_TYPE;
  inputs: ContainerInputs;
  protect: boolean;
  /** Resources of this service it waits for (skipped ones removed). */
  dependsOn: string[];
  crossDependsOn: { service: string; id: string }[];
}

/** A planned resource the program leaves out, and why. */
export interface SkippedResource {
  id: string;
  kind: string;
  reason: string;
}

/** The resources a plan deploys now, and those it skips (with the reason). Pure. */
export function resourceSpecs(plan: ServicePlan): { specs: ResourceSpec[]; skipped: SkippedResource[] } {
  const skipped: SkippedResource[] = [];
  const deployable: Extract<PlannedResource, { kind: "proxmox:container" }>[] = [];
  for (const r of plan.resources) {
    if (r.kind === "proxmox:container") deployable.push(r);
    else skipped.push({ id: r.id, kind: r.kind, reason: `${r.kind} resources are not deployable yet (image builds come with provisioning); skipped` });
  }
  const ids = new Set(deployable.map((r) => r.id));
  const specs = deployable.map((r): ResourceSpec => ({
    id: r.id,
    type: CONTAINER_TYPE,
    inputs: r.inputs,
    protect: r.protect,
    dependsOn: r.dependsOn.filter((d) => ids.has(d)),
    crossDependsOn: r.crossDependsOn,
  }));
  return { specs: dependencyOrder(specs), skipped };
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
    const created = new Map<string, Container>();
    for (const spec of specs) {
      const args: pulumi.Inputs = {};
      for (const [k, v] of Object.entries(spec.inputs) as [string, unknown][]) args[k] = opts.secretInputs?.has(k) ? pulumi.secret(v) : v;
      const dependsOn: pulumi.Resource[] = [];
      for (const d of spec.dependsOn) {
        const r = created.get(d);
        if (r) dependsOn.push(r);
      }
      for (const d of spec.crossDependsOn) {
        const ref = refs.get(d.service);
        if (ref) dependsOn.push(ref);
      }
      created.set(spec.id, new Container(spec.id, args, { protect: spec.protect, dependsOn }));
    }
    const resources: Record<string, pulumi.Output<unknown>> = {};
    for (const [id, c] of created) {
      resources[id] = pulumi.all([c.vmid, c.node, c.address]).apply(([vmid, node, address]) => ({ type: CONTAINER_TYPE, vmid, node, address }));
    }
    return { service: plan.service, environment: plan.environment, resources, ...(opts.fingerprint !== undefined ? { homelab: { fingerprint: opts.fingerprint } } : {}) };
  };
}
