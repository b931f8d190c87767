/** Cluster nodes: list, status, and node config (the notes shown in the web UI). */
import { z } from "zod";
import { apiPath } from "./http.ts";
import type { ProxmoxHttp } from "./http.ts";
import { WRITE } from "./retry.ts";
import { num } from "./schema.ts";

const nodeSchema = z.object({
  node: z.string(),
  status: z.string().optional(),
  cpu: num.optional(),
  maxcpu: num.optional(),
  mem: num.optional(),
  maxmem: num.optional(),
  uptime: num.optional(),
  ssl_fingerprint: z.string().optional(),
});

/** One entry of `GET /nodes`. */
export type NodeSummary = z.output<typeof nodeSchema>;

const nodeStatusSchema = z.object({
  cpu: num,
  cpuinfo: z.object({ cpus: num, cores: num.optional(), sockets: num.optional(), model: z.string().optional() }),
  memory: z.object({ total: num, used: num, free: num, available: num.optional() }),
  uptime: num.optional(),
  pveversion: z.string().optional(),
  loadavg: z.array(z.union([z.string(), z.number()])).optional(),
  rootfs: z.object({ total: num, used: num, free: num, avail: num.optional() }).optional(),
});

/** `GET /nodes/{node}/status`. */
export type NodeStatus = z.output<typeof nodeStatusSchema>;

const nodeConfigSchema = z.object({
  description: z.string().optional(),
  digest: z.string().optional(),
});

/** The parts of `GET /nodes/{node}/config` the tool uses. */
export type NodeConfig = z.output<typeof nodeConfigSchema>;

/** Node calls. */
export class NodesApi {
  private readonly http: ProxmoxHttp;

  constructor(http: ProxmoxHttp) {
    this.http = http;
  }

  /** All cluster nodes with their load. */
  async list(): Promise<NodeSummary[]> {
    return this.http.call({ method: "GET", path: "/nodes" }, z.array(nodeSchema));
  }

  /** Memory, CPU and version of one node. */
  async status(node: string): Promise<NodeStatus> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/status` }, nodeStatusSchema);
  }

  /** The node's config: its notes (`description`) and the config digest. */
  async config(node: string): Promise<NodeConfig> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/config` }, nodeConfigSchema);
  }

  /** Sets the node's notes; an empty text deletes them. `digest` refuses the write if the config changed since it was read. */
  async setNotes(node: string, notes: string, options: { digest?: string } = {}): Promise<void> {
    const params = notes === "" ? { delete: "description", digest: options.digest } : { description: notes, digest: options.digest };
    await this.http.call({ method: "PUT", path: apiPath`/nodes/${node}/config`, params, policy: WRITE }, z.null());
  }
}
