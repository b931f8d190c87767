import { test } from "node:test";
import assert from "node:assert/strict";
import {
  aptCacherArgv,
  aptCacherConfig,
  aptProxyConf,
  bridgeCreateCommands,
  cpusetFor,
  dockerdArgv,
  dockerRuncRoot,
  forwardRuleInsertCommands,
  forwardRuleSpecs,
  hostKeyCommand,
  hostsFile,
  lxcAttachCommand,
  lxcConfig,
  lxcInfoCommand,
  lxcKillCommand,
  lxcShutdownCommand,
  lxcStartCommand,
  mountsUnder,
  netnsAddrCommand,
  overlayMountCommand,
  parseLxcInfo,
  parseRuncList,
  registryConfig,
  removeTreeCommand,
  ruleTag,
  runcDeleteCommand,
  runcListCommand,
  splitRuleLine,
  taggedRuleDeleteCommands,
} from "../../../src/sandbox/lxc/commands.ts";
import type { LxcConfigParams } from "../../../src/sandbox/lxc/commands.ts";
import { OWN_DAEMONS } from "../../../src/sandbox/lxc/cleanup.ts";
import { dockerPathsOf, STATE_SUBDIRS } from "../../../src/sandbox/lxc/layout.ts";

const ref = { lxcpath: "/s/lxc", name: "hlsbx0-101" };

test("lxc commands name the container by lxcpath and name", () => {
  assert.deepEqual(lxcStartCommand(ref, "/s/l.log").argv, [
    "lxc-start", "-P", "/s/lxc", "-n", "hlsbx0-101", "--daemon", "--logfile", "/s/l.log", "--logpriority", "INFO",
  ]);
  assert.deepEqual(lxcKillCommand(ref).argv, ["lxc-stop", "-P", "/s/lxc", "-n", "hlsbx0-101", "--kill"]);
  assert.deepEqual(lxcInfoCommand(ref).okCodes, [0, 1]);
});

test("shutdown waits the timeout and keeps the guest alive when not forced", () => {
  assert.deepEqual(lxcShutdownCommand(ref, 30, true).argv.slice(-2), ["--timeout", "30"]);
  assert.deepEqual(lxcShutdownCommand(ref, 30, false).argv.slice(-3), ["--timeout", "30", "--nokill"]);
  assert.ok((lxcShutdownCommand(ref, 30, true).timeoutMs ?? 0) > 30_000, "the executor must not kill it first");
});

test("lxc-attach runs argv after -- with a clean environment and passes input", () => {
  const cmd = lxcAttachCommand(ref, ["sh", "-c", "echo hi"], "data");
  const dd = cmd.argv.indexOf("--");
  assert.deepEqual(cmd.argv.slice(dd + 1), ["sh", "-c", "echo hi"]);
  assert.ok(cmd.argv.includes("--clear-env"));
  assert.equal(cmd.input, "data");
});

test("parseLxcInfo reads labelled and bare output; anything else is stopped", () => {
  assert.deepEqual(parseLxcInfo("State:          RUNNING\nPID:            29738\n"), { state: "RUNNING", pid: 29738 });
  assert.deepEqual(parseLxcInfo("RUNNING\n42\n"), { state: "RUNNING", pid: 42 });
  assert.deepEqual(parseLxcInfo("State:          STOPPED\n"), { state: "STOPPED" });
  assert.deepEqual(parseLxcInfo(""), { state: "STOPPED" });
});

const params: LxcConfigParams = {
  vmid: 101,
  hostname: "peach",
  rootfs: "/s/lxc/hlsbx0-101/rootfs",
  nets: [{ index: 0, name: "eth0", bridge: "hlsbx0", hwaddr: "BC:24:11:00:00:01", address: "10.87.53.5/24", gateway: "10.87.53.1" }],
  memoryBytes: 512 * 1024 * 1024,
  memswBytes: 768 * 1024 * 1024,
  cpus: "0",
  nesting: false,
  consoleLog: "/s/console.log",
  dockerDir: "/s/docker",
};

test("lxcConfig sets hostname, rootfs, network and limits", () => {
  const conf = lxcConfig(params);
  for (const line of [
    "lxc.uts.name = peach",
    "lxc.rootfs.path = dir:/s/lxc/hlsbx0-101/rootfs",
    "lxc.net.0.link = hlsbx0",
    "lxc.net.0.hwaddr = BC:24:11:00:00:01",
    "lxc.net.0.ipv4.address = 10.87.53.5/24",
    "lxc.net.0.ipv4.gateway = 10.87.53.1",
    "lxc.cgroup.memory.limit_in_bytes = 536870912",
    "lxc.cgroup.memory.memsw.limit_in_bytes = 805306368",
    "lxc.cgroup.cpuset.cpus = 0",
    "lxc.signal.halt = SIGRTMIN+3",
    "lxc.mount.entry = /s/docker var/lib/docker none bind,create=dir 0 0",
  ]) {
    assert.ok(conf.split("\n").includes(line), `missing: ${line}\n${conf}`);
  }
  assert.ok(!conf.includes("lxc.mount.auto = proc:rw"), "no nesting settings without nesting");
});

