/**
 * The sandbox's `lxc` guest backend: every guest is a real LXC container on a
 * bridge of its own, started from the template tarball the request named.
 *
 * Guests run privileged underneath, whatever `unprivileged` the API was
 * given (the API still reports what was asked). Each guest's root is an
 * overlay over the template's unpacked tree, so creating one copies nothing.
 * Next to the guests the backend runs what a homelab has next to Proxmox: an
 * image registry and a package cache, both on the bridge's host address, so
 * guests only ever talk to this machine; and, when asked, a Docker Engine of
 * its own on the host that may push to that plain-HTTP registry, for image
 * builds.
 */
import { constants } from "node:fs";
import { access, chmod, chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { GuestBackend, GuestInterface, GuestRuntimeStatus, GuestSpec, TemplateInfo } from "../guest-backend.ts";
import {
  aptCacherArgv,
  aptCacherConfig,
  aptProxyConf,
  bridgeCreateCommands,
  cpusetFor,
  dockerdArgv,
  forwardRuleInsertCommands,
  hostIpv4Commands,
  hostKeyCommand,
  hostsFile,
  lxcAttachCommand,
  lxcCgroupCommand,
  lxcConfig,
  lxcInfoCommand,
  lxcKillCommand,
  lxcRebootCommand,
  lxcShutdownCommand,
  lxcStartCommand,
  netnsAddrCommand,
  overlayMountCommand,
  parseLxcInfo,
  registryArgv,
  registryConfig,
  removeTreeCommand,
  unmountUnderCommands,
} from "./commands.ts";
import type { LxcConfigParams, LxcRef } from "./commands.ts";
import { createExecutor } from "./exec.ts";
import { cleanUpScope, DOCKERD_STOP_GRACE_MS, dockerPathsOf, ensureLxcfs, lxcpathOf, stopSharedLxcfs, withLxcfsLock } from "./cleanup.ts";
import type { BackendScope } from "./cleanup.ts";
import type { CommandResult, Executor } from "./exec.ts";
import {
  dockerAnswers,
  memoryCgroupPath,
  processMatches,
  processUptime,
  stopProcess,
  tcpAnswers,
  waitFor,
} from "./host.ts";
import { hostRanges, parseIpAddrJson, parseSubnet, planAddress, subnetConflicts } from "./net.ts";
import type { Subnet } from "./net.ts";
import { defaultTemplateDir, ensureBase, ensureTemplates, listTemplates } from "./templates.ts";
import type { TemplateBuildReport } from "./templates.ts";

/** Options of `createLxcBackend`. */
export interface LxcBackendOptions {
  /** Everything the backend makes lives here (containers, registry data, logs); emptied on close. */
  stateDir: string;
  /** Bridge name (default `hlsbx0`); at most 15 characters. */
  bridge?: string;
  /** The bridge's /24 (default `10.87.53.0/24`); the host is `.1`. */
  subnet?: string;
  verbose?: boolean;
  /** Template cache (default `${HOMELAB_CACHE:-~/.cache/homelab}/templates`). */
  templateDir?: string;
  /** Package cache storage, kept across runs (default next to the template cache). */
  packageCacheDir?: string;
  /** Runs host commands (default: the real executor). */
  executor?: Executor;
  /** Told about slow one-time steps (template build, unpack), even when not verbose. */
  progress?: (message: string) => void;
  /**
   * Also run a Docker Engine on the host (default false) that trusts the
   * registry, for building and pushing images: see `dockerHost`.
   */
  docker?: boolean;
}

/** The lxc backend, with the addresses the provisioning step needs. */
export interface LxcGuestBackend extends GuestBackend {
  readonly kind: "lxc";
  readonly bridge: string;
  /** e.g. `10.87.53.0/24`. */
  readonly subnet: string;
  /** The host's address on the bridge, e.g. `10.87.53.1`. */
  readonly hostAddress: string;
  /** The image registry, `host:port` (plain HTTP: an insecure registry for Docker). */
  readonly registry: string;
  /** The package cache as an apt HTTP proxy URL, e.g. `http://10.87.53.1:3142`. */
  readonly packageCache: string;
  /**
   * The backend's Docker Engine (`docker: true`), as a DOCKER_HOST value
   * (`unix:///run/homelab-sandbox/<bridge>/docker.sock`); it lists the
   * registry as insecure. Undefined without `docker`.
   */
  readonly dockerHost: string | undefined;
  readonly stateDir: string;
  /** How getting the templates went when the backend started. */
  readonly templateBuild: TemplateBuildReport;
  /** The LXC name of a guest (`<bridge>-<vmid>`). */
  containerName(vmid: number): string;
  /** Runs a command inside a running guest as root (like `pct exec`). */
  exec(vmid: number, argv: readonly string[], input?: string): Promise<CommandResult>;
}

const DEFAULT_BRIDGE = "hlsbx0";
const DEFAULT_SUBNET = "10.87.53.0/24";
const REGISTRY_PORT = 5000;
const PACKAGE_CACHE_PORT = 3142;

/** The host programs the backend runs. */
export const REQUIRED_PROGRAMS: readonly string[] = [
  "lxc-start",
  "lxc-stop",
  "lxc-attach",
  "lxc-info",
  "lxc-cgroup",
  "lxc-ls",
  "debootstrap",
  "tar",
  "zstd",
  "lxcfs",
  "ip",
  "iptables",
  "iptables-save",
  "nsenter",
  "flock",
  "ssh-keygen",
  "mount",
  "umount",
  "docker-registry",
  "apt-cacher-ng",
];

async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      await access(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Whether this machine can run the lxc backend, and if not, why. */
export async function lxcAvailable(): Promise<{ ok: boolean; reason?: string }> {
  if (process.platform !== "linux") return { ok: false, reason: "the lxc backend needs Linux" };
  if (process.getuid?.() !== 0) return { ok: false, reason: "the lxc backend needs root" };
  const missing: string[] = [];
  for (const p of REQUIRED_PROGRAMS) if (!(await onPath(p))) missing.push(p);
  if (missing.length > 0) {
    return { ok: false, reason: `missing programs: ${missing.join(", ")} (run scripts/setup-sandbox-host.sh)` };
  }
  try {
    await access("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  } catch {
    return { ok: false, reason: "the lxc backend needs the cgroup v1 memory controller at /sys/fs/cgroup/memory" };
  }
  try {
    await access("/dev/fuse");
  } catch {
    return { ok: false, reason: "/dev/fuse is missing (lxcfs needs it)" };
  }
  return { ok: true };
}

interface Guest {
  vmid: number;
  ref: LxcRef;
  dir: string;
  rootfs: string;
  spec: GuestSpec;
  addresses: string[];
  config: LxcConfigParams;
}

interface DaemonRecord {
  name: string;
  pid: number;
  exe: string;
  /** How long it gets after SIGTERM. */
  graceMs?: number;
}

function assertBridgeName(bridge: string): void {
  if (!/^[a-zA-Z][a-zA-Z0-9_-]{0,14}$/.test(bridge)) throw new Error(`bad bridge name ${bridge} (letters, digits, - and _, at most 15)`);
}

function mb(n: number): number {
  return Math.max(1, Math.floor(n)) * 1024 * 1024;
}

/**
 * Removes everything an lxc backend with this state folder and bridge made
 * (guests, daemons, mounts, rules, bridge), e.g. for `homelab sandbox stop`
 * after the sandbox process died. `createLxcBackend` does the same first.
 */
export async function cleanUpLxcBackend(options: { stateDir: string; bridge?: string; verbose?: boolean; executor?: Executor }): Promise<void> {
  const ex = options.executor ?? createExecutor({ verbose: options.verbose ?? false });
  const bridge = options.bridge ?? DEFAULT_BRIDGE;
  assertBridgeName(bridge);
  await cleanUpScope({ ex, stateDir: resolve(options.stateDir), bridge });
  await withLxcfsLock(() => stopSharedLxcfs(ex));
}

/** Creates the lxc backend: cleans up leftovers of an earlier run, makes the bridge, rules, registry and package cache. */
export async function createLxcBackend(options: LxcBackendOptions): Promise<LxcGuestBackend> {
  const avail = await lxcAvailable();
  if (!avail.ok) throw new Error(`lxc backend unavailable: ${avail.reason ?? "unknown reason"}`);
  const ex = options.executor ?? createExecutor({ verbose: options.verbose ?? false });
  const bridge = options.bridge ?? DEFAULT_BRIDGE;
  assertBridgeName(bridge);
  const subnet: Subnet = parseSubnet(options.subnet ?? DEFAULT_SUBNET);
  const subnetCidr = `${subnet.network}/${subnet.prefix}`;
  const stateDir = resolve(options.stateDir);
  const templateDir = options.templateDir ?? defaultTemplateDir();
  const packageCacheDir = options.packageCacheDir ?? join(dirname(templateDir), "apt-cacher-ng", bridge);
  const progress = options.progress ? { progress: options.progress } : {};
  const lxcpath = lxcpathOf(stateDir);
  const runDir = join(stateDir, "run");
  const logDir = join(stateDir, "logs");
  const registryDir = join(stateDir, "registry");
  const registry = `${subnet.hostAddress}:${REGISTRY_PORT}`;
  const docker = options.docker === true ? dockerPathsOf(stateDir, bridge) : undefined;
  // Built first: it fails on a socket path too long before anything starts.
  const dockerd = docker ? dockerdArgv({ ...docker, insecureRegistry: registry }) : undefined;
  if (dockerd && !(await onPath("dockerd"))) throw new Error("docker: true needs dockerd (Debian's docker.io; run scripts/setup-sandbox-host.sh)");
  const hostCpus = availableParallelism();
  const memswSupported = await stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").then(
    () => true,
    () => false,
  );

  let templateBuild: TemplateBuildReport = { built: false, ms: 0 };
  const guests = new Map<number, Guest>();
  const usedAddresses = new Set<string>();
  const daemons: DaemonRecord[] = [];
  let closed = false;

  const containerName = (vmid: number): string => `${bridge}-${vmid}`;

  const scope: BackendScope = { ex, stateDir, bridge };

  // ------------------------------------------------------------ host set-up

  async function checkSubnetFree(): Promise<void> {
    const { addrs, routes } = hostIpv4Commands();
    const a = await ex.run(addrs);
    const r = await ex.run(routes);
    const clash = subnetConflicts(subnet, hostRanges(a.stdout, r.stdout));
    if (clash.length > 0) {
      throw new Error(`sandbox subnet ${subnetCidr} collides with this host's ${clash.join(", ")}; choose another --subnet`);
    }
  }

  async function startDaemon(name: string, argv: string[], ready: () => Promise<boolean>, graceMs?: number): Promise<void> {
    const pid = ex.spawnDaemon(argv, join(logDir, `${name}.log`));
    const exe = argv[0] ?? name;
    daemons.push({ name, pid, exe, ...(graceMs !== undefined ? { graceMs } : {}) });
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
      ex.log(`${name} (pid ${pid}) answered after ${Date.now() - started} ms`);
    } catch (err) {
      await stopProcess(pid, exe, graceMs);
      throw err;
    }
  }

  async function setUp(): Promise<TemplateBuildReport> {
    await cleanUpScope(scope);
    await checkSubnetFree();
    for (const d of [stateDir, lxcpath, runDir, logDir, registryDir, packageCacheDir]) await mkdir(d, { recursive: true });
    const { report } = await ensureTemplates({ executor: ex, dir: templateDir, ...progress });
    await ex.runAll(bridgeCreateCommands(bridge, `${subnet.hostAddress}/${subnet.prefix}`));
    await ex.runAll(forwardRuleInsertCommands(bridge));
    const regConf = join(stateDir, "registry.yml");
    await writeFile(regConf, registryConfig(subnet.hostAddress, REGISTRY_PORT, join(registryDir, "data")));
    await startDaemon("registry", registryArgv(regConf), () => tcpAnswers(subnet.hostAddress, REGISTRY_PORT));
    if (docker && dockerd) {
      for (const d of [docker.dir, docker.execRoot]) await mkdir(d, { recursive: true });
      await startDaemon("dockerd", dockerd, () => dockerAnswers(docker.socket), DOCKERD_STOP_GRACE_MS);
    }
    await mkdir(join(packageCacheDir, "cache"), { recursive: true });
    const acngDir = join(stateDir, "run", "apt-cacher-ng");
    await mkdir(acngDir, { recursive: true });
    await writeFile(
      join(acngDir, "acng.conf"),
      aptCacherConfig({ address: subnet.hostAddress, port: PACKAGE_CACHE_PORT, cacheDir: join(packageCacheDir, "cache"), logDir, runDir }),
    );
    await startDaemon("apt-cacher-ng", aptCacherArgv(acngDir), () => tcpAnswers(subnet.hostAddress, PACKAGE_CACHE_PORT));
    return report;
  }

  // ------------------------------------------------------------ guests

  function guestOf(vmid: number): Guest {
    const g = guests.get(vmid);
    if (!g) throw new Error(`guest ${vmid} does not exist in the lxc backend`);
    return g;
  }

  async function info(g: Guest): Promise<{ running: boolean; pid?: number }> {
    const res = await ex.run(lxcInfoCommand(g.ref));
    const i = parseLxcInfo(res.code === 0 ? res.stdout : "");
    return i.state === "RUNNING" && i.pid !== undefined ? { running: true, pid: i.pid } : { running: false };
  }

  async function writeGuestFile(rootfs: string, rel: string, content: string, mode = 0o644): Promise<void> {
    const path = join(rootfs, rel);
    await mkdir(dirname(path), { recursive: true });
    await rm(path, { force: true });
    await writeFile(path, content, { mode });
  }

  async function prepareRootfs(g: Guest): Promise<void> {
    const { rootfs, spec } = g;
    const first = g.config.nets[0]?.address?.split("/")[0];
    await writeGuestFile(rootfs, "etc/hostname", `${spec.hostname}\n`);
    await writeGuestFile(rootfs, "etc/hosts", hostsFile(spec.hostname, first));
    await writeGuestFile(rootfs, "etc/resolv.conf", `# homelab sandbox: only this machine is reachable\nnameserver ${subnet.hostAddress}\n`);
    await writeGuestFile(rootfs, "etc/apt/apt.conf.d/01homelab-sandbox-proxy", aptProxyConf(`http://${subnet.hostAddress}:${PACKAGE_CACHE_PORT}`));
    const sshDir = join(rootfs, "root/.ssh");
    await mkdir(sshDir, { recursive: true, mode: 0o700 });
    await chmod(sshDir, 0o700);
    await chown(sshDir, 0, 0);
    const keys = spec.sshPublicKeys.trim();
    await writeGuestFile(rootfs, "root/.ssh/authorized_keys", keys ? `${keys}\n` : "", 0o600);
    // Each guest gets its own host keys, as Proxmox makes them at create.
    await Promise.all(
      (["ed25519", "ecdsa"] as const).map((t) =>
        ex.run(hostKeyCommand(join(rootfs, `etc/ssh/ssh_host_${t}_key`), t, `root@${spec.hostname}`)),
      ),
    );
  }

  function configParams(spec: GuestSpec, rootfs: string, dir: string, addresses: Array<{ cidr?: string; gateway?: string }>): LxcConfigParams {
    const params: LxcConfigParams = {
      vmid: spec.vmid,
      hostname: spec.hostname,
      rootfs,
      nets: spec.net.map((n, i) => {
        const a = addresses[i] ?? {};
        return {
          index: i,
          name: n.name || `eth${i}`,
          bridge,
          hwaddr: n.hwaddr,
          ...(a.cidr ? { address: a.cidr } : {}),
          ...(a.gateway ? { gateway: a.gateway } : {}),
        };
      }),
      memoryBytes: mb(spec.memoryMb),
      cpus: cpusetFor(spec.vmid, spec.cores, hostCpus),
      nesting: spec.features.nesting,
      consoleLog: join(dir, "console.log"),
      dockerDir: join(dir, "docker"),
    };
    if (memswSupported) params.memswBytes = mb(spec.memoryMb) + Math.max(0, Math.floor(spec.swapMb)) * 1024 * 1024;
    return params;
  }

  async function writeConfig(g: Guest): Promise<void> {
    await writeFile(join(g.dir, "config"), lxcConfig(g.config));
  }

  async function templatePath(t: TemplateInfo): Promise<string> {
    if (t.path) return t.path;
    const found = (await listTemplates(templateDir)).find((x) => x.volid === t.volid);
    if (!found?.path) throw new Error(`template ${t.volid} is not in the sandbox's template store ${templateDir}`);
    return found.path;
  }

  async function releaseGuestFiles(dir: string, rootfs: string): Promise<void> {
    await ex.runAll(await unmountUnderCommands(rootfs));
    await ex.run(removeTreeCommand(dir));
  }

  const backend: LxcGuestBackend = {
    kind: "lxc",
    bridge,
    subnet: subnetCidr,
    hostAddress: subnet.hostAddress,
    registry,
    packageCache: `http://${subnet.hostAddress}:${PACKAGE_CACHE_PORT}`,
    dockerHost: docker ? `unix://${docker.socket}` : undefined,
    stateDir,
    get templateBuild() {
      return templateBuild;
    },
    containerName,

    listTemplates: () => listTemplates(templateDir),

    async create(spec) {
      if (closed) throw new Error("lxc backend is closed");
      if (guests.has(spec.vmid)) throw new Error(`CT ${spec.vmid} already exists`);
      if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/.test(spec.hostname)) throw new Error(`bad hostname ${spec.hostname}`);
      // Addresses are taken synchronously, so parallel creates never share one.
      const planned: Array<{ cidr?: string; gateway?: string }> = [];
      const taken: string[] = [];
      try {
        for (const n of spec.net) {
          const p = planAddress(n.ip, subnet, usedAddresses);
          planned.push(p);
          const ip = p.cidr?.split("/")[0];
          if (ip) {
            usedAddresses.add(ip);
            taken.push(ip);
          }
        }
      } catch (err) {
        for (const ip of taken) usedAddresses.delete(ip);
        throw err;
      }
      const name = containerName(spec.vmid);
      const dir = join(lxcpath, name);
      const rootfs = join(dir, "rootfs");
      const g: Guest = {
        vmid: spec.vmid,
        ref: { lxcpath, name },
        dir,
        rootfs,
        spec: { ...spec },
        addresses: taken,
        config: configParams(spec, rootfs, dir, planned),
      };
      guests.set(spec.vmid, g);
      try {
        const base = await ensureBase({ executor: ex, templateDir, tarball: await templatePath(spec.template), ...progress });
        for (const d of ["upper", "work", "rootfs", "docker"]) await mkdir(join(dir, d), { recursive: true });
        await ex.run(overlayMountCommand(base, join(dir, "upper"), join(dir, "work"), rootfs));
        await prepareRootfs(g);
        await writeConfig(g);
      } catch (err) {
        guests.delete(spec.vmid);
        for (const ip of taken) usedAddresses.delete(ip);
        await releaseGuestFiles(dir, rootfs).catch(() => undefined);
        throw err;
      }
    },

    async start(vmid) {
      const g = guestOf(vmid);
      if ((await info(g)).running) return;
      const log = join(g.dir, "lxc.log");
      // Under the lxcfs lock, so a sandbox closing meanwhile sees this
      // guest's monitor and leaves lxcfs running for it.
      await withLxcfsLock(async () => {
        await ensureLxcfs(ex, join(logDir, "lxcfs.log"));
        try {
          await ex.run(lxcStartCommand(g.ref, log));
        } catch (err) {
          const tail = await readFile(log, "utf8").catch(() => "");
          const errors = tail.split("\n").filter((l) => /ERROR/.test(l)).slice(-8).join("\n");
          throw new Error(`${(err as Error).message}${errors ? `\n${errors}` : ""}`, { cause: err });
        }
      });
      await waitFor(`CT ${vmid} to run`, async () => (await info(g)).running, 30_000);
    },

    async stop(vmid) {
      const g = guestOf(vmid);
      if (!(await info(g)).running) return;
      await ex.run(lxcKillCommand(g.ref));
    },

    async shutdown(vmid, timeoutSec, forceStop) {
      const g = guestOf(vmid);
      if (!(await info(g)).running) return;
      await ex.run(lxcShutdownCommand(g.ref, timeoutSec, forceStop));
    },

    async reboot(vmid) {
      const g = guestOf(vmid);
      const before = await info(g);
      if (!before.running) {
        await backend.start(vmid);
        return;
      }
      await ex.run(lxcRebootCommand(g.ref));
      // Reboot is done when a new init runs.
      await waitFor(`CT ${vmid} to come back`, async () => {
        const now = await info(g);
        return now.running && now.pid !== before.pid;
      }, 120_000, 200);
    },

    async update(vmid, change) {
      const g = guestOf(vmid);
      const next: GuestSpec = { ...g.spec, ...change };
      const params = configParams(next, g.rootfs, g.dir, g.config.nets.map((n) => ({ cidr: n.address, gateway: n.gateway })));
      const state = await info(g);
      if (state.running) {
        const sets: Array<[string, string]> = [["memory.limit_in_bytes", String(params.memoryBytes)]];
        if (params.memswBytes !== undefined) {
          // memsw may never drop below memory: raise it first when memory outgrows the old one.
          const sw: [string, string] = ["memory.memsw.limit_in_bytes", String(params.memswBytes)];
          if (params.memoryBytes > (g.config.memswBytes ?? 0)) sets.unshift(sw);
          else sets.push(sw);
        }
        sets.push(["cpuset.cpus", params.cpus]);
        for (const [k, v] of sets) await ex.run(lxcCgroupCommand(g.ref, k, v));
        if (change.hostname && change.hostname !== g.spec.hostname) {
          await ex.run(lxcAttachCommand(g.ref, ["hostname", change.hostname]));
        }
      }
      if (change.hostname) {
        await writeGuestFile(g.rootfs, "etc/hostname", `${change.hostname}\n`);
        await writeGuestFile(g.rootfs, "etc/hosts", hostsFile(change.hostname, g.config.nets[0]?.address?.split("/")[0]));
      }
      g.spec = next;
      g.config = params;
      await writeConfig(g);
    },

    async destroy(vmid) {
      const g = guestOf(vmid);
      if ((await info(g)).running) await ex.run(lxcKillCommand(g.ref));
      await releaseGuestFiles(g.dir, g.rootfs);
      guests.delete(vmid);
      for (const ip of g.addresses) usedAddresses.delete(ip);
    },

    async status(vmid): Promise<GuestRuntimeStatus> {
      const g = guestOf(vmid);
      const i = await info(g);
      if (!i.running || i.pid === undefined) return { running: false, uptime: 0, mem: 0 };
      let uptime = 0;
      let mem = 0;
      try {
        uptime = processUptime(await readFile(`/proc/${i.pid}/stat`, "utf8"), await readFile("/proc/uptime", "utf8"));
        const cg = memoryCgroupPath(await readFile(`/proc/${i.pid}/cgroup`, "utf8"));
        if (cg !== undefined) mem = Number((await readFile(join("/sys/fs/cgroup/memory", cg, "memory.usage_in_bytes"), "utf8")).trim());
      } catch {
        // It stopped while we looked.
      }
      return { running: true, uptime, mem };
    },

    async interfaces(vmid): Promise<GuestInterface[] | null> {
      const g = guestOf(vmid);
      const i = await info(g);
      if (!i.running || i.pid === undefined) return null;
      try {
        return parseIpAddrJson((await ex.run(netnsAddrCommand(i.pid))).stdout);
      } catch (err) {
        // It stopped between the two looks: Proxmox answers null then too.
        if (!(await info(g)).running) return null;
        throw err;
      }
    },

    async exec(vmid, argv, input) {
      const g = guestOf(vmid);
      return ex.run(lxcAttachCommand(g.ref, argv, input));
    },

    async close() {
      if (closed) return;
      closed = true;
      const ours = [...guests.values()];
      guests.clear();
      usedAddresses.clear();
      await cleanUpScope(scope, [
        async () => {
          await Promise.all(ours.map((g) => ex.run({ ...lxcKillCommand(g.ref), okCodes: [0, 1, 2] })));
        },
        async () => {
          // Newest first: dockerd may be pushing to the registry. Each is
          // gone (dockerd waits for its containerd) before anything is unmounted.
          for (const d of [...daemons].reverse()) await stopProcess(d.pid, d.exe, d.graceMs);
        },
      ]);
      await withLxcfsLock(() => stopSharedLxcfs(ex));
    },
  };

  try {
    templateBuild = await setUp();
    return backend;
  } catch (err) {
    closed = false;
    await backend.close().catch((e: unknown) => ex.log(`cleanup after a failed start failed too: ${(e as Error).message}`));
    throw err;
  }
}
