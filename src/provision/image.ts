/**
 * `docker:image`: builds an image from a service's folder with the Docker
 * Engine API (dockerode), tags it with the content hash of its build context,
 * and pushes it to the environment's registry. The hash makes rebuilds
 * exact: the same context (files, Dockerfile, build args) gives the same tag,
 * and a tag already in the registry (or, without one, in the local engine)
 * is not built again.
 *
 * dockerode rather than the docker CLI: the build and push streams are JSON
 * messages (steps, errors) instead of text that changes between CLI versions
 * and builders, and nothing but the Engine's socket is needed.
 */
import { createHash } from "node:crypto";
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import { isIP } from "node:net";
import { join, posix, relative, sep } from "node:path";
import dockerignoreModule from "@balena/dockerignore";
import Docker from "dockerode";
import { request } from "undici";
import type { RegistryAccess } from "./compose-files.ts";

type IgnoreFactory = (o?: { ignorecase?: boolean }) => { add(patterns: string): { createFilter(): (path: string) => boolean } };
// A CommonJS module whose typings declare an ES default; at run time the import is the factory itself.
const dockerignore = ((dockerignoreModule as unknown as { default?: IgnoreFactory }).default ?? dockerignoreModule) as unknown as IgnoreFactory;

/** An image to build. */
export interface ImageSpec {
  /** The resource id, for messages. */
  id?: string;
  /** Repository name, e.g. `hello`. */
  name: string;
  /** Build context folder (absolute). */
  context: string;
  /** Dockerfile path inside the context (default `Dockerfile`). */
  dockerfile?: string;
  buildArgs?: Readonly<Record<string, string>>;
  /** Push here when set. */
  registry?: RegistryAccess;
}

/** The content hash of a build context. */
export interface ContextHash {
  /** sha256 hex over the files (path, mode, content), the Dockerfile name and the build args. */
  hash: string;
  /** The image tag: the hash's first 16 hex digits. */
  tag: string;
  /** The files sent to the Engine, relative, sorted. */
  files: string[];
}

/** Thrown when an image cannot be built or pushed, with what to do. */
export class ImageError extends Error {
  /** The build step that failed, e.g. `Step 3/5 : RUN make`. */
  readonly step: string | undefined;
  /** That step's output. */
  readonly output: string[];
  constructor(message: string, o: { step?: string; output?: string[]; cause?: unknown } = {}) {
    super(message, o.cause !== undefined ? { cause: o.cause } : undefined);
    this.name = "ImageError";
    this.step = o.step;
    this.output = o.output ?? [];
  }
}

function toPosix(p: string): string {
  return sep === "/" ? p : p.split(sep).join("/");
}

async function walk(root: string, dir: string, out: string[]): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, e.name);
    if (e.isDirectory()) await walk(root, abs, out);
    else out.push(toPosix(relative(root, abs)));
  }
}

/** The files of a context after `.dockerignore` (the Dockerfile and .dockerignore always go, as with the Docker CLI). */
export async function contextFiles(context: string, dockerfile = "Dockerfile"): Promise<string[]> {
  const all: string[] = [];
  await walk(context, context, all);
  let kept = all;
  const ignoreText = await readFile(join(context, ".dockerignore"), "utf8").catch(() => undefined);
  if (ignoreText !== undefined) {
    const filter = dockerignore({ ignorecase: false }).add(ignoreText).createFilter();
    kept = all.filter((f) => filter(f) || f === posix.normalize(dockerfile) || f === ".dockerignore");
  }
  return kept.sort();
}

