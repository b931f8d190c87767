import { test } from "node:test";
import assert from "node:assert/strict";
import { loadEnvironment, listEnvironments } from "../../src/config/environment.ts";
import { chooseEnvironmentName } from "../../src/config/repository.ts";
import { findDiag, makeRepo } from "../helpers/repo.ts";

function env(content: string, name = "lab") {
  const repo = makeRepo({ [`Pulumi.${name}.yaml`]: content });
  try {
    return loadEnvironment(repo.root, name);
  } finally {
    repo.cleanup();
  }
}

test("tierN_hosts shorthand means those hosts carry tag tier:N, merged with hosts", () => {
  const r = env("config:\n  homelab:tier1_hosts: [pve-01, pve-02]\n  homelab:tier2_hosts: [pve-02]\n  homelab:hosts:\n    pve-01: { tags: [Location:Rack1] }\n");
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(r.env?.hosts, { "pve-01": ["location:rack1", "tier:1"], "pve-02": ["tier:1", "tier:2"] });
});

test("defaults come from default_* keys, else built-in", () => {
  const r = env("config:\n  homelab:default_memory: 2048\n  homelab:default_bridge: vmbr1\n");
  assert.equal(r.env?.defaults.memory, 2048);
  assert.equal(r.env?.defaults.bridge, "vmbr1");
  assert.equal(r.env?.defaults.cores, 1);
});

test("the production marker: explicit, or implied by the name prod", () => {
  assert.equal(env("config:\n  homelab:environment: production\n").env?.production, true);
  assert.equal(env("config: {}\n", "prod").env?.production, true);
  assert.equal(env("config:\n  homelab:environment: staging\n", "prod").env?.production, false);
  assert.equal(env("config: {}\n", "lab").env?.production, false);
});

test("an unknown homelab setting suggests the right key", () => {
  const d = findDiag(env("config:\n  homelab:default_memroy: 2048\n").diagnostics, "unknown setting");
  assert.equal(d.hint, 'did you mean "homelab:default_memory"?');
  assert.deepEqual([d.line, d.col], [2, 3]);
});

test("wrong value types are located", () => {
  const d = findDiag(env("config:\n  homelab:default_cores: many\n").diagnostics, "default_cores");
  assert.equal(d.line, 2);
  assert.match(d.message, /expected a number/);
});

test("credentials are references; a token needs its secret; plaintext encrypted values are refused", () => {
  const ok = env("config:\n  homelab:proxmox:\n    endpoint: https://pve.lan:8006\n    token_id: root@pam!homelab\n    token_secret_file: ./pve-token\n");
  assert.deepEqual(ok.diagnostics, []);
  assert.ok(ok.env?.proxmox?.tokenSecret?.file?.endsWith("/pve-token"));
  findDiag(env("config:\n  homelab:proxmox:\n    endpoint: https://pve.lan:8006\n    token_id: root@pam!homelab\n").diagnostics, "token_id needs its secret");
  findDiag(env("config:\n  homelab:proxmox:\n    endpoint: http://pve.lan:8006\n    token_id: root@pam!x\n    token_secret_env: X\n").diagnostics, "https://");
  findDiag(env("config:\n  homelab:proxmox:\n    endpoint: https://pve.lan:8006\n    token_secret: hunter2\n").diagnostics, 'unknown field "token_secret"');
  findDiag(env("config:\n  homelab:proxmox:\n    secure: v1:abc\n").diagnostics, "Pulumi-encrypted");
});

test("Pulumi ESC imports are read in both the original and Pulumi's own form", () => {
  assert.deepEqual(env("config:\n  pulumi-esc:\n    environments: [homelab/prod]\n").env?.escEnvironments, [{ name: "homelab/prod", line: 3, col: 20 }]);
  assert.deepEqual(env("environment:\n  - homelab/lab\nconfig: {}\n").env?.escEnvironments, [{ name: "homelab/lab", line: 2, col: 5 }]);
});

