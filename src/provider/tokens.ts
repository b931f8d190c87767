/**
 * The Pulumi type tokens of the homelab provider's resources: the contract
 * between the engine's program and the plugin, in one dependency-free place.
 */

/** A Proxmox LXC container. */
export const CONTAINER_TYPE = "homelab:proxmox:Container";

/** A Docker image built from a service's folder and pushed to a registry. */
export const IMAGE_TYPE = "homelab:docker:Image";

/** A service's Docker Compose project inside its container. */
export const DEPLOYMENT_TYPE = "homelab:compose:Deployment";