/** Hashes a build context: what decides whether an image must be rebuilt. */
export async function hashContext(spec: Pick<ImageSpec, "context" | "dockerfile" | "buildArgs">): Promise<ContextHash> {
  const dockerfile = spec.dockerfile ?? "Dockerfile";
  const files = await contextFiles(spec.context, dockerfile);
  if (!files.includes(posix.normalize(dockerfile))) throw new ImageError(`no ${dockerfile} in ${spec.context}`);
  const h = createHash("sha256");
  h.update("homelab-image-v1\0");
  h.update(`dockerfile\0${dockerfile}\0`);
  for (const [k, v] of Object.entries(spec.buildArgs ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`arg\0${k}\0${v}\0`);
  for (const f of files) {
    const abs = join(spec.context, f);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) {
      h.update(`link\0${f}\0${await readlink(abs)}\0`);
    } else {
      // Only the executable bit: other mode bits and times differ between checkouts.
      h.update(`file\0${f}\0${st.mode & 0o111 ? "x" : "-"}\0`);
      h.update(createHash("sha256").update(await readFile(abs)).digest("hex"));
      h.update("\0");
    }
  }
  const hash = h.digest("hex");
  return { hash, tag: hash.slice(0, 16), files };
}

function registryHost(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/+$/, "");
}

/** The reference an image is built and pushed as: `<registry>/<name>:<tag>`, or `<name>:<tag>` without a registry. */
export function imageRef(spec: Pick<ImageSpec, "name" | "registry">, tag: string): string {
  return spec.registry ? `${registryHost(spec.registry.url)}/${spec.name}:${tag}` : `${spec.name}:${tag}`;
}

/** One JSON message of a build or push stream. */
export interface StreamMessage {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string };
}

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/**
 * Follows a legacy-builder stream: the current `Step N/M : ...`, the output
 * since it, and the error. Pure, so the failure message is tested without an
 * Engine.
 */
export class BuildLog {
  step: string | undefined;
  stepOutput: string[] = [];
  error: string | undefined;
  imageId: string | undefined;
  #partial = "";

  /** Takes one message; returns the complete lines it carried (for streaming). */
  push(m: StreamMessage): string[] {
    if (m.aux?.ID) this.imageId = m.aux.ID;
    if (m.error !== undefined || m.errorDetail?.message !== undefined) {
      this.error = m.errorDetail?.message ?? m.error;
      return [`ERROR: ${this.error ?? ""}`];
    }
    const text = m.stream ?? (m.status !== undefined ? `${m.id ? `${m.id}: ` : ""}${m.status}${m.progress ? ` ${m.progress}` : ""}\n` : "");
    this.#partial += text;
    const parts = this.#partial.split("\n");
    this.#partial = parts.pop() ?? "";
    // The legacy builder colours a RUN step's stderr; messages are plain text.
    const lines = parts.map((l) => l.replace(/\r$/, "").replace(ANSI_COLOUR, ""));
    for (const line of lines) {
      if (/^Step \d+\/\d+ : /.test(line)) {
        this.step = line;
        this.stepOutput = [];
      } else if (line.trim() !== "" && !/^ ---> |^Removing intermediate container /.test(line)) {
        this.stepOutput.push(line);
      }
    }
    return lines;
  }

  /** The message for a failed build: which step, its output (last 40 lines) and the Engine's error. */
  failure(what: string): ImageError {
    const out = this.stepOutput.slice(-40);
    const lines = [`${what}: the build failed${this.step ? ` at ${this.step}` : ""}`];
    if (out.length > 0) lines.push(...out.map((l) => `  | ${l}`));
    if (this.error) lines.push(`  ${this.error}`);
    return new ImageError(lines.join("\n"), { ...(this.step ? { step: this.step } : {}), output: out });
  }
}

async function consume(stream: NodeJS.ReadableStream, onMessage: (m: StreamMessage) => void): Promise<void> {
  let buf = "";
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    buf += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onMessage(parseMessage(line));
    }
  }
  if (buf.trim()) onMessage(parseMessage(buf.trim()));
}

function parseMessage(line: string): StreamMessage {
  try {
    return JSON.parse(line) as StreamMessage;
  } catch {
    return { stream: `${line}\n` };
  }
}

