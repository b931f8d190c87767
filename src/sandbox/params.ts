/**
 * Declarative parameter rules and their checker, following the way Proxmox
 * verifies API parameters: unknown parameters are refused, booleans are only
 * `0`/`1` (JSON `true`/`false` decode to those), integers are digits, and
 * every problem of a request is reported at once, keyed by parameter.
 * Pure: no I/O.
 */
import { paramError } from "./errors.ts";

/** A checked parameter value. */
export type Scalar = string | number | boolean;

interface BaseRule {
  optional?: boolean;
  /** The name of another parameter that must be present when this one is. */
  requires?: string;
}

/** A string parameter; `format` returns an error message or undefined. */
export interface StringRule extends BaseRule {
  type: "string";
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
  enum?: readonly string[];
  format?: (value: string) => string | undefined;
  /** A `key=value,...` property string such as `net0`. */
  property?: PropertyFormat;
}

/** An integer or number parameter. */
export interface NumberRule extends BaseRule {
  type: "integer" | "number";
  minimum?: number;
  maximum?: number;
}

/** A boolean parameter: `0`/`1` only. */
export interface BooleanRule extends BaseRule {
  type: "boolean";
}

/** A rule for one parameter. */
export type Rule = StringRule | NumberRule | BooleanRule;

/** The keys of a property string; `defaultKey` may be given without `key=`. */
export interface PropertyFormat {
  fields: Record<string, Rule>;
  defaultKey?: string;
}

/**
 * The parameters of one endpoint. A name ending in `[n]` stands for the
 * indexed family `name0` .. `name(count-1)`.
 */
export interface ParamSpec {
  rules: Record<string, Rule>;
  indexed?: Record<string, { rule: Rule; count: number }>;
}

/** Finds the rule for a concrete parameter name, indexed families included. */
export function ruleFor(spec: ParamSpec, name: string): Rule | undefined {
  const direct = spec.rules[name];
  if (direct) return direct;
  const m = /^([a-z]+)(\d+)$/.exec(name);
  if (!m || !spec.indexed) return undefined;
  const family = spec.indexed[m[1] ?? ""];
  if (!family) return undefined;
  const index = Number(m[2]);
  if (String(index) !== m[2] || index >= family.count) return undefined;
  return family.rule;
}

const INTEGER = /^-?\d+$/;
const NUMBER = /^[+-]?(\d+|\d+\.\d*|\d*\.\d+)([eE][+-]?\d+)?$/;

/** Checks one value against a rule: the converted value, or an error message. */
function checkValue(rule: Rule, raw: unknown): { value: Scalar } | { error: string } {
  if (typeof raw === "object" && raw !== null) {
    return { error: `type check ('${rule.type}') failed - got a${Array.isArray(raw) ? "n array" : "n object"}` };
  }
  const text = typeof raw === "boolean" ? (raw ? "1" : "0") : String(raw);
  switch (rule.type) {
    case "boolean":
      if (text === "1") return { value: true };
      if (text === "0") return { value: false };
      return { error: `type check ('boolean') failed - got '${text}'` };
    case "integer":
    case "number": {
      const ok = rule.type === "integer" ? INTEGER.test(text) : NUMBER.test(text);
      if (!ok) return { error: `type check ('${rule.type}') failed - got '${text}'` };
      const n = Number(text);
      if (rule.minimum !== undefined && n < rule.minimum) {
        return { error: `value must have a minimum value of ${rule.minimum}` };
      }
      if (rule.maximum !== undefined && n > rule.maximum) {
        return { error: `value must have a maximum value of ${rule.maximum}` };
      }
      return { value: n };
    }
    case "string": {
      if (rule.maxLength !== undefined && text.length > rule.maxLength) {
        return { error: `value may only be ${rule.maxLength} characters long` };
      }
      if (rule.minLength !== undefined && text.length < rule.minLength) {
        return { error: `value must be at least ${rule.minLength} characters long` };
      }
      if (rule.enum && !rule.enum.includes(text)) {
        return { error: `value '${text}' does not have a value in the enumeration '${rule.enum.join(", ")}'` };
      }
      if (rule.pattern && !rule.pattern.test(text)) {
        return { error: "value does not match the regex pattern" };
      }
      if (rule.format) {
        const problem = rule.format(text);
        if (problem !== undefined) return { error: `invalid format - ${problem}` };
      }
      return { value: text };
    }
  }
}

