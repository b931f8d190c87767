/**
 * Glue from the plan and config to provisioning inputs, for the provider's
 * `homelab:docker:Image` and `homelab:compose:Deployment`: an image spec from
 * a PlannedImage, the compose files of a container read from its service
 * folder, and registry access from an environment's registry settings.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { RegistryConfig, SecretRef } from "../config/environment.ts";
import type { PlannedImage } from "../plan/types.ts";
import type { RegistryAccess } from "./compose.ts";
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

/** Reads a secret referenced from an environment file (a file, else an environment variable). */
export async function readSecretRef(ref: SecretRef | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (!ref) return undefined;
  if (ref.file !== undefined) return (await readFile(ref.file, "utf8")).replace(/\r?\n$/, "");
  if (ref.env !== undefined) return env[ref.env];
  return undefined;
}

/** Registry access for provisioning from an environment's registry settings (its password read from its reference). */
export async function registryAccess(r: RegistryConfig, env: NodeJS.ProcessEnv = process.env): Promise<RegistryAccess> {
  const password = await readSecretRef(r.password, env);
  return {
    url: r.url,
    insecure: r.insecure,
    ...(r.username !== undefined && password !== undefined ? { username: r.username, password } : {}),
  };
}
