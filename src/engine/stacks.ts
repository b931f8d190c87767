/**
 * Names of the Pulumi project and stacks: one project `homelab`, one stack
 * per service and environment, `<env>.<service>`. Pure.
 */

/** The one Pulumi project every stack belongs to. */
export const PROJECT = "homelab";

/** The stack of a service in an environment: `prod.peach`. */
export function stackName(env: string, service: string): string {
  return `${env}.${service}`;
}

/** Splits `prod.peach` into environment and service; undefined for names that are not ours. */
export function parseStackName(name: string): { env: string; service: string } | undefined {
  // Fully qualified names (organization/homelab/prod.peach) are accepted too.
  const short = name.slice(name.lastIndexOf("/") + 1);
  const dot = short.indexOf(".");
  if (dot <= 0 || dot === short.length - 1) return undefined;
  return { env: short.slice(0, dot), service: short.slice(dot + 1) };
}

/** The name a StackReference uses for another service's stack (the file backend's `organization`). */
export function qualifiedStackName(env: string, service: string, org = "organization"): string {
  return `${org}/${PROJECT}/${stackName(env, service)}`;
}

/** The resource id (the Pulumi resource name) at the end of a URN. */
export function urnName(urn: string): string {
  const i = urn.lastIndexOf("::");
  return i >= 0 ? urn.slice(i + 2) : urn;
}

/** The resource type in a URN (`homelab:proxmox:Container`), without parent types. */
export function urnType(urn: string): string {
  const parts = urn.split("::");
  const t = parts.length >= 4 ? (parts[parts.length - 2] ?? "") : "";
  return t.slice(t.lastIndexOf("$") + 1);
}
