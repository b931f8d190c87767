/**
 * The pinned Pulumi CLI keeps stacks in the shared backends a team would use,
 * on this machine's test servers (scripts/setup-test-services.sh): a
 * PostgreSQL database (`postgres://`, the password from PGPASSWORD, never in
 * the URL) and an S3-compatible bucket (`s3://` with a plain-HTTP endpoint,
 * path-style, credentials from the environment). These are the URL forms
 * docs and the deploy tests rely on; the secrets never appear in what the CLI
 * prints.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { resolvePulumiCli } from "../../src/engine/pulumi-cli.ts";
import { freshBucket, freshDatabase } from "../helpers/services.ts";
import type { TestBucket, TestDatabase } from "../helpers/services.ts";

interface Cli {
  code: number;
  out: string;
}

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

void describe("[root][pulumi] Pulumi's DIY backends on the test servers: PostgreSQL and S3", { timeout: 5 * 60_000 }, () => {
  let pulumi = "";
  let work = "";
  before(async () => {
    pulumi = (await resolvePulumiCli()).path;
    work = mkdtempSync(join(tmpdir(), "homelab-backends-"));
    writeFileSync(join(work, "Pulumi.yaml"), "name: homelab\nruntime: nodejs\n");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const cli = (backend: string, extra: Record<string, string>, ...args: string[]): Promise<Cli> =>
    new Promise((resolve) => {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env["PATH"],
        HOME: work,
        PULUMI_HOME: join(work, ".pulumi"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_CONFIG_PASSPHRASE: "test",
        PULUMI_BACKEND_URL: backend,
        // Off AWS, the SDK would otherwise ask the EC2 metadata address for credentials.
        AWS_EC2_METADATA_DISABLED: "true",
        ...extra,
      };
      execFile(pulumi, args, { cwd: work, env, timeout: 120_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout + stderr }));
    });

  const stacks = async (backend: string, extra: Record<string, string>): Promise<string[]> => {
    const r = await cli(backend, extra, "stack", "ls", "--json");
    assert.equal(r.code, 0, r.out);
    return (JSON.parse(r.out) as Array<{ name: string }>).map((s) => s.name).sort();
  };

  void describe("postgres://", () => {
    let db: TestDatabase | undefined;
    before(async () => {
      db = await freshDatabase();
    });
    after(async () => db?.drop());

    void it("stacks are created, listed and removed; Pulumi makes its table; the password is in no output", async () => {
      assert.ok(db);
      const password = db.env["PGPASSWORD"] ?? "";
      const outputs: string[] = [];
      for (const stack of ["sandbox.hello", "sandbox.other"]) {
        const r = await cli(db.url, db.env, "stack", "init", stack);
        outputs.push(r.out);
        assert.equal(r.code, 0, r.out);
      }
      assert.deepEqual(await stacks(db.url, db.env), ["sandbox.hello", "sandbox.other"]);
      const columns = await db.sql("SELECT column_name || ':' || data_type FROM information_schema.columns WHERE table_name = 'pulumi_state' ORDER BY ordinal_position");
      assert.deepEqual(columns.trim().split("\n"), ["key:text", "data:json", "updated_at:timestamp with time zone"]);
      // Keys are paths under the database's name, as in a bucket.
      const keys = (await db.sql("SELECT key FROM pulumi_state ORDER BY key")).trim().split("\n");
      assert.ok(keys.includes(`${db.name}/.pulumi/stacks/homelab/sandbox.hello.json`), keys.join("\n"));
      const rm = await cli(db.url, db.env, "stack", "rm", "--yes", "--stack", "sandbox.other");
      outputs.push(rm.out);
      assert.equal(rm.code, 0, rm.out);
      assert.deepEqual(await stacks(db.url, db.env), ["sandbox.hello"]);
      assert.ok(password.length >= 16 && !outputs.join("\n").includes(password));
    });

    void it("without the password the CLI says so, naming no password", async () => {
      assert.ok(db);
      const r = await cli(db.url, {}, "stack", "ls");
      assert.notEqual(r.code, 0);
      assert.match(r.out, /password authentication failed for user "homelab_test"/);
    });
  });

  void describe("s3://", () => {
    let bucket: TestBucket | undefined;
    before(async () => {
      bucket = await freshBucket();
    });
    after(async () => bucket?.drop());

    void it("stacks are created and listed in the bucket; the credentials are in no output", async () => {
      assert.ok(bucket);
      const r = await cli(bucket.url, bucket.env, "stack", "init", "sandbox.hello");
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(await stacks(bucket.url, bucket.env), ["sandbox.hello"]);
      assert.ok(files(bucket.root).includes(".pulumi/stacks/homelab/sandbox.hello.json"), files(bucket.root).join("\n"));
      assert.ok(!r.out.includes(bucket.env["AWS_SECRET_ACCESS_KEY"] ?? "\0"));
    });

    void it("a bare endpoint means https: plain HTTP needs disableSSL=true or an http:// endpoint", async () => {
      assert.ok(bucket);
      const https = await cli(bucket.url.replace("&disableSSL=true", ""), bucket.env, "stack", "ls");
      assert.notEqual(https.code, 0);
      assert.match(https.out, /server gave HTTP response to HTTPS client/);
      const explicit = bucket.url.replace(/endpoint=([^&]+)&disableSSL=true/, "endpoint=http://$1");
      assert.deepEqual(await stacks(explicit, bucket.env), ["sandbox.hello"]);
    });

    void it("a wrong secret key is refused by the server, and the key is not printed", async () => {
      assert.ok(bucket);
      const r = await cli(bucket.url, { ...bucket.env, AWS_SECRET_ACCESS_KEY: "not-the-secret-key" }, "stack", "ls");
      assert.notEqual(r.code, 0);
      assert.match(r.out, /SignatureDoesNotMatch/);
      assert.ok(!r.out.includes("not-the-secret-key"));
    });
  });
});
