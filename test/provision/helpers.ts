/**
 * Helpers for the provisioning tests: hostile values, fake programs on PATH
 * (so generated scripts run here without touching the machine), and a
 * scratch folder.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Values that break naive quoting: quotes, command substitution, backticks, spaces, newlines, globs, leading dashes. */
export const HOSTILE: readonly string[] = [
  "",
  " ",
  "plain",
  "two words",
  "it's",
  "''",
  "'",
  '"double"',
  "back\\slash",
  "trailing\\",
  "$(touch PWNED)",
  "`touch PWNED`",
  "${HOME}",
  "$HOME",
  "a;touch PWNED",
  "a && touch PWNED",
  "a | touch PWNED",
  "line1\nline2\n",
  "\n",
  "tab\there",
  "-rf",
  "--help",
  "-",
  "*",
  "?",
  "[a-z]*",
  "~",
  "~root",
  "#not a comment",
  "a#b",
  "!event",
  "a=b",
  "%s%n",
  "{a,b}",
  "\r\n",
  "é ünïcödé ✓",
  "'$(touch PWNED)'\"`touch PWNED`\"\n$(touch PWNED) ' \\' \\",
];

/** A scratch folder removed by `done()`. */
export function scratch(prefix = "homelab-prov-"): { dir: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes executable shell scripts named after programs into `<dir>/bin`; returns a PATH with them first. */
export function fakePrograms(dir: string, programs: Record<string, string>): string {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  for (const [name, body] of Object.entries(programs)) {
    const file = join(bin, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
  }
  return `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`;
}

/** Runs a script with `sh -s` (as over SSH), in `cwd`, with an environment. */
export function runScript(script: string, o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("sh", ["-s"], { input: script, cwd: o.cwd, env: o.env ?? process.env, timeout: o.timeoutMs ?? 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
}

/** Whether `sh -n` accepts a script (syntax only). */
export function shellSyntaxOk(script: string): { ok: boolean; error: string } {
  const r = spawnSync("sh", ["-n"], { input: script });
  return { ok: r.status === 0, error: r.stderr.toString("utf8") };
}
