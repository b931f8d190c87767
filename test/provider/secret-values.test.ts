/**
 * Reading the secrets only a deploy reads: SOPS files decrypted in memory and
 * commands such as a password manager's, run without a shell. The argv each
 * gets is asserted; a value never reaches a message, a process's arguments
 * or a file; and a real SOPS + age round trip decrypts what sops encrypted.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { emptyEnvironment } from "../../src/config/environment.ts";
import { resolveSecrets } from "../../src/config/secrets.ts";
import type { DeferredSecret } from "../../src/config/secrets.ts";
import { describeBackend } from "../../src/config/state-backend.ts";
import { deploymentSecrets } from "../../src/provider/deployment-secrets.ts";
import { readDeferredSecrets, runSecretProcess } from "../../src/provider/secret-values.ts";
import type { SecretProcessResult, SecretRunner } from "../../src/provider/secret-values.ts";
import { sopsTools } from "../helpers/services.ts";
import { makeRepo } from "../helpers/repo.ts";

const DECLARED = { file: "/repo/services/peach/.secrets.example.yaml", line: 4, col: 12 };

function result(o: Partial<SecretProcessResult>): SecretProcessResult {
  return { stdout: Buffer.from(""), stderr: "", code: 0, signal: null, timedOut: false, tooLarge: false, spawnError: undefined, ...o };
}

/** A runner that records what it was asked to run and answers from a table by program. */
function fakeRunner(answers: Record<string, SecretProcessResult>): { run: SecretRunner; calls: Array<{ argv: readonly string[]; cwd: string; timeoutMs: number }> } {
  const calls: Array<{ argv: readonly string[]; cwd: string; timeoutMs: number }> = [];
  return {
    calls,
    run: (argv, o) => {
      calls.push({ argv, cwd: o.cwd, timeoutMs: o.timeoutMs });
      const r = answers[argv[0] ?? ""];
      return Promise.resolve({ ...(r ?? result({ code: 127 })), stdout: Buffer.from(r?.stdout ?? "") });
    },
  };
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => execFile(file, args, { env }, (e, out, err) => (e ? reject(new Error(`${file}: ${e.message}\n${err}`)) : resolve(out))));
}

void describe("deferred secrets: what runs, with which arguments", () => {
  const sopsFile = "/repo/services/peach/.secrets.sops.yaml";
  const deferred: DeferredSecret[] = [
    { key: "a", kind: "sops", file: sopsFile },
    { key: "b", kind: "command", command: { argv: ["op", "read", "op://homelab/peach/b"], timeoutSec: 45, cwd: "/repo/services/peach", declaredAt: DECLARED } },
    { key: "c", kind: "sops", file: sopsFile },
  ];

  void it("a SOPS file is decrypted once with `sops --decrypt FILE`, a command run as its argv; one trailing line break is dropped", async () => {
    const f = fakeRunner({ sops: result({ stdout: Buffer.from(JSON.stringify({ a: "alpha", c: 42, unused: "x" })) }), op: result({ stdout: Buffer.from("bravo two\n") }) });
    const values = await readDeferredSecrets("peach", deferred, { PATH: "/bin" }, f.run);
    assert.deepEqual([...values], [["a", "alpha"], ["b", "bravo two"], ["c", "42"]]);
    assert.deepEqual(f.calls, [
      { argv: ["sops", "--decrypt", "--input-type", "yaml", "--output-type", "json", sopsFile], cwd: "/repo/services/peach", timeoutMs: 60_000 },
      { argv: ["op", "read", "op://homelab/peach/b"], cwd: "/repo/services/peach", timeoutMs: 45_000 },
    ]);
  });

  void it("a failing command is named with where it is declared; what it printed is not shown", async () => {
    const f = fakeRunner({ sops: result({ stdout: Buffer.from('{"a":"x","c":"y"}') }), op: result({ code: 1, stdout: Buffer.from("LEAKED-VALUE"), stderr: "LEAKED-ERROR" }) });
    const error = await readDeferredSecrets("peach", deferred, {}, f.run).then(() => undefined, (e: Error) => e);
    assert.ok(error);
    assert.equal(
      error.message,
      'the command for secret "b" of service peach (`op read op://homelab/peach/b`, from /repo/services/peach/.secrets.example.yaml:4:12) exited with code 1; its output is not shown: run it yourself to see why (is the password manager signed in?), or raise its timeout at /repo/services/peach/.secrets.example.yaml:4:12',
    );
    assert.ok(!error.message.includes("LEAKED"));
    const empty = await readDeferredSecrets("peach", deferred.slice(1, 2), {}, fakeRunner({ op: result({ stdout: Buffer.from("\n") }) }).run).then(() => "", (e: Error) => e.message);
    assert.match(empty, /printed nothing/);
  });

  void it("sops failures are explained from its own messages, never echoing them", async () => {
    const noKey = fakeRunner({ sops: result({ code: 128, stderr: "Failed to get the data key required to decrypt the SOPS file.\n failed to load age identities. Did not find keys in locations ..." }) });
    const e1 = await readDeferredSecrets("peach", deferred.slice(0, 1), {}, noKey.run).then(() => "", (e: Error) => e.message);
    assert.equal(e1.split(":")[0], "cannot decrypt services/peach/.secrets.sops.yaml of service peach");
    assert.match(e1, /no age key here can decrypt it: set SOPS_AGE_KEY_FILE .* or SOPS_AGE_KEY/);
    const other = fakeRunner({ sops: result({ code: 1, stderr: "Error unmarshalling input: line 3: LEAKED-LINE" }) });
    const e2 = await readDeferredSecrets("peach", deferred.slice(0, 1), {}, other.run).then(() => "", (e: Error) => e.message);
    assert.match(e2, /sops --decrypt exited with code 1: run `sops --decrypt services\/peach\/\.secrets\.sops\.yaml > \/dev\/null` yourself/);
    assert.ok(!e2.includes("LEAKED"));
    const missing = fakeRunner({ sops: result({ spawnError: Object.assign(new Error("spawn sops ENOENT"), { code: "ENOENT" }), code: null }) });
    assert.match(await readDeferredSecrets("peach", deferred.slice(0, 1), {}, missing.run).then(() => "", (e: Error) => e.message), /sops is not installed or not on PATH: install sops 3\.x/);
  });
});

