/**
 * The seam between the sandbox's Proxmox-compatible API and what backs its
 * guests. The API layer owns Proxmox semantics (parameters, locks, tasks,
 * ids, tags, which volume belongs to whom); a backend only makes guests and
 * their data exist: volumes, their snapshots, backup archives. `memory`
 * keeps state only; `lxc` runs each guest as a real LXC container whose
 * volumes are folders on this machine.
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

/** Where a volume lives: its node, its storage and its name there (`vm-101-disk-0`). */
export interface VolumeRef {
  node: string;
  storage: string;
  name: string;
}

/** A mount point as a backend makes it inside a guest: a volume, or a host folder (bind mount). */
export interface GuestMount {
  /** `mp0`... */
  key: string;
  /** Absolute path inside the guest. */
  path: string;
  readOnly: boolean;
  /** Set for a storage volume. */
  volume?: VolumeRef;
  /** Set for a bind mount. */
  hostPath?: string;
}

/** A backup archive on a node's backup storage. */
export interface BackupRef {
  node: string;
  storage: string;
  /** `vzdump-lxc-101-2025_01_31-12_00_00.tar.zst` */
  file: string;
}

/** A volume and where it goes inside the guest. */
export interface PlacedVolume {
  path: string;
  volume: VolumeRef;
}

/** What goes into a vzdump archive, as pve-container's vzdump plugin assembles it. */
export interface BackupRequest {
  vmid: number;
  archive: BackupRef;
  /** vzdump's `compress`: `zstd`, `gzip`, `lzo`/`1`, or `0` (none). */
  compress: string;
  /** The guest's config as `pct.conf` text, stored as `etc/vzdump/pct.conf`. */
  config: string;
  rootfs: VolumeRef;
  /** Mount points with backup enabled, at their paths. */
  mounts: PlacedVolume[];
  /** Paths inside the guest left out: volumes without backup, bind mounts. */
  exclude: string[];
  /** Read from this storage snapshot of the volumes (`snapshot` mode); else from the volumes themselves. */
  snapshot?: string;
  /** `suspend` mode: freeze the running guest while the archive is written. */
  freeze: boolean;
}

/** Everything a backend needs to make a guest. */
export interface GuestSpec {
  vmid: number;
  node: string;
  hostname: string;
  /** Undefined for a restore: the root volume already holds the guest's tree. */
  template: TemplateInfo | undefined;
  /** The root volume (allocated before the guest is made). */
  rootfs: VolumeRef;
  mounts: GuestMount[];
  memoryMb: number;
  swapMb: number;
  cores: number;
  diskGb: number;
  net: GuestNetwork[];
  sshPublicKeys: string;
  unprivileged: boolean;
  features: { nesting: boolean; keyctl: boolean };
  /** A template (`template: 1`): never started, its root read-only. */
  isTemplate?: boolean;
  /**
   * The root volume holds a clone's tree (`template` undefined): it keeps its
   * SSH host keys and root's authorized keys, and its machine-id is cleared
   * as pve-container's `post_clone_hook` does.
   */
  cloned?: boolean;
}

/** A volume made for a new container from another one's (the `clone` API). */
export interface VolumeCloneRequest {
  from: VolumeRef;
  /** The new volume: allocated (empty) for a full clone, not yet for a linked one. */
  to: VolumeRef;
  /** A root volume (the guest's tree and its /var/lib/docker), not a mount point's. */
  root: boolean;
  /** A linked clone of a base volume: shares its data copy-on-write. Otherwise a full copy. */
  linked: boolean;
  /** Clone this storage snapshot of `from`, not its current state. */
  snapshot?: string;
}

/** What `update` changes on an existing guest. */
export type GuestChange = Partial<Pick<GuestSpec, "memoryMb" | "swapMb" | "cores" | "hostname" | "isTemplate">>;

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
  /** Applies live changes (memory, cores, hostname) to an existing guest; `isTemplate` to a stopped one. */
  update(vmid: number, change: GuestChange): Promise<void>;
  /** Removes the guest; its volumes stay (the API frees them one by one). */
  destroy(vmid: number): Promise<void>;
  status(vmid: number): Promise<GuestRuntimeStatus>;
  /** Null while stopped, as Proxmox answers. */
  interfaces(vmid: number): Promise<GuestInterface[] | null>;
  /**
   * The guest's root volume and mount points changed: they apply at its next
   * start; those in `hotplug` are also mounted into the running guest now.
   */
  setMounts(vmid: number, rootfs: VolumeRef, mounts: GuestMount[], hotplug: GuestMount[]): Promise<void>;

  /** Makes an empty volume. */
  allocateVolume(ref: VolumeRef, sizeBytes: number): Promise<void>;
  /**
   * Turns a stopped template's volume into base volume `to` (pve-storage's
   * `create_base`): renamed, its data kept and never written again, so
   * linked clones can share it.
   */
  makeBaseVolume(from: VolumeRef, to: VolumeRef): Promise<void>;
  /** Makes volume `to` a linked clone or a full copy of `from`. */
  cloneVolume(req: VolumeCloneRequest): Promise<void>;
  /** Removes a volume and its snapshots. */
  freeVolume(ref: VolumeRef): Promise<void>;
  /** Gives a volume a new name (a reassign to another guest); its data moves with it. */
  renameVolume(from: VolumeRef, to: VolumeRef): Promise<void>;
  /** Copies a volume's data into another, already allocated one (a move to another storage). */
  copyVolume(from: VolumeRef, to: VolumeRef): Promise<void>;
  resizeVolume(ref: VolumeRef, sizeBytes: number): Promise<void>;
  /** Takes storage snapshot `snap` of each volume, consistently: a running guest (`freezeVmid`) is frozen meanwhile. */
  snapshotVolumes(freezeVmid: number | undefined, snap: string, refs: VolumeRef[]): Promise<void>;
  /** Puts each volume of a stopped guest back to its snapshot `snap` (which stays). */
  rollbackVolumes(vmid: number, snap: string, refs: VolumeRef[]): Promise<void>;
  deleteVolumeSnapshot(snap: string, ref: VolumeRef): Promise<void>;

  /** Writes a vzdump archive; resolves to its size in bytes. */
  writeBackup(req: BackupRequest): Promise<{ size: number }>;
  /** The `etc/vzdump/pct.conf` inside an archive. */
  readBackupConfig(ref: BackupRef): Promise<string>;
  /** Fills freshly allocated volumes from an archive: the root tree and each mount point's files. */
  restoreBackup(ref: BackupRef, target: { rootfs: VolumeRef; mounts: PlacedVolume[] }): Promise<void>;
  freeBackup(ref: BackupRef): Promise<void>;

  /** Removes everything the backend made (guests, bridges, rules, processes). */
  close(): Promise<void>;
}
