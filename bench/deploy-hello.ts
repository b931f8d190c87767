/**
 * Where the time of a first deploy of one compose service goes, through the
 * CLI as a user runs it: `homelab sandbox start --backend lxc`, then
 * `homelab deploy hello --yes --verbose` with every output line timestamped
 * on arrival, split into container create, boot, address (the provider's
 * own lines), image build + push, Docker install, the smoke test, image pull
 * and compose up (from the unit's journal in the guest), the wait for
 * healthy, and the tool's own overhead (everything else: CLI, engine,
 * plugin, planning, SSH). Then a redeploy after a compose file change.
 * Root only; everything stays on this machine (its own bridge).
 * `--debian 12|13` deploys hello on that Debian (`^12` / `^13` instead of its
 * `>=12`, which is 13 where 13 is offered): Debian 12 runs Compose v1 (1.29),
 * Debian 13 Compose v2 (2.26), both from Debian's packages.
 * Usage: node bench/deploy-hello.ts [--debian 12|13] [--bridge hlbench0 --subnet 10.87.87.0/24] [--keep]
 */
import { spawn, execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    keep: { type: "boolean", default: false },
    debian: { type: "string" },
    bridge: { type: "string", default: "hlbench0" },
    // Not 10.87.88.0/24: the status page's end-to-end test uses that one.
    subnet: { type: "string", default: "10.87.87.0/24" },
  },
});
if (process.getuid?.() !== 0) {
  console.error("this bench needs root (LXC containers, a dockerd)");
  process.exit(1);
}
if (values.debian !== undefined && !["12", "13"].includes(values.debian)) {
  console.error(`--debian takes 12 or 13, not ${values.debian}`);
  process.exit(2);
}
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = join(ROOT, "src/cli/entry.ts");
const BRIDGE = values.bridge;
const SUBNET = values.subnet;

const repo = mkdtempSync(join(tmpdir(), "homelab-bench-deploy-"));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${dirname(process.execPath)}${delimiter}${process.env["PATH"] ?? ""}`,
  HOMELAB_NODE: process.execPath,
  PULUMI_HOME: join(repo, ".pulumi-home"),
  NO_COLOR: "1",
  CI: "",
};

interface Line {
  at: number;
  text: string;
}

/** Runs the CLI, timestamping each output line as it arrives. */
function homelab(args: string[]): Promise<{ code: number; lines: Line[]; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ENTRY, "--dir", repo, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    const lines: Line[] = [];
    const feed = (buf: { rest: string }) => (d: Buffer) => {
      const parts = (buf.rest + d.toString()).split("\n");
      buf.rest = parts.pop() ?? "";
      for (const p of parts) lines.push({ at: Date.now() - t0, text: p });
    };
    child.stdout.on("data", feed({ rest: "" }));
    child.stderr.on("data", feed({ rest: "" }));
    child.on("close", (code) => resolve({ code: code ?? 1, lines, ms: Date.now() - t0 }));
  });
}

function at(lines: Line[], re: RegExp): number {
  const l = lines.find((x) => re.test(x.text));
  if (!l) throw new Error(`no output line matches ${re}`);
  return l.at;
}

function reported(lines: Line[], re: RegExp): number {
  const l = lines.find((x) => re.test(x.text));
  const m = l ? re.exec(l.text) : null;
  if (!m?.[1]) throw new Error(`no output line matches ${re}`);
  return Number(m[1]);
}

/** Seconds since the epoch of the first journal line of the unit matching `re` (journalctl -o short-unix). */
function journalAt(journal: string, re: RegExp): number {
  const l = journal.split("\n").find((x) => re.test(x));
  if (!l) throw new Error(`the unit's journal has no line matching ${re}:\n${journal}`);
  return Number(l.split(" ")[0]) * 1000;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

