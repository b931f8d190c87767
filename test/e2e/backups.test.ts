/**
 * Backups, restore and the data guard through the CLI with the real engine,
 * on the memory sandbox (Proxmox's semantics, state only: the data itself is
 * proven on real guests by data.e2e.test.ts): a restart-requiring change
 * takes a snapshot first and `homelab backups` lists it; `homelab restore
 * --from` that snapshot brings the container back to it (after a backup of
 * its current state) and deploys the service again; a restore of a service
 * that is not deployed goes into a new container that the next deploy takes
 * the volume from; a node change with volumes is refused without
 * --allow-delete; a smaller volume is refused in the preview.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startWorld } from "./helpers.ts";
import type { World } from "./helpers.ts";

function service(o: { hostname?: string; size?: number; tags?: string }): string {
  return [
    "name: vault",
    "resources:",
    "  - id: vault_ct",
    "    type: proxmox:container",
    '    image: { name: "*debian*", version: ">=12" }',
    ...(o.hostname !== undefined ? [`    hostname: ${o.hostname}`] : []),
    "    host:",
    `      tags: [${o.tags ?? "tier:1"}]`,
    "      resources: { memory: 512, cores: 1 }",
    "    volumes:",
    `      - { name: data, size: ${o.size ?? 2}, path: /srv/data }`,
    "",
  ].join("\n");
}

interface Listed {
  entries: Array<{ kind: string; name: string; vmid: number; why: string; resource: string }>;
  kept: Array<{ vmid: number }>;
}

void describe("[pulumi] backups, restore and the data guard against the sandbox", { timeout: 600_000 }, () => {
  let w: World;
  const vault = async (): Promise<{ vmid: number; node: string }> => {
    const [ct] = (await w.containers()).filter((c) => c.tags?.includes("vault") && !c.tags.includes("homelab-kept"));
    assert.ok(ct?.vmid !== undefined && ct.node !== undefined);
    return { vmid: ct.vmid, node: ct.node };
  };
  const listed = async (): Promise<Listed> => {
    const r = await w.cli(["backups", "vault", "--json"]);
    assert.equal(r.code, 0, r.all);
    return JSON.parse(r.stdout) as Listed;
  };

  before(async () => {
    w = await startWorld({ services: [] });
    w.writeService("vault", service({}));
  });
  after(() => w.close());

  void it("a restart-requiring change takes a snapshot first; homelab backups lists it with why", async () => {
    assert.equal((await w.cli(["deploy", "vault", "--yes"])).code, 0);
    const ct = await vault();
    w.writeService("vault", service({ hostname: "vault-two" }));
    const r = await w.cli(["deploy", "vault", "--yes", "--verbose"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.all, /snapshot homelab_\d{8}_\d{6}_[a-z0-9]{4} taken before a change that restarts the container/);
    const l = await listed();
    assert.deepEqual(l.entries.map((e) => [e.kind, e.vmid, e.resource]), [["snapshot", ct.vmid, "vault_ct"]]);
    assert.match(l.entries[0]?.why ?? "", /restarts the container/);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).hostname, "vault-two");
  });

  void it("restore --from the snapshot: a backup of the current state first, the container rolled back, the service deployed again", async () => {
    const ct = await vault();
    const snap = (await listed()).entries.find((e) => e.kind === "snapshot")?.name ?? "";
    const refused = await w.cli(["restore", "vault", "--from", snap]);
    assert.equal(refused.code, 2, "not on a terminal without --yes");
    const noDeploy = await w.cli(["restore", "vault", "--from", snap, "--yes", "--no-deploy"]);
    assert.equal(noDeploy.code, 0, noDeploy.all);
    assert.match(noDeploy.stdout, new RegExp(`vault  restored CT ${ct.vmid} from snapshot ${snap}`));
    assert.match(noDeploy.stdout, /what it held before is in backup local:backup\/vzdump-lxc-/);
    // The snapshot was taken before the hostname change: the container is back to the old name.
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).hostname, "vault-ct");
    const l = await listed();
    assert.ok(l.entries.some((e) => e.kind === "backup" && e.vmid === ct.vmid && /restoring an earlier state/.test(e.why)), JSON.stringify(l));
    const again = await w.cli(["restore", "vault", "--from", snap, "--yes"]);
    assert.equal(again.code, 0, again.all);
    assert.match(again.stdout, /deploy: applied/);
    assert.equal((await w.admin.lxc.config(ct.node, ct.vmid)).hostname, "vault-two");
    const missing = await w.cli(["restore", "vault", "--from", "no-such-backup", "--yes"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /no snapshot or backup of vault named no-such-backup\n {2}available: /);
  });

  void it("a smaller volume is refused in the preview; a node change with volumes is refused without --allow-delete", async () => {
    const ct = await vault();
    w.writeService("vault", service({ hostname: "vault-two", size: 1 }));
    const shrink = await w.cli(["deploy", "vault", "--dry-run"]);
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.all, /volume data is 2 GB and cannot shrink to 1 GB/);
    // Placement is sticky while the node carries the tags: pve-03 is tier:2 only.
    w.writeService("vault", service({ hostname: "vault-two", tags: "tier:2" }));
    const moved = await w.cli(["deploy", "vault", "--yes"]);
    assert.equal(moved.code, 3, moved.all);
    assert.match(moved.stdout, new RegExp(`vault_ct would move from ${ct.node} to pve-03, and its volumes \\(data\\) cannot follow`));
    assert.equal((await vault()).vmid, ct.vmid);
    w.writeService("vault", service({ hostname: "vault-two" }));
  });

  void it("restore of a service that is not deployed: its backup goes into a new container, whose volume the next deploy takes", async () => {
    const ct = await vault();
    const d = await w.cli(["destroy", "vault", "--yes", "--delete-data"]);
    assert.equal(d.code, 0, d.all);
    const backup = (await listed()).entries.find((e) => e.kind === "backup" && /deleting the container and its data/.test(e.why));
    assert.ok(backup, "destroy --delete-data took a backup first");
    const r = await w.cli(["restore", "vault", "--from", backup.name, "--yes", "--no-deploy"]);
    assert.equal(r.code, 0, r.all);
    const into = Number(/into a new CT (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(into > 0, r.stdout);
    const kept = await w.admin.lxc.config(ct.node, into);
    assert.ok(kept.tags.includes("homelab-kept"), kept.tags.join(";"));
    const deployed = await w.cli(["deploy", "vault", "--yes", "--verbose"]);
    assert.equal(deployed.code, 0, deployed.all);
    assert.match(deployed.all, new RegExp(`1 volume\\(s\\) moved from CT ${into}`));
    await assert.rejects(w.admin.lxc.config(ct.node, into), "the restored container is gone once its volume moved");
  });
});
