import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import ssh2 from "ssh2";
import type { ParsedKey } from "ssh2";
import { backendCredentials, chooseBackend, displayBackendUrl, EngineSetupError, ensurePassphrase, fileBackendDir, workspaceDir, workspaceEnv } from "../../src/engine/settings.ts";
import { ensureSshKey } from "../../src/provision/ssh-key.ts";
import { parseStackName, qualifiedStackName, stackName, urnName, urnType } from "../../src/engine/stacks.ts";

const tmp = mkdtempSync(join(tmpdir(), "homelab-engine-settings-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

void describe("stack names", () => {
  void it("names one stack per environment and service, and parses it back", () => {
    assert.equal(stackName("prod", "peach"), "prod.peach");
    assert.deepEqual(parseStackName("prod.peach"), { env: "prod", service: "peach" });
    assert.deepEqual(parseStackName("organization/homelab/sandbox.my-svc"), { env: "sandbox", service: "my-svc" });
    assert.equal(parseStackName("dev"), undefined);
    assert.equal(parseStackName(".x"), undefined);
    assert.equal(qualifiedStackName("prod", "peach"), "organization/homelab/prod.peach");
  });

  void it("reads the resource id and type out of a URN", () => {
    const urn = "urn:pulumi:prod.peach::homelab::homelab:proxmox:Container::peach_container";
    assert.equal(urnName(urn), "peach_container");
    assert.equal(urnType(urn), "homelab:proxmox:Container");
    assert.equal(urnType("urn:pulumi:s::p::my:Parent$homelab:proxmox:Container::x"), "homelab:proxmox:Container");
  });
});

void describe("backend and workspace", () => {
  void it("defaults to a file backend under .homelab/state", () => {
    const b = chooseBackend("/repo", {});
    assert.equal(b.url, "file:///repo/.homelab/state");
    assert.equal(b.dir, "/repo/.homelab/state");
    assert.equal(b.isDefault, true);
    assert.equal(workspaceDir("/repo", b), "/repo/.homelab/workspace/local");
  });

  void it("honours PULUMI_BACKEND_URL, with one workspace per backend", () => {
    const s3 = chooseBackend("/repo", { PULUMI_BACKEND_URL: "s3://bucket/homelab" });
    assert.equal(s3.url, "s3://bucket/homelab");
    assert.equal(s3.dir, undefined);
    assert.equal(s3.isDefault, false);
    const other = chooseBackend("/repo", { PULUMI_BACKEND_URL: "file:///srv/state" });
    assert.equal(other.dir, "/srv/state");
    assert.notEqual(workspaceDir("/repo", s3), workspaceDir("/repo", other));
    assert.match(workspaceDir("/repo", s3), /^\/repo\/\.homelab\/workspace\/[0-9a-f]{12}$/);
  });

  void it("reads the folder of file:// URLs, with ~ and query strings", () => {
    assert.equal(fileBackendDir("file:///a/b?no_tmp_dir=true"), "/a/b");
    assert.equal(fileBackendDir("file://~/state"), join(process.env["HOME"] ?? "/", "state"));
    assert.equal(fileBackendDir("https://api.pulumi.com"), undefined);
  });

  void it("gives every CLI run the backend, passphrase, the state's secrets salt, plugin folder first on PATH, and the provider's settings", () => {
    const env = workspaceEnv({
      root: "/repo",
      envName: "sandbox",
      backend: chooseBackend("/repo", {}),
      passphrase: { env: { PULUMI_CONFIG_PASSPHRASE_FILE: "/repo/.homelab/passphrase" }, origin: "file", file: "/repo/.homelab/passphrase" },
      pluginDir: "/tool/bin",
      cliDir: "/cache/pulumi/bin",
      base: { PATH: "/usr/bin:/bin" },
    });
    assert.equal(env["PULUMI_BACKEND_URL"], "file:///repo/.homelab/state");
    assert.equal(env["PULUMI_CONFIG_PASSPHRASE_FILE"], "/repo/.homelab/passphrase");
    assert.equal(env["PULUMI_SKIP_UPDATE_CHECK"], "true");
    // Self-managed backends always lock in the pinned CLI; the secrets salt comes from the state when the workspace lacks it.
    assert.equal(env["PULUMI_SELF_MANAGED_STATE_LOCKING"], undefined);
    assert.equal(env["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"], "true");
    assert.equal(env["HOMELAB_ROOT"], "/repo");
    assert.equal(env["HOMELAB_ENV"], "sandbox");
    assert.equal(env["PATH"], "/tool/bin:/cache/pulumi/bin:/usr/bin:/bin");
  });
});

void describe("passphrase", () => {
  void it("takes PULUMI_CONFIG_PASSPHRASE first, then _FILE", () => {
    assert.deepEqual(ensurePassphrase(tmp, { PULUMI_CONFIG_PASSPHRASE: "pw" }).env, { PULUMI_CONFIG_PASSPHRASE: "pw" });
    const file = join(tmp, "pp");
    writeFileSync(file, "secret\n");
    const p = ensurePassphrase(tmp, { PULUMI_CONFIG_PASSPHRASE_FILE: file });
    assert.equal(p.origin, "env-file");
    assert.deepEqual(p.env, { PULUMI_CONFIG_PASSPHRASE_FILE: file });
    assert.throws(() => ensurePassphrase(tmp, { PULUMI_CONFIG_PASSPHRASE_FILE: join(tmp, "missing") }), EngineSetupError);
  });

  void it("generates .homelab/passphrase (0600) once, then reuses it; read-only use never creates one", () => {
    const root = mkdtempSync(join(tmp, "repo-"));
    assert.equal(ensurePassphrase(root, {}, false).origin, "none");
    const first = ensurePassphrase(root, {});
    assert.equal(first.origin, "generated");
    assert.ok(first.file);
    assert.equal(statSync(first.file).mode & 0o777, 0o600);
    const text = readFileSync(first.file, "utf8");
    assert.ok(text.trim().length >= 40);
    const second = ensurePassphrase(root, {});
    assert.equal(second.origin, "file");
    assert.equal(readFileSync(first.file, "utf8"), text);
    assert.equal(ensurePassphrase(root, {}, false).origin, "file");
  });
});

void describe("SSH key per environment", () => {
  void it("generates an ed25519 key pair (private 0600) that OpenSSH tooling parses, once", () => {
    const root = mkdtempSync(join(tmp, "ssh-"));
    const k = ensureSshKey(root, "sandbox");
    assert.equal(k.generated, true);
    assert.equal(k.privateKeyFile, join(root, ".homelab", "ssh", "sandbox", "id_ed25519"));
    assert.equal(statSync(k.privateKeyFile).mode & 0o777, 0o600);
    assert.match(k.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ homelab-sandbox$/);
    const one = (parsed: ParsedKey | ParsedKey[] | Error): ParsedKey => {
      if (parsed instanceof Error) throw parsed;
      const key = Array.isArray(parsed) ? parsed[0] : parsed;
      assert.ok(key);
      return key;
    };
    const privKey = one(ssh2.utils.parseKey(readFileSync(k.privateKeyFile)));
    const pubKey = one(ssh2.utils.parseKey(k.publicKey));
    assert.equal(privKey.type, "ssh-ed25519");
    assert.deepEqual(privKey.getPublicSSH(), pubKey.getPublicSSH());
    // A signature made with the private key verifies with the public one: they are one pair.
    const data = Buffer.from("homelab");
    assert.equal(pubKey.verify(data, privKey.sign(data)), true);
    const again = ensureSshKey(root, "sandbox");
    assert.equal(again.generated, false);
    assert.equal(again.publicKey, k.publicKey);
    assert.notEqual(ensureSshKey(root, "prod").publicKey, k.publicKey);
  });

  void it("generates the pair into a folder that already holds known_hosts (and keeps it)", () => {
    const root = mkdtempSync(join(tmp, "ssh-"));
    const dir = join(root, ".homelab", "ssh", "lab");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "known_hosts"), "10.0.0.5 ssh-ed25519 AAAA\n");
    const k = ensureSshKey(root, "lab");
    assert.equal(k.generated, true);
    assert.equal(readFileSync(k.publicKeyFile, "utf8").trim(), k.publicKey);
    assert.equal(statSync(k.privateKeyFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dir, "known_hosts"), "utf8"), "10.0.0.5 ssh-ed25519 AAAA\n");
    assert.deepEqual(readdirSync(dir).sort(), ["id_ed25519", "id_ed25519.pub", "known_hosts"]);
    assert.equal(ensureSshKey(root, "lab").publicKey, k.publicKey);
  });
});

