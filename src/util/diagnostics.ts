/** A problem found in a user's file, located precisely enough to jump to. */
export interface Diagnostic {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  message: string;
  /** A likely fix, e.g. `did you mean "depends_on"?`. */
  hint?: string;
  severity: "error" | "warning";
  /** The field path, e.g. `resources[1].host.resources.memory`. */
  field?: string;
}

/** Formats a diagnostic as `FILE:LINE:COL: message (hint)`, the form editors and CI annotators parse. */
export function formatDiagnostic(d: Diagnostic, relativeTo?: string): string {
  const file = relativeTo && d.file.startsWith(relativeTo + "/") ? d.file.slice(relativeTo.length + 1) : d.file;
  const level = d.severity === "warning" ? "warning: " : "";
  const hint = d.hint ? ` (${d.hint})` : "";
  return `${file}:${d.line}:${d.col}: ${level}${d.message}${hint}`;
}

/** Formats a field path from its segments: `resources[1].host.tags`. */
export function fieldPath(path: readonly (string | number)[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? seg : `.${seg}`;
  }
  return out;
}

/** Sorts diagnostics by file, then position, so output is stable. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
}
