/**
 * Image references in compose files: services that use an image built by the
 * service's `docker:image` resources are rewritten to pull the pushed one, and
 * a compose file's images and health checks are read. Pure.
 */
import { isMap, isScalar, parseDocument } from "yaml";
import type { Document } from "yaml";
import { ComposeInputError, normalizeRelative } from "./compose-files.ts";

/** An image built by a `docker:image` resource of the service. */
export interface BuiltImage {
  /** The resource's `name`, which compose files use as `image:`. */
  name: string;
  /** What the container pulls: `<registry>/<name>:<tag>`. */
  ref: string;
  /** The build context relative to service.yaml, so a compose `build:` of that folder is replaced too. */
  path?: string;
}

/** A compose `image:` the deployment changed. */
export interface ImageRewrite {
  file: string;
  service: string;
  from: string;
  to: string;
}

/** Splits an image reference into name and tag (`repo:tag`; digests and registry ports kept apart). */
function splitRef(ref: string): { name: string; tag: string | undefined } {
  if (ref.includes("@")) return { name: ref, tag: undefined };
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: undefined };
}

/**
 * Rewrites a compose file so services using a built image pull the pushed
 * one: `image: <name>` (or `<name>:latest`) becomes the image's ref, and a
 * `build:` of the image's folder is replaced by `image: <ref>` (the container
 * has no build context). Returns the text unchanged when nothing matches.
 */
export function rewriteImages(file: string, content: string, images: readonly BuiltImage[]): { content: string; rewrites: ImageRewrite[]; warnings: string[] } {
  const rewrites: ImageRewrite[] = [];
  const warnings: string[] = [];
  if (images.length === 0 && !/^\s*build\s*:/m.test(content)) return { content, rewrites, warnings };
  const doc: Document = parseDocument(content, { keepSourceTokens: false });
  if (doc.errors.length > 0) throw new ComposeInputError(`compose file ${file} is not valid YAML: ${doc.errors[0]?.message ?? ""}`);
  const services = doc.get("services");
  if (!isMap(services)) return { content, rewrites, warnings };
  let modified = false;
  const byName = new Map(images.map((i) => [i.name, i]));
  const byPath = new Map(images.filter((i) => i.path !== undefined).map((i) => [normalizeRelative(i.path ?? "", "image path"), i]));
  for (const item of services.items) {
    const svcName = isScalar(item.key) ? String(item.key.value) : String(item.key);
    const svc = item.value;
    if (!isMap(svc)) continue;
    const imageNode = svc.get("image", true);
    const image = isScalar(imageNode) && typeof imageNode.value === "string" ? imageNode.value : undefined;
    let built: BuiltImage | undefined;
    if (image !== undefined) {
      const { name, tag } = splitRef(image);
      if (tag === undefined || tag === "latest") built = byName.get(name);
    }
    const build: unknown = svc.get("build", true);
    if (build !== undefined) {
      const ctx: unknown = isScalar(build) ? build.value : isMap(build) ? build.get("context") : undefined;
      const fromBuild = typeof ctx === "string" ? byPath.get(normalizeRelative(ctx, "build context")) : undefined;
      built ??= fromBuild;
      if (built) {
        svc.delete("build");
        modified = true;
      } else {
        warnings.push(`${file}: service ${svcName} has a build: the container cannot build it; add a docker:image resource for that folder and refer to it by name`);
      }
    }
    if (built && image !== built.ref) {
      modified = true;
      svc.set("image", built.ref);
      rewrites.push({ file, service: svcName, from: image ?? "(build)", to: built.ref });
    }
  }
  if (!modified) return { content, rewrites, warnings };
  return { content: doc.toString({ lineWidth: 0 }), rewrites, warnings };
}

/** Images a compose file uses (after rewriting), for the registries check. */
export function composeImages(content: string): string[] {
  const doc = parseDocument(content);
  const services = doc.get("services");
  if (!isMap(services)) return [];
  const out: string[] = [];
  for (const item of services.items) {
    const svc = item.value;
    if (!isMap(svc)) continue;
    const image = svc.get("image");
    if (typeof image === "string") out.push(image);
  }
  return out;
}

/** Whether a compose file declares health checks (then waiting means healthy, not just running). */
export function declaresHealthchecks(content: string): boolean {
  const doc = parseDocument(content);
  const services = doc.get("services");
  if (!isMap(services)) return false;
  return services.items.some((i) => isMap(i.value) && i.value.has("healthcheck"));
}
