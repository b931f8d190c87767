/**
 * The secrets file of a compose deployment (`secrets.env`): one
 * `export NAME='value'` line per secret, quoted by shell.ts and sourced by the
 * `compose` wrapper. Not a `.env` file on purpose: Compose v1 (python-dotenv)
 * and v2 (compose-go) parse `.env` quoting differently, so a value with quotes,
 * `$` or newlines would arrive changed in one of them; Compose takes process
 * environment over `.env` and interpolates `${KEY}` with the exact bytes. Pure.
 */
import { ComposeInputError } from "./compose-files.ts";
import { isShellName, quote } from "./shell.ts";

/** Secret values by key (as in `.secrets.example.yaml`). */
export type SecretValues = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/** The environment variable a secret key is exported as: upper case, other characters as `_`. */
export function secretVariable(key: string): string {
  return key.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

function entries(secrets: SecretValues): Array<[string, string]> {
  const list: Array<[string, string]> = secrets instanceof Map ? [...(secrets as ReadonlyMap<string, string>).entries()] : Object.entries(secrets as Readonly<Record<string, string>>);
  return list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The secrets file: one `export NAME='value'` line per secret, in key order. Refuses names that collide or are not variables. */
export function secretsFile(secrets: SecretValues): { content: string; variables: string[] } {
  const seen = new Map<string, string>();
  const lines = ["# homelab: the service's secrets, sourced by ./compose. Do not edit: the next deploy rewrites it."];
  for (const [key, value] of entries(secrets)) {
    const name = secretVariable(key);
    if (!isShellName(name)) throw new ComposeInputError(`secret "${key}" becomes the variable ${name}, which is not a valid variable name: rename the key (letters, digits and _, not starting with a digit)`);
    const other = seen.get(name);
    if (other !== undefined) throw new ComposeInputError(`secrets "${other}" and "${key}" both become the variable ${name}: rename one of them`);
    seen.set(name, key);
    lines.push(`export ${name}=${quote(value)}`);
  }
  return { content: `${lines.join("\n")}\n`, variables: [...seen.keys()] };
}

/** Parses `KEY='value'` lines as written by secretsFile, for tests and checks (not a general shell parser). */
export function parseSecretsFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (text[i] === "#") {
      i = text.indexOf("\n", i);
      if (i < 0) break;
      i++;
      continue;
    }
    if (text[i] === "\n") {
      i++;
      continue;
    }
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)=/.exec(text.slice(i));
    if (!m?.[1]) throw new Error(`unexpected text at offset ${i}`);
    const name = m[1];
    i += m[0].length;
    let value = "";
    while (i < n && text[i] !== "\n") {
      if (text[i] === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) throw new Error("unterminated quote");
        value += text.slice(i + 1, end);
        i = end + 1;
      } else if (text[i] === "\\") {
        value += text[i + 1] ?? "";
        i += 2;
      } else {
        value += text[i];
        i++;
      }
    }
    out.set(name, value);
  }
  return out;
}
