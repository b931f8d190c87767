/**
 * Credentials for the Proxmox API: an API token (a header on every request),
 * or a ticket from `POST /access/ticket` (a cookie, plus a CSRF header on
 * writes), renewed before its two-hour lifetime ends. Credentials come from
 * the environment config and secrets; this module never reads argv.
 */
import { ProxmoxConfigError } from "./errors.ts";

/** API token credentials: `USER@REALM!TOKENID` and its secret. */
export interface TokenCredentials {
  tokenId: string;
  tokenSecret: string;
}

/** Password credentials, exchanged for a ticket. */
export interface PasswordCredentials {
  /** `user@realm`, e.g. `root@pam`. */
  username: string;
  password: string;
}

/** Either kind of credentials. */
export type ProxmoxCredentials = TokenCredentials | PasswordCredentials;

/** What `POST /access/ticket` returns. */
export interface Ticket {
  ticket: string;
  csrfToken: string;
  username: string;
}

/** Proxmox tickets are valid for two hours. */
const TICKET_LIFETIME_MS = 2 * 60 * 60 * 1000;

const TOKEN_ID = /^[^\s@!=]+@[A-Za-z][A-Za-z0-9._-]*![A-Za-z][A-Za-z0-9._-]*$/;
const USERNAME = /^[^\s@!=:]+@[A-Za-z][A-Za-z0-9._-]*$/;

/** True for token credentials. */
export function isTokenCredentials(credentials: ProxmoxCredentials): credentials is TokenCredentials {
  return "tokenId" in credentials;
}

/** Parses `PVEAPIToken=USER@REALM!ID=SECRET` or `USER@REALM!ID=SECRET`. */
export function parseApiToken(value: string): TokenCredentials {
  const text = value.trim().replace(/^PVEAPIToken=/, "");
  const eq = text.indexOf("=");
  const tokenId = eq >= 0 ? text.slice(0, eq) : "";
  const tokenSecret = eq >= 0 ? text.slice(eq + 1) : "";
  if (!TOKEN_ID.test(tokenId) || tokenSecret === "") {
    // The value itself is not echoed: it holds the secret.
    throw new ProxmoxConfigError("the API token is not of the form USER@REALM!TOKENID=SECRET", "copy the token id and secret exactly as Proxmox showed them when the token was created");
  }
  return { tokenId, tokenSecret };
}

/** Checks credentials' shape without ever echoing a secret. */
export function validateCredentials(credentials: ProxmoxCredentials): void {
  if (isTokenCredentials(credentials)) {
    if (!TOKEN_ID.test(credentials.tokenId)) {
      throw new ProxmoxConfigError(`API token id ${JSON.stringify(credentials.tokenId)} is not USER@REALM!TOKENID`, "e.g. homelab@pve!deploy; Proxmox shows it in Datacenter → Permissions → API Tokens");
    }
    if (credentials.tokenSecret.length < 8 || /[\s]/.test(credentials.tokenSecret)) {
      throw new ProxmoxConfigError("the API token secret is empty or malformed", "copy the secret (a UUID) shown when the token was created into the environment's secrets");
    }
    return;
  }
  if (!USERNAME.test(credentials.username)) {
    throw new ProxmoxConfigError(`username ${JSON.stringify(credentials.username)} is not USER@REALM`, "e.g. root@pam");
  }
  if (credentials.password.length < 4) {
    throw new ProxmoxConfigError("the password is empty or too short", "set it in the environment's secrets");
  }
}

/** The `Authorization` header value for a token. */
function tokenAuthorization(credentials: TokenCredentials): string {
  return `PVEAPIToken=${credentials.tokenId}=${credentials.tokenSecret}`;
}

/** Headers that authenticate one request. */
export type AuthHeaders = Record<string, string>;

/** Supplies authentication for requests; the transport calls it for every request. */
export interface Authenticator {
  readonly kind: "token" | "ticket";
  /** The Proxmox user the requests act as (`root@pam`, `homelab@pve!deploy`). */
  readonly identity: string;
  /** Headers for one request; may log in or renew first. */
  headers(method: string): Promise<AuthHeaders>;
  /** After a 401: drops the cached ticket; true when a retry with fresh credentials makes sense. */
  invalidate(): boolean;
  /** Strings that must never appear in logs or errors. */
  secrets(): string[];
}

/** Token authentication: a constant header, no CSRF. */
export function tokenAuthenticator(credentials: TokenCredentials): Authenticator {
  const header = tokenAuthorization(credentials);
  return {
    kind: "token",
    identity: credentials.tokenId,
    headers: () => Promise.resolve({ authorization: header }),
    invalidate: () => false,
    secrets: () => [credentials.tokenSecret, header],
  };
}

/** Whether a ticket obtained at `obtainedAt` must be renewed at `now`. Pure. */
export function ticketNeedsRenewal(obtainedAt: number, now: number, lifetimeMs: number, renewBeforeMs: number): boolean {
  return now - obtainedAt >= lifetimeMs - renewBeforeMs;
}

/** Ticket authentication: logs in lazily, shares one login among concurrent requests, renews early. */
export function ticketAuthenticator(
  credentials: PasswordCredentials,
  login: (credentials: PasswordCredentials) => Promise<Ticket>,
  options: { now?: () => number; lifetimeMs?: number; renewBeforeMs?: number } = {},
): Authenticator {
  const now = options.now ?? Date.now;
  const lifetimeMs = options.lifetimeMs ?? TICKET_LIFETIME_MS;
  // Renew well before expiry so a long run (waiting on tasks) never sends an expired ticket.
  const renewBeforeMs = options.renewBeforeMs ?? 15 * 60 * 1000;
  let current: { ticket: Ticket; obtainedAt: number } | undefined;
  let pending: Promise<Ticket> | undefined;
  const seen = new Set<string>();

  const fresh = async (): Promise<Ticket> => {
    if (current && !ticketNeedsRenewal(current.obtainedAt, now(), lifetimeMs, renewBeforeMs)) return current.ticket;
    if (!pending) {
      const started = now();
      pending = login(credentials)
        .then((ticket) => {
          current = { ticket, obtainedAt: started };
          seen.add(ticket.ticket);
          seen.add(ticket.csrfToken);
          return ticket;
        })
        .finally(() => {
          pending = undefined;
        });
    }
    return pending;
  };

  return {
    kind: "ticket",
    identity: credentials.username,
    async headers(method: string): Promise<AuthHeaders> {
      const ticket = await fresh();
      const headers: AuthHeaders = { cookie: `PVEAuthCookie=${ticket.ticket}` };
      if (method !== "GET") headers.csrfpreventiontoken = ticket.csrfToken;
      return headers;
    },
    invalidate(): boolean {
      current = undefined;
      return true;
    },
    secrets: () => [credentials.password, ...seen],
  };
}
