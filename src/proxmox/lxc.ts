/**
 * LXC container calls: create (with id allocation that survives a race with
 * another creator, and restore from a backup), config, status, the lifecycle
 * tasks waited on through the task module, destroy, and the container's data:
 * disk resize, moving a volume to another container, snapshots. Each declares how it may be repeated (`CALLS`,
 * see retry.ts); their parameters and answers are lxc-types.ts's.
 */
import { z } from "zod";
import type { ClusterApi } from "./cluster.ts";
import { ProxmoxApiError, ProxmoxAuthError, contextFromPath } from "./errors.ts";
import { apiPath } from "./http.ts";
import type { ApiRequest, FormParams, ProxmoxHttp } from "./http.ts";
import { featuresNeedRoot, formatFeatures } from "./lxc-format.ts";
import type { LxcFeatures } from "./lxc-format.ts";
import { CREATE_UNPRIVILEGED_DEFAULT, cloneForm, lxcConfigSchema, lxcCreateForm, lxcInterfacesSchema, lxcListSchema, lxcSnapshotListSchema, lxcStatusSchema, lxcUpdateForm, moveVolumeForm, parseLxcConfig, resizeForm } from "./lxc-types.ts";
import type { LxcCloneParams, LxcConfig, LxcConfigUpdate, LxcCreateParams, LxcInterface, LxcMoveVolume, LxcSnapshot, LxcStatus, LxcSummary } from "./lxc-types.ts";
import { GUEST_CREATE, GUEST_TASK, READ, WRITE, createUnderFreshIds, retrying, taskLockRetry } from "./retry.ts";
import type { CallPolicy } from "./retry.ts";
import type { TaskResult, TasksApi, WaitOptions } from "./tasks.ts";

/** Options of the lifecycle calls that wait for their task. */
export interface TaskCallOptions {
  wait?: WaitOptions;
}

/** The result of create: the id it got, and the finished task. */
export interface LxcCreateResult extends TaskResult {
  vmid: number;
}

/** How each call may be repeated (retry.ts), declared once. */
const CALLS = {
  list: READ,
  create: GUEST_CREATE,
  config: READ,
  updateConfig: WRITE,
  status: READ,
  start: GUEST_TASK,
  stop: GUEST_TASK,
  shutdown: GUEST_TASK,
  reboot: GUEST_TASK,
  delete: GUEST_TASK,
  interfaces: READ,
  resize: GUEST_TASK,
  moveVolume: GUEST_TASK,
  snapshots: READ,
  snapshot: GUEST_TASK,
  deleteSnapshot: GUEST_TASK,
  rollback: GUEST_TASK,
  template: WRITE,
  clone: GUEST_CREATE,
} as const satisfies Record<string, CallPolicy>;

/** LXC container calls. */
export class LxcApi {
  private readonly http: ProxmoxHttp;
  private readonly tasks: TasksApi;
  private readonly cluster: ClusterApi;

  constructor(http: ProxmoxHttp, tasks: TasksApi, cluster: ClusterApi) {
    this.http = http;
    this.tasks = tasks;
    this.cluster = cluster;
  }

