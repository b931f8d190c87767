/**
 * Templates and clones, as pve-container's `template` and `clone_vm` make
 * them. `POST .../template` checks (locks, snapshots, running) under the
 * config file lock and answers `null` while a `vztemplate` task renames each
 * volume to its base volume (`vdisk_create_base`) and sets `template: 1`.
 * `POST .../clone` locks the source (`lock: disk`), registers the new id
 * with `lock: create`, checks everything and writes the new config (the
 * source's, NICs with new MACs, no volumes yet) before its `vzclone` task
 * (id: the source) makes each volume, a linked clone (`vdisk_clone`) or a
 * full copy, adds it to the new config, lets the backend make the guest
 * (`post_clone_hook`), and unlocks both.
 */
import { volumeRef } from "../../cluster.ts";
import type { ConfigValue, GuestState, Volume } from "../../cluster.ts";
import { failure, permissionDenied } from "../../errors.ts";
import { checkDnsName, formatDiskSize, generateMac } from "../../formats.ts";
import type { ParamSpec, PropertyValues } from "../../params.ts";
import { baseVolumeName } from "../../storage.ts";
import type { TaskContext, TaskWork } from "../../tasks.ts";
import { NODE, STORAGE, VMID, checkNode, flag, reqNum, str } from "../common.ts";
import type { Call, Endpoint, Reply, SandboxState } from "../types.ts";
import { checkIdFree, checkLock, isRunning } from "./checks.ts";
import { guestSpec } from "./config.ts";
import { removeLock, setLock, withFileLock } from "./locking.ts";
import { checkSnapname, propertyOf, render } from "./schema.ts";
import { allocateVolume, freeVolume, guestMounts, isMountKey, mountKeys, mountType, rootfsRef, volumeFeature, volumeOf } from "./volumes.ts";

/** `POST .../template`: node and vmid only. */
const TEMPLATE_PARAMS: ParamSpec = { rules: { node: NODE, vmid: VMID } };

/** `POST .../clone`, as the schema declares it. */
const CLONE_PARAMS: ParamSpec = {
  rules: {
    node: NODE,
    vmid: VMID,
    newid: VMID,
    hostname: { type: "string", optional: true, format: checkDnsName },
    description: { type: "string", optional: true },
    pool: { type: "string", optional: true },
    snapname: { type: "string", optional: true, maxLength: 40, format: checkSnapname },
    storage: { ...STORAGE, optional: true },
    full: { type: "boolean", optional: true },
    target: { ...NODE, optional: true },
    bwlimit: { type: "number", optional: true, minimum: 0 },
  },
};


/**
 * `template_create`: every root and mount point volume must have the
 * `template` feature (a bind or device mount never has it); each is renamed
 * to its base volume, and the backend keeps its data read-only from now on.
 * Returns the config with the new volume names and `template: 1`. Unused
 * disks stay as they are.
 */
export async function makeTemplate(state: SandboxState, g: GuestState, config: Record<string, ConfigValue>, ctx: TaskContext): Promise<Record<string, ConfigValue>> {
  const keys = mountKeys(config);
  for (const key of keys) {
    const volid = volumeOf(key, String(config[key]));
    if (!volumeFeature(state, volid, "template")) throw new Error(`Template feature is not available for '${volid}'`);
  }
  const next: Record<string, ConfigValue> = { ...config, template: 1 };
  if (g.created) await state.cluster.backend.update(g.vmid, { isTemplate: true });
  for (const key of keys) {
    const values = propertyOf(key, String(config[key]));
    const volid = String(values["volume"]);
    const vol = state.cluster.volume(g.node, volid);
    if (!vol) throw new Error(`volume '${volid}' does not exist`);
    const name = baseVolumeName(state.cluster.storage(vol.storage), volumeRef(vol).name);
    const baseVolid = `${vol.storage}:${name}`;
    if (baseVolid !== volid) {
      await state.cluster.backend.makeBaseVolume(volumeRef(vol), volumeRef({ ...vol, volid: baseVolid }));
      state.cluster.renameVolume(vol, baseVolid, vol.vmid);
      ctx.log(`  Renamed "${volumeRef(vol).name}" to "${name}"`);
    }
    next[key] = render({ ...values, volume: baseVolid }, ["volume"]);
  }
  if (g.created) await state.cluster.backend.setMounts(g.vmid, rootfsRef(state, g.node, next), guestMounts(state, g.node, next), []);
  return next;
}

