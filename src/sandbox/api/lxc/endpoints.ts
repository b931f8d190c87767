/**
 * `/nodes/{node}/lxc/...`: the HTTP handlers. Each reads its checked
 * parameters, refuses what pve-container refuses (`checks.ts`), takes the
 * config file lock, and applies the change (`config.ts`) or answers with a
 * task whose worker does it (`lifecycle.ts`).
 */
import { guestDigest } from "../../cluster.ts";
import type { GuestState } from "../../cluster.ts";
import { failure, paramError } from "../../errors.ts";
import { splitList } from "../../formats.ts";
import { checkNode, flag, num, reqNum, reqStr, str } from "../common.ts";
import type { Call, Endpoint, Reply } from "../types.ts";
import {
  checkActionState,
  checkConfigPermission,
  checkCreate,
  checkDeleteConflicts,
  checkDestroyable,
  checkDigest,
  checkIdFree,
  checkLock,
  checkSkiplock,
  checkUpdateLock,
} from "./checks.ts";
import type { Action, CreateRequest } from "./checks.ts";
import { applyUpdate, createConfig, planUpdate, withPending } from "./config.ts";
import { createWork, destroyGuest, rebootGuest, shutdownGuest, startGuest, stopGuest } from "./lifecycle.ts";
import { withFileLock } from "./locking.ts";
import { restoreWork } from "./restore.ts";
import {
  CREATE_PARAMS,
  DESTROY_PARAMS,
  LIST_PARAMS,
  NODE_VMID,
  READ_CONFIG_PARAMS,
  REBOOT_PARAMS,
  SHUTDOWN_PARAMS,
  START_PARAMS,
  STOP_PARAMS,
  UPDATE_PARAMS,
} from "./schema.ts";
import { guestSummary, interfaceView } from "./views.ts";
import { requestedMounts } from "./volumes.ts";

async function create(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const restore = flag(params, "restore") ?? false;
  // Proxmox's create makes unprivileged containers unless told otherwise (the config option's own default is 0); a restore takes the archive's.
  const unprivileged = flag(params, "unprivileged") ?? (restore ? undefined : true);
  const storage = str(params, "storage") ?? "local";
  const req: CreateRequest = {
    node,
    vmid: reqNum(params, "vmid"),
    ostemplate: reqStr(params, "ostemplate"),
    storage,
    unprivileged,
    mounts: requestedMounts(params, storage),
    restore,
    force: flag(params, "force") ?? false,
  };
  const { vmid, ostemplate } = req;
  const { existed } = await checkCreate(state, user, params, req);
  const template = restore ? undefined : (await state.cluster.templates(node)).find((t) => t.volid === ostemplate);
  const config = createConfig(params, ostemplate, unprivileged ?? false);
  if (restore) {
    delete config["arch"];
    delete config["ostype"];
    if (unprivileged === undefined) delete config["unprivileged"];
  }

  // Nothing awaits between this check and registering the guest, so two creators of one id cannot both pass.
  let g: GuestState;
  if (existed) {
    g = state.cluster.guest(node, vmid);
    checkRestoreLock(g, vmid);
    g.config["lock"] = "create";
  } else {
    checkIdFree(state, vmid);
    g = { vmid, node, config: { lock: "create" }, pending: {}, pendingDelete: [], snapshots: {}, created: false, running: false };
    state.cluster.guests.set(vmid, g);
  }
  let release: () => void;
  try {
    release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
  } catch (e) {
    if (existed) delete g.config["lock"];
    else state.cluster.guests.delete(vmid);
    throw e;
  }
  const start = flag(params, "start") ?? false;
  if (restore) {
    const sid = ostemplate.slice(0, ostemplate.indexOf(":"));
    const work = restoreWork(state, g, {
      archive: { volid: ostemplate, storage: sid, file: ostemplate.slice(ostemplate.indexOf("/") + 1) },
      storage,
      mounts: req.mounts,
      config,
      unprivileged,
      unique: flag(params, "unique") ?? false,
      start,
      isRoot: user === "root@pam",
      existed,
    });
    return { data: state.tasks.start(node, "vzrestore", String(vmid), user, { ...work, finally: () => release() }) };
  }
  const work = createWork(state, g, {
    ostemplate,
    template,
    storage,
    mounts: req.mounts,
    config,
    sshPublicKeys: str(params, "ssh-public-keys") ?? "",
    unprivileged: unprivileged ?? true,
    start,
  });
  const upid = state.tasks.start(node, "vzcreate", String(vmid), user, { ...work, finally: () => release() });
  return { data: upid };
}

/** `create_and_lock_config` over an existing container: a lock there refuses the restore. */
function checkRestoreLock(g: GuestState, vmid: number): void {
  try {
    checkLock(g);
  } catch (e) {
    throw failure(`unable to restore CT ${vmid} - ${(e as Error).message}`);
  }
}

