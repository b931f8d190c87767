/**
 * Docker's own packages (`homelab:docker_source: docker`), pinned to exact
 * apt versions per distribution release. Pure data and checks: the install
 * script embeds the table, the environment's `homelab:docker_versions`
 * overrides it (validated here), the planner shows it.
 *
 * Why exact versions and not an upstream prefix looked up with `apt-cache
 * madison`: Docker's repository republishes a package under a new revision
 * when only a bundled part changes. containerd.io `1.7.28-2` is `1.7.28-1`
 * with runc 1.3.3 instead of 1.3.0 (docker/packaging's containerd release
 * workflow got a runc override on 2025-11-05 for it, commit 2057ec4), and a
 * prefix `1.7.28-` picks the newest revision, so a pin "1.7.28" silently
 * moved to the new runc. What a pin names is what gets installed.
 *
 * The runc of November 2025 (1.3.3, 1.2.8: CVE-2025-31133, CVE-2025-52565,
 * CVE-2025-52881; docker/docs "Engine 28.5.2" release notes, 2025-11-05)
 * writes sysctls through a re-opened procfs fd, which the AppArmor profile
 * of LXC containers on Proxmox nodes refuses: every container start fails
 * with "open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8:
 * permission denied" (opencontainers/runc#4968, moby/moby#51405,
 * containerd/containerd#12484). Proxmox fixed its profile in lxc-pve 6.0.5-2
 * (proxmox/lxc debian/changelog, 2025-11-13, "fix #7006: do not restrict
 * /proc or /sys if nesting is enabled"), for Proxmox VE 9; Proxmox VE 8's
 * lxc-pve (6.0.0-1) never got it. The default pins keep the fixed runc
 * (containerd.io 1.7.29-1: containerd 1.7.29 with runc 1.3.3 and
 * containerd's own fixes, containerd/containerd#12486), because going back
 * reopens three container breakouts; a node that cannot be updated pins
 * containerd.io to 1.7.28-1 (runc 1.3.0) in `homelab:docker_versions`, and
 * the deploy's error says so (`explainDockerFailure`).
 *
 * The version strings follow docker/packaging's scheme
 * (hack/scripts/gen-deb-changelog.sh: `[epoch:]<version>-<revision>~<distro>.<VERSION_ID>~<codename>`),
 * and were checked against public records of Docker's repository: docker-ce
 * `5:28.5.2-1~debian.12~bookworm`, `5:28.5.2-1~debian.13~trixie`,
 * `5:28.5.2-1~ubuntu.24.04~noble`; containerd.io `1.7.28-1`, `1.7.28-2`,
 * `1.7.29-1` with `~debian.12~bookworm` and `~debian.13~trixie`, and
 * `1.7.29-1~ubuntu.24.04~noble`; docker-compose-plugin
 * `2.40.3-1~debian.12~bookworm`, `~debian.13~trixie`, `~ubuntu.24.04~noble`.
 * Ubuntu 22.04's follow the same scheme. The install script checks that
 * each exact version is in the repository before installing anything, and
 * names the ones that are when it is not.
 */

/** The packages a pin set names: docker-ce (and docker-ce-cli, the same version), containerd.io, docker-compose-plugin. */
export interface DockerPins {
  /** docker-ce and docker-ce-cli, with Docker's epoch: `5:28.5.2-1~debian.13~trixie`. */
  docker: string;
  /** containerd.io, which also carries runc: `1.7.29-1~debian.13~trixie`. */
  containerd: string;
  /** docker-compose-plugin: `2.40.3-1~debian.13~trixie`. */
  compose: string;
}

/** The keys of a pin set, with the apt package each names (for messages). */
export const PIN_PACKAGES: Readonly<Record<keyof DockerPins, string>> = { docker: "docker-ce", containerd: "containerd.io", compose: "docker-compose-plugin" };

/** Releases Docker's repository builds for that homelab has pins for: codename → distribution and VERSION_ID. */
export const DOCKER_RELEASES: Readonly<Record<string, { distro: "debian" | "ubuntu"; version: string }>> = {
  bookworm: { distro: "debian", version: "12" },
  trixie: { distro: "debian", version: "13" },
  jammy: { distro: "ubuntu", version: "22.04" },
  noble: { distro: "ubuntu", version: "24.04" },
};

/**
 * The default pins: Docker Engine 28.5.2, containerd.io 1.7.29-1 (runc
 * 1.3.3), Compose 2.40.3. Moving one is a reviewed change: that is the
 * point of pinning.
 */
