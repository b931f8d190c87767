import { isAbsolute, relative, resolve } from "node:path";

/** Resolves a path from service.yaml and checks it stays inside the service folder. */
export function insideServiceDir(serviceDir: string, p: string): { ok: true; abs: string } | { ok: false; reason: string; abs: string } {
  const abs = resolve(serviceDir, p);
  if (isAbsolute(p)) return { ok: false, reason: "is absolute; paths are relative to service.yaml", abs };
  const rel = relative(serviceDir, abs);
  if (rel === ".." || rel.startsWith("../") || isAbsolute(rel)) return { ok: false, reason: "points outside the service folder", abs };
  return { ok: true, abs };
}
