/**
 * Where the plugin's settings come from. In this SDK version `configure`
 * ignores provider config, so the plugin reads its environment, which the
 * engine sets on the Pulumi workspace: `HOMELAB_ROOT` (the homelab
 * repository), `HOMELAB_ENV` (the environment name) and `HOMELAB_CI`. The
 * Proxmox credentials are read from the file or variable the environment
 * references when the first client is built, so they are never resource
 * inputs, never in the state, and a rotated token is used by later runs.
 */
import { loadEnvironment } from "../config/environment.ts";
import type { EnvironmentConfig, ProxmoxConfig } from "../config/environment.ts";
import { connectProxmox, rootAvailable as rootAvailableIn } from "../proxmox/connect.ts";
import { SecretRefError } from "../config/secret-ref.ts";
import type { ProxmoxClient, ProxmoxClientOptions } from "../proxmox/client.ts";
import { ProviderError } from "./errors.ts";
import { envFileOf } from "../config/homelab-dir.ts";
import { DataSafety, isDeployId, newDeployId } from "../data/safety.ts";

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
  private ownDeployId: string | undefined;

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

  /**
   * The run's deploy id (`HOMELAB_DEPLOY_ID`, set by the CLI per run): the snapshots and
   * backups taken before destructive steps are named after it. A plugin started by hand
   * makes one for its own lifetime.
   */
  get deployId(): string {
    const given = this.env.HOMELAB_DEPLOY_ID ?? "";
    if (isDeployId(given)) return given;
    this.ownDeployId ??= newDeployId();
    return this.ownDeployId;
  }

  /** `HOMELAB_DELETE_DATA=true` (destroy --delete-data): deleting a container deletes its volumes too, after a backup. */
  get deleteData(): boolean {
    return TRUE.test(this.env.HOMELAB_DELETE_DATA ?? "");
  }

  /** The safety steps (snapshots and backups before destructive steps) over a client, with the environment's settings. */
  safety(client: ProxmoxClient, say: (message: string) => void): DataSafety {
    const { backups } = this.loadEnvironment();
    return new DataSafety(client, { backupStorage: backups.storage, keep: backups.keep, deployId: this.deployId }, say);
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
      throw new ProviderError(`environment "${env.name}" has no homelab:proxmox settings`, `add homelab:proxmox (endpoint and credentials) to ${envFileOf(env)}`);
    }
    return env.proxmox;
  }

  /** Who the plugin acts as; reads no secret. */
  auth(): AuthSummary {
    const p = this.proxmoxConfig();
    const rootAvailable = rootAvailableIn(p);
    if (p.tokenId !== undefined) return { identity: p.tokenId, kind: "token", rootAvailable };
    return { identity: p.username ?? "nobody", kind: "ticket", rootAvailable };
  }

  /** The client for a purpose; built (and its secret read) on first use, then cached for the process. */
  client(purpose: ClientPurpose = "default"): ProxmoxClient {
    const wanted: ClientPurpose = purpose === "root" && this.auth().rootAvailable && this.auth().kind === "token" ? "root" : "default";
    const cached = this.clients.get(wanted);
    if (cached) return cached;
    // Checked here first, so a missing section is reported in the plugin's words.
    this.proxmoxConfig();
    const debug = TRUE.test(this.env.HOMELAB_DEBUG ?? "");
    let client: ProxmoxClient;
    try {
      client = connectProxmox(this.loadEnvironment(), {
        purpose: wanted,
        processEnv: this.env,
        ci: this.ci,
        // Request lines only on demand (without a logger the client's warnings go to process warnings, on stderr):
        // stdout belongs to the plugin protocol.
        ...(debug ? { logger: (line: string) => void process.stderr.write(`homelab provider: ${line}\n`) } : {}),
        ...(this.clientOptions ? { tuning: this.clientOptions } : {}),
      });
    } catch (e) {
      if (e instanceof SecretRefError) throw new ProviderError(e.message, e.hint);
      throw e;
    }
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
