import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { REPO } from "./helpers.ts";

const run = promisify(execFile);
const FILE = join(REPO, "examples", "github-actions", "homelab.yml");

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  if?: string;
  needs?: string | string[];
  steps: Step[];
}
interface Workflow {
  on: { pull_request?: unknown; push?: { branches?: string[] } };
  jobs: Record<string, Job>;
}

/** Every `homelab ...` command line in a job's run scripts, as words. */
function homelabCommands(job: Job): string[][] {
  const out: string[][] = [];
  for (const step of job.steps) {
    for (const line of (step.run ?? "").split("\n")) {
      const m = /(?:^|\s)(?:bin\/homelab|npx homelab|homelab)\s+([^;&|#]+)/.exec(line);
      if (m?.[1]) out.push(m[1].trim().split(/\s+/));
    }
  }
  return out;
}

const GLOBAL_FLAGS = ["--dir", "--env", "--verbose", "--no-color"];

void describe("the GitHub Actions workflow example", () => {
  const wf = parse(readFileSync(FILE, "utf8")) as Workflow;

  void it("parses, runs on pull requests and on pushes to main, with Node 22", () => {
    assert.ok(wf.on.pull_request !== undefined);
    assert.deepEqual(wf.on.push?.branches, ["main"]);
    const nodes = Object.values(wf.jobs).flatMap((j) => j.steps.filter((s) => s.uses?.startsWith("actions/setup-node")).map((s) => s.with?.["node-version"]));
    assert.ok(nodes.length >= 3);
    assert.ok(nodes.every((v) => v === 22 || v === "22"));
  });

  void it("validates, previews pull requests with a summary in CI mode, and deploys main in CI mode", () => {
    const all = Object.entries(wf.jobs).map(([name, job]) => ({ name, job, cmds: homelabCommands(job).map((c) => c.join(" ")) }));
    const validate = all.find((j) => j.cmds.some((c) => c.startsWith("validate")));
    assert.ok(validate, "a job runs homelab validate");
    const preview = all.find((j) => j.cmds.some((c) => /^deploy --all --dry-run --ci --summary \S+/.test(c)));
    assert.ok(preview, "a job previews with --dry-run --ci --summary");
    assert.match(preview.job.if ?? "", /pull_request/);
    const deploy = all.find((j) => j.cmds.some((c) => /^deploy --all --ci\b/.test(c) && !c.includes("--dry-run")));
    assert.ok(deploy, "a job deploys with --ci");
    assert.match(deploy.job.if ?? "", /refs\/heads\/main/);
    for (const j of [preview, deploy]) assert.ok([j.job.needs].flat().includes(validate.name), `${j.name} needs ${validate.name}`);
  });

  void it("every homelab command and option it uses exists (checked against --help)", { timeout: 120_000 }, async () => {
    const cmds = Object.values(wf.jobs).flatMap(homelabCommands);
    assert.ok(cmds.length >= 4);
    for (const words of cmds) {
      const command = words.find((w) => !w.startsWith("-"));
      assert.ok(command, words.join(" "));
      const { stdout } = await run(process.execPath, [join(REPO, "src", "cli", "entry.ts"), command, "--help"], { env: { ...process.env, NO_COLOR: "1" } });
      assert.match(stdout, new RegExp(`^Usage: homelab ${command}\\b`, "m"), `homelab ${command} exists`);
      for (const flag of words.filter((w) => w.startsWith("--")).map((w) => w.split("=")[0] ?? w)) {
        if (GLOBAL_FLAGS.includes(flag)) continue;
        assert.ok(stdout.includes(flag), `homelab ${command} has ${flag}:\n${stdout}`);
      }
    }
  });
});
