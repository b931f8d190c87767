/**
 * homelab's own read access to a self-managed Pulumi backend's objects: the
 * blob store Pulumi keeps its stacks, locks and history in (a folder, a
 * PostgreSQL table, an S3 bucket). Reading the state and the locks directly
 * saves a Pulumi CLI start per stack and per command, and it is the only way
 * to see who holds a lock: the CLI has no command that shows it. What the
 * objects are is Pulumi's layout (pulumi-internals.ts); this module only
 * lists, reads and deletes them.
 *
 * The PostgreSQL and S3 stores are loaded only when such a backend is used.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Backend } from "./settings.ts";

/** The backend could not be read or written: what failed (never a credential) and what to check. */
export class BackendStoreError extends Error {
  readonly hint: string;
  constructor(message: string, hint: string, cause?: unknown) {
    super(message, cause !== undefined ? { cause } : undefined);
    this.name = "BackendStoreError";
    this.hint = hint;
  }
}

/** Objects of a backend, by key relative to the backend's root (`.pulumi/...`). */
export interface BackendStore {
  /** Every key under a prefix (at any depth), sorted. */
  list(prefix: string): Promise<string[]>;
  /** An object's bytes; undefined when there is none. */
  read(key: string): Promise<Buffer | undefined>;
  /** Deletes an object (nothing when it is gone already). */
  remove(key: string): Promise<void>;
  /** Where a key is, for messages (a path for a folder, else the key). */
  where(key: string): string;
  /** Whether Pulumi has yet to set the backend up on its first open (a PostgreSQL table not made yet). */
  unopened?(): Promise<boolean>;
}

/** A file backend's folder. */
export class FileStore implements BackendStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async list(prefix: string): Promise<string[]> {
    // The prefix names a folder (Pulumi's keys are paths); list below it.
    const base = path.join(this.dir, prefix);
    let entries;
    try {
      entries = await readdir(base, { recursive: true, withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return [];
      throw e;
    }
    return entries
      .filter((e) => e.isFile() && !e.name.endsWith(".attrs"))
      .map((e) => path.relative(this.dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
      .sort();
  }

  async read(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(path.join(this.dir, key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    await rm(path.join(this.dir, key), { force: true });
    // The metadata gocloud.dev's fileblob writes next to each object.
    await rm(path.join(this.dir, `${key}.attrs`), { force: true });
  }

  where(key: string): string {
    return path.join(this.dir, key);
  }
}

/**
 * The store of a backend, with the credentials in `env` (the process's
 * variables and those homelab gives the CLI); undefined for backends homelab
 * does not read itself (gs://, azblob://, Pulumi Cloud; S3 without keys it can
 * find), which are then read through the Pulumi CLI.
 */
export async function openStore(backend: Backend, env: NodeJS.ProcessEnv): Promise<BackendStore | undefined> {
  if (backend.dir !== undefined) return new FileStore(backend.dir);
  if (backend.scheme === "postgres") {
    const { PostgresStore } = await import("./store-postgres.ts");
    return new PostgresStore(backend.url, env);
  }
  if (backend.scheme === "s3") {
    const { openS3Store } = await import("./store-s3.ts");
    return openS3Store(backend.url, env);
  }
  return undefined;
}
