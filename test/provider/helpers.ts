/** A sandbox, a temporary homelab repository whose environment points at it, and a provider over both. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createProxmoxClient } from "../../src/proxmox/client.ts";
import type { ProxmoxClient } from "../../src/proxmox/client.ts";
import { HomelabProvider } from "../../src/provider/provider.ts";
import type { HomelabProviderOptions } from "../../src/provider/provider.ts";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox, SandboxOptions } from "../../src/sandbox/server.ts";

/** Fast polling and short waits for the sandbox. */
export const FAST: NonNullable<HomelabProviderOptions["timeouts"]> = { taskMs: 10_000, addressMs: 5_000, shutdownSec: 5, pollMs: 25, taskPollMs: 10 };
const FAST_RETRY = { baseDelayMs: 5, maxDelayMs: 40, lockDelayMs: 40 };

/** A running test world. */
export interface World {
  sandbox: RunningSandbox;
  root: string;
  env: Record<string, string>;
  /** A provider over the sandbox (a new one per call shares nothing with the others). */
  provider(options?: Partial<HomelabProviderOptions>): HomelabProvider;
  /** A client of the test's own, to look at (and change) the sandbox behind the provider's back. */
  admin: ProxmoxClient;
  /** Containers whose hostname is `hostname`. */
  containersNamed(hostname: string): Promise<number[]>;
  close(): Promise<void>;
}

/** Starts a sandbox and writes `Pulumi.test.yaml` (token auth, or root@pam password too with `rootPassword`). */
export async function startWorld(options: { sandbox?: SandboxOptions; rootPassword?: boolean; envName?: string } = {}): Promise<World> {
  const sandbox = await startSandboxServer({ taskDurationMs: 20, dhcpDelayMs: 100, ...options.sandbox });
  const root = await mkdtemp(join(tmpdir(), "homelab-provider-"));
  const envName = options.envName ?? "test";
  await writeFile(join(root, "token-secret"), sandbox.tokenSecret + "\n", { mode: 0o600 });
  await writeFile(join(root, "root-password"), sandbox.rootPassword + "\n", { mode: 0o600 });
  const lines = [
    "config:",
    "  homelab:environment: development",
    "  homelab:proxmox:",
    `    endpoint: ${sandbox.url}`,
    `    token_id: ${JSON.stringify(sandbox.tokenId)}`,
    "    token_secret_file: token-secret",
    `    fingerprint: ${JSON.stringify(sandbox.fingerprint)}`,
  ];
  if (options.rootPassword) lines.push("    username: root@pam", "    password_file: root-password");
  await writeFile(join(root, `Pulumi.${envName}.yaml`), lines.join("\n") + "\n");
  const env = { HOMELAB_ROOT: root, HOMELAB_ENV: envName };
  const admin = createProxmoxClient({ endpoint: sandbox.url, auth: { tokenId: sandbox.tokenId, tokenSecret: sandbox.tokenSecret }, tls: { fingerprint: sandbox.fingerprint }, retry: FAST_RETRY });
  const providers: HomelabProvider[] = [];
  return {
    sandbox,
    root,
    env,
    admin,
    provider(over = {}) {
      const p = new HomelabProvider({ env, timeouts: FAST, client: { retry: FAST_RETRY }, ...over });
      providers.push(p);
      return p;
    },
    async containersNamed(hostname) {
      const all = await admin.cluster.resources({ type: "vm" });
      return all.filter((r) => r.type === "lxc" && r.name === hostname && r.vmid !== undefined).map((r) => r.vmid ?? 0);
    },
    async close() {
      await Promise.all(providers.map((p) => p.context.close()));
      await admin.close();
      await sandbox.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export { URN, inputs } from "./fixtures.ts";
