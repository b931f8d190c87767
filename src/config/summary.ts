import { loadYamlFile } from "./source.ts";
import type { Diagnostic } from "../util/diagnostics.ts";

/** What `list` can show even for a broken file. */
export interface ServiceSummary {
  name: string;
  description: string | undefined;
  path: string;
  resources: { id: string; type: string }[];
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** A summary read leniently from whatever data parsed. */
export function summarize(name: string, file: string, data: unknown): ServiceSummary {
  const obj = data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
  const res = Array.isArray(obj["resources"]) ? (obj["resources"] as unknown[]) : [];
  return {
    name: str(obj["name"]) ?? name,
    description: str(obj["description"]),
    path: file,
    resources: res.map((r) => {
      const o = r && typeof r === "object" ? (r as Record<string, unknown>) : {};
      return { id: str(o["id"]) ?? "?", type: str(o["type"]) ?? "?" };
    }),
  };
}

/** Reads a service file just enough for `list` (no schema validation). */
export function readSummary(name: string, file: string): { summary: ServiceSummary; diagnostics: Diagnostic[] } {
  const loaded = loadYamlFile(file, "service.yaml");
  return loaded.ok ? { summary: summarize(name, file, loaded.source.data), diagnostics: [] } : { summary: summarize(name, file, undefined), diagnostics: loaded.diagnostics };
}
