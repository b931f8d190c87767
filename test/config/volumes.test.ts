import assert from "node:assert/strict";
import { test } from "node:test";
import { loadRepository } from "../../src/config/repository.ts";
import { CONTAINER, findDiag, makeRepo, type RepoFiles } from "../helpers/repo.ts";

function diagnose(files: RepoFiles) {
  const repo = makeRepo(files);
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    return { ...r, diagnostics: r.diagnostics.map((d) => ({ ...d, file: d.file.slice(repo.root.length + 1) })) };
  } finally {
    repo.cleanup();
  }
}

const svc = (body: string, extra: RepoFiles = {}) => ({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}${body}`, ...extra });
const COMPOSE = { "services/app/docker-compose.yaml": "services:\n  db:\n    image: postgres\n    volumes: [pgdata:/var/lib/postgresql/data]\nvolumes:\n  pgdata:\n" };

test("volumes, bind mounts and volumes_on that are right load with defaults from the environment", () => {
  const r = diagnose(svc("    volumes:\n      - { name: data, size: 2, path: /srv/data }\n      - { name: logs, size: 1, path: /srv/logs, backup: false, storage: tank }\n    bind_mounts:\n      - { host: /mnt/media, path: /media, read_only: true }\n    docker: { compose: true, volumes_on: data }\n", COMPOSE));
  assert.deepEqual(r.diagnostics, []);
  const spec = r.services.get("app")?.resources[0]?.spec as { volumes: unknown[] };
  assert.equal(spec.volumes.length, 2);
});

test("a volume's path must be absolute, not /, not a system folder, and each path is mounted once", () => {
  const r = diagnose(svc("    volumes:\n      - { name: a, size: 1, path: srv/a }\n      - { name: b, size: 1, path: / }\n      - { name: c, size: 1, path: /etc/c }\n      - { name: d, size: 1, path: /srv/d }\n    bind_mounts:\n      - { host: /mnt/d, path: /srv/d }\n"));
  const rel = findDiag(r.diagnostics, 'path "srv/a" must be an absolute path');
  assert.equal(rel.line, 11);
  assert.equal(rel.field, "resources[0].volumes[0].path");
  findDiag(r.diagnostics, 'path "/" cannot be /');
  findDiag(r.diagnostics, "cannot be under /etc");
  const dup = findDiag(r.diagnostics, 'path "/srv/d" is already mounted by volumes.3');
  assert.equal(dup.line, 16);
});

test("sizes are whole GB, names are unique and valid", () => {
  findDiag(diagnose(svc("    volumes:\n      - { name: data, size: 0, path: /srv/a }\n")).diagnostics, "must be greater than 0");
  findDiag(diagnose(svc("    volumes:\n      - { name: data, size: 1.5, path: /srv/a }\n")).diagnostics, "whole number");
  findDiag(diagnose(svc("    volumes:\n      - { name: Bad Name, size: 1, path: /srv/a }\n")).diagnostics, "name must start with a lowercase letter");
  const twice = findDiag(diagnose(svc("    volumes:\n      - { name: data, size: 1, path: /srv/a }\n      - { name: data, size: 1, path: /srv/b }\n")).diagnostics, 'volume name "data" is used twice');
  assert.equal(twice.line, 12);
});

test("volumes_on names a declared volume (with a suggestion) and needs compose", () => {
  const r = diagnose(svc("    volumes:\n      - { name: data, size: 1, path: /srv/data }\n    docker: { compose: true, volumes_on: dta }\n", COMPOSE));
  const d = findDiag(r.diagnostics, 'volumes_on names "dta"');
  assert.equal(d.hint, 'did you mean "data"?');
  assert.equal(d.line, 12);
  const noCompose = diagnose(svc("    volumes:\n      - { name: data, size: 1, path: /srv/data }\n    docker: { volumes_on: data }\n"));
  findDiag(noCompose.diagnostics, "volumes_on is set but docker.compose is not true");
});

test("compose volumes that cannot be placed are named; named volumes without volumes_on warn that a rebuild loses them", () => {
  const external = diagnose(svc("    volumes:\n      - { name: data, size: 1, path: /srv/data }\n    docker: { compose: true, volumes_on: data }\n", { "services/app/docker-compose.yaml": "services: { db: { image: postgres } }\nvolumes:\n  pgdata: { external: true }\n" }));
  findDiag(external.diagnostics, 'compose volume "pgdata" is external');
  const lost = diagnose(svc("    docker: { compose: true }\n", COMPOSE));
  const w = findDiag(lost.diagnostics, 'compose volume "pgdata" would live in the container');
  assert.equal(w.severity, "warning");
  assert.match(w.hint ?? "", /volumes_on: data/);
});

test("bind mount host paths are absolute folders", () => {
  const r = diagnose(svc("    bind_mounts:\n      - { host: mnt/x, path: /x }\n      - { host: /, path: /y }\n"));
  assert.equal(r.diagnostics.filter((d) => d.message.includes("must be an absolute folder on the node")).length, 2);
});
