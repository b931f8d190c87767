import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeBackend } from "../../src/config/state-backend.ts";
import { emptyEnvironment, loadEnvironment } from "../../src/config/environment.ts";
import type { EnvironmentConfig } from "../../src/config/environment.ts";
import { resolveSecrets, secretEnvVar } from "../../src/config/secrets.ts";
import type { SecretsContext } from "../../src/config/secrets.ts";
import { formatDiagnostic } from "../../src/util/diagnostics.ts";
import { findDiag, makeRepo } from "../helpers/repo.ts";

const DIY: SecretsContext = { backend: describeBackend("file:///repo/.homelab/state") };
const CLOUD: SecretsContext = { backend: describeBackend("https://api.pulumi.com") };

/** An encrypted value as SOPS writes it (the data is not real ciphertext: validation never decrypts). */
const ENC = (type = "str") => `ENC[AES256_GCM,data:3q2+7w==,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:${type}]`;
const SOPS_META = ["sops:", "    age:", "        - recipient: age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "          enc: x", `    mac: ${ENC()}`, "    version: 3.13.3", ""].join("\n");

function withEnv(root: string, name: string, text: string): EnvironmentConfig {
  writeFileSync(join(root, `Pulumi.${name}.yaml`), text);
  const loaded = loadEnvironment(root, name);
  assert.ok(loaded.env, JSON.stringify(loaded.diagnostics));
  return loaded.env;
}

test("env var names: service, then key, upper case", () => {
  assert.equal(secretEnvVar("peach", "db_password"), "PEACH_DB_PASSWORD");
  assert.equal(secretEnvVar("my-app", "api.key"), "MY_APP_API_KEY");
});

test("backend kinds: http(s) is Pulumi Cloud, every other scheme self-managed; the URL itself is not kept", () => {
  assert.deepEqual(describeBackend("https://api.pulumi.com"), { kind: "cloud", scheme: "https" });
  assert.deepEqual(describeBackend("postgres://u:pw@db:5432/state"), { kind: "diy", scheme: "postgres" });
  assert.deepEqual(describeBackend("s3://bucket?endpoint=x"), { kind: "diy", scheme: "s3" });
  assert.deepEqual(describeBackend("file:///srv/state"), { kind: "diy", scheme: "file" });
  assert.equal(describeBackend(undefined).kind, "cloud");
  assert.ok(!JSON.stringify(describeBackend("postgres://u:pw@db/state")).includes("pw"));
});

test("precedence: environment variable, .secrets.yaml, .secrets.sops.yaml, the key's command, the environment's command, ESC", () => {
  const repo = makeRepo({
    "services/peach/.secrets.example.yaml": [
      "a: in every source",
      "b:",
      "  description: in all but the environment variable",
      "  command: [pm, get, b]",
      "c: { description: in the SOPS file and commands, command: [pm, get, c] }",
      "d: { description: the key's command and the environment's, command: [pm, get, '{service}/{key}'], timeout: 90 }",
      "e: only the environment's command",
      "",
    ].join("\n"),
    "services/peach/.secrets.yaml": "a: from-file\nb: from-file\n",
    "services/peach/.secrets.sops.yaml": `a: ${ENC()}\nb: ${ENC()}\nc: ${ENC("int")}\n${SOPS_META}`,
  });
  try {
    const env = withEnv(repo.root, "lab", "environment: [homelab/lab]\nconfig:\n  homelab:secrets_command: [vault-get, 'homelab/{env}/{service}/{key}']\n");
    const r = resolveSecrets("peach", join(repo.root, "services/peach"), env, { PEACH_A: "from-env" }, CLOUD);
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(r.statuses.map((s) => [s.key, s.provided, s.from]), [
      ["a", "env", "$PEACH_A"],
      ["b", "file", ".secrets.yaml"],
      ["c", "sops", ".secrets.sops.yaml"],
      ["d", "command", "pm get peach/d"],
      ["e", "command", "vault-get homelab/lab/peach/e"],
    ]);
    assert.deepEqual([...r.values], [["a", "from-env"], ["b", "from-file"]]);
    const [c, d, e] = r.deferred;
    assert.deepEqual(c, { key: "c", kind: "sops", file: join(repo.root, "services/peach/.secrets.sops.yaml") });
    assert.ok(d?.kind === "command" && e?.kind === "command");
    assert.deepEqual([d.command.argv, d.command.timeoutSec, d.command.cwd, d.command.declaredAt.line], [["pm", "get", "peach/d"], 90, join(repo.root, "services/peach"), 6]);
    assert.deepEqual([e.command.argv, e.command.timeoutSec, e.command.cwd, e.command.declaredAt.line], [["vault-get", "homelab/lab/peach/e"], 30, repo.root, 3]);
    // With nothing else, ESC (on Pulumi Cloud) is last.
    const bare = resolveSecrets("peach", join(repo.root, "services/peach"), { ...env, secretsCommand: undefined }, {}, CLOUD);
    assert.deepEqual(bare.statuses.map((s) => s.provided), ["file", "file", "sops", "command", "esc"]);
  } finally {
    repo.cleanup();
  }
});

test("a missing secret is located at its key, names every way to provide it, and ESC only on Pulumi Cloud", () => {
  const repo = makeRepo({
    "services/peach/.secrets.example.yaml": "db_password: the database password\napi_key: x\ntoken: y\n",
    "services/peach/.secrets.yaml": "db_password: from-file\napi_key: from-file\n",
  });
  try {
    const dir = join(repo.root, "services/peach");
    const r = resolveSecrets("peach", dir, undefined, { PEACH_API_KEY: "from-env" }, DIY);
    assert.deepEqual(r.statuses.map((s) => [s.key, s.provided]), [["db_password", "file"], ["api_key", "env"], ["token", undefined]]);
    const d = findDiag(r.diagnostics, 'required secret "token"');
    assert.equal(formatDiagnostic(d, repo.root).split(" (")[0], 'services/peach/.secrets.example.yaml:3:1: required secret "token" of service peach is not provided');
    assert.match(d.hint ?? "", /PEACH_TOKEN.*\.secrets\.yaml.*\.secrets\.sops\.yaml.*command/);
    assert.doesNotMatch(d.hint ?? "", /ESC/);
    assert.match(findDiag(resolveSecrets("peach", dir, undefined, {}, CLOUD).diagnostics, '"token"').hint ?? "", /Pulumi ESC/);
    assert.ok(!JSON.stringify(r.diagnostics).includes("from-file") && !JSON.stringify(r.diagnostics).includes("from-env"));
  } finally {
    repo.cleanup();
  }
});

test("ESC with a self-managed backend: one located error at the environment file's import, naming the keys and what to do instead", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "token: y\napi_key: z\nlocal: w\n", "services/peach/.secrets.yaml": "local: v\n" });
  try {
    const dir = join(repo.root, "services/peach");
    for (const [text, line, col] of [
      ["# ESC\nenvironment:\n  - homelab/prod\nconfig: {}\n", 3, 5],
      ["environment:\n  imports:\n    - homelab/prod\nconfig: {}\n", 3, 7],
      ["config:\n  pulumi-esc:\n    environments: [homelab/prod]\n", 3, 20],
    ] as const) {
      const env = withEnv(repo.root, "prod", text);
      const r = resolveSecrets("peach", dir, env, {}, { backend: describeBackend("postgres://u:hunter2@db/state") });
      assert.equal(r.diagnostics.length, 1, JSON.stringify(r.diagnostics));
      const d = r.diagnostics[0];
      assert.ok(d);
      assert.deepEqual([d.file, d.line, d.col, d.severity], [join(repo.root, "Pulumi.prod.yaml"), line, col, "error"]);
      assert.match(d.message, /secrets "token", "api_key" of service peach would come from the Pulumi ESC environment "homelab\/prod" imported here, but ESC works only with Pulumi Cloud and the state backend is a self-managed one \(postgres:\/\/\)/);
      assert.match(d.hint ?? "", /\.secrets\.sops\.yaml.*secrets_command.*PEACH_TOKEN, PEACH_API_KEY.*docs\/secrets\.md/);
      assert.ok(!JSON.stringify(d).includes("hunter2"), "the backend URL (with its password) is never in a message");
      assert.deepEqual(r.statuses.map((s) => s.provided), [undefined, undefined, "file"]);
      // The same configuration on Pulumi Cloud counts them as ESC's.
      const cloud = resolveSecrets("peach", dir, env, {}, CLOUD);
      assert.deepEqual([cloud.diagnostics, cloud.statuses.map((s) => s.provided)], [[], ["esc", "esc", "file"]]);
    }
  } finally {
    repo.cleanup();
  }
});

