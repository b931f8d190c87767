/**
 * The scripts of a compose deployment, generated as data for deploy.ts to run
 * over SSH: apply (write the files that differ, reload what they concern),
 * inspect (read back modes and digests for refresh), wait (until the project's
 * containers run and are healthy), restart, remove, read the recorded hash;
 * and the parsers of what they print. Pure.
 */
import { posix } from "node:path";
import { composeProjectName, deploymentDir, unitName } from "./compose-files.ts";
import type { FileRole } from "./compose-files.ts";
import type { ComposeDeployment } from "./compose.ts";
import { Script, cmd, quote } from "./shell.ts";
import { migrationLines } from "./compose-volumes.ts";

/** Lines the apply script prints, parsed by deploy.ts. */
export const MARK = {
  changed: "HOMELAB-CHANGED",
  removed: "HOMELAB-REMOVED",
  action: "HOMELAB-ACTION",
} as const;

/** The manifest of compose files a deployment wrote, so the next one can remove files no longer listed. */
function manifestPath(dir: string): string {
  return posix.join(dir, ".homelab-files");
}

/** The file the deployed hash is recorded in, for reads and refresh. */
function hashFilePath(dir: string): string {
  return posix.join(dir, ".homelab-hash");
}

/**
 * The script that installs a deployment: writes each file only when its
 * content or mode differs (printing what changed), removes compose files an
 * earlier deployment wrote that are no longer listed, reloads systemd or
 * Docker when their files changed, enables the unit, then starts it, or, when
 * it already runs, reloads it (`up -d`: Compose re-creates only the services
 * whose configuration changed; the LXC container is untouched).
 */
export function applyScript(d: ComposeDeployment): string {
  const s = new Script(["set -eu", "umask 077"]);
  s.comment(`homelab: deploy compose project ${d.project} (${d.hashes.all})`);
  s.line(
    "changed=''",
    "homelab_put() {",
    '  chmod "$2" "$1.homelab-new"',
    '  if [ -f "$1" ] && [ "$(stat -c %a "$1")" = "${2#0}" ] && cmp -s "$1.homelab-new" "$1"; then',
    '    rm -f "$1.homelab-new"',
    "  else",
    '    mv -f "$1.homelab-new" "$1"',
    `    changed="$changed $3"`,
    `    printf '%s %s %s\\n' ${MARK.changed} "$3" "$1"`,
    "  fi",
    "}",
    "homelab_has() { case \" $changed \" in *\" $1 \"*) return 0;; esac; return 1; }",
  );
  const dirs = [...new Set(d.files.map((f) => posix.dirname(f.path)))].sort();
  s.run("mkdir", "-p", "--", ...dirs);
  // Folders made here with umask 077 would hide the project from nobody; give the usual modes.
  s.run("chmod", "0755", "--", d.dir);
  for (const f of d.files) {
    s.writeBase64(`${f.path}.homelab-new`, f.content);
    s.run("homelab_put", f.path, `0${f.mode.toString(8)}`, f.role);
  }
  // Compose files of an earlier deployment that this one no longer lists.
  const manifest = manifestPath(d.dir);
  const listed = d.files.filter((f) => f.role === "compose").map((f) => f.path);
  s.line(`if [ -f ${quote(manifest)} ]; then`, `  while IFS= read -r old; do`, `    case "$old" in`);
  for (const p of listed) s.line(`      ${quote(p)}) ;;`);
  s.line(
    `      ${quote(`${d.dir}/`)}*) if [ -f "$old" ]; then rm -f -- "$old"; changed="$changed compose"; printf '%s %s\\n' ${MARK.removed} "$old"; fi ;;`,
    "    esac",
    `  done < ${quote(manifest)}`,
    "fi",
  );
  // One path per line: compose paths with line breaks are refused by normalizeRelative.
  s.writeBase64(manifest, `${listed.join("\n")}\n`);
  s.run("chmod", "0644", manifest);
  s.line(
    "if homelab_has unit; then systemctl daemon-reload; fi",
    "if homelab_has daemon-json && systemctl is-active --quiet docker; then systemctl reload docker; sleep 1; fi",
  );
  const unit = quote(d.unitName);
  // Named volumes on the data volume: their folders made, data Docker kept elsewhere moved in (once).
  s.line(...migrationLines(d.volumes, d.unitName));
  s.line(
    // Enabling costs half a second in a container; most deploys find it enabled.
    `systemctl is-enabled --quiet ${unit} 2>/dev/null || systemctl enable --quiet ${unit}`,
    `if systemctl is-active --quiet ${unit}; then`,
    `  systemctl reload ${unit} || { journalctl -u ${unit} -n 50 --no-pager -o cat >&2 || true; exit 1; }`,
    `  if [ -n "$changed" ]; then printf '%s reloaded\\n' ${MARK.action}; else printf '%s unchanged\\n' ${MARK.action}; fi`,
    "else",
    `  systemctl start ${unit} || { journalctl -u ${unit} -n 50 --no-pager -o cat >&2 || true; exit 1; }`,
    `  printf '%s started\\n' ${MARK.action}`,
    "fi",
  );
  s.writeBase64(hashFilePath(d.dir), `${d.hashes.all}\n`);
  s.run("chmod", "0644", hashFilePath(d.dir));
  return s.toString();
}

