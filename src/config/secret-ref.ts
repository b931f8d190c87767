import { readFileSync } from "node:fs";
import type { SecretRef } from "./environment.ts";

/** A referenced secret that cannot be read; says which setting to fix, never the value. */
export class SecretRefError extends Error {
  readonly hint: string;
  constructor(message: string, hint: string) {
    super(message);
    this.name = "SecretRefError";
    this.hint = hint;
  }
}

/**
 * Reads a secret an environment file references (`<what>_env` / `<what>_file`):
 * the variable when it is set, else the file, trimmed. Read at the moment of
 * use, so a rotated secret is picked up by the next run. `envFile` is named in
 * errors so the user knows where to fix the reference.
 */
export function readSecretRef(ref: SecretRef | undefined, what: string, envFile: string, env: NodeJS.ProcessEnv): string {
  const spoken = what.replace(/_/g, " ");
  if (ref?.env !== undefined) {
    const value = env[ref.env];
    if (value !== undefined && value.trim() !== "") return value.trim();
    if (ref.file === undefined) throw new SecretRefError(`${what}_env names ${ref.env}, which is not set`, `export ${ref.env}, or use ${what}_file in ${envFile}`);
  }
  if (ref?.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(ref.file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      throw new SecretRefError(`cannot read ${what}_file ${ref.file} (${code})`, `create it (mode 0600) with the ${spoken} on one line, or fix the path in ${envFile}`);
    }
    const value = text.trim();
    if (value === "") throw new SecretRefError(`${what}_file ${ref.file} is empty`, `put the ${spoken} in it on one line`);
    return value;
  }
  throw new SecretRefError(`no ${what} is referenced`, `add ${what}_file or ${what}_env under homelab:proxmox in ${envFile}`);
}
