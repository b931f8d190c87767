import { join } from "node:path";
import { z } from "zod";
import { checkConstraint } from "../../util/versions.ts";
import { isValidGlob } from "../../util/glob.ts";
import { HOST_TAG } from "../environment.ts";
import { loadYamlFile } from "../source.ts";
import { insideServiceDir } from "../paths.ts";
import { defineResourceType } from "./define.ts";
import { envFileOf } from "../homelab-dir.ts";
import { didYouMean } from "../../util/suggest.ts";
import { IPV4, IPV4_CIDR, STORAGE_ID } from "../value-formats.ts";

const PORT_MAPPING = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/;
/** Proxmox's hostname rule for containers: a DNS name. */
const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;

/** A volume's name: it identifies the volume across rebuilds, and `docker.volumes_on` refers to it. */
const VOLUME_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
/** Paths inside the container a volume or bind mount may not cover: the system's own. */
const SYSTEM_PATHS = ["/proc", "/sys", "/dev", "/run", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/boot"];

/** Why a mount path is unusable (absolute, normal, not a system path), or undefined when it is fine. Pure. */
export function mountPathProblem(path: string): string | undefined {
  if (!path.startsWith("/")) return "must be an absolute path, e.g. /srv/data";
  if (path === "/") return "cannot be / (the container's root is its root disk; use a folder such as /srv/data)";
  if (/\/\/|\/\.\.?(\/|$)|\/$/.test(path)) return "must be a normal path: no //, . or .. parts and no trailing /";
  if (/[,=\s]/.test(path)) return "cannot contain commas, '=' or spaces (Proxmox's mount point format)";
  const system = SYSTEM_PATHS.find((p) => path === p || path.startsWith(`${p}/`));
  if (system) return `cannot be under ${system}, which the container's system needs`;
  return undefined;
}

/** The compose named volumes a file declares, with what makes one unplaceable (external, another driver). */
function namedVolumes(data: unknown): { name: string; problem: string | undefined }[] {
  const volumes = data !== null && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>)["volumes"] : undefined;
  if (volumes === null || typeof volumes !== "object" || Array.isArray(volumes)) return [];
  return Object.entries(volumes as Record<string, unknown>).map(([name, def]) => {
    const d = def !== null && typeof def === "object" && !Array.isArray(def) ? (def as Record<string, unknown>) : {};
    if (d["external"] === true || (d["external"] !== null && typeof d["external"] === "object")) return { name, problem: "is external (made outside the project)" };
    const driver = d["driver"];
    if (driver !== undefined && driver !== "local") return { name, problem: `uses the ${typeof driver === "string" ? driver : JSON.stringify(driver)} driver` };
    if (d["driver_opts"] !== undefined) return { name, problem: "has driver_opts of its own" };
    return { name, problem: undefined };
  });
}

/** Default compose file when `docker.compose` is true and no list is given. */
const DEFAULT_COMPOSE_FILE = "docker-compose.yaml";

/** Parses `"[IP:]HOST:CONTAINER[/proto]"` into its parts, or undefined when malformed or out of range. */
function parsePortMapping(s: string): { hostIp?: string; host: number; container: number; protocol: "tcp" | "udp" } | undefined {
  const m = PORT_MAPPING.exec(s);
  if (!m) return undefined;
  const host = Number(m[2]);
  const container = Number(m[3]);
  if (host < 1 || host > 65535 || container < 1 || container > 65535) return undefined;
  if (m[1] !== undefined && !IPV4.test(m[1])) return undefined;
  return { ...(m[1] ? { hostIp: m[1] } : {}), host, container, protocol: (m[4] as "tcp" | "udp" | undefined) ?? "tcp" };
}

/** A `proxmox:container` with every default filled in: what planning reads. */
export interface ResolvedContainer {
  id: string;
  hostname: string;
  unprivileged: boolean;
  image: { name: string; version: string };
  host: { tags: string[]; resources: { memory: number; cores: number; disk: number; swap: number } };
  /** Data volumes (GB), storage from the environment when not given. */
  volumes: { name: string; size: number; path: string; storage: string; backup: boolean }[];
  bind_mounts: { host: string; path: string; read_only: boolean }[];
  /** Compose files are absolute paths; `volumes_on` names the volume holding the project's named volumes. */
  docker: { compose: boolean; compose_files: string[]; volumes_on: string | undefined };
  network: { mode: "bridge" | "host"; ports: string[]; bridge: string; ip: string; gateway?: string };
  protect: boolean;
  depends_on: string[];
}

