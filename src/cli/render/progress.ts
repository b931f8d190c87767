/**
 * Live progress of a deploy or destroy, from engine events: plain lines (CI,
 * not a terminal, --verbose), or on a terminal a block of running steps with
 * spinners and elapsed time, redrawn in place, finished lines printed above.
 */
import type { Diagnostic, StepProgress } from "../../engine/events.ts";
import type { Style } from "../output.ts";

const VERBS: Record<string, [string, string]> = {
  create: ["creating", "created"],
  update: ["updating", "updated"],
  delete: ["deleting", "deleted"],
  "create-replacement": ["creating the replacement", "created the replacement"],
  "delete-replaced": ["deleting the replaced one", "deleted the replaced one"],
  read: ["reading", "read"],
  refresh: ["refreshing", "refreshed"],
  import: ["importing", "imported"],
  discard: ["forgetting", "forgot"],
};

/** The words for a step: "creating" / "created". Pure. */
function stepVerbs(op: string): [string, string] | undefined {
  return VERBS[op];
}

/** Seconds with one decimal. Pure. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Where progress goes and how. */
export interface ProgressOptions {
  write: (s: string) => void;
  style: Style;
  /** Redraw a live block (a terminal, not CI, not --verbose). */
  live: boolean;
  verbose: boolean;
  now?: () => number;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Prints progress lines, and on a terminal keeps a live block of what runs. */
export class Progress {
  private readonly o: ProgressOptions;
  private readonly now: () => number;
  private readonly active = new Map<string, { text: string; since: number; detail: string | undefined }>();
  private drawn = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly width: number;

  constructor(o: ProgressOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.width = Math.max(40, process.stdout.columns || 100);
  }

  /** A line that stays. */
  line(text: string): void {
    this.clear();
    this.o.write(text + "\n");
    this.draw();
  }

  /** Something started (a service preview, a resource step). */
  start(key: string, text: string): void {
    if (this.o.live) {
      this.active.set(key, { text, since: this.now(), detail: undefined });
      this.tick();
      this.timer ??= setInterval(() => this.tick(), 100);
      this.timer.unref();
    } else {
      this.o.write(`${text}…\n`);
    }
  }

  /** Something finished; `text` stays as a line (or nothing when undefined). */
  finish(key: string, text: string | undefined): void {
    this.active.delete(key);
    if (text !== undefined) this.line(text);
    else this.tick();
    if (this.active.size === 0) this.stopTimer();
  }

  /** A passing detail for something running (the provider's status messages). */
  detail(key: string, text: string): void {
    const a = this.active.get(key);
    if (a && this.o.live) {
      a.detail = text;
      this.tick();
    } else if (this.o.verbose) {
      this.line(this.o.style.dim(`  ${text}`));
    }
  }

  /** A resource step of a service. */
  step(service: string, s: StepProgress): void {
    const verbs = stepVerbs(s.op);
    if (!verbs) return;
    const key = `${service}/${s.id}/${s.op}`;
    const o = this.o.style;
    if (s.phase === "start") this.start(key, `${o.bold(service)}  ${s.id}  ${verbs[0]}`);
    else if (s.phase === "done") this.finish(key, `${o.bold(service)}  ${s.id}  ${o.green(verbs[1])} ${o.dim(`(${seconds(s.elapsedMs ?? 0)})`)}`);
    else this.finish(key, `${o.bold(service)}  ${s.id}  ${o.red(`${verbs[0]} FAILED`)} ${o.dim(`after ${seconds(s.elapsedMs ?? 0)}`)}`);
  }

  /** An engine or provider diagnostic of a service. */
  diagnostic(service: string, d: Diagnostic): void {
    const o = this.o.style;
    const who = `${o.bold(service)}${d.id ? `  ${d.id}` : ""}`;
    if (d.severity === "error") return; // reported with the failure, with its hint
    if (d.severity === "warning") {
      this.line(`${who}  ${o.yellow(`warning: ${d.message.split("\n")[0] ?? ""}`)}`);
      if (this.o.verbose) for (const l of d.message.split("\n").slice(1)) this.line(`    ${o.dim(l)}`);
      return;
    }
    // Info: the provider's status lines; they belong to the running step.
    const running = [...this.active.keys()].find((k) => k.startsWith(`${service}/${d.id ?? ""}`));
    if (running !== undefined) this.detail(running, d.message.split("\n")[0] ?? "");
    else if (this.o.verbose) this.line(`${who}  ${o.dim(d.message)}`);
  }

  /** Removes the live block (before the final output). */
  close(): void {
    this.stopTimer();
    this.active.clear();
    this.clear();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    this.frame++;
    this.clear();
    this.draw();
  }

  private clear(): void {
    if (!this.o.live || this.drawn === 0) return;
    this.o.write(`\u001b[${this.drawn}A\u001b[0J`);
    this.drawn = 0;
  }

  private draw(): void {
    if (!this.o.live || this.active.size === 0) return;
    const o = this.o.style;
    const spin = SPINNER[this.frame % SPINNER.length] ?? "-";
    const lines = [...this.active.values()].map((a) => {
      const text = `${o.cyan(spin)} ${a.text} ${o.dim(seconds(this.now() - a.since))}${a.detail ? o.dim(`  ${a.detail}`) : ""}`;
      return truncate(text, this.width - 1);
    });
    this.o.write(lines.join("\n") + "\n");
    this.drawn = lines.length;
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/** Cuts a line to `width` visible characters, keeping colour codes balanced enough for a terminal. Pure. */
export function truncate(s: string, width: number): string {
  const visible = s.replace(ANSI, "");
  if (visible.length <= width) return s;
  // Colour codes make exact cutting fiddly; drop them for the rare long line.
  return visible.slice(0, Math.max(0, width - 1)) + "…";
}
