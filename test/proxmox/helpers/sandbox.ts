/** Starts the project's sandbox and builds clients for it. */
import { parseApiToken } from "../../../src/proxmox/auth.ts";
import { createProxmoxClient } from "../../../src/proxmox/client.ts";
import type { ProxmoxClient, ProxmoxClientOptions } from "../../../src/proxmox/client.ts";
import { startSandboxServer } from "../../../src/sandbox/server.ts";
import type { RunningSandbox, SandboxOptions } from "../../../src/sandbox/server.ts";

export type { RunningSandbox };

/** A template every sandbox node has on `local`. */
export const TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/** Polling fast enough for short sandbox tasks. */
export const FAST_WAIT = { initialDelayMs: 10, maxDelayMs: 50, timeoutMs: 20_000 };

/** Short retry delays so retry tests stay quick. */
export const FAST_RETRY = { baseDelayMs: 5, maxDelayMs: 40, lockDelayMs: 50 };

/** A sandbox with quick tasks unless told otherwise. */
export function sandbox(options: SandboxOptions = {}): Promise<RunningSandbox> {
  return startSandboxServer({ port: 0, taskDurationMs: 20, ...options });
}

/** A client using the sandbox's API token and pinning its certificate. */
export function tokenClient(sb: RunningSandbox, over: Partial<ProxmoxClientOptions> = {}): ProxmoxClient {
  return createProxmoxClient({
    endpoint: sb.url,
    auth: parseApiToken(sb.token),
    tls: { fingerprint: sb.fingerprint },
    retry: FAST_RETRY,
    ...over,
  });
}

/** A client logged in as root@pam with a ticket. */
export function ticketClient(sb: RunningSandbox, over: Partial<ProxmoxClientOptions> = {}): ProxmoxClient {
  return tokenClient(sb, { auth: { username: "root@pam", password: sb.rootPassword }, ...over });
}

/** Requests the sandbox counted for one route template. */
export function count(sb: RunningSandbox, route: string): number {
  return sb.counters.get()[route] ?? 0;
}

/** The smallest valid create: the template and a root disk on `local-lvm` (`local` holds no container disks). */
export const CT = { ostemplate: TEMPLATE, rootfs: { storage: "local-lvm", sizeGb: 4 } } as const;