void describe("the executor runs a fake password manager for real", () => {
  const SECRET = "pm-secret-" + Math.random().toString(36).slice(2);

  void it("no shell, found next to the file declaring it; the value is in no process's arguments while it runs, nor in any message", async () => {
    const repo = makeRepo({
      "services/peach/.secrets.example.yaml": "db_password:\n  description: from the fake password manager\n  command: [./fake-pm, 'read', 'vault/peach db', '$HOME;*']\n",
    });
    try {
      const dir = join(repo.root, "services/peach");
      writeFileSync(join(dir, "vault-item"), SECRET);
      // It records its argv (one per line), waits so the test can look at every process, then prints the item.
      writeFileSync(join(dir, "fake-pm"), '#!/bin/sh\nprintf "%s\\n" "$@" > argv.seen\nsleep 1\ncat vault-item\n');
      chmodSync(join(dir, "fake-pm"), 0o755);
      let seenRunning = false;
      let inArguments = false;
      const watch = setInterval(() => {
        for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
          let cmdline: string;
          try {
            cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
          } catch {
            continue; // gone meanwhile
          }
          if (cmdline.includes("fake-pm")) seenRunning = true;
          if (cmdline.includes(SECRET)) inArguments = true;
        }
      }, 100);
      let got;
      try {
        got = await deploymentSecrets({ root: repo.root, env: emptyEnvironment("test"), service: "peach", registries: [], processEnv: { PATH: process.env["PATH"], PULUMI_BACKEND_URL: "file:///x" } });
      } finally {
        clearInterval(watch);
      }
      assert.equal(got.secrets.get("db_password"), SECRET);
      assert.ok(seenRunning, "the watcher saw the password manager run");
      assert.equal(inArguments, false, "the secret was in a process's arguments");
      // Passed as given: no shell expanded $HOME or the glob, the space stayed inside its word.
      assert.deepEqual(readFileSync(join(dir, "argv.seen"), "utf8").split("\n").slice(0, -1), ["read", "vault/peach db", "$HOME;*"]);
      assert.ok(!got.hash.includes(SECRET));
    } finally {
      repo.cleanup();
    }
  });

  void it("a command that hangs is stopped at its timeout; one that cannot start says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-pm-"));
    try {
      const t = Date.now();
      const slow = await runSecretProcess(["sleep", "30"], { cwd: dir, env: { PATH: process.env["PATH"] }, timeoutMs: 500 });
      assert.ok(slow.timedOut && Date.now() - t < 10_000);
      const cmd = { argv: ["sleep", "30"], timeoutSec: 1, cwd: dir, declaredAt: DECLARED };
      const e = await readDeferredSecrets("peach", [{ key: "k", kind: "command", command: cmd }], { PATH: process.env["PATH"] }).then(() => "", (x: Error) => x.message);
      assert.match(e, /`sleep 30`.* did not finish within 1 s and was stopped; its output is not shown/);
      const none = await readDeferredSecrets("peach", [{ key: "k", kind: "command", command: { ...cmd, argv: ["no-such-password-manager-hl"] } }], { PATH: "/nonexistent" }).then(() => "", (x: Error) => x.message);
      assert.match(none, /could not start \(ENOENT\): install no-such-password-manager-hl or put it on PATH/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it("ESC on a self-managed backend fails the deploy's secrets with the located error, before anything runs", async () => {
    const repo = makeRepo({ "services/peach/.secrets.example.yaml": "token: from ESC\n", "Pulumi.lab.yaml": "environment: [homelab/lab]\nconfig: {}\n" });
    try {
      const env = { ...emptyEnvironment("lab"), file: join(repo.root, "Pulumi.lab.yaml"), escEnvironments: [{ name: "homelab/lab", line: 1, col: 15 }] };
      const e = await deploymentSecrets({ root: repo.root, env, service: "peach", registries: [], processEnv: { PULUMI_BACKEND_URL: "s3://state?endpoint=127.0.0.1:9" } }).then(() => "", (x: Error) => x.message);
      assert.match(e, /^Pulumi\.lab\.yaml:1:15: secret "token" of service peach would come from the Pulumi ESC environment "homelab\/lab" imported here, but ESC works only with Pulumi Cloud and the state backend is a self-managed one \(s3:\/\/\)/);
      const cloud = await deploymentSecrets({ root: repo.root, env, service: "peach", registries: [], processEnv: { PULUMI_BACKEND_URL: "https://api.pulumi.com" } }).then(() => "", (x: Error) => x.message);
      assert.match(cloud, /would come from Pulumi ESC, which the homelab provider cannot read/);
    } finally {
      repo.cleanup();
    }
  });
});

