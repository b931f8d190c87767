/**
 * The servers scripts/setup-test-services.sh starts for the tests (all on
 * loopback): PostgreSQL, an S3-compatible server (versitygw), and the SOPS
 * tools (sops, age). Each test gets a fresh database or bucket of its own.
 * When they are missing the test fails with what to run, never skips: as
 * root the set-up script is run once first (as the lxc tests do with the
 * sandbox host), elsewhere the message says to run it as root.
 */
import { execFile } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SETUP = join(ROOT, "scripts", "setup-test-services.sh");

/** Where the set-up script describes what it started. */
export function servicesDir(env: NodeJS.ProcessEnv = process.env): string {
  return env["HOMELAB_TEST_SERVICES_DIR"] ?? "/run/homelab-test-services";
}

/** `services.json` as scripts/setup-test-services.sh writes it. */
export interface TestServices {
  postgres: { host: string; port: number; user: string; database: string; passwordFile: string; version: string };
  s3: { endpoint: string; region: string; credentialsFile: string; root: string; version: string };
  sops: { bin: string; version: string };
  age: { bin: string; keygen: string };
}

function run(file: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { env: o.env ?? process.env, timeout: o.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

function readServices(): TestServices | undefined {
  try {
    return JSON.parse(readFileSync(join(servicesDir(), "services.json"), "utf8")) as TestServices;
  } catch {
    return undefined;
  }
}

async function answers(s: TestServices): Promise<boolean> {
  try {
    await run("pg_isready", ["-q", "-h", s.postgres.host, "-p", String(s.postgres.port)], { timeoutMs: 10_000 });
    const res = await fetch(`http://${s.s3.endpoint}/`, { signal: AbortSignal.timeout(5000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

let ready: Promise<TestServices> | undefined;

/** The running test servers; runs the set-up script when root and they are missing, else fails saying what to run. */
export function testServices(): Promise<TestServices> {
  ready ??= (async () => {
    const found = readServices();
    if (found && (await answers(found))) return found;
    if (process.getuid?.() !== 0) {
      throw new Error(`the test servers (PostgreSQL, S3, sops, age) are not running: run scripts/setup-test-services.sh as root (scripts/test.sh does when run as root)`);
    }
    await run("bash", [SETUP], { timeoutMs: 30 * 60_000 });
    const again = readServices();
    if (!again || !(await answers(again))) throw new Error(`scripts/setup-test-services.sh ran but the servers do not answer; see ${servicesDir()}/versitygw.log and pg_lsclusters`);
    return again;
  })();
  return ready;
}

function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

/** A database of a test's own, and how to reach it. */
export interface TestDatabase {
  name: string;
  /** A `postgres://` URL without the password (that comes from PGPASSWORD). */
  url: string;
  /** What a client needs in its environment: PGPASSWORD. */
  env: Record<string, string>;
  /** Runs SQL in the database with psql; returns its unaligned output. */
  sql(query: string): Promise<string>;
  drop(): Promise<void>;
}

/** Creates a fresh, empty database for one test. */
export async function freshDatabase(): Promise<TestDatabase> {
  const s = (await testServices()).postgres;
  const name = uniqueName("homelab_t_");
  const env = { PGPASSWORD: readFileSync(s.passwordFile, "utf8").trim() };
  const psql = (db: string, query: string): Promise<string> =>
    run("psql", ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", s.host, "-p", String(s.port), "-U", s.user, "-d", db, "-c", query], { env: { ...process.env, ...env } }).then((r) => r.stdout);
  await psql(s.database, `CREATE DATABASE ${name}`);
  return {
    name,
    url: `postgres://${s.user}@${s.host}:${s.port}/${name}?sslmode=disable`,
    env,
    sql: (query) => psql(name, query),
    drop: async () => {
      await psql(s.database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** The S3 credentials file (`AWS_ACCESS_KEY_ID=...` lines), read into variables. */
export function s3Credentials(file: string): { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string } {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) vars[m[1]] = m[2];
  }
  const id = vars["AWS_ACCESS_KEY_ID"];
  const secret = vars["AWS_SECRET_ACCESS_KEY"];
  if (!id || !secret) throw new Error(`${file} lacks AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY`);
  return { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret };
}

/** A bucket of a test's own, and how to reach it. */
export interface TestBucket {
  name: string;
  /** The Pulumi backend URL for it (path-style, plain HTTP, the server's region). */
  url: string;
  /** What a client needs in its environment: the AWS credentials and region. */
  env: Record<string, string>;
  /** The server's folder holding the bucket's objects (its posix backend: one file per object). */
  root: string;
  drop(): Promise<void>;
}

function sha256(data: string): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** Sends one S3 request signed with AWS Signature Version 4 (no body), path-style. */
async function s3Request(method: "PUT" | "DELETE" | "GET", s: TestServices["s3"], path: string): Promise<{ status: number; body: string }> {
  const creds = s3Credentials(s.credentialsFile);
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payload = sha256("");
  const headers: Record<string, string> = { host: s.endpoint, "x-amz-content-sha256": payload, "x-amz-date": amzDate };
  const names = Object.keys(headers).sort();
  const canonical = [method, path, "", ...names.map((n) => `${n}:${headers[n] ?? ""}`), "", names.join(";"), payload].join("\n");
  const scope = `${day}/${s.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.AWS_SECRET_ACCESS_KEY}`, day), s.region), "s3"), "aws4_request");
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  const authorization = `AWS4-HMAC-SHA256 Credential=${creds.AWS_ACCESS_KEY_ID}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  const res = await fetch(`http://${s.endpoint}${path}`, {
    method,
    headers: { "x-amz-content-sha256": payload, "x-amz-date": amzDate, authorization },
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text() };
}

/** Creates a fresh, empty bucket for one test (through the S3 API, as a user would). */
export async function freshBucket(): Promise<TestBucket> {
  const s = (await testServices()).s3;
  const name = uniqueName("homelab-t-");
  const made = await s3Request("PUT", s, `/${name}`);
  if (made.status !== 200) throw new Error(`creating bucket ${name} on ${s.endpoint}: HTTP ${made.status} ${made.body}`);
  return {
    name,
    url: `s3://${name}?endpoint=${s.endpoint}&disableSSL=true&s3ForcePathStyle=true&region=${s.region}`,
    env: { ...s3Credentials(s.credentialsFile), AWS_REGION: s.region },
    root: join(s.root, name),
    drop: () => {
      // The bucket's objects are files in the server's posix folder; removing
      // the folder is the quickest way to empty and delete it.
      rmSync(join(s.root, name), { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

/** The sops and age tools: their paths, and an environment whose PATH has them first. */
export async function sopsTools(): Promise<{ sops: string; age: string; ageKeygen: string; path: string }> {
  const s = await testServices();
  const dirs = [s.sops.bin, s.age.bin, s.age.keygen].map((b) => b.slice(0, b.lastIndexOf("/")));
  return { sops: s.sops.bin, age: s.age.bin, ageKeygen: s.age.keygen, path: [...new Set(dirs), process.env["PATH"] ?? ""].join(":") };
}