/** A parsed property string: its keys and their checked values. */
export type PropertyValues = Record<string, Scalar>;

/**
 * Parses `key=value,...` against a format. Errors are keyed `param.key`
 * for bad values, or `param` for a malformed string, as Proxmox keys them.
 */
export function parsePropertyString(
  param: string,
  format: PropertyFormat,
  text: string,
): { values: PropertyValues } | { errors: Record<string, string> } {
  const raw: Record<string, string> = {};
  for (const part of text.split(",")) {
    if (/^\s*$/.test(part)) continue;
    const eq = part.indexOf("=");
    let key: string;
    let value: string;
    if (eq > 0) {
      key = part.slice(0, eq);
      value = part.slice(eq + 1);
    } else if (eq === -1 && format.defaultKey !== undefined) {
      key = format.defaultKey;
      value = part;
    } else if (eq === -1) {
      return { errors: { [param]: "invalid format - value without key, but schema does not define a default key" } };
    } else {
      return { errors: { [param]: "invalid format - missing key in comma-separated list property" } };
    }
    if (key in raw) {
      return { errors: { [param]: `invalid format - duplicate key in comma-separated list property: ${key}` } };
    }
    if (!(key in format.fields)) {
      return { errors: { [param]: `invalid format - invalid key in comma-separated list property: ${key}` } };
    }
    raw[key] = value;
  }
  const values: PropertyValues = {};
  const errors: Record<string, string> = {};
  for (const [key, rule] of Object.entries(format.fields)) {
    const value = raw[key];
    if (value === undefined) {
      if (!rule.optional) errors[`${param}.${key}`] = "property is missing and it is not optional";
      continue;
    }
    const checked = checkValue(rule, value);
    if ("error" in checked) errors[`${param}.${key}`] = checked.error;
    else values[key] = checked.value;
  }
  if (Object.keys(errors).length > 0) {
    return { errors: { [param]: "invalid format - format error", ...errors } };
  }
  return { values };
}

/**
 * Checks a request's parameters (path, query and body merged) against an
 * endpoint's rules. Throws a 400 ApiError listing every problem.
 */
export function checkParams(spec: ParamSpec, input: Record<string, unknown>): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  const errors: Record<string, string> = {};
  for (const [name, raw] of Object.entries(input)) {
    if (raw === undefined || raw === null) continue;
    const rule = ruleFor(spec, name);
    if (!rule) {
      errors[name] = "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    const checked = checkValue(rule, raw);
    if ("error" in checked) {
      errors[name] = checked.error;
      continue;
    }
    if (rule.type === "string" && rule.property && typeof checked.value === "string") {
      const parsed = parsePropertyString(name, rule.property, checked.value);
      if ("errors" in parsed) {
        Object.assign(errors, parsed.errors);
        continue;
      }
    }
    out[name] = checked.value;
  }
  for (const [name, rule] of Object.entries(spec.rules)) {
    if (!rule.optional && !(name in out) && !(name in errors)) {
      errors[name] = "property is missing and it is not optional";
    }
  }
  for (const name of Object.keys(out)) {
    const rule = ruleFor(spec, name);
    if (rule?.requires !== undefined && !(rule.requires in out)) {
      errors[rule.requires] = `missing property - '${name}' requires this property`;
    }
  }
  if (Object.keys(errors).length > 0) throw paramError(errors);
  return out;
}

/** Reads a property-string parameter that `checkParams` has already accepted. */
export function propertyValues(rule: Rule | undefined, name: string, text: string): PropertyValues {
  if (!rule || rule.type !== "string" || !rule.property) return {};
  const parsed = parsePropertyString(name, rule.property, text);
  if ("errors" in parsed) throw paramError(parsed.errors);
  return parsed.values;
}
