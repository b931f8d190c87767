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
import { isSecretParam, type BackendConfig } from "../config/backend-setting.ts";
import type { SecretRef } from "../config/environment.ts";
import { readSecretRef, SecretRefError } from "../config/secret-ref.ts";
import { urlScheme } from "../config/state-backend.ts";

/** The tool's own folder (holds node_modules/@pulumi/pulumi and bin/pulumi-resource-homelab). */
export const TOOL_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** Where the backend's URL came from. */
export type BackendOrigin = "PULUMI_BACKEND_URL" | "homelab:backend" | "default";

/** The state backend: its URL, and the local folder when it is a file backend. */
export interface Backend {
  /** The URL the Pulumi CLI gets: never with a password in it (see `chooseBackend`). */
  url: string;
  /** The URL for output: no password, secret query values masked. */
  display: string;
  /** The URL scheme, lower case (`file`, `postgres`, `s3`, `https`, ...). */
  scheme: string;
  /** The folder of a `file://` backend (its `.pulumi/` is inside); undefined for other backends. */
  dir: string | undefined;
  /** True when it is the tool's default (`file://<repo>/.homelab/state`). */
  isDefault: boolean;
  /** A backend other machines may share (not the repository's own folder): no passphrase is generated for it. */
  shared: boolean;
  origin: BackendOrigin;
  /** The `homelab:backend` setting, when the URL is its (its credentials apply then only). */
  setting: BackendConfig | undefined;
  /** A password PULUMI_BACKEND_URL carried, moved out of the URL into PGPASSWORD. */
  readonly urlPassword: string | undefined;
}

/**
 * The backend to use: `PULUMI_BACKEND_URL` when set, else the environment's
 * `homelab:backend`, else `file://<repo>/.homelab/state`. A password in a
 * postgres:// URL is taken out of it and given to the CLI as PGPASSWORD:
 * Pulumi 3.274.1 prints the URL it was given when it cannot open the backend
 * (pkg/backend/diy/backend.go, describeBackendURL); it masks a password in
 * the user info there, but not lib/pq's `password` query parameter
 * (sdk/go/common/util/httputil/redact.go knows only signature and token
 * parameters), which it prints as it is.
 */
export function chooseBackend(root: string, env: NodeJS.ProcessEnv, setting?: BackendConfig): Backend {
  const given = env["PULUMI_BACKEND_URL"];
  if (given !== undefined && given !== "") {
    const { url, password } = withoutPassword(given);
    return { url, display: displayBackendUrl(given), scheme: urlScheme(url) ?? "", dir: fileBackendDir(url), isDefault: false, shared: !url.startsWith("file://"), origin: "PULUMI_BACKEND_URL", setting: undefined, urlPassword: password };
  }
  if (setting !== undefined) {
    const url = setting.url;
    return { url, display: displayBackendUrl(url), scheme: urlScheme(url) ?? "", dir: fileBackendDir(url), isDefault: false, shared: !url.startsWith("file://"), origin: "homelab:backend", setting, urlPassword: undefined };
  }
  const dir = defaultStateBackendDir(root);
  const url = pathToFileURL(dir).href;
  return { url, display: url, scheme: "file", dir, isDefault: true, shared: false, origin: "default", setting: undefined, urlPassword: undefined };
}

/** A backend URL without its password (user info or a secret query parameter), and the password. Unchanged when it has none. Pure. */
export function withoutPassword(url: string): { url: string; password: string | undefined } {
  // Only lib/pq reads a password from the environment (PGPASSWORD) as from the URL.
  if (urlScheme(url) !== "postgres") return { url, password: undefined };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, password: undefined };
  }
  const inQuery = u.searchParams.get("password");
  if (u.password === "" && inQuery === null) return { url, password: undefined };
  const password = u.password !== "" ? decodeURIComponent(u.password) : (inQuery ?? undefined);
  u.password = "";
  u.searchParams.delete("password");
  return { url: u.href, password };
}

/** A backend URL fit to print: no password, the values of secret query parameters masked. Pure. */
export function displayBackendUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return (url.split("?")[0] ?? "").replace(/\/\/[^@/]*@/, "//");
  }
  if (u.password !== "") u.password = "****";
  for (const k of [...u.searchParams.keys()]) if (isSecretParam(k)) u.searchParams.set(k, "****");
  return u.href.replace(/%2A%2A%2A%2A/g, "****");
}

/** Reads one of `homelab:backend`'s referenced credentials; a reference that cannot be read is an EngineSetupError naming the setting. */
function readBackendSecret(ref: SecretRef, what: string, envFile: string, env: NodeJS.ProcessEnv): string {
  try {
    return readSecretRef(ref, what, envFile, env);
  } catch (e) {
    if (e instanceof SecretRefError) throw new EngineSetupError(`homelab:backend: ${e.message}`, e.hint.replace(/under homelab:proxmox/, "under homelab:backend"));
    throw e;
  }
}

/**
 * The variables the CLI (and homelab's own reads of the backend) need for
 * the backend's credentials: PGPASSWORD for postgres://, AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY for s3://, read from `homelab:backend`'s references
 * (at the moment of use, like every credential) or moved out of the URL.
 * Empty when they come from the process's own variables.
 */
