/**
 * The shapes of a resolved environment, apart from the loader that makes them,
 * so built-in defaults and other light modules can use them without the schema.
 */
import type { YamlSource } from "./source.ts";
import type { SecretCommand } from "./secret-command.ts";
import type { DockerPins } from "../provision/docker-pins.ts";

/** Kinds of environment; `production` turns on the production guards. */
export const ENVIRONMENT_KINDS = ["production", "staging", "development", "sandbox"] as const;
export type EnvironmentKind = (typeof ENVIRONMENT_KINDS)[number];

/** A secret referenced from an environment file: a file path or a variable name. */
export interface SecretRef {
  file?: string;
  env?: string;
}

/** Proxmox connection settings of an environment, paths made absolute. */
export interface ProxmoxConfig {
  endpoint: string;
  tokenId?: string;
  tokenSecret?: SecretRef;
  username?: string;
  password?: SecretRef;
  fingerprint?: string;
  caFile?: string;
  insecure: boolean;
}

/** An image registry defined in an environment. */
export interface RegistryConfig {
  name: string;
  url: string;
  insecure: boolean;
  username?: string;
  password?: SecretRef;
}

/** Settings of `homelab monitor` (`homelab:monitor`), paths made absolute; defaults are the monitor's. */
export interface MonitorConfig {
  listen: string | undefined;
  concurrency: number | undefined;
  backoffSec: number | undefined;
  maxBackoffSec: number | undefined;
  historyMaxKb: number | undefined;
  /** The status page's token (required to listen beyond loopback). */
  token?: SecretRef;
  webhook: { kind: "ntfy" | "gotify" | "json"; url: string; token?: SecretRef } | undefined;
}

/** A Pulumi ESC environment the environment file imports, and where. */
export interface EscImport {
  name: string;
  line: number;
  col: number;
}

/** `homelab:backend`, checked (backend-setting.ts); references made absolute. */
export interface BackendConfig {
  url: string;
  /** The URL scheme, lower case (`postgres`, `s3`, ...). */
  scheme: string;
  password?: SecretRef;
  accessKeyId?: SecretRef;
  secretAccessKey?: SecretRef;
  passphrase?: SecretRef;
}

/** An environment (`Pulumi.<env>.yaml`), resolved. */
export interface EnvironmentConfig {
  name: string;
  file: string | undefined;
  kind: EnvironmentKind;
  production: boolean;
  clusterName: string | undefined;
  proxmox: ProxmoxConfig | undefined;
  /** Node name → tags, with the `tierN_hosts` shorthands merged in. */
  hosts: Record<string, string[]>;
  registries: Record<string, RegistryConfig>;
  defaults: { memory: number; cores: number; disk: number; swap: number; storage: string; templateStorage: string; bridge: string };
  /** Pulumi ESC environments imported by this stack config. */
  escEnvironments: EscImport[];
  /** `homelab:secrets_command`: fetches every secret no other source provides (`{service}`, `{key}`, `{env}` filled in). */
  secretsCommand?: SecretCommand;
  /** `homelab:monitor`, when the file has it. */
  monitor?: MonitorConfig;
  /** `homelab:backend`: where the state lives, when not the repository's `.homelab/state`. */
  backend?: BackendConfig;
  /** Whether deploys build images and provision containers (false for state-only guests). */
  provisioning: boolean;
  /** Where vzdump backups go, and how many of homelab's snapshots and backups are kept per container. */
  backups: { storage: string; keep: number };
  /**
   * The Docker Engine that builds images (undefined: DOCKER_HOST or the local socket), where containers get
   * Docker from, and the environment's exact versions over homelab's pins (`homelab:docker_versions`; source docker only).
   */
  docker: {
    host: string | undefined;
    source: "docker" | "distribution";
    versions?: Record<string, Partial<DockerPins>>;
    /** `homelab:docker_base`: clone compose containers from a Docker-ready base (default), or install Docker in each. */
    base: "clone" | "install";
    /** `homelab:docker_base_network`: the address of the container that builds a base, where the bridge has no DHCP. */
    baseNetwork?: { ip: string; gateway?: string };
  };
  source: YamlSource | undefined;
}
