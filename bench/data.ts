/**
 * What keeping a service's data costs, through the CLI on the lxc sandbox:
 * a replace (template change) of a container whose 2 GB volume holds 1 GiB
 * of data, beside the same replace of a container without a volume; the
 * snapshot a restart-requiring change takes first; the backup a replace takes
 * of the old container (from the provider's own lines); and a rollback to a
 * snapshot with `homelab restore`. Container-only services (no compose), so
 * Docker installs do not drown the figures. Root only; everything stays on
 * this machine (its own bridge).
 * Usage: node bench/data.ts
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, benchCli } from "./homelab-cli.ts";

if (process.getuid?.() !== 0) {
  console.error("this bench needs root (LXC containers)");
  process.exit(1);
}
const BRIDGE = "hlbdata0";
const SUBNET = "10.87.98.0/24";
const repo = mkdtempSync(join(tmpdir(), "homelab-bench-data-"));
const { run: homelab, ok } = benchCli(repo);

function service(name: string, o: { version: string; volume: boolean; hostname?: string }): void {
  mkdirSync(join(repo, "services", name), { recursive: true });
  writeFileSync(
    join(repo, "services", name, "service.yaml"),
    [
      `name: ${name}`,
      "resources:",
      `  - id: ${name}_ct`,
      "    type: proxmox:container",
      `    image: { name: "*debian*", version: "${o.version}" }`,
      ...(o.hostname !== undefined ? [`    hostname: ${o.hostname}`] : []),
      "    unprivileged: false",
      "    host: { resources: { memory: 256, disk: 2 } }",
      ...(o.volume ? ["    volumes:", "      - { name: data, size: 2, path: /srv/data }"] : []),
      "",
    ].join("\n"),
  );
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const reported = (out: string, re: RegExp): string => re.exec(out)?.[1] ?? "?";

try {
  copyFileSync(join(ROOT, "Pulumi.yaml"), join(repo, "Pulumi.yaml"));
  const started = await ok("sandbox", "start", "--backend", "lxc", "--bridge", BRIDGE, "--subnet", SUBNET, "--json");
  const info = JSON.parse(started.out.split("\n").find((l) => l.startsWith("{")) ?? "{}") as { stateDir: string };
  service("vault", { version: ">=12", volume: true });
  service("plain", { version: ">=12", volume: false });
  await ok("--env", "sandbox", "deploy", "vault", "plain", "--yes");
  const status = JSON.parse((await ok("--env", "sandbox", "status", "--json")).out) as { services: Array<{ service: string; resources: Array<{ vmid?: number }> }> };
  const vmid = status.services.find((x) => x.service === "vault")?.resources.find((r) => r.vmid !== undefined)?.vmid;
  const lxcpath = join(info.stateDir, "lxc", "lxc");
  const t = Date.now();
  execFileSync("lxc-attach", ["-P", lxcpath, "-n", `${BRIDGE}-${vmid ?? 0}`, "--", "sh", "-c", "dd if=/dev/urandom of=/srv/data/blob bs=1M count=1024 status=none && sync"]);
  console.log(`data: 1 GiB written onto vault's volume in ${s(Date.now() - t)} (load ${readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?"})`);

  service("vault", { version: "<12.7", volume: true });
  service("plain", { version: "<12.7", volume: false });
  const withVolume = await ok("--env", "sandbox", "deploy", "vault", "--yes", "--verbose");
  const without = await ok("--env", "sandbox", "deploy", "plain", "--yes", "--verbose");
  console.log(`replace (template change), whole deploy through the CLI:`);
  console.log(`  without a volume                         ${s(without.ms)}`);
  console.log(`  with a 2 GB volume holding 1 GiB, kept   ${s(withVolume.ms)}`);
  console.log(`    of which the backup of the old one     ${reported(withVolume.out, /backup \S+ taken before replacing the container \(\d+ MiB, (\d+) ms\)/)} ms`);

  service("vault", { version: "<12.7", volume: true, hostname: "vault-renamed" });
  const snap = await ok("--env", "sandbox", "deploy", "vault", "--yes", "--verbose");
  const snapName = /snapshot (homelab_\S+) taken/.exec(snap.out)?.[1] ?? "";
  console.log(`restart-requiring change (hostname): ${s(snap.ms)}; the snapshot first: ${reported(snap.out, /snapshot homelab_\S+ taken before a change that restarts the container \((\d+) ms\)/)} ms`);
  const rollback = await ok("--env", "sandbox", "restore", "vault", "--from", snapName, "--yes", "--no-deploy");
  console.log(`homelab restore to that snapshot (a backup of the current state first, then the rollback): ${s(rollback.ms)}`);
  console.log(`  ${rollback.out.split("\n").find((l) => l.includes("restored")) ?? ""}`);
} finally {
  await homelab("sandbox", "stop");
  rmSync(repo, { recursive: true, force: true });
}
