import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { serviceJsonSchema } from "../../src/config/service-schema.ts";
import { discoverServices } from "../../src/config/repository.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

test("every example service carries the schema header and validates against the JSON Schema", () => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(serviceJsonSchema());
  const services = discoverServices(ROOT);
  assert.ok(services.length >= 2);
  for (const s of services) {
    const text = readFileSync(s.file, "utf8");
    assert.match(text, /^# yaml-language-server: \$schema=\.\.\/\.\.\/schema\/service\.schema\.json$/m, s.file);
    assert.ok(validate(parse(text)), `${s.file}: ${JSON.stringify(validate.errors)}`);
  }
});

test("the JSON Schema rejects what validation rejects: unknown fields and types", () => {
  const ajv = new Ajv({ strict: false });
  const validate = ajv.compile(serviceJsonSchema());
  const base = { name: "x", resources: [{ id: "a", type: "proxmox:container", image: { name: "*debian*" } }] };
  assert.equal(validate(base), true);
  assert.equal(validate({ ...base, resources: [{ ...base.resources[0], depend_on: [] }] }), false);
  assert.equal(validate({ ...base, resources: [{ id: "a", type: "proxmox:vmm" }] }), false);
  assert.equal(validate({ ...base, resources: [{ ...base.resources[0], host: { resources: { memory: "lots" } } }] }), false);
});

test("peach is as the original design describes it", () => {
  const peach = parse(readFileSync(join(ROOT, "services/peach/service.yaml"), "utf8")) as { resources: { id: string; registry?: string; path?: string }[] };
  assert.equal(peach.resources[0]?.registry, "local_registry");
  assert.equal(peach.resources[0]?.path, "./docker/reverse-proxy");
  assert.ok(readFileSync(join(ROOT, "services/peach/docker/reverse-proxy/reverse_proxy.py"), "utf8").length > 0);
  assert.ok(readFileSync(join(ROOT, "services/peach/.secrets.example.yaml"), "utf8").includes("api_key"));
});
