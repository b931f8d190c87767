/**
 * A node's storages and what is on them, as pve-storage lists it: templates
 * (`vztmpl`), container volumes (`rootdir` while their owner is a container,
 * `images` once it is gone: that is how orphaned volumes show), and vzdump
 * backups (`backup`: volid, size, ctime, format, subtype, vmid, notes,
 * protected). One volume's attributes are read, changed (`notes`,
 * `protected`) and deleted (a task; a protected backup cannot go, nor a
 * volume a running container uses).
 */
import { volumeRef } from "../cluster.ts";
import type { Backup, Volume } from "../cluster.ts";
import { failure, paramError } from "../errors.ts";
import { parseVolumeName, volumePath } from "../storage.ts";
import type { StorageDef } from "../storage.ts";
import { NODE, STORAGE, VMID, checkNode, flag, num, reqStr, str } from "./common.ts";
import type { Endpoint, SandboxState } from "./types.ts";
import { freeVolume, mountKeys, volumeOf } from "./lxc/volumes.ts";

const CONTENT_TYPES = ["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"];

async function storageEntry(state: SandboxState, node: string, s: StorageDef): Promise<Record<string, unknown>> {
  const total = state.cluster.storageTotal(node, s.storage);
  const used = await state.cluster.storageUsed(node, s.storage);
  return { storage: s.storage, type: s.type, content: s.content.join(","), active: 1, enabled: 1, shared: 0, total, used, avail: total - used, used_fraction: used / total };
}

/** `rootdir` while a container owns the volume, `images` otherwise (pve-storage classifies by the owner's type). */
function volumeContent(state: SandboxState, v: Volume): "rootdir" | "images" {
  return state.cluster.guests.has(v.vmid) ? "rootdir" : "images";
}

/** A backup as the content list shows it; notes only up to their first line. */
function backupItem(b: Backup): Record<string, unknown> {
  const item: Record<string, unknown> = { volid: b.volid, content: "backup", format: b.format, size: b.size, ctime: b.ctime, subtype: "lxc", vmid: b.vmid };
  if (b.notes !== undefined && b.notes !== "") item["notes"] = b.notes.split("\n")[0];
  if (b.protected) item["protected"] = 1;
  return item;
}

/** `real_volume_id`: a volume given with or without its storage, which must match the path's. */
function realVolumeId(storage: string | undefined, volume: string): { volid: string; storage: string } {
  if (volume.includes(":")) {
    const sid = volume.slice(0, volume.indexOf(":"));
    if (storage !== undefined && sid !== storage) throw paramError({ volume: `storage ID mismatch (${sid} != ${storage})\n` });
    return { volid: volume, storage: sid };
  }
  if (storage === undefined) throw paramError({ volume: "no storage specified - incomplete volume ID" });
  return { volid: `${storage}:${volume}`, storage };
}

/** What a volume id names on a node: a backup, a container volume, a template, or nothing yet. */
type Target = { kind: "backup"; name: string; backup: Backup | undefined } | { kind: "image"; name: string; volume: Volume | undefined } | { kind: "vztmpl"; name: string };

/** Parses a volume id as the storage's plugin does (`parse_volname`), failing with its message. */
function target(state: SandboxState, node: string, volid: string, sid: string): Target {
  const def = state.cluster.storage(sid);
  const name = volid.slice(sid.length + 1);
  if (def.type !== "dir") {
    if (!parseVolumeName(def, name)) throw failure(`unable to parse ${def.type === "lvmthin" ? "lvm" : "zfs"} volume name '${name}'`);
    return { kind: "image", name, volume: state.cluster.volume(node, volid) };
  }
  if (/^backup\/[^/]+$/.test(name)) {
    return { kind: "backup", name, backup: state.cluster.backup(node, volid) };
  }
  if (/^vztmpl\/[^/]+$/.test(name)) return { kind: "vztmpl", name };
  if (parseVolumeName(def, name)) return { kind: "image", name, volume: state.cluster.volume(node, volid) };
  throw failure(`unable to parse directory volume name '${name}'`);
}

/** Whether a running container mounts a volume (LVM refuses to remove an open volume). */
async function inUseByRunning(state: SandboxState, v: Volume): Promise<boolean> {
  for (const g of state.cluster.guests.values()) {
    if (g.node !== v.node || !g.created) continue;
    const uses = mountKeys(g.config).some((k) => volumeOf(k, String(g.config[k])) === v.volid);
    if (uses && (await state.cluster.backend.status(g.vmid)).running) return true;
  }
  return false;
}

