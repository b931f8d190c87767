/**
 * What a container's worker tasks do, on the cluster model and the guest
 * backend: create (volumes, the guest from its template, a start when
 * asked; undone on failure), start (pending changes first), stop, shut
 * down, reboot and destroy. The handlers check and lock; these do the work.
 */
import type { ConfigValue, GuestState } from "../../cluster.ts";
import type { TemplateInfo } from "../../guest-backend.ts";
import type { TaskContext, TaskWork } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { applyPending, fillCreateDefaults, guestNetworks, guestSpec } from "./config.ts";
import { allocateVolumes, checkBaseUnused, destroyVolumes, freeVolume, namedVolumes, usedVolumes } from "./volumes.ts";
import type { Volume } from "../../cluster.ts";

const MiB = 1024 ** 2;

/** A create as the handler checked it. */
export interface CreatePlan {
  ostemplate: string;
  /** Undefined when the node does not have it: the task fails, as Proxmox's does. */
  template: TemplateInfo | undefined;
  /** Where the default 4 GiB root volume goes. */
  storage: string;
  mounts: Record<string, string>;
  /** From `createConfig`; completed by the task. */
  config: Record<string, ConfigValue>;
  sshPublicKeys: string;
  unprivileged: boolean;
  start: boolean;
}

/** The work of a `vzcreate` task for `g`, registered with `lock: create`; a failure removes the guest and its volumes. */
export function createWork(state: SandboxState, g: GuestState, plan: CreatePlan): TaskWork {
  const { vmid, node } = g;
  const { config, template } = plan;
  let made = false;
  let allocated: Volume[] = [];
  return {
    errorPrefix: `unable to create CT ${vmid} -`,
    async run(ctx) {
      const volumes = await allocateVolumes(state, node, vmid, { rootfs: `${plan.storage}:4`, ...plan.mounts }, ctx);
      allocated = volumes.allocated;
      Object.assign(config, volumes.values);
      if (!template) throw new Error(`volume '${plan.ostemplate}' does not exist`);
      const name = plan.ostemplate.replace(/^[^:]+:vztmpl\//, "");
      ctx.log(`extracting archive '/var/lib/vz/template/cache/${name}'`);
      fillCreateDefaults(config, vmid);
      await state.cluster.backend.create(guestSpec(state, g, config, { template, sshPublicKeys: plan.sshPublicKeys, unprivileged: plan.unprivileged }));
      made = true;
      ctx.log(`Total bytes read: ${template.size * 4} (${Math.round((template.size * 4) / MiB)}MiB)`);
      ctx.log(`Detected container architecture: ${String(config["arch"])}`);
      ctx.log("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...");
      g.config = { ...config };
      g.created = true;
      if (plan.start) await startGuest(state, g, ctx);
    },
    async onError() {
      if (made) await state.cluster.backend.destroy(vmid);
      for (const v of allocated) await freeVolume(state, v);
      state.cluster.guests.delete(vmid);
    },
  };
}

/** Starts a guest: pending changes first, its bridges must exist. */
export async function startGuest(state: SandboxState, g: GuestState, ctx: TaskContext): Promise<void> {
  await applyPending(state, g, ctx);
  // A container that stopped being a template still has base volumes, which Proxmox keeps read-only: its mount fails there.
  for (const volid of usedVolumes(g.config)) {
    const v = state.cluster.volume(g.node, volid);
    if (v && state.cluster.isBaseVolume(v)) {
      throw new Error(`sandbox: volume '${volid}' is a template's base volume, which is read-only: a container cannot run on it (clone the template instead)`);
    }
  }
  const node = state.cluster.node(g.node);
  for (const net of guestNetworks(g.config)) {
    if (net.bridge !== "" && !node.bridges.includes(net.bridge)) throw new Error(`bridge '${net.bridge}' does not exist`);
  }
  const st = await state.cluster.backend.status(g.vmid);
  if (st.running) throw new Error(`CT ${g.vmid} already running`);
  await state.cluster.backend.start(g.vmid);
  g.running = true;
}

/** Stops a guest at once. */
export async function stopGuest(state: SandboxState, g: GuestState): Promise<void> {
  await state.cluster.backend.stop(g.vmid);
  g.running = false;
}

/** Shuts a guest down cleanly, stopping it after `timeoutSec` when `forceStop`. */
export async function shutdownGuest(state: SandboxState, g: GuestState, timeoutSec: number, forceStop: boolean): Promise<void> {
  await state.cluster.backend.shutdown(g.vmid, timeoutSec, forceStop);
  g.running = false;
}

/** Reboots a guest as Proxmox does: a shutdown and a start, which applies pending changes. */
export async function rebootGuest(state: SandboxState, g: GuestState, timeoutSec: number, ctx: TaskContext): Promise<void> {
  await shutdownGuest(state, g, timeoutSec, true);
  await startGuest(state, g, ctx);
}

/**
 * Destroys a guest, stopping it first when it runs, then the volumes its
 * config names (`unreferenced`: every volume of its id); its config goes last.
 */
export async function destroyGuest(state: SandboxState, g: GuestState, purge: boolean, unreferenced: boolean, ctx: TaskContext): Promise<void> {
  // A template whose base volumes linked clones still use stays whole (Proxmox fails at its first volume, the root).
  for (const volid of namedVolumes(g)) {
    const vol = state.cluster.volume(g.node, volid);
    if (vol && vol.vmid === g.vmid) checkBaseUnused(state, vol);
  }
  if (g.created) {
    if ((await state.cluster.backend.status(g.vmid)).running) {
      ctx.log(`forced to stop CT ${g.vmid} before destroying!`);
      await stopGuest(state, g);
    }
    await state.cluster.backend.destroy(g.vmid);
  }
  await destroyVolumes(state, g, ctx, unreferenced);
  if (purge) ctx.log(`purging CT ${g.vmid} from related configurations..`);
  // Only now the config goes, so the id cannot be reused while its volumes are removed.
  state.cluster.guests.delete(g.vmid);
}