/** `POST /nodes/{node}/lxc/{vmid}/template`: refusals before the task; answers null, as Proxmox does. */
async function template(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  await withFileLock(state, vmid, async () => {
    const g = state.cluster.guest(node, vmid);
    checkLock(g);
    if (Object.keys(g.snapshots).length > 0) throw failure("unable to create template, because CT contains snapshots");
    if (g.config["template"] === 1) throw failure("you can't convert a template to a template");
    if (await isRunning(state, g)) throw failure("you can't convert a CT to template if the CT is running");
  });
  let release: (() => void) | undefined;
  state.tasks.start(node, "vztemplate", String(vmid), user, {
    // The sandbox's worker holds the config file lock while it renames volumes, so nothing starts the container meanwhile.
    async before() {
      release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
    },
    async run(ctx) {
      const g = state.cluster.guest(node, vmid);
      g.config = await makeTemplate(state, g, g.config, ctx);
    },
    finally: () => release?.(),
  });
  return { data: null };
}

/** A clone as the handler checked it: what the task makes. */
interface ClonePlan {
  source: GuestState;
  target: GuestState;
  full: boolean;
  running: boolean;
  snapname: string | undefined;
  /** Target storage of a full clone (default: each volume's own). */
  storage: string | undefined;
  /** The source's volumes to clone, in pve-container's key order. */
  mounts: Array<{ key: string; values: PropertyValues; volid: string }>;
}

/** What the clone request asks for besides the ids. */
interface CloneRequest {
  full: boolean | undefined;
  snapname: string | undefined;
  storage: string | undefined;
  target: string | undefined;
  hostname: string | undefined;
  description: string | undefined;
}

/**
 * `clone_vm`'s checks and the new config, in its order: the source's config
 * (or snapshot's) key by key, volumes checked for a linked or full clone
 * (bind and device mounts refused), every NIC a new MAC, unused disks left
 * out, then the snapshot bookkeeping, pending changes and `template` dropped
 * and the requested hostname and description set.
 */
async function planClone(state: SandboxState, source: GuestState, target: GuestState, req: CloneRequest): Promise<{ plan: ClonePlan; config: Record<string, ConfigValue> }> {
  const running = await isRunning(state, source);
  const full = req.full ?? source.config["template"] !== 1;
  if (req.storage !== undefined && !full) throw failure("parameter 'storage' not allowed for linked clones");
  const snap = req.snapname !== undefined ? source.snapshots[req.snapname] : source.config;
  if (snap === undefined) throw failure(`snapshot '${String(req.snapname)}' does not exist`);
  const config: Record<string, ConfigValue> = {};
  const mounts: ClonePlan["mounts"] = [];
  let shared = true;
  for (const key of Object.keys(snap).sort()) {
    if (/^unused\d+$/.test(key)) continue;
    const value = snap[key] as ConfigValue;
    if (isMountKey(key)) {
      const values = propertyOf(key, String(value));
      const volid = String(values["volume"]);
      const type = mountType(volid);
      if (type !== "volume") throw failure(`unable to clone mountpoint '${key}' (type ${type})`);
      // The sandbox has no shared storage.
      shared = false;
      if (full) {
        if (running && req.snapname === undefined) throw failure("Full clone of a running container is only possible from a snapshot");
      } else if (!volumeFeature(state, volid, "clone", req.snapname)) {
        throw failure(`Linked clone feature for '${volid}' is not available`);
      }
      mounts.push({ key, values, volid });
    } else if (/^net\d+$/.test(key)) {
      const net = propertyOf(key, String(value));
      net["hwaddr"] = generateMac();
      config[key] = render(net, ["name"]);
    } else {
      config[key] = value;
    }
  }
  if (req.target !== undefined && !shared) throw failure(`can't clone CT to node '${req.target}' (CT uses local storage)`);
  config["lock"] = "create";
  for (const key of ["snapshots", "parent", "snaptime", "snapstate", "pending", "template"]) delete config[key];
  if (req.hostname) config["hostname"] = req.hostname;
  if (req.description) config["description"] = req.description;
  // Proxmox clones them in hash order, so disk numbers vary; the sandbox goes root first, as a create allocates.
  const order = mountKeys(Object.fromEntries(mounts.map((m) => [m.key, 1])));
  mounts.sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key));
  return { plan: { source, target, full, running, snapname: req.snapname, storage: req.storage, mounts }, config };
}

/** Runs `body` on the new container under its config file lock, which must still carry `lock: create`. */
async function withNewConfig<T>(state: SandboxState, g: GuestState, body: (g: GuestState) => Promise<T> | T): Promise<T> {
  return withFileLock(state, g.vmid, () => {
    const now = state.cluster.guests.get(g.vmid);
    if (now !== g || g.config["lock"] !== "create") throw new Error("Lost 'create' config lock, aborting.");
    return body(g);
  });
}

