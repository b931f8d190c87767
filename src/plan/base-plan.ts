/**
 * Whether a compose container is cloned from a Docker-ready base or gets
 * Docker installed, and why: the environment's `homelab:docker_base`, the
 * container's disk (a clone cannot be smaller than its base), and whether
 * the base for its content key is already on the node (else it is built
 * first, once). Pure, over the inventory snapshot.
 */
import { BASE_DISK_GB, BASE_TAG, baseKey, baseKeyTag } from "../provision/base.ts";
import type { BaseSpec } from "../provision/base.ts";
import { effectivePins } from "../provision/docker-pins.ts";
import type { EnvironmentConfig } from "../config/environment.ts";
import type { Inventory } from "../proxmox/inventory.ts";
import { templateRelease } from "./guest-system.ts";
import type { BasePlan } from "./types.ts";

/** How one compose container gets Docker. */
export function planBase(o: { env: EnvironmentConfig; inventory: Inventory; node: string; template: string; unprivileged: boolean; diskGb: number; sshPublicKey: string }): BasePlan {
  if (o.env.docker.base === "install") return { mode: "install", reason: "homelab:docker_base is install" };
  if (o.diskGb < BASE_DISK_GB) return { mode: "install", reason: `its root disk (${o.diskGb} GB) is smaller than a base's (${BASE_DISK_GB} GB), which a clone cannot shrink` };
  const codename = templateRelease(o.template).codename;
  const spec: BaseSpec = {
    template: o.template,
    unprivileged: o.unprivileged,
    dockerSource: o.env.docker.source,
    ...(o.env.docker.source === "docker" && codename !== undefined ? { pins: effectivePins(o.env.docker.versions)[codename] } : {}),
    sshPublicKey: o.sshPublicKey,
  };
  const key = baseKey(spec);
  const found = o.inventory.guests.find((g) => g.node === o.node && g.type === "lxc" && g.template && g.tags.includes(BASE_TAG) && g.tags.includes(baseKeyTag(key)));
  if (found) return { mode: "clone", key, spec, vmid: found.vmid, reason: `base CT ${found.vmid} on ${o.node} has Docker for ${o.template.slice(o.template.indexOf("/") + 1)}` };
  return { mode: "clone", key, spec, vmid: undefined, reason: `no base for it on ${o.node} yet: one is built there first (once per node), then cloned` };
}
