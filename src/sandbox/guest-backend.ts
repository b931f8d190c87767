/**
 * The seam between the sandbox's Proxmox-compatible API and what backs its
 * guests. The API layer owns Proxmox semantics (parameters, locks, tasks,
 * ids, tags); a backend only makes guests exist. `memory` keeps state only;
 * `lxc` runs each guest as a real LXC container.
 */

/** A template the backend can create guests from, as Proxmox lists `vztmpl` content. */
export interface TemplateInfo {
  /** e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst` */
  volid: string;
  /** Size in bytes. */
  size: number;
  /** Seconds since the epoch. */
  ctime: number;
  /** Local path of the tarball (lxc backend); absent for memory-only templates. */
  path?: string;
}

/** The parsed `net0` of a container. */
export interface GuestNetwork {
  name: string; // eth0
  bridge: string;
  hwaddr: string;
  /** `dhcp`, `manual`, or a CIDR such as `10.10.0.5/24`. */
  ip: string;
  gw?: string;
}

/** Everything a backend needs to make a guest. */
export interface GuestSpec {
  vmid: number;
  node: string;
  hostname: string;
  template: TemplateInfo;
  memoryMb: number;
  swapMb: number;
  cores: number;
  diskGb: number;
  net: GuestNetwork[];
  sshPublicKeys: string;
  unprivileged: boolean;
  features: { nesting: boolean; keyctl: boolean };
}

/** Live state of a guest, as a backend sees it. */
export interface GuestRuntimeStatus {
  running: boolean;
  /** Seconds since start; 0 when stopped. */
  uptime: number;
  /** Bytes of memory in use. */
  mem: number;
}

/** One interface as `GET /nodes/{node}/lxc/{vmid}/interfaces` reports it. */
export interface GuestInterface {
  name: string;
  hwaddr: string;
  /** IPv4 in CIDR form, when it has one. */
  inet?: string;
  inet6?: string;
}

/** What backs the sandbox's guests. All methods may take time; the API layer wraps them in tasks. */
export interface GuestBackend {
  readonly kind: "memory" | "lxc";
  /** Templates available on storage `local`, per node (the same on all nodes). */
  listTemplates(): Promise<TemplateInfo[]>;
  create(spec: GuestSpec): Promise<void>;
  start(vmid: number): Promise<void>;
  /** Hard stop. */
  stop(vmid: number): Promise<void>;
  /** Clean shutdown, hard stop after `timeoutSec` when `forceStop`. */
  shutdown(vmid: number, timeoutSec: number, forceStop: boolean): Promise<void>;
  reboot(vmid: number): Promise<void>;
  /** Applies live changes (memory, cores, hostname) to an existing guest. */
  update(vmid: number, change: Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname">>): Promise<void>;
  destroy(vmid: number): Promise<void>;
  status(vmid: number): Promise<GuestRuntimeStatus>;
  /** Null while stopped, as Proxmox answers. */
  interfaces(vmid: number): Promise<GuestInterface[] | null>;
  /** Removes everything the backend made (guests, bridges, rules, processes). */
  close(): Promise<void>;
}
