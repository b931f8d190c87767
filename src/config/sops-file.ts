/**
 * What can be known of a SOPS-encrypted secrets file without its key. SOPS
 * keeps the keys of a YAML file in plain text and encrypts each value
 * (`ENC[AES256_GCM,data:...,type:str]`), with its metadata under `sops:`
 * (recipients, MAC). So validation checks that the file is SOPS's, which
 * keys it provides, and that no value was written in plain text by hand;
 * decrypting is left to deploy. Pure: works on a parsed file.
 */
import type { Diagnostic } from "../util/diagnostics.ts";
import type { YamlSource } from "./source.ts";

export const SOPS_SECRETS_FILE = ".secrets.sops.yaml";

/** The recipients a SOPS file can be encrypted for; one is enough. */
const KEY_SOURCES = ["age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "key_groups"];
const ENCRYPTED = /^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:(str|int|float|bool|bytes|comment)\]$/;

/** The keys a SOPS file provides, and what is wrong with it. */
export interface SopsFileCheck {
  keys: string[];
  diagnostics: Diagnostic[];
}

function regex(source: unknown): RegExp | undefined {
  if (typeof source !== "string") return undefined;
  try {
    return new RegExp(source);
  } catch {
    return undefined;
  }
}

/**
 * Whether SOPS leaves a key's value unencrypted under the file's own rules
 * (`unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex`,
 * `encrypted_regex`), as `sops --encrypt` applied them.
 */
function leftPlain(key: string, meta: Record<string, unknown>): boolean {
  const unencryptedSuffix = meta["unencrypted_suffix"];
  const encryptedSuffix = meta["encrypted_suffix"];
  if (typeof unencryptedSuffix === "string" && unencryptedSuffix !== "" && key.endsWith(unencryptedSuffix)) return true;
  if (typeof encryptedSuffix === "string" && encryptedSuffix !== "" && !key.endsWith(encryptedSuffix)) return true;
  if (regex(meta["unencrypted_regex"])?.test(key) === true) return true;
  const encrypted = regex(meta["encrypted_regex"]);
  if (encrypted !== undefined && !encrypted.test(key)) return true;
  // Comment-based rules cannot be judged from the data: trust SOPS there.
  return meta["unencrypted_comment_regex"] !== undefined || meta["encrypted_comment_regex"] !== undefined;
}

/** Checks a parsed `.secrets.sops.yaml`: SOPS metadata present, values encrypted, one value per key. */
export function checkSopsFile(file: string, source: YamlSource): SopsFileCheck {
  const diagnostics: Diagnostic[] = [];
  const data = source.data;
  const edit = `edit it with \`sops edit ${SOPS_SECRETS_FILE}\` (it re-encrypts on save); see docs/secrets.md`;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    diagnostics.push({ file, line: 1, col: 1, severity: "error", message: `${SOPS_SECRETS_FILE} must be a SOPS-encrypted mapping of key: value`, hint: edit });
    return { keys: [], diagnostics };
  }
  const map = data as Record<string, unknown>;
  const meta = map["sops"];
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    diagnostics.push({
      file,
      ...(meta === undefined ? { line: 1, col: 1 } : source.locate(["sops"])),
      severity: "error",
      message: `${SOPS_SECRETS_FILE} is not encrypted with SOPS: it has no \`sops:\` metadata`,
      hint: `encrypt it: sops --encrypt --age <recipient> --in-place ${SOPS_SECRETS_FILE} (or put plain values in the git-ignored .secrets.yaml)`,
    });
    return { keys: [], diagnostics };
  }
  const m = meta as Record<string, unknown>;
  if (typeof m["mac"] !== "string" || !ENCRYPTED.test(m["mac"])) {
    diagnostics.push({ file, ...source.locate(["sops"], { key: true }), severity: "error", message: "the sops: metadata has no valid mac, so SOPS will refuse the file", hint: edit });
  }
  const hasRecipient = KEY_SOURCES.some((k) => Array.isArray(m[k]) && (m[k] as unknown[]).length > 0);
  if (!hasRecipient) {
    diagnostics.push({ file, ...source.locate(["sops"], { key: true }), severity: "error", message: "the sops: metadata names no recipient (age, pgp, ...), so nobody can decrypt it", hint: "encrypt it again for your team's age keys: sops --encrypt --age <recipient>,... --in-place" });
  }
  const keys: string[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (key === "sops") continue;
    if (value !== null && typeof value === "object") {
      diagnostics.push({ file, ...source.locate([key], { key: true }), severity: "error", field: key, message: `secret "${key}" must be a single value, not ${Array.isArray(value) ? "a list" : "a mapping"}` });
      continue;
    }
    keys.push(key);
    if (!(typeof value === "string" && ENCRYPTED.test(value)) && !leftPlain(key, m)) {
      // Never quote the value: it is meant to be secret.
      diagnostics.push({ file, ...source.locate([key]), severity: "error", field: key, message: `the value of "${key}" is not encrypted: the file was edited without SOPS, which will refuse it (MAC mismatch)`, hint: edit });
    }
  }
  return { keys, diagnostics };
}