test("lxcConfig with nesting gives Docker what it needs, after common.conf", () => {
  const lines = lxcConfig({ ...params, nesting: true }).split("\n");
  const include = lines.indexOf("lxc.include = /usr/share/lxc/config/common.conf");
  for (const line of ["lxc.cgroup.devices.allow = a", "lxc.mount.auto =", "lxc.mount.auto = proc:rw sys:rw cgroup:rw"]) {
    assert.ok(lines.indexOf(line) > include, `${line} must follow the include`);
  }
  assert.ok(lines.indexOf("lxc.mount.auto =") < lines.indexOf("lxc.mount.auto = proc:rw sys:rw cgroup:rw"));
  // Proxmox's nesting keeps common.conf's capability drops (sys_module among them): so does the sandbox.
  assert.ok(!lines.some((l) => l.startsWith("lxc.cap.drop")), lines.join("\n"));
});

test("lxcConfig leaves out addresses for ip=manual and memsw where unsupported", () => {
  const { memswBytes: _m, ...noSwap } = params;
  const conf = lxcConfig({ ...noSwap, nets: [{ index: 0, name: "eth0", bridge: "b", hwaddr: "AA:BB:CC:DD:EE:FF" }] });
  assert.ok(!conf.includes("ipv4"));
  assert.ok(!conf.includes("memsw"));
});

test("cpusetFor spreads guests over the host's CPUs and caps at the host", () => {
  assert.equal(cpusetFor(100, 1, 2), "0");
  assert.equal(cpusetFor(101, 1, 2), "1");
  assert.equal(cpusetFor(101, 2, 2), "0-1");
  assert.equal(cpusetFor(101, 8, 2), "0-1");
  assert.equal(cpusetFor(5, 2, 4), "1,2");
  assert.equal(cpusetFor(7, 2, 4), "0,3");
  assert.equal(cpusetFor(1, 1, 1), "0");
});

