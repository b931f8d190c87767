/**
 * Errors the plugin hands to the engine: one line saying what failed and
 * what to do, built from the Proxmox client's typed errors (which carry a
 * `hint` and never contain secrets).
 */
import { ProxmoxError, ProxmoxTaskError } from "../proxmox/errors.ts";

/** A failure with advice, raised by the plugin itself. */
export class ProviderError extends Error {
  readonly hint: string;

  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super(hint ? `${message}: ${hint}` : message, options);
    this.name = "ProviderError";
    this.hint = hint;
  }
}

/**
 * A create that failed after the container came to exist and could not be removed.
 * The SDK turns an error with `id` into Pulumi's "resource initialization failed", so
 * the engine records the container (no leak) and the next deploy updates it.
 */
export class PartialCreateError extends Error {
  readonly id: string;
  readonly properties: Record<string, unknown>;
  readonly reasons: string[];

  constructor(id: string, properties: Record<string, unknown>, reasons: string[]) {
    super(reasons.join("; "));
    this.name = "PartialCreateError";
    this.id = id;
    this.properties = properties;
    this.reasons = reasons;
  }
}

/** One line for the user: `<doing what>: <failure>: <what to do>`; task failures add their last log line. */
export function describeError(doing: string, error: unknown): string {
  if (error instanceof ProviderError) return `${doing}: ${error.message}`;
  if (error instanceof ProxmoxError) {
    let text = error.explain();
    if (error instanceof ProxmoxTaskError) {
      const last = [...error.logTail].reverse().find((l) => l.trim() !== "")?.trim().replace(/^TASK ERROR:\s*/, "");
      if (last !== undefined && last !== "" && !error.message.includes(last)) text = `${error.message} (${last}): ${error.hint}`;
    }
    return `${doing}: ${text}`;
  }
  return `${doing}: ${error instanceof Error ? error.message : String(error)}`;
}

/** Wraps any failure as a ProviderError whose message says what was being done. */
export function translateError(doing: string, error: unknown): Error {
  if (error instanceof PartialCreateError) return error;
  const out = new Error(describeError(doing, error), { cause: error });
  out.name = "HomelabProviderError";
  return out;
}
