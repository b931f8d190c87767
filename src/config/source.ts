import { createRequire } from "node:module";
import jsYaml from "js-yaml";
import type { Document, LineCounter, Node, Pair } from "yaml";
import type * as YamlLib from "yaml";
import type { Diagnostic } from "../util/diagnostics.ts";
import { readBounded } from "./fs-probe.ts";

export { MAX_FILE_BYTES } from "./fs-probe.ts";

/**
 * Two parsers, one meaning. js-yaml reads the data (several times faster, which
 * keeps `validate` of a few hundred services well under a second even cold);
 * `yaml`, which keeps every node's position, is loaded only when a diagnostic
 * needs a line and column or a file does not parse, so every message comes
 * from one place. Both read YAML 1.2 core schema.
 */
const requireLazy = createRequire(import.meta.url);
let yamlLib: typeof YamlLib | undefined;
function yamlModule(): typeof YamlLib {
  yamlLib ??= requireLazy("yaml") as typeof YamlLib;
  return yamlLib;
}

/** js-yaml shares aliased nodes instead of copying them; walking more nodes than this means an alias bomb. */
const MAX_EXPANDED_NODES = 100_000;

/** True when walking `data` (aliases expanded) stays within the node budget. */
function withinExpansionBudget(data: unknown): boolean {
  let budget = MAX_EXPANDED_NODES;
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const v = stack.pop();
    if (--budget < 0) return false;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === "object") for (const x of Object.values(v)) stack.push(x);
  }
  return true;
}

/** Alias expansions allowed when converting to data; a billion-laughs file fails fast here. */
const MAX_ALIAS_COUNT = 100;

/** A parsed YAML file that can locate any value of its data by path. */
export interface YamlSource {
  file: string;
  text: string;
  data: unknown;
  /** Position of the value at `path` (or of its key, with `key: true`), nearest existing ancestor otherwise. */
  locate(path: readonly (string | number)[], opts?: { key?: boolean }): { line: number; col: number };
}

/** The result of loading a YAML file: a source, or the diagnostics that stopped it. */
export type LoadResult = { ok: true; source: YamlSource } | { ok: false; diagnostics: Diagnostic[] };

function diag(file: string, line: number, col: number, message: string, hint?: string): Diagnostic {
  return { file, line, col, message, severity: "error", ...(hint ? { hint } : {}) };
}

/** The byte offset of the first invalid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i] ?? 0;
    let n: number;
    if (b < 0x80) n = 0;
    else if (b >= 0xc2 && b <= 0xdf) n = 1;
    else if (b >= 0xe0 && b <= 0xef) n = 2;
    else if (b >= 0xf0 && b <= 0xf4) n = 3;
    else return i;
    for (let k = 1; k <= n; k++) {
      const c = buf[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
    }
    // Overlongs and surrogates: the ranges that TextDecoder({fatal}) also rejects.
    if (n === 2) {
      const c = buf[i + 1] ?? 0;
      if ((b === 0xe0 && c < 0xa0) || (b === 0xed && c >= 0xa0)) return i;
    } else if (n === 3) {
      const c = buf[i + 1] ?? 0;
      if ((b === 0xf0 && c < 0x90) || (b === 0xf4 && c >= 0x90)) return i;
    }
    i += n + 1;
  }
  return -1;
}

function lineColAt(buf: Uint8Array, offset: number): { line: number; col: number } {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset; i++) {
    if (buf[i] === 0x0a) {
      line++;
      col = 1;
    } else if (((buf[i] ?? 0) & 0xc0) !== 0x80) col++;
  }
  return { line, col };
}

/** Reads and parses a YAML file, turning every way it can be unreadable into a located diagnostic. */
export function loadYamlFile(file: string, what = "file"): LoadResult {
  const read = readBounded(file);
  if (read.ok) return parseYaml(file, read.buf, what);
  if ("tooBig" in read) {
    const mb = (read.tooBig / (1024 * 1024)).toFixed(1);
    return {
      ok: false,
      diagnostics: [diag(file, 1, 1, `${what} is ${mb} MiB; the limit is 1 MiB`, "is this the right file?")],
    };
  }
  // Not found, unreadable, or a folder where a file is expected (EISDIR).
  const msg = read.error === "ENOENT" ? `${what} not found` : `cannot read ${what}: ${read.error}`;
  return { ok: false, diagnostics: [diag(file, 1, 1, msg)] };
}

/**
 * A source for a file known to be valid, read and parsed only if something
 * asks for its text, data or a position (the validate cache's services: a
 * cross-service error found later still gets its line and column).
 */
