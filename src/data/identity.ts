/**
 * Which service, resource and environment a container belongs to, as its
 * notes (Proxmox's `description`) say. The notes are how the data of a
 * service is found again when its container is rebuilt: the container it
 * replaces, or the one a destroy kept with its volumes, carries the same
 * identity under another vmid. Pure.
 */

/** The owner of a container: a resource of a service in an environment. */
export interface ContainerIdentity {
  service: string;
  resource: string;
  environment: string;
}

/** Tag of a container a destroy kept for its data (stopped, never started by homelab). */
export const KEPT_TAG = "homelab-kept";

const MANAGED = /^Managed by homelab: service ([^\s,]+), resource ([^\s,]+), environment ([^\s,.]+)\./;
const KEPT = /^Kept by homelab: the data of service ([^\s,]+), resource ([^\s,]+), environment ([^\s,.]+)[.,]/;

/** The notes of a container homelab manages. */
export function managedDescription(id: ContainerIdentity): string {
  return `Managed by homelab: service ${id.service}, resource ${id.resource}, environment ${id.environment}. Changes made here are overwritten by the next deploy.`;
}

/** The notes of a container kept for its data: whose it is, why, and how to reattach or delete it. */
export function keptDescription(id: ContainerIdentity, why: string, at: Date): string {
  return [
    `Kept by homelab: the data of service ${id.service}, resource ${id.resource}, environment ${id.environment}, ${why} on ${at.toISOString()}.`,
    `Its volumes go to the service's next container: homelab --env ${id.environment} deploy ${id.service}.`,
    `To delete it and its data: homelab --env ${id.environment} destroy ${id.service} --delete-data.`,
  ].join("\n");
}

/** The identity the notes carry, and whether they mark a kept container; undefined for notes homelab did not write. */
export function identityOf(description: string | undefined): { identity: ContainerIdentity; kept: boolean } | undefined {
  const text = (description ?? "").trimStart();
  const managed = MANAGED.exec(text);
  if (managed) return { identity: { service: managed[1] ?? "", resource: managed[2] ?? "", environment: managed[3] ?? "" }, kept: false };
  const kept = KEPT.exec(text);
  if (kept) return { identity: { service: kept[1] ?? "", resource: kept[2] ?? "", environment: kept[3] ?? "" }, kept: true };
  return undefined;
}

/** Whether two identities are the same resource. */
export function sameIdentity(a: ContainerIdentity, b: ContainerIdentity): boolean {
  return a.service === b.service && a.resource === b.resource && a.environment === b.environment;
}

/** `service/resource` for messages. */
export function identityLabel(id: ContainerIdentity): string {
  return `${id.service}/${id.resource}`;
}
