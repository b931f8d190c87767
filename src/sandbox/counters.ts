/** Request counters keyed `"METHOD /path/template"`, so tests can prove API economy. */
export class Counters {
  private readonly counts = new Map<string, number>();

  /** Counts one request. */
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** A snapshot of all counts. */
  get(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Forgets all counts. */
  reset(): void {
    this.counts.clear();
  }
}
