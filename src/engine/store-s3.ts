/**
 * An s3:// backend's objects through the S3 API (ListObjectsV2, GetObject,
 * DeleteObject), signed with AWS Signature Version 4. The URL is read as
 * Pulumi 3.274.1 reads it (pkg/backend/diy/backend.go translateLegacyS3Params,
 * then gocloud.dev's s3blob): `s3://BUCKET[/PREFIX]?endpoint=HOST[:PORT]` (a
 * bare endpoint is https unless `disableSSL=true`/`disable_https=true`),
 * `region`, path-style addressing with `s3ForcePathStyle=true` or
 * `use_path_style=true`, `profile`.
 *
 * Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
 * AWS_SESSION_TOKEN), else the static keys of the profile (`profile=`,
 * AWS_PROFILE, else `default`) in the shared credentials file. Others the AWS
 * SDK knows (SSO, roles, instance metadata) homelab does not: then there is
 * no store, and the state is read through the Pulumi CLI.
 */
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { BackendStoreError } from "./backend-store.ts";
import type { BackendStore } from "./backend-store.ts";

/** Where an s3:// backend's objects are and how to sign for them. */
export interface S3Location {
  bucket: string;
  /** The URL's path, as a key prefix (`homelab/`), or empty. */
  prefix: string;
  /** `https://s3.REGION.amazonaws.com` or the URL's endpoint, with its scheme. */
  endpoint: string;
  region: string;
  pathStyle: boolean;
  anonymous: boolean;
  profile: string;
}

