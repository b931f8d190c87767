import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRepository } from "../../src/config/repository.ts";
import type { Inventory, InventoryNode, InventoryTemplate } from "../../src/proxmox/inventory.ts";
import { matchTemplate } from "../../src/plan/templates.ts";
import { dependentsOf, planService, serviceWaves, type PlanInput } from "../../src/plan/plan.ts";
import type { PlannedContainer } from "../../src/plan/types.ts";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const GiB = 1024 ** 3;
const node = (name: string, freeGiB: number, online = true): InventoryNode => ({
  name,
  online,
  memTotal: 64 * GiB,
  memUsed: (64 - freeGiB) * GiB,
  memFree: freeGiB * GiB,
  cpuCount: 8,
  cpuUsage: 0.1,
  cpuFree: 7.2,
});
const tpl = (file: string, nodes = ["pve-01", "pve-02", "pve-03"], storage = "local"): InventoryTemplate => {
  const m = /^([^_]+)_([^_]+)_([^.]+)/.exec(file);
  return { volid: `${storage}:vztmpl/${file}`, storage, file, name: m?.[1] ?? file, version: m?.[2], arch: m?.[3], size: 1, ctime: 0, nodes };
};
const TEMPLATES = [
  tpl("debian-11-standard_11.7-1_amd64.tar.zst"),
  tpl("debian-12-standard_12.2-1_amd64.tar.zst"),
  tpl("debian-12-standard_12.7-1_amd64.tar.zst"),
  tpl("ubuntu-22.04-standard_22.04-1_amd64.tar.zst"),
  tpl("ubuntu-24.04-standard_24.04-2_amd64.tar.zst"),
];
const inventory = (nodes: InventoryNode[], templates = TEMPLATES): Inventory => ({ takenAt: new Date(0), nodes, guests: [], storages: [], templates, requests: 4 });

test("template matching: newest matching version wins, and the losers say why", () => {
  const m = matchTemplate(TEMPLATES, { pattern: "*debian*", version: ">=12" });
  assert.equal(m.chosen?.file, "debian-12-standard_12.7-1_amd64.tar.zst");
  const byFile = new Map(m.candidates.map((c) => [c.volid.split("/")[1], c]));
  assert.equal(byFile.get("debian-12-standard_12.2-1_amd64.tar.zst")?.reason, "matches, older than 12.7-1");
  assert.equal(byFile.get("debian-11-standard_11.7-1_amd64.tar.zst")?.reason, "version 11.7-1 does not satisfy >=12");
  assert.equal(byFile.get("ubuntu-24.04-standard_24.04-2_amd64.tar.zst")?.reason, "name does not match *debian*");
  assert.equal(matchTemplate(TEMPLATES, { pattern: "*ubuntu*", version: "~22.04" }).chosen?.version, "22.04-1");
  assert.equal(matchTemplate(TEMPLATES, { pattern: "*debian*", version: "^12.2 <12.3" }).chosen?.version, "12.2-1");
  assert.equal(matchTemplate(TEMPLATES, { pattern: "*alpine*", version: "*" }).chosen, undefined);
});

test("template matching is sticky: the deployed template stays while it still matches", () => {
  const current = "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst";
  const kept = matchTemplate(TEMPLATES, { pattern: "*debian*", version: ">=12", current });
  assert.equal(kept.chosen?.volid, current);
  assert.equal(kept.sticky, true);
  const moved = matchTemplate(TEMPLATES, { pattern: "*debian*", version: ">=12.5", current });
  assert.equal(moved.chosen?.version, "12.7-1");
  assert.equal(moved.sticky, false);
});

