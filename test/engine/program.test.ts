import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { resourceSpecs, serviceProgram } from "../../src/engine/program.ts";
import { hashContext } from "../../src/provision/image.ts";
import { containerInputs, plannedContainer, servicePlan } from "./plans.ts";
import type { ContainerInputs, PlannedContainer, PlannedImage, ServicePlan } from "../../src/plan/types.ts";

const inputs: ContainerInputs = containerInputs({ memory: 2048, cores: 2, nesting: true, keyctl: true, sshPublicKeys: "ssh-ed25519 AAAA test" });

function container(id: string, o: Partial<PlannedContainer> = {}): PlannedContainer {
  return plannedContainer(id, { ...inputs, hostname: id.replace(/_/g, "-") }, o);
}

const image: PlannedImage = { kind: "docker:image", id: "img", protect: false, dependsOn: [], crossDependsOn: [], name: "peach_proxy", context: "/x", dockerfile: "Dockerfile", buildArgs: {}, registry: undefined };

function plan(resources: ServicePlan["resources"], provisioning = true): ServicePlan {
  return servicePlan("prod", resources, { enabled: provisioning, dockerSource: "distribution" });
}

void describe("resource specs", () => {
  void it("with provisioning off: deploys containers, skips docker images and says why, drops dependencies on skipped resources", () => {
    const compose = { dir: "/repo/services/peach", files: ["/repo/services/peach/docker-compose.yaml"] };
    const { specs, skipped } = resourceSpecs(plan([image, container("web", { dependsOn: ["img"], protect: true, compose })], false));
    assert.deepEqual(skipped.map((s) => [s.id, s.kind]), [["img", "docker:image"]]);
    assert.match(skipped[0]?.reason ?? "", /provisioning is off in environment prod/);
    assert.deepEqual(specs.map((s) => [s.id, s.type, s.protect, s.dependsOn]), [["web", "homelab:proxmox:Container", true, []]]);
  });

  void it("with provisioning on: the image, then the container, then its compose deployment wired to both", () => {
    const compose = { dir: "/repo/services/peach", files: ["/repo/services/peach/docker-compose.yaml", "/repo/services/peach/override.yaml"] };
    const img: PlannedImage = { ...image, context: "/repo/services/peach/docker/reverse-proxy", registry: { name: "local_registry", url: "registry.lan:5000", insecure: true } };
    const { specs, skipped } = resourceSpecs(plan([container("web", { dependsOn: ["img"], protect: true, compose }), img]));
    assert.deepEqual(skipped, []);
    assert.deepEqual(specs.map((s) => [s.id, s.type, s.protect, s.dependsOn]), [
      ["img", "homelab:docker:Image", false, []],
      ["web", "homelab:proxmox:Container", true, ["img"]],
      // Protected like its container: taking the project down loses the service as surely.
      ["web.compose", "homelab:compose:Deployment", true, ["web", "img"]],
    ]);
    const d = specs.find((s) => s.type === "homelab:compose:Deployment");
    assert.deepEqual(d?.inputs, {
      service: "peach",
      container: "web",
      dir: "/repo/services/peach",
      composeFiles: compose.files,
      images: [{ id: "img", name: "peach_proxy", path: "./docker/reverse-proxy" }],
      registries: [{ name: "local_registry", url: "registry.lan:5000", insecure: true }],
      dockerSource: "distribution",
    });
    const i = specs.find((s) => s.type === "homelab:docker:Image");
    assert.deepEqual(i?.inputs, { name: "peach_proxy", context: img.context, dockerfile: "Dockerfile", buildArgs: {}, registry: img.registry });
  });

  void it("a container without docker.compose gets no deployment", () => {
    const { specs } = resourceSpecs(plan([container("db")]));
    assert.deepEqual(specs.map((s) => s.type), ["homelab:proxmox:Container"]);
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
          if (args.type === "homelab:docker:Image") return { id: String(given["name"]), state: { ...given, ref: `registry.lan:5000/${String(given["name"])}:0123456789abcdef` } };
          if (args.type === "homelab:compose:Deployment") return { id: String(given["service"]), state: given };
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
    const exports = await serviceProgram({ plan: plan([image, container("web"), container("worker", { dependsOn: ["web"] })], false) })();
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

  void it("declares the image with its context's hash, and the compose deployment with the files' content, the container's address and the image's pushed reference", async () => {
    registered.length = 0;
    const dir = mkdtempSync(join(tmpdir(), "homelab-program-"));
    try {
      mkdirSync(join(dir, "docker", "web"), { recursive: true });
      writeFileSync(join(dir, "docker", "web", "Dockerfile"), "FROM scratch\n");
      writeFileSync(join(dir, "docker-compose.yaml"), "services:\n  web:\n    image: peach_proxy\n");
      const img: PlannedImage = { ...image, context: join(dir, "docker", "web"), registry: { name: "local_registry", url: "registry.lan:5000", insecure: true } };
      const web = container("web", { dependsOn: ["img"], compose: { dir, files: [join(dir, "docker-compose.yaml")] } });
      const exports = await serviceProgram({ plan: plan([img, web]) })();
      const resources = await settle(exports);
      // The deployment registers once the container's outputs resolve; nothing exports it, so wait for it.
      for (let i = 0; i < 100 && !registered.some((r) => r.name === "web.compose"); i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(registered.filter((r) => r.name !== "app").map((r) => [r.type, r.name]), [
        ["homelab:docker:Image", "img"],
        ["homelab:proxmox:Container", "web"],
        ["homelab:compose:Deployment", "web.compose"],
      ]);
      const imageInputs = registered.find((r) => r.name === "img")?.inputs ?? {};
      assert.equal(imageInputs["contextHash"], (await hashContext({ context: img.context, dockerfile: "Dockerfile", buildArgs: {} })).hash);
      assert.equal(imageInputs["context"], img.context);
      const d = registered.find((r) => r.name === "web.compose")?.inputs ?? {};
      assert.equal(d["service"], "peach");
      assert.equal(d["project"], "peach");
      assert.equal(d["address"], "10.0.0.5");
      assert.equal(d["vmid"], 101);
      assert.deepEqual(d["composeFiles"], [{ path: "docker-compose.yaml", content: "services:\n  web:\n    image: peach_proxy\n" }]);
      assert.deepEqual(d["images"], [{ name: "peach_proxy", path: "./docker/web", ref: "registry.lan:5000/peach_proxy:0123456789abcdef" }]);
      assert.deepEqual(d["registries"], [{ name: "local_registry", url: "registry.lan:5000", insecure: true }]);
      assert.equal(d["dockerSource"], "distribution");
      assert.deepEqual((resources as Record<string, unknown>)["img"], { type: "homelab:docker:Image", ref: "registry.lan:5000/peach_proxy:0123456789abcdef" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it("does not read a dependency that deploys earlier in the same run", async () => {
    registered.length = 0;
    await settle(await serviceProgram({ plan: plan([container("app", { crossDependsOn: [{ service: "data", id: "cache" }] })]), crossRefs: new Map([["data", "pending"]]) })());
    assert.ok(!registered.some((r) => r.type === "pulumi:pulumi:StackReference"));
    assert.ok(registered.some((r) => r.name === "app"));
  });
});