export function backendCredentials(backend: Backend, env: NodeJS.ProcessEnv, envFile: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (backend.urlPassword !== undefined) out["PGPASSWORD"] = backend.urlPassword;
  const s = backend.setting;
  if (s === undefined) return out;
  const read = (ref: SecretRef | undefined, what: string): string | undefined => (ref === undefined ? undefined : readBackendSecret(ref, what, envFile, env));
  const password = read(s.password, "password");
  if (password !== undefined) out["PGPASSWORD"] = password;
  const id = read(s.accessKeyId, "access_key_id");
  const secret = read(s.secretAccessKey, "secret_access_key");
  if (id !== undefined) out["AWS_ACCESS_KEY_ID"] = id;
  if (secret !== undefined) out["AWS_SECRET_ACCESS_KEY"] = secret;
  return out;
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
  origin: "env" | "env-file" | "setting" | "file" | "generated" | "none";
  /** The file, when it is one. */
  file: string | undefined;
}

/** How the passphrase is looked for beyond the process's variables. */
export interface PassphraseOptions {
  /** Generate `.homelab/passphrase` when there is none (never for read-only commands). */
  generate?: boolean;
  /** A shared backend: other machines need the same passphrase, so none is generated. */
  shared?: boolean;
  /** `homelab:backend`'s passphrase_file / passphrase_env. */
  ref?: SecretRef | undefined;
  /** The environment file, for messages. */
  envFile?: string;
}

/**
 * The passphrase: `PULUMI_CONFIG_PASSPHRASE`, `PULUMI_CONFIG_PASSPHRASE_FILE`,
 * `homelab:backend`'s passphrase reference, else `.homelab/passphrase`,
 * generated (mode 0600) on first use, but only for a backend no other machine
 * shares: a second machine with a passphrase of its own could not read the
 * secrets in the state (Pulumi: "incorrect passphrase").
 */
export function ensurePassphrase(root: string, env: NodeJS.ProcessEnv, o: PassphraseOptions | boolean = {}): Passphrase {
  const opts: PassphraseOptions = typeof o === "boolean" ? { generate: o } : o;
  const generate = opts.generate !== false;
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
  if (opts.ref !== undefined) {
    const secret = readBackendSecret(opts.ref, "passphrase", opts.envFile ?? "the environment file", env);
    return { env: { PULUMI_CONFIG_PASSPHRASE: secret }, origin: "setting", file: opts.ref.env === undefined || env[opts.ref.env] === undefined ? opts.ref.file : undefined };
  }
  const file = passphraseFile(root);
  try {
    statSync(file);
  } catch {
    // Read-only commands (status, unlock) never create one.
    if (!generate) return { env: {}, origin: "none", file: undefined };
    if (opts.shared === true) {
      throw new EngineSetupError(
        "a shared state backend needs the passphrase every machine using it has, and none is set",
        `put it in a file (mode 0600) and reference it in ${opts.envFile ?? "the environment file"}: homelab:backend: {url: ..., passphrase_file: ...} (or set PULUMI_CONFIG_PASSPHRASE_FILE); the first machine's .homelab/passphrase when moving from the file backend`,
      );
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

/**
 * `pulumi stack ls` on a postgres:// backend hangs for ever in 3.274.1 once a
 * few stacks exist (12 stacks on 2 cores: 3 hangs in 3 tries): ListStacks
 * resolves each stack's file in a pool of PULUMI_DIY_BACKEND_PARALLEL (10)
 * workers (pkg/backend/diy/backend.go, state.go stackPath: a listing per
 * stack); the PostgreSQL bucket's ListPaged keeps its rows open on one
 * connection while it asks for each key's size on another
 * (pkg/backend/diy/postgres/bucket.go), and its pool holds at most
 * max(2 x GOMAXPROCS, 2) connections. Once that many listings hold one each,
 * none gets its second. One worker needs two connections at most. The
 * variable is read only there and by `pulumi state upgrade`.
 */
const POSTGRES_LIST_SERIALLY = { PULUMI_DIY_BACKEND_PARALLEL: "1" };

/** What every CLI run of a homelab environment gets, besides `pulumiEngineEnv`. */
export function workspaceEnv(o: { root: string; envName: string; backend: Backend; passphrase: Passphrase; pluginDir: string; cliDir: string; base: NodeJS.ProcessEnv }): Record<string, string> {
  const basePath = o.base["PATH"] ?? "";
  return {
    PULUMI_BACKEND_URL: o.backend.url,
    ...o.passphrase.env,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // A stack whose settings file is not in this workspace (another machine,
    // a fresh checkout) keeps the secrets salt its state records; without
    // this, 3.274.1 mints an unrelated one (pkg/cmd/pulumi/stack/secrets.go,
    // pulumi/pulumi#16412). Self-managed backends always lock stacks in that
    // version (pkg/backend/diy/lock.go): no variable turns locking on or off.
    PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: "true",
    ...(o.backend.scheme === "postgres" ? POSTGRES_LIST_SERIALLY : {}),
    // The provider plugin reads its settings from these.
    HOMELAB_ROOT: o.root,
    HOMELAB_ENV: o.envName,
    // pulumi-resource-homelab is an ambient plugin: found first on PATH.
    PATH: [o.pluginDir, o.cliDir, basePath].filter((p) => p !== "").join(path.delimiter),
  };
}
