/**
 * Backups (vzdump): taking one of a guest into a storage that holds backups,
 * listing what a storage holds, their notes and protection, and removing one.
 * Restoring is a create (`lxc.create` with `restore: true`): Proxmox has no
 * separate call for it.
 */
import { z } from "zod";
import { contextFromPath } from "./errors.ts";
import { apiPath } from "./http.ts";
import type { ProxmoxHttp } from "./http.ts";
import { invalidParam } from "./lxc-format.ts";
import { GUEST_TASK, READ, WRITE } from "./retry.ts";
import type { CallPolicy } from "./retry.ts";
import { flag, num } from "./schema.ts";
import type { TaskResult, TasksApi, WaitOptions } from "./tasks.ts";

/** How each call may be repeated (retry.ts), declared once. */
const CALLS = {
  // vzdump locks the guest (`lock: backup`) inside its task, after checking the lock.
  vzdump: GUEST_TASK,
  list: READ,
  remove: WRITE,
} as const satisfies Record<string, CallPolicy>;

/** How vzdump reads a running guest: a storage snapshot, a freeze (`suspend`), or stopping it. */
export type BackupMode = "snapshot" | "suspend" | "stop";

/** The options of one backup. */
export interface BackupRequest {
  vmid: number;
  /** A storage with content `backup`. */
  storage: string;
  mode: BackupMode;
  /** Proxmox's notes template: `{{guestname}}`, `{{vmid}}`, `{{node}}`, `{{cluster}}` are filled in. */
  notesTemplate?: string;
  protected?: boolean;
}

const backupSchema = z.object({
  volid: z.string(),
  content: z.string().optional(),
  format: z.string().optional(),
  size: num,
  ctime: num.optional(),
  vmid: num.optional(),
  subtype: z.string().optional(),
  notes: z.string().optional(),
  protected: flag.optional(),
});

/** A backup on a storage, as `GET .../content?content=backup` lists it. */
export interface BackupVolume {
  /** e.g. `local:backup/vzdump-lxc-105-2026_12_07-10_30_00.tar.zst`. */
  volid: string;
  storage: string;
  vmid: number | undefined;
  /** Bytes. */
  size: number;
  /** Seconds since the epoch. */
  ctime: number;
  notes: string;
  protected: boolean;
  /** `lxc` or `qemu`. */
  subtype: string | undefined;
}

// vzdump's notes template: one line, without the characters it does not take.
const NOTES = /^[^\n\r]*$/;

/** Backup calls. */
export class BackupApi {
  private readonly http: ProxmoxHttp;
  private readonly tasks: TasksApi;

  constructor(http: ProxmoxHttp, tasks: TasksApi) {
    this.http = http;
    this.tasks = tasks;
  }

  /**
   * Backs a guest up and waits; returns the new archive, found by listing the
   * storage before and after (the task's answer does not name it).
   */
  async vzdump(node: string, request: BackupRequest, wait: WaitOptions = {}): Promise<{ task: TaskResult; backup: BackupVolume | undefined }> {
    if (request.notesTemplate !== undefined && !NOTES.test(request.notesTemplate)) throw invalidParam("notes-template", "must be one line", "leave out newlines");
    const before = new Set((await this.list(node, request.storage, request.vmid)).map((b) => b.volid));
    const path = apiPath`/nodes/${node}/vzdump`;
    const params = {
      vmid: String(request.vmid),
      storage: request.storage,
      mode: request.mode,
      compress: "zstd",
      "notes-template": request.notesTemplate,
      protected: request.protected,
    };
    const upid = await this.http.call({ method: "POST", path, params, policy: CALLS.vzdump }, z.string());
    const task = await this.tasks.wait(upid, wait, contextFromPath("POST", path));
    const after = await this.list(node, request.storage, request.vmid);
    return { task, backup: after.filter((b) => !before.has(b.volid)).sort((a, b) => b.ctime - a.ctime)[0] };
  }

  /** Backups on a storage (of one guest when `vmid` is given), newest first. */
  async list(node: string, storage: string, vmid?: number): Promise<BackupVolume[]> {
    const path = apiPath`/nodes/${node}/storage/${storage}/content`;
    const raw = await this.http.call({ method: "GET", path, params: { content: "backup", vmid }, policy: CALLS.list }, z.array(backupSchema));
    return raw
      .filter((b) => b.content === undefined || b.content === "backup")
      .map((b) => ({
        volid: b.volid,
        storage,
        vmid: b.vmid,
        size: b.size,
        ctime: b.ctime ?? 0,
        notes: b.notes ?? "",
        protected: b.protected === true,
        subtype: b.subtype,
      }))
      .sort((a, b) => b.ctime - a.ctime || b.volid.localeCompare(a.volid));
  }

  /** Removes a backup (refused by Proxmox while it is protected) and waits when Proxmox runs it as a task. */
  async remove(node: string, storage: string, volid: string, wait: WaitOptions = {}): Promise<void> {
    const path = apiPath`/nodes/${node}/storage/${storage}/content/${volid}`;
    const upid = await this.http.call({ method: "DELETE", path, policy: CALLS.remove }, z.string().nullable().optional());
    if (typeof upid === "string" && upid.startsWith("UPID:")) await this.tasks.wait(upid, wait, contextFromPath("DELETE", path));
  }
}
