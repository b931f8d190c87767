/**
 * A deliberately plain HTTPS client for the sandbox tests (node:https, not
 * the project's Proxmox client), so the tests check the wire format itself:
 * status codes, reason phrases, JSON bodies.
 */
import { Agent, request } from "node:https";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox, SandboxOptions } from "../../src/sandbox/server.ts";

/** One answer, with the reason phrase Proxmox clients must read. */
export interface Answer {
  status: number;
  reason: string;
  body: unknown;
  text: string;
}

/** How a request authenticates. */
export type Credentials = { token: string } | { ticket: string; csrf?: string } | "none";

/** Request options for `call`. */
export interface CallOptions {
  form?: Record<string, string>;
  json?: unknown;
  auth?: Credentials;
  raw?: string;
}

/** A client bound to one sandbox. */
export class TestClient {
  readonly sandbox: RunningSandbox;
  private readonly agent: Agent;

  constructor(sandbox: RunningSandbox) {
    this.sandbox = sandbox;
    this.agent = new Agent({ ca: sandbox.caPem, keepAlive: false });
  }

  /** Calls `/api2/json` + path (or an absolute path starting with `/sandbox`). */
  call(method: string, path: string, options: CallOptions = {}): Promise<Answer> {
    const full = path.startsWith("/sandbox") ? path : `/api2/json${path}`;
    const headers: Record<string, string> = {};
    const auth = options.auth ?? { token: this.sandbox.token };
    if (auth !== "none" && "token" in auth) headers["authorization"] = `PVEAPIToken=${auth.token}`;
    if (auth !== "none" && "ticket" in auth) {
      headers["cookie"] = `PVEAuthCookie=${encodeURIComponent(auth.ticket)}`;
      if (auth.csrf !== undefined) headers["csrfpreventiontoken"] = auth.csrf;
    }
    let body: string | undefined;
    if (options.form) {
      body = new URLSearchParams(options.form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["content-type"] = "application/json";
    } else if (options.raw !== undefined) {
      body = options.raw;
    }
    return new Promise((resolve, reject) => {
      const url = new URL(full, this.sandbox.url);
      const req = request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text === "" ? undefined : JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? "", body: parsed, text });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Calls and expects a 200; returns `data`. */
  async ok(method: string, path: string, options: CallOptions = {}): Promise<unknown> {
    const a = await this.call(method, path, options);
    if (a.status !== 200) throw new Error(`${method} ${path}: ${a.status} ${a.reason} ${a.text}`);
    return (a.body as { data: unknown }).data;
  }

  /** Polls a task until it stops; returns its final status. */
  async waitTask(node: string, upid: unknown, timeoutMs = 10_000): Promise<TaskStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = (await this.ok("GET", `/nodes/${node}/tasks/${encodeURIComponent(String(upid))}/status`)) as TaskStatus;
      if (st.status === "stopped") return st;
      if (Date.now() > deadline) throw new Error(`task ${String(upid)} still running`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Runs a task to its end and resolves to its milliseconds, request to stop; fails on anything but OK. */
  async timedTask(node: string, method: string, path: string, form: Record<string, string> = {}, timeoutMs = 60 * 60_000): Promise<number> {
    const t = Date.now();
    const st = await this.waitTask(node, await this.ok(method, path, { form }), timeoutMs);
    if (st.exitstatus !== "OK") throw new Error(`${method} ${path}: ${st.exitstatus ?? ""}`);
    return Date.now() - t;
  }

  /** Creates a container and waits for the task; returns the final task status. */
  async createCt(node: string, vmid: number, extra: Record<string, string> = {}): Promise<TaskStatus> {
    const upid = await this.ok("POST", `/nodes/${node}/lxc`, {
      form: { vmid: String(vmid), ostemplate: TEMPLATE, rootfs: "local-lvm:8", unprivileged: "1", net0: "name=eth0,bridge=vmbr0,ip=dhcp", ...extra },
    });
    return this.waitTask(node, upid);
  }

  /** Closes the client's connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** A template every sandbox node has. */
export const TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/** A task's status. */
export interface TaskStatus {
  upid: string;
  status: string;
  exitstatus?: string;
  type: string;
  id: string;
  user: string;
  node: string;
}

/** Runs `fn` against a fresh sandbox (fast tasks unless told), then closes it. */
export async function withSandbox(options: SandboxOptions, fn: (client: TestClient, sandbox: RunningSandbox) => Promise<void>): Promise<void> {
  const sandbox = await startSandboxServer({ taskDurationMs: 20, ...options });
  const client = new TestClient(sandbox);
  try {
    await fn(client, sandbox);
  } finally {
    client.close();
    await sandbox.close();
  }
}

/** Waits a little. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
