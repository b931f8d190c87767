import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { BuildLog, ImageError, contextFiles, engineTrustsInsecure, hashContext, imageRef, registryHasTag } from "../../src/provision/image.ts";
import { scratch } from "./helpers.ts";

function context(dir: string): string {
  const ctx = join(dir, "ctx");
  mkdirSync(join(ctx, "www"), { recursive: true });
  writeFileSync(join(ctx, "Dockerfile"), "FROM scratch\nCOPY www /www\n");
  writeFileSync(join(ctx, "www/index.html"), "hello\n");
  writeFileSync(join(ctx, "notes.log"), "ignored\n");
  writeFileSync(join(ctx, ".dockerignore"), "*.log\n");
  return ctx;
}

describe("build context hash", () => {
  test("lists files after .dockerignore (the Dockerfile and .dockerignore always)", async () => {
    const s = scratch();
    try {
      const ctx = context(s.dir);
      writeFileSync(join(ctx, ".dockerignore"), "*.log\nDockerfile\n.dockerignore\n");
      assert.deepEqual(await contextFiles(ctx), [".dockerignore", "Dockerfile", "www/index.html"]);
    } finally {
      s.done();
    }
  });

  test("stable for the same content; changes with content, exec bit, links, Dockerfile name and build args; ignores ignored files and times", async () => {
    const s = scratch();
    try {
      const ctx = context(s.dir);
      const a = await hashContext({ context: ctx });
      assert.match(a.hash, /^[0-9a-f]{64}$/);
      assert.equal(a.tag, a.hash.slice(0, 16));
      utimesSync(join(ctx, "www/index.html"), new Date(2001, 1, 1), new Date(2001, 1, 1));
      writeFileSync(join(ctx, "notes.log"), "changed but ignored\n");
      assert.equal((await hashContext({ context: ctx })).hash, a.hash, "times and ignored files do not count");

      writeFileSync(join(ctx, "www/index.html"), "hello!\n");
      const b = await hashContext({ context: ctx });
      assert.notEqual(b.hash, a.hash);
      chmodSync(join(ctx, "www/index.html"), 0o755);
      const c = await hashContext({ context: ctx });
      assert.notEqual(c.hash, b.hash);
      symlinkSync("index.html", join(ctx, "www/link.html"));
      const d = await hashContext({ context: ctx });
      assert.notEqual(d.hash, c.hash);
      assert.notEqual((await hashContext({ context: ctx, buildArgs: { A: "1" } })).hash, d.hash);
      assert.equal((await hashContext({ context: ctx, buildArgs: { A: "1", B: "2" } })).hash, (await hashContext({ context: ctx, buildArgs: { B: "2", A: "1" } })).hash);
      writeFileSync(join(ctx, "Other.Dockerfile"), "FROM scratch\nCOPY www /www\n");
      assert.notEqual((await hashContext({ context: ctx, dockerfile: "Other.Dockerfile" })).hash, (await hashContext({ context: ctx })).hash);
    } finally {
      s.done();
    }
  });

  test("a missing Dockerfile is an error naming the folder", async () => {
    const s = scratch();
    try {
      await assert.rejects(hashContext({ context: s.dir }), (e: unknown) => e instanceof ImageError && /no Dockerfile in/.test(e.message));
    } finally {
      s.done();
    }
  });
});