export function deferredSource(file: string, what = "file"): YamlSource {
  let real: YamlSource | undefined;
  const get = (): YamlSource => {
    if (!real) {
      const loaded = loadYamlFile(file, what);
      real = loaded.ok ? loaded.source : makeSource(file, "", undefined);
    }
    return real;
  };
  return {
    file,
    get text() {
      return get().text;
    },
    get data() {
      return get().data;
    },
    locate: (path, opts) => get().locate(path, opts),
  };
}

/** Parses YAML bytes (see loadYamlFile); exported for tests and for files already in memory. */
function parseYaml(file: string, buf: Uint8Array, what = "file"): LoadResult {
  const bad = firstInvalidUtf8(buf);
  if (bad >= 0) {
    const { line, col } = lineColAt(buf, bad);
    return {
      ok: false,
      diagnostics: [
        diag(file, line, col, `${what} is not valid UTF-8 (byte 0x${(buf[bad] ?? 0).toString(16).padStart(2, "0")})`, "save it as UTF-8"),
      ],
    };
  }
  const text = new TextDecoder("utf-8").decode(buf);
  if (text.trim() === "") {
    return { ok: false, diagnostics: [diag(file, 1, 1, `${what} is empty`)] };
  }
  try {
    const data = jsYaml.load(text, { schema: jsYaml.CORE_SCHEMA, filename: file });
    if (withinExpansionBudget(data)) return { ok: true, source: makeSource(file, text, data) };
  } catch {
    // The precise, located message comes from the full parser below.
  }
  return parseWithPositions(file, text);
}

function parseWithPositions(file: string, text: string): LoadResult {
  const { LineCounter: LC, parseDocument } = yamlModule();
  const lineCounter = new LC();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, strict: true });
  const errors = doc.errors.map((e) => {
    const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
    const message = yamlErrorMessage(e.code, e.message);
    return diag(file, pos.line, pos.col, message, yamlErrorHint(e.code));
  });
  if (errors.length > 0) return { ok: false, diagnostics: errors };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const bomb = /resource exhaustion|alias count/i.test(message);
    return {
      ok: false,
      diagnostics: [
        diag(
          file,
          1,
          1,
          bomb ? `YAML aliases expand too far (more than ${MAX_ALIAS_COUNT} expansions): refusing a possible "billion laughs" file` : `YAML error: ${message}`,
          bomb ? "write the values out instead of nesting aliases" : undefined,
        ),
      ],
    };
  }
  return { ok: true, source: makeSource(file, text, data, { doc, lineCounter }) };
}

function yamlErrorMessage(code: string, message: string): string {
  const first = (message.split("\n")[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");
  switch (code) {
    case "DUPLICATE_KEY":
      return "duplicate key: a key may appear only once in a mapping";
    case "TAB_AS_INDENT":
      return "tab used for indentation: YAML indents with spaces only";
    default:
      return `YAML syntax error: ${first}`;
  }
}

function yamlErrorHint(code: string): string | undefined {
  switch (code) {
    case "TAB_AS_INDENT":
      return "replace the tab with spaces";
    case "DUPLICATE_KEY":
      return "remove or merge one of them";
    default:
      return undefined;
  }
}

function makeSource(file: string, text: string, data: unknown, parsed?: { doc: Document; lineCounter: LineCounter }): YamlSource {
  let positions = parsed;
  const load = (): { doc: Document; lineCounter: LineCounter } => {
    if (!positions) {
      const { LineCounter: LC, parseDocument } = yamlModule();
      const lineCounter = new LC();
      positions = { doc: parseDocument(text, { lineCounter, uniqueKeys: false }), lineCounter };
    }
    return positions;
  };
  return {
    file,
    text,
    data,
    locate(path, opts) {
      const { doc, lineCounter } = load();
      const { isMap, isSeq, isPair, isScalar } = yamlModule();
      const at = (offset: number) => lineCounter.linePos(offset);
      let node: Node | null = doc.contents;
      let pair: Pair | undefined;
      let best = node?.range?.[0] ?? 0;
      for (const seg of path) {
        pair = undefined;
        if (isMap(node)) {
          const found: Pair | undefined = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
          if (!found) break;
          pair = found;
          const keyNode = found.key as Node | null;
          node = isPair(found) ? (found.value as Node | null) : null;
          best = (node?.range?.[0] ?? keyNode?.range?.[0]) ?? best;
        } else if (isSeq(node) && typeof seg === "number") {
          const item = node.items[seg] as Node | undefined;
          if (!item) break;
          node = item;
          best = item.range?.[0] ?? best;
        } else break;
      }
      if (opts?.key && pair) {
        const k = pair.key as Node | null;
        if (k?.range) best = k.range[0];
      }
      return at(best);
    },
  };
}
