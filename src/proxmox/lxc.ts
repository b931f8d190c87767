/**
 * LXC container calls: create (with id allocation that survives a race with
 * another creator), config, status, the lifecycle tasks waited on through the
 * task module, and destroy. Their parameters and answers are lxc-types.ts's.
 */
import { z } from "zod";
import type { ClusterApi } from "./cluster.ts";
import { ProxmoxAlreadyExistsError, ProxmoxAuthError, ProxmoxLockedError, ProxmoxTaskError, contextFromPath } from "./errors.ts";
import { apiPath, backoffDelay, retryDecision } from "./http.ts";
import type { FormParams, ProxmoxHttp, RetryState } from "./http.ts";
import { featuresNeedRoot, formatFeatures } from "./lxc-format.ts";
import type { LxcFeatures } from "./lxc-format.ts";
import { CREATE_UNPRIVILEGED_DEFAULT, lxcConfigSchema, lxcCreateForm, lxcInterfacesSchema, lxcListSchema, lxcStatusSchema, lxcUpdateForm, parseLxcConfig } from "./lxc-types.ts";
import type { LxcConfig, LxcConfigUpdate, LxcCreateParams, LxcInterface, LxcStatus, LxcSummary } from "./lxc-types.ts";
import type { TaskResult, TasksApi, WaitOptions } from "./tasks.ts";

/** Options of the lifecycle calls that wait for their task. */
export interface TaskCallOptions {
  wait?: WaitOptions;
}

/** The result of create: the id it got, and the finished task. */
export interface LxcCreateResult extends TaskResult {
  vmid: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc` }, lxcListSchema);
  }

  /**
   * Creates a container and waits for it. Without `vmid`, allocates one and, if another
   * creator takes it first ("already exists"), allocates again; nothing else is retried.
   */
  async create(node: string, params: LxcCreateParams, options: TaskCallOptions = {}): Promise<LxcCreateResult> {
    const path = apiPath`/nodes/${node}/lxc`;
    if (params.features !== undefined) this.checkFeatures(params.features, params.unprivileged ?? CREATE_UNPRIVILEGED_DEFAULT, "POST", path, node);
    const allocate = params.vmid === undefined;
    const attempts = allocate ? this.http.retry.idRaceAttempts : 1;
    for (let attempt = 1; ; attempt += 1) {
      const vmid = params.vmid ?? (await this.cluster.nextId());
      const form = lxcCreateForm(params, vmid);
      try {
        const upid = await this.http.call({ method: "POST", path, params: form, secretParams: ["password"] }, z.string());
        const result = await this.tasks.wait(upid, options.wait, contextFromPath("POST", path));
        return { ...result, vmid };
      } catch (error) {
        // Only a lost id race is safe to repeat: the other creator's guest holds the id and ours does not exist.
        const lostRace =
          error instanceof ProxmoxAlreadyExistsError || (error instanceof ProxmoxTaskError && /already exists/.test(error.exitstatus ?? ""));
        if (!lostRace || attempt >= attempts) throw error;
        await sleep(backoffDelay(attempt, this.http.retry.baseDelayMs, this.http.retry.maxDelayMs, this.http.retry.random));
      }
    }
  }

  /** The container's config, parsed (`current` reads applied values instead of pending ones). */
  async config(node: string, vmid: number, options: { current?: boolean } = {}): Promise<LxcConfig> {
    const raw = await this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/config`, params: { current: options.current } }, lxcConfigSchema);
    return parseLxcConfig(raw);
  }

  /** Changes the container's config. */
  async updateConfig(node: string, vmid: number, update: LxcConfigUpdate): Promise<void> {
    const path = apiPath`/nodes/${node}/lxc/${vmid}/config`;
    if (update.features !== undefined) this.checkFeatures(update.features, undefined, "PUT", path, node, vmid);
    await this.http.call({ method: "PUT", path, params: lxcUpdateForm(update) }, z.null());
  }

  /** Live status: running or stopped, uptime, memory. */
  async status(node: string, vmid: number): Promise<LxcStatus> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/status/current` }, lxcStatusSchema);
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
    const path = apiPath`/nodes/${node}/lxc/${vmid}`;
    const upid = await this.http.call(
      { method: "DELETE", path, params: { purge: options.purge, force: options.force, "destroy-unreferenced-disks": options.destroyUnreferencedDisks } },
      z.string(),
    );
    return this.tasks.wait(upid, options.wait, contextFromPath("DELETE", path));
  }

  /** Interfaces with their addresses; null while the container is stopped. */
  async interfaces(node: string, vmid: number): Promise<LxcInterface[] | null> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/lxc/${vmid}/interfaces` }, lxcInterfacesSchema);
  }

  // Proxmox checks only the running state before a lifecycle task; the worker takes the config
  // file lock and checks the guest's lock first thing, before it acts. So a task refused on a
  // lock did nothing and is sent again like a synchronous lock refusal (which the transport
  // retries), under the same policy: `lockAttempts` tasks at most, the lock backoff between them.
  private async lifecycle(node: string, vmid: number, action: "start" | "stop" | "shutdown" | "reboot", params: FormParams, options: TaskCallOptions): Promise<TaskResult> {
    const path = `${apiPath`/nodes/${node}/lxc/${vmid}/status/`}${action}`;
    const origin = contextFromPath("POST", path);
    const state: RetryState = { idempotent: false, tries: 0, lockTries: 0, reauthed: false, canReauth: false };
    for (;;) {
      state.tries += 1;
      const upid = await this.http.call({ method: "POST", path, params }, z.string());
      try {
        return await this.tasks.wait(upid, options.wait, origin);
      } catch (error) {
        const decision = error instanceof ProxmoxLockedError ? retryDecision(error, state, this.http.retry) : undefined;
        if (decision?.retry !== true) throw error;
        state.lockTries += 1;
        this.http.log(`retry POST ${path} in ${decision.delayMs} ms (lock, task ${upid}): ${error instanceof Error ? error.message : String(error)}`);
        await sleep(decision.delayMs);
      }
    }
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