export const DEFAULT_DOCKER_PINS: Readonly<Record<string, DockerPins>> = {
  bookworm: { docker: "5:28.5.2-1~debian.12~bookworm", containerd: "1.7.29-1~debian.12~bookworm", compose: "2.40.3-1~debian.12~bookworm" },
  trixie: { docker: "5:28.5.2-1~debian.13~trixie", containerd: "1.7.29-1~debian.13~trixie", compose: "2.40.3-1~debian.13~trixie" },
  jammy: { docker: "5:28.5.2-1~ubuntu.22.04~jammy", containerd: "1.7.29-1~ubuntu.22.04~jammy", compose: "2.40.3-1~ubuntu.22.04~jammy" },
  noble: { docker: "5:28.5.2-1~ubuntu.24.04~noble", containerd: "1.7.29-1~ubuntu.24.04~noble", compose: "2.40.3-1~ubuntu.24.04~noble" },
};

/**
 * containerd.io per release from before the runc that Proxmox VE 8's
 * AppArmor profile refuses (1.7.28-1: runc 1.3.0). Only for nodes that
 * cannot get lxc-pve 6.0.5-2 or newer: it gives up runc's fixes for
 * CVE-2025-31133, CVE-2025-52565 and CVE-2025-52881.
 */
export const CONTAINERD_BEFORE_RUNC_1_3_3: Readonly<Record<string, string>> = {
  bookworm: "1.7.28-1~debian.12~bookworm",
  trixie: "1.7.28-1~debian.13~trixie",
  jammy: "1.7.28-1~ubuntu.22.04~jammy",
  noble: "1.7.28-1~ubuntu.24.04~noble",
};

/** Docker's version suffix for a release, `~debian.13~trixie`; undefined for a codename homelab does not know. */
export function releaseSuffix(codename: string): string | undefined {
  const r = DOCKER_RELEASES[codename];
  return r ? `~${r.distro}.${r.version}~${codename}` : undefined;
}

/** The pins in force: the defaults with the environment's overrides on top (an override may name a release without defaults when it gives all three). Pure. */
export function effectivePins(overrides: Readonly<Record<string, Partial<DockerPins>>> = {}): Record<string, DockerPins> {
  const out: Record<string, DockerPins> = {};
  for (const [codename, pins] of Object.entries(DEFAULT_DOCKER_PINS)) out[codename] = { ...pins };
  for (const [codename, o] of Object.entries(overrides)) {
    const base = out[codename];
    if (base) out[codename] = { ...base, ...withoutUndefined(o) };
    else if (o.docker !== undefined && o.containerd !== undefined && o.compose !== undefined) out[codename] = { docker: o.docker, containerd: o.containerd, compose: o.compose };
  }
  return out;
}

function withoutUndefined(o: Partial<DockerPins>): Partial<DockerPins> {
  const out: Partial<DockerPins> = {};
  for (const k of ["docker", "containerd", "compose"] as const) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** A Debian version string: `[epoch:]upstream[-revision]`, as apt takes it after `pkg=`. */
const APT_VERSION = /^(\d+:)?[0-9][A-Za-z0-9.+~-]*$/;
/** A release codename as /etc/os-release's VERSION_CODENAME gives it. */
export const CODENAME = /^[a-z][a-z0-9]*$/;

/** What is wrong with one pinned version (undefined when it is fine), with a suggestion. Pure. */
export function checkPin(codename: string, key: keyof DockerPins, version: string): { message: string; hint?: string } | undefined {
  const pkg = PIN_PACKAGES[key];
  const example = DEFAULT_DOCKER_PINS[codename]?.[key] ?? DEFAULT_DOCKER_PINS["trixie"]?.[key] ?? "";
  if (!APT_VERSION.test(version)) {
    return { message: `"${version}" is not an apt version of ${pkg}`, hint: `write the exact version apt shows (apt-cache madison ${pkg}), e.g. ${example}` };
  }
  if (key === "docker" && !version.startsWith("5:")) {
    return { message: `"${version}" lacks Docker's epoch: apt knows docker-ce's versions as 5:<version>`, hint: `write 5:${version}` };
  }
  const suffix = releaseSuffix(codename);
  if (suffix !== undefined && !version.endsWith(suffix)) {
    const other = /~([a-z]+)\.([0-9.]+)~([a-z]+)$/.exec(version);
    const hint = other ? `this version is built for ${other[3] ?? "another release"}; ${codename}'s end in ${suffix}, e.g. ${example}` : `Docker's packages for ${codename} end in ${suffix} (a bare upstream version matches no package), e.g. ${example}`;
    return { message: `${pkg} "${version}" is not a version for ${codename}`, hint };
  }
  return undefined;
}

/**
 * Whether a containerd.io version bundles the runc that unfixed Proxmox
 * nodes refuse (1.7.28-2 and later; 2.x too). Pure; versions it cannot read
 * count as affected, since the advice is harmless then.
 */
export function bundlesRunc133(containerdVersion: string): boolean {
  const m = /^(?:\d+:)?(\d+)\.(\d+)\.(\d+)-(\d+)/.exec(containerdVersion);
  if (!m) return true;
  const [maj, min, patch, rev] = m.slice(1).map(Number) as [number, number, number, number];
  if (maj !== 1) return maj > 1;
  if (min !== 7) return min > 7;
  if (patch !== 28) return patch > 28;
  return rev >= 2;
}
