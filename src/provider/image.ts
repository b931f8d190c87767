/**
 * `homelab:docker:Image`: an image built from a service's folder with the
 * Docker Engine, tagged with the content hash of its build context, and
 * pushed to the environment's registry. Create and update call
 * `ensureImage`, which builds only when the tag is missing (in the registry,
 * or locally without one); read checks that the tag still exists; delete
 * leaves pushed tags in the registry (a registry's garbage collection is
 * its own business, and a rollback may want them).
 *
 * The Engine is the one `DOCKER_HOST` names (`unix://...` or `tcp://...`),
 * else the local socket. A plain-HTTP registry must be in that Engine's
 * `insecure-registries`; `ensureImage` checks and says how.
 */
import type { CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import Docker from "dockerode";
import type { DockerOptions } from "dockerode";
import type { RegistryAccess } from "../provision/compose-files.ts";
import { ImageError, ensureImage, hashContext, imageRef, registryHasTag } from "../provision/image.ts";
import type { ImageSpec } from "../provision/image.ts";
import { registryAccess } from "../provision/inputs.ts";
import type { ProviderContext } from "./context.ts";
import { ProviderError, translateError } from "./errors.ts";
import { IMAGE_TYPE, checkImageInputs, diffImage, parseImageState, registryHost } from "./image-inputs.ts";
import type { ImageInputs, ImageOutputs, ImageRegistryInput } from "./image-inputs.ts";
import { propertyBag, withoutUndefined } from "./inputs.ts";
import type { ProviderLog } from "./log.ts";
import { urnName } from "./log.ts";

export { IMAGE_TYPE };

/** Docker Engine connection options from `DOCKER_HOST` in the plugin's environment (undefined: the local socket). */
function dockerOptions(env: NodeJS.ProcessEnv): DockerOptions | undefined {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === "") return undefined;
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
  const url = new URL(host.replace(/^tcp:/, "http:"));
  const tls = env.DOCKER_TLS_VERIFY === "1" || url.port === "2376";
  return { protocol: tls ? "https" : "http", host: url.hostname, port: url.port || (tls ? "2376" : "2375") };
}

type ValidImage = Required<Pick<ImageInputs, "name" | "context" | "dockerfile" | "buildArgs">> & Pick<ImageInputs, "registry" | "contextHash">;

/** The image resource's CRUD. */
export class ImageResource {
  private readonly ctx: ProviderContext;
  private readonly log: ProviderLog;
  private docker: Docker | undefined;

  constructor(ctx: ProviderContext, log: ProviderLog, docker?: Docker) {
    this.ctx = ctx;
    this.log = log;
    this.docker = docker;
  }

  /** Validates the inputs and computes the context's hash when the program did not pass it. */
  async check(_urn: string, _olds: unknown, news: unknown): Promise<CheckResult> {
    const checked = checkImageInputs(news);
    if (!checked.ok) return { inputs: propertyBag(news), failures: checked.failures };
    const { inputs, unknown, bag } = checked;
    if (inputs.contextHash !== undefined || unknown.has("contextHash")) return { inputs: bag };
    if (unknown.has("context") || unknown.has("dockerfile") || unknown.has("buildArgs")) return { inputs: bag };
    try {
      const h = await hashContext({ context: inputs.context, dockerfile: inputs.dockerfile, buildArgs: inputs.buildArgs });
      return { inputs: { ...bag, contextHash: h.hash } };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return { inputs: bag, failures: [{ property: "context", reason: `the build context ${inputs.context} does not exist` }] };
      if (error instanceof ImageError) return { inputs: bag, failures: [{ property: "dockerfile", reason: error.message }] };
      throw translateError(`hashing the build context of ${inputs.name}`, error);
    }
  }

  /** An update when the content hash, name, registry or build settings changed; never a replacement. */
  diff(_urn: string, olds: unknown, news: unknown): Promise<DiffResult> {
    const checked = checkImageInputs(news);
    if (!checked.ok) return Promise.reject(new ProviderError(`invalid inputs: ${checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`, "fix the service definition"));
    const d = diffImage(parseImageState(olds), checked.inputs, checked.unknown);
    return Promise.resolve({ changes: d.changed.length > 0, replaces: [], deleteBeforeReplace: false });
  }

  /** Builds (when the tag is missing) and pushes. */
  async create(urn: string, news: unknown): Promise<CreateResult> {
    const inputs = this.validInputs(news);
    const outs = await this.ensure(urn, inputs);
    return { id: outs.ref.slice(0, outs.ref.lastIndexOf(":")), outs: withoutUndefined(outs) };
  }

  /** The same as create: the new tag is built and pushed; the old one stays. */
  async update(urn: string, _id: string, _olds: unknown, news: unknown): Promise<UpdateResult> {
    const inputs = this.validInputs(news);
    return { outs: withoutUndefined(await this.ensure(urn, inputs)) };
  }

