/**
 * What the lxc backend writes for a guest: its LXC config (limits, NICs,
 * nesting, mount points), its root (mounted from its root volume: an overlay
 * over the template's unpacked tree, so a new guest copies nothing, or the
 * plain tree of a restore) and the files written into that root, as Proxmox
 * writes them at create: hostname, hosts, resolver, root's SSH keys, its own
 * SSH host keys, and the apt proxy that sends downloads to the package cache.
 */
import { constants } from "node:fs";
import { access, chmod, chown, lstat, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { GuestMount, GuestSpec, TemplateInfo, VolumeRef } from "../guest-backend.ts";
import { aptProxyConf, bindMountCommand, cpusetFor, hostKeyCommand, hostsFile, lxcConfig, overlayMountCommand, readOnlyRemountCommand, removeTreeCommand, unmountUnderCommands } from "./commands.ts";
import type { GuestBindMount, LxcConfigParams } from "./commands.ts";
import type { Executor } from "./exec.ts";
import type { BackendLayout, GuestPaths } from "./layout.ts";
import type { PlannedAddress } from "./net.ts";
import { ensureBase, listTemplates } from "./templates.ts";
import type { VolumeStore } from "./volumes.ts";

/** What the host offers every guest, probed once when the backend starts. */
export interface HostFacts {
  cpus: number;
  /** Whether the kernel accounts swap (`memory.memsw.*`). */
  memsw: boolean;
}

function mb(n: number): number {
  return Math.max(1, Math.floor(n)) * 1024 * 1024;
}

/** Writes one file of a guest's root, replacing whatever is there. */
async function writeRootFile(rootfs: string, rel: string, content: string, mode = 0o644): Promise<void> {
  const path = join(rootfs, rel);
  await mkdir(dirname(path), { recursive: true });
  await rm(path, { force: true });
  await writeFile(path, content, { mode });
}

/**
 * pve-container's `clear_machine_id` for a clone (systemd guests only): a
 * `/var/lib/dbus/machine-id` that is a file goes, and `/etc/machine-id`
 * becomes an empty line unless it says `uninitialized`, so systemd makes a
 * new id at the clone's first boot without running its first-boot presets.
 */
async function clearMachineId(rootfs: string): Promise<void> {
  const systemd = await Promise.all(["lib/systemd/systemd", "usr/lib/systemd/systemd"].map((p) => access(join(rootfs, p), constants.X_OK).then(() => true, () => false)));
  if (!systemd.some(Boolean)) return;
  const dbus = join(rootfs, "var/lib/dbus/machine-id");
  if ((await lstat(dbus).catch(() => undefined))?.isFile()) await rm(dbus, { force: true });
  const id = await readFile(join(rootfs, "etc/machine-id"), "utf8").catch(() => undefined);
  if (id !== undefined && id.split("\n")[0]?.trim() !== "uninitialized") await writeRootFile(rootfs, "etc/machine-id", "\n", 0o444);
}

/** The files of the backend's guests. */
export class GuestFiles {
  private readonly ex: Executor;
  private readonly layout: BackendLayout;
  private readonly host: HostFacts;
  private readonly store: VolumeStore;
  private readonly progress: { progress?: (message: string) => void };

  constructor(o: { ex: Executor; layout: BackendLayout; host: HostFacts; store: VolumeStore; progress?: (message: string) => void }) {
    this.ex = o.ex;
    this.layout = o.layout;
    this.host = o.host;
    this.store = o.store;
    this.progress = o.progress ? { progress: o.progress } : {};
  }

  /** What a guest's LXC config says, from its spec and its interfaces' addresses. */
  lxcParams(spec: GuestSpec, paths: GuestPaths, addresses: readonly PlannedAddress[]): LxcConfigParams {
    const params: LxcConfigParams = {
      vmid: spec.vmid,
      hostname: spec.hostname,
      rootfs: paths.rootfs,
      nets: spec.net.map((n, i) => {
        const a = addresses[i] ?? {};
        return {
          index: i,
          name: n.name || `eth${i}`,
          bridge: this.layout.bridge,
          hwaddr: n.hwaddr,
          ...(a.cidr ? { address: a.cidr } : {}),
          ...(a.gateway ? { gateway: a.gateway } : {}),
        };
      }),
      memoryBytes: mb(spec.memoryMb),
      cpus: cpusetFor(spec.vmid, spec.cores, this.host.cpus),
      nesting: spec.features.nesting,
      consoleLog: paths.consoleLog,
      dockerDir: this.store.rootLayout(spec.rootfs).docker,
      mounts: spec.mounts.map((m) => this.bindMount(m)),
    };
    if (this.host.memsw) params.memswBytes = mb(spec.memoryMb) + Math.max(0, Math.floor(spec.swapMb)) * 1024 * 1024;
    return params;
  }

  /** Writes the LXC config. */
  async writeConfig(paths: GuestPaths, params: LxcConfigParams): Promise<void> {
    await writeFile(paths.config, lxcConfig(params));
  }

  /** A mount point as the LXC config binds it: the volume's folder, or the host folder. */
  bindMount(m: GuestMount): GuestBindMount {
    const source = m.volume ? this.store.dir(m.volume) : (m.hostPath ?? "");
    return { source, path: m.path, readOnly: m.readOnly };
  }

  /** Fails as Proxmox's mount does when a bind mount's host folder is missing. */
  async checkBindSources(mounts: readonly GuestMount[]): Promise<void> {
    for (const m of mounts) {
      if (m.hostPath === undefined) continue;
      const isDir = await stat(m.hostPath).then((st) => st.isDirectory(), () => false);
      if (!isDir) throw new Error(`directory '${m.hostPath}' does not exist`);
    }
  }

  /**
   * Prepares a new guest's root volume and mounts it: with a template, an
   * overlay layer over its unpacked tree (made once per template); without
   * one (a restore), the plain tree the volume holds.
   */
  async mountRoot(paths: GuestPaths, spec: Pick<GuestSpec, "rootfs" | "template">, readOnly: boolean): Promise<void> {
    await mkdir(paths.rootfs, { recursive: true });
    if (spec.template) {
      const base = await ensureBase({ executor: this.ex, templateDir: this.layout.templateDir, tarball: await this.templatePath(spec.template), ...this.progress });
      await this.store.initOverlayRoot(spec.rootfs, base);
    }
    await this.remountRoot(paths, spec.rootfs, readOnly);
  }

  /**
   * (Re)mounts a guest's root from its root volume, whichever layout it
   * has; a template's read-only (its tree is a base linked clones stand on).
   */
  async remountRoot(paths: GuestPaths, rootfs: VolumeRef, readOnly: boolean): Promise<void> {
    await this.unmountRoot(paths);
    await mkdir(paths.rootfs, { recursive: true });
    const l = this.store.rootLayout(rootfs);
    const lowers = await this.store.lowers(rootfs);
    if (lowers !== undefined) {
      if (readOnly) {
        await this.ex.run(overlayMountCommand([l.upper, ...lowers], undefined, paths.rootfs));
      } else {
        await mkdir(l.work, { recursive: true });
        await this.ex.run(overlayMountCommand(lowers, { upper: l.upper, work: l.work }, paths.rootfs));
      }
    } else {
      await this.ex.run(bindMountCommand(l.root, paths.rootfs));
      if (readOnly) await this.ex.run(readOnlyRemountCommand(paths.rootfs));
    }
  }

  /** Unmounts a guest's root (and anything below it). */
  async unmountRoot(paths: GuestPaths): Promise<void> {
    await this.ex.runAll(await unmountUnderCommands(paths.rootfs));
  }

  /**
   * Writes what Proxmox writes into a new guest's root; a restored or cloned
   * root keeps its SSH host keys and root's authorized keys and gets only
   * what Proxmox sets up at every start (hostname, hosts, resolver) and the
   * sandbox's apt proxy; a clone's machine-id is cleared, as
   * pve-container's `post_clone_hook` does.
   */
  async prepareRoot(paths: GuestPaths, spec: GuestSpec, params: LxcConfigParams): Promise<void> {
    const { rootfs } = paths;
    const { hostAddress } = this.layout.subnet;
    await this.writeHostname(paths, spec.hostname, params);
    await writeRootFile(rootfs, "etc/resolv.conf", `# homelab sandbox: only this machine is reachable\nnameserver ${hostAddress}\n`);
    await writeRootFile(rootfs, "etc/apt/apt.conf.d/01homelab-sandbox-proxy", aptProxyConf(this.layout.packageCacheUrl));
    if (spec.cloned) await clearMachineId(rootfs);
    if (spec.template === undefined) return;
    const sshDir = join(rootfs, "root/.ssh");
    await mkdir(sshDir, { recursive: true, mode: 0o700 });
    await chmod(sshDir, 0o700);
    await chown(sshDir, 0, 0);
    const keys = spec.sshPublicKeys.trim();
    await writeRootFile(rootfs, "root/.ssh/authorized_keys", keys ? `${keys}\n` : "", 0o600);
    // Each guest gets its own host keys, as Proxmox makes them at create.
    await Promise.all(
      (["ed25519", "ecdsa"] as const).map((t) =>
        this.ex.run(hostKeyCommand(join(rootfs, `etc/ssh/ssh_host_${t}_key`), t, `root@${spec.hostname}`)),
      ),
    );
  }

  /** Writes `/etc/hostname` and `/etc/hosts` (with the first interface's address). */
  async writeHostname(paths: GuestPaths, hostname: string, params: LxcConfigParams): Promise<void> {
    await writeRootFile(paths.rootfs, "etc/hostname", `${hostname}\n`);
    await writeRootFile(paths.rootfs, "etc/hosts", hostsFile(hostname, params.nets[0]?.address?.split("/")[0]));
  }

  /** Unmounts the guest's root and removes its folder; the root volume stays. */
  async release(paths: GuestPaths): Promise<void> {
    await this.ex.runAll(await unmountUnderCommands(paths.rootfs));
    await this.ex.run(removeTreeCommand(paths.dir));
  }

  private async templatePath(t: TemplateInfo): Promise<string> {
    if (t.path) return t.path;
    const found = (await listTemplates(this.layout.templateDir)).find((x) => x.volid === t.volid);
    if (!found?.path) throw new Error(`template ${t.volid} is not in the sandbox's template store ${this.layout.templateDir}`);
    return found.path;
  }
}
