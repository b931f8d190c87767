/**
 * What a container will run, told before it exists: the distribution release
 * from the template chosen (`debian-13-standard_13.1-2_amd64.tar.zst` is
 * Debian 13, trixie), and, for a compose container, which Docker and which
 * Compose it will get from the environment's Docker source. For show --plan
 * and the deploy preview. Pure.
 *
 * The distributions' own packages, from their archives: Debian 12 has
 * docker.io 20.10.24 and the Python Compose 1.29.2 (`docker-compose`, v1);
 * Debian 13 has docker.io 26.1.5 (the CLI split out as `docker-cli`) and
 * Compose 2.26.1 under the old name `docker-compose` (a CLI plugin, with
 * /usr/bin/docker-compose linked to it); Debian 11 has Compose 1.25. Ubuntu
 * 22.04 and 24.04 ship Compose 2 as `docker-compose-v2`, which the install
 * prefers over their v1 `docker-compose`.
 */
import { effectivePins } from "../provision/docker-pins.ts";
import type { DockerPins } from "../provision/docker-pins.ts";

/** A distribution release as a template names it. */
export interface GuestRelease {
  distro: "debian" | "ubuntu" | "other";
  /** `13`, `24.04`; empty when the template does not say. */
  version: string;
  /** `trixie`; undefined for releases homelab does not know. */
  codename: string | undefined;
  /** `Debian 13 (trixie)`, `Ubuntu 24.04 (noble)`, `alpine-3.22-default`. */
  label: string;
}

/** What a container gets, as the preview says it. */
export interface GuestSystem {
  release: GuestRelease;
  /** Compose containers only: where Docker comes from and which versions. */
  docker?: {
    source: "docker" | "distribution";
    /** v1 (docker-compose 1.x) or v2 (2.x), or unknown for a release homelab has no facts about. */
    compose: "v1" | "v2" | "unknown";
    /** `Docker 26.1.5, Compose v2 2.26.1 (Debian's docker.io and docker-compose)`. */
    summary: string;
  };
}

const CODENAMES: Readonly<Record<string, string>> = {
  "debian 10": "buster",
  "debian 11": "bullseye",
  "debian 12": "bookworm",
  "debian 13": "trixie",
  "debian 14": "forky",
  "ubuntu 20.04": "focal",
  "ubuntu 22.04": "jammy",
  "ubuntu 24.04": "noble",
  "ubuntu 25.04": "plucky",
};

/** The distributions' own Docker per release: engine and Compose versions, from their archives. */
const DISTRIBUTION_DOCKER: Readonly<Record<string, { engine?: string; compose: "v1" | "v2"; composeVersion?: string; packages: string }>> = {
  bullseye: { engine: "20.10.5", compose: "v1", composeVersion: "1.25.0", packages: "Debian's docker.io and docker-compose" },
  bookworm: { engine: "20.10.24", compose: "v1", composeVersion: "1.29.2", packages: "Debian's docker.io and docker-compose" },
  trixie: { engine: "26.1.5", compose: "v2", composeVersion: "2.26.1", packages: "Debian's docker.io, docker-cli and docker-compose" },
  jammy: { compose: "v2", packages: "Ubuntu's docker.io and docker-compose-v2" },
  noble: { compose: "v2", packages: "Ubuntu's docker.io and docker-compose-v2" },
};

/** The release a template volid (or file name) names. Pure. */
export function templateRelease(volid: string): GuestRelease {
  const file = volid.slice(volid.indexOf("/") + 1);
  const name = file.split("_")[0] ?? file;
  const m = /^(debian|ubuntu)-(\d+(?:\.\d+)?)(?:-|$)/i.exec(name);
  if (!m) return { distro: "other", version: "", codename: undefined, label: name };
  const distro = (m[1] ?? "").toLowerCase() as "debian" | "ubuntu";
  const version = m[2] ?? "";
  const codename = CODENAMES[`${distro} ${version}`];
  const pretty = distro === "debian" ? "Debian" : "Ubuntu";
  return { distro, version, codename, label: `${pretty} ${version}${codename ? ` (${codename})` : ""}` };
}

/** The Compose major from a docker-compose-plugin version (`2.40.3-1~…` → v2). */
function composeOf(version: string): "v1" | "v2" | "unknown" {
  const major = Number(/^(?:\d+:)?(\d+)\./.exec(version)?.[1] ?? NaN);
  return major >= 2 ? "v2" : major === 1 ? "v1" : "unknown";
}

/** `5:28.5.2-1~debian.13~trixie` → `28.5.2`. */
function upstream(version: string): string {
  return version.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
}

/**
 * What a container from `template` gets; `docker` only for compose containers.
 * `pins`: the environment's `homelab:docker_versions` (Docker's repository only). Pure.
 */
export function guestSystem(template: string, docker?: { source: "docker" | "distribution"; pins?: Readonly<Record<string, Partial<DockerPins>>> }): GuestSystem {
  const release = templateRelease(template);
  if (!docker) return { release };
  if (docker.source === "docker") {
    const pins = release.codename !== undefined ? effectivePins(docker.pins)[release.codename] : undefined;
    if (!pins) {
      return { release, docker: { source: "docker", compose: "unknown", summary: `no pinned Docker versions for ${release.label}: the deploy fails unless homelab:docker_versions names them` } };
    }
    const compose = composeOf(pins.compose);
    return {
      release,
      docker: { source: "docker", compose, summary: `Docker ${upstream(pins.docker)}, Compose ${compose} ${upstream(pins.compose)}, containerd.io ${pins.containerd} (Docker's repository, pinned)` },
    };
  }
  const facts = release.codename !== undefined ? DISTRIBUTION_DOCKER[release.codename] : undefined;
  if (!facts) return { release, docker: { source: "distribution", compose: "unknown", summary: `the distribution's Docker and Compose (homelab has no facts about ${release.label})` } };
  const engine = facts.engine ? `Docker ${facts.engine}` : "Docker";
  return { release, docker: { source: "distribution", compose: facts.compose, summary: `${engine}, Compose ${facts.compose}${facts.composeVersion ? ` ${facts.composeVersion}` : ""} (${facts.packages})` } };
}

/** One short line: `Debian 13 (trixie); Docker 26.1.5, Compose v2 2.26.1 (…)`. Pure. */
export function describeGuestSystem(s: GuestSystem): string {
  return s.docker ? `${s.release.label}; ${s.docker.summary}` : s.release.label;
}
