/**
 * Where the plugin's settings come from. In this SDK version `configure`
 * ignores provider config, so the plugin reads its environment, which the
 * engine sets on the Pulumi workspace: `HOMELAB_ROOT` (the homelab
 * repository), `HOMELAB_ENV` (the environment name) and `HOMELAB_CI`. The
 * Proxmox credentials are read from the file or variable the environment
 * references when the first client is built, so they are never resource
 * inputs, never in the state, and a rotated token is used by later runs.
 */
import { readFileSync } from "node:fs";
import { loadEnvironment } from "../config/environment.ts";
import type { EnvironmentConfig, ProxmoxConfig, SecretRef } from "../config/environment.ts";
import type { ProxmoxCredentials } from "../proxmox/auth.ts";
import { createProxmoxClient } from "../proxmox/client.ts";
import type { ProxmoxClient, ProxmoxClientOptions } from "../proxmox/client.ts";
import { ProviderError } from "./errors.ts";

/** Which credentials an operation needs: the environment's usual ones, or `root@pam` itself (feature flags). */
export type ClientPurpose = "default" | "root";

/** How the plugin authenticates, as far as the environment file says (no secret is read). */
export interface AuthSummary {
  /** The identity used for ordinary calls: a token id or a username. */
  identity: string;
  kind: "token" | "ticket";
  /** Whether `root@pam` password credentials are configured (needed for features other than nesting). */
  rootAvailable: boolean;
}

/** Options of ProviderContext; tests pass their own environment variables and client tuning. */
export interface ProviderContextOptions {
  /** The variables to read (`process.env` in the plugin). */
  env: NodeJS.ProcessEnv;
  /** Extra client options (retry, timeouts), for tests. */
  client?: Pick<ProxmoxClientOptions, "retry" | "timeoutMs" | "connections">;
}

const TRUE = /^(?:1|true|yes)$/i;

/** The plugin's environment, loaded once, and one Proxmox client per purpose, built on first use. */
export class ProviderContext {
  private readonly env: NodeJS.ProcessEnv;
  private readonly clientOptions: ProviderContextOptions["client"];
  private environment: EnvironmentConfig | undefined;
  private readonly clients = new Map<ClientPurpose, ProxmoxClient>();

  constructor(options: ProviderContextOptions) {
    this.env = options.env;
    this.clientOptions = options.client;
  }

  /** True in CI mode (`HOMELAB_CI=true`): TLS verification may not be turned off. */
  get ci(): boolean {
    return TRUE.test(this.env.HOMELAB_CI ?? "");
  }

  /** `HOMELAB_VERBOSE=true`: build and provisioning output is passed on, not just status lines. */
  get verbose(): boolean {
    return TRUE.test(this.env.HOMELAB_VERBOSE ?? "");
  }

  /** The variables the plugin runs with (secrets of services are read from here first, as the CLI does). */
  get processEnv(): NodeJS.ProcessEnv {
    return this.env;
  }

  /** The homelab repository (HOMELAB_ROOT) and the environment's name (HOMELAB_ENV). */
  location(): { root: string; envName: string } {
    const root = this.env.HOMELAB_ROOT;
    const name = this.env.HOMELAB_ENV;
    if (!root || !name) {
      throw new ProviderError(
        `the homelab provider needs HOMELAB_ROOT and HOMELAB_ENV (missing: ${[!root && "HOMELAB_ROOT", !name && "HOMELAB_ENV"].filter(Boolean).join(", ")})`,
        "run it through `homelab deploy`, which sets them on the Pulumi workspace; when running Pulumi by hand, export HOMELAB_ROOT=<repo> HOMELAB_ENV=<env>",
      );
    }
    return { root, envName: name };
  }

  /** The environment named by HOMELAB_ENV in the repository HOMELAB_ROOT. */
  loadEnvironment(): EnvironmentConfig {
    if (this.environment) return this.environment;
    const { root, envName: name } = this.location();
    const { env, diagnostics } = loadEnvironment(root, name);
    if (!env) {
      const first = diagnostics.find((d) => d.severity === "error") ?? diagnostics[0];
      const where = first ? `${first.file}:${first.line}:${first.col}: ${first.message}` : `environment "${name}" could not be loaded`;
      throw new ProviderError(`environment "${name}": ${where}`, first?.hint ?? "run `homelab validate --env " + name + "` to see every problem");
    }
    this.environment = env;
    return env;
  }

