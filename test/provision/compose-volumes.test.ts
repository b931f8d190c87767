import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { buildComposeDeployment } from "../../src/provision/compose.ts";
import { migrationLines, placedVolumes, volumesOverride } from "../../src/provision/compose-volumes.ts";
import { applyScript } from "../../src/provision/compose-scripts.ts";

const FILES = [
  { path: "docker-compose.yaml", content: "services:\n  npm:\n    image: npm\n    volumes: [npm-data:/data, certs:/etc/letsencrypt]\nvolumes:\n  npm-data:\n  certs: { name: peach-certs }\n" },
  { path: "docker-compose.prod.yaml", content: "services: { npm: { restart: always } }\nvolumes:\n  npm-data: {}\n  extra:\n" },
];

void describe("compose named volumes on a data volume (docker.volumes_on)", () => {
  void it("every named volume of every file, once, with the name Docker gives it, in a folder of its own", () => {
    assert.deepEqual(placedVolumes(FILES, "peach", "/srv/peach"), [
      { key: "npm-data", dockerName: "peach_npm-data", dir: "/srv/peach/npm-data" },
      { key: "certs", dockerName: "peach-certs", dir: "/srv/peach/certs" },
      { key: "extra", dockerName: "peach_extra", dir: "/srv/peach/extra" },
    ]);
  });
  void it("the override binds each volume to its folder with the local driver", () => {
    const doc = parse(volumesOverride(placedVolumes(FILES, "peach", "/srv/peach"))) as { volumes: Record<string, unknown> };
    assert.deepEqual(doc.volumes["npm-data"], { driver: "local", driver_opts: { type: "none", o: "bind", device: "/srv/peach/npm-data" } });
  });
  void it("the deployment adds the override after the service's files and the apply script makes the folders and migrates old volumes", () => {
    const d = buildComposeDeployment({ service: "peach", composeFiles: FILES, secrets: new Map(), volumesDir: "/srv/peach" });
    assert.deepEqual(d.composePaths, ["/opt/homelab/peach/docker-compose.yaml", "/opt/homelab/peach/docker-compose.prod.yaml", "/opt/homelab/peach/homelab-volumes.yaml"]);
    assert.equal(d.files.find((f) => f.role === "volumes")?.path, "/opt/homelab/peach/homelab-volumes.yaml");
    const script = applyScript(d);
    assert.match(script, /mkdir -p '?\/srv\/peach\/npm-data'?/);
    assert.match(script, /docker volume inspect '?peach_npm-data'?/);
    const without = buildComposeDeployment({ service: "peach", composeFiles: FILES, secrets: new Map() });
    assert.deepEqual([without.volumes, without.files.some((f) => f.role === "volumes")], [[], false]);
    assert.doesNotMatch(applyScript(without), /docker volume inspect/);
  });
  void it("migration never deletes an old volume before its data is copied, and refuses when both hold data", () => {
    const lines = migrationLines([{ key: "db", dockerName: "app_db", dir: "/srv/app/db" }], "homelab-app.service").join("\n");
    const copy = lines.indexOf("cp -a");
    const rm = lines.indexOf("docker volume rm app_db >/dev/null");
    assert.ok(copy > 0 && rm > copy, lines);
    assert.match(lines, /both Docker's volume app_db and \/srv\/app\/db hold data/);
  });
  void it("a compose file cannot take the override's name", () => {
    assert.throws(() => buildComposeDeployment({ service: "x", composeFiles: [{ path: "homelab-volumes.yaml", content: "services: {}" }], secrets: new Map() }), /homelab uses/);
  });
});
