import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Diagnostic } from "../util/diagnostics.ts";
import { fingerprint } from "../util/hash.ts";
import { assembleRepository, requireServices } from "./cross-service.ts";
import { discoverServices, environmentFile } from "./discover.ts";
import { emptyEnvironment } from "./environment-defaults.ts";
import { validateCacheFile } from "./homelab-dir.ts";
import type { EnvironmentConfig } from "./environment.ts";
import { checkProbes, currentSignature, recordProbes, settledSignature, type Probe } from "./fs-probe.ts";
import type { Monitoring } from "./monitoring.ts";
import type { Repository } from "./repository.ts";
import type { ResourceDecl, ServiceLoad } from "./service.ts";
import type * as ServiceModule from "./service.ts";
import { deferredSource } from "./source.ts";
import type { ServiceSummary } from "./summary.ts";

/**
 * The validate cache: `homelab validate` remembers each service that validated
 * with no diagnostic at all, with every file its validation read or looked for
 * (fs-probe.ts) and what it saw there, and serves it from
 * `<repo>/.homelab/cache/validate.json` while all of that is unchanged, the
 * environment is the same and the tool is the same (its config and util
 * modules, its package files, the Node version). A service that is served from
 * the cache costs no YAML parsing and no schema; when every service and the
 * environment are, the schema library is not even loaded. Problems are never
 * cached: a service with any diagnostic is validated afresh every time, so its
 * messages and positions are current. The checks between services (depends_on
 * targets, cycles) run on every invocation. A missing, corrupt or foreign cache
 * file is ignored; one that cannot be written is not an error. Only values the
 * service files declare are stored (no secret is read while validating a
 * service; an environment holds references to secrets, never their values).
 */

/** Bump when the file's shape changes. */
const FORMAT = 2;
/** Services keep one entry per environment they were validated against, up to this many. */
const MAX_VARIANTS = 4;

/** A valid environment and what its loading read. */
interface EnvironmentEntry {
  probes: Probe[];
  home: string;
  env: Omit<EnvironmentConfig, "source">;
}

/** A service that validated with no diagnostic, against the environment `context` names. */
interface ServiceEntry {
  context: string;
  probes: Probe[];
  name: string;
  summary: ServiceSummary;
  service: { name: string; description: string | undefined; resources: ResourceDecl[]; monitoring: Monitoring | undefined };
}

interface CacheFile {
  format: number;
  node: string;
  tool: ToolFile[];
  root: string;
  /** By environment name. */
  environments: Record<string, EnvironmentEntry>;
  /** By service.yaml path, most recently used first. */
  services: Record<string, ServiceEntry[]>;
}

/** One of the tool's own files: its content's fingerprint, and its stat signature once settled. */
type ToolFile = [path: string, seen: string, signature?: string];

/**
 * What the tool's verdicts depend on besides the user's files: the config and
 * util folders this module is in (sources or compiled, whichever runs) and the
 * package files (dependency versions). With the Node version, they decide
 * whether a cache file was written by the same tool.
 */
function toolFiles(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const files: string[] = [];
  for (const dir of [here, join(here, "..", "util")]) {
    try {
      const names = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((n) => /\.[cm]?[jt]s$/.test(n));
      files.push(...names.sort().map((n) => join(dir, n)));
    } catch {
      // a folder that cannot be listed contributes nothing
    }
  }
  const toolRoot = join(here, "..", "..");
  files.push(join(toolRoot, "package.json"), join(toolRoot, "package-lock.json"));
  return files;
}

function toolFile(path: string): ToolFile {
  const signature = settledSignature(path); // before reading: a write after it moves the ctime away from it
  let seen: string;
  try {
    seen = fingerprint(readFileSync(path));
  } catch (e) {
    return [path, `error:${(e as NodeJS.ErrnoException).code ?? "?"}`];
  }
  return signature === undefined ? [path, seen] : [path, seen, signature];
}

