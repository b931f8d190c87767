/**
 * Every host command the lxc backend runs, built as data by pure functions
 * (unit-tested without root), plus the text files it writes (LXC config,
 * registry config). `exec.ts` runs them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "./exec.ts";

// ---------------------------------------------------------------- LXC

/** Where LXC keeps one container: `-P lxcpath -n name`. */
export interface LxcRef {
  lxcpath: string;
  name: string;
}

function lxcArgs(ref: LxcRef): string[] {
  return ["-P", ref.lxcpath, "-n", ref.name];
}

/** Starts a container in the background, logging to `logFile`. */
export function lxcStartCommand(ref: LxcRef, logFile: string): Command {
  return { argv: ["lxc-start", ...lxcArgs(ref), "--daemon", "--logfile", logFile, "--logpriority", "INFO"], timeoutMs: 60_000 };
}

/** Kills a container at once (Proxmox's `stop`). */
export function lxcKillCommand(ref: LxcRef): Command {
  return { argv: ["lxc-stop", ...lxcArgs(ref), "--kill"], timeoutMs: 60_000 };
}

/** Asks the container's init to halt; after `timeoutSec` kills it, or fails when `forceStop` is false. */
export function lxcShutdownCommand(ref: LxcRef, timeoutSec: number, forceStop: boolean): Command {
  const argv = ["lxc-stop", ...lxcArgs(ref), "--timeout", String(Math.max(0, Math.floor(timeoutSec)))];
  if (!forceStop) argv.push("--nokill");
  return { argv, timeoutMs: (timeoutSec + 60) * 1000 };
}

/** Asks the container's init to reboot. */
export function lxcRebootCommand(ref: LxcRef): Command {
  return { argv: ["lxc-stop", ...lxcArgs(ref), "--reboot"], timeoutMs: 120_000 };
}