  /** Containers on a node. */
  async list(node: string): Promise<LxcSummary[]> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc`, policy: CALLS.list }, lxcListSchema);
  }

  /**
   * Creates a container and waits for it. Without `vmid`, allocates one and, if another
   * creator takes it first ("already exists"), allocates again; nothing else is retried.
   */
  async create(node: string, params: LxcCreateParams, options: TaskCallOptions = {}): Promise<LxcCreateResult> {
    const path = apiPath`/nodes/${node}/lxc`;
    if (params.features !== undefined) this.checkFeatures(params.features, params.unprivileged ?? CREATE_UNPRIVILEGED_DEFAULT, "POST", path, node);
    const chosen = params.vmid;
    return createUnderFreshIds({
      // A caller's id is the caller's: a race for it is lost, not repeated.
      attempts: chosen === undefined && CALLS.create.idRace ? this.http.retry.idRaceAttempts : 1,
      budget: this.http.retry,
      nextId: () => (chosen !== undefined ? Promise.resolve(chosen) : this.cluster.nextId()),
      create: async (vmid) => {
        const request = { method: "POST", path, params: lxcCreateForm(params, vmid), secretParams: ["password"], policy: CALLS.create } as const;
        return { ...(await this.task(request, options)), vmid };
      },
    });
  }

  /** The container's config, parsed (`current` reads applied values instead of pending ones). */
  async config(node: string, vmid: number, options: { current?: boolean } = {}): Promise<LxcConfig> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/config`;
    const raw = await this.http.call({ method: "GET", path, params: { current: options.current }, policy: CALLS.config }, lxcConfigSchema);
    return parseLxcConfig(raw);
  }

  /** Changes the container's config. */
  async updateConfig(node: string, vmid: number, update: LxcConfigUpdate): Promise<void> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/config`;
    if (update.features !== undefined) this.checkFeatures(update.features, undefined, "PUT", path, node, vmid);
    await this.http.call({ method: "PUT", path, params: lxcUpdateForm(update), policy: CALLS.updateConfig }, z.null());
  }

  /** Live status: running or stopped, uptime, memory. */
  async status(node: string, vmid: number): Promise<LxcStatus> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/status/current`, policy: CALLS.status }, lxcStatusSchema);
  }

  /** Starts the container and waits. */
  async start(node: string, vmid: number, options: TaskCallOptions = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "start", {}, options);
  }

  /** Stops the container hard and waits. */
  async stop(node: string, vmid: number, options: TaskCallOptions & { overruleShutdown?: boolean } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "stop", { "overrule-shutdown": options.overruleShutdown }, options);
  }

  /** Shuts the container down cleanly (hard stop after `timeoutSec` with `forceStop`) and waits. */
  async shutdown(node: string, vmid: number, options: TaskCallOptions & { timeoutSec?: number; forceStop?: boolean } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "shutdown", { timeout: options.timeoutSec, forceStop: options.forceStop }, options);
  }

  /** Reboots the container and waits. */
  async reboot(node: string, vmid: number, options: TaskCallOptions & { timeoutSec?: number } = {}): Promise<TaskResult> {
    return this.lifecycle(node, vmid, "reboot", { timeout: options.timeoutSec }, options);
  }

  /** Destroys the container (it must be stopped unless `force`) and waits. */
  async delete(
    node: string,
    vmid: number,
    options: TaskCallOptions & { purge?: boolean; force?: boolean; destroyUnreferencedDisks?: boolean } = {},
  ): Promise<TaskResult> {
    const params = { purge: options.purge, force: options.force, "destroy-unreferenced-disks": options.destroyUnreferencedDisks };
    return this.task({ method: "DELETE", path: apiPath`/nodes/${node}/lxc/${vmid}`, params, policy: CALLS.delete }, options);
  }

  /** Interfaces with their addresses; null while the container is stopped. */
  async interfaces(node: string, vmid: number): Promise<LxcInterface[] | null> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/interfaces`, policy: CALLS.interfaces }, lxcInterfacesSchema);
  }

  /**
   * Sets a disk (`rootfs` or `mpN`) to `sizeGb` GiB and waits. Proxmox only grows
   * disks: it refuses a smaller size ("unable to shrink disk size").
   */
  async resize(node: string, vmid: number, disk: string, sizeGb: number, options: TaskCallOptions & { digest?: string } = {}): Promise<TaskResult> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/resize`;
    return this.task({ method: "PUT", path, params: resizeForm(disk, sizeGb, options.digest), policy: CALLS.resize }, options);
  }

  /** Moves a volume to another container (`targetVmid`, same node) or another storage, and waits. */
  async moveVolume(node: string, vmid: number, move: LxcMoveVolume, options: TaskCallOptions = {}): Promise<TaskResult> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/move_volume`;
    return this.task({ method: "POST", path, params: moveVolumeForm(move), policy: CALLS.moveVolume }, options);
  }

  /** The container's snapshots, oldest first; Proxmox's `current` entry left out. */
  async snapshots(node: string, vmid: number): Promise<LxcSnapshot[]> {
    const list = await this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/snapshot`, policy: CALLS.snapshots }, lxcSnapshotListSchema);
    return list.filter((x) => x.name !== "current").sort((a, b) => (a.snaptime ?? 0) - (b.snaptime ?? 0) || a.name.localeCompare(b.name));
  }

  /** Takes a snapshot of the container (its root and volumes) and waits. */
  async snapshot(node: string, vmid: number, name: string, options: TaskCallOptions & { description?: string } = {}): Promise<TaskResult> {
    const params = { snapname: name, description: options.description };
    return this.task({ method: "POST", path: apiPath`/nodes/${node}/lxc/${vmid}/snapshot`, params, policy: CALLS.snapshot }, options);
  }

  /** Deletes a snapshot and waits. */
  async deleteSnapshot(node: string, vmid: number, name: string, options: TaskCallOptions & { force?: boolean } = {}): Promise<TaskResult> {
    const params = { force: options.force };
    return this.task({ method: "DELETE", path: apiPath`/nodes/${node}/lxc/${vmid}/snapshot/${name}`, params, policy: CALLS.deleteSnapshot }, options);
  }

  /** Rolls the container back to a snapshot (Proxmox stops it first) and waits; `start` starts it again. */
  async rollback(node: string, vmid: number, name: string, options: TaskCallOptions & { start?: boolean } = {}): Promise<TaskResult> {
    const params = { start: options.start };
    return this.task({ method: "POST", path: apiPath`/nodes/${node}/lxc/${vmid}/snapshot/${name}/rollback`, params, policy: CALLS.rollback }, options);
  }

  /** Turns a stopped container into a template (its volumes become base volumes); Proxmox answers when done. */
  async template(node: string, vmid: number): Promise<void> {
    await this.http.call({ method: "POST", path: apiPath`/nodes/${node}/lxc/${vmid}/template`, policy: CALLS.template }, z.null());
  }

  /**
   * Clones a container or template into `newid` and waits. `full: false` is a linked clone
   * (a template on storage that supports it), `full: true` copies every volume.
   */
  async clone(node: string, vmid: number, params: LxcCloneParams, options: TaskCallOptions = {}): Promise<TaskResult> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/clone`;
    return this.task({ method: "POST", path, params: cloneForm(params), policy: CALLS.clone }, options);
  }

  private async lifecycle(node: string, vmid: number, action: "start" | "stop" | "shutdown" | "reboot", params: FormParams, options: TaskCallOptions): Promise<TaskResult> {
    const path = `${apiPath`/nodes/${node}/lxc/${vmid}/status/`}${action}`;
    return this.task({ method: "POST", path, params, policy: CALLS[action] }, options);
  }

  // Sends a call that starts a task and waits for the task. A task refused on a lock is started
  // again when the call's policy says so (taskLocks), under the lock budget; a refusal in the
  // answer itself was already repeated by the transport.
  private async task(request: ApiRequest & { policy: CallPolicy }, options: TaskCallOptions): Promise<TaskResult> {
    const origin = contextFromPath(request.method, request.path);
    let refusals = 0;
    return retrying(
      async () => this.tasks.wait(await this.http.call(request, z.string()), options.wait, origin),
      (error) => {
        refusals += 1;
        const delayMs = taskLockRetry(request.policy, error, refusals, this.http.retry);
        if (delayMs !== undefined && error instanceof ProxmoxApiError) {
          this.http.log(`retry ${request.method} ${request.path} in ${delayMs} ms (lock, task ${error.task?.upid ?? "?"}): ${error.message}`);
        }
        return delayMs;
      },
    );
  }

  // Proxmox lets only root@pam itself (not even root's API tokens) set features other than
  // nesting, or any feature of a privileged container; refusing before the request gives a
  // clear error without a round trip. Unknown privilege (an update) is left to the server.
  private checkFeatures(features: LxcFeatures, unprivileged: boolean | undefined, method: string, path: string, node: string, vmid?: number): void {
    if (this.http.auth?.identity === "root@pam") return;
    if (!featuresNeedRoot(features, unprivileged)) return;
    throw new ProxmoxAuthError({
      method,
      path,
      node,
      vmid,
      status: 403,
      reason: "Permission check failed",
      message: `features ${formatFeatures(features)}${unprivileged === false ? " on a privileged container" : ""} need root@pam, and the client acts as ${this.http.auth?.identity ?? "nobody"}`,
      hint: "only root@pam itself may set features other than nesting, or any feature of a privileged container (an API token cannot, even root's): use an unprivileged container with nesting=1 only, use password credentials for root@pam, or set the features on the node with `pct set`",
      preflight: true,
    });
  }
}