/** Whether the Engine treats a registry as plain HTTP (loopback always; else insecure-registries by name or CIDR). */
export function engineTrustsInsecure(info: { RegistryConfig?: { IndexConfigs?: Record<string, { Secure?: boolean }>; InsecureRegistryCIDRs?: string[] } }, url: string): boolean {
  const host = registryHost(url);
  const hostname = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  if (hostname === "localhost" || hostname === "::1" || /^127\./.test(hostname)) return true;
  const cfg = info.RegistryConfig;
  if (cfg?.IndexConfigs?.[host]?.Secure === false || cfg?.IndexConfigs?.[hostname]?.Secure === false) return true;
  if (isIP(hostname) !== 4) return false;
  const ip = ipv4ToInt(hostname);
  return (cfg?.InsecureRegistryCIDRs ?? []).some((cidr) => {
    const [net, bits] = cidr.split("/");
    if (!net || isIP(net) !== 4) return false;
    const n = Number(bits ?? 32);
    const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
    return ((ip & mask) >>> 0) === ((ipv4ToInt(net) & mask) >>> 0);
  });
}

function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

/** Whether the registry already has `name:tag` (HEAD on the manifest); undefined when it cannot say (e.g. token auth). */
export async function registryHasTag(registry: RegistryAccess, name: string, tag: string, timeoutMs = 10_000): Promise<boolean | undefined> {
  const base = `${registry.insecure ? "http" : "https"}://${registryHost(registry.url)}`;
  const headers: Record<string, string> = {
    accept: [
      "application/vnd.docker.distribution.manifest.v2+json",
      "application/vnd.docker.distribution.manifest.list.v2+json",
      "application/vnd.oci.image.manifest.v1+json",
      "application/vnd.oci.image.index.v1+json",
    ].join(", "),
  };
  if (registry.username !== undefined && registry.password !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString("base64")}`;
  }
  try {
    const res = await request(`${base}/v2/${name}/manifests/${tag}`, { method: "HEAD", headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    return undefined;
  } catch {
    return undefined;
  }
}

/** How ensureImage talks and reports. */
export interface EnsureImageOptions {
  /** The Engine (default: DOCKER_HOST or the local socket). */
  docker?: Docker;
  /** Build and push output, line by line (for --verbose). */
  onOutput?: (line: string) => void;
  /** Build even when the tag exists. */
  force?: boolean;
  /** Hash already computed (the provider's diff computes it first). */
  hash?: ContextHash;
}

/** What ensureImage did. */
export interface ImageResult {
  ref: string;
  tag: string;
  hash: string;
  built: boolean;
  pushed: boolean;
  /** Why it did or skipped the build, e.g. "already in the registry". */
  reason: string;
  buildMs: number;
  pushMs: number;
}

function label(spec: ImageSpec): string {
  return `docker:image ${spec.id ?? spec.name}`;
}

function engineError(spec: ImageSpec, err: unknown): ImageError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/ENOENT|ECONNREFUSED|connect EACCES/.test(msg)) {
    return new ImageError(`${label(spec)}: cannot reach the Docker Engine (${msg})`, { cause: err });
  }
  return new ImageError(`${label(spec)}: ${msg}`, { cause: err });
}

/** Builds the image into the local Engine with the legacy builder, streaming output; throws an ImageError naming the failed step. */
export async function buildImage(spec: ImageSpec, ref: string, files: string[], o: { docker: Docker; onOutput?: (line: string) => void }): Promise<void> {
  const log = new BuildLog();
  let stream: NodeJS.ReadableStream;
  try {
    stream = await o.docker.buildImage(
      { context: spec.context, src: files },
      { t: ref, dockerfile: spec.dockerfile ?? "Dockerfile", buildargs: { ...(spec.buildArgs ?? {}) }, rm: true, forcerm: true, labels: { "org.homelab.context-hash": ref.split(":").pop() ?? "" } },
    );
  } catch (err) {
    throw engineError(spec, err);
  }
  await consume(stream, (m) => {
    for (const line of log.push(m)) o.onOutput?.(line);
  });
  if (log.error !== undefined) throw log.failure(label(spec));
}

/** Pushes `ref` to its registry, streaming progress; throws with the registry's error. */
async function pushImage(spec: ImageSpec, ref: string, o: { docker: Docker; onOutput?: (line: string) => void }): Promise<void> {
  const registry = spec.registry;
  if (!registry) throw new ImageError(`${label(spec)}: no registry to push to`);
  const colon = ref.lastIndexOf(":");
  const repo = ref.slice(0, colon);
  const tag = ref.slice(colon + 1);
  // The Engine insists on an auth header, even an empty one.
  const authconfig = registry.username !== undefined ? { username: registry.username, password: registry.password ?? "", serveraddress: registryHost(registry.url) } : {};
  let stream: NodeJS.ReadableStream;
  try {
    stream = await o.docker.getImage(repo).push({ tag, authconfig });
  } catch (err) {
    throw engineError(spec, err);
  }
  let error: string | undefined;
  await consume(stream, (m) => {
    if (m.error !== undefined || m.errorDetail?.message !== undefined) error = m.errorDetail?.message ?? m.error;
    else if (m.status && !m.progress) o.onOutput?.(`${m.id ? `${m.id}: ` : ""}${m.status}`);
  });
  if (error !== undefined) {
    const hint = /http: server gave HTTP response to HTTPS client/.test(error)
      ? ` → the Docker Engine does not treat ${registryHost(registry.url)} as an insecure registry: add it to "insecure-registries" in /etc/docker/daemon.json and reload dockerd`
      : /unauthorized|authentication required/i.test(error)
        ? " → check the registry's username and password in the environment file"
        : "";
    throw new ImageError(`${label(spec)}: pushing ${ref} failed: ${error}${hint}`);
  }
}

/**
 * Makes sure the image of a context exists where it is needed: in the
 * registry when one is set (else in the local Engine). Builds only when the
 * content-hash tag is missing, pushes only what the registry lacks.
 */
export async function ensureImage(spec: ImageSpec, o: EnsureImageOptions = {}): Promise<ImageResult> {
  const docker = o.docker ?? new Docker();
  const h = o.hash ?? (await hashContext(spec));
  const ref = imageRef(spec, h.tag);
  const result: ImageResult = { ref, tag: h.tag, hash: h.hash, built: false, pushed: false, reason: "", buildMs: 0, pushMs: 0 };
  if (spec.registry && !o.force) {
    const has = await registryHasTag(spec.registry, spec.name, h.tag);
    if (has === true) return { ...result, reason: "already in the registry" };
  }
  if (spec.registry?.insecure) {
    const info = (await docker.info().catch((err: unknown) => {
      throw engineError(spec, err);
    })) as Parameters<typeof engineTrustsInsecure>[0];
    if (!engineTrustsInsecure(info, spec.registry.url)) {
      throw new ImageError(
        `${label(spec)}: the registry ${registryHost(spec.registry.url)} is plain HTTP (insecure: true) but the Docker Engine here does not allow that → add it to "insecure-registries" in /etc/docker/daemon.json (or dockerd --insecure-registry) and reload dockerd`,
      );
    }
  }
  const local = o.force ? false : await docker.getImage(ref).inspect().then(() => true, () => false);
  if (local) {
    result.reason = "already built locally";
  } else {
    const t = Date.now();
    o.onOutput?.(`building ${ref} from ${spec.context}`);
    await buildImage(spec, ref, h.files, { docker, ...(o.onOutput ? { onOutput: o.onOutput } : {}) });
    result.built = true;
    result.buildMs = Date.now() - t;
    result.reason = o.force ? "forced" : "context changed";
  }
  if (spec.registry) {
    const t = Date.now();
    await pushImage(spec, ref, { docker, ...(o.onOutput ? { onOutput: o.onOutput } : {}) });
    result.pushed = true;
    result.pushMs = Date.now() - t;
  }
  return result;
}
