import { join } from "node:path";
import type { Diagnostic } from "../util/diagnostics.ts";
import { fieldPath } from "../util/diagnostics.ts";
import { findCycles } from "../util/graph.ts";
import { didYouMean } from "../util/suggest.ts";
import { RepositoryError } from "./discover.ts";
import type { EnvironmentConfig } from "./environment.ts";
import type { Service, ServiceLoad } from "./service.ts";

/**
 * What spans services, given every service loaded: the checks between them
 * (depends_on targets, cycles) and the Repository they make. No schema library
 * here, so services served from the validate cache are checked as fresh ones.
 */

/** Throws when a named service has no folder with a service.yaml (suggesting the closest). */
export function requireServices(root: string, found: readonly { name: string }[], only: readonly string[] | undefined): void {
  if (!only) return;
  const names = found.map((f) => f.name);
  for (const want of only) {
    if (!names.includes(want)) {
      throw new RepositoryError(`no service "${want}" in ${join(root, "services")}`, didYouMean(want, names) ?? (names.length ? `services: ${names.join(", ")}` : "create services/<name>/service.yaml"));
    }
  }
}

/** Everything read from a homelab repository for one environment. */
export interface Repository {
  root: string;
  env: EnvironmentConfig;
  /** Whether `env` came from a file (false: built-in defaults, no cluster). */
  envFromFile: boolean;
  loads: ServiceLoad[];
  /** Valid services by name. */
  services: Map<string, Service>;
  /** Every problem found, environment and services. */
  diagnostics: Diagnostic[];
}

/** The repository made of a loaded environment and services: cross-service checks run, diagnostics narrowed to `only`. */
export function assembleRepository(opts: {
  root: string;
  env: EnvironmentConfig;
  envFromFile: boolean;
  envDiagnostics: readonly Diagnostic[];
  loads: ServiceLoad[];
  only: readonly string[] | undefined;
}): Repository {
  const { root, env, envFromFile, loads, only } = opts;
  const diagnostics: Diagnostic[] = [...opts.envDiagnostics];
  const services = new Map<string, Service>();
  for (const l of loads) if (l.service) services.set(l.name, l.service);
  diagnostics.push(...loads.flatMap((l) => l.diagnostics));
  diagnostics.push(...checkDependencies(loads));
  const relevant = only ? diagnostics.filter((d) => !d.file.startsWith(join(root, "services") + "/") || only.some((n) => d.file.startsWith(join(root, "services", n) + "/"))) : diagnostics;
  // A service with a cross-service error is not deployable either.
  for (const d of relevant) {
    if (d.severity !== "error") continue;
    for (const [name, s] of services) if (d.file === s.file) services.delete(name);
  }
  return { root, env, envFromFile, loads, services, diagnostics: relevant };
}

/** Splits a `depends_on` entry into service and resource id (`svc.id` or a local `id`). */
export function parseDependency(entry: string, ownService: string): { service: string; id: string } {
  const dot = entry.indexOf(".");
  return dot > 0 ? { service: entry.slice(0, dot), id: entry.slice(dot + 1) } : { service: ownService, id: entry };
}

function checkDependencies(loads: ServiceLoad[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  const ids = new Map<string, Set<string>>();
  for (const l of loads) if (l.service) ids.set(l.name, new Set(l.service.resources.map((r) => r.id)));
  const allQualified = [...ids].flatMap(([s, set]) => [...set].map((id) => `${s}.${id}`));
  const graph = new Map<string, string[]>();
  const where = new Map<string, { load: ServiceLoad; index: number; dep: number }>();
  for (const l of loads) {
    const svc = l.service;
    if (!svc) continue;
    for (const r of svc.resources) {
      const node = `${svc.name}.${r.id}`;
      const edges: string[] = [];
      r.dependsOn.forEach((entry, i) => {
        const path = ["resources", r.index, "depends_on", i];
        const { service, id } = parseDependency(entry, svc.name);
        // Located only when reported: locating parses the file with positions.
        const at = () => svc.source.locate(path);
        const local = ids.get(svc.name) ?? new Set();
        if (service === svc.name && id === r.id) {
          out.push({ file: svc.file, ...at(), severity: "error", field: fieldPath(path), message: `resource "${r.id}" depends on itself` });
          return;
        }
        if (!ids.has(service)) {
          const serviceLoaded = loads.some((x) => x.name === service);
          out.push({
            file: svc.file,
            ...at(),
            severity: "error",
            field: fieldPath(path),
            message: serviceLoaded ? `depends_on "${entry}": service "${service}" has errors, so its resources cannot be checked` : `depends_on "${entry}": there is no service "${service}"`,
            ...(serviceLoaded ? {} : { hint: didYouMean(entry, [...local, ...allQualified]) ?? `services: ${[...ids.keys()].join(", ")}` }),
          });
          return;
        }
        if (!(ids.get(service) ?? new Set()).has(id)) {
          const candidates = service === svc.name ? [...local] : [...(ids.get(service) ?? [])].map((x) => `${service}.${x}`);
          out.push({
            file: svc.file,
            ...at(),
            severity: "error",
            field: fieldPath(path),
            message: service === svc.name ? `depends_on "${entry}": no resource with that id in this service` : `depends_on "${entry}": service "${service}" has no resource "${id}"`,
            ...(didYouMean(entry, candidates) ? { hint: didYouMean(entry, candidates) } : candidates.length ? { hint: `resources: ${candidates.join(", ")}` } : {}),
          });
          return;
        }
        const target = `${service}.${id}`;
        edges.push(target);
        where.set(`${node}->${target}`, { load: l, index: r.index, dep: i });
      });
      graph.set(node, edges);
    }
  }
  for (const cycle of findCycles(graph)) {
    const first = where.get(`${cycle[0] ?? ""}->${cycle[1] ?? ""}`);
    if (!first?.load.service) continue;
    const svc = first.load.service;
    const crossService = new Set(cycle.map((n) => n.split(".")[0])).size > 1;
    const names = crossService ? cycle : cycle.map((n) => n.slice(n.indexOf(".") + 1));
    const path = ["resources", first.index, "depends_on", first.dep];
    out.push({
      file: svc.file,
      ...svc.source.locate(path),
      severity: "error",
      field: fieldPath(path),
      message: `dependency cycle: ${names.join(" → ")}`,
      hint: "remove one of these depends_on entries",
    });
  }
  return out;
}
