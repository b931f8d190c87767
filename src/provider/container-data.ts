/**
 * The data side of `homelab:proxmox:Container`: a container's volumes
 * outlive it. A new container takes over the volumes of the container it
 * succeeds (the one a replace leaves behind, or one a destroy kept), after a
 * backup of that container; a live container gets its volume changes in
 * place (new volumes, growing ones, detached ones kept as unused disks); a
 * container that holds data is kept (stopped, marked, protected) when it is
 * deleted, unless deleting data was asked for, and then only after a backup.
 */
import type { ContainerInputs } from "../plan/types.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { ProxmoxNotFoundError } from "../proxmox/errors.ts";
import { parseTags } from "../proxmox/lxc-format.ts";
import type { LxcConfig } from "../proxmox/lxc-types.ts";
import { identityLabel, identityOf, sameIdentity } from "../data/identity.ts";
import { markKept } from "../data/kept.ts";
import type { ContainerIdentity } from "../data/identity.ts";
import { dataVolumes, freeMountIndexes, mountChanges, mountIndex, newVolumeMount, sizeInGb } from "../data/mounts.ts";
import type { MountChanges } from "../data/mounts.ts";
import type { DataSafety, RollbackPoint } from "../data/safety.ts";
import type { ContainerLifecycle } from "./container-lifecycle.ts";
import { ProviderError } from "./errors.ts";

/** A container whose data a new one takes over. */
export interface Predecessor {
  vmid: number;
  config: LxcConfig;
  /** Kept by a destroy (not in any stack), rather than the container a replace leaves behind. */
  kept: boolean;
  running: boolean;
}

/** What attaching volumes to a new container did, and how to undo it. */
export interface Attached {
  /** Which mount point holds each volume. */
  keys: Record<string, string>;
  /** The adopted volumes' real sizes in GiB, by name (bigger than declared when it was shrunk in service.yaml). */
  sizes: Record<string, number>;
  from: Predecessor | undefined;
  backup: RollbackPoint | undefined;
  /** Moves the volumes back to where they came from (and starts that container again if it ran); for a failed creation. */
  undo(): Promise<void>;
  /** After the creation succeeded: removes a kept predecessor, whose data now lives here. */
  finish(): Promise<void>;
}

/** The container's data operations over the Proxmox client, the lifecycle steps and the safety steps. */
export class ContainerData {
  private readonly lifecycle: ContainerLifecycle;

  constructor(lifecycle: ContainerLifecycle) {
    this.lifecycle = lifecycle;
  }

  /**
   * The container on `node` (other than `self`) that carries the same identity and holds
   * data: a live one (a replace's old container) before a kept one; of several kept ones,
   * the newest.
   */
  async predecessor(client: ProxmoxClient, node: string, identity: ContainerIdentity, self: number): Promise<Predecessor | undefined> {
    const serviceTag = identity.service.toLowerCase().replace(/[^a-z0-9_+.-]/g, "-");
    const guests = (await client.cluster.resources({ type: "vm" })).filter((r) => {
      const tags = parseTags(r.tags);
      return r.type === "lxc" && r.node === node && r.vmid !== undefined && r.vmid !== self && r.template !== true && tags.includes("homelab") && tags.includes(serviceTag);
    });
    const found: Predecessor[] = [];
    for (const g of guests) {
      const vmid = Number(g.vmid);
      let config: LxcConfig;
      try {
        config = await client.lxc.config(node, vmid);
      } catch (error) {
        if (error instanceof ProxmoxNotFoundError) continue;
        throw error;
      }
      const id = identityOf(config.description);
      if (!id || !sameIdentity(id.identity, identity) || dataVolumes(config).length === 0) continue;
      found.push({ vmid, config, kept: id.kept, running: g.status === "running" });
    }
    found.sort((a, b) => Number(a.kept) - Number(b.kept) || b.vmid - a.vmid);
    return found[0];
  }

