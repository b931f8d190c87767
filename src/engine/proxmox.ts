/**
 * The engine's own Proxmox client, for the one inventory snapshot a run
 * plans against. Credentials come from the files or variables the
 * environment references; a value never appears in a message.
 */
import { readFileSync } from "node:fs";
import type { EnvironmentConfig, SecretRef } from "../config/environment.ts";
import type { ProxmoxCredentials } from "../proxmox/auth.ts";
import { createProxmoxClient } from "../proxmox/client.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { EngineSetupError } from "./settings.ts";

function readRef(ref: SecretRef | undefined, what: string, file: string, env: NodeJS.ProcessEnv): string {
  if (ref?.env !== undefined) {
    const v = env[ref.env];
    if (v !== undefined && v.trim() !== "") return v.trim();
    if (ref.file === undefined) throw new EngineSetupError(`${what}_env names ${ref.env}, which is not set`, `export ${ref.env}, or use ${what}_file in ${file}`);
  }
  if (ref?.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(ref.file, "utf8");
    } catch (e) {
      throw new EngineSetupError(`cannot read ${what}_file ${ref.file} (${(e as NodeJS.ErrnoException).code ?? "unreadable"})`, `create it (mode 0600), or fix the path in ${file}`);
    }
    if (text.trim() === "") throw new EngineSetupError(`${what}_file ${ref.file} is empty`, `put the ${what.replace("_", " ")} in it on one line`);
    return text.trim();
  }
  throw new EngineSetupError(`no ${what} configured`, `set ${what}_file or ${what}_env under homelab:proxmox in ${file}`);
}

/** A client for the environment's Proxmox API; errors say which setting to fix. */
export function connectProxmox(env: EnvironmentConfig, processEnv: NodeJS.ProcessEnv, ci: boolean, log?: (line: string) => void): ProxmoxClient {
  const file = env.file ?? `Pulumi.${env.name}.yaml`;
  const p = env.proxmox;
  if (!p) throw new EngineSetupError(`environment ${env.name} has no homelab:proxmox settings, so there is nothing to deploy to`, `add homelab:proxmox (endpoint and credentials) to ${file}, or try the sandbox: homelab sandbox start, then --env sandbox`);
  const auth: ProxmoxCredentials =
    p.tokenId !== undefined
      ? { tokenId: p.tokenId, tokenSecret: readRef(p.tokenSecret, "token_secret", file, processEnv) }
      : { username: p.username ?? "", password: readRef(p.password, "password", file, processEnv) };
  return createProxmoxClient({
    endpoint: p.endpoint,
    auth,
    tls: { ...(p.fingerprint ? { fingerprint: p.fingerprint } : {}), ...(p.caFile ? { caFile: p.caFile } : {}), insecure: p.insecure },
    ci,
    // Request lines only when asked; the one warning (TLS verification off) always.
    logger: (line) => {
      if (log) log(line);
      else if (!/^(GET|POST|PUT|DELETE|retry) /.test(line)) process.stderr.write(`homelab: ${line}\n`);
    },
  });
}
