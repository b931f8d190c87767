/**
 * Installing Docker Engine and Compose inside a container, as scripts: from
 * Docker's own apt repository at exact versions per release (the default on
 * a real host; see docker-pins.ts), or from the distribution's packages
 * (`docker.io` + Compose), which is the only way that works offline and what
 * the sandbox uses. Each script checks first and does nothing when the
 * wanted Docker is already there. Then a smoke test proves containers can
 * start, with an image made from the distribution's static busybox (no
 * registry needed).
 *
 * Compose v1 or v2 is told by the version Compose reports, not by package
 * name: Debian 13's `docker-compose` package is Compose 2 (a CLI plugin in
 * /usr/libexec/docker/cli-plugins with /usr/bin/docker-compose linked to it),
 * Debian 12's is the Python Compose 1.29.
 */
import { CODENAME, CONTAINERD_BEFORE_RUNC_1_3_3, DEFAULT_DOCKER_PINS } from "./docker-pins.ts";
import type { DockerPins } from "./docker-pins.ts";
import { Script, quote } from "./shell.ts";

/** Where Docker comes from. */
export type DockerSource = "docker" | "distribution";

/** How to install Docker. */
export interface DockerInstallOptions {
  source: DockerSource;
  /**
   * For `distribution`: exact apt versions of `docker.io` (and `docker-cli`,
   * built from the same source) and the Compose package; unset means the
   * release's own (a stable release does not move).
   */
  versions?: { docker?: string; compose?: string };
  /** For `docker`: exact versions per release codename (default DEFAULT_DOCKER_PINS). */
  pins?: Readonly<Record<string, DockerPins>>;
  /** Docker's apt repository (default https://download.docker.com/linux). */
  repository?: string;
}

/** Markers the install script prints, parsed by deploy.ts. */
const INSTALL_MARK = {
  present: "HOMELAB-DOCKER-PRESENT",
  installed: "HOMELAB-DOCKER-INSTALLED",
  compose: "HOMELAB-COMPOSE",
  os: "HOMELAB-OS",
} as const;

const APT = "apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -q";

function commonHead(s: Script): void {
  s.line(
    "export DEBIAN_FRONTEND=noninteractive",
    `APT=${quote(APT)}`,
    "installed() { [ \"$(dpkg-query -W -f='${Status}' \"$1\" 2>/dev/null)\" = 'install ok installed' ]; }",
    "version_of() { dpkg-query -W -f='${Version}' \"$1\" 2>/dev/null || true; }",
    "candidate() { apt-cache policy \"$1\" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }",
    "has_candidate() { c=$(candidate \"$1\"); [ -n \"$c\" ] && [ \"$c\" != '(none)' ]; }",
    // The first apt-get update of a fresh container; later runs skip it when lists are recent.
    "apt_update() { if [ -z \"$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -60 2>/dev/null | head -n 1)\" ]; then $APT update; fi; }",
    // The version Compose reports, plugin first: v2 prints 2.x (some builds v2.x), v1 prints 1.x.
    "compose_version() { v=$(docker compose version --short 2>/dev/null) || v=''; if [ -z \"$v\" ]; then v=$(docker-compose version --short 2>/dev/null) || v=''; fi; printf '%s' \"${v#v}\" | head -n 1; }",
    "compose_kind() { case \"$(compose_version)\" in 1.*) echo v1 ;; [2-9].*|[1-9][0-9]*.*) echo v2 ;; *) echo none ;; esac; }",
    "os_id=''; os_codename=''",
    "if [ -r /etc/os-release ]; then os_id=$(. /etc/os-release && printf '%s' \"${ID:-}\"); os_codename=$(. /etc/os-release && printf '%s' \"${VERSION_CODENAME:-}\"); fi",
    `printf '%s %s %s\\n' ${INSTALL_MARK.os} "\${os_id:-unknown}" "\${os_codename:-unknown}"`,
  );
}

