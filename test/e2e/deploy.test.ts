import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readFileBackendState } from "../../src/engine/pulumi-internals.ts";
import { sandboxEnvFile, startWorld } from "./helpers.ts";
import type { World } from "./helpers.ts";

/** The template a container was created from, as the stack records it (Proxmox keeps only the OS type). */
async function deployedTemplate(w: World, service: string, id: string): Promise<string | undefined> {
  const state = await readFileBackendState(join(w.root, ".homelab", "state"), `sandbox.${service}`);
  const t = state?.resources.find((r) => r.id === id)?.inputs["template"];
  return typeof t === "string" ? t : undefined;
}

/** Every text file under a folder, concatenated (to grep the state). */
function readTree(dir: string): string {
  if (!existsSync(dir)) return "";
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"))
    .join("\n");
}

void describe("[pulumi] homelab deploy / destroy / status against the sandbox", { timeout: 600_000 }, () => {
  let w: World;
  before(async () => {
    w = await startWorld({ services: ["peach", "librechat"] });
  });
  after(() => w.close());

  void it("deploy --dry-run explains placement, says docker:image is skipped, and changes nothing", async () => {
    w.sandbox.counters.reset();
    const r = await w.cli(["deploy", "peach", "--dry-run"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /peach_reverse_proxy_image {2}provisioning is off in environment sandbox \(homelab:provisioning: false\): the image is not built/);
    // As on a Proxmox VE 9 cluster, `*debian*` `>=12` is Debian 13 (and with provisioning off no Docker is promised).
    assert.match(r.stdout, /\+ create {2}peach_container {2}on pve-01, debian-13-standard_13\.1-2_amd64, 2048 MB, 2 core\(s\), Debian 13 \(trixie\)\n/);
    assert.match(r.stdout, /template {2}debian-13-standard_13\.1-2_amd64 — newest matching version/);
    assert.match(r.stdout, /beat debian-12-standard_12\.7-1_amd64/);
    assert.match(r.stdout, /system {4}Debian 13 \(trixie\)\n/);
    assert.match(r.stdout, /not pve-03: missing tag tier:1/);
    assert.match(r.stdout, /beat pve-02/);
    assert.deepEqual(w.writes(), {});
    assert.deepEqual(await w.containers(), []);
    // A preview of a service never deployed leaves no stack behind.
    const status = await w.cli(["status", "--json"]);
    const peach = (JSON.parse(status.stdout) as { services: { service: string; state: string }[] }).services.find((s) => s.service === "peach");
    assert.equal(peach?.state, "never-deployed");
  });

  void it("deploy peach: its container exists with the planned node, template, memory, cores and tags", async () => {
    const r = await w.cli(["deploy", "peach"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /peach_reverse_proxy_image {2}provisioning is off in environment sandbox/);
    assert.match(r.stdout, /peach_container {2}created/);
    const [ct, ...more] = await w.named("peach-container");
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined, JSON.stringify(await w.containers()));
    assert.equal(more.length, 0);
    assert.equal(ct.node, "pve-01");
    const config = await w.admin.lxc.config(ct.node, ct.vmid);
    assert.equal(config.memory, 2048);
    assert.equal(config.cores, 2);
    assert.equal(config.ostype, "debian");
    assert.equal(await deployedTemplate(w, "peach", "peach_container"), "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst");
    assert.deepEqual(config.tags, ["homelab", "peach"]);
    assert.match(readFileSync(join(w.root, ".homelab", "ssh", "sandbox", "id_ed25519.pub"), "utf8"), /^ssh-ed25519 /);
  });

  void it("deploy peach again: zero changes and not one write request to the sandbox (with and without the engine's preview)", async () => {
    w.sandbox.counters.reset();
    const r = await w.cli(["deploy", "peach"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /peach \(sandbox\.peach\) {2}no changes \(as deployed: state and plan match\)/);
    assert.match(r.stdout, /0 applied, 1 unchanged/);
    assert.deepEqual(w.writes(), {});
    const engine = await w.cli(["deploy", "peach", "--no-skip-unchanged"]);
    assert.equal(engine.code, 0, engine.all);
    assert.match(engine.stdout, /peach \(sandbox\.peach\) {2}no changes\n/);
    assert.match(engine.stdout, /0 applied, 1 unchanged/);
    assert.deepEqual(w.writes(), {});
  });

  void it("deploy librechat, destroy peach: librechat's container is untouched", async () => {
    assert.equal((await w.cli(["deploy", "librechat"])).code, 0);
    const [lc] = await w.named("librechat-container");
    assert.ok(lc?.vmid !== undefined && lc.node !== undefined);
    const before = await w.admin.lxc.config(lc.node, lc.vmid);
    const r = await w.cli(["destroy", "peach", "--yes"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /destroyed peach in sandbox: 1 resource\(s\) deleted, stack removed/);
    // peach keeps its data on a volume: its container is kept, stopped, until --delete-data.
    const [kept] = await w.named("peach-container");
    assert.match(kept?.tags ?? "", /homelab-kept/);
    assert.equal(kept?.status, "stopped");
    assert.match(r.stdout, new RegExp(`data kept: CT ${kept?.vmid ?? "?"}`));
    const gone = await w.cli(["destroy", "peach", "--yes", "--delete-data"]);
    assert.equal(gone.code, 0, gone.all);
    assert.match(gone.stdout, new RegExp(`data deleted: CT ${kept?.vmid ?? "?"}`));
    assert.deepEqual(await w.named("peach-container"), []);
    const [still] = await w.named("librechat-container");
    assert.equal(still?.vmid, lc.vmid);
    assert.deepEqual(await w.admin.lxc.config(lc.node, lc.vmid), before);
    assert.equal((await w.admin.lxc.status(lc.node, lc.vmid)).status, "running");
  });

  void it("peach's memory changed: updated in place, same vmid", async () => {
    assert.equal((await w.cli(["deploy", "peach"])).code, 0);
    const [ct] = await w.named("peach-container");
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    w.editService("peach", (t) => t.replace("memory: 2048", "memory: 3072"));
    const preview = await w.cli(["deploy", "peach", "--dry-run"]);
    assert.match(preview.stdout, /~ update {2}peach_container/);
    assert.match(preview.stdout, /memory 2048 → 3072/);
    const r = await w.cli(["deploy", "peach"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /1 updated/);
    const [after] = await w.named("peach-container");
    assert.equal(after?.vmid, ct.vmid);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).memory, 3072);
  });

  void it("deploy --yes applies without a separate preview (one engine run), and still lists what it changed", async () => {
    const [ct] = await w.named("peach-container");
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    w.editService("peach", (t) => t.replace("memory: 3072", "memory: 2560"));
    const r = await w.cli(["deploy", "peach", "--yes"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /applied without a separate preview/);
    assert.doesNotMatch(r.stdout, /~ update {2}peach_container/);
    assert.match(r.stdout, /peach_container {2}updated/);
    assert.match(r.stdout, /1 updated/);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).memory, 2560);
    // Nothing changed now: the engine run finds nothing to do, and says unchanged.
    const again = await w.cli(["deploy", "peach", "--yes", "--no-skip-unchanged"]);
    assert.equal(again.code, 0, again.all);
    assert.match(again.stdout, /1 unchanged/);
    w.editService("peach", (t) => t.replace("memory: 2560", "memory: 3072"));
    assert.equal((await w.cli(["deploy", "peach", "--yes"])).code, 0);
  });

  void it("deploy --refresh finds drift (a change made behind homelab's back) and corrects it", async () => {
    const [ct] = await w.named("peach-container");
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    await w.admin.lxc.updateConfig(ct.node, ct.vmid, { memory: 1024 });
    const plain = await w.cli(["deploy", "peach"]);
    assert.equal(plain.code, 0, plain.all);
    assert.match(plain.stdout, /no changes/);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).memory, 1024);
    const r = await w.cli(["deploy", "peach", "--refresh"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /~ update {2}peach_container/);
    assert.match(r.stdout, /memory 1024 → 3072/);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).memory, 3072);
    assert.equal((await w.named("peach-container"))[0]?.vmid, ct.vmid);
  });

  void it("peach's template pattern matches another template: replaced, shown as replace in the preview", async () => {
    const [old] = await w.named("peach-container");
    assert.ok(old?.vmid !== undefined);
    w.editService("peach", (t) => t.replace('name: "*debian*"', 'name: "*ubuntu*"').replace('version: ">=12"', 'version: ">=24"'));
    const preview = await w.cli(["deploy", "peach", "--dry-run"]);
    assert.equal(preview.code, 0, preview.all);
    assert.match(preview.stdout, /\+- replace {2}peach_container/);
    assert.match(preview.stdout, /template local:vztmpl\/debian-13.* → local:vztmpl\/ubuntu-24\.04.* \(forces replacement\)/);
    const r = await w.cli(["deploy", "peach"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.stdout, /1 replaced/);
    const now = await w.named("peach-container");
    assert.equal(now.length, 1);
    assert.notEqual(now[0]?.vmid, old.vmid);
    const ct = now[0];
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).ostype, "ubuntu");
    assert.match((await deployedTemplate(w, "peach", "peach_container")) ?? "", /ubuntu-24\.04/);
  });

  void it("CI guard: a deletion is refused (exit 3, nothing deleted), and applied with --allow-delete (exit 4)", async () => {
    const text = readFileSync(join(w.root, "services", "peach", "service.yaml"), "utf8");
    // Keep only the docker image: the container is to be deleted.
    w.editService("peach", (t) => t.slice(0, t.indexOf("  # Deploy as Proxmox LXC container")));
    const summary = join(w.root, "plan.md");
    const blocked = await w.cli(["deploy", "peach", "--ci", "--summary", summary]);
    assert.equal(blocked.code, 3, blocked.all);
    assert.match(blocked.stdout, /peach_container would be deleted: it is no longer in service\.yaml/);
    assert.match(blocked.stdout, /--allow-delete/);
    assert.equal((await w.named("peach-container")).length, 1);
    assert.match(readFileSync(summary, "utf8"), /\| peach \| ⛔ blocked by a guard \| 1 to delete \|/);
    const allowed = await w.cli(["deploy", "peach", "--ci", "--allow-delete"]);
    assert.equal(allowed.code, 4, allowed.all);
    // The resource is gone; its container holds peach's volume, so it is kept until --delete-data.
    const kept = await w.named("peach-container");
    assert.deepEqual(kept.map((k) => [k.status, (k.tags ?? "").includes("homelab-kept")]), [["stopped", true]]);
    const again = await w.cli(["deploy", "peach", "--ci"]);
    assert.equal(again.code, 0, again.all);
    const removed = await w.cli(["destroy", "peach", "--yes", "--delete-data"]);
    assert.equal(removed.code, 0, removed.all);
    assert.deepEqual(await w.named("peach-container"), []);
    writeFileSync(join(w.root, "services", "peach", "service.yaml"), text);
  });

  void it("status: resources with node, vmid, address; services never deployed; orphaned stacks", async () => {
    const r = await w.cli(["status", "--json"]);
    assert.equal(r.code, 0, r.all);
    const s = JSON.parse(r.stdout) as { services: { service: string; state: string; lastUpdate?: string; resources: { id: string; node?: string; vmid?: number; address?: string }[] }[] };
    const lc = s.services.find((x) => x.service === "librechat");
    assert.equal(lc?.state, "deployed");
    assert.ok(lc?.lastUpdate);
    const res = lc.resources[0];
    assert.equal(res?.id, "librechat_container");
    assert.match(res?.node ?? "", /^pve-0[12]$/);
    assert.ok((res?.vmid ?? 0) >= 100);
    assert.match(res?.address ?? "", /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(s.services.find((x) => x.service === "peach")?.state, "never-deployed");
    rmSync(join(w.root, "services", "librechat"), { recursive: true });
    const orphaned = await w.cli(["status"]);
    assert.match(orphaned.stdout, /librechat +ORPHANED/);
    assert.match(orphaned.stdout, /homelab destroy librechat --env sandbox/);
    const d = await w.cli(["destroy", "librechat", "--yes", "--delete-data"]);
    assert.equal(d.code, 0, d.all);
    assert.deepEqual(await w.named("librechat-container"), []);
    assert.doesNotMatch((await w.cli(["status"])).stdout, /librechat/);
  });

  void it("production guard refuses unprotected resources in CI; protect: true passes, and then blocks destroy", async () => {
    writeFileSync(join(w.root, "Pulumi.prodlike.yaml"), sandboxEnvFile(w.sandbox, join(w.root, ".homelab", "sandbox"), "production"));
    const refused = await w.cli(["deploy", "peach", "--ci"], { envName: "prodlike" });
    assert.equal(refused.code, 3, refused.all);
    assert.match(refused.stdout, /peach_container is not protect: true, and prodlike is a production environment/);
    assert.deepEqual(await w.named("peach-container"), []);
    w.editService("peach", (t) => t.replace("  - id: peach_container\n", "  - id: peach_container\n    protect: true\n"));
    const ok = await w.cli(["deploy", "peach", "--ci"], { envName: "prodlike" });
    assert.equal(ok.code, 4, ok.all);
    const [ct] = await w.named("peach-container");
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).protection, true);
    const destroy = await w.cli(["destroy", "peach", "--yes"], { envName: "prodlike" });
    assert.equal(destroy.code, 3, destroy.all);
    assert.match(destroy.stdout, /peach_container is protected \(protect: true\)/);
    assert.match(destroy.stdout, /nothing was deleted/);
    assert.equal((await w.named("peach-container")).length, 1);
  });

  void it("nothing in the state is a secret in clear: the passphrase file exists and the state holds no plaintext secret", () => {
    const pass = join(w.root, ".homelab", "passphrase");
    assert.ok(existsSync(pass));
    const state = readTree(join(w.root, ".homelab", "state"));
    assert.ok(state.length > 0);
    assert.ok(!state.includes(w.sandbox.tokenSecret));
    assert.ok(!state.includes(readFileSync(pass, "utf8").trim()));
  });
});
