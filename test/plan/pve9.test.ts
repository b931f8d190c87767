/**
 * Proxmox VE 9 as users run it: Debian 13 next to Debian 12 templates, what
 * a container gets (release, Docker, Compose) told before it exists, and the
 * rules a PVE 9 cluster holds guests to (unprivileged by default, nesting for
 * Docker, Proxmox's tag syntax).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { loadRepository } from "../../src/config/repository.ts";
import { describeGuestSystem, guestSystem, templateRelease } from "../../src/plan/guest-system.ts";
import { planService } from "../../src/plan/plan.ts";
import type { PlannedContainer } from "../../src/plan/types.ts";
import { DEFAULT_DOCKER_PINS } from "../../src/provision/docker-pins.ts";
import { containerInputsSchema } from "../../src/provider/inputs.ts";
import { checkTagList } from "../../src/sandbox/formats.ts";
import { defaultTemplates } from "../../src/sandbox/memory-backend.ts";
import type { Inventory, InventoryTemplate } from "../../src/proxmox/inventory.ts";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const GiB = 1024 ** 3;

/** The memory sandbox's templates (what a PVE 9 node's `local` holds in it) on one node. */
function pve9Inventory(): Inventory {
  const templates: InventoryTemplate[] = defaultTemplates().map((t) => {
    const file = t.volid.slice("local:vztmpl/".length);
    const [name, version, arch] = file.replace(/\.tar\.\w+$/, "").split("_");
    return { volid: t.volid, storage: "local", file, name: name ?? file, version, arch, size: t.size, ctime: t.ctime, nodes: ["pve-01"] };
  });
  return {
    takenAt: new Date(0),
    nodes: [{ name: "pve-01", online: true, memTotal: 64 * GiB, memUsed: 8 * GiB, memFree: 56 * GiB, cpuCount: 8, cpuUsage: 0.1, cpuFree: 7.2 }],
    templates,
    guests: [],
    storages: [],
    requests: 0,
  };
}

function planApp(yaml: string, env: string[] = [], name = "app", version = ">=12"): PlannedContainer {
  const repo = makeRepo({
    "Pulumi.test.yaml": ["config:", "  homelab:tier1_hosts: [pve-01]", ...env, ""].join("\n"),
    [`services/${name}/service.yaml`]: `name: ${name}\nresources:\n${CONTAINER.replace('">=12"', `"${version}"`)}${yaml}`,
    [`services/${name}/docker-compose.yaml`]: "services: { web: { image: nginx } }\n",
  });
  try {
    const r = loadRepository({ root: repo.root, envName: "test" });
    assert.deepEqual(r.diagnostics, []);
    const service = r.services.get(name);
    assert.ok(service);
    const res = planService({ service, env: r.env, inventory: pve9Inventory(), current: new Map(), sshPublicKey: "k" });
    assert.deepEqual(res.problems, []);
    return res.plan?.resources[0] as PlannedContainer;
  } finally {
    repo.cleanup();
  }
}

