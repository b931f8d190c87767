/**
 * Installing Docker Engine and Compose inside a container, as scripts: from
 * Docker's own apt repository with pinned versions (the default on a real
 * host), or from the distribution's packages (`docker.io` + Compose), which
 * is the only way that works offline and what the sandbox uses. Each script
 * checks first and does nothing when the wanted Docker is already there.
 * Then a smoke test proves containers can start, with an image made from the
 * distribution's static busybox (no registry needed).
 */
import { Script, quote } from "./shell.ts";

/** Where Docker comes from. */
export type DockerSource = "docker" | "distribution";

/**
 * Docker's packages pinned by default (upstream versions; the apt version is
 * looked up per release, e.g. `5:28.5.2-1~debian.12~bookworm`). Moving a pin
 * is a reviewed change: that is the point of pinning.
 */
export const DEFAULT_DOCKER_VERSIONS = { docker: "28.5.2", containerd: "1.7.28", compose: "2.40.3" } as const;

/** How to install Docker. */
export interface DockerInstallOptions {
  source: DockerSource;
  /**
   * Versions to pin. For `docker`: upstream versions (defaults above). For
   * `distribution`: exact apt versions of `docker.io` and the Compose
   * package; unset means the release's own (a stable release does not move).
   */
  versions?: { docker?: string; containerd?: string; compose?: string };
  /** Docker's apt repository (default https://download.docker.com/linux). */
  repository?: string;
}

/** Markers the install script prints, parsed by deploy.ts. */
const INSTALL_MARK = { present: "HOMELAB-DOCKER-PRESENT", installed: "HOMELAB-DOCKER-INSTALLED", compose: "HOMELAB-COMPOSE" } as const;

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
    "compose_kind() { if docker compose version >/dev/null 2>&1; then echo v2; elif command -v docker-compose >/dev/null 2>&1; then echo v1; else echo none; fi; }",
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
    `printf '%s %s\\n' ${INSTALL_MARK.compose} "$(compose_kind)"`,
  );
}

/** The install script for the distribution's packages: docker.io, and Compose as the plugin where the release has one, else v1 `docker-compose`. */
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
    "if installed docker.io && want docker.io \"$PIN_ENGINE\" && [ -n \"$compose_pkg\" ] && want \"$compose_pkg\" \"$PIN_COMPOSE\" && [ \"$(compose_kind)\" != none ]; then",
    `  printf '%s docker.io %s %s %s\\n' ${INSTALL_MARK.present} "$(version_of docker.io)" "$compose_pkg" "$(version_of "$compose_pkg")"`,
    "else",
    "  apt_update",
    "  if [ -z \"$compose_pkg\" ]; then",
    "    for p in docker-compose-plugin docker-compose-v2 docker-compose; do if has_candidate \"$p\"; then compose_pkg=$p; break; fi; done",
    "  fi",
    "  if [ -z \"$compose_pkg\" ]; then echo 'no Compose package in this release (docker-compose-plugin, docker-compose-v2 or docker-compose)' >&2; exit 1; fi",
    "  engine=docker.io; if [ -n \"$PIN_ENGINE\" ]; then engine=\"docker.io=$PIN_ENGINE\"; fi",
    "  compose=$compose_pkg; if [ -n \"$PIN_COMPOSE\" ]; then compose=\"$compose_pkg=$PIN_COMPOSE\"; fi",
    // No recommends: they pull in AppArmor tools, git and more that Compose does not need.
    "  $APT install --no-install-recommends --allow-downgrades \"$engine\" \"$compose\"",
    "  if [ -n \"$PIN_ENGINE\" ] || [ -n \"$PIN_COMPOSE\" ]; then apt-mark hold docker.io \"$compose_pkg\" >/dev/null; fi",
    `  printf '%s docker.io %s %s %s\\n' ${INSTALL_MARK.installed} "$(version_of docker.io)" "$compose_pkg" "$(version_of "$compose_pkg")"`,
    "fi",
  );
  commonTail(s);
  return s;
}