test("the bridge is made without STP delay, with the host address, and up", () => {
  const cmds = bridgeCreateCommands("hlsbx0", "10.87.53.1/24").map((c) => c.argv);
  assert.deepEqual(cmds[0], ["ip", "link", "add", "name", "hlsbx0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
  assert.deepEqual(cmds[1], ["ip", "addr", "add", "10.87.53.1/24", "dev", "hlsbx0"]);
  assert.deepEqual(cmds[2], ["ip", "link", "set", "dev", "hlsbx0", "up"]);
});

test("forward rules accept bridge-internal traffic, drop what leaves the bridge, and carry the tag", () => {
  const specs = forwardRuleSpecs("hlsbx0");
  assert.equal(specs.length, 3);
  for (const s of specs) assert.equal(s[s.indexOf("--comment") + 1], "homelab-sandbox:hlsbx0");
  assert.deepEqual(specs[0]?.slice(0, 4), ["-i", "hlsbx0", "-o", "hlsbx0"]);
  assert.equal(specs[0]?.at(-1), "ACCEPT");
  assert.deepEqual(specs[1]?.slice(0, 2), ["-i", "hlsbx0"]);
  assert.equal(specs[1]?.at(-1), "DROP");
  const inserts = forwardRuleInsertCommands("hlsbx0").map((c) => c.argv.slice(0, 5));
  assert.deepEqual(inserts, [
    ["iptables", "-w", "-I", "FORWARD", "1"],
    ["iptables", "-w", "-I", "FORWARD", "2"],
    ["iptables", "-w", "-I", "FORWARD", "3"],
  ]);
});

test("taggedRuleDeleteCommands finds only this bridge's rules in iptables-save output", () => {
  const dump = [
    "*filter",
    ":FORWARD DROP [0:0]",
    '-A FORWARD -i hlsbx0 -o hlsbx0 -m comment --comment "homelab-sandbox:hlsbx0" -j ACCEPT',
    "-A FORWARD -i hlsbx0 -m comment --comment homelab-sandbox:hlsbx0 -j DROP",
    "-A FORWARD -i other -m comment --comment homelab-sandbox:other -j DROP",
    "-A FORWARD -j DOCKER-USER",
    "COMMIT",
  ].join("\n");
  const cmds = taggedRuleDeleteCommands(dump, "hlsbx0").map((c) => c.argv);
  assert.deepEqual(cmds, [
    ["iptables", "-w", "-D", "FORWARD", "-i", "hlsbx0", "-o", "hlsbx0", "-m", "comment", "--comment", "homelab-sandbox:hlsbx0", "-j", "ACCEPT"],
    ["iptables", "-w", "-D", "FORWARD", "-i", "hlsbx0", "-m", "comment", "--comment", "homelab-sandbox:hlsbx0", "-j", "DROP"],
  ]);
  assert.equal(ruleTag("x"), "homelab-sandbox:x");
});

test("splitRuleLine keeps quoted words together", () => {
  assert.deepEqual(splitRuleLine('-A X -m comment --comment "a b \\"c\\"" -j ACCEPT'), ["-A", "X", "-m", "comment", "--comment", 'a b "c"', "-j", "ACCEPT"]);
});

test("mountsUnder lists mounts at or below a folder, deepest first, decoding escapes", () => {
  const mounts = [
    "/dev/vda / ext4 rw 0 0",
    "overlay /s/lxc/a/rootfs overlay rw 0 0",
    "proc /s/lxc/a/rootfs/proc proc rw 0 0",
    "tmpfs /s/lxc/with\\040space tmpfs rw 0 0",
    "tmpfs /s2/x tmpfs rw 0 0",
  ].join("\n");
  assert.deepEqual(mountsUnder(mounts, "/s/"), ["/s/lxc/a/rootfs/proc", "/s/lxc/with space", "/s/lxc/a/rootfs"]);
  assert.deepEqual(mountsUnder(mounts, "/nothing"), []);
});

test("overlay mount stacks the guest's layer on the template tree and refuses unsafe paths", () => {
  assert.deepEqual(overlayMountCommand(["/b"], { upper: "/u", work: "/w" }, "/r").argv, ["mount", "-t", "overlay", "overlay", "-o", "lowerdir=/b,upperdir=/u,workdir=/w", "/r"]);
  // A linked clone: its base's tree above the template's.
  assert.deepEqual(overlayMountCommand(["/base/upper", "/b"], { upper: "/u", work: "/w" }, "/r").argv.at(-2), "lowerdir=/base/upper:/b,upperdir=/u,workdir=/w");
  // A template: read-only, lower layers only.
  assert.deepEqual(overlayMountCommand(["/t/upper", "/b"], undefined, "/r").argv.at(-2), "ro,lowerdir=/t/upper:/b");
  assert.throws(() => overlayMountCommand(["/b"], undefined, "/r"), /two lower layers/);
  assert.throws(() => overlayMountCommand(["/b,x"], { upper: "/u", work: "/w" }, "/r"), /overlay/);
  assert.throws(() => overlayMountCommand(["/b:x"], { upper: "/u", work: "/w" }, "/r"), /overlay/);
});

test("tree removal never crosses into another file system", () => {
  assert.deepEqual(removeTreeCommand("/s/lxc").argv, ["rm", "-rf", "--one-file-system", "/s/lxc"]);
});

test("host keys: no passphrase, right type, rsa sized", () => {
  assert.deepEqual(hostKeyCommand("/r/k", "ed25519", "root@peach").argv, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@peach", "-f", "/r/k"]);
  assert.deepEqual(hostKeyCommand("/r/k", "rsa", "c").argv.slice(0, 6), ["ssh-keygen", "-q", "-t", "rsa", "-b", "3072"]);
});

test("netnsAddrCommand looks into the guest's network namespace", () => {
  assert.deepEqual(netnsAddrCommand(42).argv, ["nsenter", "--net=/proc/42/ns/net", "ip", "-json", "addr", "show"]);
});

test("registry and package cache listen on the bridge address with their own folders", () => {
  const reg = registryConfig("10.87.53.1", 5000, "/s/registry/data");
  assert.match(reg, /addr: 10\.87\.53\.1:5000/);
  assert.match(reg, /rootdirectory: \/s\/registry\/data/);
  assert.doesNotMatch(reg, /htpasswd/);
  assert.deepEqual(aptCacherArgv("/r/acng"), ["apt-cacher-ng", "-c", "/r/acng", "ForeGround=1"]);
  const acng = aptCacherConfig({ address: "10.87.53.1", port: 3142, cacheDir: "/c", logDir: "/l", runDir: "/r" }).split("\n");
  for (const a of ["BindAddress: 10.87.53.1", "Port: 3142", "CacheDir: /c", "LogDir: /l", "PidFile: /r/apt-cacher-ng.pid", "SocketPath: /r/apt-cacher-ng.socket"]) {
    assert.ok(acng.includes(a), a);
  }
  assert.ok(!acng.some((l) => l.startsWith("Remap-")), "no remaps to mirrors the host may not reach");
});

test("dockerdArgv: a dockerd of our own that leaves the host's network alone and trusts the sandbox registry", () => {
  assert.deepEqual(dockerdArgv({ dir: "/s/docker", socket: "/run/hl/docker.sock", execRoot: "/run/hl/docker", insecureRegistry: "10.87.53.1:5000" }), [
    "dockerd",
    "--host", "unix:///run/hl/docker.sock",
    "--data-root", "/s/docker/data",
    "--exec-root", "/run/hl/docker",
    "--pidfile", "/s/docker/docker.pid",
    "--bridge", "none",
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--insecure-registry", "10.87.53.1:5000",
  ]);
  const argv = dockerdArgv({ dir: "/t/d", socket: "/t/d/docker.sock", insecureRegistry: "10.0.0.1:5000" });
  assert.equal(argv[argv.indexOf("--exec-root") + 1], "/t/d/exec", "the exec root defaults to <dir>/exec");
});

test("dockerdArgv refuses socket paths over the unix limit, naming the path", () => {
  const deep = `/${"d".repeat(80)}`;
  // containerd's sockets sit 33 bytes below the exec root: 74 is the most it may be.
  const fits = `/${"e".repeat(73)}`;
  assert.doesNotThrow(() => dockerdArgv({ dir: deep, socket: "/run/x.sock", execRoot: fits, insecureRegistry: "r:5000" }));
  assert.throws(() => dockerdArgv({ dir: deep, socket: "/run/x.sock", execRoot: `${fits}e`, insecureRegistry: "r:5000" }), (e: Error) => {
    assert.match(e.message, /containerd socket under the exec root .* 108 bytes long, over the 107/);
    return true;
  });
  assert.throws(() => dockerdArgv({ dir: "/d", socket: `${deep}/${"s".repeat(30)}.sock`, execRoot: "/run/e", insecureRegistry: "r:5000" }), /dockerd's socket would be/);
  // Bytes, not characters.
  assert.throws(() => dockerdArgv({ dir: "/d", socket: `/${"é".repeat(60)}`, execRoot: "/run/e", insecureRegistry: "r:5000" }), /121 bytes/);
});

test("the backend's dockerd: sockets under /run by bridge, so any state folder works; images in the state folder, which cleanup empties", () => {
  const stateDir = `/home/someone/${"projects/".repeat(12)}infra/.homelab/sandbox/lxc`;
  const p = dockerPathsOf(stateDir, "hlsbx0");
  assert.deepEqual(p, { dir: `${stateDir}/docker`, execRoot: "/run/homelab-sandbox/hlsbx0/docker", socket: "/run/homelab-sandbox/hlsbx0/docker.sock" });
  // The longest bridge name still fits.
  assert.doesNotThrow(() => dockerdArgv({ ...dockerPathsOf(stateDir, "b".repeat(15)), insecureRegistry: "10.87.53.1:5000" }));
  assert.ok(STATE_SUBDIRS.includes("docker"));
  for (const d of ["dockerd", "containerd", "containerd-shim-runc-v2"]) assert.ok(OWN_DAEMONS.includes(d), d);
});

test("runc commands: the leftover containers of a killed dockerd, found and deleted", () => {
  const root = dockerRuncRoot("/run/homelab-sandbox/hlsbx0/docker");
  assert.equal(root, "/run/homelab-sandbox/hlsbx0/docker/runtime-runc/moby");
  assert.deepEqual(runcListCommand(root).argv, ["runc", "--root", root, "list", "--format", "json"]);
  assert.deepEqual(runcDeleteCommand(root, "abc").argv, ["runc", "--root", root, "delete", "--force", "abc"]);
  assert.deepEqual(parseRuncList('[{"ociVersion":"1.0.2-dev","id":"7bede470e0d7","pid":492,"status":"running"},{"id":"x y"},{"pid":3}]\n'), ["7bede470e0d7"]);
  assert.deepEqual(parseRuncList("null\n"), [], "what runc prints for none");
  assert.deepEqual(parseRuncList(""), []);
  assert.deepEqual(parseRuncList("not json"), []);
});

test("guest files: apt proxy and hosts", () => {
  assert.match(aptProxyConf("http://10.87.53.1:3142"), /Acquire::http::Proxy "http:\/\/10\.87\.53\.1:3142";/);
  const hosts = hostsFile("peach.lan", "10.87.53.5");
  assert.match(hosts, /^10\.87\.53\.5 peach\.lan peach$/m);
  assert.match(hosts, /^127\.0\.0\.1 localhost$/m);
  assert.match(hostsFile("peach"), /^127\.0\.1\.1 peach$/m);
});
