/**
 * Fault injection. Shares are applied deterministically (a share of 0.5
 * hits every second eligible request) so tests that prove retries do not
 * flake. Pure apart from the state it keeps.
 */

/** What to inject; every field has a harmless default. */
export interface FaultConfig {
  /** Milliseconds added before every API answer. */
  latencyMs: number;
  /** Share (0..1) of API requests answered with `errorStatus` instead of being handled. */
  errorRate: number;
  /** The status of injected errors (a 5xx). */
  errorStatus: number;
  /** Share (0..1) of API requests whose connection is cut without an answer. */
  dropRate: number;
  /** Share (0..1) of tasks that end in `TASK ERROR`. */
  taskFailRate: number;
  /** Milliseconds added to every task (slow tasks). */
  taskDelayMs: number;
  /** Limits request faults to these routes (`"POST /nodes/{node}/lxc"`); empty means all. */
  routes: string[];
  /** Limits task faults to these task types (`vzcreate`, `vzstart`, ...); empty means all. */
  taskTypes: string[];
}

/** No faults. */
function defaultFaults(): FaultConfig {
  return { latencyMs: 0, errorRate: 0, errorStatus: 500, dropRate: 0, taskFailRate: 0, taskDelayMs: 0, routes: [], taskTypes: [] };
}

/** Checks an untrusted partial fault config (from the admin endpoint or flags). */
export function parseFaults(input: unknown): Partial<FaultConfig> {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new Error("faults must be a JSON object");
  }
  const known = defaultFaults();
  const out: Partial<FaultConfig> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!(key in known)) throw new Error(`unknown fault '${key}'`);
    if (key === "routes" || key === "taskTypes") {
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw new Error(`fault '${key}' must be a list of strings`);
      }
      out[key] = value;
      continue;
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new Error(`fault '${key}' must be a non-negative number`);
    }
    if (key.endsWith("Rate") && value > 1) throw new Error(`fault '${key}' is a share between 0 and 1`);
    if (key === "errorStatus" && (value < 500 || value > 599 || !Number.isInteger(value))) {
      throw new Error("fault 'errorStatus' must be a 5xx status");
    }
    (out as Record<string, number>)[key] = value;
  }
  return out;
}

/** Decides, for a stream of events, which ones a share hits: exactly `rate` of them, evenly spread. */
class Share {
  private seen = 0;
  hit(rate: number): boolean {
    if (rate <= 0) return false;
    const before = Math.floor(this.seen * rate);
    this.seen++;
    return Math.floor(this.seen * rate) > before;
  }
}

/** The live fault state of one sandbox. */
export class Faults {
  private config: FaultConfig = defaultFaults();
  private drops = new Share();
  private errors = new Share();
  private taskFails = new Share();

  constructor(initial?: Partial<FaultConfig>) {
    if (initial) this.set(initial);
  }

  /** Merges a partial config and restarts the share counting. */
  set(f: Partial<FaultConfig>): void {
    this.config = { ...this.config, ...f };
    this.drops = new Share();
    this.errors = new Share();
    this.taskFails = new Share();
  }

  /** Back to no faults. */
  clear(): void {
    this.set(defaultFaults());
  }

  /** The current config (a copy). */
  get(): FaultConfig {
    return { ...this.config, routes: [...this.config.routes], taskTypes: [...this.config.taskTypes] };
  }

  /** What to do with an API request to `route` ("METHOD /template"). */
  forRequest(route: string): { latencyMs: number; action: "drop" | "error" | "pass"; status: number } {
    const c = this.config;
    const eligible = c.routes.length === 0 || c.routes.includes(route);
    let action: "drop" | "error" | "pass" = "pass";
    if (eligible && this.drops.hit(c.dropRate)) action = "drop";
    else if (eligible && this.errors.hit(c.errorRate)) action = "error";
    return { latencyMs: eligible ? c.latencyMs : 0, action, status: c.errorStatus };
  }

  /** What to do with a new task of `type`: extra time, and whether it fails. */
  forTask(type: string): { extraMs: number; fail: boolean } {
    const c = this.config;
    const eligible = c.taskTypes.length === 0 || c.taskTypes.includes(type);
    if (!eligible) return { extraMs: 0, fail: false };
    return { extraMs: c.taskDelayMs, fail: this.taskFails.hit(c.taskFailRate) };
  }
}