function commonTail(s: Script): void {
  s.line(
    "systemctl is-enabled --quiet docker.service 2>/dev/null || systemctl enable --quiet docker.service 2>/dev/null || true",
    "systemctl is-active --quiet docker.service || systemctl start docker.service",
    "i=0",
    "until docker info >/dev/null 2>&1; do",
    "  i=$((i + 1))",
    "  if [ \"$i\" -ge 60 ]; then",
    "    echo 'dockerd did not answer within 60 s; its log:' >&2",
    "    journalctl -u docker.service -n 40 --no-pager -o cat >&2 || true",
    "    exit 1",
    "  fi",
    "  sleep 1",
    "done",
    `printf '%s %s %s\\n' ${INSTALL_MARK.compose} "$(compose_kind)" "$(compose_version)"`,
  );
}

/**
 * The install script for the distribution's packages: docker.io, the docker
 * CLI where the release ships it apart (Debian 13: docker-cli, only a
 * recommendation of docker.io), and Compose as the plugin where the release
 * names one so, else `docker-compose` (Compose 2 on Debian 13, 1.29 on 12).
 */
function distributionScript(o: DockerInstallOptions): Script {
  const s = new Script();
  s.comment("homelab: install Docker Engine and Compose from the distribution's packages");
  commonHead(s);
  const pinEngine = o.versions?.docker;
  const pinCompose = o.versions?.compose;
  s.set("PIN_ENGINE", pinEngine ?? "");
  s.set("PIN_COMPOSE", pinCompose ?? "");
  s.line(
    "want() { [ -z \"$2\" ] || [ \"$(version_of \"$1\")\" = \"$2\" ]; }",
    "compose_pkg=''",
    "for p in docker-compose-plugin docker-compose-v2 docker-compose; do if installed \"$p\"; then compose_pkg=$p; break; fi; done",
    // Where the CLI is its own package, it must be there (and at the engine's version when pinned).
    "cli_ok() { if installed docker-cli; then want docker-cli \"$PIN_ENGINE\"; else docker --version >/dev/null 2>&1; fi; }",
    "if installed docker.io && want docker.io \"$PIN_ENGINE\" && cli_ok && [ -n \"$compose_pkg\" ] && want \"$compose_pkg\" \"$PIN_COMPOSE\" && [ \"$(compose_kind)\" != none ]; then",
    `  printf '%s docker.io %s %s %s\\n' ${INSTALL_MARK.present} "$(version_of docker.io)" "$compose_pkg" "$(version_of "$compose_pkg")"`,
    "else",
    "  apt_update",
    "  if [ -z \"$compose_pkg\" ]; then",
    "    for p in docker-compose-plugin docker-compose-v2 docker-compose; do if has_candidate \"$p\"; then compose_pkg=$p; break; fi; done",
    "  fi",
    "  if [ -z \"$compose_pkg\" ]; then echo 'no Compose package in this release (docker-compose-plugin, docker-compose-v2 or docker-compose)' >&2; exit 1; fi",
    "  engine=docker.io; if [ -n \"$PIN_ENGINE\" ]; then engine=\"docker.io=$PIN_ENGINE\"; fi",
    "  cli=''; held=''",
    "  if has_candidate docker-cli; then cli=docker-cli; held=docker-cli; if [ -n \"$PIN_ENGINE\" ]; then cli=\"docker-cli=$PIN_ENGINE\"; fi; fi",
    "  compose=$compose_pkg; if [ -n \"$PIN_COMPOSE\" ]; then compose=\"$compose_pkg=$PIN_COMPOSE\"; fi",
    // No recommends: they pull in AppArmor tools, git and more that Compose does not need.
    "  $APT install --no-install-recommends --allow-downgrades \"$engine\" $cli \"$compose\"",
    "  if [ -n \"$PIN_ENGINE\" ] || [ -n \"$PIN_COMPOSE\" ]; then apt-mark hold docker.io $held \"$compose_pkg\" >/dev/null; fi",
    `  printf '%s docker.io %s %s %s\\n' ${INSTALL_MARK.installed} "$(version_of docker.io)" "$compose_pkg" "$(version_of "$compose_pkg")"`,
    "fi",
  );
  commonTail(s);
  return s;
}