test("a missing environment names the ones that exist", () => {
  const repo = makeRepo({ "Pulumi.prod.yaml": "config: {}\n" });
  try {
    const r = loadEnvironment(repo.root, "prd");
    assert.equal(r.env, undefined);
    assert.equal(r.diagnostics[0]?.hint, 'did you mean "prod"?');
    assert.deepEqual(listEnvironments(repo.root), ["prod", "test"]);
    assert.equal(chooseEnvironmentName(repo.root, undefined, {}), "prod");
    assert.equal(chooseEnvironmentName(repo.root, undefined, { HOMELAB_ENV: "test" }), "test");
    assert.equal(chooseEnvironmentName(repo.root, "x", { HOMELAB_ENV: "test" }), "x");
  } finally {
    repo.cleanup();
  }
});

test("generated environments under .homelab/environments are found", () => {
  const repo = makeRepo({ ".homelab/environments/Pulumi.sandbox.yaml": "config:\n  homelab:environment: sandbox\n" });
  try {
    const r = loadEnvironment(repo.root, "sandbox");
    assert.equal(r.env?.kind, "sandbox");
  } finally {
    repo.cleanup();
  }
});

test("homelab:monitor: endpoint, webhook with a referenced token, backoff; a Gotify webhook needs its token", () => {
  const ok = env(
    "config:\n  homelab:monitor:\n    listen: 127.0.0.1:9464\n    backoff: 30\n    webhook:\n      kind: ntfy\n      url: https://ntfy.lan/homelab\n      token_env: NTFY_TOKEN\n",
  );
  assert.deepEqual(ok.diagnostics, []);
  assert.deepEqual(ok.env?.monitor, {
    listen: "127.0.0.1:9464",
    concurrency: undefined,
    backoffSec: 30,
    maxBackoffSec: undefined,
    historyMaxKb: undefined,
    webhook: { kind: "ntfy", url: "https://ntfy.lan/homelab", token: { env: "NTFY_TOKEN" } },
  });
  assert.equal(env("config: {}\n").env?.monitor, undefined);
  findDiag(env("config:\n  homelab:monitor:\n    webhook:\n      kind: gotify\n      url: https://gotify.lan\n").diagnostics, "needs its application token");
  findDiag(env("config:\n  homelab:monitor:\n    webhook:\n      kind: gotify\n      url: https://gotify.lan\n      token: abc\n").diagnostics, 'unknown field "token"');
  findDiag(env("config:\n  homelab:monitor:\n    listen: everywhere\n").diagnostics, "PORT or ADDR:PORT");
});

test("homelab:provisioning defaults to true; false (state-only guests) lifts the registry requirement", () => {
  assert.equal(env("config: {}\n").env?.provisioning, true);
  assert.equal(env("config:\n  homelab:provisioning: false\n").env?.provisioning, false);
});

test("homelab:docker_host and homelab:docker_source: defaults, values, and a clear error for a bad one", () => {
  assert.deepEqual(env("config: {}\n").env?.docker, { host: undefined, source: "docker", base: "clone" });
  assert.deepEqual(env('config:\n  homelab:docker_host: "unix:///run/x/docker.sock"\n  homelab:docker_source: distribution\n').env?.docker, { host: "unix:///run/x/docker.sock", source: "distribution", base: "clone" });
  assert.deepEqual(env("config:\n  homelab:docker_base: install\n  homelab:docker_base_network: { ip: 10.0.0.250/24, gateway: 10.0.0.1 }\n").env?.docker, { host: undefined, source: "docker", base: "install", baseNetwork: { ip: "10.0.0.250/24", gateway: "10.0.0.1" } });
  findDiag(env("config:\n  homelab:docker_base: always\n").diagnostics, "docker_base");
  findDiag(env("config:\n  homelab:docker_base_network: { ip: 10.0.0.250 }\n").diagnostics, "ip must be an address with prefix");
  findDiag(env("config:\n  homelab:docker_source: debian\n").diagnostics, "docker");
  findDiag(env("config:\n  homelab:docker_host: /var/run/docker.sock\n").diagnostics, "unix:///path/docker.sock");
});