/** Runs `argv` inside a running container, with a clean environment. */
export function lxcAttachCommand(ref: LxcRef, argv: readonly string[], input?: string): Command {
  const cmd: Command = {
    argv: ["lxc-attach", ...lxcArgs(ref), "--clear-env", "--set-var", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--", ...argv],
    timeoutMs: 120_000,
  };
  if (input !== undefined) cmd.input = input;
  return cmd;
}

/** Freezes every process of a running container (cgroup freezer), as Proxmox does for a consistent snapshot. */
export function lxcFreezeCommand(ref: LxcRef): Command {
  return { argv: ["lxc-freeze", ...lxcArgs(ref)], timeoutMs: 60_000 };
}

/** Thaws a frozen container (nothing for one that is not frozen). */
export function lxcUnfreezeCommand(ref: LxcRef): Command {
  return { argv: ["lxc-unfreeze", ...lxcArgs(ref)], okCodes: [0, 1], timeoutMs: 60_000 };
}

/** setns(2) by architecture (open_tree and move_mount have the same numbers everywhere). */
const SYS_SETNS: Partial<Record<string, number>> = { x64: 308, arm64: 268 };

/**
 * Mounts a host folder into a running container at `path`, as
 * pve-container's `mountpoint_hotplug` does: a detached copy of the mount
 * (`open_tree`), the container's mount namespace entered (`setns`), the
 * mount point made and the copy attached there (`move_mount`), read-only
 * when asked (`mount_setattr`). Perl (always on Debian) makes the calls.
 */
export function hotplugMountCommand(pid: number, source: string, path: string, readOnly: boolean, arch: string = process.arch): Command {
  const setns = SYS_SETNS[arch];
  if (setns === undefined) throw new Error(`hot-plugging a mount point is not supported on ${arch}`);
  const script = [
    "use strict; use warnings; use File::Path qw(make_path);",
    "my ($src, $pid, $target, $ro) = @ARGV;",
    // syscall() may write into string arguments: a literal would be read-only.
    "my $empty = '';",
    "my $fd = syscall(428, -100, $src, 1 | 0x80000);",
    'die "open_tree $src: $!\n" if $fd < 0;',
    "if ($ro) {",
    "  my $attr = pack('QQQQ', 1, 0, 0, 0);",
    '  syscall(442, $fd, $empty, 0x1000, $attr, 32) == 0 or die "mount_setattr: $!\n";',
    "}",
    `open(my $ns, '<', "/proc/$pid/ns/mnt") or die "container $pid: $!\n";`,
    `syscall(${setns}, fileno($ns), 0x00020000) == 0 or die "setns: $!\n";`,
    'chdir("/") or die "chdir: $!\n";',
    "make_path($target);",
    'syscall(429, $fd, $empty, -100, $target, 4) == 0 or die "move_mount $target: $!\n";',
  ].join("\n");
  return { argv: ["perl", "-e", script, source, String(pid), path, readOnly ? "1" : "0"], timeoutMs: 60_000 };
}

/** Bind-mounts a folder (a restored guest's plain root). */
export function bindMountCommand(source: string, target: string): Command {
  return { argv: ["mount", "--bind", source, target] };
}

/** Makes a bind mount read-only (a template's plain root). */
export function readOnlyRemountCommand(target: string): Command {
  return { argv: ["mount", "-o", "remount,bind,ro", target] };
}

/** State and init pid of a container (`RUNNING\n1234\n`). */
export function lxcInfoCommand(ref: LxcRef): Command {
  return { argv: ["lxc-info", ...lxcArgs(ref), "--state", "--pid", "--no-humanize"], okCodes: [0, 1], timeoutMs: 30_000 };
}

/** What `lxc-info --state --pid --no-humanize` printed. */
export interface LxcInfo {
  state: string;
  pid?: number;
}

/** Parses `lxc-info --state --pid` (`State: RUNNING`, `PID: 1234`, labelled or bare); a container that does not exist is `STOPPED`. */
export function parseLxcInfo(stdout: string): LxcInfo {
  let state = "STOPPED";
  let pid: number | undefined;
  const lines = stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  lines.forEach((line, i) => {
    const m = /^(State|PID):\s*(\S+)$/.exec(line);
    const key = m ? m[1] : i === 0 ? "State" : i === 1 ? "PID" : undefined;
    const value = m ? m[2] : line;
    if (key === "State" && value && /^[A-Z]+$/.test(value)) state = value;
    if (key === "PID" && value && /^\d+$/.test(value)) pid = Number(value);
  });
  return pid === undefined ? { state } : { state, pid };
}

/** Sets a cgroup (v1) value of a running container. */
export function lxcCgroupCommand(ref: LxcRef, key: string, value: string): Command {
  return { argv: ["lxc-cgroup", ...lxcArgs(ref), key, value], timeoutMs: 30_000 };
}

/** Lists the containers under `lxcpath`, one name a line. */
export function lxcLsCommand(lxcpath: string): Command {
  return { argv: ["lxc-ls", "-P", lxcpath, "-1"], timeoutMs: 30_000 };
}

/** Everything a container's LXC config says. */
export interface LxcConfigParams {
  vmid: number;
  hostname: string;
  rootfs: string;
  nets: Array<{ index: number; name: string; bridge: string; hwaddr: string; address?: string; gateway?: string }>;
  memoryBytes: number;
  /** Memory plus swap; omitted where the kernel has no swap accounting. */
  memswBytes?: number;
  cpus: string;
  nesting: boolean;
  /** Where the container's console output goes. */
  consoleLog: string;
  /**
   * A plain folder mounted at /var/lib/docker: the root is an overlay, and
   * Docker's overlay2 cannot stack on one.
   */
  dockerDir?: string;
  /** Mount points: a volume's folder or a host folder, bind-mounted at `path` inside. */
  mounts?: GuestBindMount[];
}

/** A folder of this machine bind-mounted into a guest. */
export interface GuestBindMount {
  source: string;
  /** Absolute path inside the guest. */
  path: string;
  readOnly: boolean;
}

/** A path as an fstab field (`lxc.mount.entry`): spaces and tabs escaped. */
function fstabPath(p: string): string {
  return p.replace(/\\/g, "\\134").replace(/ /g, "\\040").replace(/\t/g, "\\011");
}

/** Mounts in the order they can be made: a folder before the folders inside it. Pure. */
export function parentsFirst<M extends { path: string }>(mounts: readonly M[]): M[] {
  return [...mounts].sort((a, b) => a.path.split("/").length - b.path.split("/").length || a.path.localeCompare(b.path));
}

/** `lxc.mount.entry` lines for mount points, parents before what lies inside them. */
export function mountEntries(mounts: readonly GuestBindMount[]): string[] {
  return parentsFirst(mounts).map((m) => `lxc.mount.entry = ${fstabPath(m.source)} ${fstabPath(m.path.replace(/^\/+/, ""))} none bind,create=dir${m.readOnly ? ",ro" : ""} 0 0`);
}

/**
 * The LXC config of a sandbox guest. Privileged underneath whatever the API
 * was asked; `nesting` gives what Docker needs in a privileged container
 * (what Proxmox's `nesting=1` amounts to there).
 */
export function lxcConfig(p: LxcConfigParams): string {
  const lines = [
    `# homelab sandbox guest ${p.vmid} (generated)`,
    "lxc.include = /usr/share/lxc/config/common.conf",
    `lxc.uts.name = ${p.hostname}`,
    `lxc.rootfs.path = dir:${p.rootfs}`,
    "lxc.apparmor.profile = unconfined",
    // systemd halts on SIGRTMIN+3; LXC's default SIGPWR would be ignored.
    "lxc.signal.halt = SIGRTMIN+3",
    `lxc.console.logfile = ${p.consoleLog}`,
    `lxc.cgroup.memory.limit_in_bytes = ${p.memoryBytes}`,
  ];
  if (p.memswBytes !== undefined) lines.push(`lxc.cgroup.memory.memsw.limit_in_bytes = ${p.memswBytes}`);
  lines.push(`lxc.cgroup.cpuset.cpus = ${p.cpus}`);
  for (const n of p.nets) {
    const k = `lxc.net.${n.index}`;
    lines.push(`${k}.type = veth`, `${k}.link = ${n.bridge}`, `${k}.flags = up`, `${k}.name = ${n.name}`, `${k}.hwaddr = ${n.hwaddr}`);
    if (n.address) lines.push(`${k}.ipv4.address = ${n.address}`);
    if (n.address && n.gateway) lines.push(`${k}.ipv4.gateway = ${n.gateway}`);
  }
  if (p.dockerDir) lines.push(`lxc.mount.entry = ${p.dockerDir} var/lib/docker none bind,create=dir 0 0`);
  lines.push(...mountEntries(p.mounts ?? []));
  if (p.nesting) {
    // common.conf's capability drops stay, as on Proxmox, whose nesting does not touch
    // them: Docker needs none of them, and without CAP_SYS_MODULE systemd skips
    // systemd-modules-load, which Debian 13's systemd would otherwise fail at.
    lines.push(
      "lxc.cgroup.devices.allow = a",
      // An empty value clears common.conf's `mixed` mounts before setting rw.
      "lxc.mount.auto =",
      "lxc.mount.auto = proc:rw sys:rw cgroup:rw",
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The cpuset of a guest with `cores` cores on a host with `hostCpus` CPUs, spread by vmid. */
export function cpusetFor(vmid: number, cores: number, hostCpus: number): string {
  const n = Math.max(1, Math.min(cores, hostCpus));
  if (n >= hostCpus) return hostCpus === 1 ? "0" : `0-${hostCpus - 1}`;
  const cpus: number[] = [];
  for (let i = 0; i < n; i++) cpus.push((vmid + i) % hostCpus);
  return cpus.sort((a, b) => a - b).join(",");
}

// ---------------------------------------------------------------- network

/** Creates the bridge with the host's address on it, up. */
export function bridgeCreateCommands(bridge: string, hostCidr: string): Command[] {
  return [
    { argv: ["ip", "link", "add", "name", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"] },
    { argv: ["ip", "addr", "add", hostCidr, "dev", bridge] },
    { argv: ["ip", "link", "set", "dev", bridge, "up"] },
  ];
}

/** Deletes a link (a bridge or a leftover veth). */
export function linkDeleteCommand(name: string): Command {
  return { argv: ["ip", "link", "delete", "dev", name] };
}

/** Lists links as JSON. */
export function linkListCommand(): Command {
  return { argv: ["ip", "-json", "link", "show"] };
}

/** Lists IPv4 addresses and routes as JSON, to check the subnet is free. */
export function hostIpv4Commands(): { addrs: Command; routes: Command } {
  return { addrs: { argv: ["ip", "-json", "-4", "addr", "show"] }, routes: { argv: ["ip", "-json", "-4", "route", "show", "table", "all"] } };
}

/** Lists the addresses inside the network namespace of process `pid`. */
export function netnsAddrCommand(pid: number): Command {
  return { argv: ["nsenter", `--net=/proc/${pid}/ns/net`, "ip", "-json", "addr", "show"], timeoutMs: 30_000 };
}

/** The comment that marks this backend's iptables rules, so cleanup finds them (also after a crash). */
export function ruleTag(bridge: string): string {
  return `homelab-sandbox:${bridge}`;
}

/**
 * FORWARD rules for the bridge, in order. dockerd sets the FORWARD policy to
 * DROP, which would also drop bridged traffic between guests when
 * br_netfilter is loaded; and guests must reach nothing but this machine, so
 * anything routed out of the bridge is dropped.
 */
export function forwardRuleSpecs(bridge: string): string[][] {
  const tag = ["-m", "comment", "--comment", ruleTag(bridge)];
  return [
    ["-i", bridge, "-o", bridge, ...tag, "-j", "ACCEPT"],
    ["-i", bridge, ...tag, "-j", "DROP"],
    ["-o", bridge, ...tag, "-j", "ACCEPT"],
  ];
}

/** Inserts the rules at the top of FORWARD, keeping their order. */
export function forwardRuleInsertCommands(bridge: string): Command[] {
  return forwardRuleSpecs(bridge).map((spec, i) => ({ argv: ["iptables", "-w", "-I", "FORWARD", String(i + 1), ...spec] }));
}

/** Dumps the filter table. */
export function iptablesSaveCommand(): Command {
  return { argv: ["iptables-save", "-t", "filter"] };
}

/** Splits one iptables-save line into arguments (double quotes group, as iptables-save writes them). */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? ""));
  return out;
}

/** Delete commands for every rule in an `iptables-save` dump that carries the bridge's tag. */
export function taggedRuleDeleteCommands(iptablesSave: string, bridge: string): Command[] {
  const tag = ruleTag(bridge);
  const cmds: Command[] = [];
  for (const line of iptablesSave.split("\n")) {
    if (!line.startsWith("-A ")) continue;
    const args = splitRuleLine(line);
    const i = args.indexOf("--comment");
    if (i < 0 || args[i + 1] !== tag) continue;
    const chain = args[1] ?? "";
    cmds.push({ argv: ["iptables", "-w", "-D", chain, ...args.slice(2)] });
  }
  return cmds;
}

// ---------------------------------------------------------------- files and processes

/** Makes one SSH host key for a guest. */
export function hostKeyCommand(path: string, type: "ed25519" | "ecdsa" | "rsa", comment: string): Command {
  const argv = ["ssh-keygen", "-q", "-t", type, "-N", "", "-C", comment, "-f", path];
  if (type === "rsa") argv.splice(4, 0, "-b", "3072");
  return { argv };
}

/** Removes a tree without crossing into other file systems (a stray bind mount must not be followed). */
export function removeTreeCommand(path: string): Command {
  return { argv: ["rm", "-rf", "--one-file-system", path], timeoutMs: 5 * 60_000 };
}

/**
 * Mounts a guest's root: read-only layers below (a template's tree, and the
 * base volumes' trees of a linked clone above it; top first), the guest's
 * own changes above. Without `upper` (a template's root) the overlay is
 * read-only, which overlayfs allows with two or more lower layers.
 */
export function overlayMountCommand(lowers: readonly string[], upper: { upper: string; work: string } | undefined, target: string): Command {
  for (const p of [...lowers, ...(upper ? [upper.upper, upper.work] : [])]) {
    // mount(8) splits its options on commas and overlayfs its lowerdir on colons.
    if (/[,:\n]/.test(p)) throw new Error(`path not usable in an overlay mount: ${p}`);
  }
  if (lowers.length === 0 || (!upper && lowers.length < 2)) throw new Error("an overlay needs a lower layer and an upper one, or two lower layers");
  const options = upper ? `lowerdir=${lowers.join(":")},upperdir=${upper.upper},workdir=${upper.work}` : `ro,lowerdir=${lowers.join(":")}`;
  return { argv: ["mount", "-t", "overlay", "overlay", "-o", options, target] };
}

/** Lazily unmounts one mount point. */
export function umountCommand(path: string): Command {
  return { argv: ["umount", "--lazy", path], okCodes: [0, 32] };
}

/** Decodes the octal escapes /proc/mounts uses in paths (`\040` for a space). */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or under `dir` in a /proc/mounts text, deepest first. */
export function mountsUnder(procMounts: string, dir: string): string[] {
  const base = dir.replace(/\/+$/, "");
  const found = new Set<string>();
  for (const line of procMounts.split("\n")) {
    const target = line.split(" ")[1];
    if (!target) continue;
    const path = unescapeMountPath(target);
    if (path === base || path.startsWith(`${base}/`)) found.add(path);
  }
  return [...found].sort((a, b) => b.length - a.length || b.localeCompare(a));
}

/** Unmount commands for everything mounted at or under `dir` right now. */
export async function unmountUnderCommands(dir: string): Promise<Command[]> {
  return mountsUnder(await readFile("/proc/mounts", "utf8"), dir).map(umountCommand);
}

/** The registry's argv. */
export function registryArgv(configFile: string): string[] {
  return ["docker-registry", "serve", configFile];
}

/** The registry's config: plain HTTP on the bridge address, storage in the state folder. */
export function registryConfig(address: string, port: number, storageDir: string): string {
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storageDir}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${address}:${port}`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------- Docker Engine

/** The longest path a unix socket may have on Linux (`sun_path` is 108 bytes, NUL included). */
const UNIX_SOCKET_PATH_MAX = 107;

/**
 * The longest socket path dockerd's managed containerd makes under the exec
 * root (`containerd.sock.ttrpc` is as long). Shims put theirs in
 * /run/containerd/s whatever the exec root.
 */
const EXEC_ROOT_SOCKET = "/containerd/containerd-debug.sock";

/** Where a private dockerd keeps things. */
export interface DockerdParams {
  /** Data root (`<dir>/data`: images, layers) and pid file (`<dir>/docker.pid`). */
  dir: string;
  /** The API socket. */
  socket: string;
  /** Runtime state and containerd's sockets (default `<dir>/exec`): keep it short. */
  execRoot?: string;
  /** A plain-HTTP registry Docker may push to (`host:port`). */
  insecureRegistry: string;
}

function checkSocketPath(path: string, what: string): void {
  const n = Buffer.byteLength(path);
  if (n > UNIX_SOCKET_PATH_MAX) {
    throw new Error(`${what} would be ${n} bytes long, over the ${UNIX_SOCKET_PATH_MAX} a unix socket path may have: ${path}`);
  }
}

/**
 * A dockerd of our own next to whatever Docker the host has: its own
 * socket, data and exec roots, no bridge, no iptables or forwarding changes
 * (the sandbox's FORWARD rules stay as they are), trusting the sandbox's
 * plain-HTTP registry. Fails when a socket path would be too long.
 */
export function dockerdArgv(p: DockerdParams): string[] {
  const execRoot = p.execRoot ?? join(p.dir, "exec");
  checkSocketPath(p.socket, "dockerd's socket");
  checkSocketPath(`${execRoot}${EXEC_ROOT_SOCKET}`, `a containerd socket under the exec root ${execRoot}`);
  return [
    "dockerd",
    "--host", `unix://${p.socket}`,
    "--data-root", join(p.dir, "data"),
    "--exec-root", execRoot,
    "--pidfile", join(p.dir, "docker.pid"),
    "--bridge", "none",
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--insecure-registry", p.insecureRegistry,
  ];
}

/** Where the runc under a dockerd with this exec root keeps its containers' state. */
export function dockerRuncRoot(execRoot: string): string {
  return join(execRoot, "runtime-runc", "moby");
}

/** Lists the containers runc knows under `root`, as JSON (`null` when none). */
export function runcListCommand(root: string): Command {
  return { argv: ["runc", "--root", root, "list", "--format", "json"], okCodes: [0, 1], timeoutMs: 30_000 };
}

/** The container ids in `runc list --format json` output (none when it is not that). */
export function parseRuncList(stdout: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.trim() || "null");
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((c: unknown) => {
    const id = (c as { id?: unknown } | null)?.id;
    return typeof id === "string" && /^[\w.-]+$/.test(id) ? [id] : [];
  });
}