  /** Whether the tag still exists (in the registry, or in the local Engine without one); gone reads as an empty id. */
  async read(urn: string, id: string, props: unknown): Promise<ReadResult> {
    const state = parseImageState(props);
    if (state.name === undefined || state.tag === undefined) return { id, props: propertyBag(props) };
    const what = `reading image ${state.ref ?? state.name}`;
    try {
      if (state.registry) {
        const has = await registryHasTag(await this.access(state.registry), state.name, state.tag);
        if (has === false) {
          this.log.warn(urn, `${state.ref ?? state.name} is no longer in the registry ${registryHost(state.registry.url)}; the next deploy builds and pushes it again`);
          return { id: "", props: {} };
        }
        // Undefined: the registry cannot say (token auth, unreachable); keep what is known.
        return { id, props: propertyBag(props) };
      }
      const ref = state.ref ?? imageRef({ name: state.name }, state.tag);
      const present = await this.engine()
        .getImage(ref)
        .inspect()
        .then(
          () => true,
          (error: unknown) => {
            if ((error as { statusCode?: number }).statusCode === 404) return false;
            throw error;
          },
        );
      return present ? { id, props: propertyBag(props) } : { id: "", props: {} };
    } catch (error) {
      throw translateError(what, error);
    }
  }

  /** Nothing is removed: pushed tags stay in the registry and local images in the Engine. */
  delete(urn: string): Promise<void> {
    this.log.status(urn, "image tags are left in the registry (remove them with the registry's own tools)");
    return this.log.flush();
  }

  private validInputs(news: unknown): ValidImage {
    const checked = checkImageInputs(news);
    if (!checked.ok) throw new ProviderError(`invalid inputs: ${checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ")}`, "fix the service definition");
    if (checked.unknown.size > 0) throw new ProviderError(`inputs still unknown: ${[...checked.unknown].join(", ")}`, "this is a bug in the program that declares the resource");
    return checked.inputs;
  }

  /** The environment's homelab:docker_host when it names one (the lxc sandbox does), else DOCKER_HOST, else the local socket. */
  private engine(): Docker {
    if (this.docker === undefined) {
      const host = this.ctx.loadEnvironment().docker.host;
      this.docker = new Docker(dockerOptions(host !== undefined ? { ...this.ctx.processEnv, DOCKER_HOST: host } : this.ctx.processEnv));
    }
    return this.docker;
  }

  /** Registry access with the credentials the environment has for it (by name, else by address). */
  private async access(r: ImageRegistryInput): Promise<RegistryAccess> {
    const env = this.ctx.loadEnvironment();
    const configured = (r.name !== undefined ? env.registries[r.name] : undefined) ?? Object.values(env.registries).find((c) => registryHost(c.url) === registryHost(r.url));
    if (configured === undefined || registryHost(configured.url) !== registryHost(r.url)) return { url: r.url, insecure: r.insecure };
    const withCredentials = await registryAccess(configured, this.ctx.processEnv);
    return { ...withCredentials, url: r.url, insecure: r.insecure };
  }

  private async ensure(urn: string, inputs: ValidImage): Promise<ImageOutputs> {
    const name = urnName(urn);
    const doing = `docker:image ${name}`;
    try {
      const spec: ImageSpec = {
        id: name,
        name: inputs.name,
        context: inputs.context,
        dockerfile: inputs.dockerfile,
        buildArgs: inputs.buildArgs,
        ...(inputs.registry ? { registry: await this.access(inputs.registry) } : {}),
      };
      const h = await hashContext(spec);
      if (inputs.contextHash !== undefined && inputs.contextHash !== h.hash) {
        this.log.warn(urn, `the build context ${inputs.context} changed since the preview; building what is there now (tag ${h.tag})`);
      }
      this.log.status(urn, `checking ${imageRef(spec, h.tag)}`);
      const result = await ensureImage(spec, {
        docker: this.engine(),
        hash: h,
        onOutput: (line) => {
          // Steps are the progress; verbose, every line is output (and the progress too).
          if (this.log.verbose) this.log.output(urn, line);
          else if (/^building |^Step \d+\/\d+ : /.test(line)) this.log.status(urn, line);
        },
      });
      this.log.status(urn, result.built ? `built ${result.ref} in ${result.buildMs} ms${result.pushed ? `, pushed in ${result.pushMs} ms` : ""}` : `${result.ref}: ${result.reason}${result.pushed ? ", pushed" : ""}`);
      await this.log.flush();
      return { ...inputs, contextHash: h.hash, ref: result.ref, tag: result.tag, hash: result.hash };
    } catch (error) {
      await this.log.flush();
      // An ImageError's message already names the image and, for a failed build, the step and its output.
      if (error instanceof ImageError) {
        const out = new Error(error.message, { cause: error });
        out.name = "HomelabProviderError";
        throw out;
      }
      throw translateError(doing, error);
    }
  }
}