function setup(extraTags = "") {
  const repo = makeRepo({
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}      resources: { memory: 4096, cores: 2 }\n`,
    "services/db/service.yaml": `name: db\nresources:\n${CONTAINER.replace("tier:1", `tier:1${extraTags}`)}`,
    "services/web/service.yaml": `name: web\nresources:\n${CONTAINER}    depends_on: [app.web, db.web]\n`,
    "services/solo/service.yaml": `name: solo\nresources:\n${CONTAINER}`,
  });
  const r = loadRepository({ root: repo.root, envName: "test" });
  repo.cleanup();
  assert.deepEqual(r.diagnostics, []);
  return r;
}

function plan(r: ReturnType<typeof setup>, name: string, inv: Inventory, extra: Partial<PlanInput> = {}) {
  const service = r.services.get(name);
  assert.ok(service);
  return planService({ service, env: r.env, inventory: inv, current: new Map(), sshPublicKey: "ssh-ed25519 AAAA test", ...extra });
}

test("placement: only nodes with every tag; most free memory wins; others explained", () => {
  const r = setup();
  const { plan: p, problems } = plan(r, "app", inventory([node("pve-01", 10), node("pve-02", 20), node("pve-03", 40)]));
  assert.deepEqual(problems, []);
  const c = p?.resources[0] as PlannedContainer;
  assert.equal(c.inputs.node, "pve-02");
  assert.equal(c.inputs.template, "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
  assert.deepEqual(c.inputs.tags, ["homelab", "app"]);
  assert.equal(c.inputs.memory, 4096);
  assert.equal(p?.stack, "test.app");
  const reasons = Object.fromEntries(c.placement.candidates.map((x) => [x.node, x.reason]));
  assert.match(reasons["pve-02"] ?? "", /^chosen by most-free-memory: 20\.0 GiB free/);
  assert.match(reasons["pve-01"] ?? "", /^eligible, ranked lower/);
  assert.equal(reasons["pve-03"], "missing tag tier:1");
  const codes = Object.fromEntries(c.placement.candidates.map((x) => [x.node, x.code]));
  assert.deepEqual(codes, { "pve-02": "chosen", "pve-01": "ranked-lower", "pve-03": "missing-tags" });
});

test("placement: offline and too-full nodes are refused with reasons; none left is a clear problem", () => {
  const r = setup();
  const { problems } = plan(r, "app", inventory([node("pve-01", 2), node("pve-02", 30, false), node("pve-03", 40)]));
  assert.equal(problems.length, 1);
  assert.match(problems[0]?.message ?? "", /pve-01: not enough free memory: 2\.0 GiB < 4\.0 GiB; pve-02: offline; pve-03: missing tag tier:1/);
});

test("placement is sticky: a deployed container stays on a busier node while its constraints hold", () => {
  const r = setup();
  const inv = inventory([node("pve-01", 1), node("pve-02", 30)]);
  const current = new Map([["web", { node: "pve-01", template: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst" }]]);
  const c = plan(r, "app", inv, { current }).plan?.resources[0] as PlannedContainer;
  assert.equal(c.inputs.node, "pve-01");
  assert.equal(c.placement.sticky, true);
  assert.deepEqual(c.placement.candidates.map((x) => [x.node, x.code]), [["pve-01", "sticky"], ["pve-02", "stays"]]);
  assert.equal(c.inputs.template, "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst");
  // Once the node no longer carries the tag, the container moves.
  const env2 = { ...r.env, hosts: { ...r.env.hosts, "pve-01": [] } };
  const moved = plan(r, "app", inv, { current, env: env2 }).plan?.resources[0] as PlannedContainer;
  assert.equal(moved.inputs.node, "pve-02");
});

test("services planned in one run spread out: placed memory is reserved", () => {
  const r = setup();
  const inv = inventory([node("pve-01", 10), node("pve-02", 12)]);
  const reservations = new Map<string, number>();
  const a = plan(r, "app", inv, { reservations }).plan?.resources[0] as PlannedContainer;
  const b = plan(r, "app", inv, { reservations }).plan?.resources[0] as PlannedContainer;
  assert.equal(a.inputs.node, "pve-02");
  assert.equal(b.inputs.node, "pve-01");
});

test("a template present only on some nodes restricts placement", () => {
  const r = setup();
  const inv = inventory([node("pve-01", 10), node("pve-02", 30)], [tpl("debian-12-standard_12.7-1_amd64.tar.zst", ["pve-01"])]);
  const c = plan(r, "app", inv).plan?.resources[0] as PlannedContainer;
  assert.equal(c.inputs.node, "pve-01");
  assert.equal(c.placement.candidates.find((x) => x.node === "pve-02")?.reason, "no matching template on its storages");
  assert.equal(c.placement.candidates.find((x) => x.node === "pve-02")?.code, "no-template");
});

test("when no node can take a container, the hint follows the reasons", () => {
  const r = setup();
  const noTemplate = plan(r, "app", inventory([node("pve-01", 30)], [tpl("ubuntu-24.04-standard_24.04-2_amd64.tar.zst")]));
  assert.match(noTemplate.problems[0]?.hint ?? "", /no template matching \*debian\* >=12 .*pveam download/);
  const full = plan(r, "app", inventory([node("pve-01", 1)]));
  assert.match(full.problems[0]?.hint ?? "", /^free memory on a tagged node/);
  const offline = plan(r, "app", inventory([node("pve-01", 30, false)]));
  assert.equal(offline.problems[0]?.hint, "bring a tagged node back online");
});

test("Docker in an unprivileged container with only an API token is a plan problem naming both fixes", () => {
  const repo = makeRepo({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    docker: { compose: true }\n`, "services/app/docker-compose.yaml": "services: { a: { image: x } }\n" });
  const r = loadRepository({ root: repo.root, envName: "test" });
  repo.cleanup();
  const env = { ...r.env, proxmox: { endpoint: "https://127.0.0.1:8006", tokenId: "root@pam!x", insecure: false } };
  const service = r.services.get("app");
  assert.ok(service);
  const res = planService({ service, env, inventory: inventory([node("pve-01", 10)]), current: new Map(), sshPublicKey: "k" });
  assert.match(res.problems[0]?.message ?? "", /keyctl.*only root@pam/);
  assert.match(res.problems[0]?.hint ?? "", /unprivileged: false.*password_file/);
  const withUser = planService({ service, env: { ...env, proxmox: { ...env.proxmox, username: "root@pam" } }, inventory: inventory([node("pve-01", 10)]), current: new Map(), sshPublicKey: "k" });
  const c = withUser.plan?.resources[0] as PlannedContainer;
  assert.deepEqual([c.inputs.nesting, c.inputs.keyctl], [true, true]);
});