/** Kills a container's processes and removes it (for containers whose dockerd and containerd are gone). */
export function runcDeleteCommand(root: string, id: string): Command {
  return { argv: ["runc", "--root", root, "delete", "--force", id], okCodes: [0, 1], timeoutMs: 60_000 };
}

/**
 * The package cache's config. No mirror remaps: Debian's package points
 * `/debian` at a mirror list (ftp.debian.org) that may not be reachable,
 * while the host reaches the archive the guests' sources name, so the cache
 * fetches exactly the URL a guest asked for.
 */
export function aptCacherConfig(o: { address: string; port: number; cacheDir: string; logDir: string; runDir: string }): string {
  return [
    "# homelab sandbox package cache (generated)",
    `CacheDir: ${o.cacheDir}`,
    `LogDir: ${o.logDir}`,
    "SupportDir: /usr/lib/apt-cacher-ng",
    `BindAddress: ${o.address}`,
    `Port: ${o.port}`,
    `PidFile: ${o.runDir}/apt-cacher-ng.pid`,
    `SocketPath: ${o.runDir}/apt-cacher-ng.socket`,
    "ReportPage: acng-report.html",
    "ExThreshold: 4",
    // Guests never need HTTPS tunnels through it.
    "PassThroughPattern: ^$",
    "",
  ].join("\n");
}

