import type { z } from "zod";
import type { Diagnostic } from "../util/diagnostics.ts";
import { fieldPath } from "../util/diagnostics.ts";
import { didYouMean } from "../util/suggest.ts";
import type { YamlSource } from "./source.ts";

type Path = readonly (string | number)[];

interface ZodInternals {
  _zod: { def: { type: string; innerType?: z.ZodType; element?: z.ZodType; options?: z.ZodType[]; in?: z.ZodType; shape?: Record<string, z.ZodType> } };
}

function def(schema: z.ZodType): ZodInternals["_zod"]["def"] {
  return (schema as unknown as ZodInternals)._zod.def;
}

/** Unwraps optional/default/nullable/pipe wrappers to the schema that holds the structure. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 10; i++) {
    const d = def(s);
    if ((d.type === "optional" || d.type === "default" || d.type === "nullable" || d.type === "prefault" || d.type === "readonly") && d.innerType) s = d.innerType;
    else if (d.type === "pipe" && d.in) s = d.in;
    else break;
  }
  return s;
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const d = def(schema);
  return d.type === "object" ? (d.shape ?? undefined) : undefined;
}

/** The object keys a schema allows at `path` of `data` (unions resolved by the data's `type`). */
function allowedKeysAt(schema: z.ZodType, path: Path, data: unknown): string[] {
  let s = unwrap(schema);
  let value: unknown = data;
  const pick = (): void => {
    const d = def(s);
    if (d.type === "union" && d.options) {
      const t = value && typeof value === "object" ? (value as Record<string, unknown>)["type"] : undefined;
      const match = d.options.find((o) => {
        const shape = objectShape(unwrap(o));
        const lit = shape?.["type"];
        const litDef = lit ? (def(lit) as unknown as { values?: unknown[] }) : undefined;
        return litDef?.values?.includes(t) ?? false;
      });
      if (match) s = unwrap(match);
    }
  };
  pick();
  for (const seg of path) {
    const d = def(s);
    if (d.type === "object" && d.shape) {
      const next = d.shape[String(seg)];
      if (!next) return [];
      s = unwrap(next);
    } else if (d.type === "array" && d.element) {
      s = unwrap(d.element);
    } else return [];
    value = value && typeof value === "object" ? (value as Record<string | number, unknown>)[seg] : undefined;
    pick();
  }
  const shape = objectShape(s);
  return shape ? Object.keys(shape) : [];
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return `${typeof v} ${String(v)}`;
  return typeof v;
}

function expectedPhrase(expected: string): string {
  switch (expected) {
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "string":
      return "a string";
    case "boolean":
      return "true or false";
    case "array":
      return "a list";
    case "object":
      return "a mapping";
    default:
      return expected;
  }
}

function valueAt(data: unknown, path: Path): unknown {
  let v: unknown = data;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** Turns zod issues into located diagnostics, with typo suggestions for unknown fields. */
export function zodIssuesToDiagnostics(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
  source: YamlSource,
  basePath: Path = [],
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    const rel = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    const path = [...basePath, ...rel];
    const where = fieldPath(path);
    const value = valueAt(source.data, path);
    if (issue.code === "unrecognized_keys") {
      const allowed = allowedKeysAt(schema, rel, valueAt(source.data, basePath));
      for (const key of issue.keys) {
        const pos = source.locate([...path, key], { key: true });
        const hint = didYouMean(key, allowed);
        out.push({
          file: source.file,
          ...pos,
          severity: "error",
          field: fieldPath([...path, key]),
          message: `unknown field "${key}"${where ? ` in ${where}` : ""}${allowed.length && !hint ? `; expected one of: ${allowed.join(", ")}` : ""}`,
          ...(hint ? { hint } : {}),
        });
      }
      continue;
    }
    const pos = source.locate(path);
    let message: string;
    switch (issue.code) {
      case "invalid_type":
        message =
          value === undefined
            ? `missing required field "${String(path[path.length - 1])}"${path.length > 1 ? ` in ${fieldPath(path.slice(0, -1))}` : ""}`
            : `${where}: expected ${expectedPhrase(issue.expected)}, got ${describeValue(value)}`;
        break;
      case "too_small":
        message =
          issue.origin === "array"
            ? `${where}: needs at least ${String(issue.minimum)} item(s)`
            : issue.origin === "string"
              ? `${where}: must not be empty`
              : `${where}: must be ${issue.inclusive ? "at least" : "greater than"} ${String(issue.minimum)}, got ${describeValue(value)}`;
        break;
      case "too_big":
        message =
          issue.origin === "array" || issue.origin === "string"
            ? `${where}: is too long (at most ${String(issue.maximum)})`
            : `${where}: must be ${issue.inclusive ? "at most" : "less than"} ${String(issue.maximum)}, got ${describeValue(value)}`;
        break;
      case "invalid_value": {
        const opts = issue.values.map((v) => JSON.stringify(v));
        const hint = typeof value === "string" ? didYouMean(value, issue.values.map(String)) : undefined;
        out.push({ file: source.file, ...pos, severity: "error", field: where, message: `${where}: expected one of ${opts.join(", ")}, got ${describeValue(value)}`, ...(hint ? { hint } : {}) });
        continue;
      }
      case "invalid_union":
        message = `${where}: ${describeValue(value)} is not any of the accepted forms`;
        break;
      default:
        message = `${where}: ${issue.message}`;
    }
    out.push({ file: source.file, ...pos, severity: "error", field: where, message });
  }
  return out;
}
