/**
 * The CLI as the benchmarks run it: a child process of this Node, in a
 * temporary repository, its output gathered and its wall time measured.
 */
import { spawn } from "node:child_process";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project's folder. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = join(ROOT, "src/cli/entry.ts");

/** Runs `homelab --dir REPO ARGS...` for benchmarks; `ok` throws unless it exits 0. */
export function benchCli(repo: string): {
  run: (...args: string[]) => Promise<{ code: number; out: string; ms: number }>;
  ok: (...args: string[]) => Promise<{ out: string; ms: number }>;
} {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env["PATH"] ?? ""}`, HOMELAB_NODE: process.execPath, PULUMI_HOME: join(repo, ".pulumi-home"), NO_COLOR: "1", CI: "" };
  const run = (...args: string[]): Promise<{ code: number; out: string; ms: number }> => {
    const t0 = Date.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [ENTRY, "--dir", repo, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      child.on("close", (code) => resolve({ code: code ?? 1, out, ms: Date.now() - t0 }));
    });
  };
  return {
    run,
    ok: async (...args) => {
      const r = await run(...args);
      if (r.code !== 0) throw new Error(`homelab ${args.join(" ")} failed:\n${r.out}`);
      return r;
    },
  };
}