test("homelab:backend: a URL alone, or with credentials referenced (paths relative to the file)", () => {
  const bare = env("config:\n  homelab:backend: s3://state?endpoint=minio.lan:9000&s3ForcePathStyle=true&region=us-east-1\n");
  assert.deepEqual(bare.diagnostics, []);
  assert.deepEqual(bare.env?.backend, { url: "s3://state?endpoint=minio.lan:9000&s3ForcePathStyle=true&region=us-east-1", scheme: "s3" });
  const pg = env("config:\n  homelab:backend:\n    url: postgres://homelab@db.lan:5432/homelab_state?sslmode=verify-full\n    password_file: secrets/pg\n    passphrase_env: TEAM_PASSPHRASE\n");
  assert.deepEqual(pg.diagnostics, []);
  assert.equal(pg.env?.backend?.scheme, "postgres");
  assert.match(pg.env?.backend?.password?.file ?? "", /^\/.+\/secrets\/pg$/);
  assert.deepEqual(pg.env?.backend?.passphrase, { env: "TEAM_PASSPHRASE" });
  const s3 = env("config:\n  homelab:backend:\n    url: s3://state?endpoint=minio.lan:9000\n    access_key_id_env: MINIO_ID\n    secret_access_key_file: /etc/homelab/minio-secret\n");
  assert.deepEqual(s3.env?.backend?.accessKeyId, { env: "MINIO_ID" });
  assert.deepEqual(s3.env?.backend?.secretAccessKey, { file: "/etc/homelab/minio-secret" });
});

test("homelab:backend: a PostgreSQL connection that does not check the server's certificate is a located warning; verified or loopback ones are not", () => {
  const none = env("config:\n  homelab:backend:\n    url: postgres://homelab@db.lan/state\n");
  const w = findDiag(none.diagnostics, "certificate is not checked (no sslmode");
  assert.equal(w.severity, "warning");
  assert.deepEqual([w.line, w.col], [3, 10]);
  assert.match(w.hint ?? "", /sslmode=verify-full&sslrootcert=/);
  assert.equal(none.env?.backend?.scheme, "postgres", "a warning does not stop the environment loading");
  assert.equal(findDiag(env("config:\n  homelab:backend: postgres://db.lan/state?sslmode=require\n").diagnostics, "sslmode=require").severity, "warning");
  findDiag(env("config:\n  homelab:backend: postgres://db.lan/state?sslmode=disable\n").diagnostics, "not encrypted (sslmode=disable)");
  for (const quiet of ["postgres://db.lan/state?sslmode=verify-ca", "postgres://db.lan/state?sslrootcert=/etc/ca.pem", "postgres://localhost/state?sslmode=disable", "postgres://127.0.0.1:5432/state"]) {
    assert.deepEqual(env(`config:\n  homelab:backend: ${quiet}\n`).diagnostics, [], quiet);
  }
  assert.equal(env("config:\n  homelab:backend: postgres://db.lan/state?sslrootcert=system\n").diagnostics.length, 1, "the system store alone is lib/pq's require");
});

test("homelab:backend: a password in the URL, a wrong scheme or credentials of another kind are located errors", () => {
  const inUrl = findDiag(env("config:\n  homelab:backend:\n    url: postgres://homelab:hunter2@db.lan/state\n").diagnostics, "holds a password");
  assert.deepEqual([inUrl.line, inUrl.col], [3, 10]);
  assert.match(inUrl.hint ?? "", /password_file or password_env/);
  assert.ok(!JSON.stringify(inUrl).includes("hunter2"));
  findDiag(env("config:\n  homelab:backend: postgres://db.lan/state?password=hunter2\n").diagnostics, "holds a password");
  const scheme = findDiag(env("config:\n  homelab:backend: postgresql://db.lan/state\n").diagnostics, "not postgresql://");
  assert.equal(scheme.hint, "Pulumi names the scheme postgres://");
  assert.equal(scheme.line, 2);
  const kind = findDiag(env("config:\n  homelab:backend:\n    url: s3://state\n    password_env: PG\n").diagnostics, "applies to postgres:// backends only");
  assert.deepEqual([kind.line, kind.col], [4, 19]);
  findDiag(env("config:\n  homelab:backend:\n    url: s3://state\n    access_key_id_env: ID\n").diagnostics, "needs both access_key_id_* and secret_access_key_*");
  findDiag(env("config:\n  homelab:backend: file://state\n").diagnostics, "needs an absolute folder");
  const unknown = findDiag(env("config:\n  homelab:backend:\n    url: s3://state\n    secret_key_env: X\n").diagnostics, "secret_key_env");
  assert.equal(unknown.line, 4);
});
