/**
 * Where the engine keeps things and what it tells the Pulumi CLI: the state
 * backend, the persistent workspace folder (it holds each stack's salt), the
 * passphrase for secrets in the state, and the environment variables of every
 * CLI run. Light: no @pulumi/pulumi import.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { defaultStateBackendDir, passphraseFile, workspacesDir } from "../config/homelab-dir.ts";

/** The tool's own folder (holds node_modules/@pulumi/pulumi and bin/pulumi-resource-homelab). */
export const TOOL_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** The state backend: its URL, and the local folder when it is a file backend. */
export interface Backend {
  url: string;
  /** The folder of a `file://` backend (its `.pulumi/` is inside); undefined for other backends. */
  dir: string | undefined;
  /** True when it is the tool's default (`file://<repo>/.homelab/state`). */
  isDefault: boolean;
}

/** The backend to use: `PULUMI_BACKEND_URL` when set, else `file://<repo>/.homelab/state`. */
export function chooseBackend(root: string, env: NodeJS.ProcessEnv): Backend {
  const given = env["PULUMI_BACKEND_URL"];
  if (given !== undefined && given !== "") {
    return { url: given, dir: fileBackendDir(given), isDefault: false };
  }
  const dir = defaultStateBackendDir(root);
  return { url: pathToFileURL(dir).href, dir, isDefault: true };
}

/** The folder of a `file://` backend URL (`file://~/x` is under the home folder); undefined for others. */
export function fileBackendDir(url: string): string | undefined {
  if (!url.startsWith("file://")) return undefined;
  const rest = url.slice("file://".length).split("?")[0] ?? "";
  if (rest === "~" || rest.startsWith("~/")) return path.join(process.env["HOME"] ?? "/", rest.slice(1));
  try {
    return fileURLToPath(url.split("?")[0] ?? url);
  } catch {
    // Relative forms such as file://./state: Pulumi resolves them from the working folder.
    return path.resolve(rest);
  }
}

/** The persistent workspace folder for a backend: `.homelab/workspace` for the default, one per other backend URL. */
export function workspaceDir(root: string, backend: Backend): string {
  // Stack settings hold the salt of each stack's secrets; they belong to one backend.
  const name = backend.isDefault ? "local" : createHash("sha256").update(backend.url).digest("hex").slice(0, 12);
  return path.join(workspacesDir(root), name);
}

/** Where the passphrase for secrets in the state comes from. */
export interface Passphrase {
  /** Variables to give the CLI (`PULUMI_CONFIG_PASSPHRASE` or `_FILE`). */
  env: Record<string, string>;
  origin: "env" | "env-file" | "file" | "generated" | "none";
  /** The file, when it is one. */
  file: string | undefined;
}

/**
 * The passphrase: `PULUMI_CONFIG_PASSPHRASE`, `PULUMI_CONFIG_PASSPHRASE_FILE`,
 * else `.homelab/passphrase`, generated (mode 0600) on first use.
 */
export function ensurePassphrase(root: string, env: NodeJS.ProcessEnv, generate = true): Passphrase {
  const value = env["PULUMI_CONFIG_PASSPHRASE"];
  if (value !== undefined && value !== "") return { env: { PULUMI_CONFIG_PASSPHRASE: value }, origin: "env", file: undefined };
  const given = env["PULUMI_CONFIG_PASSPHRASE_FILE"];
  if (given !== undefined && given !== "") {
    const file = path.resolve(given);
    try {
      statSync(file);
    } catch {
      throw new EngineSetupError(`PULUMI_CONFIG_PASSPHRASE_FILE points at ${file}, which does not exist`, "create it, or unset the variable to use .homelab/passphrase");
    }
    return { env: { PULUMI_CONFIG_PASSPHRASE_FILE: file }, origin: "env-file", file };
  }
  const file = passphraseFile(root);
  if (!generate) {
    // Read-only commands (status, unlock) never create one.
    try {
      statSync(file);
      return { env: { PULUMI_CONFIG_PASSPHRASE_FILE: file }, origin: "file", file };
    } catch {
      return { env: {}, origin: "none", file: undefined };
    }
  }
  mkdirSync(path.dirname(file), { recursive: true });
  let generated = false;
  try {
    // "wx": two first runs at once must not each write their own passphrase.
    writeFileSync(file, randomBytes(32).toString("base64url") + "\n", { flag: "wx", mode: 0o600 });
    generated = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) chmodSync(file, 0o600);
  if (readFileSync(file, "utf8").trim() === "") {
    throw new EngineSetupError(`${file} is empty`, "restore it from your backup; without it the secrets in the state cannot be read");
  }
  return { env: { PULUMI_CONFIG_PASSPHRASE_FILE: file }, origin: generated ? "generated" : "file", file };
}

/** A problem with the engine's set-up (not with a deployment), with what to do. */
export class EngineSetupError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = "EngineSetupError";
    this.hint = hint;
  }
}

/** What every CLI run of a homelab environment gets, besides `pulumiEngineEnv`. */
export function workspaceEnv(o: { root: string; envName: string; backend: Backend; passphrase: Passphrase; pluginDir: string; cliDir: string; base: NodeJS.ProcessEnv }): Record<string, string> {
  const basePath = o.base["PATH"] ?? "";
  return {
    PULUMI_BACKEND_URL: o.backend.url,
    ...o.passphrase.env,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // The file backend only locks stacks when asked to; without it two runs could interleave.
    PULUMI_SELF_MANAGED_STATE_LOCKING: "true",
    // The provider plugin reads its settings from these.
    HOMELAB_ROOT: o.root,
    HOMELAB_ENV: o.envName,
    // pulumi-resource-homelab is an ambient plugin: found first on PATH.
    PATH: [o.pluginDir, o.cliDir, basePath].filter((p) => p !== "").join(path.delimiter),
  };
}