/** Static S3 credentials. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string | undefined;
}

const truthy = (v: string | null | undefined): boolean => v !== null && v !== undefined && /^(1|t|true)$/i.test(v);

/** Reads an s3:// backend URL. Pure. */
export function s3Location(url: string, env: NodeJS.ProcessEnv): S3Location {
  const u = new URL(url);
  const q = u.searchParams;
  const region = q.get("region") || env["AWS_REGION"] || env["AWS_DEFAULT_REGION"] || "us-east-1";
  const plain = truthy(q.get("disableSSL")) || truthy(q.get("disable_https"));
  const given = q.get("endpoint");
  const endpoint = given ? (given.includes("://") ? given : `${plain ? "http" : "https"}://${given}`) : `https://s3.${region}.amazonaws.com`;
  const prefix = decodeURIComponent(u.pathname.replace(/^\/+/, ""));
  return {
    bucket: decodeURIComponent(u.hostname),
    prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`,
    endpoint: endpoint.replace(/\/+$/, ""),
    region,
    pathStyle: truthy(q.get("s3ForcePathStyle")) || truthy(q.get("use_path_style")),
    anonymous: truthy(q.get("anonymous")),
    profile: q.get("profile") || env["AWS_PROFILE"] || "default",
  };
}

/** The static credentials homelab can find: the variables, else the profile's keys in the shared credentials file. */
export function s3Credentials(loc: S3Location, env: NodeJS.ProcessEnv): S3Credentials | undefined {
  const id = env["AWS_ACCESS_KEY_ID"];
  const secret = env["AWS_SECRET_ACCESS_KEY"];
  if (id && secret) return { accessKeyId: id, secretAccessKey: secret, sessionToken: env["AWS_SESSION_TOKEN"] || undefined };
  const file = env["AWS_SHARED_CREDENTIALS_FILE"] || path.join(env["HOME"] ?? homedir(), ".aws", "credentials");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const section = iniSection(text, loc.profile);
  const pid = section["aws_access_key_id"];
  const psecret = section["aws_secret_access_key"];
  return pid && psecret ? { accessKeyId: pid, secretAccessKey: psecret, sessionToken: section["aws_session_token"] || undefined } : undefined;
}

function iniSection(text: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inside = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const head = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (head) {
      inside = head[1] === name;
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (inside && kv?.[1] !== undefined && kv[2] !== undefined) out[kv[1].toLowerCase()] = kv[2];
  }
  return out;
}

/** An s3:// backend's store, or undefined when homelab cannot find its credentials. */
export function openS3Store(url: string, env: NodeJS.ProcessEnv): S3Store | undefined {
  const loc = s3Location(url, env);
  const creds = loc.anonymous ? undefined : s3Credentials(loc, env);
  if (!loc.anonymous && creds === undefined) return undefined;
  return new S3Store(loc, creds);
}

/** RFC 3986 encoding, as SigV4 wants it (encodeURIComponent leaves !'()* alone). Pure. */
export function uriEncode(s: string, keepSlash = false): string {
  const enc = encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return keepSlash ? enc.replace(/%2F/g, "/") : enc;
}

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data).digest();

/**
 * The headers of a SigV4-signed request without a body (AWS's "Signature
 * Version 4 signing process"; S3 signs the payload's hash too). Pure.
 */
export function signRequest(o: { method: string; url: URL; region: string; creds: S3Credentials; now: Date }): Record<string, string> {
  const amzDate = o.now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payload = sha256("");
  const headers: Record<string, string> = { host: o.url.host, "x-amz-content-sha256": payload, "x-amz-date": amzDate };
  if (o.creds.sessionToken !== undefined) headers["x-amz-security-token"] = o.creds.sessionToken;
  const names = Object.keys(headers).sort();
  // The query as sent, already RFC 3986-encoded (see #request), sorted by name.
  const query = o.url.search
    .slice(1)
    .split("&")
    .filter((p) => p !== "")
    .map((p) => (p.includes("=") ? p : `${p}=`))
    .map((p) => [p.slice(0, p.indexOf("=")), p] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([, p]) => p)
    .join("&");
  const canonical = [o.method, o.url.pathname, query, ...names.map((n) => `${n}:${headers[n] ?? ""}`), "", names.join(";"), payload].join("\n");
  const scope = `${day}/${o.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${o.creds.secretAccessKey}`, day), o.region), "s3"), "aws4_request");
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  const { host: _host, ...rest } = headers;
  return { ...rest, authorization: `AWS4-HMAC-SHA256 Credential=${o.creds.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}` };
}

function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    if (e[0] === "#") return String.fromCodePoint(e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" } as Record<string, string>)[e.toLowerCase()] ?? "";
  });
}

/** The keys, and the token of the next page, of a ListObjectsV2 answer. Pure. */
export function parseListing(xml: string): { keys: string[]; next: string | undefined } {
  const keys = [...xml.matchAll(/<Contents>[\s\S]*?<Key>([\s\S]*?)<\/Key>[\s\S]*?<\/Contents>/g)].map((m) => xmlText(m[1] ?? ""));
  const truncated = /<IsTruncated>\s*true\s*<\/IsTruncated>/i.test(xml);
  const token = /<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/.exec(xml)?.[1];
  return { keys, next: truncated && token !== undefined ? xmlText(token) : undefined };
}

/** An s3:// backend's bucket. */
export class S3Store implements BackendStore {
  readonly loc: S3Location;
  readonly #creds: S3Credentials | undefined;

  constructor(loc: S3Location, creds: S3Credentials | undefined) {
    this.loc = loc;
    this.#creds = creds;
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const params: Record<string, string> = { "list-type": "2", prefix: this.loc.prefix + prefix, ...(token !== undefined ? { "continuation-token": token } : {}) };
      const res = await this.#request("GET", undefined, params);
      if (res.status === 404 && /NoSuchBucket/.test(res.body)) throw new BackendStoreError(`the S3 bucket ${this.loc.bucket} does not exist at ${this.loc.endpoint}`, "create it first (docs/state.md), or fix the bucket name in the backend URL");
      if (res.status !== 200) throw this.#failure("listing", res);
      const page = parseListing(res.body);
      keys.push(...page.keys.map((k) => k.slice(this.loc.prefix.length)));
      token = page.next;
    } while (token !== undefined);
    return keys.sort();
  }

  async read(key: string): Promise<Buffer | undefined> {
    const res = await this.#request("GET", this.loc.prefix + key);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.#failure(`reading ${key}`, res);
    return res.bytes;
  }

  async remove(key: string): Promise<void> {
    const res = await this.#request("DELETE", this.loc.prefix + key);
    if (res.status !== 204 && res.status !== 200 && res.status !== 404) throw this.#failure(`deleting ${key}`, res);
  }

  where(key: string): string {
    return `s3://${this.loc.bucket}/${this.loc.prefix}${key}`;
  }

  #failure(what: string, res: { status: number; body: string }): Error {
    const code = /<Code>([^<]*)<\/Code>/.exec(res.body)?.[1];
    const message = /<Message>([^<]*)<\/Message>/.exec(res.body)?.[1];
    const keys = code === "SignatureDoesNotMatch" || code === "InvalidAccessKeyId" || res.status === 403;
    return new BackendStoreError(
      `S3 state backend ${this.loc.endpoint}, bucket ${this.loc.bucket}: ${what}: HTTP ${res.status}${code ? ` ${code}` : ""}${message ? `: ${xmlText(message)}` : ""}`,
      keys ? "check the access key id and secret key (homelab:backend access_key_id_* / secret_access_key_*, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the region" : "check the backend URL's endpoint, bucket and region; see docs/state.md",
    );
  }

  async #request(method: "GET" | "DELETE", key: string | undefined, params: Record<string, string> = {}): Promise<{ status: number; body: string; bytes: Buffer }> {
    const base = new URL(this.loc.endpoint);
    const keyPath = key !== undefined ? `/${uriEncode(key, true)}` : "/";
    const url = this.loc.pathStyle ? new URL(`${base.origin}/${uriEncode(this.loc.bucket)}${key !== undefined ? keyPath : ""}`) : new URL(`${base.protocol}//${this.loc.bucket}.${base.host}${keyPath}`);
    // Encoded once, as SigV4 wants it, so what is signed is what is sent.
    const query = Object.entries(params).map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`);
    if (query.length > 0) url.search = `?${query.join("&")}`;
    const headers = this.#creds ? signRequest({ method, url, region: this.loc.region, creds: this.#creds, now: new Date() }) : {};
    let res: Response;
    try {
      res = await fetch(url, { method, headers, signal: AbortSignal.timeout(30_000) });
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : "";
      throw new BackendStoreError(`cannot reach the S3 state backend ${this.loc.endpoint}: ${e instanceof Error ? e.message : String(e)}${cause}`, "check the endpoint in the backend URL (a bare host:port means https unless disableSSL=true)", e);
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, body: res.status === 200 && method === "GET" && key !== undefined ? "" : bytes.toString("utf8"), bytes };
  }
}
