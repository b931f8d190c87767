/** A directed graph as adjacency lists: node → the nodes it depends on. */
export type DependencyGraph = ReadonlyMap<string, readonly string[]>;

/** Every cycle's node list (first node repeated at the end), found by DFS; each cycle reported once. */
export function findCycles(graph: DependencyGraph): string[][] {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (n: string): void => {
    state.set(n, "visiting");
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (!graph.has(d)) continue;
      const s = state.get(d);
      if (s === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(d)), d];
        const key = [...cycle.slice(0, -1)].sort().join("\0");
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(cycle);
        }
      } else if (s === undefined) visit(d);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

/** Nodes in dependency order (dependencies first), as waves that can run concurrently; throws on a cycle. */
export function topologicalWaves(graph: DependencyGraph): string[][] {
  const remaining = new Map([...graph].map(([n, deps]) => [n, new Set(deps.filter((d) => graph.has(d) && d !== n))]));
  const waves: string[][] = [];
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, deps]) => deps.size === 0).map(([n]) => n).sort();
    if (ready.length === 0) throw new Error(`dependency cycle among: ${[...remaining.keys()].join(", ")}`);
    for (const n of ready) remaining.delete(n);
    for (const deps of remaining.values()) for (const n of ready) deps.delete(n);
    waves.push(ready);
  }
  return waves;
}
