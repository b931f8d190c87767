import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { emptyEnvironment } from "../../src/config/environment.ts";
import { resolveSecrets, secretEnvVar } from "../../src/config/secrets.ts";
import { findDiag, makeRepo } from "../helpers/repo.ts";

test("env var names: service, then key, upper case", () => {
  assert.equal(secretEnvVar("peach", "db_password"), "PEACH_DB_PASSWORD");
  assert.equal(secretEnvVar("my-app", "api.key"), "MY_APP_API_KEY");
});

test("secrets come from env vars first, then .secrets.yaml; missing ones name all three ways", () => {
  const repo = makeRepo({
    "services/peach/.secrets.example.yaml": "db_password: the database password\napi_key: x\ntoken: y\n",
    "services/peach/.secrets.yaml": "db_password: from-file\napi_key: from-file\n",
  });
  try {
    const dir = join(repo.root, "services/peach");
    const r = resolveSecrets("peach", dir, undefined, { PEACH_API_KEY: "from-env" });
    assert.deepEqual(r.statuses.map((s) => [s.key, s.provided]), [["db_password", "file"], ["api_key", "env"], ["token", undefined]]);
    assert.equal(r.values.get("api_key"), "from-env");
    assert.equal(r.values.get("db_password"), "from-file");
    const d = findDiag(r.diagnostics, 'required secret "token"');
    assert.equal(d.line, 3);
    assert.match(d.hint ?? "", /PEACH_TOKEN.*\.secrets\.yaml.*Pulumi ESC/);
    // Values never appear in diagnostics.
    assert.ok(!JSON.stringify(r.diagnostics).includes("from-file"));
  } finally {
    repo.cleanup();
  }
});

test("with an ESC environment, secrets not found locally are expected from ESC", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "token: y\n" });
  try {
    const env = { ...emptyEnvironment("prod"), escEnvironments: ["homelab/prod"] };
    const r = resolveSecrets("peach", join(repo.root, "services/peach"), env, {});
    assert.equal(r.statuses[0]?.provided, "esc");
    assert.deepEqual(r.diagnostics, []);
  } finally {
    repo.cleanup();
  }
});

test("a world-readable .secrets.yaml is warned about; undeclared keys too", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "a: x\n", "services/peach/.secrets.yaml": "a: 1\nb: 2\n" });
  try {
    chmodSync(join(repo.root, "services/peach/.secrets.yaml"), 0o644);
    const r = resolveSecrets("peach", join(repo.root, "services/peach"), undefined, {});
    assert.equal(findDiag(r.diagnostics, "readable by others").severity, "warning");
    assert.equal(findDiag(r.diagnostics, 'secret "b" is not listed').line, 2);
    assert.equal(r.values.get("a"), "1");
  } finally {
    repo.cleanup();
  }
});
