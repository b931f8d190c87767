/**
 * Authentication as Proxmox does it: API tokens in the Authorization
 * header (no CSRF), or a ticket from `POST /access/ticket` in the
 * `PVEAuthCookie` cookie plus a `CSRFPreventionToken` header on every
 * non-GET. Tickets are valid for two hours. The clock is injected so a
 * test can prove expiry. Pure apart from the signing key it holds.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Tickets and CSRF tokens are valid this long, as in Proxmox. */
const TICKET_LIFETIME_SEC = 2 * 60 * 60;
// Proxmox tolerates tickets from slightly ahead clocks of other nodes.
const CLOCK_SKEW_SEC = 300;

/** The result of authenticating one request. */
export type AuthResult =
  | { ok: true; user: string; kind: "token" | "ticket" }
  | { ok: false; message: string };

/** Holds the sandbox's credentials and checks requests against them. */
export class Auth {
  readonly tokenId: string;
  private readonly tokenSecret: string;
  private readonly rootPassword: string;
  private readonly clock: () => number;
  private readonly key: Buffer = randomBytes(32);

  constructor(options: { tokenId: string; tokenSecret: string; rootPassword: string; clock: () => number }) {
    this.tokenId = options.tokenId;
    this.tokenSecret = options.tokenSecret;
    this.rootPassword = options.rootPassword;
    this.clock = options.clock;
  }

  /** Checks `username`/`password` (a password or a still-valid ticket, which renews it). */
  login(username: string, password: string, realm?: string): string | undefined {
    const user = realm !== undefined && !username.includes("@") ? `${username}@${realm}` : username;
    if (user !== "root@pam") return undefined;
    if (same(password, this.rootPassword)) return user;
    return this.verifyTicket(password) === user ? user : undefined;
  }

  /** A new ticket and CSRF token for a user. */
  issueTicket(user: string): { ticket: string; csrf: string } {
    const stamp = hexTime(this.now());
    const ticket = `PVE:${user}:${stamp}::${this.sign(`PVE:${user}:${stamp}`)}`;
    const csrf = `${stamp}:${this.sign(`${stamp}:${user}`)}`;
    return { ticket, csrf };
  }

  /** The user of a valid, unexpired ticket. */
  verifyTicket(ticket: string): string | undefined {
    const m = /^PVE:([^:]+):([0-9A-F]{8})::(.+)$/.exec(ticket);
    if (!m) return undefined;
    const [, user = "", stamp = "", sig = ""] = m;
    if (!same(sig, this.sign(`PVE:${user}:${stamp}`))) return undefined;
    return this.fresh(stamp) ? user : undefined;
  }

  /** Whether a CSRF token belongs to the user and is unexpired. */
  verifyCsrf(token: string, user: string): boolean {
    const m = /^([0-9A-F]{8}):(.+)$/.exec(token);
    if (!m) return false;
    const [, stamp = "", sig = ""] = m;
    return same(sig, this.sign(`${stamp}:${user}`)) && this.fresh(stamp);
  }

  /** Authenticates a request from its headers. */
  check(headers: { authorization?: string | undefined; cookie?: string | undefined; csrf?: string | undefined }, method: string): AuthResult {
    const authz = headers.authorization;
    if (authz !== undefined && authz.startsWith("PVEAPIToken=")) {
      const value = authz.slice("PVEAPIToken=".length).trim();
      const eq = value.lastIndexOf("=");
      const id = eq > 0 ? value.slice(0, eq) : value;
      const secret = eq > 0 ? value.slice(eq + 1) : "";
      if (id === this.tokenId && same(secret, this.tokenSecret)) return { ok: true, user: id, kind: "token" };
      return { ok: false, message: "authentication failure" };
    }
    const ticket = cookieValue(headers.cookie, "PVEAuthCookie");
    if (ticket === undefined) return { ok: false, message: "No ticket" };
    const user = this.verifyTicket(ticket);
    if (user === undefined) return { ok: false, message: "authentication failure" };
    if (method !== "GET" && (headers.csrf === undefined || !this.verifyCsrf(headers.csrf, user))) {
      return { ok: false, message: "Permission denied - invalid csrf token" };
    }
    return { ok: true, user, kind: "ticket" };
  }

  private now(): number {
    return Math.floor(this.clock() / 1000);
  }

  private fresh(stamp: string): boolean {
    const age = this.now() - parseInt(stamp, 16);
    return age >= -CLOCK_SKEW_SEC && age <= TICKET_LIFETIME_SEC;
  }

  private sign(text: string): string {
    return createHmac("sha256", this.key).update(text).digest("base64");
  }
}

function hexTime(sec: number): string {
  return sec.toString(16).toUpperCase().padStart(8, "0");
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Reads one cookie, URL-decoded. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}
