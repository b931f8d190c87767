/**
 * The `homelab` provider: routes the engine's calls to the resource named in
 * each URN. It runs inside the `pulumi-resource-homelab` plugin and, in
 * tests, in-process.
 */
import { readFileSync } from "node:fs";
import type { CheckResult, CreateResult, DiffResult, Provider, ReadResult, UpdateResult } from "@pulumi/pulumi/provider/index.js";
import { ContainerResource, CONTAINER_TYPE, settled } from "./container.ts";
import type { ContainerTimeouts } from "./container.ts";
import { ProviderContext } from "./context.ts";
import type { ProviderContextOptions } from "./context.ts";

/** Options of HomelabProvider: the environment variables to read, and tuning for tests. */
export interface HomelabProviderOptions extends ProviderContextOptions {
  timeouts?: Partial<ContainerTimeouts>;
}

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

/** The provider object handed to `provider.main`. */
export class HomelabProvider implements Provider {
  readonly version: string = packageVersion();
  readonly context: ProviderContext;
  private readonly container: ContainerResource;

  constructor(options: HomelabProviderOptions) {
    this.context = new ProviderContext(options);
    this.container = new ContainerResource(this.context, options.timeouts);
  }

  /** Validates inputs and applies defaults. */
  check(urn: string, olds: unknown, news: unknown): Promise<CheckResult> {
    return settled(() => this.resource(urn)).then((r) => r.check(olds, news));
  }

  /** Says what changes, and what forces a replacement. */
  diff(_id: string, urn: string, olds: unknown, news: unknown): Promise<DiffResult> {
    return settled(() => this.resource(urn)).then((r) => r.diff(olds, news));
  }

  /** Creates the resource. */
  create(urn: string, inputs: unknown): Promise<CreateResult> {
    return settled(() => this.resource(urn)).then((r) => r.create(inputs));
  }

  /** Reads the live resource (refresh, import). */
  read(id: string, urn: string, props?: unknown): Promise<ReadResult> {
    return settled(() => this.resource(urn)).then((r) => r.read(id, props));
  }

  /** Updates in place. */
  update(id: string, urn: string, olds: unknown, news: unknown): Promise<UpdateResult> {
    return settled(() => this.resource(urn)).then((r) => r.update(id, olds, news));
  }

  /** Deletes the resource. */
  delete(id: string, urn: string, props: unknown): Promise<void> {
    return settled(() => this.resource(urn)).then((r) => r.delete(id, props));
  }

  /** Closes the Proxmox connections when the engine cancels. */
  cancel(): Promise<void> {
    return this.context.close();
  }

  private resource(urn: string): ContainerResource {
    const type = resourceType(urn);
    if (type === CONTAINER_TYPE) return this.container;
    throw new Error(`the homelab provider has no resource type ${JSON.stringify(type)} (it serves ${CONTAINER_TYPE})`);
  }
}