/** The shell `case` choosing the pinned versions by the release's codename. */
function pinCases(pins: Readonly<Record<string, DockerPins>>): string[] {
  const lines = ['case "$os_codename" in'];
  for (const [codename, p] of Object.entries(pins).sort(([a], [b]) => (a < b ? -1 : 1))) {
    lines.push(`  ${quote(codename)}) V_DOCKER=${quote(p.docker)}; V_CONTAINERD=${quote(p.containerd)}; V_COMPOSE=${quote(p.compose)} ;;`);
  }
  lines.push(
    '  *) echo "homelab has no pinned Docker versions for $os_id ${os_codename:-(no codename)}: add them to the environment as homelab:docker_versions: { ${os_codename:-codename}: { docker: ..., containerd: ..., compose: ... } } (exact versions: apt-cache madison docker-ce), or use docker_source: distribution" >&2; exit 1 ;;',
    "esac",
  );
  return lines;
}

/** The install script for Docker's own repository: exact versions for the container's release, installed and held. */
function officialScript(o: DockerInstallOptions): Script {
  const repo = (o.repository ?? "https://download.docker.com/linux").replace(/\/+$/, "");
  const s = new Script();
  s.comment("homelab: install Docker Engine and Compose from Docker's repository, at exact versions");
  commonHead(s);
  s.set("REPO", repo);
  s.line(
    "case \"$os_id\" in debian|ubuntu) ;; *) echo \"Docker's repository has no packages for ${os_id:-this system} here; use the distribution's packages (homelab:docker_source: distribution)\" >&2; exit 1;; esac",
    ...pinCases(o.pins ?? DEFAULT_DOCKER_PINS),
    "at() { installed \"$1\" && [ \"$(version_of \"$1\")\" = \"$2\" ]; }",
    // Exactly this version in the repository's index (madison's third column), not a prefix of it.
    "available() { apt-cache madison \"$1\" 2>/dev/null | awk -v v=\"$2\" '$3 == v { found = 1 } END { exit found ? 0 : 1 }'; }",
    "if at docker-ce \"$V_DOCKER\" && at docker-ce-cli \"$V_DOCKER\" && at containerd.io \"$V_CONTAINERD\" && at docker-compose-plugin \"$V_COMPOSE\"; then",
    `  printf '%s docker-ce %s containerd.io %s docker-compose-plugin %s\\n' ${INSTALL_MARK.present} "$V_DOCKER" "$V_CONTAINERD" "$V_COMPOSE"`,
    "else",
    "  apt_update",
    "  $APT install --no-install-recommends ca-certificates curl",
    "  install -m 0755 -d /etc/apt/keyrings",
    "  curl -fsSL \"$REPO/$os_id/gpg\" -o /etc/apt/keyrings/docker.asc",
    "  chmod a+r /etc/apt/keyrings/docker.asc",
    "  printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] %s/%s %s stable\\n' \"$(dpkg --print-architecture)\" \"$REPO\" \"$os_id\" \"$os_codename\" > /etc/apt/sources.list.d/docker.list",
    "  $APT update",
    "  for x in \"docker-ce $V_DOCKER docker\" \"docker-ce-cli $V_DOCKER docker\" \"containerd.io $V_CONTAINERD containerd\" \"docker-compose-plugin $V_COMPOSE compose\"; do",
    "    set -- $x",
    "    if ! available \"$1\" \"$2\"; then",
    "      has=$(apt-cache madison \"$1\" 2>/dev/null | awk '{print $3}' | head -n 5 | tr '\\n' ' ')",
    "      echo \"Docker's repository has no $1 $2 for $os_id $os_codename (newest there: ${has:-none}): change homelab:docker_versions.$os_codename.$3 to one of them\" >&2",
    "      exit 1",
    "    fi",
    "  done",
    // The distribution's Docker conflicts with Docker's own packages.
    "  for p in docker.io docker-cli docker-compose docker-compose-v2 podman-docker containerd runc; do if installed \"$p\"; then $APT remove \"$p\"; fi; done",
    "  apt-mark unhold docker-ce docker-ce-cli containerd.io docker-compose-plugin >/dev/null 2>&1 || true",
    "  $APT install --no-install-recommends --allow-downgrades \"docker-ce=$V_DOCKER\" \"docker-ce-cli=$V_DOCKER\" \"containerd.io=$V_CONTAINERD\" \"docker-compose-plugin=$V_COMPOSE\"",
    "  apt-mark hold docker-ce docker-ce-cli containerd.io docker-compose-plugin >/dev/null",
    `  printf '%s docker-ce %s containerd.io %s docker-compose-plugin %s\\n' ${INSTALL_MARK.installed} "$(version_of docker-ce)" "$(version_of containerd.io)" "$(version_of docker-compose-plugin)"`,
    "fi",
  );
  commonTail(s);
  return s;
}

