import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import type { Stack } from "@pulumi/pulumi/automation/index.js";
import { resolvePulumiCli } from "../../src/engine/pulumi-cli.ts";
import type { ContainerInputs } from "../../src/plan/types.ts";
import { inputs, startWorld } from "./helpers.ts";
import type { World } from "./helpers.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

class Container extends pulumi.CustomResource {
  declare readonly address: pulumi.Output<string>;
  declare readonly vmid: pulumi.Output<number>;
  constructor(name: string, args: ContainerInputs) {
    super("homelab:proxmox:Container", name, { ...args, vmid: undefined, address: undefined });
  }
}

/** The real engine, the plugin found on PATH as the homelab engine arranges it, and a file backend. */
void describe("[pulumi] the plugin under the real Pulumi engine", () => {
  let world: World;
  let dir: string;
  let command: PulumiCommand;
  let cliDir: string;
  before(async () => {
    world = await startWorld({ sandbox: { taskDurationMs: 20, dhcpDelayMs: 50 } });
    dir = await mkdtemp(join(tmpdir(), "homelab-provider-engine-"));
    await mkdir(join(dir, "state"));
    const cli = await resolvePulumiCli();
    cliDir = dirname(cli.path);
    command = await PulumiCommand.get({ root: dirname(cliDir) });
  });
  after(async () => {
    await world.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function stack(name: string, want: () => ContainerInputs): Promise<Stack> {
    const program = () => {
      const c = new Container("web", want());
      return Promise.resolve({ address: c.address, vmid: c.vmid });
    };
    return LocalWorkspace.createOrSelectStack(
      { stackName: name, projectName: "homelab", program },
      {
        workDir: dir,
        pulumiCommand: command,
        projectSettings: { name: "homelab", runtime: "nodejs", main: REPO, backend: { url: `file://${join(dir, "state")}` } },
        envVars: {
          ...world.env,
          PULUMI_CONFIG_PASSPHRASE: "test",
          PULUMI_HOME: join(dir, "pulumi-home"),
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
          HOMELAB_FROM_SOURCE: "1",
          PATH: [join(REPO, "bin"), cliDir, process.env.PATH ?? ""].join(delimiter),
        },
      },
    );
  }

  void it("up creates; previews say update or replace; refresh sees drift; up repairs it; destroy removes", async () => {
    let want = inputs({ hostname: "engine", ip: "10.20.0.90/24" });
    const s = await stack("test.engine", () => want);
    const up = await s.up();
    assert.equal(up.summary.resourceChanges?.["create"], 2);
    const vmid = Number(up.outputs["vmid"]?.value);
    assert.equal(up.outputs["address"]?.value, "10.20.0.90");
    assert.deepEqual(await world.containersNamed("engine"), [vmid]);

    want = { ...want, memory: 1024 };
    assert.deepEqual((await s.preview()).changeSummary, { same: 1, update: 1 });
    want = { ...want, memory: 512, template: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst" };
    assert.deepEqual((await s.preview()).changeSummary, { same: 1, replace: 1 });
    want = { ...want, template: inputs().template };

    await world.admin.lxc.updateConfig("pve-01", vmid, { memory: 2048 });
    const refreshed = await s.refresh();
    assert.equal(refreshed.summary.resourceChanges?.["update"], 1);
    const repaired = await s.up();
    assert.equal(repaired.summary.resourceChanges?.["update"], 1);
    assert.equal((await world.admin.lxc.config("pve-01", vmid)).memory, 512);

    await s.destroy();
    assert.deepEqual(await world.containersNamed("engine"), []);
  });

  void it("a create that cannot clean up is recorded with its id, and the next up finishes it", async () => {
    const want = inputs({ hostname: "partial", ip: "10.20.0.91/24" });
    const s = await stack("test.partial", () => want);
    world.sandbox.faults.set({ taskFailRate: 1, taskTypes: ["vzstart", "vzdestroy"] });
    try {
      await assert.rejects(s.up(), /vzstart .*failed.*removing it failed too/s);
    } finally {
      world.sandbox.faults.clear();
    }
    const recorded = (await s.exportStack()).deployment as { resources?: { type: string; id?: string; initErrors?: string[] }[] };
    const container = recorded.resources?.find((r) => r.type === "homelab:proxmox:Container");
    assert.ok(container?.id !== undefined && (container.initErrors?.length ?? 0) > 0, "the container is in the state, with its init errors");
    assert.deepEqual(await world.containersNamed("partial"), [Number(container.id)]);

    const up = await s.up();
    assert.equal(up.summary.resourceChanges?.["update"], 1);
    assert.equal(up.outputs["address"]?.value, "10.20.0.91");
    assert.equal((await world.admin.lxc.status("pve-01", Number(container.id))).status, "running");
    assert.deepEqual(await world.containersNamed("partial"), [Number(container.id)]);
    await s.destroy();
    assert.deepEqual(await world.containersNamed("partial"), []);
  });
});
