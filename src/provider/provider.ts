/**
 * The `homelab` provider: routes the engine's calls to the resource named in
 * each URN. It runs inside the `pulumi-resource-homelab` plugin and, in
 * tests, in-process.
 */
import { readFileSync } from "node:fs";
import type { CheckResult, CreateResult, DiffResult, Provider, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import type Docker from "dockerode";
import { ContainerResource, CONTAINER_TYPE, settled } from "./container.ts";
import type { ContainerTimeouts } from "./container-lifecycle.ts";
import { ProviderContext } from "./context.ts";
import type { ProviderContextOptions } from "./context.ts";
import { DEPLOYMENT_TYPE, DeploymentResource } from "./deployment.ts";
import type { DeploymentSettings } from "./deployment.ts";
import { IMAGE_TYPE, ImageResource } from "./image.ts";
import { ProviderLog } from "./log.ts";
import type { LogSink } from "./log.ts";

/** Options of HomelabProvider: the environment variables to read, and tuning for tests. */
export interface HomelabProviderOptions extends ProviderContextOptions {
  timeouts?: Partial<ContainerTimeouts>;
  /** Waits of compose deployments. */
  deployment?: Partial<DeploymentSettings>;
  /** The engine's address (the plugin's first argument), for status lines and verbose output. */
  engineAddress?: string;
  /** Receives status lines and output instead of the engine (tests). */
  logSink?: LogSink;
  /** The Docker Engine for images (default: DOCKER_HOST of `env`, else the local socket). */
  docker?: Docker;
}

/** The types the plugin serves. */
export const RESOURCE_TYPES = [CONTAINER_TYPE, IMAGE_TYPE, DEPLOYMENT_TYPE] as const;

/** The resource type of a URN (`urn:pulumi:stack::project::parent$type::name` gives `type`). */
export function resourceType(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.slice(qualified.lastIndexOf("$") + 1);
}

// src/provider/ and dist/provider/ are both two levels below package.json.
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** One resource type's operations, each with the URN of the resource it is called for. */
interface ResourceHandler {
  check(urn: string, olds: unknown, news: unknown): Promise<CheckResult>;
  diff(urn: string, olds: unknown, news: unknown): Promise<DiffResult>;
  create(urn: string, inputs: unknown): Promise<CreateResult>;
  read(urn: string, id: string, props: unknown): Promise<ReadResult>;
  update(urn: string, id: string, olds: unknown, news: unknown): Promise<UpdateResult>;
  delete(urn: string, id: string, props: unknown): Promise<void>;
}

function containerHandler(c: ContainerResource, log: ProviderLog): ResourceHandler {
  return {
    check: (_urn, olds, news) => c.check(olds, news),
    diff: (_urn, olds, news) => c.diff(olds, news),
    create: (urn, inputs) => c.create(inputs, (m) => log.info(urn, m)),
    read: (_urn, id, props) => c.read(id, props),
    update: (urn, id, olds, news) => c.update(id, olds, news, (m) => log.info(urn, m)),
    delete: (urn, id, props) => c.delete(id, props, (m) => log.info(urn, m)),
  };
}

/** The provider object handed to `provider.main`. */
export class HomelabProvider implements Provider {
  readonly version: string = packageVersion();
  readonly context: ProviderContext;
  readonly log: ProviderLog;
  private readonly handlers: ReadonlyMap<string, ResourceHandler>;

  constructor(options: HomelabProviderOptions) {
    this.context = new ProviderContext(options);
    this.log = new ProviderLog({
      verbose: this.context.verbose,
      ...(options.engineAddress !== undefined ? { engineAddress: options.engineAddress } : {}),
      ...(options.logSink ? { sink: options.logSink } : {}),
    });
    this.handlers = new Map<string, ResourceHandler>([
      [CONTAINER_TYPE, containerHandler(new ContainerResource(this.context, options.timeouts), this.log)],
      [IMAGE_TYPE, new ImageResource(this.context, this.log, options.docker)],
      [DEPLOYMENT_TYPE, new DeploymentResource(this.context, this.log, options.deployment)],
    ]);
  }

  /** Validates inputs and applies defaults. */
  check(urn: string, olds: unknown, news: unknown): Promise<CheckResult> {
    return settled(() => this.resource(urn)).then((r) => r.check(urn, olds, news));
  }

  /** Says what changes, and what forces a replacement. */
  diff(_id: string, urn: string, olds: unknown, news: unknown): Promise<DiffResult> {
    return settled(() => this.resource(urn)).then((r) => r.diff(urn, olds, news));
  }

  /** Creates the resource. */
  create(urn: string, inputs: unknown): Promise<CreateResult> {
    return settled(() => this.resource(urn)).then((r) => r.create(urn, inputs));
  }

  /** Reads the live resource (refresh, import). */
  read(id: string, urn: string, props?: unknown): Promise<ReadResult> {
    return settled(() => this.resource(urn)).then((r) => r.read(urn, id, props));
  }

  /** Updates in place. */
  update(id: string, urn: string, olds: unknown, news: unknown): Promise<UpdateResult> {
    return settled(() => this.resource(urn)).then((r) => r.update(urn, id, olds, news));
  }

  /** Deletes the resource. */
  delete(id: string, urn: string, props: unknown): Promise<void> {
    return settled(() => this.resource(urn)).then((r) => r.delete(urn, id, props));
  }

  /** Closes the Proxmox and engine connections when the engine cancels. */
  async cancel(): Promise<void> {
    await this.log.flush();
    this.log.close();
    await this.context.close();
  }

  private resource(urn: string): ResourceHandler {
    const type = resourceType(urn);
    const handler = this.handlers.get(type);
    if (handler) return handler;
    throw new Error(`the homelab provider has no resource type ${JSON.stringify(type)} (it serves ${RESOURCE_TYPES.join(", ")})`);
  }
}
