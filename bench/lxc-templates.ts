/**
 * Template build time: first build (when the cache is empty or stale) and a
 * cached call. Root only. `node bench/lxc-templates.ts [--fresh]`; --fresh
 * builds into a temporary folder instead of the shared cache.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExecutor } from "../src/sandbox/lxc/exec.ts";
import { defaultTemplateDir, ensureTemplates } from "../src/sandbox/lxc/templates.ts";

const fresh = process.argv.includes("--fresh");
const dir = fresh ? await mkdtemp(join(tmpdir(), "homelab-templates-")) : defaultTemplateDir();
const executor = createExecutor({ verbose: process.argv.includes("--verbose") });
try {
  const first = await ensureTemplates({ executor, dir });
  console.log(`templates in ${dir}: ${first.templates.map((t) => `${t.volid} (${(t.size / 1e6).toFixed(1)} MB)`).join(", ")}`);
  console.log(`first call: ${(first.report.ms / 1000).toFixed(1)} s (${first.report.built ? "built" : "cached"})`);
  const second = await ensureTemplates({ executor, dir });
  console.log(`second call: ${(second.report.ms / 1000).toFixed(3)} s (${second.report.built ? "built" : "cached"})`);
} finally {
  if (fresh) await rm(dir, { recursive: true, force: true });
}
