/**
 * What kind of Pulumi state backend a URL names, as data for the pure
 * layers: Pulumi Cloud (app.pulumi.com or a self-hosted Pulumi Cloud, both
 * http(s)://) or a self-managed "DIY" backend (file://, s3://, gs://,
 * azblob://, postgres://). Features of Pulumi Cloud, such as ESC, exist only
 * with the first. Never carries the URL itself: it may hold a password.
 */

/** `cloud`: Pulumi Cloud; `diy`: a self-managed backend Pulumi reads and writes itself. */
export type BackendKind = "cloud" | "diy";

/** A backend as the config layer sees it: its kind and URL scheme, never the full URL. */
export interface BackendInfo {
  kind: BackendKind;
  /** The URL scheme without `://`, e.g. `postgres`, for messages. */
  scheme: string;
}

/** A URL's scheme, lowercased, without `://` (`postgres` of `postgres://db/state`); undefined when it has none. Pure. */
export function urlScheme(url: string | undefined): string | undefined {
  return /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url ?? "")?.[1]?.toLowerCase();
}

/** The kind of the backend a URL names. An empty URL is Pulumi's own default, Pulumi Cloud. Pure. */
export function describeBackend(url: string | undefined): BackendInfo {
  const scheme = urlScheme(url);
  if (scheme === undefined) return { kind: "cloud", scheme: "https" };
  // Pulumi takes the schemes of its blob storage as DIY and any other URL for a
  // Pulumi Cloud; only http(s) can reach one, so any other scheme counts as DIY.
  return { kind: scheme === "http" || scheme === "https" ? "cloud" : "diy", scheme };
}
