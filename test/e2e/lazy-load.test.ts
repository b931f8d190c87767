import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { REPO } from "./helpers.ts";

const run = promisify(execFile);

// Loads the CLI with a resolve hook that records every module, runs one command, prints what was loaded.
const PROBE = `
import { registerHooks } from "node:module";
const seen = new Set();
registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
process.on("exit", () => process.stderr.write("\\nLOADED " + JSON.stringify([...seen]) + "\\n"));
process.argv = [process.argv[0], "homelab", ...JSON.parse(process.env.PROBE_ARGS)];
await import(${JSON.stringify(join(REPO, "src", "cli", "main.ts"))});
`;

async function loaded(args: string[]): Promise<string[]> {
  const r = await run(process.execPath, ["--input-type=module", "-e", PROBE], { cwd: REPO, env: { ...process.env, PROBE_ARGS: JSON.stringify(args), NO_COLOR: "1" } }).catch((e: { stdout: string; stderr: string }) => e);
  const line = r.stderr.split("\n").find((l) => l.startsWith("LOADED "));
  assert.ok(line, r.stderr);
  return JSON.parse(line.slice("LOADED ".length)) as string[];
}

void describe("commands that do not deploy never load Pulumi", () => {
  for (const args of [["list"], ["show", "peach"], ["validate", "--skip-secrets"], ["deploy", "--help"], ["status", "--help"]]) {
    void it(`homelab ${args.join(" ")}`, async () => {
      const urls = await loaded(["--dir", REPO, ...args]);
      assert.ok(urls.some((u) => u.includes("/src/cli/commands/deploy.ts")), "the deploy command is registered");
      assert.deepEqual(urls.filter((u) => u.includes("@pulumi") || u.includes("/src/engine/engine.ts")), []);
    });
  }
});
