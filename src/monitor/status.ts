/**
 * The monitor's current view on disk, for `homelab status`:
 * `.homelab/monitor/<env>/state.json` holds each service's phase and last
 * remediation, rewritten (atomically) when something changes. Reading it
 * needs nothing heavy: no engine, no network.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { monitorDir } from "../config/homelab-dir.ts";
import type { MonitorEvent } from "./events.ts";
import type { ServiceSnapshot } from "./monitor.ts";

/** What state.json holds. */
export interface MonitorStateFile {
  environment: string;
  updatedAt: string;
  /** The monitor's process, to tell a live view from a stale one. */
  pid: number;
  hostname: string;
  services: ServiceSnapshot[];
}

/** Where the state file of an environment is. */
export function stateFile(root: string, envName: string): string {
  return path.join(monitorDir(root, envName), "state.json");
}

/** Keeps state.json current: rewritten after state changes and remediations, never two writes at once, the latest view wins. */
export class StateFileWriter {
  readonly file: string;
  readonly #view: () => MonitorStateFile;
  readonly #onError: (e: unknown) => void;
  #writing: Promise<void> | undefined;
  #dirty = false;
  #failed = false;

  constructor(file: string, view: () => MonitorStateFile, onError: (e: unknown) => void = () => undefined) {
    this.file = file;
    this.#view = view;
    this.#onError = onError;
  }

  /** The sink: state and action events schedule a write. */
  readonly sink = (e: MonitorEvent): void => {
    if (e.type === "state" || e.type === "action") this.touch();
  };

  /** Schedules a write. */
  touch(): void {
    this.#dirty = true;
    this.#writing ??= this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        const text = JSON.stringify(this.#view(), null, 2) + "\n";
        await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
        const tmp = `${this.file}.${process.pid}.tmp`;
        await writeFile(tmp, text, { mode: 0o600 });
        await rename(tmp, this.file);
      }
    } catch (e) {
      if (!this.#failed) this.#onError(e);
      this.#failed = true;
    } finally {
      this.#writing = undefined;
    }
  }

  /** Resolves when pending writes are done. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }
}

/** Reads an environment's state.json; undefined when there is none (no monitor ran) or it is unreadable. */
export async function readMonitorState(root: string, envName: string): Promise<MonitorStateFile | undefined> {
  try {
    const data = JSON.parse(await readFile(stateFile(root, envName), "utf8")) as MonitorStateFile;
    return Array.isArray(data.services) ? data : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the monitor that wrote the file still runs (same host only; elsewhere unknown). */
export function monitorAlive(s: Pick<MonitorStateFile, "pid" | "hostname">, thisHost: string, alive: (pid: number) => boolean): boolean | undefined {
  if (s.hostname !== thisHost) return undefined;
  return alive(s.pid);
}

/** One line per service for `homelab status`: health and last remediation. Pure. */
export function healthLines(s: MonitorStateFile | undefined, service: string): { health: string; remediation: string | undefined } | undefined {
  const row = s?.services.find((x) => x.service === service);
  if (!row) return undefined;
  const health = `${row.phase.replace("_", " ")} since ${row.since.replace(/\.\d+Z$/, "Z")}${row.phase === "healthy" ? "" : ` (${row.reason})`}`;
  const r = row.lastRemediation;
  return { health, remediation: r ? `${r.action} at ${r.at.replace(/\.\d+Z$/, "Z")}: ${r.outcome}${r.detail ? ` (${r.detail})` : ""}` : undefined };
}
