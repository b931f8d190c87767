import type { ResourceType } from "./define.ts";
import { dockerImage } from "./docker-image.ts";
import { proxmoxContainer } from "./proxmox-container.ts";

/**
 * Every resource type, by its `type` string. Adding a type is one module that
 * calls defineResourceType, plus one line here.
 */
export const RESOURCE_TYPES: ReadonlyMap<string, ResourceType> = new Map(
  [dockerImage, proxmoxContainer].map((t) => [t.type, t]),
);

export type { ResourceType, CheckContext } from "./define.ts";
