/**
 * Notifications of state changes: ntfy (POST the text to a topic URL, Title
 * and Priority headers), Gotify (POST /message with the application token in
 * the X-Gotify-Key header) or generic JSON. Sent in order, one at a time,
 * from a bounded queue; a failure is reported as a monitor event and never
 * stops the monitor. The token (read by the caller with the config layer's
 * readSecretRef) is never printed.
 */
import { request } from "undici";
import type { Dispatcher } from "undici";
import type { StateEvent } from "./events.ts";
import type { Phase } from "./state-machine.ts";

/** A webhook as the monitor uses it. */
export interface WebhookConfig {
  kind: "ntfy" | "gotify" | "json";
  url: string;
  /** ntfy: access token (Bearer); Gotify: application token; json: Bearer token. */
  token?: string;
}

/** Whether a state change is worth a notification: not the start-up verdict, not flaps below the retry threshold, not grace. Pure. */
export function notifiable(e: Pick<StateEvent, "from" | "to">): boolean {
  const quiet: readonly Phase[] = ["unknown", "failing", "grace"];
  if (quiet.includes(e.to)) return false;
  // Healthy after a real incident (unhealthy, a repair, a wait), not after a flap or at start-up.
  if (e.to === "healthy") return e.from !== "unknown" && e.from !== "failing";
  return true;
}

/** ntfy and Gotify priorities for a phase. Pure. */
function priorityOf(to: Phase): { ntfy: number; gotify: number; tag: string } {
  if (to === "healthy") return { ntfy: 3, gotify: 4, tag: "white_check_mark" };
  if (to === "gave_up" || to === "needs_human") return { ntfy: 5, gotify: 9, tag: "rotating_light" };
  if (to === "unhealthy") return { ntfy: 4, gotify: 8, tag: "warning" };
  return { ntfy: 3, gotify: 5, tag: "wrench" };
}

/** Header values are ASCII only. */
function ascii(s: string): string {
  return s.replace(/→/g, "->").replace(/[^\x20-\x7e]/g, "?");
}

/** The title and text of a notification. Pure. */
function messageOf(e: StateEvent, envName: string): { title: string; text: string } {
  const title = e.to === "healthy" ? `${e.service} is healthy again (${envName})` : `${e.service}: ${e.to.replace("_", " ")} (${envName})`;
  return { title, text: `${e.service} in ${envName}: ${e.from} → ${e.to}\n${e.reason}\nat ${e.at}` };
}

/** One HTTP request a webhook makes. Pure. */
export function webhookRequest(w: WebhookConfig, e: StateEvent, envName: string): { url: string; headers: Record<string, string>; body: string } {
  const { title, text } = messageOf(e, envName);
  const prio = priorityOf(e.to);
  const bearer: Record<string, string> = w.token !== undefined ? { authorization: `Bearer ${w.token}` } : {};
  switch (w.kind) {
    case "ntfy":
      return { url: w.url, headers: { "content-type": "text/plain; charset=utf-8", title: ascii(title), priority: String(prio.ntfy), tags: prio.tag, ...bearer }, body: text };
    case "gotify":
      return {
        url: `${w.url.replace(/\/+$/, "")}/message`,
        headers: { "content-type": "application/json", ...(w.token !== undefined ? { "x-gotify-key": w.token } : {}) },
        body: JSON.stringify({ title, message: text, priority: prio.gotify }),
      };
    case "json":
      return { url: w.url, headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ source: "homelab-monitor", environment: envName, title, message: text, ...e }) };
  }
}

/** A URL fit for messages: no credentials, no query (a token could be there). */
export function safeUrl(u: string): string {
  try {
    const url = new URL(u);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/** Sends state changes to a webhook, in order, never more than `maxQueue` waiting (the oldest are dropped). */
export class WebhookSender {
  readonly #w: WebhookConfig;
  readonly #env: string;
  readonly #onError: (message: string) => void;
  readonly #timeoutMs: number;
  readonly #maxQueue: number;
  readonly #dispatcher: Dispatcher | undefined;
  #queue: StateEvent[] = [];
  #running: Promise<void> | undefined;
  /** Notifications delivered and failed, for tests and metrics. */
  sent = 0;
  failed = 0;
  dropped = 0;

  constructor(w: WebhookConfig, envName: string, o: { onError: (message: string) => void; timeoutMs?: number; maxQueue?: number; dispatcher?: Dispatcher }) {
    this.#w = w;
    this.#env = envName;
    this.#onError = o.onError;
    this.#timeoutMs = o.timeoutMs ?? 10_000;
    this.#maxQueue = o.maxQueue ?? 100;
    this.#dispatcher = o.dispatcher;
  }

  /** Queues a state change if it is notifiable. */
  notify(e: StateEvent): void {
    if (!notifiable(e)) return;
    this.#queue.push(e);
    while (this.#queue.length > this.#maxQueue) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#running ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      for (let e = this.#queue.shift(); e !== undefined; e = this.#queue.shift()) await this.#send(e);
    } finally {
      this.#running = undefined;
    }
  }

  async #send(e: StateEvent): Promise<void> {
    const req = webhookRequest(this.#w, e, this.#env);
    try {
      const res = await request(req.url, {
        method: "POST",
        headers: req.headers,
        body: req.body,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
      });
      await res.body.dump();
      if (res.statusCode >= 300) throw new Error(`answered ${res.statusCode}`);
      this.sent++;
    } catch (err) {
      this.failed++;
      const msg = err instanceof Error ? err.message : String(err);
      // The token could only appear in a message that echoes headers; none of ours do, but be sure.
      const clean = this.#w.token !== undefined ? msg.split(this.#w.token).join("***") : msg;
      this.#onError(`webhook ${this.#w.kind} ${safeUrl(this.#w.url)} failed: ${clean}`);
    }
  }

  /** Resolves when the queue is empty. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }
}
