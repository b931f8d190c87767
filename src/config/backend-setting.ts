/**
 * `homelab:backend`: where an environment's Pulumi state lives when it is not
 * the repository's own `.homelab/state`, e.g. a PostgreSQL database or an
 * S3-compatible bucket a household or a team shares. The URL is written in
 * the environment file; its credentials never are: they are referenced
 * (`*_file`, `*_env`) like every other credential of an environment. Pure:
 * checks the setting's shape and the URL's form, reads nothing.
 */
import { z } from "zod";
import type { BackendConfig, SecretRef } from "./environment-types.ts";
import { urlScheme } from "./state-backend.ts";

export type { BackendConfig } from "./environment-types.ts";

/** The URL schemes Pulumi 3.274.1 takes as self-managed ("DIY") backends, and Pulumi Cloud's. */
const BACKEND_SCHEMES = ["file", "postgres", "s3", "gs", "azblob", "https", "http"] as const;

const ref = (what: string, description: string) => ({
  [`${what}_file`]: z.string().min(1).optional().describe(`Path of a file (mode 0600) holding the ${description}; relative to this file.`),
  [`${what}_env`]: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional().describe(`Environment variable holding the ${description}.`),
});

/** The object form of `homelab:backend` (a bare string is its `url`). */
export const backendSchema = z
  .strictObject({
    url: z.string().min(1).describe("The Pulumi backend URL, without credentials: postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full, s3://BUCKET?endpoint=HOST:PORT&s3ForcePathStyle=true&region=REGION, file:///absolute/folder, or https:// for Pulumi Cloud."),
    ...ref("password", "PostgreSQL user's password (given to Pulumi as PGPASSWORD)"),
    ...ref("access_key_id", "S3 access key id (AWS_ACCESS_KEY_ID)"),
    ...ref("secret_access_key", "S3 secret access key (AWS_SECRET_ACCESS_KEY)"),
    ...ref("passphrase", "passphrase that encrypts secrets in the state; every machine sharing the backend needs the same one"),
  })
  .describe("Where this environment's state lives (default: the repository's .homelab/state). Credentials are referenced, never written here. PULUMI_BACKEND_URL, when set, wins.");

/** Query parameters that carry a secret in a URL (lib/pq's password and sslpassword; any *secret* or *token*). */
export function isSecretParam(name: string): boolean {
  return /pass|secret|token|credential/i.test(name);
}

type Report = (path: (string | number)[], message: string, hint?: string) => void;

/**
 * Checks `homelab:backend` (already shaped by `backendSchema`): a URL Pulumi
 * takes, no credentials in it, credentials that fit its kind. `at` is the
 * path of the setting; `resolveRef` makes a reference's path absolute.
 * Reports problems and returns undefined when there are any. Pure.
 */
export function checkBackend(raw: z.output<typeof backendSchema>, at: (string | number)[], bare: boolean, resolveRef: (keys: Record<string, unknown>, what: string) => SecretRef | undefined, report: Report, warn: Report): BackendConfig | undefined {
  const urlPath = bare ? at : [...at, "url"];
  const before = problems(raw, at, urlPath, report);
  if (before > 0) return undefined;
  const keys = raw as Record<string, unknown>;
  const scheme = urlScheme(raw.url) ?? "";
  if (scheme === "postgres") {
    const unverified = unverifiedPostgres(new URL(raw.url));
    if (unverified !== undefined) warn(urlPath, unverified, "add sslmode=verify-full&sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate), or else anyone on the network path can read and change the state");
  }
  const password = resolveRef(keys, "password");
  const accessKeyId = resolveRef(keys, "access_key_id");
  const secretAccessKey = resolveRef(keys, "secret_access_key");
  const passphrase = resolveRef(keys, "passphrase");
  return { url: raw.url, scheme, ...(password ? { password } : {}), ...(accessKeyId ? { accessKeyId } : {}), ...(secretAccessKey ? { secretAccessKey } : {}), ...(passphrase ? { passphrase } : {}) };
}

/** How a PostgreSQL connection checks the server: not encrypted, encrypted only, the certificate's chain, or chain and name. */
export type PostgresTls = "off" | "unverified" | "chain" | "full";

