/** A tiny router over path templates such as `/nodes/{node}/lxc/{vmid}`. Pure. */

/** A matched route: its value, its template and the decoded path parameters. */
export interface RouteMatch<T> {
  value: T;
  template: string;
  params: Record<string, string>;
}

interface Entry<T> {
  method: string;
  template: string;
  segments: string[];
  value: T;
}

/** Routes keyed by method and path template. */
export class Router<T> {
  private readonly entries: Entry<T>[] = [];

  /** Adds a route; later additions never shadow earlier literal matches. */
  add(method: string, template: string, value: T): void {
    this.entries.push({ method, template, segments: split(template), value });
  }

  /** Finds the route for a method and a path (without the `/api2/json` prefix). */
  match(method: string, path: string): RouteMatch<T> | undefined {
    const parts = split(path);
    let best: { entry: Entry<T>; params: Record<string, string>; literals: number } | undefined;
    for (const entry of this.entries) {
      if (entry.method !== method || entry.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let literals = 0;
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = entry.segments[i] ?? "";
        const part = parts[i] ?? "";
        if (seg.startsWith("{") && seg.endsWith("}")) {
          let decoded: string;
          try {
            decoded = decodeURIComponent(part);
          } catch {
            decoded = part;
          }
          params[seg.slice(1, -1)] = decoded;
        } else if (seg === part) {
          literals++;
        } else {
          ok = false;
        }
      }
      // Prefer literal segments (`/status/current`) over placeholders.
      if (ok && (!best || literals > best.literals)) best = { entry, params, literals };
    }
    return best ? { value: best.entry.value, template: best.entry.template, params: best.params } : undefined;
  }
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}
