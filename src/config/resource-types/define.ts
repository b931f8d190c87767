import { z } from "zod";
import type { Diagnostic } from "../../util/diagnostics.ts";
import type { EnvironmentConfig } from "../environment.ts";
import type { YamlSource } from "../source.ts";

/** Resource ids are used in Pulumi names and `other.id` references. */
const RESOURCE_ID = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** Fields every resource has, whatever its type. */
const baseResourceShape = {
  id: z
    .string()
    .regex(RESOURCE_ID, { error: "id must start with a letter and use only letters, digits, _ and -" })
    .describe("Unique id of the resource within the service; other resources refer to it in depends_on."),
  depends_on: z
    .array(z.string().min(1))
    .optional()
    .describe("Resources that must exist first: an id in this service, or other_service.resource_id."),
  protect: z
    .boolean()
    .optional()
    .describe("Refuse to delete or replace this resource (also by auto-remediation). Default false."),
};

/** What a resource type's cross-checks get: where the service lives and how to report. */
export interface CheckContext {
  serviceName: string;
  serviceDir: string;
  source: YamlSource;
  /** Path of this resource in the file, e.g. ["resources", 2]. */
  basePath: readonly (string | number)[];
  /** The environment being validated against, when one is selected. */
  env: EnvironmentConfig | undefined;
  report(path: readonly (string | number)[], message: string, opts?: { hint?: string; severity?: Diagnostic["severity"]; key?: boolean }): void;
}

/**
 * A resource type as the rest of the tool sees it: its schema erased to data in,
 * and its resolved form `R` out (the planner uses the typed definitions directly).
 */
export interface ResourceType<R extends object = Record<string, unknown>> {
  readonly type: string;
  readonly summary: string;
  /** The full schema of one resource of this type (base fields included). */
  readonly schema: z.ZodObject;
  /**
   * Cross-file checks on an already schema-valid resource. Files are looked at
   * only through loadYamlFile and pathKind (fs-probe.ts), whose observations
   * the validate cache records to know when a result still holds.
   */
  check(resource: unknown, ctx: CheckContext): void;
  /** The resource with defaults filled in from the environment, for `show` and planning. */
  resolve(resource: unknown, env: EnvironmentConfig | undefined, serviceDir: string): R;
}

/** Defines a resource type from its type-specific fields; `check` and `resolve` see typed data, and `resolve` says what it gives. */
export function defineResourceType<Shape extends z.ZodRawShape, R extends object>(def: {
  type: string;
  summary: string;
  fields: Shape;
  check?: (resource: z.output<z.ZodObject<typeof baseResourceShape & Shape & { type: z.ZodLiteral<string> }>>, ctx: CheckContext) => void;
  resolve: (
    resource: z.output<z.ZodObject<typeof baseResourceShape & Shape & { type: z.ZodLiteral<string> }>>,
    env: EnvironmentConfig | undefined,
    serviceDir: string,
  ) => R;
}): ResourceType<R> {
  const schema = z
    .strictObject({
      ...baseResourceShape,
      type: z.literal(def.type).describe(def.summary),
      ...def.fields,
    })
    .describe(def.summary);
  type Out = z.output<typeof schema>;
  return {
    type: def.type,
    summary: def.summary,
    schema: schema,
    // The registry only hands a type's own schema output to its own functions.
    check: (r, ctx) => def.check?.(r as Out, ctx),
    resolve: (r, env, dir) => def.resolve(r as Out, env, dir),
  };
}