/** Whether the tool files recorded are the ones there are, unchanged; unchanged files whose signature moved get the new one. */
function sameTool(recorded: unknown, files: readonly string[]): { hold: boolean; refreshed: boolean } {
  const no = { hold: false, refreshed: false };
  if (!Array.isArray(recorded) || recorded.length !== files.length) return no;
  let refreshed = false;
  for (const [i, path] of files.entries()) {
    const r = recorded[i] as unknown;
    if (!Array.isArray(r) || r[0] !== path || typeof r[1] !== "string") return no;
    const known = typeof r[2] === "string" ? r[2] : undefined;
    if (known !== undefined && currentSignature(path) === known) continue;
    const now = toolFile(path);
    if (now[1] !== r[1]) return no;
    if (now[2] !== known) {
      recorded[i] = now;
      refreshed = true;
    }
  }
  return { hold: true, refreshed };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The cache file when it was written by this tool for this repository; `refreshed` when its tool signatures were updated. */
function readCache(root: string, tool: readonly string[]): { cache: CacheFile; refreshed: boolean } | undefined {
  let c: unknown;
  try {
    c = JSON.parse(readFileSync(validateCacheFile(root), "utf8"));
  } catch {
    return undefined;
  }
  if (!isObject(c) || c["format"] !== FORMAT || c["node"] !== process.version || c["root"] !== root) return undefined;
  if (!isObject(c["environments"]) || !isObject(c["services"])) return undefined;
  const same = sameTool(c["tool"], tool);
  return same.hold ? { cache: c as unknown as CacheFile, refreshed: same.refreshed } : undefined;
}

function isProbes(v: unknown): v is Probe[] {
  return (
    Array.isArray(v) &&
    v.every((p) => Array.isArray(p) && typeof p[0] === "string" && typeof p[2] === "string" && (p[1] === "stat" ? p.length === 3 : p[1] === "read" && (p.length === 3 || (p.length === 4 && typeof p[3] === "string"))))
  );
}

function isServiceEntry(v: unknown): v is ServiceEntry {
  if (!isObject(v) || typeof v["context"] !== "string" || !isProbes(v["probes"]) || typeof v["name"] !== "string" || !isObject(v["summary"])) return false;
  const s = v["service"];
  return isObject(s) && typeof s["name"] === "string" && Array.isArray(s["resources"]) && s["resources"].every((r) => isObject(r) && typeof r["id"] === "string" && typeof r["type"] === "string" && Array.isArray(r["dependsOn"]) && typeof r["index"] === "number" && isObject(r["spec"]));
}

function isEnvironmentEntry(v: unknown): v is EnvironmentEntry {
  return isObject(v) && isProbes(v["probes"]) && typeof v["home"] === "string" && isObject(v["env"]) && typeof v["env"]["name"] === "string";
}

/** True when a value survives JSON unchanged (finite numbers, plain objects, no holes). */
function jsonSafe(v: unknown): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v) && !Object.is(v, -0);
  if (Array.isArray(v)) return v.every((x) => x !== undefined && jsonSafe(x));
  if (typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(v).every((x) => x === undefined || jsonSafe(x));
}

function writeCache(root: string, cache: CacheFile): void {
  const file = validateCacheFile(root);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, JSON.stringify(cache));
    renameSync(tmp, file);
  } catch {
    // A read-only checkout, a full disk, .homelab not a folder: the next run validates afresh, nothing else.
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was written
    }
  }
}

function withoutSource(env: EnvironmentConfig): Omit<EnvironmentConfig, "source"> {
  const { source: _source, ...rest } = env;
  return rest;
}

function serviceFromEntry(file: string, e: ServiceEntry): ServiceLoad {
  const service = {
    name: e.service.name,
    description: e.service.description,
    dir: dirname(file),
    file,
    resources: e.service.resources,
    monitoring: e.service.monitoring,
    source: deferredSource(file, "service.yaml"),
  };
  return { name: e.name, file, service, summary: e.summary, diagnostics: [] };
}