async function statusAction(call: Call, action: Action): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  const skiplock = action === "start" || action === "stop" ? checkSkiplock(params, user) : false;
  await checkActionState(state, node, vmid, action);
  const timeout = num(params, "timeout") ?? 60;
  let release: (() => void) | undefined;
  const upid = state.tasks.start(node, `vz${action}`, String(vmid), user, {
    // The worker takes the config file lock first and keeps it while it works.
    async before() {
      release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
      const g = state.cluster.guest(node, vmid);
      if (action === "start" && g.config["template"] === 1) throw new Error("you can't start a CT if it's a template");
      if (!skiplock) checkLock(g);
    },
    async run(ctx) {
      const g = state.cluster.guest(node, vmid);
      switch (action) {
        case "start":
          return startGuest(state, g, ctx);
        case "stop":
          return stopGuest(state, g);
        case "shutdown":
          return shutdownGuest(state, g, timeout, flag(params, "forceStop") ?? false);
        case "reboot":
          return rebootGuest(state, g, timeout, ctx);
      }
    },
    finally: () => release?.(),
  });
  return { data: upid };
}

async function destroy(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  const force = flag(params, "force") ?? false;
  await checkDestroyable(state, state.cluster.guest(node, vmid), force);
  let release: (() => void) | undefined;
  let g: GuestState | undefined;
  const upid = state.tasks.start(node, "vzdestroy", String(vmid), user, {
    async before() {
      release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
      // Checked again under the lock: the container may have changed meanwhile.
      g = state.cluster.guest(node, vmid);
      await checkDestroyable(state, g, force);
    },
    async run(ctx) {
      // `before` has set it: a task runs only after its `before` succeeded.
      if (g) await destroyGuest(state, g, flag(params, "purge") ?? false, flag(params, "destroy-unreferenced-disks") ?? false, ctx);
    },
    finally: () => release?.(),
  });
  return { data: upid };
}

async function updateConfig(call: Call): Promise<Reply> {
  const { params, state, user } = call;
  const node = checkNode(state, params);
  const vmid = reqNum(params, "vmid");
  state.cluster.guest(node, vmid);
  const deletes = splitList(str(params, "delete") ?? "");
  const reverts = splitList(str(params, "revert") ?? "");
  checkDeleteConflicts(params, deletes);
  return withFileLock(state, vmid, async () => {
    const g = state.cluster.guest(node, vmid);
    checkUpdateLock(g, params, deletes);
    checkDigest(g, str(params, "digest"));
    checkConfigPermission(user, g.config["unprivileged"] === 1, g.config, params, deletes);
    for (const key of reverts) {
      if (params[key] !== undefined) throw paramError({ revert: `you can't use '-${key}' and '-revert ${key}' at the same time` });
      if (deletes.includes(key)) throw paramError({ delete: `you can't use '-delete ${key}' and '-revert ${key}' at the same time` });
    }
    const update = planUpdate(state, g, params, deletes, reverts);
    const running = g.created && (await state.cluster.backend.status(vmid)).running;
    await applyUpdate(state, g, update, running);
    return { data: null };
  });
}

/** The endpoints of this module. */
export const lxcEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/nodes/{node}/lxc",
    params: LIST_PARAMS,
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const data: Record<string, unknown>[] = [];
      for (const g of state.cluster.guests.values()) if (g.node === node) data.push(await guestSummary(state, g));
      return { data };
    },
  },
  { method: "POST", path: "/nodes/{node}/lxc", params: CREATE_PARAMS, handle: create },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}",
    params: NODE_VMID,
    handle({ params, state }) {
      state.cluster.guest(checkNode(state, params), reqNum(params, "vmid"));
      const subdirs = ["config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy", "remote_migrate", "migrate", "clone", "snapshot", "firewall", "rrd", "rrddata", "feature", "resize", "move_volume", "interfaces"];
      return Promise.resolve({ data: subdirs.map((subdir) => ({ subdir })) });
    },
  },
  { method: "DELETE", path: "/nodes/{node}/lxc/{vmid}", params: DESTROY_PARAMS, handle: destroy },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/config",
    params: READ_CONFIG_PARAMS,
    handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const snapshot = str(params, "snapshot");
      if (snapshot !== undefined && flag(params, "current")) {
        const msg = "cannot use 'snapshot' parameter with 'current'";
        throw paramError({ snapshot: msg, current: msg });
      }
      if (snapshot !== undefined) {
        const snap = g.snapshots[snapshot];
        if (snap === undefined) throw failure(`snapshot '${snapshot}' does not exist`);
        return Promise.resolve({ data: { ...snap, digest: guestDigest(g) } });
      }
      const config = flag(params, "current") ? g.config : withPending(g);
      return Promise.resolve({ data: { ...config, digest: guestDigest(g) } });
    },
  },
  { method: "PUT", path: "/nodes/{node}/lxc/{vmid}/config", params: UPDATE_PARAMS, handle: updateConfig },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/status/current",
    params: NODE_VMID,
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      return { data: { ...(await guestSummary(state, g)), ha: { managed: 0 } } };
    },
  },
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/start", params: START_PARAMS, handle: (call) => statusAction(call, "start") },
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/stop", params: STOP_PARAMS, handle: (call) => statusAction(call, "stop") },
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/shutdown", params: SHUTDOWN_PARAMS, handle: (call) => statusAction(call, "shutdown") },
  { method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/reboot", params: REBOOT_PARAMS, handle: (call) => statusAction(call, "reboot") },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/interfaces",
    params: NODE_VMID,
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const list = g.created ? await state.cluster.backend.interfaces(g.vmid) : null;
      return { data: list === null ? null : list.map(interfaceView) };
    },
  },
];
