/**
 * Proxmox-style API failures. Proxmox reports parameter problems as a 400
 * with a per-parameter `errors` map, and most other failures as a status
 * whose reason phrase *is* the message, so clients read the status line.
 */

/** An API failure to be rendered the way pveproxy renders it. */
export class ApiError extends Error {
  readonly status: number;
  /** Per-parameter messages (400 only). */
  readonly errors: Record<string, string> | undefined;

  constructor(status: number, message: string, errors?: Record<string, string>) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.errors = errors;
  }
}

/** 400 Parameter verification failed, with one message per parameter. */
export function paramError(errors: Record<string, string>): ApiError {
  return new ApiError(400, "Parameter verification failed.", errors);
}

/** A failure whose message becomes the reason phrase (500 unless told). */
export function failure(message: string, status = 500): ApiError {
  return new ApiError(status, message);
}

/** 403, as Proxmox raises permission exceptions. */
export function permissionDenied(reason: string): ApiError {
  return new ApiError(403, `Permission check failed (${reason})`);
}

/** Turns a message into a legal HTTP reason phrase (no control characters, one line). */
export function reasonPhrase(message: string): string {
  return message
    .replace(/[\r\n\t]+/g, " ")
    .replace(/[^\x20-\x7e]/g, "?")
    .trim();
}
