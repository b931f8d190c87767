import type { Command } from "@commander-js/extra-typings";
import type { GlobalOptions } from "../context.ts";

/** `homelab schema`: the JSON Schema (draft-07) of service.yaml, for editors. */
export function registerSchema(program: Command<[], GlobalOptions>): void {
  program
    .command("schema")
    .description("print the JSON Schema (draft-07) of service.yaml, for editors (# yaml-language-server: $schema=...)")
    .action(async () => {
      const { serviceJsonSchema } = await import("../../config/service-schema.ts");
      process.stdout.write(JSON.stringify(serviceJsonSchema(), null, 2) + "\n");
    });
}