/** `proxmox:container`: an LXC container placed on a node by tags, from a template chosen by pattern and version. */
export const proxmoxContainer = defineResourceType({
  type: "proxmox:container",
  summary: "An LXC container on a Proxmox node chosen by tags, from a template chosen by name pattern and version.",
  fields: {
    image: z
      .strictObject({
        name: z.string().min(1).refine(isValidGlob, { error: "name must be a glob pattern such as \"*debian*\"" }).describe('Glob over template file names, e.g. "*debian*".'),
        version: z.string().optional().describe('Version constraint, e.g. ">=12", "^12.7", "~24.04". The newest matching version wins.'),
      })
      .describe("Which template to create the container from."),
    hostname: z.string().regex(HOSTNAME, { error: "hostname must be a DNS label: letters, digits and -, at most 63 characters" }).optional().describe("Container hostname (default: the resource id with _ turned into -)."),
    unprivileged: z.boolean().optional().describe("Run as an unprivileged container (default true, as Proxmox)."),
    host: z
      .strictObject({
        tags: z.array(z.string().regex(HOST_TAG, { error: "tags use letters, digits and _ . : = + -" })).optional().describe("Place on a node carrying all of these tags (tags come from the environment's host inventory)."),
        resources: z
          .strictObject({
            memory: z.int().positive().optional().describe("Memory in MB."),
            cores: z.int().positive().max(512).optional().describe("CPU cores."),
            disk: z.int().positive().optional().describe("Root disk in GB."),
            swap: z.int().nonnegative().optional().describe("Swap in MB."),
          })
          .optional(),
      })
      .optional()
      .describe("Where to place the container and how big it is."),
    volumes: z
      .array(
        z.strictObject({
          name: z.string().regex(VOLUME_NAME, { error: "name must start with a lowercase letter and use only a-z, 0-9, _ and - (at most 32)" }).describe("The volume's name: it identifies the volume when the container is rebuilt."),
          size: z.int({ error: "size must be a whole number of GB" }).positive({ error: "size must be at least 1 GB" }).max(65536).describe("Size in GB. Growing it later resizes the volume in place; Proxmox cannot shrink one."),
          path: z.string().min(1).describe("Where it is mounted inside the container, e.g. /srv/data."),
          storage: z.string().regex(STORAGE_ID, { error: "storage must be a Proxmox storage id, e.g. local-lvm" }).optional().describe("Proxmox storage for the volume (default: the environment's default_storage)."),
          backup: z.boolean().optional().describe("Include the volume in backups (default true)."),
        }),
      )
      .optional()
      .describe("Data volumes (Proxmox mount points): they outlive the container, so a replace, a recreate or a destroy and deploy keep their data."),
    bind_mounts: z
      .array(
        z.strictObject({
          host: z.string().min(1).describe("Absolute path of a folder on the Proxmox node."),
          path: z.string().min(1).describe("Where it is mounted inside the container."),
          read_only: z.boolean().optional().describe("Mount it read-only (default false)."),
        }),
      )
      .optional()
      .describe("Folders of the node mounted into the container (Proxmox bind mounts; only root@pam may set them). Their data lives on the node, never in backups or snapshots."),
    docker: z
      .strictObject({
        compose: z.boolean().optional().describe("Install Docker and run the service's compose files in the container."),
        compose_files: z.array(z.string().min(1)).min(1).optional().describe(`Compose files, relative to service.yaml, applied in order (default ${DEFAULT_COMPOSE_FILE}).`),
        volumes_on: z.string().min(1).optional().describe("The name of a volume (in volumes) that holds the compose project's named volumes, each in a folder named after it, so they survive a rebuild."),
      })
      .optional(),
    network: z
      .strictObject({
        mode: z.enum(["bridge", "host"]).optional().describe("Compose networking inside the container: bridge (Docker's default, ports published) or host (services use the container's network directly)."),
        ports: z
          .array(z.string().refine((s) => parsePortMapping(s) !== undefined, { error: 'ports must look like "HOST:CONTAINER", e.g. "80:80" or "8053:53/udp"' }))
          .optional()
          .describe('Ports the service answers on, "HOST:CONTAINER[/tcp|udp]".'),
        bridge: z.string().min(1).optional().describe("Proxmox bridge for the container's eth0 (default from the environment, vmbr0)."),
        ip: z.union([z.literal("dhcp"), z.string().regex(IPV4_CIDR, { error: 'ip must be "dhcp" or an address with prefix, e.g. 192.168.1.50/24' })]).optional().describe('"dhcp" (default) or a static address with prefix, e.g. 192.168.1.50/24.'),
        gateway: z.string().regex(IPV4, { error: "gateway must be an IPv4 address" }).optional().describe("Gateway for a static ip."),
      })
      .optional(),
  },
  check(r, ctx) {
    if (r.image.version !== undefined) {
      const c = checkConstraint(r.image.version);
      if (!c.ok) ctx.report(["image", "version"], c.message);
    }
    if (r.docker?.compose_files && r.docker.compose !== true) {
      ctx.report(["docker", "compose_files"], "compose_files is set but docker.compose is not true, so they would never be deployed", { hint: "set docker.compose: true" });
    }
    if (r.network?.gateway && (r.network.ip === undefined || r.network.ip === "dhcp")) {
      ctx.report(["network", "gateway"], "gateway is only used with a static ip", { hint: "set network.ip to an address such as 192.168.1.50/24" });
    }
    if (r.network?.ports && r.network.mode !== "host") {
      const seen = new Map<string, number>();
      r.network.ports.forEach((p, i) => {
        const m = parsePortMapping(p);
        if (!m) return;
        const key = `${m.host}/${m.protocol}`;
        if (seen.has(key)) ctx.report(["network", "ports", i], `host port ${key} is mapped twice`);
        seen.set(key, i);
      });
    }
    const mountPaths = new Map<string, (string | number)[]>();
    const names = new Set<string>();
    const claim = (path: string, at: (string | number)[]): void => {
      const problem = mountPathProblem(path);
      if (problem) {
        ctx.report([...at, "path"], `path "${path}" ${problem}`);
        return;
      }
      const first = mountPaths.get(path);
      if (first) ctx.report([...at, "path"], `path "${path}" is already mounted by ${first.join(".")}`, { hint: "each volume and bind mount needs a path of its own" });
      else mountPaths.set(path, at);
    };
    r.volumes?.forEach((v, i) => {
      if (names.has(v.name)) ctx.report(["volumes", i, "name"], `volume name "${v.name}" is used twice`, { hint: "names identify volumes across rebuilds: give each its own" });
      names.add(v.name);
      claim(v.path, ["volumes", i]);
    });
    r.bind_mounts?.forEach((b, i) => {
      if (!b.host.startsWith("/") || b.host === "/" || /\/\.\.?(\/|$)/.test(b.host)) ctx.report(["bind_mounts", i, "host"], `host "${b.host}" must be an absolute folder on the node other than /, without . or .. parts`, { hint: "e.g. /mnt/tank/media" });
      else if (/[,=\s]/.test(b.host)) ctx.report(["bind_mounts", i, "host"], `host "${b.host}" cannot contain commas, '=' or spaces (Proxmox's mount point format)`);
      claim(b.path, ["bind_mounts", i]);
    });
    if (r.docker?.volumes_on !== undefined) {
      if (r.docker.compose !== true) ctx.report(["docker", "volumes_on"], "volumes_on is set but docker.compose is not true, so there are no compose volumes to place", { hint: "set docker.compose: true" });
      else if (!names.has(r.docker.volumes_on)) {
        ctx.report(["docker", "volumes_on"], `volumes_on names "${r.docker.volumes_on}", which is not one of this container's volumes`, {
          hint: didYouMean(r.docker.volumes_on, names) ?? (names.size > 0 ? `one of: ${[...names].join(", ")}` : `declare it: volumes: [{ name: ${r.docker.volumes_on}, size: 1, path: /srv/${r.docker.volumes_on} }]`),
        });
      }
    }
    if (r.docker?.compose === true) {
      const files = r.docker.compose_files ?? [DEFAULT_COMPOSE_FILE];
      const declared: { name: string; problem: string | undefined; at: (string | number)[] }[] = [];
      files.forEach((f, i) => {
        const at = r.docker?.compose_files ? ["docker", "compose_files", i] : ["docker", "compose"];
        const inside = insideServiceDir(ctx.serviceDir, f);
        if (!inside.ok) {
          ctx.report(at, `compose file "${f}" ${inside.reason}`);
          return;
        }
        const loaded = loadYamlFile(inside.abs, "compose file");
        if (!loaded.ok) {
          const first = loaded.diagnostics[0];
          const missing = first?.message.endsWith("not found");
          ctx.report(at, missing ? `compose file "${f}" does not exist` : `compose file "${f}" is not valid: ${first ? `${first.line}:${first.col}: ${first.message}` : "unreadable"}`, missing ? { hint: `create ${f} next to service.yaml, or list the right files in docker.compose_files` } : {});
          return;
        }
        const data = loaded.source.data;
        for (const v of namedVolumes(data)) declared.push({ ...v, at });
        const services = data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>)["services"] : undefined;
        // An override file (not the first) may legitimately omit `services`.
        if (i === 0 && (services === null || typeof services !== "object" || Array.isArray(services))) {
          ctx.report(at, `compose file "${f}" declares no \`services:\` mapping`);
        }
      });
      const placedOn = r.docker.volumes_on;
      if (placedOn !== undefined) {
        for (const v of declared) {
          if (v.problem) ctx.report(["docker", "volumes_on"], `compose volume "${v.name}" ${v.problem}, so it cannot be placed on volume "${placedOn}"`, { hint: `remove those settings from "${v.name}", or mount the volume's path yourself and drop volumes_on` });
        }
        if (declared.length === 0) ctx.report(["docker", "volumes_on"], `the compose files declare no named volumes to place on "${placedOn}"`, { severity: "warning", hint: "declare them under the compose file's top-level volumes:, or mount the volume's path in the compose services yourself" });
      } else {
        const lost = [...new Set(declared.map((v) => v.name))];
        if (lost.length > 0) {
          ctx.report(["docker"], `compose volume${lost.length > 1 ? "s" : ""} ${lost.map((n) => `"${n}"`).join(", ")} would live in the container's root disk and be lost when the container is rebuilt (replace, recreate, destroy and deploy)`, {
            severity: "warning",
            key: true,
            hint: "keep them on a volume: add volumes: [{ name: data, size: 1, path: /srv/data }] and docker.volumes_on: data",
          });
        }
      }
    }
    if (r.host?.tags && ctx.env && Object.keys(ctx.env.hosts).length > 0) {
      const wanted = r.host.tags.map((t) => t.toLowerCase());
      const any = Object.values(ctx.env.hosts).some((tags) => wanted.every((t) => tags.includes(t)));
      if (!any) {
        ctx.report(["host", "tags"], `no host in environment "${ctx.env.name}" carries all of the tags ${wanted.join(", ")}`, {
          hint: `tag a node under homelab:hosts in ${envFileOf(ctx.env)}`,
          severity: "warning",
        });
      }
    }
  },
  resolve(r, env, serviceDir): ResolvedContainer {
    const d = env?.defaults;
    return {
      ...r,
      hostname: r.hostname ?? r.id.replace(/_/g, "-").toLowerCase(),
      unprivileged: r.unprivileged ?? true,
      image: { name: r.image.name, version: r.image.version ?? "*" },
      volumes: (r.volumes ?? []).map((v) => ({ name: v.name, size: v.size, path: v.path, storage: v.storage ?? d?.storage ?? "local-lvm", backup: v.backup ?? true })),
      bind_mounts: (r.bind_mounts ?? []).map((b) => ({ host: b.host, path: b.path, read_only: b.read_only ?? false })),
      host: {
        tags: (r.host?.tags ?? []).map((t) => t.toLowerCase()),
        resources: {
          memory: r.host?.resources?.memory ?? d?.memory ?? 512,
          cores: r.host?.resources?.cores ?? d?.cores ?? 1,
          disk: r.host?.resources?.disk ?? d?.disk ?? 8,
          swap: r.host?.resources?.swap ?? d?.swap ?? 512,
        },
      },
      docker: {
        compose: r.docker?.compose ?? false,
        compose_files: r.docker?.compose === true ? (r.docker.compose_files ?? [DEFAULT_COMPOSE_FILE]).map((f) => join(serviceDir, f)) : [],
        volumes_on: r.docker?.compose === true ? r.docker.volumes_on : undefined,
      },
      network: {
        mode: r.network?.mode ?? "bridge",
        ports: r.network?.ports ?? [],
        bridge: r.network?.bridge ?? d?.bridge ?? "vmbr0",
        ip: r.network?.ip ?? "dhcp",
        ...(r.network?.gateway ? { gateway: r.network.gateway } : {}),
      },
      protect: r.protect ?? false,
      depends_on: r.depends_on ?? [],
    };
  },
});