/** The script that installs Docker Engine and Compose (does nothing when the wanted versions are there) and starts dockerd. */
export function installDockerScript(o: DockerInstallOptions): string {
  return (o.source === "distribution" ? distributionScript(o) : officialScript(o)).toString();
}

/** What the install script reported. */
export interface InstallReport {
  alreadyPresent: boolean;
  /** e.g. `docker.io 20.10.24+dfsg1-1+deb12u1+b6 docker-compose 1.29.2-3`. */
  packages: string;
  /** v1 or v2 as the version Compose reports says. */
  compose: "v1" | "v2" | "none" | "unknown";
  /** What Compose reports, e.g. `1.29.2` or `2.26.1` (empty when unknown). */
  composeVersion: string;
  /** The container's /etc/os-release ID and VERSION_CODENAME (empty when unknown). */
  os: { id: string; codename: string };
}

/** Compose v1 or v2 from the version it reports (`docker compose version --short`, `docker-compose version --short`, or their long forms). Pure. */
export function composeKindOf(versionText: string): { kind: "v1" | "v2" | "none"; version: string } {
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(versionText);
  if (!m) return { kind: "none", version: "" };
  const version = m[0].replace(/^v/, "");
  return { kind: Number(m[1]) >= 2 ? "v2" : Number(m[1]) === 1 ? "v1" : "none", version };
}

/** Parses the install script's output. */
export function parseInstallOutput(stdout: string): InstallReport {
  const report: InstallReport = { alreadyPresent: false, packages: "", compose: "unknown", composeVersion: "", os: { id: "", codename: "" } };
  for (const line of stdout.split("\n")) {
    if (line.startsWith(`${INSTALL_MARK.present} `)) {
      report.alreadyPresent = true;
      report.packages = line.slice(INSTALL_MARK.present.length + 1).trim();
    } else if (line.startsWith(`${INSTALL_MARK.installed} `)) {
      report.packages = line.slice(INSTALL_MARK.installed.length + 1).trim();
    } else if (line.startsWith(`${INSTALL_MARK.compose} `)) {
      const [k = "", v = ""] = line.slice(INSTALL_MARK.compose.length + 1).trim().split(/\s+/);
      if (k === "v1" || k === "v2" || k === "none") report.compose = k;
      // The reported version decides where the script's own reading is missing.
      const byVersion = composeKindOf(v);
      if (v !== "" && byVersion.kind !== "none") {
        report.composeVersion = byVersion.version;
        if (report.compose === "unknown") report.compose = byVersion.kind;
      }
    } else if (line.startsWith(`${INSTALL_MARK.os} `)) {
      const [id = "", codename = ""] = line.slice(INSTALL_MARK.os.length + 1).trim().split(/\s+/);
      report.os = { id: id === "unknown" ? "" : id, codename: codename === "unknown" ? "" : codename };
    }
  }
  return report;
}

