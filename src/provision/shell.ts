/**
 * POSIX shell quoting and a small script builder. Everything the provisioning
 * layer runs inside a container is built here from arrays of words, so a value
 * from service.yaml or a secret is always one quoted word and never shell
 * syntax. Scripts are sent to `sh -s` on stdin (see ssh.ts), so they must be
 * valid for dash as well as bash: only POSIX features are used.
 */

/** A fragment of shell syntax written by this module's callers, inserted as is (operators, redirections, `$VAR`). */
export interface Raw {
  readonly raw: string;
}

/** One word of a command: a value (quoted) or trusted syntax. */
export type Word = string | Raw;

/** Marks trusted shell syntax; never pass data from config or secrets here. */
export function raw(s: string): Raw {
  return { raw: s };
}

/** Thrown for a value the shell cannot carry (NUL). */
export class ShellValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShellValueError";
  }
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quotes a value as one POSIX shell word: unchanged when it has only safe
 * characters, else in single quotes with each `'` written as `'\''`. NUL is
 * refused because no shell word (nor argv entry, nor C string) can hold it.
 */
export function quote(value: string): string {
  if (value.includes("\0")) throw new ShellValueError("a value containing a NUL byte cannot be passed to the shell");
  if (value !== "" && SAFE.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A path as a command operand: relative paths starting with `-` get `./`, so no command reads them as an option. */
export function operand(path: string): string {
  return path.startsWith("-") ? `./${path}` : path;
}

/** One command line from words: values quoted, Raw fragments as they are. */
export function cmd(...words: readonly Word[]): string {
  return words.map((w) => (typeof w === "string" ? quote(w) : w.raw)).join(" ");
}

/** Whether a string is a valid shell variable name (for `export NAME=...`). */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/** `NAME=value` with the value quoted; the name must be a valid variable name. */
export function assign(name: string, value: string): string {
  if (!isShellName(name)) throw new ShellValueError(`"${name}" is not a valid shell variable name`);
  return `${name}=${quote(value)}`;
}

/** A heredoc delimiter that cannot occur as a line of base64 text (`_` is not in its alphabet). */
const B64_EOF = "HOMELAB_B64_EOF";

/**
 * A script: lines joined by newlines, starting with `set -eu` so the first
 * failing command stops it. Built from commands as word arrays; file content
 * goes in as base64 so any bytes survive and nothing in it is shell syntax.
 */
export class Script {
  readonly #lines: string[] = [];

  /** A script with the given header lines (default `set -eu`). */
  constructor(header: readonly string[] = ["set -eu"]) {
    this.#lines.push(...header);
  }

  /** Appends one command from words. */
  run(...words: readonly Word[]): this {
    this.#lines.push(cmd(...words));
    return this;
  }

  /** Appends trusted shell syntax (control flow, functions) written by this layer. */
  line(...lines: readonly string[]): this {
    this.#lines.push(...lines);
    return this;
  }

  /** Appends a comment (newlines are folded so it stays one comment). */
  comment(text: string): this {
    this.#lines.push(`# ${text.replace(/[\r\n]+/g, " ")}`);
    return this;
  }

  /** Appends `set` of a variable to a quoted value. */
  set(name: string, value: string): this {
    this.#lines.push(assign(name, value));
    return this;
  }

  /** Appends a command that writes `content` (any bytes) to `path` through `base64 -d`, with the given words before the redirection. */
  writeBase64(target: Word, content: string | Uint8Array): this {
    const b64 = Buffer.from(content).toString("base64");
    const body = b64.match(/.{1,76}/g) ?? [];
    this.#lines.push(`base64 -d > ${typeof target === "string" ? quote(target) : target.raw} <<'${B64_EOF}'`, ...body, B64_EOF);
    return this;
  }

  /** Appends another script's lines (without its header). */
  include(other: Script, skipHeader = true): this {
    const lines = other.lines();
    this.#lines.push(...(skipHeader ? lines.slice(1) : lines));
    return this;
  }

  /** The lines so far. */
  lines(): string[] {
    return [...this.#lines];
  }

  /** The script text, ending with a newline. */
  toString(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

/**
 * Quotes a value for a systemd unit's command line (ExecStart=...): double
 * quotes with `\\`, `\"` escaped, `%` as `%%` (specifiers) and `$` as `$$`
 * (environment expansion), so the program gets the value unchanged.
 */
export function systemdQuote(value: string): string {
  if (/[\0\n\r]/.test(value)) throw new ShellValueError("a systemd unit value cannot contain NUL or newlines");
  const escaped = value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$");
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(value) ? escaped : `"${escaped}"`;
}
