import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRepository, RepositoryError } from "../../src/config/repository.ts";
import { CONTAINER, findDiag, makeRepo } from "../helpers/repo.ts";

test("depends_on other_service.resource_id resolves across services", () => {
  const repo = makeRepo({
    "services/db/service.yaml": `name: db\nresources:\n${CONTAINER}`,
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    depends_on: [db.web]\n`,
  });
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.services.size, 2);
  } finally {
    repo.cleanup();
  }
});

test("a missing service or resource in another service is reported with suggestions", () => {
  const repo = makeRepo({
    "services/db/service.yaml": `name: db\nresources:\n${CONTAINER}`,
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    depends_on: [db.wbe, dbb.web]\n`,
  });
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    assert.equal(findDiag(r.diagnostics, 'service "db" has no resource "wbe"').hint, 'did you mean "db.web"?');
    assert.equal(findDiag(r.diagnostics, 'there is no service "dbb"').hint, 'did you mean "db.web"?');
    assert.equal(r.services.has("app"), false);
    assert.equal(r.services.has("db"), true);
  } finally {
    repo.cleanup();
  }
});

test("a cycle across services is named with service-qualified ids", () => {
  const repo = makeRepo({
    "services/a/service.yaml": `name: a\nresources:\n${CONTAINER}    depends_on: [b.web]\n`,
    "services/b/service.yaml": `name: b\nresources:\n${CONTAINER}    depends_on: [a.web]\n`,
  });
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    assert.equal(findDiag(r.diagnostics, "dependency cycle").message, "dependency cycle: a.web → b.web → a.web");
  } finally {
    repo.cleanup();
  }
});

test("validating one service reports only its problems; an unknown name is a clear error", () => {
  const repo = makeRepo({
    "services/good/service.yaml": `name: good\nresources:\n${CONTAINER}`,
    "services/bad/service.yaml": "name: bad\nresources: 3\n",
  });
  try {
    assert.deepEqual(loadRepository({ root: repo.root, envName: "test", only: ["good"] }).diagnostics, []);
    assert.ok(loadRepository({ root: repo.root, envName: "test" }).diagnostics.length > 0);
    assert.throws(() => loadRepository({ root: repo.root, envName: "test", only: ["godo"] }), (e: unknown) => e instanceof RepositoryError && e.hint === 'did you mean "good"?');
  } finally {
    repo.cleanup();
  }
});

test("monitoring checks are validated against the service's containers", () => {
  const repo = makeRepo({
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}${CONTAINER.replace("id: web", "id: db")}monitoring:\n  health_checks:\n    - type: http\n      url: http://{address}:80\n    - type: tcp\n      port: 5432\n      resource: dbb\n    - type: http\n      url: not a url\n      resource: web\n      interval: 5\n      timeout: 10\n`,
  });
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    findDiag(r.diagnostics, "must say which container");
    assert.equal(findDiag(r.diagnostics, 'resource "dbb"').hint, 'did you mean "db"?');
    findDiag(r.diagnostics, "is not a valid URL");
    findDiag(r.diagnostics, "timeout (10s) must be shorter than interval (5s)");
  } finally {
    repo.cleanup();
  }
});
