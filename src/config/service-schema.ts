import { z } from "zod";
import { RESOURCE_TYPES } from "./resource-types/index.ts";
import { monitoringSchema } from "./monitoring.ts";

/** Service names become stack names and environment-variable prefixes. */
const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** The service-level fields; resources are validated per type. */
const serviceShape = {
  name: z.string().regex(SERVICE_NAME, { error: "name must be lowercase letters, digits, _ and -, starting with a letter or digit" }).describe("The service's name; must equal its folder name."),
  description: z.string().optional().describe("What the service is, shown by `homelab list`."),
  resources: z.array(z.unknown()).describe("The service's resources."),
  monitoring: monitoringSchema.optional(),
};

/** Top-level schema used while validating (resources checked one by one against their type). */
export const serviceTopSchema = z.strictObject(serviceShape);

/** The complete schema, with every resource type, for editors (`homelab schema`). */
function fullServiceSchema(): z.ZodType {
  const types = [...RESOURCE_TYPES.values()].map((t) => t.schema);
  const [first, ...rest] = types;
  if (!first) throw new Error("no resource types registered");
  return z
    .strictObject({
      ...serviceShape,
      resources: z.array(z.discriminatedUnion("type", [first, ...rest])).describe("The service's resources."),
    })
    .describe("A homelab service (services/<name>/service.yaml)");
}

/** JSON Schema (draft-07) of service.yaml. */
export function serviceJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(fullServiceSchema(), { target: "draft-7", io: "input" }) as Record<string, unknown>;
  return { ...schema, title: "homelab service.yaml" };
}