  /**
   * Gives a new container (created, not started) its volumes: those of its predecessor move
   * here (backed up first, the predecessor stopped), each declared volume at its mount point
   * (`mp<i>` for the i-th), undeclared ones as unused disks so nothing is left to be deleted
   * with the predecessor; declared volumes without data are made afresh. Adopted volumes
   * smaller than declared are grown.
   */
  async attach(client: ProxmoxClient, safety: DataSafety, inputs: ContainerInputs, identity: ContainerIdentity, vmid: number, say: (message: string) => void): Promise<Attached> {
    const node = inputs.node;
    const keys: Record<string, string> = {};
    const sizes: Record<string, number> = {};
    // Looked for even without declared volumes: unused disks of a predecessor must not be left to be deleted with it.
    const from = await this.predecessor(client, node, identity, vmid);
    const moved: { from: string; to: string }[] = [];
    let backup: RollbackPoint | undefined;
    const undo = async (): Promise<void> => {
      if (!from) return;
      for (const m of [...moved].reverse()) await client.lxc.moveVolume(node, vmid, { volume: m.to, targetVmid: from.vmid, targetVolume: m.from });
      moved.length = 0;
      if (from.running) await this.lifecycle.ensureRunning(client, node, from.vmid);
    };
    try {
      if (from) {
        const what = from.kept ? `CT ${from.vmid} (kept with the data of ${identityLabel(identity)})` : `CT ${from.vmid} (the container it replaces)`;
        backup = await safety.backupBefore(node, from.vmid, identity, from.kept ? "adopt" : "replace");
        const dropped = await safety.dropSnapshots(node, from.vmid);
        if (dropped > 0) say(`CT ${from.vmid}: ${dropped} snapshot(s) of homelab removed so its volumes can move (backup ${backup.kind === "backup" ? backup.volid : ""} holds that state)`);
        const foreign = await safety.foreignSnapshots(node, from.vmid);
        if (foreign.length > 0) {
          throw new ProviderError(
            `the volumes of ${what} cannot move to CT ${vmid}: Proxmox refuses to move a volume a snapshot uses, and it has snapshot(s) ${foreign.map((s) => s.name).join(", ")}`,
            `delete them on ${node} (pct delsnapshot ${from.vmid} NAME) after checking you do not need them, then deploy again; nothing was changed`,
          );
        }
        if (from.running) {
          say(`CT ${from.vmid}: stopping it so its volumes can move to CT ${vmid}`);
          await this.lifecycle.stop(client, node, from.vmid);
        }
        const plan = adoptionPlan(from.config, inputs);
        for (const step of plan.moves) {
          await client.lxc.moveVolume(node, from.vmid, { volume: step.from, targetVmid: vmid, targetVolume: step.to });
          moved.push(step);
          if (step.name !== undefined) {
            keys[step.name] = step.to;
            sizes[step.name] = step.sizeGb ?? 0;
          }
        }
        say(`CT ${vmid}: ${plan.moves.length} volume(s) moved from ${what}${plan.moves.some((m) => m.name === undefined) ? " (those no longer declared are kept as unused disks)" : ""}`);
      }
      // Declared volumes without data: new ones, at their own mount points.
      const fresh: Record<number, ReturnType<typeof newVolumeMount>> = {};
      inputs.volumes.forEach((v, i) => {
        if (keys[v.name] !== undefined) return;
        fresh[i] = newVolumeMount(v);
        keys[v.name] = `mp${i}`;
        sizes[v.name] = v.sizeGb;
      });
      if (Object.keys(fresh).length > 0) await client.lxc.updateConfig(node, vmid, { mp: fresh });
      for (const v of inputs.volumes) {
        const index = mountIndex(keys[v.name]);
        const size = sizes[v.name] ?? v.sizeGb;
        if (index !== undefined && size > 0 && size < v.sizeGb) {
          await client.lxc.resize(node, vmid, `mp${index}`, v.sizeGb);
          say(`CT ${vmid}: volume ${v.name} grown from ${size} to ${v.sizeGb} GB`);
          sizes[v.name] = v.sizeGb;
        }
        if (size > v.sizeGb) say(`CT ${vmid}: volume ${v.name} is ${size} GB, more than the ${v.sizeGb} GB declared (Proxmox cannot shrink it): set size: ${size} in service.yaml`);
      }
    } catch (error) {
      await undo().catch((e: unknown) => say(`CT ${vmid}: moving the volumes back to CT ${from?.vmid ?? "?"} failed: ${e instanceof Error ? e.message : String(e)}`));
      throw error;
    }
    return {
      keys,
      sizes,
      from,
      backup,
      undo,
      finish: async () => {
        if (!from?.kept) return;
        const left = dataVolumes(await client.lxc.config(node, from.vmid));
        if (left.length > 0) return;
        if (from.config.protection) await client.lxc.updateConfig(node, from.vmid, { protection: false });
        await this.lifecycle.destroy(client, node, from.vmid);
        say(`CT ${from.vmid} (kept for its data) removed: its volumes live in CT ${vmid} now`);
      },
    };
  }

