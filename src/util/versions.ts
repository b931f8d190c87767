import semver from "semver";

/**
 * Proxmox template versions are not semver: `12.7-1`, `22.04-1`, `3.19-0`.
 * They are read as `12.7.1`, `22.4.1`: the Debian revision becomes the patch,
 * leading zeros are dropped.
 */
export function normalizeVersion(raw: string): string | undefined {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-(\d+))?$/.exec(raw.trim());
  if (!m) return undefined;
  const major = Number(m[1]);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  const patch = m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? Number(m[4]) : 0;
  return `${major}.${minor}.${patch}`;
}

/** Rewrites a constraint written in Proxmox terms (`~24.04`, `>=12.7-1`) into a semver range. */
function normalizeConstraint(raw: string): string {
  return raw
    .trim()
    .replace(/(\d+\.\d+)-(\d+)\b/g, "$1.$2")
    .replace(/\b0+(\d)/g, "$1");
}

/** The outcome of reading a version constraint. */
export type ConstraintCheck =
  | { ok: true; range: string }
  | { ok: false; reason: "invalid" | "unsatisfiable"; message: string };

const checked = new Map<string, Readonly<ConstraintCheck>>();

/** Checks that a constraint parses and that at least one version can satisfy it. Remembered per constraint: services repeat theirs. */
export function checkConstraint(raw: string): Readonly<ConstraintCheck> {
  let c = checked.get(raw);
  if (!c) {
    c = Object.freeze(checkConstraintOnce(raw));
    checked.set(raw, c);
  }
  return c;
}

function checkConstraintOnce(raw: string): ConstraintCheck {
  const range = semver.validRange(normalizeConstraint(raw));
  if (range === null || raw.trim() === "") {
    return {
      ok: false,
      reason: "invalid",
      message: `"${raw}" is not a version constraint; expected e.g. ">=12", "^12.7", "~24.04" or ">=12 <13"`,
    };
  }
  if (semver.minVersion(range) === null) {
    return { ok: false, reason: "unsatisfiable", message: `version constraint "${raw}" can never match any version` };
  }
  return { ok: true, range };
}

/** True when a Proxmox-style version satisfies a constraint in Proxmox terms. */
export function versionSatisfies(version: string, constraint: string): boolean {
  const v = normalizeVersion(version);
  const range = semver.validRange(normalizeConstraint(constraint));
  return v !== undefined && range !== null && semver.satisfies(v, range);
}

/** Compares two Proxmox-style versions (unparseable ones sort first). */
export function compareVersions(a: string, b: string): number {
  const va = normalizeVersion(a);
  const vb = normalizeVersion(b);
  if (va === undefined || vb === undefined) return va === vb ? 0 : va === undefined ? -1 : 1;
  return semver.compare(va, vb);
}
