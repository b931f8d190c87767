/** What the API handlers see: the sandbox state, the caller and checked parameters. */
import type { Auth } from "../auth.ts";
import type { Cluster } from "../cluster.ts";
import type { ParamSpec, Scalar } from "../params.ts";
import type { Tasks } from "../tasks.ts";

/** The state all handlers share. */
export interface SandboxState {
  cluster: Cluster;
  tasks: Tasks;
  auth: Auth;
  clock: () => number;
  /** How long a request waits for a busy config file lock (Proxmox: 10 s). */
  lockTimeoutMs: number;
}

/** One authenticated call. */
export interface Call {
  params: Record<string, Scalar>;
  /** `root@pam` for tickets, `root@pam!homelab` for the token. */
  user: string;
  state: SandboxState;
}

/** A handler's answer: `data`, plus top-level attributes such as `total`. */
export interface Reply {
  data: unknown;
  attributes?: Record<string, unknown>;
}

/** One served endpoint. */
export interface Endpoint {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  params: ParamSpec;
  /** Served without authentication (only `POST /access/ticket`). */
  public?: boolean;
  handle(call: Call): Promise<Reply>;
}