/**
 * lib/pq's reading of sslmode and sslrootcert, which Pulumi connects with
 * and homelab's own reader (engine/store-postgres.ts) follows: `disable` and
 * `allow` do not encrypt; `verify-full` checks chain and name; `verify-ca`,
 * or any mode with a root certificate file, the chain; anything else (no
 * sslmode is `require`) encrypts without checking. Pure.
 */
export function postgresTls(mode: string, rootCert: string | undefined): PostgresTls {
  if (mode === "disable" || mode === "allow") return "off";
  if (mode === "verify-full") return "full";
  if (mode === "verify-ca" || (rootCert !== undefined && rootCert !== "" && rootCert !== "system")) return "chain";
  return "unverified";
}

/** What a postgres:// URL leaves unprotected; loopback has no network path to guard. Undefined when there is nothing to say. Pure. */
function unverifiedPostgres(u: URL): string | undefined {
  if (["localhost", "127.0.0.1", "[::1]"].includes(u.hostname)) return undefined;
  const mode = u.searchParams.get("sslmode");
  const tls = postgresTls(mode ?? "", u.searchParams.get("sslrootcert") ?? undefined);
  if (tls === "off") return `the connection to the state database is not encrypted (sslmode=${mode ?? ""})`;
  if (tls === "unverified") return `the connection to the state database is encrypted but the server's certificate is not checked (${mode !== null ? `sslmode=${mode}` : "no sslmode: lib/pq's require"})`;
  return undefined;
}

function problems(raw: z.output<typeof backendSchema>, at: (string | number)[], urlPath: (string | number)[], report: Report): number {
  let n = 0;
  const bad: Report = (path, message, hint) => {
    n++;
    report(path, message, hint);
  };
  const scheme = urlScheme(raw.url);
  const known = BACKEND_SCHEMES as readonly string[];
  if (scheme === undefined || !known.includes(scheme)) {
    const hint = scheme === "postgresql" ? "Pulumi names the scheme postgres://" : scheme === "file" ? undefined : `use one of ${BACKEND_SCHEMES.map((s) => `${s}://`).join(", ")}`;
    bad(urlPath, `homelab:backend url must be a Pulumi backend URL${scheme !== undefined ? `, not ${scheme}://` : ""}`, hint);
    return n;
  }
  let u: URL | undefined;
  try {
    u = new URL(raw.url);
  } catch {
    bad(urlPath, "homelab:backend url is not a valid URL", "e.g. postgres://homelab@db.lan:5432/homelab_state or s3://homelab-state?endpoint=minio.lan:9000&s3ForcePathStyle=true&region=us-east-1");
    return n;
  }
  if (u.password !== "" || [...u.searchParams.keys()].some(isSecretParam)) {
    const where = scheme === "postgres" ? "password_file or password_env" : "a *_file or *_env reference";
    bad(urlPath, "homelab:backend url holds a password: credentials are never written in the environment file", `remove it from the URL and use ${where}`);
  }
  if (scheme === "file" && !(raw.url.startsWith("file:///") || raw.url.startsWith("file://~/"))) {
    bad(urlPath, "a file:// backend needs an absolute folder", "e.g. file:///srv/homelab-state or file://~/homelab-state");
  }
  const keys = raw as Record<string, unknown>;
  const has = (what: string): boolean => keys[`${what}_file`] !== undefined || keys[`${what}_env`] !== undefined;
  const field = (what: string): string => (keys[`${what}_file`] !== undefined ? `${what}_file` : `${what}_env`);
  if (has("password") && scheme !== "postgres") bad([...at, field("password")], `${field("password")} is the PostgreSQL password: it applies to postgres:// backends only`, scheme === "s3" ? "an S3 backend takes access_key_id_* and secret_access_key_*" : undefined);
  for (const what of ["access_key_id", "secret_access_key"]) {
    if (has(what) && scheme !== "s3") bad([...at, field(what)], `${field(what)} applies to s3:// backends only`, scheme === "postgres" ? "a PostgreSQL backend takes password_file or password_env" : undefined);
  }
  if (scheme === "s3" && has("access_key_id") !== has("secret_access_key")) {
    bad(at, "an S3 backend needs both access_key_id_* and secret_access_key_*, or neither (then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile apply)");
  }
  return n;
}