describe("Debian 13 as on a current cluster", () => {
  test('`*debian*` `>=12` gets Debian 13; `^12` keeps Debian 12', () => {
    assert.equal(planApp("").inputs.template, "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst");
    assert.equal(planApp("", [], "app", "^12").inputs.template, "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
    const twelve = planApp("").template.candidates.find((c) => c.volid.includes("12.7-1"));
    assert.equal(twelve?.reason, "matches, older than 13.1-2");
  });

  test("the release a template names", () => {
    assert.deepEqual(templateRelease("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"), { distro: "debian", version: "13", codename: "trixie", label: "Debian 13 (trixie)" });
    assert.deepEqual(templateRelease("debian-12-standard_12.7-1_amd64.tar.zst"), { distro: "debian", version: "12", codename: "bookworm", label: "Debian 12 (bookworm)" });
    assert.equal(templateRelease("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst").label, "Ubuntu 24.04 (noble)");
    assert.deepEqual(templateRelease("local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz"), { distro: "other", version: "", codename: undefined, label: "alpine-3.22-default" });
    assert.equal(templateRelease("local:vztmpl/debian-15-standard_15.0-1_amd64.tar.zst").label, "Debian 15");
  });
});

describe("which Docker and which Compose a container gets, before it exists", () => {
  test("the distribution's packages: Debian 12 gives Compose v1, Debian 13 Compose v2 (its docker-compose is 2.x)", () => {
    const d12 = guestSystem("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", { source: "distribution" });
    assert.equal(d12.docker?.compose, "v1");
    assert.equal(describeGuestSystem(d12), "Debian 12 (bookworm); Docker 20.10.24, Compose v1 1.29.2 (Debian's docker.io and docker-compose)");
    const d13 = guestSystem("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst", { source: "distribution" });
    assert.equal(d13.docker?.compose, "v2");
    assert.equal(describeGuestSystem(d13), "Debian 13 (trixie); Docker 26.1.5, Compose v2 2.26.1 (Debian's docker.io, docker-cli and docker-compose)");
    assert.equal(guestSystem("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", { source: "distribution" }).docker?.compose, "v2");
    assert.equal(guestSystem("local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz", { source: "distribution" }).docker?.compose, "unknown");
    assert.equal(guestSystem("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst").docker, undefined, "no Docker without compose");
  });

  test("Docker's repository: the pinned versions for the template's release, the environment's overrides included", () => {
    const d13 = guestSystem("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst", { source: "docker" });
    assert.equal(d13.docker?.compose, "v2");
    assert.equal(d13.docker?.summary, `Docker 28.5.2, Compose v2 2.40.3, containerd.io ${DEFAULT_DOCKER_PINS["trixie"]?.containerd ?? ""} (Docker's repository, pinned)`);
    const pinned = guestSystem("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", { source: "docker", pins: { bookworm: { containerd: "1.7.28-1~debian.12~bookworm" } } });
    assert.match(pinned.docker?.summary ?? "", /containerd\.io 1\.7\.28-1~debian\.12~bookworm/);
    const alpine = guestSystem("local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz", { source: "docker" });
    assert.match(alpine.docker?.summary ?? "", /no pinned Docker versions for alpine-3\.22-default: the deploy fails unless homelab:docker_versions names them/);
  });

  test("the plan carries it: the release for every container, Docker and Compose for compose containers; the pins travel with Docker's repository only", () => {
    const plain = planApp("");
    assert.equal(plain.system?.release.label, "Debian 13 (trixie)");
    assert.equal(plain.system?.docker, undefined);
    const compose = planApp("    docker: { compose: true }\n", ["  homelab:docker_source: distribution"]);
    assert.equal(compose.system ? describeGuestSystem(compose.system) : "", "Debian 13 (trixie); Docker 26.1.5, Compose v2 2.26.1 (Debian's docker.io, docker-cli and docker-compose)");
    const twelve = planApp("    docker: { compose: true }\n", ["  homelab:docker_source: distribution"], "app", "^12");
    assert.equal(twelve.inputs.template, "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
    assert.equal(twelve.system ? describeGuestSystem(twelve.system) : "", "Debian 12 (bookworm); Docker 20.10.24, Compose v1 1.29.2 (Debian's docker.io and docker-compose)");
  });

  test("plan.provisioning: with Docker's repository the effective pins per release (the environment's over homelab's); none with the distribution's", () => {
    const repo = makeRepo({
      "Pulumi.test.yaml": ["config:", "  homelab:tier1_hosts: [pve-01]", "  homelab:docker_versions:", "    trixie: { containerd: 1.7.28-1~debian.13~trixie }", ""].join("\n"),
      "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    docker: { compose: true }\n`,
      "services/app/docker-compose.yaml": "services: { web: { image: nginx } }\n",
    });
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      const service = r.services.get("app");
      assert.ok(service);
      const p = planService({ service, env: r.env, inventory: pve9Inventory(), current: new Map(), sshPublicKey: "k" }).plan;
      assert.equal(p?.provisioning.dockerSource, "docker");
      assert.equal(p?.provisioning.dockerPins?.["trixie"]?.containerd, "1.7.28-1~debian.13~trixie");
      assert.deepEqual(p?.provisioning.dockerPins?.["bookworm"], DEFAULT_DOCKER_PINS["bookworm"]);
      const dist = planService({ service, env: { ...r.env, docker: { ...r.env.docker, source: "distribution" } }, inventory: pve9Inventory(), current: new Map(), sshPublicKey: "k" }).plan;
      assert.equal(dist?.provisioning.dockerPins, undefined);
    } finally {
      repo.cleanup();
    }
  });
});

describe("Proxmox VE 9's rules for guests", () => {
  test("unprivileged by default; nesting on for Docker containers (keyctl with it, unprivileged), off otherwise", () => {
    const plain = planApp("");
    assert.deepEqual([plain.inputs.unprivileged, plain.inputs.nesting, plain.inputs.keyctl], [true, false, false]);
    const repo = makeRepo({
      "Pulumi.test.yaml": ["config:", "  homelab:tier1_hosts: [pve-01]", "  homelab:proxmox:", "    endpoint: https://127.0.0.1:8006", "    username: root@pam", "    password_env: PVE_PASSWORD", ""].join("\n"),
      "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}    docker: { compose: true }\n`,
      "services/app/docker-compose.yaml": "services: { web: { image: nginx } }\n",
    });
    try {
      const r = loadRepository({ root: repo.root, envName: "test" });
      const service = r.services.get("app");
      assert.ok(service);
      const c = planService({ service, env: r.env, inventory: pve9Inventory(), current: new Map(), sshPublicKey: "k" }).plan?.resources[0] as PlannedContainer;
      assert.deepEqual([c.inputs.unprivileged, c.inputs.nesting, c.inputs.keyctl], [true, true, true]);
    } finally {
      repo.cleanup();
    }
    const privileged = planApp("    unprivileged: false\n    docker: { compose: true }\n");
    assert.deepEqual([privileged.inputs.unprivileged, privileged.inputs.nesting, privileged.inputs.keyctl], [false, true, false]);
  });

  test("guest tags match Proxmox's tag syntax (pve-common PVE::JSONSchema $PVE_TAG_RE): the plan's, the provider's check and the sandbox's agree; inventory tags such as tier:1 stay off guests", () => {
    // pve-common src/PVE/JSONSchema.pm: our $PVE_TAG_RE = qr/[a-z0-9_][a-z0-9_\-\+\.]*/i; (tags of pve-tag-list)
    const PVE_TAG_RE = /^[a-z0-9_][a-z0-9_\-+.]*$/i;
    for (const name of ["app", "a", "my_app", "my-app-2", "0day", "x_-_y"]) {
      const c = planApp("", [], name);
      const tags = c.inputs.tags;
      assert.deepEqual(tags, ["homelab", name]);
      for (const t of tags) assert.match(t, PVE_TAG_RE, t);
      assert.equal(checkTagList(tags.join(";")), undefined, tags.join(";"));
      assert.equal(containerInputsSchema.safeParse({ node: "pve-01", template: c.inputs.template, hostname: "x", tags }).success, true);
    }
    const c = planApp("");
    assert.deepEqual(c.inputs.tags, ["homelab", "app"]);
    assert.ok(!c.inputs.tags.some((t) => t.includes(":")), "host tags (tier:1) are the inventory's, never a guest's");
    // What Proxmox refuses, both refuse.
    assert.match(checkTagList("tier:1") ?? "", /invalid tag 'tier:1'/);
    const bad = containerInputsSchema.safeParse({ node: "pve-01", template: c.inputs.template, hostname: "x", tags: ["tier:1"] });
    assert.equal(bad.success, false);
    assert.match(JSON.stringify(bad.error?.issues), /write tier:1 as tier-1/);
  });
});