/** What the apply script reported. */
export interface ApplyReport {
  changed: Array<{ role: FileRole; path: string }>;
  removed: string[];
  action: "started" | "reloaded" | "unchanged" | "unknown";
}

/** Parses the apply script's output. */
export function parseApplyOutput(stdout: string): ApplyReport {
  const report: ApplyReport = { changed: [], removed: [], action: "unknown" };
  for (const line of stdout.split("\n")) {
    const [mark, a, ...rest] = line.split(" ");
    if (mark === MARK.changed && a) report.changed.push({ role: a as FileRole, path: rest.join(" ") });
    else if (mark === MARK.removed && a !== undefined) report.removed.push([a, ...rest].join(" "));
    else if (mark === MARK.action && (a === "started" || a === "reloaded" || a === "unchanged")) report.action = a;
  }
  return report;
}

/**
 * Restarts the project through its unit (`down` then `up -d`): what the
 * monitor does before anything heavier. On failure it prints the unit's
 * last log lines, where Compose and Docker said why (systemctl does not).
 */
export function restartScript(service: string): string {
  const unit = quote(unitName(service));
  return new Script().line(`systemctl restart ${unit} || { code=$?; journalctl -u ${unit} -n 50 --no-pager -o cat >&2 || true; exit "$code"; }`).toString();
}

/** Stops and removes a deployment: `down` through the unit (optionally with volumes and images), the unit, the folder. */
export function removeScript(service: string, o: { baseDir?: string; removeVolumes?: boolean; removeImages?: boolean } = {}): string {
  const dir = deploymentDir(service, o.baseDir);
  const unit = unitName(service);
  const wrapper = posix.join(dir, "compose");
  const s = new Script();
  const extra = [...(o.removeVolumes ? ["-v"] : []), ...(o.removeImages ? ["--rmi", "all"] : [])];
  if (extra.length > 0) s.line(`if [ -x ${quote(wrapper)} ]; then ${cmd(wrapper, "down", ...extra)} || true; fi`);
  s.line(
    `if [ -f ${quote(`/etc/systemd/system/${unit}`)} ]; then`,
    `  systemctl disable --now ${quote(unit)} || true`,
    `  rm -f -- ${quote(`/etc/systemd/system/${unit}`)}`,
    "  systemctl daemon-reload",
    "  systemctl reset-failed " + quote(unit) + " 2>/dev/null || true",
    "fi",
  );
  s.run("rm", "-rf", "--", dir);
  return s.toString();
}

/** Reads the recorded hash of a deployment (empty output when there is none). */
export function readHashScript(service: string, baseDir?: string): string {
  const file = hashFilePath(deploymentDir(service, baseDir));
  return new Script().line(`if [ -f ${quote(file)} ]; then cat ${quote(file)}; fi`).toString();
}

