import { join } from "node:path";
import { z } from "zod";
import { checkConstraint } from "../../util/versions.ts";
import { isValidGlob } from "../../util/glob.ts";
import { HOST_TAG } from "../environment.ts";
import { loadYamlFile } from "../source.ts";
import { insideServiceDir } from "../paths.ts";
import { defineResourceType } from "./define.ts";
import { envFileOf } from "../homelab-dir.ts";

const PORT_MAPPING = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV4_CIDR = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/([1-2]?\d|3[0-2])$/;
/** Proxmox's hostname rule for containers: a DNS name. */
const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;

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
  /** Compose files are absolute paths. */
  docker: { compose: boolean; compose_files: string[] };
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
    docker: z
      .strictObject({
        compose: z.boolean().optional().describe("Install Docker and run the service's compose files in the container."),
        compose_files: z.array(z.string().min(1)).min(1).optional().describe(`Compose files, relative to service.yaml, applied in order (default ${DEFAULT_COMPOSE_FILE}).`),
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
    if (r.docker?.compose === true) {
      const files = r.docker.compose_files ?? [DEFAULT_COMPOSE_FILE];
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
        const services = data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>)["services"] : undefined;
        // An override file (not the first) may legitimately omit `services`.
        if (i === 0 && (services === null || typeof services !== "object" || Array.isArray(services))) {
          ctx.report(at, `compose file "${f}" declares no \`services:\` mapping`);
        }
      });
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