test("service waves follow cross-service dependencies; dependents of a failure are found", () => {
  const r = setup();
  assert.deepEqual(serviceWaves(r.services), [["app", "db", "solo"], ["web"]]);
  assert.deepEqual([...dependentsOf(r.services, "db")], ["web"]);
  assert.deepEqual([...dependentsOf(r.services, "solo")], []);
  const web = plan(r, "web", inventory([node("pve-01", 30)])).plan;
  assert.deepEqual(web?.dependsOnServices, ["app", "db"]);
  assert.deepEqual(web?.resources[0]?.crossDependsOn, [{ service: "app", id: "web" }, { service: "db", id: "web" }]);
});

test("a docker.compose container plans its compose files (absolute, in order); with provisioning off none, and a note says why", () => {
  for (const provisioning of [true, false]) {
    const repo = makeRepo({
      ...(provisioning ? {} : { "Pulumi.test.yaml": "config:\n  homelab:tier1_hosts: [pve-01, pve-02]\n  homelab:provisioning: false\n" }),
      "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    docker:\n      compose: true\n      compose_files: [base.yaml, override.yaml]\n`,
      "services/app/base.yaml": "services:\n  web:\n    image: nginx\n",
      "services/app/override.yaml": "services:\n  web:\n    ports: ['80:80']\n",
    });
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      assert.deepEqual(r.diagnostics, []);
      const service = r.services.get("app");
      assert.ok(service);
      const { plan: p } = planService({ service, env: r.env, inventory: inventory([node("pve-01", 10)]), current: new Map(), sshPublicKey: "k" });
      const c = p?.resources[0] as PlannedContainer;
      if (provisioning) {
        assert.deepEqual(c.compose, { dir: service.dir, files: [`${service.dir}/base.yaml`, `${service.dir}/override.yaml`] });
        assert.deepEqual(p?.notes, []);
      } else {
        assert.equal(c.compose, undefined);
        assert.match(p?.notes.join("\n") ?? "", /provisioning is off in environment test/);
      }
      assert.equal(p?.provisioning.enabled, provisioning);
    } finally {
      repo.cleanup();
    }
  }
});

