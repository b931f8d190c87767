import type { EnvironmentConfig, EnvironmentKind } from "./environment-types.ts";

/**
 * What an environment is without its file: no schema library needed, so a
 * command served from the validate cache can have one without loading zod.
 */

/** Built-in defaults, used where neither the service nor the environment says. */
export const BUILTIN_DEFAULTS = { memory: 512, cores: 1, disk: 8, swap: 512, storage: "local-lvm", templateStorage: "local", bridge: "vmbr0", backupStorage: "local", backupKeep: 3 } as const;

/** The kind an environment has when its file does not say: by its name. */
export function defaultKind(name: string): EnvironmentKind {
  return name === "prod" || name === "production" ? "production" : name === "sandbox" ? "sandbox" : "development";
}

/** An environment with no file: built-in defaults only (validation without a cluster). */
export function emptyEnvironment(name: string): EnvironmentConfig {
  return {
    name,
    file: undefined,
    kind: defaultKind(name),
    production: defaultKind(name) === "production",
    clusterName: undefined,
    proxmox: undefined,
    hosts: {},
    registries: {},
    defaults: { ...BUILTIN_DEFAULTS },
    escEnvironments: [],
    provisioning: true,
    backups: { storage: BUILTIN_DEFAULTS.backupStorage, keep: BUILTIN_DEFAULTS.backupKeep },
    docker: { host: undefined, source: "docker", base: "clone" },
    source: undefined,
  };
}
