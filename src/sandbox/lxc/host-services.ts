/**
 * What the lxc backend runs on the host next to its guests, as a homelab has
 * next to Proxmox: the bridge and its forwarding rules, an image registry
 * and a package cache on the bridge's host address (so guests only ever talk
 * to this machine), and, when asked, a Docker Engine of its own that may push
 * to that plain-HTTP registry. The daemons it starts are kept in a list, so
 * close stops exactly those.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  aptCacherArgv,
  aptCacherConfig,
  bridgeCreateCommands,
  dockerdArgv,
  forwardRuleInsertCommands,
  hostIpv4Commands,
  registryArgv,
  registryConfig,
} from "./commands.ts";
import { DOCKERD_STOP_GRACE_MS } from "./cleanup.ts";
import type { Executor } from "./exec.ts";
import { dockerAnswers, processMatches, stopProcess, tcpAnswers, waitFor } from "./host.ts";
import { PACKAGE_CACHE_PORT, REGISTRY_PORT, registryConfigOf } from "./layout.ts";
import type { BackendLayout } from "./layout.ts";
import { hostRanges, subnetConflicts } from "./net.ts";

interface DaemonRecord {
  name: string;
  pid: number;
  exe: string;
  /** How long it gets after SIGTERM. */
  graceMs?: number;
}

/** The bridge, rules and daemons of one backend. */
export class HostServices {
  private readonly ex: Executor;
  private readonly layout: BackendLayout;
  private readonly dockerd: string[] | undefined;
  /** Started daemons, oldest first. */
  private readonly daemons: DaemonRecord[] = [];

  /** Builds the daemons' argv at once: dockerd's fails on a socket path too long before anything starts. */
  constructor(ex: Executor, layout: BackendLayout) {
    this.ex = ex;
    this.layout = layout;
    this.dockerd = layout.docker ? dockerdArgv({ ...layout.docker, insecureRegistry: layout.registry }) : undefined;
  }

  /** Refuses a subnet that this host already uses (an address or a route in it). */
  async checkSubnetFree(): Promise<void> {
    const { subnet } = this.layout;
    const { addrs, routes } = hostIpv4Commands();
    const a = await this.ex.run(addrs);
    const r = await this.ex.run(routes);
    const clash = subnetConflicts(subnet, hostRanges(a.stdout, r.stdout));
    if (clash.length > 0) {
      throw new Error(`sandbox subnet ${subnet.network}/${subnet.prefix} collides with this host's ${clash.join(", ")}; choose another --subnet`);
    }
  }

  /** Makes the state folder's parts and the package cache's storage. */
  async makeFolders(): Promise<void> {
    const l = this.layout;
    for (const d of [l.stateDir, l.lxcpath, l.runDir, l.logDir, l.registryDir, l.packageCacheDir]) await mkdir(d, { recursive: true });
  }

  /** The bridge with the host's address on it, and the FORWARD rules that keep guests to each other and this machine. */
  async startNetwork(): Promise<void> {
    const { bridge, subnet } = this.layout;
    await this.ex.runAll(bridgeCreateCommands(bridge, `${subnet.hostAddress}/${subnet.prefix}`));
    await this.ex.runAll(forwardRuleInsertCommands(bridge));
  }

  /** The image registry, plain HTTP on the bridge address, its storage in the state folder. */
  async startRegistry(): Promise<void> {
    const { stateDir, subnet, registryDir } = this.layout;
    const conf = registryConfigOf(stateDir);
    await writeFile(conf, registryConfig(subnet.hostAddress, REGISTRY_PORT, join(registryDir, "data")));
    await this.startDaemon("registry", registryArgv(conf), () => tcpAnswers(subnet.hostAddress, REGISTRY_PORT));
  }

  /** The backend's own Docker Engine, when it has one. */
  async startDocker(): Promise<void> {
    const { docker } = this.layout;
    if (!docker || !this.dockerd) return;
    for (const d of [docker.dir, docker.execRoot]) await mkdir(d, { recursive: true });
    await this.startDaemon("dockerd", this.dockerd, () => dockerAnswers(docker.socket), DOCKERD_STOP_GRACE_MS);
  }

  /** The package cache (apt-cacher-ng) on the bridge address; its storage is kept across runs. */
  async startPackageCache(): Promise<void> {
    const { subnet, packageCacheDir, logDir, runDir } = this.layout;
    await mkdir(join(packageCacheDir, "cache"), { recursive: true });
    const acngDir = join(runDir, "apt-cacher-ng");
    await mkdir(acngDir, { recursive: true });
    await writeFile(
      join(acngDir, "acng.conf"),
      aptCacherConfig({ address: subnet.hostAddress, port: PACKAGE_CACHE_PORT, cacheDir: join(packageCacheDir, "cache"), logDir, runDir }),
    );
    await this.startDaemon("apt-cacher-ng", aptCacherArgv(acngDir), () => tcpAnswers(subnet.hostAddress, PACKAGE_CACHE_PORT));
  }

  /**
   * Stops the daemons started, newest first: dockerd may be pushing to the
   * registry. Each is gone (dockerd waits for its containerd) before the next.
   */
  async stopDaemons(): Promise<void> {
    for (const d of [...this.daemons].reverse()) await stopProcess(d.pid, d.exe, d.graceMs);
  }

  private async startDaemon(name: string, argv: string[], ready: () => Promise<boolean>, graceMs?: number): Promise<void> {
    const { logDir, runDir } = this.layout;
    const pid = this.ex.spawnDaemon(argv, join(logDir, `${name}.log`));
    const exe = argv[0] ?? name;
    this.daemons.push({ name, pid, exe, ...(graceMs !== undefined ? { graceMs } : {}) });
    await writeFile(join(runDir, `${name}.pid`), `${pid}\n`);
    const started = Date.now();
    try {
      await waitFor(`${name} to start`, async () => {
        if (!(await processMatches(pid, exe))) {
          const log = await readFile(join(logDir, `${name}.log`), "utf8").catch(() => "");
          throw new Error(`${name} exited at start:\n${log.trim().split("\n").slice(-10).join("\n")}`);
        }
        return ready();
      }, 20_000);
      this.ex.log(`${name} (pid ${pid}) answered after ${Date.now() - started} ms`);
    } catch (err) {
      await stopProcess(pid, exe, graceMs);
      throw err;
    }
  }
}
