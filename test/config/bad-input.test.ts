import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRepository } from "../../src/config/repository.ts";
import { findDiag, makeRepo, CONTAINER, type RepoFiles } from "../helpers/repo.ts";

/** Loads a repository made of BASE_FILES + files, with env `test`, and returns its diagnostics. */
function diagnose(files: RepoFiles, envName: string | undefined = "test") {
  const repo = makeRepo(files);
  try {
    const r = loadRepository({ root: repo.root, envName });
    return { ...r, diagnostics: r.diagnostics.map((d) => ({ ...d, file: d.file.slice(repo.root.length + 1) })) };
  } finally {
    repo.cleanup();
  }
}

const svc = (body: string) => ({ "services/app/service.yaml": `name: app\nresources:\n${body}` });

test("a valid service has no diagnostics and loads", () => {
  const r = diagnose(svc(CONTAINER));
  assert.deepEqual(r.diagnostics, []);
  assert.equal(r.services.get("app")?.resources[0]?.id, "web");
});

test("YAML syntax error is located", () => {
  const r = diagnose({ "services/app/service.yaml": "name: app\nresources: [\n  - id: x\n" });
  const d = r.diagnostics[0];
  assert.ok(d);
  assert.equal(d.file, "services/app/service.yaml");
  assert.match(d.message, /YAML syntax error/);
  assert.ok(d.line >= 2, `line ${d.line}`);
  assert.equal(r.services.size, 0);
});

