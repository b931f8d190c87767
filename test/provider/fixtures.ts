/** Inputs for provider tests (no sandbox, so the pure tests stay light). */
import type { ContainerInputs } from "../../src/plan/types.ts";

/** The URN of a test container. */
export const URN = "urn:pulumi:test.web::homelab::homelab:proxmox:Container::web";

/** Inputs of a small container; `over` replaces fields. */
export function inputs(over: Partial<ContainerInputs> = {}): ContainerInputs {
  return {
    node: "pve-01",
    template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    hostname: "web",
    description: "Managed by homelab: service web, environment test. Changes here are overwritten.",
    tags: ["homelab", "web"],
    memory: 512,
    swap: 256,
    cores: 1,
    storage: "local-lvm",
    diskGb: 4,
    volumes: [],
    bindMounts: [],
    bridge: "vmbr0",
    ip: "10.20.0.5/24",
    gateway: "10.20.0.1",
    unprivileged: true,
    nesting: true,
    keyctl: false,
    sshPublicKeys: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKo2b7dTUrlgvEvSbbV9xvc7W5oEXAMPLEKEYONLY test@homelab",
    onBoot: true,
    protection: false,
    ...over,
  };
}
