/** Plans for engine and rendering tests: one container's inputs, a planned container, a service's plan. */
import type { ContainerInputs, PlannedContainer, PlannedResource, ServicePlan } from "../../src/plan/types.ts";

/** A small container's inputs (dhcp, unprivileged, no nesting); `over` replaces fields. */
export function containerInputs(over: Partial<ContainerInputs> = {}): ContainerInputs {
  return {
    node: "pve-01",
    template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    hostname: "web",
    description: "Managed by homelab",
    tags: ["homelab", "peach"],
    memory: 512,
    swap: 512,
    cores: 1,
    storage: "local-lvm",
    diskGb: 8,
    volumes: [],
    bindMounts: [],
    bridge: "vmbr0",
    ip: "dhcp",
    unprivileged: true,
    nesting: false,
    keyctl: false,
    sshPublicKeys: "ssh-ed25519 AAAA",
    onBoot: true,
    protection: false,
    ...over,
  };
}

/** A planned container with these inputs on pve-01, no compose project; `over` replaces fields. */
export function plannedContainer(id: string, inputs: ContainerInputs, over: Partial<PlannedContainer> = {}): PlannedContainer {
  return {
    kind: "proxmox:container",
    id,
    protect: false,
    dependsOn: [],
    crossDependsOn: [],
    inputs,
    template: { chosen: inputs.template, sticky: false, candidates: [] },
    placement: { chosen: "pve-01", sticky: false, strategy: "most-free-memory", candidates: [] },
    compose: undefined,
    ...over,
  };
}

/** The plan of service peach in `environment`, provisioning on unless said. */
export function servicePlan(environment: string, resources: PlannedResource[], provisioning: ServicePlan["provisioning"] = { enabled: true, dockerSource: "docker" }): ServicePlan {
  return { service: "peach", environment, stack: `${environment}.peach`, resources, dependsOnServices: [], notes: [], provisioning };
}
