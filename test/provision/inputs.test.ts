import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { imageSpecFromPlan, readComposeFiles, registryAccess } from "../../src/provision/inputs.ts";
import type { PlannedImage } from "../../src/plan/types.ts";
import { scratch } from "./helpers.ts";

const planned: PlannedImage = {
  kind: "docker:image",
  id: "hello_web_image",
  protect: false,
  dependsOn: [],
  crossDependsOn: [],
  name: "hello-web",
  context: "/repo/services/hello/docker/web",
  dockerfile: "Dockerfile",
  buildArgs: { A: "1" },
  registry: { name: "local_registry", url: "10.87.53.1:5000", insecure: true },
};

describe("provisioning inputs from plan and config", () => {
  test("an image spec from a planned image, with credentials when given", () => {
    assert.deepEqual(imageSpecFromPlan(planned), {
      id: "hello_web_image",
      name: "hello-web",
      context: "/repo/services/hello/docker/web",
      dockerfile: "Dockerfile",
      buildArgs: { A: "1" },
      registry: { url: "10.87.53.1:5000", insecure: true },
    });
    assert.deepEqual(imageSpecFromPlan(planned, { username: "u", password: "p" }).registry, { url: "10.87.53.1:5000", insecure: true, username: "u", password: "p" });
    assert.equal(imageSpecFromPlan({ ...planned, registry: undefined }).registry, undefined);
  });

  test("compose files are read in order with service-relative paths; outside ones refused", async () => {
    const s = scratch();
    try {
      mkdirSync(join(s.dir, "prod"));
      writeFileSync(join(s.dir, "docker-compose.yaml"), "a");
      writeFileSync(join(s.dir, "prod", "over.yaml"), "b");
      assert.deepEqual(await readComposeFiles(s.dir, [join(s.dir, "docker-compose.yaml"), "prod/over.yaml"]), [
        { path: "docker-compose.yaml", content: "a" },
        { path: "prod/over.yaml", content: "b" },
      ]);
      await assert.rejects(readComposeFiles(join(s.dir, "prod"), [join(s.dir, "docker-compose.yaml")]), /outside the service folder/);
    } finally {
      s.done();
    }
  });

  test("registry passwords come from a file or a variable", async () => {
    const s = scratch();
    try {
      writeFileSync(join(s.dir, "pw"), "s3cret\n");
      assert.equal((await registryAccess({ name: "r", url: "r:5000", insecure: false, username: "u", password: { file: join(s.dir, "pw") } }, {})).password, "s3cret");
      await assert.rejects(registryAccess({ name: "r", url: "r:5000", insecure: false, username: "u", password: { env: "NO_SUCH_REG_PW" } }, {}), /password_env names NO_SUCH_REG_PW, which is not set/);
      assert.deepEqual(await registryAccess({ name: "r", url: "r:5000", insecure: false, username: "u", password: { env: "REG_PW" } }, { REG_PW: "x" }), { url: "r:5000", insecure: false, username: "u", password: "x" });
      assert.deepEqual(await registryAccess({ name: "r", url: "r:5000", insecure: true }), { url: "r:5000", insecure: true });
    } finally {
      s.done();
    }
  });
});