/** The endpoints of this module. */
export const storageEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/nodes/{node}/storage",
    params: {
      rules: {
        node: NODE,
        content: { type: "string", optional: true, format: (v) => (v.split(",").every((c) => CONTENT_TYPES.includes(c)) ? undefined : "invalid content type") },
        enabled: { type: "boolean", optional: true },
        format: { type: "boolean", optional: true },
        storage: { ...STORAGE, optional: true },
        target: { ...NODE, optional: true },
      },
    },
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const targetNode = str(params, "target");
      if (targetNode !== undefined) state.cluster.node(targetNode);
      const wanted = (str(params, "content") ?? "").split(",").filter((c) => c !== "");
      const only = str(params, "storage");
      const data: Record<string, unknown>[] = [];
      for (const s of state.cluster.storages) {
        if (only !== undefined && s.storage !== only) continue;
        if (wanted.length > 0 && !wanted.some((c) => s.content.includes(c))) continue;
        const entry = await storageEntry(state, node, s);
        if (flag(params, "format")) {
          entry["format"] = s.type === "dir" ? { default: "raw", supported: ["raw", "qcow2", "vmdk", "subvol"] } : s.type === "zfspool" ? { default: "raw", supported: ["raw", "subvol"] } : { default: "raw", supported: ["raw"] };
          entry["select_existing"] = 0;
        }
        data.push(entry);
      }
      return { data };
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/storage/{storage}/content",
    params: {
      rules: {
        node: NODE,
        storage: STORAGE,
        content: { type: "string", optional: true, format: (v) => (CONTENT_TYPES.includes(v) ? undefined : "invalid content type") },
        vmid: { ...VMID, optional: true },
      },
    },
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const sid = reqStr(params, "storage");
      const def = state.cluster.storage(sid);
      const content = str(params, "content");
      const vmid = num(params, "vmid");
      const types = (content !== undefined ? [content] : CONTENT_TYPES).filter((t) => def.content.includes(t));
      const data: Record<string, unknown>[] = [];
      if (types.includes("vztmpl") && vmid === undefined) {
        for (const t of await state.cluster.templates(node)) {
          if (!t.volid.startsWith(`${sid}:`)) continue;
          data.push({ volid: t.volid, content: "vztmpl", format: t.volid.endsWith(".tar.xz") ? "txz" : "tzst", size: t.size, ctime: t.ctime });
        }
      }
      if (types.includes("backup")) {
        for (const b of state.cluster.backups(node)) if (b.storage === sid && (vmid === undefined || b.vmid === vmid)) data.push(backupItem(b));
      }
      for (const v of state.cluster.volumes(node)) {
        if (v.storage !== sid || (vmid !== undefined && v.vmid !== vmid)) continue;
        const kind = volumeContent(state, v);
        if (!types.includes(kind)) continue;
        data.push({ volid: v.volid, content: kind, format: v.format, size: v.size, vmid: v.vmid, ctime: v.ctime });
      }
      data.sort((a, b) => String(a["volid"]).toLowerCase().localeCompare(String(b["volid"]).toLowerCase()));
      return { data };
    },
  },
  {
    method: "POST",
    path: "/nodes/{node}/storage/{storage}/content",
    params: {
      rules: {
        node: NODE,
        storage: STORAGE,
        filename: { type: "string" },
        vmid: VMID,
        size: { type: "string", pattern: /^\d+[MG]?$/ },
        format: { type: "string", optional: true, enum: ["raw", "qcow2", "subvol", "vmdk"], requires: "size" },
      },
    },
    async handle({ params, state }) {
      const node = checkNode(state, params);
      const sid = reqStr(params, "storage");
      const def = state.cluster.storage(sid);
      const vmid = num(params, "vmid") ?? 0;
      const sizeText = reqStr(params, "size");
      const kib = Number(/^\d+/.exec(sizeText)?.[0] ?? 0) * (sizeText.endsWith("G") ? 1024 * 1024 : sizeText.endsWith("M") ? 1024 : 1);
      const filename = reqStr(params, "filename");
      const format = str(params, "format") ?? (/\.(raw|qcow2|vmdk)$/.exec(filename)?.[1] ?? "raw");
      const zfsSubvol = def.type === "zfspool" && format === "subvol";
      if (format !== "raw" && !zfsSubvol) throw failure(`sandbox: only raw container volumes (and ZFS subvolumes) are modelled, not '${format}'`);
      if (def.type !== "dir" && !zfsSubvol && !new RegExp(`^vm-${vmid}-`).test(filename)) throw failure(`illegal name '${filename}' - should be 'vm-${vmid}-*'`);
      if (zfsSubvol && !new RegExp(`^subvol-${vmid}-`).test(filename)) throw failure(`illegal name '${filename}' - should be 'subvol-${vmid}-*'`);
      const name = def.type === "dir" ? `${vmid}/${filename}` : filename;
      if (!parseVolumeName(def, name) || parseVolumeName(def, name)?.vmid !== vmid) throw failure(`sandbox: volume names are vm-${vmid}-disk-<n>${def.type === "dir" ? ".raw" : ""}, not '${filename}'`);
      if (state.cluster.volume(node, `${sid}:${name}`)) throw failure(`lvcreate 'pve/${filename}' error:   Logical Volume "${filename}" already exists in volume group "pve"`);
      const vol = state.cluster.addNamedVolume(node, sid, vmid, name, kib * 1024);
      try {
        await state.cluster.backend.allocateVolume(volumeRef(vol), vol.size);
      } catch (e) {
        state.cluster.removeVolume(vol);
        throw e;
      }
      return { data: vol.volid };
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/storage/{storage}/content/{volume}",
    params: { rules: { node: NODE, storage: { ...STORAGE, optional: true }, volume: { type: "string" } } },
    handle({ params, state }) {
      const node = checkNode(state, params);
      const { volid, storage } = realVolumeId(str(params, "storage"), reqStr(params, "volume"));
      const def = state.cluster.storage(storage);
      const t = target(state, node, volid, storage);
      if (t.kind === "backup") {
        if (!t.backup) throw failure(`volume_size_info on '${volid}' failed - no format`);
        const entry: Record<string, unknown> = { path: `${def.path ?? ""}/dump/${t.name.slice("backup/".length)}`, size: t.backup.size, used: t.backup.size, format: "raw", protected: t.backup.protected ? 1 : 0 };
        if (t.backup.notes !== undefined && t.backup.notes !== "") entry["notes"] = t.backup.notes;
        return Promise.resolve({ data: entry });
      }
      if (t.kind === "image") {
        if (!t.volume) throw failure(`volume_size_info on '${volid}' failed - no format`);
        return Promise.resolve({ data: { path: volumePath(def, t.name), size: t.volume.size, used: 0, format: t.volume.format } });
      }
      throw failure(`volume_size_info on '${volid}' failed - no format`);
    },
  },
  {
    method: "PUT",
    path: "/nodes/{node}/storage/{storage}/content/{volume}",
    params: { rules: { node: NODE, storage: { ...STORAGE, optional: true }, volume: { type: "string" }, notes: { type: "string", optional: true }, protected: { type: "boolean", optional: true } } },
    handle({ params, state }) {
      const node = checkNode(state, params);
      const { volid, storage } = realVolumeId(str(params, "storage"), reqStr(params, "volume"));
      const def = state.cluster.storage(storage);
      const t = target(state, node, volid, storage);
      const notes = str(params, "notes");
      const prot = flag(params, "protected");
      if (t.kind !== "backup") {
        if (def.type === "lvmthin") {
          if (notes !== undefined) throw failure("volume notes are not supported for PVE::Storage::LvmThinPlugin");
          if (prot !== undefined) throw failure("attribute 'protected' is not supported for storage type 'lvmthin'");
        }
        if (notes !== undefined) throw failure("only backups can have notes");
        if (prot !== undefined) throw failure("only backups support attribute 'protected'");
        return Promise.resolve({ data: null });
      }
      // Proxmox writes the attribute files whether or not the archive is there.
      if (t.backup) {
        if (notes !== undefined) t.backup.notes = notes === "" ? undefined : notes;
        if (prot !== undefined) t.backup.protected = prot;
      }
      return Promise.resolve({ data: null });
    },
  },
  {
    method: "DELETE",
    path: "/nodes/{node}/storage/{storage}/content/{volume}",
    params: { rules: { node: NODE, storage: { ...STORAGE, optional: true }, volume: { type: "string" }, delay: { type: "integer", optional: true, minimum: 1, maximum: 30 } } },
    async handle({ params, state, user }) {
      const node = checkNode(state, params);
      const { volid, storage } = realVolumeId(str(params, "storage"), reqStr(params, "volume"));
      const def = state.cluster.storage(storage);
      const t = target(state, node, volid, storage);
      const owner = t.kind === "backup" ? t.backup?.vmid : t.kind === "image" ? (t.volume?.vmid ?? parseVolumeName(def, t.name)?.vmid) : undefined;
      const upid = state.tasks.start(node, "imgdel", `${owner !== undefined ? `${owner}@` : ""}${storage}`, user, {
        async run(ctx) {
          if (t.kind === "backup") {
            const b = state.cluster.backup(node, volid);
            if (b?.protected) throw new Error(`cannot remove protected volume '${t.name}' on '${storage}'`);
            if (b) {
              await state.cluster.backend.freeBackup({ node, storage, file: b.file });
              state.cluster.removeBackup(b);
            } else {
              ctx.log(`disk image '${def.path ?? ""}/dump/${t.name.slice("backup/".length)}' does not exist`);
            }
          } else if (t.kind === "image") {
            const v = state.cluster.volume(node, volid);
            if (v) {
              if (await inUseByRunning(state, v)) throw new Error(`lvremove 'pve/${t.name}' error:   Logical volume pve/${t.name} in use.`);
              await freeVolume(state, v);
            }
          } else {
            const n = state.cluster.node(node);
            n.downloaded = n.downloaded.filter((d) => d.volid !== volid);
          }
          ctx.log(`Removed volume '${volid}'`);
        },
      });
      const delay = num(params, "delay");
      if (delay !== undefined) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([state.tasks.settled(upid), new Promise((r) => (timer = setTimeout(r, delay * 1000)))]);
        clearTimeout(timer);
        const task = state.tasks.get(upid);
        if (task?.status === "stopped") {
          if (task.exitstatus === "OK") return { data: null };
          throw failure(task.exitstatus ?? "unknown error");
        }
      }
      return { data: upid };
    },
  },
];