describe("references and registries", () => {
  test("imageRef: registry/name:tag, scheme dropped; name:tag without a registry", () => {
    assert.equal(imageRef({ name: "hello-web", registry: { url: "http://10.87.53.1:5000/", insecure: true } }, "abc"), "10.87.53.1:5000/hello-web:abc");
    assert.equal(imageRef({ name: "hello-web" }, "abc"), "hello-web:abc");
  });

  test("engineTrustsInsecure: loopback, by name, by CIDR", () => {
    assert.equal(engineTrustsInsecure({}, "127.0.0.1:5000"), true);
    assert.equal(engineTrustsInsecure({}, "localhost:5000"), true);
    assert.equal(engineTrustsInsecure({}, "10.87.53.1:5000"), false);
    assert.equal(engineTrustsInsecure({ RegistryConfig: { IndexConfigs: { "10.87.53.1:5000": { Secure: false } } } }, "10.87.53.1:5000"), true);
    assert.equal(engineTrustsInsecure({ RegistryConfig: { InsecureRegistryCIDRs: ["127.0.0.0/8", "10.87.53.0/24"] } }, "10.87.53.1:5000"), true);
    assert.equal(engineTrustsInsecure({ RegistryConfig: { InsecureRegistryCIDRs: ["10.87.54.0/24"] } }, "10.87.53.1:5000"), false);
  });

  test("registryHasTag: 200 yes, 404 no, 401 cannot say; Accept asks for manifests; basic auth sent", async () => {
    const seen: Array<{ method?: string; url?: string; accept?: string; auth?: string }> = [];
    const server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, accept: req.headers.accept, auth: req.headers.authorization });
      res.statusCode = req.url?.endsWith("/there") ? 200 : req.url?.endsWith("/locked") ? 401 : 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const url = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      assert.equal(await registryHasTag({ url, insecure: true }, "hello-web", "there"), true);
      assert.equal(await registryHasTag({ url, insecure: true }, "hello-web", "missing"), false);
      assert.equal(await registryHasTag({ url, insecure: true, username: "u", password: "p" }, "hello-web", "locked"), undefined);
      assert.equal(seen[0]?.method, "HEAD");
      assert.equal(seen[0]?.url, "/v2/hello-web/manifests/there");
      assert.match(seen[0]?.accept ?? "", /application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
      assert.equal(seen[2]?.auth, `Basic ${Buffer.from("u:p").toString("base64")}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.equal(await registryHasTag({ url: "127.0.0.1:1", insecure: true }, "x", "y", 2000), undefined, "unreachable: cannot say");
  });
});

describe("BuildLog", () => {
  test("streams lines, tracks the step, and a failure names the step and its output", () => {
    const log = new BuildLog();
    const lines: string[] = [];
    const msgs = [
      { stream: "Step 1/3 : FROM scratch\n" },
      { stream: " ---> \n" },
      { stream: "Step 2/3 : COPY www /www\n ---> 1a2b\n" },
      { stream: "Step 3/3 : RUN make\n" },
      { stream: " ---> Running in 99\n" },
      { stream: "\u001b[91mmake: *** No rule to make target 'all'." },
      { stream: "  Stop.\u001b[0m\n" },
      { stream: "Removing intermediate container 99\n" },
      { errorDetail: { code: 2, message: "The command '/bin/sh -c make' returned a non-zero code: 2" }, error: "The command '/bin/sh -c make' returned a non-zero code: 2" },
    ];
    for (const m of msgs) lines.push(...log.push(m));
    assert.equal(log.step, "Step 3/3 : RUN make");
    assert.deepEqual(log.stepOutput, ["make: *** No rule to make target 'all'.  Stop."]);
    assert.ok(lines.includes("Step 2/3 : COPY www /www"));
    const err = log.failure("docker:image hello_web_image");
    assert.equal(err.step, "Step 3/3 : RUN make");
    assert.match(err.message, /^docker:image hello_web_image: the build failed at Step 3\/3 : RUN make\n {2}\| make: \*\*\* No rule/);
    assert.match(err.message, /returned a non-zero code: 2$/);
  });

  test("remembers the built image id; status messages (push, pull) become lines", () => {
    const log = new BuildLog();
    log.push({ aux: { ID: "sha256:abc" } });
    assert.equal(log.imageId, "sha256:abc");
    assert.deepEqual(log.push({ status: "Pushed", id: "5f70bf18a086" }), ["5f70bf18a086: Pushed"]);
  });
});
