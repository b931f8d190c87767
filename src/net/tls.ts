/**
 * TLS as the Proxmox client and the monitor's http checks do it: verified by
 * default (system CAs), or against a given CA, or by a pinned SHA-256
 * certificate fingerprint. Everything here applies to the caller's own
 * sockets only; nothing touches process-wide TLS settings (no
 * NODE_TLS_REJECT_UNAUTHORIZED, no global dispatcher). The hints speak of
 * Proxmox, whose certificates are the usual case; callers may say more.
 */
import { readFileSync } from "node:fs";
import type { TLSSocket } from "node:tls";
import { buildConnector } from "undici";

/** TLS settings that cannot be used, with what to do about them. */
export class TlsSettingsError extends Error {
  /** What the user can do about it. */
  readonly hint: string;

  constructor(message: string, hint: string) {
    super(message);
    this.name = "TlsSettingsError";
    this.hint = hint;
  }
}

/** The server's certificate does not have the pinned SHA-256 fingerprint. */
export class TlsPinError extends Error {
  readonly code = "ERR_TLS_PIN";
  readonly host: string;
  readonly expected: string;
  readonly actual: string;

  constructor(host: string, expected: string, actual: string) {
    super(`TLS certificate of ${host} has fingerprint ${actual}, expected ${expected}`);
    this.name = "TlsPinError";
    this.host = host;
    this.expected = expected;
    this.actual = actual;
  }
}

/** TLS options as a user gives them. */
export interface TlsOptions {
  /** A PEM file with the CA that signed the node certificates (Proxmox: /etc/pve/pve-root-ca.pem). */
  caFile?: string;
  /** The same, inline. */
  caPem?: string;
  /** SHA-256 fingerprint of the server certificate, hex, with or without colons. */
  fingerprint?: string;
  /** Skip verification for this client only. Warns; refused in CI mode. */
  insecure?: boolean;
}

/** What the connector enforces, after validation. */
export interface TlsPolicy {
  /** PEM text of the trusted CA; undefined means the system store. */
  ca: string | undefined;
  /** Normalised fingerprint (`AB:CD:...`), when pinned. */
  pin: string | undefined;
  insecure: boolean;
}

/** Normalises a SHA-256 fingerprint to uppercase colon-separated hex; throws when it is not one. */
export function normalizeFingerprint(input: string): string {
  const hex = input
    .trim()
    .replace(/^sha-?256[:/=\s]*/i, "")
    .replace(/[:\s]/g, "")
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new TlsSettingsError(
      "tls.fingerprint is not a SHA-256 fingerprint",
      "give 32 bytes of hex, e.g. AB:CD:...; Proxmox shows it under node → System → Certificates, or run `openssl x509 -noout -fingerprint -sha256 -in /etc/pve/local/pve-ssl.pem`",
    );
  }
  return hex.match(/../g)!.join(":");
}

/** Validates TLS options into a policy. Pure apart from reading `caFile`; warns about `insecure`. */
export function resolveTlsPolicy(
  tls: TlsOptions | undefined,
  opts: { ci: boolean; warn: (line: string) => void; endpoint: string },
): TlsPolicy {
  const options = tls ?? {};
  if (options.insecure === true) {
    if (opts.ci) {
      throw new TlsSettingsError(
        "tls.insecure is refused in CI mode",
        "give the cluster's CA (tls.caFile) or pin the certificate fingerprint (tls.fingerprint) instead",
      );
    }
    if (options.caFile !== undefined || options.caPem !== undefined || options.fingerprint !== undefined) {
      throw new TlsSettingsError(
        "tls.insecure cannot be combined with a CA or a fingerprint",
        "drop tls.insecure: the CA or fingerprint already makes a self-signed certificate work",
      );
    }
    opts.warn(
      `warning: TLS verification is disabled for ${opts.endpoint} (tls.insecure); anyone on the network path can read the credentials. Pin tls.fingerprint instead.`,
    );
    return { ca: undefined, pin: undefined, insecure: true };
  }
  if (options.caFile !== undefined && options.caPem !== undefined) {
    throw new TlsSettingsError("give tls.caFile or tls.caPem, not both", "keep one of them");
  }
  let ca = options.caPem;
  if (options.caFile !== undefined) {
    try {
      ca = readFileSync(options.caFile, "utf8");
    } catch (error) {
      throw new TlsSettingsError(
        `cannot read tls.caFile ${options.caFile}: ${(error as Error).message}`,
        "copy the cluster CA from a node (/etc/pve/pve-root-ca.pem) and point tls.caFile at it",
      );
    }
  }
  if (ca !== undefined && !ca.includes("-----BEGIN CERTIFICATE-----")) {
    throw new TlsSettingsError("the CA is not a PEM certificate", "give the PEM text (-----BEGIN CERTIFICATE-----...)");
  }
  const pin = options.fingerprint !== undefined ? normalizeFingerprint(options.fingerprint) : undefined;
  return { ca, pin, insecure: false };
}

/** The connect function for a dispatcher: checks the pin before undici may write a request. */
export function buildTlsConnector(policy: TlsPolicy, connectTimeoutMs: number): buildConnector.connector {
  const base = buildConnector({
    ...(policy.ca !== undefined ? { ca: policy.ca } : {}),
    // A pin replaces the chain check for a self-signed certificate: the chain cannot verify
    // without its CA, so the chain check is off for this socket only and the callback below
    // compares the pin on secureConnect, before the socket is handed to undici.
    // With a CA as well, both are enforced.
    rejectUnauthorized: policy.insecure ? false : policy.pin === undefined || policy.ca !== undefined,
    // A resumed session skips certificate checks, so never resume one.
    maxCachedSessions: 0,
    // The reason phrase carries Proxmox's error message; HTTP/2 has none.
    allowH2: false,
    timeout: connectTimeoutMs,
  });
  const pin = policy.pin;
  if (pin === undefined) return base;
  return (options, callback) => {
    base(options, (...args) => {
      const [error, socket] = args;
      if (error !== null) {
        callback(error, null);
        return;
      }
      const cert = (socket as TLSSocket).getPeerCertificate?.();
      const actual = cert?.fingerprint256 ?? "(no certificate)";
      if (actual.toUpperCase() !== pin) {
        socket.destroy();
        callback(new TlsPinError(options.hostname, pin, actual), null);
        return;
      }
      callback(null, socket);
    });
  };
}
