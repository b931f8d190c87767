/**
 * Secrets as `validate`, `show` and `deploy` present them: every source
 * named, values never printed, commands and SOPS decryption never run by
 * the commands that only look, and ESC refused at once on a self-managed
 * backend, located at the environment file's import.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

function homelab(root: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const base: NodeJS.ProcessEnv = { PATH: process.env["PATH"], HOME: process.env["HOME"], NO_COLOR: "1", CI: "" };
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, "--dir", root, ...args], { env: { ...base, ...env } }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
  });
}

const VALUES = { env: "value-from-env-1f3a", file: "value-from-file-9b2c", command: "value-from-command-77d1" };
const ENC = "ENC[AES256_GCM,data:3q2+7w==,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]";

function repoWithSecrets(): ReturnType<typeof makeRepo> {
  const repo = makeRepo({
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}`,
    "services/app/.secrets.example.yaml": [
      "from_env: set in the environment",
      "from_file: in .secrets.yaml",
      "from_sops: in the SOPS file",
      "from_command:",
      "  description: from the password manager",
      "  command: [./pm, app/from_command]",
      "",
    ].join("\n"),
    "services/app/.secrets.yaml": `from_file: ${VALUES.file}\n`,
    "services/app/.secrets.sops.yaml": `from_sops: ${ENC}\nsops:\n    age:\n        - recipient: age1qqq\n          enc: x\n    mac: ${ENC}\n    version: 3.13.3\n`,
  });
  // The fake password manager leaves a mark when it runs: validate and show must not run it.
  writeFileSync(join(repo.root, "services/app/pm"), `#!/bin/sh\ntouch ran.mark\necho ${VALUES.command}\n`);
  chmodSync(join(repo.root, "services/app/pm"), 0o755);
  return repo;
}

void describe("secrets in validate, show and deploy", () => {
  void it("validate and show name each secret's source and never print a value, nor run a command", async () => {
    const repo = repoWithSecrets();
    try {
      const env = { APP_FROM_ENV: VALUES.env };
      const v = await homelab(repo.root, ["validate", "--env", "test"], env);
      assert.equal(v.code, 0, v.stderr);
      const human = await homelab(repo.root, ["show", "app", "--env", "test"], env);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /from_env +provided by \$APP_FROM_ENV\n/);
      assert.match(human.stdout, /from_file +provided by \.secrets\.yaml\n/);
      assert.match(human.stdout, /from_sops +provided by \.secrets\.sops\.yaml \(decrypted at deploy\)\n/);
      assert.match(human.stdout, /from_command +fetched at deploy by `\.\/pm app\/from_command`\n/);
      const json = await homelab(repo.root, ["show", "app", "--env", "test", "--json"], env);
      const secrets = (JSON.parse(json.stdout) as { secrets: Array<{ key: string; provided: string }> }).secrets;
      assert.deepEqual(secrets.map((s) => [s.key, s.provided]), [["from_env", "env"], ["from_file", "file"], ["from_sops", "sops"], ["from_command", "command"]]);
      const all = [v, human, json].map((r) => r.stdout + r.stderr).join("\n");
      for (const value of Object.values(VALUES)) assert.ok(!all.includes(value), `${value} was printed`);
      assert.equal(existsSync(join(repo.root, "services/app/ran.mark")), false, "validate or show ran the secrets command");
    } finally {
      repo.cleanup();
    }
  });

  void it("ESC with the default (file) backend: validate and deploy fail at the import line, saying what to do; with Pulumi Cloud validate accepts it", async () => {
    const repo = makeRepo({
      "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}`,
      "services/app/.secrets.example.yaml": "token: from ESC\n",
      "Pulumi.test.yaml": "# secrets from Pulumi ESC\nenvironment:\n  - homelab/test\nconfig:\n  homelab:tier1_hosts: [pve-01]\n",
    });
    try {
      const where = /^Pulumi\.test\.yaml:3:5: secret "token" of service app would come from the Pulumi ESC environment "homelab\/test" imported here, but ESC works only with Pulumi Cloud and the state backend is a self-managed one \(file:\/\/\) \(provide them without ESC: \.secrets\.sops\.yaml/m;
      const v = await homelab(repo.root, ["validate", "--env", "test"]);
      assert.equal(v.code, 1);
      assert.match(v.stderr, where);
      assert.doesNotMatch(v.stderr, /required secret "token"/, "one error, not two");
      const pg = await homelab(repo.root, ["validate", "--env", "test"], { PULUMI_BACKEND_URL: "postgres://homelab:hunter2@db.lan/state" });
      assert.match(pg.stderr, /self-managed one \(postgres:\/\/\)/);
      assert.ok(!pg.stderr.includes("hunter2"));
      const d = await homelab(repo.root, ["deploy", "app", "--env", "test", "--dry-run"]);
      assert.equal(d.code, 1, d.stdout + d.stderr);
      assert.match(d.stderr, where);
      const show = await homelab(repo.root, ["show", "app", "--env", "test"]);
      assert.match(show.stdout, /token +MISSING: it would come from Pulumi ESC, which needs a Pulumi Cloud backend/);
      const cloud = await homelab(repo.root, ["validate", "--env", "test"], { PULUMI_BACKEND_URL: "https://api.pulumi.com" });
      assert.equal(cloud.code, 0, cloud.stderr);
      assert.match((await homelab(repo.root, ["show", "app", "--env", "test"], { PULUMI_BACKEND_URL: "https://api.pulumi.com" })).stdout, /token +expected from Pulumi ESC/);
    } finally {
      repo.cleanup();
    }
  });
});
