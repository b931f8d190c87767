/**
 * Checking a resource's inputs against a zod schema, the way the engine
 * sends them: engine bookkeeping (`__*`) and declared outputs skipped,
 * values unknown during a preview kept aside (a placeholder stands in for
 * them while the rest is validated), failures by property. Pure.
 */
import type { z } from "zod";
import type { InputFailure, PropertyBag } from "./inputs.ts";
import { isUnknown, propertyBag, withoutUndefined } from "./inputs.ts";

/** The outcome of checking inputs. */
export type Checked<T> = { ok: true; inputs: T; unknown: ReadonlySet<string>; bag: PropertyBag } | { ok: false; failures: InputFailure[] };

/** How to check one resource type's inputs. */
export interface CheckOptions {
  /** The type token, for messages. */
  type: string;
  /** Properties that are not inputs (outputs a program declares, values the provider computes itself). */
  ignore?: ReadonlySet<string>;
  /** A valid value standing in for an unknown one, so the other inputs can still be checked. */
  placeholder(key: string): unknown;
}

/** Validates inputs and applies the schema's defaults; unknown values are kept as they are in `bag`. Pure. */
export function checkProperties<S extends z.ZodObject>(schema: S, raw: unknown, o: CheckOptions): Checked<z.output<S>> {
  const bag = propertyBag(raw);
  const keys = Object.keys(schema.shape);
  const unknown = new Set<string>();
  const known: PropertyBag = {};
  const failures: InputFailure[] = [];
  for (const [key, value] of Object.entries(bag)) {
    if (key.startsWith("__") || o.ignore?.has(key)) continue;
    if (value === null || value === undefined) continue;
    if (!keys.includes(key)) {
      failures.push({ property: key, reason: `unknown property "${key}" of ${o.type}` });
      continue;
    }
    if (isUnknown(value)) unknown.add(key);
    else known[key] = value;
  }
  const stand: PropertyBag = {};
  for (const key of unknown) stand[key] = o.placeholder(key);
  const parsed = schema.safeParse({ ...known, ...stand });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const property = issue.path.length > 0 ? issue.path.map(String).join(".") : "";
      const missing = issue.code === "invalid_type" && issue.path.length === 1 && known[String(issue.path[0])] === undefined && !unknown.has(String(issue.path[0]));
      failures.push({ property, reason: missing ? `${property} is required` : issue.message });
    }
  }
  if (failures.length > 0 || !parsed.success) return { ok: false, failures };
  const inputs = parsed.data;
  const out: PropertyBag = { ...withoutUndefined(inputs as object) };
  for (const key of unknown) out[key] = bag[key];
  return { ok: true, inputs, unknown, bag: out };
}

/** Lenient parsing of stored state: each field that has the right shape, the rest left out. Pure. */
export function parseState<T extends object>(raw: unknown, fields: Readonly<Record<string, z.ZodType>>): Partial<T> {
  const bag = propertyBag(raw);
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(fields)) {
    const value = bag[key];
    if (value === undefined || value === null || isUnknown(value)) continue;
    const parsed = schema.safeParse(value);
    if (parsed.success) out[key] = parsed.data;
  }
  return out as Partial<T>;
}

/** Equality of plain data (JSON-like), key order ignored. Pure. */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameData(v, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}
