/**
 * Docker-ready bases: a container template per node holding Docker and
 * Compose exactly as provisioning installs them, built once and cloned for
 * every compose container, so a first deploy, a replace or a recreate does
 * not install Docker again. Its identity is a content key of what it is made
 * from (the distribution template, privilege, Docker's source and pinned
 * versions, the environment's SSH key, this recipe's version): a change of
 * any of them makes a new base; containers already cloned are untouched.
 * Here as data: the key, the names and tags, and the script that cleans a
 * built base of what must not be shared (SSH host keys, machine-id, logs,
 * apt lists) and installs what makes every clone its own at first boot.
 * Pure.
 */
import { createHash } from "node:crypto";
import type { ClusterResource } from "../proxmox/cluster.ts";
import { parseTags } from "../proxmox/lxc-format.ts";
import type { DockerPins } from "./docker-pins.ts";
import { Script } from "./shell.ts";

/** Bumped when the recipe (the cleaning, the first-boot unit) changes: every base is then rebuilt. */
export const BASE_RECIPE = "homelab-base-v2";

/** Tag of every base; each also carries `hlbase-<key>`. */
export const BASE_TAG = "homelab-base";

/** The root disk of a base (GB): clones grow from it, so it is small. */
export const BASE_DISK_GB = 2;

/** What a base is made from. */
export interface BaseSpec {
  /** The distribution template volid. */
  template: string;
  unprivileged: boolean;
  dockerSource: "docker" | "distribution";
  /** Docker's repository: the exact versions for the template's release. */
  pins?: DockerPins | undefined;
  /** The environment's SSH public key, baked into the base (Proxmox takes keys only at create, not at clone). */
  sshPublicKey: string;
}

/** The base's content key: 16 hex characters of the SHA-256 of its inputs. Pure. */
export function baseKey(spec: BaseSpec): string {
  const text = JSON.stringify([BASE_RECIPE, spec.template, spec.unprivileged, spec.dockerSource, spec.pins ?? null, spec.sshPublicKey.trim()]);
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The tag that names a base's key (Proxmox tags: lowercase letters, digits, `-`). Pure. */
export function baseKeyTag(key: string): string {
  return `hlbase-${key}`;
}

/** The key a base's tags name; undefined for a guest that is not a base. Pure. */
export function keyOfTags(tags: readonly string[]): string | undefined {
  if (!tags.includes(BASE_TAG)) return undefined;
  return tags.find((t) => t.startsWith("hlbase-"))?.slice("hlbase-".length);
}

/** The base template with this key on the node among the cluster's resources (found by its tags). Pure. */
export function findBaseResource(resources: readonly ClusterResource[], node: string, key: string): ClusterResource | undefined {
  return resources.find((r) => r.type === "lxc" && r.node === node && r.template === true && r.vmid !== undefined && keyOfTags(parseTags(r.tags)) === key);
}

/** The hostname of a base's builder container. */
export function baseHostname(key: string): string {
  return `homelab-base-${key.slice(0, 8)}`;
}

/** The notes of a base: what it is made from, so a human knows what it is. Pure. */
export function baseDescription(spec: BaseSpec, key: string, docker: string, builtAt: Date): string {
  return [
    `Docker-ready base of homelab (key ${key}): ${spec.template}, ${spec.unprivileged ? "unprivileged" : "privileged"}, ${docker} from ${spec.dockerSource === "docker" ? "Docker's repository" : "the distribution"}, built ${builtAt.toISOString()}.`,
    "homelab clones it for compose containers; `homelab bases --prune` removes bases no service uses.",
  ].join("\n");
}

/** A unit that gives a clone its own SSH host keys before sshd starts (Proxmox does not regenerate them on clone). */
const FIRSTBOOT_UNIT = `[Unit]
Description=homelab: this container's own SSH host keys (a clone of a base has none)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service sshd.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
`;

/**
 * Cleans a built base of what must not be shared by its clones, and installs the first-boot
 * unit: SSH host keys removed (each clone makes its own at first boot), machine-id emptied
 * (systemd makes a new one at a clone's boot and keeps it), apt lists and caches, logs and shell history gone;
 * Docker stopped with its containers removed (images stay: the smoke test's is small).
 */
export function cleanBaseScript(): string {
  const s = new Script(["set -eu"]);
  s.comment("homelab: clean a Docker-ready base before it becomes a template");
  s.line(
    "if command -v docker >/dev/null 2>&1; then docker ps -aq | xargs -r docker rm -f >/dev/null || true; fi",
    "systemctl stop docker.service docker.socket containerd.service 2>/dev/null || true",
  );
  s.writeBase64("/etc/systemd/system/homelab-host-keys.service", FIRSTBOOT_UNIT);
  s.line(
    "systemctl daemon-reload",
    "systemctl enable --quiet homelab-host-keys.service",
    "rm -f /etc/ssh/ssh_host_*",
    // Empty: systemd gives each clone a new id at boot and commits it. Not "uninitialized": that makes the boot a
    // first boot, which applies every unit preset, and Debian's "enable *" turns on systemd-networkd-wait-online
    // (two minutes' wait at every boot of a container whose network LXC sets up).
    ": > /etc/machine-id",
    "rm -f /var/lib/dbus/machine-id",
    "apt-get clean",
    "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/tmp/*",
    "rm -f /etc/docker/key.json",
    "find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null || true",
    "rm -rf /var/log/journal/*",
    "rm -f /root/.bash_history",
    "sync",
  );
  return s.toString();
}
