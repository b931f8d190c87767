import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { envFileName, generatedEnvironmentsDir } from "./homelab-dir.ts";

/**
 * Finding things in a homelab repository without reading them: cheap enough for
 * every command's start-up (no YAML, no schema library).
 */

/** Thrown for problems with the repository itself (not a file's content): no services folder, unknown service. */
export class RepositoryError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "RepositoryError";
    this.hint = hint;
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The nearest folder upward from `start` that has `services/` or `Pulumi.yaml`. */
export function findRoot(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, "Pulumi.yaml")) || isDir(join(dir, "services"))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** Service folders that have a service.yaml, sorted by name. */
export function discoverServices(root: string): { name: string; file: string }[] {
  const dir = join(root, "services");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith("."))
    .sort()
    .map((name) => ({ name, file: join(dir, name, "service.yaml") }))
    .filter((s) => existsSync(s.file));
}

/** Where an environment's file is: `Pulumi.<env>.yaml` in the repository, or one the tool generated. */
export function environmentFile(root: string, name: string): string | undefined {
  for (const f of [join(root, envFileName(name)), join(generatedEnvironmentsDir(root), envFileName(name))]) {
    if (existsSync(f)) return f;
  }
  return undefined;
}

/** Names of the environments that have a file. */
export function listEnvironments(root: string): string[] {
  const names = new Set<string>();
  for (const dir of [root, generatedEnvironmentsDir(root)]) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const e of entries) {
      const m = /^Pulumi\.([^.]+)\.yaml$/.exec(e);
      if (m?.[1]) names.add(m[1]);
    }
  }
  return [...names].sort();
}

/**
 * The environment to use: the flag, else HOMELAB_ENV, else `prod` when it
 * exists, else the only one defined; undefined when none can be chosen.
 */
export function chooseEnvironmentName(root: string, flag: string | undefined, processEnv: NodeJS.ProcessEnv): string | undefined {
  if (flag) return flag;
  if (processEnv["HOMELAB_ENV"]) return processEnv["HOMELAB_ENV"];
  const envs = listEnvironments(root);
  if (envs.includes("prod")) return "prod";
  return envs.length === 1 ? envs[0] : undefined;
}