test("a SOPS file is checked without its key: keys counted, plain values and missing metadata located, never quoted", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "a: x\nb: y\n" });
  const file = join(repo.root, "services/peach/.secrets.sops.yaml");
  const check = (text: string) => {
    writeFileSync(file, text);
    return resolveSecrets("peach", join(repo.root, "services/peach"), undefined, {}, DIY);
  };
  try {
    const ok = check(`a: ${ENC()}\nb: ${ENC("bool")}\nextra: ${ENC()}\n${SOPS_META}`);
    assert.deepEqual(ok.statuses.map((s) => s.provided), ["sops", "sops"]);
    const extra = findDiag(ok.diagnostics, 'secret "extra" is not listed');
    assert.deepEqual([extra.severity, extra.line], ["warning", 3]);

    const plain = check(`a: ${ENC()}\nb: plaintext-typed-by-hand\n${SOPS_META}`);
    const d = findDiag(plain.diagnostics, 'the value of "b" is not encrypted');
    assert.equal(formatDiagnostic(d, repo.root).split(" (")[0], 'services/peach/.secrets.sops.yaml:2:4: the value of "b" is not encrypted: the file was edited without SOPS, which will refuse it');
    assert.match(d.hint ?? "", /sops edit/);
    assert.ok(!JSON.stringify(plain.diagnostics).includes("plaintext-typed-by-hand"));

    const notSops = check("a: one\nb: two\n");
    const n = findDiag(notSops.diagnostics, "is not encrypted with SOPS");
    assert.deepEqual([n.line, n.col, n.severity], [1, 1, "error"]);
    assert.match(n.hint ?? "", /sops --encrypt --age/);
    assert.deepEqual(notSops.statuses.map((s) => s.provided), [undefined, undefined]);

    findDiag(check(`a: ${ENC()}\nb:\n  nested: ${ENC()}\n${SOPS_META}`).diagnostics, 'secret "b" must be a single value, not a mapping');
    findDiag(check(`a: ${ENC()}\nb: ${ENC()}\nsops:\n    mac: ${ENC()}\n    version: 3.13.3\n`).diagnostics, "names no recipient");
    findDiag(check(`a: ${ENC()}\nb: ${ENC()}\n${SOPS_META.replace(/ {4}mac: .*\n/, "")}`).diagnostics, "no valid mac");
    // SOPS's own rules may leave values plain: those are not errors.
    const inSops = (r: ReturnType<typeof check>) => r.diagnostics.filter((x) => x.file === file);
    assert.deepEqual(inSops(check(`a: ${ENC()}\nb_unencrypted: visible\n${SOPS_META}    unencrypted_suffix: _unencrypted\n`)).filter((x) => x.severity === "error"), []);
    assert.deepEqual(inSops(check(`a: ${ENC()}\nb: visible\n${SOPS_META}    encrypted_regex: ^a$\n`)), []);
    assert.equal(findDiag(check("a: [unclosed\n").diagnostics, "YAML syntax error").file, file);
  } finally {
    repo.cleanup();
  }
});