/** Lines the inspect script prints. */
const INSPECT_MARK = { file: "HOMELAB-FILE", missing: "HOMELAB-MISSING", unit: "HOMELAB-UNIT", hash: "HOMELAB-HASH" } as const;

/**
 * The script that reads back what a deployment wrote, for refresh and drift
 * checks: each file's mode and sha256 (never its content: secrets stay in the
 * container), whether the unit is active, and the recorded hash.
 */
export function inspectScript(d: Pick<ComposeDeployment, "files" | "unitName" | "dir">): string {
  const s = new Script(["set -u"]);
  for (const f of d.files) {
    const p = quote(f.path);
    s.line(
      `if [ -f ${p} ]; then printf '%s %s %s %s\\n' ${INSPECT_MARK.file} "$(stat -c %a ${p})" "$(sha256sum < ${p} | cut -d ' ' -f 1)" ${p}; ` +
        `else printf '%s %s\\n' ${INSPECT_MARK.missing} ${p}; fi`,
    );
  }
  s.line(`printf '%s %s\\n' ${INSPECT_MARK.unit} "$(systemctl is-active ${quote(d.unitName)} 2>/dev/null || true)"`);
  const hash = quote(hashFilePath(d.dir));
  s.line(`if [ -f ${hash} ]; then printf '%s %s\\n' ${INSPECT_MARK.hash} "$(cat ${hash})"; fi`);
  return s.toString();
}

/** What the inspect script found: per path its mode and digest (absent: missing), the unit's state, the recorded hash. */
export interface InspectReport {
  files: Map<string, { mode: number; sha256: string } | undefined>;
  /** `systemctl is-active`: active, inactive, failed, ... ("" when systemd did not answer). */
  unit: string;
  recordedHash: string | undefined;
}

/** Parses the inspect script's output. */
export function parseInspectOutput(stdout: string): InspectReport {
  const report: InspectReport = { files: new Map(), unit: "", recordedHash: undefined };
  for (const line of stdout.split("\n")) {
    const [mark, ...rest] = line.split(" ");
    if (mark === INSPECT_MARK.file && rest.length >= 3) {
      const [mode = "", digest = "", ...path] = rest;
      if (/^[0-7]{3,4}$/.test(mode) && /^[0-9a-f]{64}$/.test(digest)) report.files.set(path.join(" "), { mode: parseInt(mode, 8), sha256: digest });
    } else if (mark === INSPECT_MARK.missing && rest.length > 0) report.files.set(rest.join(" "), undefined);
    else if (mark === INSPECT_MARK.unit) report.unit = rest.join(" ").trim();
    else if (mark === INSPECT_MARK.hash) report.recordedHash = rest.join(" ").trim() || undefined;
  }
  return report;
}

/** What the wait script prints for each container while it waits and at the end. */
const WAIT_MARK = { ok: "HOMELAB-WAIT-OK", fail: "HOMELAB-WAIT-FAIL", timeout: "HOMELAB-WAIT-TIMEOUT" } as const;

/**
 * The script that waits until every container of the project runs (and is
 * healthy where it has a health check), polling `docker inspect` through the
 * compose labels (the same for Compose v1 and v2). A container that exits
 * with an error, restarts, or turns unhealthy past the grace time fails the
 * wait at once; on failure it prints the failing container's last log lines.
 * Exit 0 ok, 3 a container failed, 4 timeout.
 */
