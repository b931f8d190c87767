import type { ResourceType } from "./define.ts";
import { dockerImage } from "./docker-image.ts";
import { proxmoxContainer } from "./proxmox-container.ts";

/**
 * Every resource type, by its `type` string. Adding a type is one module that
 * calls defineResourceType, plus one line here.
 */
export const RESOURCE_TYPES: ReadonlyMap<string, ResourceType<object>> = new Map<string, ResourceType<object>>(
  [dockerImage, proxmoxContainer].map((t): [string, ResourceType<object>] => [t.type, t]),
);

export { dockerImage, proxmoxContainer };
export type { ResolvedImage } from "./docker-image.ts";
export type { ResolvedContainer } from "./proxmox-container.ts";

export type { ResourceType, CheckContext } from "./define.ts";
