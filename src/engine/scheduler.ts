/**
 * Runs tasks over a dependency graph with bounded concurrency: a task starts
 * once everything it depends on has succeeded; when one fails, the tasks
 * that depend on it (transitively) are skipped and the others carry on.
 */

/** How a task ended. */
export type TaskResult = "ok" | "stop";

/** How a node of the graph ended. */
export type NodeOutcome = { state: "ok" } | { state: "stop" } | { state: "skipped"; because: string } | { state: "cancelled" };

/** Options of runGraph. */
export interface GraphOptions {
  /** At most this many tasks at once (at least 1). */
  concurrency: number;
  /** Once aborted, tasks not started yet end as cancelled. */
  signal?: AbortSignal | undefined;
  /** Called when a node is skipped because of a failed dependency. */
  onSkip?: (node: string, because: string) => void;
}

/** Runs `run` for every node, dependencies first; returns each node's outcome. */
export async function runGraph(nodes: readonly string[], depsOf: (node: string) => readonly string[], run: (node: string) => Promise<TaskResult>, opts: GraphOptions): Promise<Map<string, NodeOutcome>> {
  const inGraph = new Set(nodes);
  const deps = new Map(nodes.map((n) => [n, depsOf(n).filter((d) => inGraph.has(d) && d !== n)]));
  const outcome = new Map<string, NodeOutcome>();
  const running = new Set<string>();
  const limit = Math.max(1, Math.floor(opts.concurrency));
  let wake: (() => void) | undefined;

  const settle = (): void => {
    // Skips cascade: a node whose dependency did not succeed is skipped at once.
    let changed = true;
    while (changed) {
      changed = false;
      for (const n of nodes) {
        if (outcome.has(n) || running.has(n)) continue;
        const bad = (deps.get(n) ?? []).find((d) => {
          const o = outcome.get(d);
          return o !== undefined && o.state !== "ok";
        });
        if (bad !== undefined) {
          const o = outcome.get(bad);
          const because = o?.state === "skipped" ? o.because : bad;
          if (o?.state === "cancelled") outcome.set(n, { state: "cancelled" });
          else {
            outcome.set(n, { state: "skipped", because });
            opts.onSkip?.(n, because);
          }
          changed = true;
        }
      }
    }
  };

  const ready = (): string[] => nodes.filter((n) => !outcome.has(n) && !running.has(n) && (deps.get(n) ?? []).every((d) => outcome.get(d)?.state === "ok"));

  const start = (n: string): void => {
    running.add(n);
    void run(n)
      .then((r) => outcome.set(n, { state: r }), () => outcome.set(n, { state: "stop" }))
      .finally(() => {
        running.delete(n);
        wake?.();
      });
  };

  const onAbort = (): void => wake?.();
  opts.signal?.addEventListener("abort", onAbort);
  try {
    for (;;) {
      settle();
      if (opts.signal?.aborted) {
        for (const n of nodes) if (!outcome.has(n) && !running.has(n)) outcome.set(n, { state: "cancelled" });
      }
      for (const n of ready()) {
        if (running.size >= limit) break;
        start(n);
      }
      if (running.size === 0) {
        // Nothing runs and nothing can start: whatever is left waits on a cycle.
        for (const n of nodes) if (!outcome.has(n)) outcome.set(n, { state: "skipped", because: "a dependency cycle" });
        return outcome;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}
