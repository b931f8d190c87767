/**
 * A postgres:// backend's objects, read as Pulumi 3.274.1 writes them
 * (pkg/backend/diy/postgres/bucket.go): one table (`pulumi_state`, or the
 * URL's `table`), a row per object with its key and `{"data": base64}` as
 * JSON; keys below the URL's path (the database name, e.g.
 * `homelab_state/.pulumi/stacks/...`), as for any bucket with a path.
 *
 * The connection follows lib/pq, which Pulumi uses: the URL's host, port,
 * user and database, else PGHOST, PGPORT, PGUSER, PGDATABASE; the password
 * from PGPASSWORD; sslmode as lib/pq reads it (no sslmode means TLS without
 * verification, as `require`). One connection at a time, closed when idle so
 * a command's process can end.
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import postgres from "postgres";
import { postgresTls } from "../config/backend-setting.ts";
import { BackendStoreError } from "./backend-store.ts";
import type { BackendStore } from "./backend-store.ts";

/** How long an idle connection is kept for the next read of the same command. */
const IDLE_MS = 150;

type Sql = ReturnType<typeof postgres>;

/** The connection settings of a postgres:// backend URL, as lib/pq reads them. Pure but for reading certificate files. */
export function postgresOptions(url: string, env: NodeJS.ProcessEnv): { options: postgres.Options<Record<string, never>>; table: string; prefix: string; target: string } {
  const u = new URL(url);
  const q = u.searchParams;
  const dbPath = decodeURIComponent(u.pathname.replace(/^\/+/, ""));
  const user = decodeURIComponent(u.username) || env["PGUSER"] || userInfo().username;
  const database = dbPath.split("/")[0] || env["PGDATABASE"] || user;
  const table = q.get("table") || "pulumi_state";
  // Pulumi puts the table name into its SQL as it is; so does this reader, after checking it is a name.
  if (!/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(table)) throw new Error(`the backend URL's table "${table}" is not a plain table name`);
  const mode = q.get("sslmode") ?? env["PGSSLMODE"] ?? "";
  const rootCert = q.get("sslrootcert") ?? env["PGSSLROOTCERT"];
  const cert = q.get("sslcert") ?? env["PGSSLCERT"];
  const key = q.get("sslkey") ?? env["PGSSLKEY"];
  const files = {
    ...(rootCert && rootCert !== "system" ? { ca: readFileSync(rootCert) } : {}),
    ...(cert ? { cert: readFileSync(cert) } : {}),
    ...(key ? { key: readFileSync(key) } : {}),
  };
  const tls = postgresTls(mode, rootCert);
  // "unverified" is lib/pq's require (its default too), which Pulumi connects with: validate warns about it.
  const ssl: postgres.Options<Record<string, never>>["ssl"] =
    tls === "off" ? false : tls === "full" ? { ...files, rejectUnauthorized: true } : tls === "chain" ? { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined } : { ...files, rejectUnauthorized: false };
  const timeout = Number(q.get("connect_timeout") ?? env["PGCONNECT_TIMEOUT"] ?? "");
  const password = env["PGPASSWORD"];
  const host = u.hostname ? decodeURIComponent(u.hostname) : env["PGHOST"] || "localhost";
  const port = Number(u.port || env["PGPORT"] || 5432);
  return {
    target: `${host}:${port}/${database} as ${user}`,
    options: {
      host,
      port,
      user,
      database,
      ...(password !== undefined ? { password } : {}),
      ssl,
      max: 2,
      idle_timeout: null,
      connect_timeout: Number.isFinite(timeout) && timeout > 0 ? timeout : 15,
      fetch_types: false,
      prepare: false,
      onnotice: () => undefined,
      connection: { application_name: "homelab" },
    },
    table,
    prefix: dbPath === "" ? "" : dbPath.endsWith("/") ? dbPath : `${dbPath}/`,
  };
}

/** A pattern for LIKE that matches keys starting with `prefix` (LIKE's own wildcards escaped). Pure. */
export function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + "%";
}

/** A postgres:// backend's table. */
export class PostgresStore implements BackendStore {
  readonly #url: string;
  readonly #env: NodeJS.ProcessEnv;
  #settings: ReturnType<typeof postgresOptions> | undefined;
  #sql: Sql | undefined;
  #active = 0;
  #idle: NodeJS.Timeout | undefined;

  constructor(url: string, env: NodeJS.ProcessEnv) {
    this.#url = url;
    this.#env = env;
  }

  async list(prefix: string): Promise<string[]> {
    const { table, prefix: root } = this.#config();
    const rows = await this.#query<{ key: string }>(`SELECT key FROM ${table} WHERE key LIKE $1 ORDER BY key`, [likePrefix(root + prefix)]);
    return (rows ?? []).map((r) => r.key.slice(root.length));
  }

  async read(key: string): Promise<Buffer | undefined> {
    const { table, prefix: root } = this.#config();
    const rows = await this.#query<{ b64: string | null }>(`SELECT data->>'data' AS b64 FROM ${table} WHERE key = $1`, [root + key]);
    const b64 = rows?.[0]?.b64;
    return typeof b64 === "string" ? Buffer.from(b64, "base64") : undefined;
  }

  async remove(key: string): Promise<void> {
    const { table, prefix: root } = this.#config();
    await this.#query(`DELETE FROM ${table} WHERE key = $1`, [root + key]);
  }

  where(key: string): string {
    return `${this.#config().table}: ${this.#config().prefix}${key}`;
  }

  async unopened(): Promise<boolean> {
    const rows = await this.#query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [this.#config().table]);
    return (rows?.[0]?.t ?? null) === null;
  }

  #config(): ReturnType<typeof postgresOptions> {
    this.#settings ??= postgresOptions(this.#url, this.#env);
    return this.#settings;
  }

  /** Runs one query; undefined when the table does not exist yet (nothing was ever written). */
  async #query<T>(text: string, params: string[]): Promise<T[] | undefined> {
    clearTimeout(this.#idle);
    this.#active++;
    const sql = (this.#sql ??= postgres(this.#config().options));
    try {
      return (await sql.unsafe(text, params)) as unknown as T[];
    } catch (e) {
      if (e instanceof postgres.PostgresError && e.code === "42P01") return undefined;
      throw new BackendStoreError(
        `cannot read the PostgreSQL state backend at ${this.#config().target}: ${e instanceof Error ? e.message : String(e)}`,
        "check the backend URL's host, port, database and user, and its password (homelab:backend password_file / password_env, or PGPASSWORD); see docs/state.md",
        e,
      );
    } finally {
      this.#active--;
      if (this.#active === 0) {
        this.#idle = setTimeout(() => {
          const idle = this.#sql;
          this.#sql = undefined;
          void idle?.end({ timeout: 1 });
        }, IDLE_MS);
      }
    }
  }
}
