/**
 * `/nodes/{node}/lxc/{vmid}/snapshot...`: the thin handlers of snapshots
 * (list, create, delete, rollback, read and describe one). Creating,
 * deleting and rolling back are tasks whose workers do every check, as in
 * pve-container; only the reserved names are refused before.
 */
import { guestDigest } from "../../cluster.ts";
import { failure } from "../../errors.ts";
import type { ParamSpec } from "../../params.ts";
import { NODE, VMID, checkNode, flag, reqNum, reqStr, str } from "../common.ts";
import type { Endpoint } from "../types.ts";
import { startGuest } from "./lifecycle.ts";
import { withFileLock } from "./locking.ts";
import { checkSnapname } from "./schema.ts";
import { snapshotCreate, snapshotDelete, snapshotList, snapshotRollback } from "./snapshots.ts";
import { checkLock } from "./checks.ts";

const SNAPNAME = { type: "string", maxLength: 40, format: checkSnapname } as const;
const ONE: ParamSpec = { rules: { node: NODE, vmid: VMID, snapname: SNAPNAME } };

/** The endpoints of this module. */
export const snapshotEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/snapshot",
    params: { rules: { node: NODE, vmid: VMID } },
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      return { data: await snapshotList(state, g, guestDigest(g)) };
    },
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/snapshot",
    params: { rules: { node: NODE, vmid: VMID, snapname: SNAPNAME, description: { type: "string", optional: true } } },
    handle({ params, state, user }) {
      const node = checkNode(state, params);
      const vmid = reqNum(params, "vmid");
      const snapname = reqStr(params, "snapname");
      if (snapname === "current" || snapname === "vzdump") throw failure(`unable to use snapshot name '${snapname}' (reserved name)`);
      const description = str(params, "description");
      const upid = state.tasks.start(node, "vzsnapshot", String(vmid), user, { run: (ctx) => snapshotCreate(state, node, vmid, snapname, description, ctx) });
      return Promise.resolve({ data: upid });
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
    params: ONE,
    handle({ params, state }) {
      // Proxmox lists the sub-paths without looking at the snapshot.
      checkNode(state, params);
      return Promise.resolve({ data: [{ cmd: "rollback" }, { cmd: "config" }] });
    },
  },
  {
    method: "DELETE",
    path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
    params: { rules: { ...ONE.rules, force: { type: "boolean", optional: true } } },
    handle({ params, state, user }) {
      const node = checkNode(state, params);
      const vmid = reqNum(params, "vmid");
      const snapname = reqStr(params, "snapname");
      const force = flag(params, "force") ?? false;
      const upid = state.tasks.start(node, "vzdelsnapshot", String(vmid), user, { run: (ctx) => snapshotDelete(state, node, vmid, snapname, force, ctx) });
      return Promise.resolve({ data: upid });
    },
  },
  {
    method: "POST",
    path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    params: { rules: { ...ONE.rules, start: { type: "boolean", optional: true } } },
    handle({ params, state, user }) {
      const node = checkNode(state, params);
      const vmid = reqNum(params, "vmid");
      const snapname = reqStr(params, "snapname");
      const start = flag(params, "start") ?? false;
      const upid = state.tasks.start(node, "vzrollback", String(vmid), user, {
        async run(ctx) {
          await snapshotRollback(state, node, vmid, snapname, ctx);
          if (start) await withFileLock(state, vmid, () => startGuest(state, state.cluster.guest(node, vmid), ctx));
        },
      });
      return Promise.resolve({ data: upid });
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
    params: ONE,
    handle({ params, state }) {
      const node = checkNode(state, params);
      const g = state.cluster.guest(node, reqNum(params, "vmid"));
      const snapname = reqStr(params, "snapname");
      const snap = g.snapshots[snapname];
      if (snap === undefined) throw failure(`snapshot '${snapname}' does not exist`);
      return Promise.resolve({ data: { ...snap } });
    },
  },
  {
    method: "PUT",
    path: "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
    params: { rules: { ...ONE.rules, description: { type: "string", optional: true } } },
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const vmid = reqNum(params, "vmid");
      const snapname = reqStr(params, "snapname");
      const description = str(params, "description");
      if (description === undefined) return { data: null };
      await withFileLock(state, vmid, () => {
        const g = state.cluster.guest(node, vmid);
        checkLock(g);
        const snap = g.snapshots[snapname];
        if (snap === undefined) throw failure(`snapshot '${snapname}' does not exist`);
        snap["description"] = description;
      });
      return { data: null };
    },
  },
];