function volumesRepo(body: string, env?: string) {
  const repo = makeRepo({
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}${body}`,
    "services/app/docker-compose.yaml": "services: { db: { image: postgres, volumes: [pgdata:/data] } }\nvolumes: { pgdata: {} }\n",
    ...(env !== undefined ? { "Pulumi.test.yaml": env } : {}),
  });
  const r = loadRepository({ root: repo.root, envName: "test" });
  repo.cleanup();
  return r;
}
const storages = (nodes: string[], extra: { storage: string; content: string[] }[] = []) =>
  nodes.flatMap((n) => [{ storage: "local-lvm", node: n, type: "lvmthin", content: ["rootdir", "images"], shared: false, available: true, total: 0, used: 0 }, ...extra.map((e) => ({ ...e, node: n, type: "dir", shared: false, available: true, total: 0, used: 0 }))]);

test("volumes and bind mounts become the container's inputs; volumes_on tells compose where named volumes live", () => {
  const r = volumesRepo("    volumes:\n      - { name: data, size: 2, path: /srv/data }\n    docker: { compose: true, volumes_on: data }\n");
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === "error"), []);
  const inv = { ...inventory([node("pve-01", 30)]), storages: storages(["pve-01"]) };
  const c = plan(r, "app", inv).plan?.resources[0] as PlannedContainer;
  assert.deepEqual(c.inputs.volumes, [{ name: "data", sizeGb: 2, path: "/srv/data", storage: "local-lvm", backup: true }]);
  assert.deepEqual(c.inputs.bindMounts, []);
  assert.equal(c.compose?.volumesDir, "/srv/data");
});

test("a volume on a storage the node lacks, or one that cannot hold container volumes, is a plan problem naming the usable ones", () => {
  const r = volumesRepo("    volumes:\n      - { name: data, size: 2, path: /srv/data, storage: tank }\n");
  const missing = plan(r, "app", { ...inventory([node("pve-01", 30)]), storages: storages(["pve-01"]) });
  assert.match(missing.problems[0]?.message ?? "", /storage "tank", which node pve-01 does not have/);
  assert.equal(missing.problems[0]?.hint, "use one of: local-lvm");
  // Located in service.yaml: the storage of the first volume.
  assert.deepEqual(missing.problems[0]?.at, { file: "services/app/service.yaml", line: 11, col: 58 });
  const wrong = plan(r, "app", { ...inventory([node("pve-01", 30)]), storages: storages(["pve-01"], [{ storage: "tank", content: ["backup", "iso"] }]) });
  assert.match(wrong.problems[0]?.message ?? "", /cannot hold container volumes \(its content is backup, iso\)/);
});

test("bind mounts need root@pam: an API token alone is a plan problem with the fix", () => {
  const r = volumesRepo("    bind_mounts:\n      - { host: /mnt/media, path: /media }\n");
  const env = { ...r.env, proxmox: { endpoint: "https://127.0.0.1:8006", tokenId: "root@pam!x", insecure: false } };
  const res = plan(r, "app", inventory([node("pve-01", 30)]), { env });
  assert.match(res.problems[0]?.message ?? "", /bind mounts, which only root@pam may set/);
  assert.equal(res.problems[0]?.at?.line, 11);
  assert.match(res.problems[0]?.hint ?? "", /root@pam username with password_file/);
  const ok = plan(r, "app", inventory([node("pve-01", 30)]), { env: { ...env, proxmox: { ...env.proxmox, username: "root@pam" } } });
  assert.deepEqual((ok.plan?.resources[0] as PlannedContainer).inputs.bindMounts, [{ host: "/mnt/media", path: "/media", readOnly: false }]);
});

test("a container with volumes that must move to another node is marked: its data cannot follow", () => {
  const r = volumesRepo("    volumes:\n      - { name: data, size: 2, path: /srv/data }\n");
  const inv = inventory([node("pve-01", 30), node("pve-02", 40)]);
  const stays = plan(r, "app", inv, { current: new Map([["web", { node: "pve-01", volumes: ["data"] }]]) }).plan?.resources[0] as PlannedContainer;
  assert.equal(stays.dataMove, undefined);
  const env = { ...r.env, hosts: { ...r.env.hosts, "pve-01": [] } };
  const moves = plan(r, "app", inv, { env, current: new Map([["web", { node: "pve-01", volumes: ["data"] }]]) }).plan?.resources[0] as PlannedContainer;
  assert.deepEqual(moves.dataMove, { from: "pve-01", to: "pve-02", volumes: ["data"] });
});