  /**
   * Brings a live container's volumes and bind mounts to the inputs: new volumes are added
   * (Proxmox hot-plugs them), bigger ones grown, changed ones and bind mounts rewritten
   * (applied at the next start), no longer declared ones detached (kept as unused disks).
   */
  async apply(client: ProxmoxClient, node: string, vmid: number, config: LxcConfig, inputs: ContainerInputs, known: { volumeKeys: Record<string, string>; bindMounts: ContainerInputs["bindMounts"] }, say: (m: string) => void): Promise<MountChanges> {
    const c = mountChanges(config.mounts, inputs, known);
    refuseImpossible(c, vmid);
    const rootGb = sizeInGb(config.rootfs?.size);
    if (rootGb !== undefined && inputs.diskGb > rootGb) {
      await client.lxc.resize(node, vmid, "rootfs", inputs.diskGb);
      say(`CT ${vmid}: root disk grown from ${rootGb} to ${inputs.diskGb} GB`);
    } else if (rootGb !== undefined && inputs.diskGb < rootGb) {
      throw shrinkError(vmid, "the root disk", rootGb, inputs.diskGb, "host.resources.disk");
    }
    const mp: Record<number, ReturnType<typeof newVolumeMount>> = {};
    for (const a of c.add) mp[a.index] = a.mount;
    for (const m of c.modify) mp[m.index] = m.mount;
    for (const b of [...c.bindAdd, ...c.bindModify]) mp[b.index] = b.mount;
    const remove = [...c.detach.map((d) => `mp${d.index}`), ...c.bindRemove.map((i) => `mp${i}`)];
    if (Object.keys(mp).length > 0 || remove.length > 0) {
      await client.lxc.updateConfig(node, vmid, { ...(Object.keys(mp).length > 0 ? { mp } : {}), ...(remove.length > 0 ? { delete: remove } : {}) });
    }
    for (const g of c.grow) {
      await client.lxc.resize(node, vmid, `mp${g.index}`, g.toGb);
      say(`CT ${vmid}: volume ${g.name} grown from ${g.fromGb} to ${g.toGb} GB`);
    }
    for (const a of c.add) say(`CT ${vmid}: volume ${a.name} added at ${a.mount.mp}`);
    for (const d of c.detach) say(`CT ${vmid}: volume at ${d.path} (${d.volume}) detached: Proxmox keeps it as an unused disk of CT ${vmid}, with its data`);
    return c;
  }

  /**
   * Keeps a container that holds data instead of destroying it: stopped, not started at boot,
   * protected, its notes saying whose data it is and how to reattach or delete it.
   */
  async keep(client: ProxmoxClient, node: string, vmid: number, config: LxcConfig, identity: ContainerIdentity, why: string): Promise<void> {
    await this.lifecycle.stop(client, node, vmid);
    await markKept(client, node, vmid, config, identity, why);
  }
}

/** One volume move of an adoption: from the predecessor's key to the new container's, with the declared volume it becomes. */
interface Move {
  from: string;
  to: string;
  name: string | undefined;
  sizeGb: number | undefined;
}

/**
 * Where each of a predecessor's volumes goes in the new container: a mount point whose path a
 * declared volume has goes to that volume's key (`mp<i>`), every other one (and every unused
 * disk) to an unused key, so none is left behind to be deleted with the predecessor. Pure.
 */
export function adoptionPlan(config: Pick<LxcConfig, "mounts" | "unused">, inputs: Pick<ContainerInputs, "volumes" | "bindMounts">): { moves: Move[] } {
  const moves: Move[] = [];
  const claimed = new Set<string>();
  const unusedTargets = freeMountIndexes([], 256);
  let nextUnused = 0;
  for (const d of dataVolumes(config)) {
    const i = d.path === undefined ? -1 : inputs.volumes.findIndex((v) => v.path === d.path && !claimed.has(v.name));
    const v = i >= 0 ? inputs.volumes[i] : undefined;
    if (v) {
      claimed.add(v.name);
      const index = mountIndex(d.key);
      moves.push({ from: d.key, to: `mp${i}`, name: v.name, sizeGb: sizeInGb(index !== undefined ? config.mounts[index]?.size : undefined) });
    } else {
      moves.push({ from: d.key, to: `unused${unusedTargets[nextUnused++] ?? 0}`, name: undefined, sizeGb: undefined });
    }
  }
  return { moves };
}

function shrinkError(vmid: number, what: string, fromGb: number, toGb: number, field: string): ProviderError {
  return new ProviderError(`${what} of CT ${vmid} is ${fromGb} GB and cannot shrink to ${toGb} GB: Proxmox only grows disks`, `set ${field} to ${fromGb} or more in service.yaml`);
}

/** Refuses what Proxmox cannot do in place: shrinking a volume, moving it to another storage. */
function refuseImpossible(c: MountChanges, vmid: number): void {
  const s = c.shrink[0];
  if (s) throw shrinkError(vmid, `volume ${s.name}`, s.fromGb, s.toGb, `the volume's size`);
  const m = c.storageMove[0];
  if (m) {
    throw new ProviderError(
      `volume ${m.name} of CT ${vmid} is on storage ${m.from}; moving it to ${m.to} is not done by homelab`,
      `move it yourself while the container is stopped (pct move-volume ${vmid} <mpN> ${m.to} --delete) and deploy again, or set its storage back to ${m.from}`,
    );
  }
}
