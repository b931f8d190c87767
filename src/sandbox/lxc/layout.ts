/**
 * Where one lxc backend keeps things, as plain data: its state folder's
 * parts, its dockerd's folders under /run, each guest's folder, and the
 * addresses of the services it runs on the bridge. The backend's parts
 * (host services, guest files, guests) and its clean-up all read it here.
 */
import { join } from "node:path";
import type { LxcRef } from "./commands.ts";
import type { Subnet } from "./net.ts";

/** The image registry's port on the bridge's host address. */
export const REGISTRY_PORT = 5000;
/** The package cache's port on the bridge's host address. */
export const PACKAGE_CACHE_PORT = 3142;

/** Where LXC containers live inside a state folder. */
export function lxcpathOf(stateDir: string): string {
  return join(stateDir, "lxc");
}

/** The registry's config file in a state folder. */
export function registryConfigOf(stateDir: string): string {
  return join(stateDir, "registry.yml");
}

/** Where the storages' volumes, their snapshots and backups live inside a state folder. */
export function storageDirOf(stateDir: string): string {
  return join(stateDir, "storage");
}

/** The folders of a state folder that close empties (volumes, snapshots and backups included). */
export const STATE_SUBDIRS: readonly string[] = ["lxc", "run", "logs", "registry", "docker", "storage"];

/**
 * Where a backend's dockerd keeps its sockets and runtime state: under /run,
 * named after the bridge, because a state folder may be too deep for unix
 * socket paths (containerd's sit under the exec root). Images stay in the
 * state folder (`docker/data`).
 */
export function dockerRunDirOf(bridge: string): string {
  return `/run/homelab-sandbox/${bridge}`;
}

/** The paths of a backend's dockerd: `dir` (data root, pid file), its exec root and its socket. */
export function dockerPathsOf(stateDir: string, bridge: string): { dir: string; execRoot: string; socket: string } {
  const run = dockerRunDirOf(bridge);
  return { dir: join(stateDir, "docker"), execRoot: join(run, "docker"), socket: join(run, "docker.sock") };
}

/** Everything of one backend that has a place or an address. */
export interface BackendLayout {
  bridge: string;
  subnet: Subnet;
  /** Absolute; emptied on close. */
  stateDir: string;
  lxcpath: string;
  /** Pid files and the package cache's config. */
  runDir: string;
  logDir: string;
  registryDir: string;
  /** The storages: `<node>/<storage>/<volume>`, snapshots in `.snap/`, backups in `dump/`. */
  storageDir: string;
  /** The unpacked templates' cache, kept across runs. */
  templateDir: string;
  /** The package cache's storage, kept across runs. */
  packageCacheDir: string;
  /** The dockerd's paths when the backend runs one. */
  docker: { dir: string; execRoot: string; socket: string } | undefined;
  /** The registry, `host:port`. */
  registry: string;
  /** The package cache as an apt HTTP proxy URL. */
  packageCacheUrl: string;
}

/** The layout of a backend from its options (`stateDir` absolute). */
export function backendLayout(o: { stateDir: string; bridge: string; subnet: Subnet; templateDir: string; packageCacheDir: string; docker: boolean }): BackendLayout {
  return {
    bridge: o.bridge,
    subnet: o.subnet,
    stateDir: o.stateDir,
    lxcpath: lxcpathOf(o.stateDir),
    runDir: join(o.stateDir, "run"),
    logDir: join(o.stateDir, "logs"),
    registryDir: join(o.stateDir, "registry"),
    storageDir: storageDirOf(o.stateDir),
    templateDir: o.templateDir,
    packageCacheDir: o.packageCacheDir,
    docker: o.docker ? dockerPathsOf(o.stateDir, o.bridge) : undefined,
    registry: `${o.subnet.hostAddress}:${REGISTRY_PORT}`,
    packageCacheUrl: `http://${o.subnet.hostAddress}:${PACKAGE_CACHE_PORT}`,
  };
}

/** The LXC name of a guest (`<bridge>-<vmid>`). */
export function containerName(bridge: string, vmid: number): string {
  return `${bridge}-${vmid}`;
}

/** One guest's files: its LXC folder holds its config, logs and the mount point of its root (the data is in its root volume). */
export interface GuestPaths {
  ref: LxcRef;
  dir: string;
  /** Where the root volume is mounted: what the guest sees as `/`. */
  rootfs: string;
  config: string;
  consoleLog: string;
  /** lxc-start's log. */
  startLog: string;
}

/** Where a guest's files are. */
export function guestPaths(layout: BackendLayout, vmid: number): GuestPaths {
  const name = containerName(layout.bridge, vmid);
  const dir = join(layout.lxcpath, name);
  return {
    ref: { lxcpath: layout.lxcpath, name },
    dir,
    rootfs: join(dir, "rootfs"),
    config: join(dir, "config"),
    consoleLog: join(dir, "console.log"),
    startLog: join(dir, "lxc.log"),
  };
}