const PROBE_MARK = "HOMELAB-PROBE";

/** A script that says the container's release and where its Docker came from, for advice on a failure. */
export function probeScript(): string {
  return new Script()
    .line(
      "codename=$(. /etc/os-release 2>/dev/null && printf '%s' \"${VERSION_CODENAME:-}\")",
      "pkg_ok() { [ \"$(dpkg-query -W -f='${Status}' \"$1\" 2>/dev/null)\" = 'install ok installed' ]; }",
      "if pkg_ok containerd.io; then src=docker; elif pkg_ok docker.io; then src=distribution; else src=unknown; fi",
      `printf '%s %s %s\\n' ${PROBE_MARK} "\${codename:-unknown}" "$src"`,
    )
    .toString();
}

/** Parses the probe script's output. */
export function parseProbeOutput(stdout: string): { codename?: string; source?: DockerSource } {
  const line = stdout.split("\n").find((l) => l.startsWith(`${PROBE_MARK} `));
  if (!line) return {};
  const [, codename = "", source = ""] = line.trim().split(/\s+/);
  return { ...(codename !== "unknown" && CODENAME.test(codename) ? { codename } : {}), ...(source === "docker" || source === "distribution" ? { source } : {}) };
}

/** The image the smoke test runs: the distribution's static busybox, imported (no registry involved). */
export const SMOKE_IMAGE = "homelab/smoke:busybox";
/** What the smoke container prints when it ran. */
const SMOKE_OK = "homelab-smoke-ok";
/** Where the guest remembers the Docker version the smoke test passed with. */
const SMOKE_MARK = "/var/lib/homelab/docker-smoke-ok";

/**
 * The smoke test: makes a tiny image from busybox-static (installing it from
 * the distribution when missing) with `docker import`, then `docker run --rm`
 * it on the default bridge network, which is where the runc/AppArmor and
 * nesting failures show.
 */
export function smokeTestScript(mark: string = SMOKE_MARK): string {
  const s = new Script();
  s.comment("homelab: can Docker start a container here?");
  s.set("MARK", mark);
  s.line(
    "export DEBIAN_FRONTEND=noninteractive",
    // Once it passed with this Docker, an update need not prove it again (1-2 s each time).
    "ver=$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)",
    `if [ -n "$ver" ] && [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$ver" ]; then echo "${SMOKE_OK} (passed before with Docker $ver)"; exit 0; fi`,
    `if ! docker image inspect ${quote(SMOKE_IMAGE)} >/dev/null 2>&1; then`,
    "  if [ \"$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)\" != 'install ok installed' ]; then",
    `    ${APT} install --no-install-recommends busybox-static >/dev/null || { ${APT} update >/dev/null && ${APT} install --no-install-recommends busybox-static >/dev/null; }`,
    "  fi",
    "  tmp=$(mktemp -d)",
    "  mkdir -p \"$tmp/bin\"",
    "  cp /bin/busybox \"$tmp/bin/busybox\"",
    `  tar -C "$tmp" -c . | docker import -c 'CMD ["/bin/busybox", "true"]' - ${quote(SMOKE_IMAGE)} >/dev/null`,
    "  rm -rf \"$tmp\"",
    "fi",
    `out=$(docker run --rm ${quote(SMOKE_IMAGE)} /bin/busybox echo ${quote(SMOKE_OK)} 2>&1) || { printf '%s\\n' "$out" >&2; exit 1; }`,
    `case "$out" in *${SMOKE_OK}*) echo "$out" ;; *) printf 'unexpected output: %s\\n' "$out" >&2; exit 1 ;; esac`,
    "if [ -n \"$ver\" ]; then mkdir -p \"$(dirname \"$MARK\")\" && printf '%s\\n' \"$ver\" > \"$MARK\"; fi",
  );
  return s.toString();
}