/** The package cache's argv: apt-cacher-ng in the foreground with its config folder. */
export function aptCacherArgv(confDir: string): string[] {
  return ["apt-cacher-ng", "-c", confDir, "ForeGround=1"];
}

/** Where the lxcfs a sandbox started records its pid (shared by every sandbox on the host). */
export function lxcfsPidFile(): string {
  return "/run/homelab-sandbox-lxcfs.pid";
}

/** The host-wide lock that orders starting guests against stopping the shared lxcfs. */
export function lxcfsLockFile(): string {
  return "/run/homelab-sandbox-lxcfs.lock";
}

/** lxcfs in the foreground on the mount point LXC's hook expects. */
export function lxcfsArgv(pidFile: string, mountpoint = "/var/lib/lxcfs"): string[] {
  return ["lxcfs", "--foreground", "--pidfile", pidFile, mountpoint];
}

/** The apt config inside a guest that sends every download through the host's package cache. */
export function aptProxyConf(cacheUrl: string): string {
  return `// homelab sandbox: packages come through the host's cache\nAcquire::http::Proxy "${cacheUrl}";\nAcquire::https::Proxy "DIRECT";\n`;
}

/** /etc/hosts of a guest. */
export function hostsFile(hostname: string, address?: string): string {
  const short = hostname.split(".")[0] ?? hostname;
  const names = short === hostname ? hostname : `${hostname} ${short}`;
  return [
    "127.0.0.1 localhost",
    address ? `${address} ${names}` : `127.0.1.1 ${names}`,
    "::1 localhost ip6-localhost ip6-loopback",
    "ff02::1 ip6-allnodes",
    "ff02::2 ip6-allrouters",
    "",
  ].join("\n");
}