test("commands are lists run without a shell: a string, an empty list, a bad word, an unknown field or timeout are located errors", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "" });
  const dir = join(repo.root, "services/peach");
  const check = (example: string) => {
    writeFileSync(join(dir, ".secrets.example.yaml"), example);
    return resolveSecrets("peach", dir, undefined, {}, DIY).diagnostics;
  };
  try {
    const s = findDiag(check("k:\n  command: op read op://vault/item/field\n"), "must be a list of words");
    assert.deepEqual([s.line, s.col, s.field], [2, 12, "k.command"]);
    assert.equal(s.hint, "write it as [op, read, op://vault/item/field]");
    findDiag(check("k: { command: [] }\n"), "k.command must be a non-empty list");
    assert.equal(findDiag(check("k: { command: [op, 5, x] }\n"), "k.command[1] must be a non-empty string").col, 20);
    assert.equal(findDiag(check("k: { comand: [op] }\n"), 'unknown field "comand"').hint, 'did you mean "command"?');
    findDiag(check("k: { command: [op], timeout: 0 }\n"), "timeout must be a whole number of seconds from 1 to 600");
    findDiag(check("k: [a, b]\n"), '"k" must be a description, or a mapping');
    // A key whose command is broken counts as not provided.
    findDiag(check("k: { command: op }\n"), 'required secret "k"');
  } finally {
    repo.cleanup();
  }
});