void describe("shared backends", () => {
  const pg = { url: "postgres://homelab@db.lan:5432/state?sslmode=disable", scheme: "postgres" };

  void it("PULUMI_BACKEND_URL wins over homelab:backend, whose URL is used otherwise; both are shared", () => {
    const fromEnv = chooseBackend("/repo", { PULUMI_BACKEND_URL: "s3://b?endpoint=x" }, pg);
    assert.equal(fromEnv.origin, "PULUMI_BACKEND_URL");
    assert.equal(fromEnv.setting, undefined);
    const fromFile = chooseBackend("/repo", {}, pg);
    assert.equal(fromFile.origin, "homelab:backend");
    assert.equal(fromFile.url, pg.url);
    assert.equal(fromFile.shared, true);
    assert.equal(fromFile.scheme, "postgres");
    assert.equal(chooseBackend("/repo", { PULUMI_BACKEND_URL: "file:///srv/state" }).shared, false);
  });

  void it("a password in PULUMI_BACKEND_URL leaves the URL for PGPASSWORD, and never shows", () => {
    const b = chooseBackend("/repo", { PULUMI_BACKEND_URL: "postgres://homelab:s3cr%40t@db.lan:5432/state" });
    assert.equal(b.url, "postgres://homelab@db.lan:5432/state");
    assert.equal(b.display, "postgres://homelab:****@db.lan:5432/state");
    assert.deepEqual(backendCredentials(b, {}, "Pulumi.lab.yaml"), { PGPASSWORD: "s3cr@t" });
    const q = chooseBackend("/repo", { PULUMI_BACKEND_URL: "postgres://db.lan/state?password=pw&sslmode=require" });
    assert.equal(q.url, "postgres://db.lan/state?sslmode=require");
    assert.equal(displayBackendUrl("postgres://db.lan/state?password=pw&sslmode=require"), "postgres://db.lan/state?password=****&sslmode=require");
    // Workspaces are per URL without the password: changing it keeps the stacks' settings.
    assert.equal(workspaceDir("/repo", b), workspaceDir("/repo", chooseBackend("/repo", { PULUMI_BACKEND_URL: "postgres://homelab:other@db.lan:5432/state" })));
  });

  void it("credentials come from homelab:backend's references, and a missing one says which setting to fix", () => {
    const file = join(tmp, "pg-password");
    writeFileSync(file, "from-file\n", { mode: 0o600 });
    const b = chooseBackend("/repo", {}, { ...pg, password: { file } });
    assert.deepEqual(backendCredentials(b, {}, "Pulumi.lab.yaml"), { PGPASSWORD: "from-file" });
    const s3 = chooseBackend("/repo", {}, { url: "s3://b", scheme: "s3", accessKeyId: { env: "ID" }, secretAccessKey: { env: "SECRET" } });
    assert.deepEqual(backendCredentials(s3, { ID: "id", SECRET: "secret" }, "Pulumi.lab.yaml"), { AWS_ACCESS_KEY_ID: "id", AWS_SECRET_ACCESS_KEY: "secret" });
    assert.throws(
      () => backendCredentials(s3, { ID: "id" }, "Pulumi.lab.yaml"),
      (e: unknown) => e instanceof EngineSetupError && /homelab:backend: secret_access_key_env names SECRET, which is not set/.test(e.message) && /export SECRET, or use secret_access_key_file in Pulumi\.lab\.yaml/.test(e.hint ?? ""),
    );
  });

  void it("a postgres:// backend lists its stacks with one worker (3.274.1's stack ls deadlocks on its connection pool otherwise)", () => {
    const env = (backend: ReturnType<typeof chooseBackend>) =>
      workspaceEnv({ root: "/repo", envName: "lab", backend, passphrase: { env: {}, origin: "none", file: undefined }, pluginDir: "/t/bin", cliDir: "/c/bin", base: {} });
    assert.equal(env(chooseBackend("/repo", {}, pg))["PULUMI_DIY_BACKEND_PARALLEL"], "1");
    assert.equal(env(chooseBackend("/repo", { PULUMI_BACKEND_URL: "s3://b" }))["PULUMI_DIY_BACKEND_PARALLEL"], undefined);
  });

  void it("a shared backend never gets a generated passphrase: its own reference, or the repository's existing one", () => {
    const root = mkdtempSync(join(tmp, "shared-"));
    assert.throws(() => ensurePassphrase(root, {}, { shared: true, envFile: "Pulumi.lab.yaml" }), (e: unknown) => e instanceof EngineSetupError && /passphrase_file/.test(e.hint ?? ""));
    assert.equal(readdirSync(root).length, 0);
    assert.deepEqual(ensurePassphrase(root, { TEAM: "team-pass" }, { shared: true, ref: { env: "TEAM" } }).env, { PULUMI_CONFIG_PASSPHRASE: "team-pass" });
    assert.equal(ensurePassphrase(root, {}, { shared: true, generate: false }).origin, "none");
    // Moving from the file backend: the passphrase the state's secrets were encrypted with.
    assert.equal(ensurePassphrase(root, {}).origin, "generated");
    assert.equal(ensurePassphrase(root, {}, { shared: true }).origin, "file");
  });
});
