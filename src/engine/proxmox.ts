/**
 * The engine's own Proxmox client, for the one inventory snapshot a run
 * plans against. Credentials come from the files or variables the
 * environment references; a value never appears in a message.
 */
import type { EnvironmentConfig } from "../config/environment.ts";
import { SecretRefError } from "../config/secret-ref.ts";
import type { ProxmoxCredentials } from "../proxmox/auth.ts";
import { createProxmoxClient } from "../proxmox/client.ts";
import { proxmoxAuth, proxmoxTls } from "../proxmox/connect.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { EngineSetupError } from "./settings.ts";
import { envFileOf } from "../config/homelab-dir.ts";

/** A client for the environment's Proxmox API; errors say which setting to fix. */
export function connectProxmox(env: EnvironmentConfig, processEnv: NodeJS.ProcessEnv, ci: boolean, log?: (line: string) => void): ProxmoxClient {
  const file = envFileOf(env);
  const p = env.proxmox;
  if (!p) throw new EngineSetupError(`environment ${env.name} has no homelab:proxmox settings, so there is nothing to deploy to`, `add homelab:proxmox (endpoint and credentials) to ${file}, or try the sandbox: homelab sandbox start, then --env sandbox`);
  let auth: ProxmoxCredentials;
  try {
    auth = proxmoxAuth(p, "default", file, processEnv);
  } catch (e) {
    if (e instanceof SecretRefError) throw new EngineSetupError(e.message, e.hint);
    throw e;
  }
  return createProxmoxClient({
    endpoint: p.endpoint,
    auth,
    tls: proxmoxTls(p),
    ci,
    // Request lines only when asked; the one warning (TLS verification off) always.
    logger: (line) => {
      if (log) log(line);
      else if (!/^(GET|POST|PUT|DELETE|retry) /.test(line)) process.stderr.write(`homelab: ${line}\n`);
    },
  });
}
