/**
 * `homelab:docker:Image`: its inputs (schema and defaults), stored state,
 * and what a change does. A new content hash (files, Dockerfile, build
 * args) is an update that builds and pushes the new tag; nothing ever
 * replaces an image resource. Pure.
 */
import { isAbsolute } from "node:path";
import { z } from "zod";
import { checkProperties, parseState, sameData } from "./schema.ts";
import type { Checked } from "./schema.ts";

/** The Pulumi type token of the resource. */
import { IMAGE_TYPE } from "./tokens.ts";
export { IMAGE_TYPE };

/** The registry an image is pushed to: where it is (credentials come from the environment, by name or address). */
export interface ImageRegistryInput {
  /** The registry's name in the environment (`homelab:registries`), to find its credentials. */
  name?: string;
  /** `host[:port]`. */
  url: string;
  /** Plain HTTP. */
  insecure: boolean;
}

/** The inputs of a `homelab:docker:Image` (the program passes a PlannedImage's fields). */
export interface ImageInputs {
  /** Repository name, e.g. `hello-web`; compose files refer to the image by it. */
  name: string;
  /** The build context: an absolute folder. */
  context: string;
  /** The Dockerfile, relative to the context. */
  dockerfile: string;
  buildArgs: Record<string, string>;
  /** Push here; without it the image stays in the local Docker Engine. */
  registry?: ImageRegistryInput;
  /**
   * sha256 (hex) of the context as `hashContext` computes it. The program should pass it (so the
   * preview's inputs show a changed context); `check` computes it when it is missing.
   */
  contextHash?: string;
}

/** What a `homelab:docker:Image` reports. */
export interface ImageOutputs extends ImageInputs {
  contextHash: string;
  /** What to pull: `<registry>/<name>:<tag>`, or `<name>:<tag>` without a registry. */
  ref: string;
  /** The first 16 hex digits of the hash. */
  tag: string;
  /** The full content hash (equal to contextHash). */
  hash: string;
}

// Docker's repository name grammar (lowercase path components separated by `/`).
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const REPOSITORY = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const REGISTRY_URL = /^(https?:\/\/)?[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._/-]*)?$/;

/** The registry part of the inputs. */
const imageRegistrySchema = z.strictObject({
  name: z.string().min(1).optional(),
  url: z.string().regex(REGISTRY_URL, { error: "registry.url must be a registry address such as registry.lan:5000" }),
  insecure: z.boolean().default(false),
});

/** The inputs of `homelab:docker:Image`, with the provider's defaults. */
const imageInputsSchema = z.strictObject({
  name: z.string().regex(REPOSITORY, { error: "name must be a Docker repository name: lowercase letters, digits, and . _ - / between them, e.g. hello-web" }),
  context: z.string().refine((p) => isAbsolute(p), { error: "context must be an absolute folder" }),
  dockerfile: z
    .string()
    .min(1)
    .refine((p) => !isAbsolute(p) && !p.split(/[\\/]/).includes(".."), { error: "dockerfile must be a path inside the context" })
    .default("Dockerfile"),
  buildArgs: z.record(z.string(), z.string()).default({}),
  registry: imageRegistrySchema.optional(),
  contextHash: z.string().regex(/^[0-9a-f]{64}$/, { error: "contextHash must be a sha256 in hex (hashContext's hash)" }).optional(),
});

/** Properties the provider computes; a program may declare them (as undefined) to read them. */
const IMAGE_OUTPUT_ONLY: ReadonlySet<string> = new Set(["ref", "tag", "hash"]);

/** Validates an image's inputs and applies defaults. Pure. */
export function checkImageInputs(raw: unknown): Checked<z.output<typeof imageInputsSchema>> {
  return checkProperties(imageInputsSchema, raw, {
    type: IMAGE_TYPE,
    ignore: IMAGE_OUTPUT_ONLY,
    placeholder: (key) => ({ name: "unknown", context: "/unknown", dockerfile: "Dockerfile", buildArgs: {}, registry: { url: "unknown:5000", insecure: false }, contextHash: "0".repeat(64) })[key],
  });
}

/** What is known of an image from its stored state. */
export type ImageState = Partial<ImageOutputs>;

const stateFields = {
  name: z.string(),
  context: z.string(),
  dockerfile: z.string(),
  buildArgs: z.record(z.string(), z.string()),
  registry: z.object({ name: z.string().optional(), url: z.string(), insecure: z.boolean() }),
  contextHash: z.string(),
  ref: z.string(),
  tag: z.string(),
  hash: z.string(),
} satisfies Record<keyof ImageOutputs, z.ZodType>;

/** Parses an image's stored state leniently. Pure. */
export function parseImageState(raw: unknown): ImageState {
  return parseState<ImageOutputs>(raw, stateFields);
}

/** A registry address as it appears in image references (`http(s)://` and trailing slashes dropped). */
export function registryHost(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/+$/, "");
}

/**
 * The inputs whose change rebuilds or re-pushes (an update; never a replacement):
 * the content hash, the name, the registry's address, the Dockerfile and build args
 * (also in the hash). The context's folder is not compared: the same content in
 * another checkout is the same image.
 */
export function diffImage(olds: ImageState, news: Partial<ImageInputs>, unknown: ReadonlySet<string> = new Set()): { changed: (keyof ImageInputs)[] } {
  const changed: (keyof ImageInputs)[] = [];
  const same: Record<Exclude<keyof ImageInputs, "context">, () => boolean> = {
    name: () => olds.name === news.name,
    dockerfile: () => (olds.dockerfile ?? "Dockerfile") === (news.dockerfile ?? "Dockerfile"),
    buildArgs: () => sameData(olds.buildArgs ?? {}, news.buildArgs ?? {}),
    registry: () =>
      (olds.registry === undefined && news.registry === undefined) ||
      (olds.registry !== undefined && news.registry !== undefined && registryHost(olds.registry.url) === registryHost(news.registry.url) && olds.registry.insecure === news.registry.insecure),
    contextHash: () => news.contextHash !== undefined && olds.contextHash === news.contextHash,
  };
  for (const [key, test] of Object.entries(same) as [Exclude<keyof ImageInputs, "context">, () => boolean][]) {
    if (unknown.has(key) || !test()) changed.push(key);
  }
  return { changed };
}