try {
  cpSync(join(ROOT, "services/hello"), join(repo, "services/hello"), { recursive: true });
  copyFileSync("/bin/busybox", join(repo, "services/hello/docker/web/busybox"));
  copyFileSync(join(ROOT, "Pulumi.yaml"), join(repo, "Pulumi.yaml"));
  if (values.debian !== undefined) {
    const yaml = join(repo, "services/hello/service.yaml");
    writeFileSync(yaml, readFileSync(yaml, "utf8").replace('version: ">=12"', `version: "^${values.debian}"`));
  }
  const started = await homelab(["sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE, "--subnet", SUBNET, "--json"]);
  if (started.code !== 0) throw new Error(`sandbox start failed:\n${started.lines.map((l) => l.text).join("\n")}`);
  const info = JSON.parse(started.lines.find((l) => l.text.startsWith("{"))?.text ?? "{}") as { stateDir: string };

  const first = await homelab(["--env", "sandbox", "deploy", "hello", "--yes", "--verbose"]);
  if (first.code !== 0) throw new Error(`deploy failed:\n${first.lines.map((l) => l.text).join("\n")}`);
  const L = first.lines;
  const image = at(L, /hello_web_image\s+created/) - at(L, /hello_web_image\s+creating/);
  const create = reported(L, /CT \d+ created on \S+ in (\d+) ms/);
  const boot = reported(L, /CT \d+ started in (\d+) ms/);
  const address = reported(L, /CT \d+ has address \S+ after (\d+) ms/);
  const composeStart = at(L, /hello_container\.compose\s+creating/);
  const dockerInstall = at(L, /HOMELAB-DOCKER-INSTALLED/) - composeStart;
  const smoke = at(L, /homelab-smoke-ok/) - at(L, /HOMELAB-DOCKER-INSTALLED/);
  const unitStart = at(L, /HOMELAB-ACTION started/) - at(L, /writing \d+ files and starting/);
  const waitHealthy = at(L, /HOMELAB-WAIT-OK/) - at(L, /HOMELAB-ACTION started/);

  // Pull and up, from the guest's journal of the unit.
  const vmid = reported(L, /CT (\d+) created on/);
  const lxcpath = join(info.stateDir, "lxc", "lxc");
  const journal = execFileSync("lxc-attach", ["-P", lxcpath, "-n", `${BRIDGE}-${vmid}`, "--", "journalctl", "-u", "homelab-hello.service", "-o", "short-unix", "--no-pager"], { encoding: "utf8" });
  // Compose v1 says "Pulling web ...", v2 " web Pulling".
  const pull = journalAt(journal, /Pulling web| web Pulling/);
  const creating = journalAt(journal, /Creating hello[_-]web[_-]1|Container hello-web-1\s+Creating/);
  const startedUnit = journalAt(journal, /(Started|Finished) homelab-hello\.service/);
  const pullMs = creating - pull;
  const upMs = startedUnit - creating;

  const work = create + boot + address + image + dockerInstall + smoke + unitStart + waitHealthy;
  const overhead = first.ms - work;
  const system = L.find((l) => /system\s+Debian/.test(l.text))?.text.replace(/^.*system\s+/, "") ?? "";
  const installed = L.find((l) => /HOMELAB-DOCKER-(INSTALLED|PRESENT)/.test(l.text))?.text.replace(/^.*HOMELAB-DOCKER-\w+ /, "") ?? "?";
  console.log(`first deploy of hello on the lxc sandbox (2 cores; load ${readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?"}):`);
  console.log(`  release, Docker, Compose   ${system || "(not in the output)"}; installed: ${installed}`);
  console.log(`  total wall                 ${s(first.ms)}`);
  console.log(`  container create           ${s(create)}`);
  console.log(`  container boot             ${s(boot)}`);
  console.log(`  address (DHCP)             ${s(address)}`);
  console.log(`  image build + push         ${s(image)}`);
  console.log(`  Docker install (+ SSH up)  ${s(dockerInstall)}`);
  console.log(`  Docker smoke test          ${s(smoke)}`);
  console.log(`  unit start: pull + up      ${s(unitStart)}  (journal: pull ${s(pullMs)}, compose up ${s(upMs)})`);
  console.log(`  wait until healthy         ${s(waitHealthy)}`);
  console.log(`  tool overhead              ${s(overhead)} = ${((overhead / first.ms) * 100).toFixed(1)}% of the whole (target < 10%)`);

  const file = join(repo, "services/hello/docker-compose.yaml");
  writeFileSync(file, readFileSync(file, "utf8").replace("restart: unless-stopped", "restart: unless-stopped\n    labels:\n      bench: changed"));
  const again = await homelab(["--env", "sandbox", "deploy", "hello", "--yes", "--verbose"]);
  if (again.code !== 0) throw new Error(`redeploy failed:\n${again.lines.map((l) => l.text).join("\n")}`);
  const a = again.lines;
  const previewDone = at(a, /^Applying/);
  const applyStart = at(a, /hello_container\.compose\s+updating/);
  const applyEnd = at(a, /hello_container\.compose\s+updated/);
  console.log(`redeploy after a compose file change: ${s(again.ms)} (target < 10 s): preview ${s(previewDone)}, the update itself ${s(applyEnd - applyStart)}, the rest ${s(again.ms - previewDone - (applyEnd - applyStart))}`);
  const noop = await homelab(["--env", "sandbox", "deploy", "hello", "--yes"]);
  console.log(`redeploy with nothing changed: ${s(noop.ms)}`);
  if (values.keep) {
    console.log(`kept running; stop with: node ${ENTRY} --dir ${repo} sandbox stop`);
  }
} finally {
  if (!values.keep) {
    await homelab(["sandbox", "stop"]);
    rmSync(repo, { recursive: true, force: true });
  }
}
