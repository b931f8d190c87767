/**
 * The secret parts of a compose deployment, read where they live: the
 * service's secrets (environment variables, `services/<name>/.secrets.yaml`,
 * as `resolveSecrets` finds them) and registry credentials (the environment's
 * `password_file` / `password_env`). Their values are never resource inputs
 * or state; only `hash` is, as a Pulumi secret. The provider reads them at
 * check, create and update; the engine's program may call this too, to pass
 * `secretsHash` itself.
 */
import { join } from "node:path";
import type { EnvironmentConfig } from "../config/environment.ts";
import { resolveSecrets } from "../config/secrets.ts";
import type { RegistryAccess } from "../provision/compose-files.ts";
import { registryAccess } from "../provision/inputs.ts";
import type { DeploymentRegistryInput } from "./deployment-inputs.ts";
import { deploymentOf } from "./deployment-inputs.ts";
import { ProviderError } from "./errors.ts";
import { registryHost } from "./image-inputs.ts";

/** A deployment's secrets, ready to build it with, and their hash. */
export interface DeploymentSecrets {
  /** Secret values by key (as in `.secrets.example.yaml`). */
  secrets: ReadonlyMap<string, string>;
  /** The registries with the credentials the environment has for them. */
  registries: RegistryAccess[];
  /** `hashes.secrets` of the deployment: pass it as a Pulumi secret. */
  hash: string;
}

/** Where a service's folder is: `<root>/services/<service>`. */
export function serviceDir(root: string, service: string): string {
  return join(root, "services", service);
}

/** Registry access for a deployment's registries: credentials from the environment, by name, else by address. */
export async function registriesWithCredentials(env: EnvironmentConfig, registries: readonly DeploymentRegistryInput[], processEnv: NodeJS.ProcessEnv): Promise<RegistryAccess[]> {
  return Promise.all(
    registries.map(async (r) => {
      const configured = (r.name !== undefined ? env.registries[r.name] : undefined) ?? Object.values(env.registries).find((c) => registryHost(c.url) === registryHost(r.url));
      if (configured === undefined || registryHost(configured.url) !== registryHost(r.url)) return { url: r.url, insecure: r.insecure };
      const access = await registryAccess(configured, processEnv);
      return { ...access, url: r.url, insecure: r.insecure };
    }),
  );
}

/**
 * Reads a service's secrets and its registries' credentials and hashes them. Fails, naming
 * keys and never values, when a required secret is missing or comes from Pulumi ESC (which the
 * plugin cannot read).
 */
export async function deploymentSecrets(o: { root: string; env: EnvironmentConfig; service: string; registries: readonly DeploymentRegistryInput[]; processEnv: NodeJS.ProcessEnv }): Promise<DeploymentSecrets> {
  const resolved = resolveSecrets(o.service, serviceDir(o.root, o.service), o.env, o.processEnv);
  const missing = resolved.statuses.filter((s) => s.provided === undefined);
  if (missing.length > 0) {
    throw new ProviderError(
      `service ${o.service} is missing secrets: ${missing.map((s) => s.key).join(", ")}`,
      `set ${missing.map((s) => s.envVar).join(", ")}, or add them to services/${o.service}/.secrets.yaml`,
    );
  }
  const esc = resolved.statuses.filter((s) => s.provided === "esc");
  if (esc.length > 0) {
    throw new ProviderError(
      `secrets ${esc.map((s) => s.key).join(", ")} of service ${o.service} would come from Pulumi ESC, which the homelab provider cannot read`,
      `set ${esc.map((s) => s.envVar).join(", ")} or add them to services/${o.service}/.secrets.yaml`,
    );
  }
  const broken = resolved.diagnostics.find((d) => d.severity === "error");
  if (broken) throw new ProviderError(`${broken.file}: ${broken.message}`, broken.hint ?? "fix the secrets file");
  const registries = await registriesWithCredentials(o.env, o.registries, o.processEnv);
  // The secret files do not depend on the compose files: any stands in.
  const hash = deploymentOf({ service: o.service, composeFiles: [{ path: "docker-compose.yaml", content: "" }], images: [] }, resolved.values, registries).hashes.secrets;
  return { secrets: resolved.values, registries, hash };
}
