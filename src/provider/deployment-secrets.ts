/**
 * The secret parts of a compose deployment, read where they live: the
 * service's secrets (as `resolveSecrets` finds them: environment variables,
 * `.secrets.yaml`, the SOPS file decrypted in memory, commands) and registry credentials (the environment's
 * `password_file` / `password_env`). Their values are never resource inputs
 * or state; only `hash` is, as a Pulumi secret. The provider reads them at
 * check, create and update; the engine's program may call this too, to pass
 * `secretsHash` itself.
 */
import { join, relative } from "node:path";
import type { EnvironmentConfig } from "../config/environment.ts";
import { describeBackend } from "../config/state-backend.ts";
import { resolveSecrets } from "../config/secrets.ts";
import type { RegistryAccess } from "../provision/compose-files.ts";
import { registryAccess } from "../provision/inputs.ts";
import type { DeploymentRegistryInput } from "./deployment-inputs.ts";
import { deploymentOf } from "./deployment-inputs.ts";
import { ProviderError } from "./errors.ts";
import { registryHost } from "./image-inputs.ts";
import { readDeferredSecrets, type SecretRunner } from "./secret-values.ts";

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
 * Reads a service's secrets (decrypting and running commands as declared) and its
 * registries' credentials, and hashes them. Fails, naming keys and never values, when a
 * required secret is missing, cannot be read, or comes from Pulumi ESC (which the plugin
 * cannot read).
 */
export async function deploymentSecrets(o: { root: string; env: EnvironmentConfig; service: string; registries: readonly DeploymentRegistryInput[]; processEnv: NodeJS.ProcessEnv; run?: SecretRunner }): Promise<DeploymentSecrets> {
  // The engine gives the plugin the backend's URL; ESC exists only with Pulumi Cloud.
  const backend = describeBackend(o.processEnv["PULUMI_BACKEND_URL"]);
  const resolved = resolveSecrets(o.service, serviceDir(o.root, o.service), o.env, o.processEnv, { backend });
  // Missing secrets, ESC on a self-managed backend, a broken secrets file: as validation says them.
  const errors = resolved.diagnostics.filter((d) => d.severity === "error");
  const first = errors[0];
  if (first) {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more: homelab validate ${o.service} lists them)` : "";
    throw new ProviderError(`${relative(o.root, first.file)}:${first.line}:${first.col}: ${first.message}${more}`, first.hint ?? "fix the secrets file");
  }
  const esc = resolved.statuses.filter((s) => s.provided === "esc");
  if (esc.length > 0) {
    throw new ProviderError(
      `secrets ${esc.map((s) => s.key).join(", ")} of service ${o.service} would come from Pulumi ESC, which the homelab provider cannot read`,
      `set ${esc.map((s) => s.envVar).join(", ")} or add them to services/${o.service}/.secrets.yaml`,
    );
  }
  const secrets = new Map([...resolved.values, ...(await readDeferredSecrets(o.service, resolved.deferred, o.processEnv, o.run))]);
  const registries = await registriesWithCredentials(o.env, o.registries, o.processEnv);
  // The secret files do not depend on the compose files: any stands in.
  const hash = deploymentOf({ service: o.service, composeFiles: [{ path: "docker-compose.yaml", content: "" }], images: [] }, secrets, registries).hashes.secrets;
  return { secrets, registries, hash };
}
