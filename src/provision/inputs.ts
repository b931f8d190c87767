/**
 * Glue from the plan and config to provisioning inputs, for the provider's
 * `homelab:docker:Image` and `homelab:compose:Deployment`: an image spec from
 * a PlannedImage, the compose files of a container read from its service
 * folder, and registry access from an environment's registry settings.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { RegistryConfig } from "../config/environment.ts";
import { readSecretRef } from "../config/secret-ref.ts";
import type { PlannedImage } from "../plan/types.ts";
import type { RegistryAccess } from "./compose-files.ts";
import type { ImageSpec } from "./image.ts";

/** The build spec of a planned `docker:image` (credentials added by the caller when the registry has them). */
export function imageSpecFromPlan(p: PlannedImage, credentials?: { username: string; password: string }): ImageSpec {
  return {
    id: p.id,
    name: p.name,
    context: p.context,
    dockerfile: p.dockerfile,
    buildArgs: p.buildArgs,
    ...(p.registry ? { registry: { url: p.registry.url, insecure: p.registry.insecure, ...(credentials ?? {}) } } : {}),
  };
}

/** Reads a container's compose files (absolute, as the config resolves them) in order, with paths relative to the service folder. */
export async function readComposeFiles(serviceDir: string, files: readonly string[]): Promise<Array<{ path: string; content: string }>> {
  return Promise.all(
    files.map(async (f) => {
      const abs = isAbsolute(f) ? f : resolve(serviceDir, f);
      const rel = relative(serviceDir, abs);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) throw new Error(`compose file ${f} is outside the service folder ${serviceDir}`);
      return { path: rel.split(sep).join("/"), content: await readFile(abs, "utf8") };
    }),
  );
}

/** Registry access for provisioning from an environment's registry settings (its password read from its reference; an unreadable reference is an error naming it). */
// eslint-disable-next-line @typescript-eslint/require-await -- async so callers need not change if reading becomes I/O-bound
export async function registryAccess(r: RegistryConfig, env: NodeJS.ProcessEnv = process.env, envFile = "the environment file"): Promise<RegistryAccess> {
  const password = r.password !== undefined ? readSecretRef(r.password, "password", envFile, env) : undefined;
  return {
    url: r.url,
    insecure: r.insecure,
    ...(r.username !== undefined && password !== undefined ? { username: r.username, password } : {}),
  };
}
