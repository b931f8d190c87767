import { join } from "node:path";
import { z } from "zod";
import { didYouMean } from "../../util/suggest.ts";
import { defineResourceType } from "./define.ts";
import { insideServiceDir } from "../paths.ts";
import { pathKind } from "../fs-probe.ts";
import { envFileOf } from "../homelab-dir.ts";

/** Docker's rule for repository names: lowercase path components. */
const IMAGE_NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** A `docker:image` with every default filled in: what planning reads. */
export interface ResolvedImage {
  id: string;
  name: string;
  /** The build context, absolute. */
  context: string;
  dockerfile: string;
  build_args: Record<string, string>;
  registry?: string | undefined;
  registry_url: string | undefined;
}

/** `docker:image`: an image built from a Dockerfile folder of the service, optionally pushed to a registry. */
export const dockerImage = defineResourceType({
  type: "docker:image",
  summary: "A Docker image built from a folder of the service (with a Dockerfile), optionally pushed to a registry.",
  fields: {
    name: z
      .string()
      .regex(IMAGE_NAME, { error: "name must be a Docker repository name: lowercase letters, digits, and . _ - / separators" })
      .describe("Image name; compose files refer to the image by this name."),
    path: z.string().min(1).describe("Build context: a folder with a Dockerfile, relative to service.yaml."),
    dockerfile: z.string().min(1).optional().describe("Dockerfile name inside path (default Dockerfile)."),
    build_args: z.record(z.string(), z.string()).optional().describe("Build arguments (--build-arg KEY=VALUE)."),
    registry: z.string().min(1).optional().describe("Push to this registry (a name from the environment's homelab:registries)."),
  },
  check(r, ctx) {
    const inside = insideServiceDir(ctx.serviceDir, r.path);
    if (!inside.ok) {
      ctx.report(["path"], `path "${r.path}" ${inside.reason}`, { hint: "build contexts must live inside the service folder" });
    } else {
      const dockerfile = join(inside.abs, r.dockerfile ?? "Dockerfile");
      // Through pathKind, so that the validate cache sees what this depended on.
      if (pathKind(inside.abs) !== "dir") {
        ctx.report(["path"], `path "${r.path}" is not a folder (looked for ${inside.abs})`);
      } else if (pathKind(dockerfile) === "none") {
        ctx.report([r.dockerfile ? "dockerfile" : "path"], `no ${r.dockerfile ?? "Dockerfile"} in "${r.path}"`, { hint: `create ${join(r.path, r.dockerfile ?? "Dockerfile")}` });
      }
    }
    // An environment that builds no images (the memory sandbox) need not define registries.
    if (r.registry !== undefined && ctx.env?.provisioning) {
      const names = Object.keys(ctx.env.registries);
      if (!names.includes(r.registry)) {
        ctx.report(["registry"], `registry "${r.registry}" is not defined in environment "${ctx.env.name}"`, {
          hint: didYouMean(r.registry, names) ?? `define it under homelab:registries in ${envFileOf(ctx.env)}`,
        });
      }
    }
  },
  resolve(r, env, serviceDir): ResolvedImage {
    return {
      ...r,
      dockerfile: r.dockerfile ?? "Dockerfile",
      context: join(serviceDir, r.path),
      build_args: r.build_args ?? {},
      registry_url: r.registry !== undefined ? env?.registries[r.registry]?.url : undefined,
    };
  },
});
