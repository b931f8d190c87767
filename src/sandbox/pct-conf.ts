/**
 * A container's config as pve-container writes it to `/etc/pve/lxc/N.conf`
 * (and into a backup as `etc/vzdump/pct.conf`): the description as `#`
 * comment lines, `key: value` lines sorted by key, then a `[pve:pending]`
 * section and one section per snapshot. The digest Proxmox reports is the
 * SHA-1 of that text. Pure.
 */
import { createHash } from "node:crypto";

/** A config value as Proxmox keeps it. */
export type ConfigValue = string | number;

/** A config map. */
export type ConfigMap = Record<string, ConfigValue>;

/** What a config file holds besides the current options. */
export interface ConfigSections {
  pending?: ConfigMap;
  /** Keys deleted at the next start (`delete:` in `[pve:pending]`). */
  pendingDelete?: readonly string[];
  snapshots?: Readonly<Record<string, ConfigMap>>;
}

/** PVE::Tools::encode_text: control characters and `%` as `%XX`. */
function encodeText(text: string): string {
  return [...text].map((c) => (c === "%" || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}` : c)).join("");
}

function decodeText(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function section(config: ConfigMap, extra: string[] = []): string {
  let raw = "";
  const description = config["description"];
  if (description !== undefined) for (const line of String(description).split("\n")) raw += `#${encodeText(line)}\n`;
  for (const key of Object.keys(config).sort()) {
    if (key === "description" || key === "digest") continue;
    raw += `${key}: ${String(config[key])}\n`;
  }
  for (const line of extra) raw += `${line}\n`;
  return raw;
}

/** The config file's text. */
export function renderConfig(config: ConfigMap, sections: ConfigSections = {}): string {
  let raw = section(config);
  const pendingDelete = sections.pendingDelete ?? [];
  if (Object.keys(sections.pending ?? {}).length > 0 || pendingDelete.length > 0) {
    raw += `\n[pve:pending]\n${section(sections.pending ?? {}, pendingDelete.length > 0 ? [`delete: ${[...pendingDelete].sort().join(",")}`] : [])}`;
  }
  const snapshots = sections.snapshots ?? {};
  for (const name of Object.keys(snapshots).sort()) raw += `\n[${name}]\n${section(snapshots[name] ?? {})}`;
  return raw;
}

/** Proxmox's config digest: SHA-1 over the file's text. */
export function configDigest(config: ConfigMap, sections: ConfigSections = {}): string {
  return createHash("sha1").update(renderConfig(config, sections)).digest("hex");
}

/**
 * Reads the current section of a config file, as `parse_pct_config` does:
 * the options, values as text. Pending and snapshot sections are skipped (a
 * restore drops them), and so are raw `lxc.*` lines, which are not options.
 */
export function parseConfig(raw: string): Record<string, string> {
  const config: Record<string, string> = {};
  let description = "";
  for (const line of raw.split("\n")) {
    if (/^\s*$/.test(line)) continue;
    if (/^\[[^\]]+\]\s*$/.test(line)) break;
    const comment = /^#(.*)$/.exec(line);
    if (comment) {
      description += `${decodeText(comment[1] ?? "")}\n`;
      continue;
    }
    const kv = /^([a-z][a-z_]*\d*):\s*(.+?)\s*$/.exec(line);
    if (kv) config[kv[1] ?? ""] = kv[2] ?? "";
  }
  if (description !== "") config["description"] = description.replace(/\n$/, "");
  return config;
}
