/**
 * Whether a service can be known unchanged without running the engine: its
 * stack records exactly the resources the plan declares, with the same
 * inputs and protect flags, no operation left pending, every resource it
 * depends on in other services still deployed, and it was deployed by the
 * same code (fingerprint.ts). Then a preview would find nothing to do: the
 * provider's check normalises inputs idempotently and its diff compares
 * old and new inputs only. Saves a Pulumi CLI and a plugin start (about two
 * seconds of CPU) per unchanged service. Pure.
 *
 * Images and compose deployments are always left to the engine: whether they
 * changed depends on files (a build context, compose files) and on secrets
 * whose hash the state keeps encrypted, which only the engine can compare.
 */
import type { ContainerInputs } from "../plan/types.ts";
import { sameValue } from "./events.ts";
import type { ResourceSpec } from "./program.ts";
import { CONTAINER_TYPE, IMAGE_TYPE } from "./state.ts";
import type { StackState } from "./state.ts";

type ContainerSpec = Extract<ResourceSpec, { type: typeof CONTAINER_TYPE }>;

/** Tags as Proxmox (and the provider's check) normalise them. */
function normalTags(v: unknown): unknown {
  return Array.isArray(v) ? [...new Set(v.map((t) => String(t).trim().toLowerCase()))].sort() : v;
}

function sameInputs(stored: Record<string, unknown>, planned: ContainerInputs): boolean {
  const a: Record<string, unknown> = { ...stored, tags: normalTags(stored["tags"]) };
  const b: Record<string, unknown> = { ...planned, tags: normalTags(planned.tags) };
  return sameValue(a, b);
}

/** Why a service is not provably unchanged (undefined when it is). */
export function whyChanged(o: { state: StackState | undefined; specs: readonly ResourceSpec[]; fingerprint: string; deployedIn: (service: string) => ReadonlySet<string> | undefined }): string | undefined {
  const { state, specs } = o;
  if (!state) return "never deployed";
  if (state.pending.length > 0) return "operations pending";
  const recorded = state.outputs["homelab"];
  const fp = recorded !== null && typeof recorded === "object" ? (recorded as Record<string, unknown>)["fingerprint"] : undefined;
  if (fp !== o.fingerprint) return "deployed by another version";
  const other = specs.find((s) => s.type !== CONTAINER_TYPE);
  if (other) return `${other.id}: ${other.type === IMAGE_TYPE ? "an image's build context" : "compose files and secrets"} can only be compared by the engine`;
  if (state.resources.length !== specs.length) return "resources added or removed";
  for (const spec of specs.filter((s): s is ContainerSpec => s.type === CONTAINER_TYPE)) {
    const r = state.resources.find((x) => x.id === spec.id);
    if (!r || r.type !== spec.type) return `${spec.id} is new`;
    if (r.protect !== spec.protect) return `${spec.id}: protect changed`;
    if (!sameInputs(r.inputs, spec.inputs)) return `${spec.id}: inputs changed`;
    for (const d of spec.crossDependsOn) {
      if (!o.deployedIn(d.service)?.has(d.id)) return `${d.service}.${d.id} is not deployed`;
    }
  }
  return undefined;
}
