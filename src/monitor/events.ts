/**
 * The monitor's events: every check result, state change and remediation is
 * one event, printed as a line (or a JSON line), appended to a bounded local
 * history, counted in the metrics, and (state changes only) sent to the
 * webhook. Sinks never throw into the monitor.
 */
import { appendFile, mkdir, rename, stat } from "node:fs/promises";
import path from "node:path";
import type { Action, ActionOutcome, Phase } from "./state-machine.ts";

/** One check result. */
export interface CheckEvent {
  type: "check";
  at: string;
  service: string;
  /** The check's label, e.g. `http http://{address}:80/`. */
  check: string;
  index: number;
  ok: boolean;
  latencyMs: number;
  detail: string;
}

/** A service moved from one phase to another. */
export interface StateEvent {
  type: "state";
  at: string;
  service: string;
  from: Phase;
  to: Phase;
  reason: string;
}

/** A remediation started or ended. */
export interface ActionEvent {
  type: "action";
  at: string;
  service: string;
  action: Action;
  phase: "start" | ActionOutcome;
  detail: string;
}

/** About the monitor itself (start, stop, a webhook or history problem). */
export interface NoteEvent {
  type: "monitor";
  at: string;
  level: "info" | "warning";
  message: string;
}

/** Any event. */
export type MonitorEvent = CheckEvent | StateEvent | ActionEvent | NoteEvent;

/** Receives events; must not throw. */
export type EventSink = (e: MonitorEvent) => void;

/** Fans an event out to several sinks; a sink that throws is reported once on stderr-like `onError` and skipped for that event. */
export function fanOut(sinks: readonly EventSink[], onError: (e: unknown) => void = () => undefined): EventSink {
  return (e) => {
    for (const s of sinks) {
      try {
        s(e);
      } catch (err) {
        onError(err);
      }
    }
  };
}

/** Minimal styling (the CLI's Style fits). */
export interface LineStyle {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
}

const plain: LineStyle = { bold: (s) => s, dim: (s) => s, red: (s) => s, yellow: (s) => s, green: (s) => s };

function phaseText(p: Phase, o: LineStyle): string {
  switch (p) {
    case "healthy":
      return o.green(p);
    case "failing":
    case "grace":
    case "backoff":
    case "waiting_deploy":
    case "restarting":
    case "recreating":
      return o.yellow(p);
    case "unknown":
      return o.dim(p);
    default:
      return o.red(p);
  }
}

/** One event as a human line. Pure. */
export function formatEvent(e: MonitorEvent, o: LineStyle = plain): string {
  const at = o.dim(e.at.replace(/\.\d+Z$/, "Z"));
  switch (e.type) {
    case "check":
      return `${at} ${o.bold(e.service)} check ${e.check}: ${e.ok ? o.green("ok") : o.red("FAIL")} ${e.detail}`;
    case "state":
      return `${at} ${o.bold(e.service)} ${phaseText(e.from, o)} → ${phaseText(e.to, o)}: ${e.reason}`;
    case "action": {
      const what = e.phase === "start" ? o.yellow(`${e.action} started`) : e.phase === "ok" ? o.green(`${e.action} done`) : e.phase === "deferred" ? o.yellow(`${e.action} deferred`) : o.red(`${e.action} FAILED`);
      return `${at} ${o.bold(e.service)} ${what}${e.detail ? `: ${e.detail}` : ""}`;
    }
    case "monitor":
      return `${at} ${e.level === "warning" ? o.yellow("monitor") : o.dim("monitor")} ${e.message}`;
  }
}

/** A sink printing lines or JSON lines. */
export function printer(write: (s: string) => void, o: { json: boolean; style?: LineStyle }): EventSink {
  return (e) => write(`${o.json ? JSON.stringify(e) : formatEvent(e, o.style)}\n`);
}


/**
 * The local history: events as JSON lines in `history.jsonl`, rotated to
 * `history.jsonl.1` when it would pass `maxBytes`, so at most twice that is
 * kept. Writes are batched (one append per burst) and serialised; a failing
 * disk is reported once through `onError` and never stops the monitor.
 */
export class HistoryFile {
  readonly file: string;
  readonly maxBytes: number;
  #size: number | undefined;
  #buffer: string[] = [];
  #writing: Promise<void> | undefined;
  #failed = false;
  readonly #onError: (e: unknown) => void;

  constructor(file: string, o: { maxBytes?: number; onError?: (e: unknown) => void } = {}) {
    this.file = file;
    this.maxBytes = o.maxBytes ?? 1024 * 1024;
    this.#onError = o.onError ?? (() => undefined);
  }

  /** The sink: queues the event; the write happens soon after. */
  readonly sink: EventSink = (e) => {
    this.#buffer.push(JSON.stringify(e) + "\n");
    this.#writing ??= this.#drain();
  };

  async #drain(): Promise<void> {
    try {
      // Let the rest of this burst join the batch.
      await Promise.resolve();
      while (this.#buffer.length > 0) {
        const chunk = this.#buffer.join("");
        this.#buffer = [];
        await this.#append(chunk);
      }
    } catch (e) {
      this.#buffer = [];
      if (!this.#failed) this.#onError(e);
      this.#failed = true;
    } finally {
      this.#writing = undefined;
    }
  }

  async #append(chunk: string): Promise<void> {
    if (this.#size === undefined) {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      try {
        this.#size = (await stat(this.file)).size;
      } catch {
        this.#size = 0;
      }
    }
    // Cut the batch at line ends so that no file grows past maxBytes (a single longer line stands alone).
    let piece = "";
    let pieceBytes = 0;
    for (const line of chunk.split(/(?<=\n)/)) {
      const bytes = Buffer.byteLength(line);
      if (this.#size + pieceBytes + bytes > this.maxBytes && this.#size + pieceBytes > 0) {
        if (piece !== "") await appendFile(this.file, piece, { mode: 0o600 });
        await rename(this.file, `${this.file}.1`);
        this.#size = 0;
        piece = "";
        pieceBytes = 0;
      }
      piece += line;
      pieceBytes += bytes;
    }
    if (piece !== "") await appendFile(this.file, piece, { mode: 0o600 });
    this.#size += pieceBytes;
  }

  /** Resolves when everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }
}