/** The message for the runc/AppArmor breakage in unprivileged Proxmox containers. */
export const RUNC_APPARMOR_HINT =
  "Docker in an unprivileged Proxmox container hit the runc/AppArmor issue: set features nesting=1,keyctl=1 (keyctl needs root@pam) or use a privileged container";

/** What is known about the container when a Docker failure is explained. */
export interface FailureContext {
  /** Where its Docker came from. */
  source?: DockerSource;
  /** Its release codename (/etc/os-release VERSION_CODENAME), when known. */
  codename?: string;
}

/**
 * runc 1.3.3's fix for CVE-2025-52881 on a Proxmox node whose AppArmor
 * profile predates lxc-pve 6.0.5-2: the exact error text, as Docker prints it.
 */
const RUNC_SYSCTL_REFUSED = /open sysctl [\w.]+ file: reopen fd \d+: permission denied|ip_unprivileged_port_start[^\n]*permission denied/i;

/** What to do when the node's AppArmor refuses runc 1.3.3's sysctl writes (see docker-pins.ts for the history). Pure. */
export function runcSysctlHint(ctx: FailureContext = {}): string {
  const head =
    "the Proxmox node's AppArmor profile refuses how runc 1.3.3 and later (containerd.io 1.7.28-2 and later: the fix for CVE-2025-52881) writes sysctls, so no container can start: " +
    "update lxc-pve on the node to 6.0.5-2 or newer (Proxmox VE 9: apt update && apt full-upgrade on the node), keep features nesting=1 on the container, restart it and deploy again";
  if (ctx.source === "distribution") {
    return `${head}; where the node cannot be updated (Proxmox VE 8), use Docker's repository (homelab:docker_source: docker) with containerd.io pinned before 1.7.28-2 in homelab:docker_versions (it gives up runc's container-breakout fixes)`;
  }
  const codename = ctx.codename !== undefined && ctx.codename !== "" ? ctx.codename : undefined;
  const known = codename !== undefined ? CONTAINERD_BEFORE_RUNC_1_3_3[codename] : undefined;
  const pin = known !== undefined && codename !== undefined
    ? `homelab:docker_versions: { ${codename}: { containerd: "${known}" } }`
    : `homelab:docker_versions: { <codename>: { containerd: "1.7.28-1~<distro>.<version>~<codename>" } } (e.g. trixie: "${CONTAINERD_BEFORE_RUNC_1_3_3["trixie"] ?? ""}")`;
  return `${head}; where the node cannot be updated (Proxmox VE 8), pin containerd.io to a version before 1.7.28-2 in the environment, ${pin}, which gives up runc's fixes for CVE-2025-31133, CVE-2025-52565 and CVE-2025-52881`;
}

/** Says what a Docker failure inside a container means, when it is a known one; undefined otherwise. */
export function explainDockerFailure(output: string, ctx: FailureContext = {}): string | undefined {
  if (RUNC_SYSCTL_REFUSED.test(output)) return runcSysctlHint(ctx);
  if (
    /apparmor/i.test(output) ||
    /runc (create|run|init)? ?failed[^\n]*(permission denied|operation not permitted)/i.test(output) ||
    /OCI runtime (create|exec) failed[^\n]*(permission denied|operation not permitted)/i.test(output)
  ) {
    return RUNC_APPARMOR_HINT;
  }
  if (/cgroup[^\n]*(read-only file system|no such file|not mounted)|failed to mount overlay[^\n]*operation not permitted|mount[^\n]*overlay[^\n]*permission denied/i.test(output)) {
    return "Docker needs nesting in a container: set features nesting=1 on it (an API token can set nesting) and restart it";
  }
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|dockerd did not answer/i.test(output)) {
    return "dockerd is not running in the container: see `journalctl -u docker` there; in an LXC container Docker needs features nesting=1";
  }
  return undefined;
}