/** The install script for Docker's own repository, versions pinned and held. */
function officialScript(o: DockerInstallOptions): Script {
  const v = { ...DEFAULT_DOCKER_VERSIONS, ...o.versions };
  const repo = (o.repository ?? "https://download.docker.com/linux").replace(/\/+$/, "");
  const s = new Script();
  s.comment("homelab: install Docker Engine and Compose from Docker's repository, pinned");
  commonHead(s);
  s.set("REPO", repo);
  s.set("V_DOCKER", v.docker);
  s.set("V_CONTAINERD", v.containerd);
  s.set("V_COMPOSE", v.compose);
  s.line(
    // Docker's apt versions are `[epoch:]<upstream>-<rev>~<distro>...`: match the upstream part.
    "matches() { case \"$1\" in \"$2\"-*|*:\"$2\"-*) return 0;; esac; return 1; }",
    "pick() { apt-cache madison \"$1\" | awk -v v=\"$2\" '{ s=$3; sub(/^[0-9]+:/, \"\", s); if (index(s, v \"-\") == 1) { print $3; exit } }'; }",
    "if installed docker-ce && matches \"$(version_of docker-ce)\" \"$V_DOCKER\" && installed docker-compose-plugin && matches \"$(version_of docker-compose-plugin)\" \"$V_COMPOSE\" && installed containerd.io && matches \"$(version_of containerd.io)\" \"$V_CONTAINERD\"; then",
    `  printf '%s docker-ce %s docker-compose-plugin %s\\n' ${INSTALL_MARK.present} "$(version_of docker-ce)" "$(version_of docker-compose-plugin)"`,
    "else",
    "  . /etc/os-release",
    "  case \"$ID\" in debian|ubuntu) ;; *) echo \"Docker's repository has no packages for $ID here; use the distribution's packages\" >&2; exit 1;; esac",
    "  apt_update",
    "  $APT install --no-install-recommends ca-certificates curl",
    "  install -m 0755 -d /etc/apt/keyrings",
    "  curl -fsSL \"$REPO/$ID/gpg\" -o /etc/apt/keyrings/docker.asc",
    "  chmod a+r /etc/apt/keyrings/docker.asc",
    "  printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] %s/%s %s stable\\n' \"$(dpkg --print-architecture)\" \"$REPO\" \"$ID\" \"$VERSION_CODENAME\" > /etc/apt/sources.list.d/docker.list",
    "  $APT update",
    // The distribution's Docker conflicts with Docker's own packages.
    "  for p in docker.io docker-compose docker-compose-v2 podman-docker containerd runc; do if installed \"$p\"; then $APT remove \"$p\"; fi; done",
    "  a=$(pick docker-ce \"$V_DOCKER\"); b=$(pick docker-ce-cli \"$V_DOCKER\"); c=$(pick containerd.io \"$V_CONTAINERD\"); d=$(pick docker-compose-plugin \"$V_COMPOSE\")",
    "  for x in \"docker-ce $V_DOCKER $a\" \"docker-ce-cli $V_DOCKER $b\" \"containerd.io $V_CONTAINERD $c\" \"docker-compose-plugin $V_COMPOSE $d\"; do",
    "    set -- $x",
    "    if [ -z \"${3:-}\" ]; then echo \"Docker's repository has no $1 $2 for $ID $VERSION_CODENAME: change the pinned version\" >&2; exit 1; fi",
    "  done",
    "  apt-mark unhold docker-ce docker-ce-cli containerd.io docker-compose-plugin >/dev/null 2>&1 || true",
    "  $APT install --no-install-recommends --allow-downgrades \"docker-ce=$a\" \"docker-ce-cli=$b\" \"containerd.io=$c\" \"docker-compose-plugin=$d\"",
    "  apt-mark hold docker-ce docker-ce-cli containerd.io docker-compose-plugin >/dev/null",
    `  printf '%s docker-ce %s docker-compose-plugin %s\\n' ${INSTALL_MARK.installed} "$(version_of docker-ce)" "$(version_of docker-compose-plugin)"`,
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
  compose: "v1" | "v2" | "none" | "unknown";
}

/** Parses the install script's output. */
export function parseInstallOutput(stdout: string): InstallReport {
  let alreadyPresent = false;
  let packages = "";
  let compose: InstallReport["compose"] = "unknown";
  for (const line of stdout.split("\n")) {
    if (line.startsWith(`${INSTALL_MARK.present} `)) {
      alreadyPresent = true;
      packages = line.slice(INSTALL_MARK.present.length + 1);
    } else if (line.startsWith(`${INSTALL_MARK.installed} `)) {
      packages = line.slice(INSTALL_MARK.installed.length + 1);
    } else if (line.startsWith(`${INSTALL_MARK.compose} `)) {
      const k = line.slice(INSTALL_MARK.compose.length + 1).trim();
      if (k === "v1" || k === "v2" || k === "none") compose = k;
    }
  }
  return { alreadyPresent, packages, compose };
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

/** Says what a Docker failure inside a container means, when it is a known one; undefined otherwise. */
export function explainDockerFailure(output: string): string | undefined {
  if (
    /apparmor/i.test(output) ||
    /ip_unprivileged_port_start/.test(output) ||
    /reopen fd \d+: permission denied/i.test(output) ||
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
