/** Cluster-wide calls: the resource list (one request for every node, guest and storage) and id allocation. */
import { z } from "zod";
import type { ProxmoxHttp } from "./http.ts";
import { flag, num } from "./schema.ts";

const resourceSchema = z.object({
  id: z.string(),
  type: z.string(),
  node: z.string().optional(),
  status: z.string().optional(),
  name: z.string().optional(),
  vmid: num.optional(),
  cpu: num.optional(),
  maxcpu: num.optional(),
  mem: num.optional(),
  maxmem: num.optional(),
  disk: num.optional(),
  maxdisk: num.optional(),
  uptime: num.optional(),
  storage: z.string().optional(),
  content: z.string().optional(),
  plugintype: z.string().optional(),
  shared: flag.optional(),
  tags: z.string().optional(),
  template: flag.optional(),
  lock: z.string().optional(),
  pool: z.string().optional(),
});

/** One entry of `GET /cluster/resources`. */
export type ClusterResource = z.output<typeof resourceSchema>;

/** Resource kinds `GET /cluster/resources` can filter on. */
export type ResourceType = "vm" | "storage" | "node" | "sdn";

/** Cluster calls. */
export class ClusterApi {
  private readonly http: ProxmoxHttp;

  constructor(http: ProxmoxHttp) {
    this.http = http;
  }

  /** Every node, guest and storage of the cluster in one request (`vm` covers lxc and qemu). */
  async resources(options: { type?: ResourceType } = {}): Promise<ClusterResource[]> {
    return this.http.call({ method: "GET", path: "/cluster/resources", params: { type: options.type } }, z.array(resourceSchema));
  }

  /** The next free guest id (or checks that `vmid` is free: a taken id raises ProxmoxAlreadyExistsError). */
  async nextId(vmid?: number): Promise<number> {
    return this.http.call({ method: "GET", path: "/cluster/nextid", params: { vmid } }, num.pipe(z.number().int()));
  }
}