function entryFromLoad(load: ServiceLoad, probes: Probe[], context: string): ServiceEntry | undefined {
  const s = load.service;
  if (!s || load.diagnostics.length > 0) return undefined;
  const entry: ServiceEntry = {
    context,
    probes,
    name: load.name,
    summary: load.summary,
    service: { name: s.name, description: s.description, resources: s.resources, monitoring: s.monitoring },
  };
  return jsonSafe(entry) ? entry : undefined;
}

/**
 * loadRepository with the validate cache: the same Repository (services from
 * the cache have a source that reads their file only when a position is asked
 * for), updating the cache file when anything in it changed.
 */
export async function loadRepositoryCached(opts: { root: string; envName: string | undefined; only?: readonly string[] }): Promise<Repository> {
  const { root, envName } = opts;
  const tool = toolFiles();
  const read = readCache(root, tool);
  const old = read?.cache;
  const next: CacheFile = { format: FORMAT, node: process.version, tool: old ? old.tool : tool.map(toolFile), root, environments: { ...old?.environments }, services: {} };
  let changed = read?.refreshed ?? false;
  const holds = (probes: Probe[]): boolean => {
    const { hold, refreshed } = checkProbes(probes);
    if (hold && refreshed) changed = true; // signatures of settled files, saved for the next run
    return hold;
  };

  const envDiagnostics: Diagnostic[] = [];
  let env: EnvironmentConfig = emptyEnvironment(envName ?? "default");
  let envFromFile = false;
  if (envName) {
    const file = environmentFile(root, envName);
    const entry = old?.environments[envName];
    if (file && isEnvironmentEntry(entry) && entry.env.file === file && entry.home === homedir() && holds(entry.probes)) {
      env = { ...entry.env, source: deferredSource(file, "environment file") };
      envFromFile = true;
    } else {
      const { loadEnvironment } = await import("./environment.ts");
      const { result, probes } = recordProbes(() => loadEnvironment(root, envName));
      envDiagnostics.push(...result.diagnostics);
      if (result.env) {
        env = result.env;
        envFromFile = true;
      }
      const fresh: EnvironmentEntry | undefined = result.env && result.diagnostics.length === 0 ? { probes, home: homedir(), env: withoutSource(result.env) } : undefined;
      if (fresh && jsonSafe(fresh)) {
        next.environments[envName] = fresh;
        changed = true;
      } else if (envName in next.environments) {
        delete next.environments[envName];
        changed = true;
      }
    }
  }

  const found = discoverServices(root);
  requireServices(root, found, opts.only);
  // Everything of the environment a service's checks can see (loadService gets it only when it came from a file).
  const context = envFromFile ? fingerprint(JSON.stringify(withoutSource(env))) : "no environment";
  let serviceModule: typeof ServiceModule | undefined;
  const loads: ServiceLoad[] = [];
  for (const f of found) {
    const variants = (old?.services[f.file] ?? []).filter(isServiceEntry);
    const hit = variants.findIndex((v) => v.context === context && holds(v.probes));
    const hitEntry = variants[hit];
    if (hitEntry) {
      loads.push(serviceFromEntry(f.file, hitEntry));
      next.services[f.file] = [hitEntry, ...variants.filter((_, i) => i !== hit)];
      if (hit !== 0) changed = true;
      continue;
    }
    serviceModule ??= await import("./service.ts");
    const { loadService } = serviceModule;
    const { result, probes } = recordProbes(() => loadService(f.file, envFromFile ? env : undefined));
    loads.push(result);
    const fresh = entryFromLoad(result, probes, context);
    const kept = [...(fresh ? [fresh] : []), ...variants.filter((v) => v.context !== context)].slice(0, MAX_VARIANTS);
    if (kept.length > 0) next.services[f.file] = kept;
    if (fresh || kept.length !== variants.length) changed = true;
  }
  // Services that are gone leave the cache.
  if (old && Object.keys(old.services).some((file) => !(file in next.services))) changed = true;
  if (changed) writeCache(root, next);
  return assembleRepository({ root, env, envFromFile, envDiagnostics, loads, only: opts.only });
}