test("duplicate key names the line of the second key", () => {
  const d = findDiag(diagnose({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}name: app\n` }).diagnostics, "duplicate key");
  assert.equal(d.line, 10);
  assert.equal(d.col, 1);
});

test("tab indentation is refused with a hint", () => {
  const d = findDiag(diagnose({ "services/app/service.yaml": "name: app\nresources:\n\t- id: web\n" }).diagnostics, "tab");
  assert.equal(d.line, 3);
  assert.equal(d.hint, "replace the tab with spaces");
});

test("unknown field suggests the right one (depend_on → depends_on)", () => {
  const d = findDiag(diagnose(svc(CONTAINER + "    depend_on: [x]\n")).diagnostics, 'unknown field "depend_on"');
  assert.equal(d.line, 10);
  assert.equal(d.col, 5);
  assert.equal(d.hint, 'did you mean "depends_on"?');
  assert.equal(d.field, "resources[0].depend_on");
});

test("unknown field in a nested mapping suggests within that mapping", () => {
  const d = findDiag(diagnose(svc(CONTAINER + "      resources: { memroy: 1024 }\n")).diagnostics, 'unknown field "memroy"');
  assert.equal(d.hint, 'did you mean "memory"?');
  assert.equal(d.line, 10);
});

test("unknown resource type lists the known ones", () => {
  const d = findDiag(diagnose(svc("  - id: vm\n    type: proxmox:vmm\n")).diagnostics, 'unknown resource type "proxmox:vmm"');
  assert.equal(d.line, 4);
  assert.equal(d.col, 11);
  assert.match(d.hint ?? "", /proxmox:container/);
});

test("a near-miss resource type gets a suggestion", () => {
  const d = findDiag(diagnose(svc("  - id: img\n    type: docker:imag\n    name: x\n    path: .\n")).diagnostics, "unknown resource type");
  assert.equal(d.hint, 'did you mean "docker:image"?');
});

test("missing id", () => {
  const d = findDiag(diagnose(svc('  - type: proxmox:container\n    image: { name: "*debian*" }\n')).diagnostics, 'missing required field "id"');
  assert.equal(d.line, 3);
});

test("duplicate ids point at the second and name the first", () => {
  const d = findDiag(diagnose(svc(CONTAINER + CONTAINER)).diagnostics, 'duplicate id "web"');
  assert.equal(d.line, 10);
  assert.match(d.message, /resources\[0\], line 3/);
});

test("depends_on a missing id suggests the close one", () => {
  const r = diagnose(svc(CONTAINER + "    depends_on: [wbe]\n  - id: other\n    type: proxmox:container\n    image: { name: '*debian*' }\n    depends_on: [missing]\n"));
  const d = findDiag(r.diagnostics, 'depends_on "wbe"');
  assert.equal(d.line, 10);
  assert.equal(findDiag(r.diagnostics, 'depends_on "missing"').line, 14);
});

test("a dependency cycle across three resources is named", () => {
  const res = (id: string, dep: string) => `  - id: ${id}\n    type: proxmox:container\n    image: { name: "*debian*" }\n    depends_on: [${dep}]\n`;
  const r = diagnose(svc(res("a", "b") + res("b", "c") + res("c", "a")));
  const d = findDiag(r.diagnostics, "dependency cycle");
  assert.equal(d.message, "dependency cycle: a → b → c → a");
  assert.equal(d.line, 6);
  assert.equal(r.services.size, 0);
});

test('memory: "lots" is not a number', () => {
  const d = findDiag(diagnose(svc(CONTAINER + '      resources: { memory: "lots" }\n')).diagnostics, "memory");
  assert.equal(d.message, 'resources[0].host.resources.memory: expected a number, got the string "lots"');
  assert.equal(d.line, 10);
  assert.equal(d.col, 28);
});

test("negative cores", () => {
  const d = findDiag(diagnose(svc(CONTAINER + "      resources: { cores: -2 }\n")).diagnostics, "cores");
  assert.match(d.message, /cores: must be greater than 0, got number -2/);
});

test("a version constraint that is not one", () => {
  const files = svc('  - id: web\n    type: proxmox:container\n    image: { name: "*debian*", version: "twelve-ish" }\n');
  const d = findDiag(diagnose(files).diagnostics, "not a version constraint");
  assert.equal(d.line, 5);
  assert.equal(d.field, "resources[0].image.version");
});

test("a constraint that can never match is rejected", () => {
  const d = findDiag(diagnose(svc('  - id: web\n    type: proxmox:container\n    image: { name: "*debian*", version: ">=12 <11" }\n')).diagnostics, "can never match");
  assert.equal(d.line, 5);
});

test("Ubuntu-style constraints are accepted (~24.04)", () => {
  assert.deepEqual(diagnose(svc('  - id: web\n    type: proxmox:container\n    image: { name: "*ubuntu*", version: "~24.04" }\n')).diagnostics, []);
});

const image = (path: string) => `  - id: img\n    type: docker:image\n    name: app_image\n    path: ${path}\n`;

test("docker:image path without a Dockerfile", () => {
  const r = diagnose({ ...svc(image("./docker")), "services/app/docker/README": "no dockerfile here\n" });
  const d = findDiag(r.diagnostics, "no Dockerfile");
  assert.equal(d.line, 6);
  assert.equal(d.hint, "create docker/Dockerfile");
});

test("docker:image path escaping the service folder", () => {
  const d = findDiag(diagnose(svc(image("../../etc"))).diagnostics, "outside the service folder");
  assert.equal(d.line, 6);
});

test("docker:image registry must be defined in the environment", () => {
  const r = diagnose({ ...svc(image("./docker") + "    registry: local_registy\n"), "services/app/docker/Dockerfile": "FROM scratch\n" });
  const d = findDiag(r.diagnostics, 'registry "local_registy" is not defined');
  assert.equal(d.hint, 'did you mean "local_registry"?');
});

const composeSvc = CONTAINER + "    docker: { compose: true }\n";

test("a missing compose file", () => {
  const d = findDiag(diagnose(svc(composeSvc)).diagnostics, 'compose file "docker-compose.yaml" does not exist');
  assert.equal(d.line, 10);
});

test("a compose file that is not YAML", () => {
  const d = findDiag(diagnose({ ...svc(composeSvc), "services/app/docker-compose.yaml": "services: [\n  web:\n" }).diagnostics, "is not valid");
  assert.match(d.message, /compose file "docker-compose.yaml" is not valid: \d+:\d+: YAML syntax error/);
});

test("a compose file without services", () => {
  findDiag(diagnose({ ...svc(composeSvc), "services/app/docker-compose.yaml": "version: '3'\n" }).diagnostics, "declares no `services:`");
});

test("a compose file that is a folder is reported, not a crash", () => {
  const body = CONTAINER + "    docker:\n      compose: true\n      compose_files: [conf]\n";
  const d = findDiag(diagnose({ ...svc(body), "services/app/conf/x.yaml": "a: 1\n" }).diagnostics, '"conf" is not valid');
  assert.equal(d.message, 'compose file "conf" is not valid: 1:1: cannot read compose file: EISDIR');
  assert.deepEqual([d.line, d.col], [12, 23]);
});

test("compose_files are checked in order, each located", () => {
  const body = CONTAINER + "    docker:\n      compose: true\n      compose_files: [a.yaml, b.yaml]\n";
  const d = findDiag(diagnose({ ...svc(body), "services/app/a.yaml": "services: { web: { image: x } }\n" }).diagnostics, '"b.yaml" does not exist');
  assert.equal(d.line, 12);
  assert.equal(d.col, 31);
});

test("an empty file", () => {
  const d = findDiag(diagnose({ "services/app/service.yaml": "\n  \n" }).diagnostics, "empty");
  assert.deepEqual([d.line, d.col], [1, 1]);
});

test("name differs from its folder", () => {
  const d = findDiag(diagnose({ "services/app/service.yaml": `name: apple\nresources:\n${CONTAINER}` }).diagnostics, "differs from its folder");
  assert.equal(d.line, 1);
  assert.equal(d.col, 7);
  assert.match(d.hint ?? "", /set name: app/);
});

test("a 5 MB file is refused without being parsed", () => {
  const big = "# " + "x".repeat(5 * 1024 * 1024) + "\n";
  const d = findDiag(diagnose({ "services/app/service.yaml": big }).diagnostics, "limit is 1 MiB");
  assert.match(d.message, /5\.0 MiB/);
});

test("a non-UTF-8 file names the line and column of the bad byte", () => {
  const bytes = Buffer.concat([Buffer.from("name: app\ndescription: caf"), Buffer.from([0xe9]), Buffer.from("\nresources: []\n")]);
  const d = findDiag(diagnose({ "services/app/service.yaml": bytes }).diagnostics, "not valid UTF-8");
  assert.deepEqual([d.line, d.col], [2, 17]);
  assert.match(d.message, /0xe9/);
});

test("a YAML bomb (billion laughs) fails fast", () => {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  const letters = "abcdefghij";
  for (let i = 1; i < letters.length; i++) {
    const prev = letters[i - 1] ?? "a";
    lines.push(`${letters[i] ?? "z"}: &${letters[i] ?? "z"} [${Array(9).fill(`*${prev}`).join(",")}]`);
  }
  const started = process.hrtime.bigint();
  const heapBefore = process.memoryUsage().heapUsed;
  const d = findDiag(diagnose({ "services/app/service.yaml": lines.join("\n") + "\n" }).diagnostics, "billion laughs");
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // 9^10 expansions would take minutes and gigabytes; refusing is instant.
  assert.ok(ms < 5000, `took ${ms} ms`);
  assert.ok(process.memoryUsage().heapUsed - heapBefore < 200 * 1024 * 1024);
  assert.equal(d.line, 1);
});

test("an undefined alias is an error, not a crash", () => {
  const r = diagnose({ "services/app/service.yaml": "name: app\nresources: *nothing\n" });
  assert.ok(r.diagnostics.length >= 1);
  assert.equal(r.services.size, 0);
});

test("a service that is a list, not a mapping", () => {
  findDiag(diagnose({ "services/app/service.yaml": "- a\n- b\n" }).diagnostics, "must be a mapping");
});

test("network ports, ip and gateway are checked", () => {
  const body = CONTAINER + '    network:\n      ports: ["80:80", "70000:1"]\n      ip: 10.0.0.5\n      gateway: 10.0.0.1\n';
  const r = diagnose(svc(body));
  const port = findDiag(r.diagnostics, "ports must look like");
  assert.equal(port.line, 11);
  findDiag(r.diagnostics, 'ip must be "dhcp" or an address with prefix');
});

test("compose_files without compose: true would silently do nothing, so it is an error", () => {
  const r = diagnose({ ...svc(CONTAINER + "    docker: { compose_files: [a.yaml] }\n") });
  assert.equal(findDiag(r.diagnostics, "compose_files is set").hint, "set docker.compose: true");
});

test("host tags no host carries are a warning, not an error", () => {
  const r = diagnose(svc(CONTAINER.replace("tier:1", "tier:9")));
  const d = findDiag(r.diagnostics, "no host in environment");
  assert.equal(d.severity, "warning");
  assert.equal(r.services.size, 1);
});

test("every problem in a file is reported, not just the first", () => {
  const body = '  - id: web\n    type: proxmox:container\n    image: { name: "*debian*", version: "nope" }\n    host: { resources: { memory: "lots", cores: -1 } }\n    depend_on: [x]\n';
  const r = diagnose(svc(body));
  assert.ok(r.diagnostics.length >= 3, r.diagnostics.map((d) => d.message).join("\n"));
});

test("an environment that builds no images does not require the registry to be defined", () => {
  const files = { ...svc(image("./docker") + "    registry: local_registry\n"), "services/app/docker/Dockerfile": "FROM scratch\n", "Pulumi.noimg.yaml": "config:\n  homelab:provisioning: false\n" };
  assert.deepEqual(diagnose(files, "noimg").diagnostics, []);
  findDiag(diagnose({ ...files, "Pulumi.noimg.yaml": "config: {}\n" }, "noimg").diagnostics, 'registry "local_registry" is not defined');
});
