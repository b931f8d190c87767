import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planBase } from "../../src/plan/base-plan.ts";
import { BASE_DISK_GB, baseKey, baseKeyTag, cleanBaseScript, keyOfTags } from "../../src/provision/base.ts";
import { DEFAULT_DOCKER_PINS } from "../../src/provision/docker-pins.ts";
import { emptyEnvironment } from "../../src/config/environment.ts";
import type { Inventory, InventoryGuest } from "../../src/proxmox/inventory.ts";
import { missingBases } from "../../src/session/bases.ts";
import { baseText } from "../../src/cli/render/changes.ts";
import { diffContainer } from "../../src/provider/diff.ts";
import type { ServicePlan } from "../../src/plan/types.ts";
import { containerInputs, plannedContainer } from "../engine/plans.ts";

const T13 = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst";
const KEY = "ssh-ed25519 AAAA test";
const env = { ...emptyEnvironment("sandbox"), docker: { host: undefined, source: "docker" as const, base: "clone" as const } };
const inventory = (guests: InventoryGuest[] = []): Inventory => ({ takenAt: new Date(0), nodes: [], guests, storages: [], templates: [], requests: 0 });
const guest = (vmid: number, node: string, tags: string[], template = true): InventoryGuest => ({ vmid, node, type: "lxc", name: "b", status: "stopped", tags, template, lock: undefined, memMax: 0 });

void describe("Docker-ready bases: keys and planning", () => {
  void it("the key changes with the template, privilege, Docker's source, its pinned versions and the SSH key; not otherwise", () => {
    const spec = { template: T13, unprivileged: true, dockerSource: "docker" as const, pins: DEFAULT_DOCKER_PINS["trixie"], sshPublicKey: KEY };
    const k = baseKey(spec);
    assert.match(k, /^[0-9a-f]{16}$/);
    assert.equal(baseKey({ ...spec }), k);
    for (const other of [{ template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst" }, { unprivileged: false }, { dockerSource: "distribution" as const }, { sshPublicKey: "ssh-ed25519 BBBB" }, { pins: { ...DEFAULT_DOCKER_PINS["trixie"]!, containerd: "1.7.28-1~debian.13~trixie" } }]) {
      assert.notEqual(baseKey({ ...spec, ...other }), k, JSON.stringify(other));
    }
    assert.equal(keyOfTags(["homelab", "homelab-base", baseKeyTag(k)]), k);
    assert.equal(keyOfTags(["homelab", baseKeyTag(k)]), undefined);
  });

  void it("clones an existing base of the node, else plans one built first; installs when told or when the disk is too small", () => {
    const none = planBase({ env, inventory: inventory(), node: "pve-01", template: T13, unprivileged: true, diskGb: 4, sshPublicKey: KEY });
    assert.equal(none.mode, "clone");
    if (none.mode !== "clone") return;
    assert.equal(none.vmid, undefined);
    assert.match(none.reason, /built there first/);
    const tags = ["homelab", "homelab-base", baseKeyTag(none.key)];
    const found = planBase({ env, inventory: inventory([guest(9000, "pve-02", tags), guest(9001, "pve-01", tags), guest(9002, "pve-01", tags, false)]), node: "pve-01", template: T13, unprivileged: true, diskGb: 4, sshPublicKey: KEY });
    assert.deepEqual(found.mode === "clone" ? found.vmid : "install", 9001);
    assert.equal(planBase({ env: { ...env, docker: { ...env.docker, base: "install" } }, inventory: inventory(), node: "pve-01", template: T13, unprivileged: true, diskGb: 4, sshPublicKey: KEY }).mode, "install");
    const small = planBase({ env, inventory: inventory(), node: "pve-01", template: T13, unprivileged: true, diskGb: BASE_DISK_GB - 1, sshPublicKey: KEY });
    assert.deepEqual([small.mode, small.reason.includes("smaller than a base")], ["install", true]);
    assert.match(baseText(found), /cloned from the Docker-ready base CT 9001/);
    assert.match(baseText(none), /built first/);
  });

  void it("a changed pin plans a new base to build; a deployed container's inputs are no change (its base matters at creation only)", () => {
    const pinned = (containerd: string) => ({ ...env, docker: { ...env.docker, versions: { trixie: { containerd } } } });
    const a = planBase({ env: pinned("1.7.29-1~debian.13~trixie"), inventory: inventory(), node: "pve-01", template: T13, unprivileged: true, diskGb: 4, sshPublicKey: KEY });
    const tags = a.mode === "clone" ? ["homelab", "homelab-base", baseKeyTag(a.key)] : [];
    const b = planBase({ env: pinned("1.7.28-1~debian.13~trixie"), inventory: inventory([guest(9001, "pve-01", tags)]), node: "pve-01", template: T13, unprivileged: true, diskGb: 4, sshPublicKey: KEY });
    assert.ok(a.mode === "clone" && b.mode === "clone" && a.key !== b.key);
    assert.equal(b.mode === "clone" ? b.vmid : 0, undefined, "the old base does not serve the new pin");
    const plan = (key: string, vmid: number | undefined): ServicePlan => ({
      service: "web",
      environment: "sandbox",
      stack: "sandbox.web",
      dependsOnServices: [],
      notes: [],
      provisioning: { enabled: true, dockerSource: "docker" },
      resources: [plannedContainer("ct", containerInputs({ base: key }), { base: { mode: "clone", key, spec: { template: T13, unprivileged: true, dockerSource: "docker", sshPublicKey: KEY }, vmid, reason: "" } })],
    });
    assert.deepEqual(missingBases([plan(b.mode === "clone" ? b.key : "", undefined), plan("aaaaaaaaaaaaaaaa", 9001)]).map((n) => [n.node, n.key, n.services]), [["pve-01", b.mode === "clone" ? b.key : "", ["web"]]]);
    const d = diffContainer({ ...containerInputs({ base: a.mode === "clone" ? a.key : "" }), vmid: 105, address: "10.0.0.5" }, containerInputs({ base: b.mode === "clone" ? b.key : "" }));
    assert.deepEqual(d.changed, []);
  });

  void it("the base is cleaned of what clones must not share, and makes each clone's SSH host keys at first boot", () => {
    const script = cleanBaseScript();
    for (const line of ["rm -f /etc/ssh/ssh_host_*", ": > /etc/machine-id", "rm -rf /var/lib/apt/lists/*", "systemctl enable --quiet homelab-host-keys.service"]) assert.ok(script.includes(line), line);
  });
});
