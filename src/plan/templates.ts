import type { InventoryTemplate } from "../proxmox/inventory.ts";
import { globMatcher } from "../util/glob.ts";
import { checkConstraint, compareVersions, versionSatisfies } from "../util/versions.ts";
import type { TemplateCandidate } from "./types.ts";

/** What a container asks of its template. */
export interface TemplateRequest {
  /** Glob over template file names. */
  pattern: string;
  /** Version constraint, `*` for any. */
  version: string;
  /** The template it runs on now, if deployed: kept while it still matches. */
  current?: string | undefined;
  /** Storage preferred when the same file is on several. */
  preferredStorage?: string | undefined;
}

/** The outcome of matching: the chosen template (if any) and every candidate with its reason. */
export interface TemplateMatch {
  chosen: InventoryTemplate | undefined;
  sticky: boolean;
  candidates: TemplateCandidate[];
}

/**
 * Chooses a template among those usable on a node: the one deployed now while
 * it still matches (a newer template is no reason to rebuild a running
 * container), else the newest version matching pattern and constraint.
 */
export function matchTemplate(templates: readonly InventoryTemplate[], req: TemplateRequest): TemplateMatch {
  const nameMatches = globMatcher(req.pattern);
  const anyVersion = req.version.trim() === "*" || req.version.trim() === "";
  const constraintOk = anyVersion || checkConstraint(req.version).ok;
  const candidates: (TemplateCandidate & { t: InventoryTemplate })[] = templates.map((t) => {
    if (!nameMatches(t.file)) return { t, volid: t.volid, version: t.version, matched: false, reason: `name does not match ${req.pattern}` };
    if (!anyVersion) {
      if (!constraintOk) return { t, volid: t.volid, version: t.version, matched: false, reason: `constraint ${req.version} is not valid` };
      if (t.version === undefined) return { t, volid: t.volid, version: t.version, matched: false, reason: "has no version to check against " + req.version };
      if (!versionSatisfies(t.version, req.version)) return { t, volid: t.volid, version: t.version, matched: false, reason: `version ${t.version} does not satisfy ${req.version}` };
    }
    return { t, volid: t.volid, version: t.version, matched: true, reason: "matches" };
  });
  const matching = candidates.filter((c) => c.matched);
  // Newest version first; then the preferred storage; then by volid for a stable answer.
  matching.sort(
    (a, b) =>
      compareVersions(b.version ?? "", a.version ?? "") ||
      Number(b.t.storage === req.preferredStorage) - Number(a.t.storage === req.preferredStorage) ||
      a.volid.localeCompare(b.volid),
  );
  const current = req.current ? matching.find((c) => c.volid === req.current) : undefined;
  const chosen = current ?? matching[0];
  for (const c of matching) {
    if (c === chosen) c.reason = current ? "deployed now and still matches" : "newest matching version";
    else c.reason = current ? `matches, but the deployed template is kept` : `matches, older than ${chosen?.version ?? "?"}`;
  }
  const out = candidates.map(({ t: _t, ...c }) => c);
  // Chosen first, then other matches, then the rest, for readable explanations.
  out.sort((a, b) => Number(b.volid === chosen?.volid) - Number(a.volid === chosen?.volid) || Number(b.matched) - Number(a.matched));
  return { chosen: chosen?.t, sticky: current !== undefined, candidates: out };
}