  /** The environment's Proxmox settings (an error naming the file when there are none). */
  proxmoxConfig(): ProxmoxConfig {
    const env = this.loadEnvironment();
    if (!env.proxmox) {
      throw new ProviderError(`environment "${env.name}" has no homelab:proxmox settings`, `add homelab:proxmox (endpoint and credentials) to ${env.file ?? `Pulumi.${env.name}.yaml`}`);
    }
    return env.proxmox;
  }

  /** Who the plugin acts as; reads no secret. */
  auth(): AuthSummary {
    const p = this.proxmoxConfig();
    const rootAvailable = p.username === "root@pam" && p.password !== undefined;
    if (p.tokenId !== undefined) return { identity: p.tokenId, kind: "token", rootAvailable };
    return { identity: p.username ?? "nobody", kind: "ticket", rootAvailable };
  }

  /** The client for a purpose; built (and its secret read) on first use, then cached for the process. */
  client(purpose: ClientPurpose = "default"): ProxmoxClient {
    const wanted: ClientPurpose = purpose === "root" && this.auth().rootAvailable && this.auth().kind === "token" ? "root" : "default";
    const cached = this.clients.get(wanted);
    if (cached) return cached;
    const p = this.proxmoxConfig();
    const file = this.environment?.file ?? `Pulumi.${this.env.HOMELAB_ENV ?? "<env>"}.yaml`;
    let auth: ProxmoxCredentials;
    if (wanted === "default" && p.tokenId !== undefined) {
      auth = { tokenId: p.tokenId, tokenSecret: readSecret(p.tokenSecret, "token_secret", file, this.env) };
    } else if (p.username !== undefined) {
      auth = { username: p.username, password: readSecret(p.password, "password", file, this.env) };
    } else {
      throw new ProviderError(`environment file ${file} has no Proxmox credentials`, "set token_id with token_secret_file, or username with password_file, under homelab:proxmox");
    }
    const debug = TRUE.test(this.env.HOMELAB_DEBUG ?? "");
    const client = createProxmoxClient({
      endpoint: p.endpoint,
      auth,
      tls: { ...(p.fingerprint ? { fingerprint: p.fingerprint } : {}), ...(p.caFile ? { caFile: p.caFile } : {}), insecure: p.insecure },
      ci: this.ci,
      // Request lines only on demand (without a logger the client's warnings go to process warnings, on stderr):
      // stdout belongs to the plugin protocol.
      ...(debug ? { logger: (line: string) => void process.stderr.write(`homelab provider: ${line}\n`) } : {}),
      ...this.clientOptions,
    });
    this.clients.set(wanted, client);
    return client;
  }

  /** Closes every client (their connection pools). */
  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}

/** Reads a referenced secret: the variable when it is set, else the file. The value never appears in an error. */
export function readSecret(ref: SecretRef | undefined, what: string, envFile: string, env: NodeJS.ProcessEnv): string {
  if (ref?.env !== undefined) {
    const value = env[ref.env];
    if (value !== undefined && value !== "") return value.trim();
    if (ref.file === undefined) throw new ProviderError(`${what}_env names ${ref.env}, which is not set`, `export ${ref.env}, or use ${what}_file in ${envFile}`);
  }
  if (ref?.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(ref.file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      throw new ProviderError(`cannot read ${what}_file ${ref.file} (${code})`, `create it (mode 0600) with the ${what.replace("_", " ")} on one line, or fix the path in ${envFile}`);
    }
    const value = text.trim();
    if (value === "") throw new ProviderError(`${what}_file ${ref.file} is empty`, `put the ${what.replace("_", " ")} in it on one line`);
    return value;
  }
  throw new ProviderError(`no ${what} is referenced`, `add ${what}_file or ${what}_env under homelab:proxmox in ${envFile}`);
}