export function waitScript(o: { project: string; timeoutSec?: number; logLines?: number; unhealthyGraceSec?: number }): string {
  const timeout = o.timeoutSec ?? 300;
  const lines = o.logLines ?? 50;
  const grace = o.unhealthyGraceSec ?? 30;
  const s = new Script(["set -u"]);
  s.set("project", composeProjectName(o.project));
  s.line(
    `deadline=$(( $(date +%s) + ${timeout} ))`,
    `grace_until=$(( $(date +%s) + ${grace} ))`,
    "show_logs() {",
    `  printf '%s\\n' "--- last ${lines} log lines of $2 ---" >&2`,
    `  docker logs --tail ${lines} "$1" >&2 2>&1 || true`,
    `  health=$(docker inspect --format '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$1" 2>/dev/null | tail -n 5)`,
    `  if [ -n "$health" ]; then printf '%s\\n%s\\n' "--- last health check output of $2 ---" "$health" >&2; fi`,
    "}",
    "last=''",
    "while :; do",
    `  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)`,
    "  pending=''",
    "  failed=''",
    "  report=''",
    '  if [ -z "$ids" ]; then pending=\'no containers yet\'; fi',
    "  for id in $ids; do",
    `    info=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} {{.RestartCount}} {{.Name}}' "$id" 2>/dev/null) || continue`,
    '    set -- $info',
    '    svc=$1; status=$2; health=$3; code=$4; restarts=$5; name=${6#/}',
    '    report="$report $svc=$status/$health"',
    '    case "$status" in',
    '      running)',
    '        case "$health" in',
    '          none|healthy) ;;',
    '          unhealthy) if [ "$(date +%s)" -ge "$grace_until" ]; then failed="$id $name unhealthy"; else pending="$pending $svc(unhealthy)"; fi ;;',
    '          *) pending="$pending $svc($health)" ;;',
    "        esac",
    '        if [ "$restarts" -gt 0 ] && [ "$health" != healthy ] && [ "$(date +%s)" -ge "$grace_until" ]; then failed="$id $name restarting ($restarts restarts)"; fi ;;',
    '      exited|dead) if [ "$code" != 0 ]; then failed="$id $name exited with code $code"; fi ;;',
    '      restarting) failed="$id $name restarting (exit code $code)" ;;',
    '      *) pending="$pending $svc($status)" ;;',
    "    esac",
    '    if [ -n "$failed" ]; then break; fi',
    "  done",
    '  if [ -n "$failed" ]; then',
    '    set -- $failed; fid=$1; fname=$2; shift 2',
    `    printf '%s %s %s\\n' ${WAIT_MARK.fail} "$fname" "$*"`,
    '    show_logs "$fid" "$fname"',
    "    exit 3",
    "  fi",
    '  if [ -z "$pending" ]; then',
    `    printf '%s%s\\n' ${WAIT_MARK.ok} "$report"`,
    "    exit 0",
    "  fi",
    '  if [ "$pending" != "$last" ]; then printf \'waiting for:%s\\n\' "$pending"; last=$pending; fi',
    '  if [ "$(date +%s)" -ge "$deadline" ]; then',
    `    printf '%s %s\\n' ${WAIT_MARK.timeout} "$pending"`,
    "    for id in $ids; do",
    `      st=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id" 2>/dev/null || true)`,
    '      case "$st" in "running none"|"running healthy") ;; *) show_logs "$id" "$(docker inspect --format \'{{.Name}}\' "$id" 2>/dev/null | sed \'s#^/##\')" ;; esac',
    "    done",
    "    exit 4",
    "  fi",
    // Fractional sleep: coreutils and busybox both take it; health checks often pass within a second.
    "  sleep 0.5",
    "done",
  );
  return s.toString();
}

/** What waiting found. */
export interface WaitReport {
  ok: boolean;
  timedOut: boolean;
  /** Container name and reason, when one failed. */
  failed?: { container: string; reason: string };
  /** service=status/health, when ok. */
  states: string[];
}

/** Parses the wait script's output. */
export function parseWaitOutput(stdout: string, code: number): WaitReport {
  const lines = stdout.split("\n");
  const ok = lines.find((l) => l.startsWith(WAIT_MARK.ok));
  if (ok !== undefined && code === 0) return { ok: true, timedOut: false, states: ok.slice(WAIT_MARK.ok.length).trim().split(/\s+/).filter(Boolean) };
  const fail = lines.find((l) => l.startsWith(`${WAIT_MARK.fail} `));
  if (fail) {
    const [, container = "", ...reason] = fail.split(" ");
    return { ok: false, timedOut: false, failed: { container, reason: reason.join(" ") }, states: [] };
  }
  return { ok: false, timedOut: code === 4 || lines.some((l) => l.startsWith(WAIT_MARK.timeout)), states: [] };
}
