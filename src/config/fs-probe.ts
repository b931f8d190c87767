import { readFileSync, statSync, type Stats } from "node:fs";
import { fingerprint } from "../util/hash.ts";

/**
 * The file system as validation sees it, recordable. Every file a service's
 * validation reads (through loadYamlFile) and every path whose existence it
 * tests (through pathKind) can be recorded as a probe: what was looked at and
 * what was seen. Seeing the same again later means validating again would
 * reach the same verdict, which is what the validate cache relies on; so a
 * check that looks at a file must do it through these functions.
 */

/**
 * One observation: a file read (its content's fingerprint, or why it was not
 * read) or a path's kind. A read may carry its file's stat signature, which
 * lets a later check skip reading a file whose signature is unchanged.
 */
export type Probe = [path: string, how: "read", seen: string, signature?: string] | [path: string, how: "stat", seen: string];

/** Larger files are refused before they are read: no service.yaml needs this much. */
export const MAX_FILE_BYTES = 1024 * 1024;

/**
 * A file whose status changed less than this long ago gets no stat signature:
 * a write within the same tick of the file system's clock could leave every
 * stat field as it was ("racy" files, as git calls them). Once a file's ctime
 * is older than this, any later write, rename over it or chmod moves its ctime.
 */
const SETTLED_MS = 3000;

/** A file read within the size limit, or why it was not. */
export type BoundedRead = { ok: true; buf: Uint8Array } | { ok: false; tooBig: number } | { ok: false; error: string };

let recording: Probe[] | undefined;

/** Runs `fn`, returning what it returned and every probe made meanwhile. */
export function recordProbes<T>(fn: () => T): { result: T; probes: Probe[] } {
  const outer = recording;
  const probes: Probe[] = [];
  recording = probes;
  try {
    return { result: fn(), probes };
  } finally {
    recording = outer;
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

function signatureOf(s: Stats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

/** The file read as loadYamlFile reads it, with its stat signature when it is settled. */
function attempt(file: string, signed: boolean): { read: BoundedRead; signature: string | undefined } {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (e) {
    return { read: { ok: false, error: errorCode(e) }, signature: undefined };
  }
  // Taken before reading: a write after it moves the ctime away from it.
  const signature = signed && stats.isFile() && stats.ctimeMs < Date.now() - SETTLED_MS ? signatureOf(stats) : undefined;
  if (stats.size > MAX_FILE_BYTES) return { read: { ok: false, tooBig: stats.size }, signature };
  try {
    return { read: { ok: true, buf: readFileSync(file) }, signature };
  } catch (e) {
    // A folder where a file is expected (EISDIR), or a file that vanished or became unreadable since stat.
    return { read: { ok: false, error: errorCode(e) }, signature: undefined };
  }
}

function seenOf(r: BoundedRead): string {
  if (r.ok) return fingerprint(r.buf);
  return "tooBig" in r ? `too-big:${r.tooBig}` : `error:${r.error}`;
}

/** Reads a file unless it is larger than MAX_FILE_BYTES (recorded while recording). */
export function readBounded(file: string): BoundedRead {
  if (!recording) return attempt(file, false).read;
  const { read, signature } = attempt(file, true);
  recording.push(signature === undefined ? [file, "read", seenOf(read)] : [file, "read", seenOf(read), signature]);
  return read;
}

type PathKind = "dir" | "file" | "other" | "none";

function kindOf(p: string): PathKind {
  try {
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return "none";
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : "other";
  } catch {
    return "none"; // unreadable counts as absent, as existsSync has it
  }
}

/** What is at a path (symbolic links followed): "dir", "file", "other" or "none" (recorded while recording). */
export function pathKind(p: string): PathKind {
  const kind = kindOf(p);
  recording?.push([p, "stat", kind]);
  return kind;
}

/** The stat signature a file has now (undefined when there is none to stat). */
export function currentSignature(file: string): string | undefined {
  try {
    const s = statSync(file, { throwIfNoEntry: false });
    return s ? signatureOf(s) : undefined;
  } catch {
    return undefined;
  }
}

/** The stat signature of a regular file whose status has settled (take it before reading the file); otherwise undefined. */
export function settledSignature(file: string): string | undefined {
  try {
    const s = statSync(file, { throwIfNoEntry: false });
    return s?.isFile() && s.ctimeMs < Date.now() - SETTLED_MS ? signatureOf(s) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether looking again sees what every probe saw. A read whose file still has
 * its stat signature is taken as unchanged without reading it; one whose file
 * had to be read, and was unchanged, gets the signature it has now (when
 * settled), and `refreshed` says so (the probes are worth saving again).
 */
export function checkProbes(probes: Probe[]): { hold: boolean; refreshed: boolean } {
  let refreshed = false;
  for (let i = 0; i < probes.length; i++) {
    const probe = probes[i];
    if (!probe) continue;
    if (probe[1] === "stat") {
      if (kindOf(probe[0]) !== probe[2]) return { hold: false, refreshed };
      continue;
    }
    const [path, , seen, known] = probe;
    if (known !== undefined && currentSignature(path) === known) continue;
    const { read, signature } = attempt(path, true);
    if (seenOf(read) !== seen) return { hold: false, refreshed };
    if (signature !== known) {
      probes[i] = signature === undefined ? [path, "read", seen] : [path, "read", seen, signature];
      refreshed = true;
    }
  }
  return { hold: true, refreshed };
}