test("homelab:secrets_command in the environment: a list or {command, timeout}, problems located in the environment file", () => {
  const repo = makeRepo({});
  try {
    const load = (text: string) => {
      writeFileSync(join(repo.root, "Pulumi.lab.yaml"), text);
      return loadEnvironment(repo.root, "lab");
    };
    assert.deepEqual(load("config:\n  homelab:secrets_command: { command: [pass, show, 'homelab/{key}'], timeout: 120 }\n").env?.secretsCommand?.argv, ["pass", "show", "homelab/{key}"]);
    const str = findDiag(load("config:\n  homelab:secrets_command: pass show x\n").diagnostics, "homelab:secrets_command must be a list of words");
    assert.deepEqual([str.file, str.line, str.col], [join(repo.root, "Pulumi.lab.yaml"), 2, 28]);
    findDiag(load("config:\n  homelab:secrets_command: { command: [pass], timout: 5 }\n").diagnostics, 'unknown field "timout" of homelab:secrets_command');
    assert.equal(findDiag(load("config:\n  homelab:secrets_comand: [pass]\n").diagnostics, "unknown setting").hint, 'did you mean "homelab:secrets_command"?');
  } finally {
    repo.cleanup();
  }
});

test("a world-readable .secrets.yaml is warned about; undeclared keys too", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "a: x\n", "services/peach/.secrets.yaml": "a: 1\nb: 2\n" });
  try {
    chmodSync(join(repo.root, "services/peach/.secrets.yaml"), 0o644);
    const r = resolveSecrets("peach", join(repo.root, "services/peach"), undefined, {}, DIY);
    assert.equal(findDiag(r.diagnostics, "readable by others").severity, "warning");
    assert.equal(findDiag(r.diagnostics, 'secret "b" is not listed').line, 2);
    assert.equal(r.values.get("a"), "1");
  } finally {
    repo.cleanup();
  }
});

test("without an environment file nothing comes from commands or ESC", () => {
  const repo = makeRepo({ "services/peach/.secrets.example.yaml": "token: y\n" });
  try {
    const r = resolveSecrets("peach", join(repo.root, "services/peach"), emptyEnvironment("prod"), {}, CLOUD);
    assert.equal(r.statuses[0]?.provided, undefined);
    findDiag(r.diagnostics, 'required secret "token"');
  } finally {
    repo.cleanup();
  }
});
