/**
 * From an environment's `homelab:proxmox` settings to a client: which
 * credentials (read from their references at this moment), which TLS
 * verification, CI's refusal of `tls.insecure`. The one way to connect, for
 * the CLI's inventory snapshot and for the provider plugin alike.
 */
import type { EnvironmentConfig, ProxmoxConfig } from "../config/environment.ts";
import { envFileOf } from "../config/homelab-dir.ts";
import { readSecretRef, SecretRefError } from "../config/secret-ref.ts";
import type { ProxmoxCredentials } from "./auth.ts";
import { createProxmoxClient } from "./client.ts";
import type { ProxmoxClient, ProxmoxClientOptions } from "./client.ts";
import { ProxmoxConfigError } from "./errors.ts";

/** Whose credentials: the environment's usual ones, or root@pam itself (features only it may set). */
export type CredentialPurpose = "default" | "root";

/** True when root@pam's password is configured, so root-only calls are possible. */
export function rootAvailable(p: ProxmoxConfig): boolean {
  return p.username === "root@pam" && p.password !== undefined;
}

/** The credentials for a purpose: the token when there is one (unless root is wanted and available), else the user's password. */
function proxmoxAuth(p: ProxmoxConfig, purpose: CredentialPurpose, envFile: string, env: NodeJS.ProcessEnv): ProxmoxCredentials {
  const useToken = p.tokenId !== undefined && !(purpose === "root" && rootAvailable(p));
  if (useToken && p.tokenId !== undefined) return { tokenId: p.tokenId, tokenSecret: readSecretRef(p.tokenSecret, "token_secret", envFile, env) };
  if (p.username !== undefined) return { username: p.username, password: readSecretRef(p.password, "password", envFile, env) };
  throw new SecretRefError(`environment file ${envFile} has no Proxmox credentials`, "set token_id with token_secret_file, or username with password_file, under homelab:proxmox");
}

/** TLS options from the settings: a pinned fingerprint, a CA file, or (explicitly) none. */
function proxmoxTls(p: ProxmoxConfig): NonNullable<ProxmoxClientOptions["tls"]> {
  return { ...(p.fingerprint ? { fingerprint: p.fingerprint } : {}), ...(p.caFile ? { caFile: p.caFile } : {}), insecure: p.insecure };
}

/** How to connect, besides the environment's settings. */
export interface ConnectOptions {
  /** Whose credentials (default: the environment's usual ones). */
  purpose?: CredentialPurpose;
  /** The variables `*_env` references are read from. */
  processEnv: NodeJS.ProcessEnv;
  /** CI mode: `tls.insecure` is refused. */
  ci: boolean;
  /** Receives the client's request lines and warnings (without one, warnings become process warnings). */
  logger?: (line: string) => void;
  /** Retry and timeout tuning (tests). */
  tuning?: Pick<ProxmoxClientOptions, "retry" | "timeoutMs" | "connections">;
}

/**
 * A client for an environment's Proxmox API. Throws ProxmoxConfigError when
 * the environment has no `homelab:proxmox` settings, SecretRefError when a
 * credential cannot be read (each with the setting to fix; never a value),
 * and what createProxmoxClient throws for bad TLS settings.
 */
export function connectProxmox(env: Pick<EnvironmentConfig, "name" | "file" | "proxmox">, o: ConnectOptions): ProxmoxClient {
  const file = envFileOf(env);
  const p = env.proxmox;
  if (!p) throw new ProxmoxConfigError(`environment ${env.name} has no homelab:proxmox settings, so there is nothing to deploy to`, `add homelab:proxmox (endpoint and credentials) to ${file}, or try the sandbox: homelab sandbox start, then --env sandbox`);
  return createProxmoxClient({
    endpoint: p.endpoint,
    auth: proxmoxAuth(p, o.purpose ?? "default", file, o.processEnv),
    tls: proxmoxTls(p),
    ci: o.ci,
    ...(o.logger ? { logger: o.logger } : {}),
    ...o.tuning,
  });
}

/** Whether a line of the client's logger is a request or retry line (shown with --verbose) rather than a warning (always shown). */
export function isRequestLogLine(line: string): boolean {
  return /^(GET|POST|PUT|DELETE|retry) /.test(line);
}
