import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { resourceSpecs, serviceProgram } from "../../src/engine/program.ts";
import type { ContainerInputs, PlannedContainer, PlannedImage, ServicePlan } from "../../src/plan/types.ts";

const inputs: ContainerInputs = {
  node: "pve-01",
  template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
  hostname: "web",
  description: "Managed by homelab",
  tags: ["homelab", "peach"],
  memory: 2048,
  swap: 512,
  cores: 2,
  storage: "local-lvm",
  diskGb: 8,
  bridge: "vmbr0",
  ip: "dhcp",
  unprivileged: true,
  nesting: true,
  keyctl: true,
  sshPublicKeys: "ssh-ed25519 AAAA test",
  onBoot: true,
  protection: false,
};

function container(id: string, o: Partial<PlannedContainer> = {}): PlannedContainer {
  return {
    kind: "proxmox:container",
    id,
    protect: false,
    dependsOn: [],
    crossDependsOn: [],
    inputs: { ...inputs, hostname: id.replace(/_/g, "-") },
    template: { chosen: inputs.template, sticky: false, candidates: [] },
    placement: { chosen: "pve-01", sticky: false, strategy: "most-free-memory", candidates: [] },
    ...o,
  };
}

const image: PlannedImage = { kind: "docker:image", id: "img", protect: false, dependsOn: [], crossDependsOn: [], name: "peach_proxy", context: "/x", dockerfile: "Dockerfile", buildArgs: {}, registry: undefined };

function plan(resources: ServicePlan["resources"]): ServicePlan {
  return { service: "peach", environment: "prod", stack: "prod.peach", resources, dependsOnServices: [], notes: [] };
}

void describe("resource specs", () => {
  void it("deploys containers, skips docker images and says so, drops dependencies on skipped resources", () => {
    const { specs, skipped } = resourceSpecs(plan([image, container("web", { dependsOn: ["img"], protect: true })]));
    assert.deepEqual(skipped.map((s) => [s.id, s.kind]), [["img", "docker:image"]]);
    assert.match(skipped[0]?.reason ?? "", /not deployable yet.*skipped/);
    assert.deepEqual(specs.map((s) => [s.id, s.type, s.protect, s.dependsOn]), [["web", "homelab:proxmox:Container", true, []]]);
  });

  void it("orders containers after those they depend on", () => {
    const { specs } = resourceSpecs(plan([container("app", { dependsOn: ["db"] }), container("db")]));
    assert.deepEqual(specs.map((s) => s.id), ["db", "app"]);
  });
});

/** The program's exported resources, once every registration has gone through the mocks. */
function settle(exports: Record<string, unknown>): Promise<unknown> {
  return new Promise<unknown>((resolve) => {
    pulumi.output(exports["resources"] as Record<string, unknown>).apply((v) => resolve(v));
  });
}

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

void describe("the inline program (Pulumi mocks)", () => {
  const registered: Registered[] = [];
  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          const given = args.inputs as Record<string, unknown>;
          registered.push({ type: args.type, name: args.name, inputs: given });
          if (args.type === "pulumi:pulumi:StackReference") {
            return { id: String(given["name"]), state: { outputs: { resources: { db: { type: "homelab:proxmox:Container", vmid: 120, node: "pve-02", address: "10.0.0.9" } } } } };
          }
          return { id: "101", state: { ...given, vmid: 101, address: "10.0.0.5" } };
        },
        call: () => ({}),
      },
      "homelab",
      "prod.peach",
      false,
      "organization",
    );
  });

  void it("declares one homelab:proxmox:Container per planned container, with the planned inputs, and exports their facts", async () => {
    const exports = await serviceProgram({ plan: plan([image, container("web"), container("worker", { dependsOn: ["web"] })]) })();
    const resources = await settle(exports);
    const containers = registered.filter((r) => r.type === "homelab:proxmox:Container");
    assert.deepEqual(containers.map((c) => c.name), ["web", "worker"]);
    assert.equal(containers[0]?.inputs["memory"], 2048);
    assert.equal(containers[0]?.inputs["template"], inputs.template);
    assert.deepEqual(containers[0]?.inputs["tags"], ["homelab", "peach"]);
    assert.ok(!registered.some((r) => r.name === "img"));
    assert.deepEqual(resources, {
      web: { type: "homelab:proxmox:Container", vmid: 101, node: "pve-01", address: "10.0.0.5" },
      worker: { type: "homelab:proxmox:Container", vmid: 101, node: "pve-01", address: "10.0.0.5" },
    });
    assert.equal(exports["service"], "peach");
  });

  void it("reads other services through a StackReference and refuses a dependency that is not deployed", async () => {
    registered.length = 0;
    await serviceProgram({ plan: plan([container("app", { crossDependsOn: [{ service: "data", id: "db" }] })]) })();
    const ref = registered.find((r) => r.type === "pulumi:pulumi:StackReference");
    assert.equal(ref?.inputs["name"], "organization/homelab/prod.data");
    await assert.rejects(
      serviceProgram({ plan: plan([container("app", { crossDependsOn: [{ service: "data", id: "cache" }] })]) })(),
      /app depends on data\.cache, which is not deployed in environment prod; run `homelab deploy data` first/,
    );
  });

  void it("does not read a dependency that deploys earlier in the same run", async () => {
    registered.length = 0;
    await settle(await serviceProgram({ plan: plan([container("app", { crossDependsOn: [{ service: "data", id: "cache" }] })]), crossRefs: new Map([["data", "pending"]]) })());
    assert.ok(!registered.some((r) => r.type === "pulumi:pulumi:StackReference"));
    assert.ok(registered.some((r) => r.name === "app"));
  });
});