void describe("[root][sops] SOPS with age, for real: encrypted by sops, checked without the key, decrypted in memory", { timeout: 20 * 60_000 }, () => {
  void it("round trip: age-keygen, sops --encrypt, validation without the key, decryption with SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, a clear error without", async () => {
    const tools = await sopsTools();
    const repo = makeRepo({ "services/peach/.secrets.example.yaml": "api_key: the API key\ndb_password: the database password\n" });
    const home = mkdtempSync(join(tmpdir(), "homelab-sops-home-"));
    try {
      const dir = join(repo.root, "services/peach");
      const keyFile = join(home, "age.key");
      await run(tools.ageKeygen, ["-o", keyFile], { PATH: tools.path });
      const recipient = (await run(tools.ageKeygen, ["-y", keyFile], { PATH: tools.path })).trim();
      assert.match(recipient, /^age1[0-9a-z]{58}$/);
      const values = { api_key: "sops-api-" + Math.random().toString(36).slice(2), db_password: "it's \"quoted\" $and spaced" };
      const plain = join(home, "plain.yaml");
      writeFileSync(plain, `api_key: ${JSON.stringify(values.api_key)}\ndb_password: ${JSON.stringify(values.db_password)}\n`);
      const encrypted = await run(tools.sops, ["--encrypt", "--age", recipient, "--input-type", "yaml", "--output-type", "yaml", plain], { PATH: tools.path, HOME: home });
      rmSync(plain);
      writeFileSync(join(dir, ".secrets.sops.yaml"), encrypted);
      assert.ok(!encrypted.includes(values.api_key));

      // Validation reads the keys in plain text: no key needed, no problem found.
      const noKeyEnv = { PATH: tools.path, HOME: home };
      const checked = resolveSecrets("peach", dir, undefined, noKeyEnv, { backend: describeBackend("file:///x") });
      assert.deepEqual(checked.diagnostics, []);
      assert.deepEqual(checked.statuses.map((s) => s.provided), ["sops", "sops"]);

      for (const keyEnv of [{ SOPS_AGE_KEY_FILE: keyFile }, { SOPS_AGE_KEY: readFileSync(keyFile, "utf8") }]) {
        const got = await deploymentSecrets({ root: repo.root, env: emptyEnvironment("test"), service: "peach", registries: [], processEnv: { ...noKeyEnv, ...keyEnv } });
        assert.deepEqual(Object.fromEntries(got.secrets), values);
      }
      const without = await deploymentSecrets({ root: repo.root, env: emptyEnvironment("test"), service: "peach", registries: [], processEnv: noKeyEnv }).then(() => "", (e: Error) => e.message);
      assert.match(without, /^cannot decrypt services\/peach\/\.secrets\.sops\.yaml of service peach: no age key here can decrypt it: set SOPS_AGE_KEY_FILE/);

      // Decrypted in memory only: no file of the repository or the home folder holds a value.
      for (const f of [...files(repo.root), ...files(home)]) {
        const text = readFileSync(f, "utf8");
        assert.ok(!text.includes(values.api_key) && !text.includes(values.db_password), `${f} holds a decrypted value`);
      }
      // A value changed by hand after encryption is caught without the key, at its line.
      writeFileSync(join(dir, ".secrets.sops.yaml"), encrypted.replace(/^db_password: .*$/m, "db_password: typed-in-later"));
      const tampered = resolveSecrets("peach", dir, undefined, noKeyEnv, { backend: describeBackend("file:///x") }).diagnostics;
      assert.deepEqual(tampered.map((d) => [d.line, d.message.split(":")[0]]), [[2, 'the value of "db_password" is not encrypted']]);
    } finally {
      repo.cleanup();
      rmSync(home, { recursive: true, force: true });
    }
  });
});
