// Finds the pinned Pulumi CLI that scripts/setup-pulumi.sh made available.
// Deliberately light: no @pulumi/pulumi import, so commands that never deploy
// do not pay for loading it. This module never builds or downloads the CLI.
import { execFile } from "node:child_process";
import { constants, readFileSync } from "node:fs";
import { access, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import semver from "semver";
import { pulumiRecordFile } from "../config/homelab-dir.ts";

const execFileAsync = promisify(execFile);

/** Where a resolved CLI was found. */
export type PulumiCliSource = "path" | "pulumi-home" | "cache";

/** A usable Pulumi CLI: absolute path, version without the leading "v", origin. */
export interface PulumiCli {
  path: string;
  version: string;
  source: PulumiCliSource;
}

/** Options of resolvePulumiCli; every field defaults to this process and repository. */
export interface ResolvePulumiCliOptions {
  /** The homelab repository holding `.homelab/pulumi`. */
  root?: string;
  /** PATH, PULUMI_HOME, HOMELAB_CACHE, XDG_CACHE_HOME and HOME are read from here. */
  env?: NodeJS.ProcessEnv;
  /** The lowest accepted version (same major only); the pin by default. */
  minVersion?: string;
}

// src/engine/ and dist/engine/ are both two levels below the repository.
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PIN_FILE = path.join(REPO_ROOT, "scripts", "pulumi-version");
const VERSION_TIMEOUT_MS = 30_000;

/** Returns the version in the text of scripts/pulumi-version (first non-comment line, "v" dropped). */
export function parsePinFile(text: string, file = PIN_FILE): string {
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  const version = line?.replace(/^v/, "");
  if (version === undefined || !/^\d+\.\d+\.\d+$/.test(version)) {
    throw new Error(`${file} must hold one version like 3.274.1 (found ${JSON.stringify(line ?? "")}); fix that file`);
  }
  return version;
}

function readPin(): string {
  let text: string;
  try {
    text = readFileSync(PIN_FILE, "utf8");
  } catch (err) {
    throw new Error(`cannot read the Pulumi pin ${PIN_FILE} (${String(err)}); restore it from git`, { cause: err });
  }
  return parsePinFile(text);
}

/** The pinned Pulumi CLI version (also the minimum accepted), from scripts/pulumi-version. */
export const PINNED_PULUMI_VERSION: string = readPin();

/** Extracts the version from `pulumi version` output ("v3.274.1\n" gives "3.274.1"); undefined if none. */
export function parsePulumiVersionOutput(stdout: string): string | undefined {
  const first = (stdout.trim().split("\n")[0]?.trim() ?? "").replace(/^v/, "");
  // Kept as printed (build metadata included) rather than semver's normal form.
  return semver.valid(first) === null ? undefined : first;
}

/** True when `version` has the major version of `min` and is at or above it (a prerelease of `min` is below it). */
export function isAcceptedPulumiVersion(version: string, min: string = PINNED_PULUMI_VERSION): boolean {
  const v = semver.parse(version);
  const m = semver.parse(min);
  if (v === null || m === null) return false;
  return v.major === m.major && semver.gte(v, m);
}

/** The cache folder of one CLI version, as setup-pulumi.sh lays it out (the binary is in its bin/). */
export function pulumiCacheDir(env: NodeJS.ProcessEnv = process.env, version: string = PINNED_PULUMI_VERSION): string {
  return path.join(homelabCache(env), `pulumi-v${version.replace(/^v/, "")}`);
}

/** The variables the engine sets for every Pulumi CLI run: no update check, no plugin downloads, the CLI's folder first on PATH. */
export function pulumiEngineEnv(cli?: Pick<PulumiCli, "path">, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {
    // Otherwise every run asks pulumi.com for a newer release.
    PULUMI_SKIP_UPDATE_CHECK: "true",
    // Missing plugins must fail loudly here, not be fetched from the internet.
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  if (cli !== undefined) {
    // Plugins installed next to the CLI (pulumi-resource-homelab) are found through PATH.
    const dir = path.dirname(cli.path);
    env.PATH = base.PATH ? `${dir}${path.delimiter}${base.PATH}` : dir;
  }
  return env;
}

/** Raised when no usable Pulumi CLI is found; `checked` lists every candidate and why it was refused. */
export class PulumiCliNotFoundError extends Error {
  readonly checked: readonly string[];
  constructor(minVersion: string, checked: readonly string[]) {
    const major = minVersion.split(".")[0] ?? "3";
    const lines = checked.length > 0 ? checked.map((c) => `  - ${c}`).join("\n") : "  (no candidates)";
    super(
      `No usable Pulumi CLI found (need v${major}.x at or above v${minVersion}). Checked:\n${lines}\n` +
        "Run scripts/setup.sh: it builds the pinned CLI from Go modules (once per machine) or installs it.",
    );
    this.name = "PulumiCliNotFoundError";
    this.checked = checked;
  }
}

/** Finds the Pulumi CLI: `.homelab/pulumi`, then PATH, then $PULUMI_HOME/bin, then the cache; never builds. */
export async function resolvePulumiCli(opts: ResolvePulumiCliOptions = {}): Promise<PulumiCli> {
  const env = opts.env ?? process.env;
  const root = opts.root ?? REPO_ROOT;
  const min = (opts.minVersion ?? PINNED_PULUMI_VERSION).replace(/^v/, "");
  const homeBin = path.join(pulumiHome(env), "bin", "pulumi");
  const cacheRoot = homelabCache(env);

  const candidates: { file: string; source: PulumiCliSource | "record" }[] = [];
  const recorded = await readRecord(root);
  if (recorded !== undefined) candidates.push({ file: recorded, source: "record" });
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "") candidates.push({ file: path.resolve(dir, "pulumi"), source: "path" });
  }
  candidates.push({ file: homeBin, source: "pulumi-home" });
  candidates.push({ file: path.join(pulumiCacheDir(env, min), "bin", "pulumi"), source: "cache" });

  const checked: string[] = [];
  const seen = new Set<string>();
  for (const { file, source } of candidates) {
    if (seen.has(file)) continue;
    seen.add(file);
    const where = source === "record" ? `${file} (from .homelab/pulumi)` : file;
    if (!(await isExecutable(file))) {
      // Absent PATH entries are the common case, not worth listing.
      if (source !== "path") checked.push(`${where}: missing`);
      continue;
    }
    let version: string | undefined;
    try {
      version = await runVersion(file, env);
    } catch (err) {
      checked.push(`${where}: \`pulumi version\` failed (${errorText(err)})`);
      continue;
    }
    if (version === undefined) {
      checked.push(`${where}: \`pulumi version\` printed no version (a build without the version ldflag?)`);
      continue;
    }
    if (!isAcceptedPulumiVersion(version, min)) {
      checked.push(`${where}: v${version} is not accepted`);
      continue;
    }
    const kind = source === "record" ? classify(file, homeBin, cacheRoot) : source;
    return { path: file, version, source: kind };
  }
  throw new PulumiCliNotFoundError(min, checked);
}

function homelabCache(env: NodeJS.ProcessEnv): string {
  if (env.HOMELAB_CACHE) return env.HOMELAB_CACHE;
  const xdg = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), ".cache");
  return path.join(xdg, "homelab");
}

function pulumiHome(env: NodeJS.ProcessEnv): string {
  return env.PULUMI_HOME || path.join(env.HOME || os.homedir(), ".pulumi");
}

function classify(file: string, homeBin: string, cacheRoot: string): PulumiCliSource {
  if (file === homeBin) return "pulumi-home";
  const rel = path.relative(cacheRoot, file);
  if (rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel)) return "cache";
  return "path";
}

async function readRecord(root: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(pulumiRecordFile(root), "utf8");
  } catch {
    // No record yet: setup has not run here, the other candidates still apply.
    return undefined;
  }
  const line = text.split("\n")[0]?.trim() ?? "";
  return line === "" ? undefined : path.resolve(root, line);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function runVersion(file: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const { stdout } = await execFileAsync(file, ["version"], {
    env: { ...env, ...pulumiEngineEnv() },
    timeout: VERSION_TIMEOUT_MS,
    encoding: "utf8",
  });
  return parsePulumiVersionOutput(stdout);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] ?? err.message : String(err);
}