/** The `vzclone` task: each volume cloned or copied and added to the new config, the guest made, both unlocked. */
function cloneWork(state: SandboxState, plan: ClonePlan): TaskWork {
  const { source, target, snapname } = plan;
  const made: Volume[] = [];
  let guestMade = false;
  const unlockSource = async (ctx?: TaskContext): Promise<void> => {
    await removeLock(state, source.node, source.vmid, "disk").catch((e: unknown) => ctx?.warn((e as Error).message));
  };
  return {
    errorPrefix: "clone failed:",
    async run(ctx) {
      ctx.log(`creating a clone of container ${source.vmid} with ID ${target.vmid}`);
      if ((await isRunning(state, source)) !== plan.running) throw new Error("unexpected state change");
      for (const m of plan.mounts) {
        const vol = state.cluster.volume(source.node, m.volid);
        if (!vol) throw new Error(`volume '${m.volid}' does not exist`);
        const values = { ...m.values };
        let copy: Volume;
        if (plan.full) {
          ctx.log(`create full clone of mountpoint ${m.key} (${m.volid})`);
          copy = await allocateVolume(state, source.node, plan.storage ?? vol.storage, target.vmid, vol.size);
          made.push(copy);
          await state.cluster.backend.cloneVolume({ from: volumeRef(vol), to: volumeRef(copy), root: m.key === "rootfs", linked: false, ...(snapname !== undefined ? { snapshot: snapname } : {}) });
          values["size"] = formatDiskSize(vol.size);
        } else {
          ctx.log(`create linked clone of mount point ${m.key} (${m.volid})`);
          copy = state.cluster.addLinkedClone(vol, target.vmid, snapname);
          try {
            await state.cluster.backend.cloneVolume({ from: volumeRef(vol), to: volumeRef(copy), root: m.key === "rootfs", linked: true, ...(snapname !== undefined ? { snapshot: snapname } : {}) });
          } catch (e) {
            state.cluster.removeVolume(copy);
            throw e;
          }
          made.push(copy);
        }
        values["volume"] = copy.volid;
        const text = render(values, ["volume"]);
        await withNewConfig(state, target, (g) => {
          g.config = { ...g.config, [m.key]: text };
        });
      }
      // Mounted once for `post_clone_hook`: the backend makes the guest from its cloned root.
      await withNewConfig(state, target, async (g) => {
        const unprivileged = g.config["unprivileged"] === 1;
        await state.cluster.backend.create(guestSpec(state, g, g.config, { template: undefined, sshPublicKeys: "", unprivileged, cloned: true }));
        guestMade = true;
      });
      await unlockSource(ctx);
      await withNewConfig(state, target, (g) => {
        delete g.config["lock"];
        g.created = true;
      });
    },
    async onError() {
      await unlockSource();
      if (guestMade) await state.cluster.backend.destroy(target.vmid).catch(() => undefined);
      for (const v of made) await freeVolume(state, v).catch(() => undefined);
      if (state.cluster.guests.get(target.vmid) === target) state.cluster.guests.delete(target.vmid);
    },
  };
}

/** `POST /nodes/{node}/lxc/{vmid}/clone`. */
async function clone(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  const newid = reqNum(params, "newid");
  const pool = str(params, "pool");
  if (pool !== undefined) throw permissionDenied(`pool '${pool}' does not exist`);
  let targetNode = str(params, "target");
  if (targetNode === node || targetNode === "localhost") targetNode = undefined;
  if (targetNode !== undefined && !state.cluster.nodes.has(targetNode)) throw failure(`no such cluster node '${targetNode}'`);
  const storage = str(params, "storage");
  if (storage !== undefined) {
    state.cluster.storage(storage);
    if (targetNode !== undefined) throw failure(`can't clone to non-shared storage '${storage}'`);
  }
  const source = await setLock(state, node, vmid, "disk");
  // create_and_lock_config: nothing awaits between the id check and registering it.
  let target: GuestState;
  try {
    checkIdFree(state, newid);
    target = { vmid: newid, node, config: { lock: "create" }, pending: {}, pendingDelete: [], snapshots: {}, created: false, running: false };
    state.cluster.guests.set(newid, target);
  } catch (e) {
    await removeLock(state, node, vmid, "disk").catch(() => undefined);
    throw e;
  }
  let plan: ClonePlan;
  try {
    const planned = await planClone(state, source, target, {
      full: flag(params, "full"),
      snapname: str(params, "snapname"),
      storage,
      target: targetNode,
      hostname: str(params, "hostname"),
      description: str(params, "description"),
    });
    plan = planned.plan;
    await withNewConfig(state, target, (g) => {
      g.config = planned.config;
    });
  } catch (e) {
    await removeLock(state, node, vmid, "disk").catch(() => undefined);
    if (state.cluster.guests.get(newid) === target) state.cluster.guests.delete(newid);
    throw e;
  }
  return { data: state.tasks.start(node, "vzclone", String(vmid), user, cloneWork(state, plan)) };
}

/** The endpoints of this module. */
export const cloneEndpoints: Endpoint[] = [
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/template", params: TEMPLATE_PARAMS, handle: template },
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/clone", params: CLONE_PARAMS, handle: clone },
];
