/**
 * From an environment's `homelab:proxmox` settings to client options: which
 * credentials (read from their references at this moment) and which TLS
 * verification. Shared by the engine (inventory) and the provider plugin.
 */
import type { ProxmoxConfig } from "../config/environment.ts";
import { readSecretRef, SecretRefError } from "../config/secret-ref.ts";
import type { ProxmoxCredentials } from "./auth.ts";
import type { ProxmoxClientOptions } from "./client.ts";

/** Whose credentials: the environment's usual ones, or root@pam itself (features only it may set). */
export type CredentialPurpose = "default" | "root";

/** True when root@pam's password is configured, so root-only calls are possible. */
export function rootAvailable(p: ProxmoxConfig): boolean {
  return p.username === "root@pam" && p.password !== undefined;
}

/** The credentials for a purpose: the token when there is one (unless root is wanted and available), else the user's password. */
export function proxmoxAuth(p: ProxmoxConfig, purpose: CredentialPurpose, envFile: string, env: NodeJS.ProcessEnv): ProxmoxCredentials {
  const useToken = p.tokenId !== undefined && !(purpose === "root" && rootAvailable(p));
  if (useToken && p.tokenId !== undefined) return { tokenId: p.tokenId, tokenSecret: readSecretRef(p.tokenSecret, "token_secret", envFile, env) };
  if (p.username !== undefined) return { username: p.username, password: readSecretRef(p.password, "password", envFile, env) };
  throw new SecretRefError(`environment file ${envFile} has no Proxmox credentials`, "set token_id with token_secret_file, or username with password_file, under homelab:proxmox");
}

/** TLS options from the settings: a pinned fingerprint, a CA file, or (explicitly) none. */
export function proxmoxTls(p: ProxmoxConfig): NonNullable<ProxmoxClientOptions["tls"]> {
  return { ...(p.fingerprint ? { fingerprint: p.fingerprint } : {}), ...(p.caFile ? { caFile: p.caFile } : {}), insecure: p.insecure };
}
