/**
 * The three resources under the real Pulumi engine (Automation API, file
 * backend, the plugin found on PATH as the homelab engine arranges it),
 * against LXC containers: a program that declares them the way the homelab
 * engine's program should (the Image's contextHash from hashContext, the
 * Deployment fed the Container's address and vmid and the Image's ref, no
 * secrets in the program). Checks what only the engine shows: status lines
 * and build output arrive as diagnostics of the resource, the preview of a
 * compose change is one update that names the file, the secrets' hash is
 * encrypted in the state and no secret value is anywhere in it.
 */
import assert from "node:assert/strict";
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation/index.js";
import { resolvePulumiCli } from "../../src/engine/pulumi-cli.ts";
import { ensureSshKey } from "../../src/provision/ssh-key.ts";
import type { ContainerInputs } from "../../src/plan/types.ts";
import { hashContext, registryHasTag } from "../../src/provision/image.ts";
import { readComposeFiles } from "../../src/provision/inputs.ts";
import { describeDeploymentChange } from "../../src/provider/deployment-inputs.ts";
import { createLxcBackend } from "../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../src/sandbox/lxc/backend.ts";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import type { RunningSandbox } from "../../src/sandbox/server.ts";
import { ROOT, ensureLabHost, fetchPage } from "../provision/lab.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BRIDGE = "hlprvt2";
const SUBNET = "10.87.75.0/24";
const ENV = "test";
const SECRET_VALUE = "engine-test secret value 'never in the state'";

class Resource extends pulumi.CustomResource {
  declare readonly address: pulumi.Output<string>;
  declare readonly vmid: pulumi.Output<number>;
  declare readonly ref: pulumi.Output<string>;
  constructor(type: string, name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(type, name, args, opts);
  }
}

interface Diag {
  urn: string;
  message: string;
  severity: string;
  ephemeral: boolean;
}

void describe("[root][lxc][docker][pulumi] Image and Deployment under the real Pulumi engine", { timeout: 30 * 60_000 }, () => {
  let dir = "";
  let root = "";
  let backend: LxcGuestBackend | undefined;
  let sandbox: RunningSandbox | undefined;
  let s: Stack;
  let publicKey = "";
  const figures: string[] = [];
  const serviceDir = (): string => join(root, "services", "hello");

  before(async () => {
    await ensureLabHost();
    dir = await mkdtemp(join(tmpdir(), "homelab-provider-engine-provisioning-"));
    // With its own Docker Engine, which builds the image and pushes it to the backend's registry.
    backend = await createLxcBackend({ stateDir: join(dir, "lxc"), bridge: BRIDGE, subnet: SUBNET, docker: true });
    sandbox = await startSandboxServer({ backend, taskDurationMs: 20, stateDir: join(dir, "api") });
    root = join(dir, "repo");
    await mkdir(join(root, "services"), { recursive: true });
    await cp(join(ROOT, "services/hello"), serviceDir(), { recursive: true });
    await copyFile("/bin/busybox", join(serviceDir(), "docker/web/busybox"));
    await writeFile(join(serviceDir(), ".secrets.example.yaml"), "greeting: a secret\n");
    await writeFile(join(serviceDir(), ".secrets.yaml"), `greeting: ${JSON.stringify(SECRET_VALUE)}\n`, { mode: 0o600 });
    await writeFile(join(root, "token-secret"), sandbox.tokenSecret + "\n", { mode: 0o600 });
    await writeFile(join(root, "root-password"), sandbox.rootPassword + "\n", { mode: 0o600 });
    await writeFile(
      join(root, `Pulumi.${ENV}.yaml`),
      [
        "config:",
        "  homelab:environment: development",
        "  homelab:proxmox:",
        `    endpoint: ${sandbox.url}`,
        `    token_id: ${JSON.stringify(sandbox.tokenId)}`,
        "    token_secret_file: token-secret",
        "    username: root@pam",
        "    password_file: root-password",
        `    fingerprint: ${JSON.stringify(sandbox.fingerprint)}`,
        "  homelab:registries:",
        `    local_registry: { url: "${backend.registry}", insecure: true }`,
        "",
      ].join("\n"),
    );
    publicKey = ensureSshKey(root, ENV).publicKey;
    await mkdir(join(dir, "state"));
    const cli = await resolvePulumiCli();
    const cliDir = dirname(cli.path);
    const command = await PulumiCommand.get({ root: dirname(cliDir) });
    s = await LocalWorkspace.createOrSelectStack(
      { stackName: "test.hello", projectName: "homelab", program },
      {
        workDir: dir,
        pulumiCommand: command,
        projectSettings: { name: "homelab", runtime: "nodejs", main: REPO, backend: { url: `file://${join(dir, "state")}` } },
        envVars: {
          HOMELAB_ROOT: root,
          HOMELAB_ENV: ENV,
          HOMELAB_VERBOSE: "true",
          DOCKER_HOST: backend.dockerHost ?? "",
          PULUMI_CONFIG_PASSPHRASE: "test",
          PULUMI_HOME: join(dir, "pulumi-home"),
          PULUMI_SKIP_UPDATE_CHECK: "true",
          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
          HOMELAB_FROM_SOURCE: "1",
          PATH: [join(REPO, "bin"), cliDir, process.env.PATH ?? ""].join(delimiter),
        },
      },
    );
  });

  after(async () => {
    if (figures.length > 0) console.log(`engine provisioning figures:\n  ${figures.join("\n  ")}`);
    await sandbox?.close();
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function containerInputs(): ContainerInputs {
    return {
      node: "pve-01",
      template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
      hostname: "hello",
      description: "Managed by homelab: service hello, environment test.",
      tags: ["homelab", "hello"],
      memory: 1024,
      swap: 256,
      cores: 2,
      storage: "local-lvm",
      diskGb: 8,
      volumes: [],
      bindMounts: [],
      bridge: "vmbr0",
      ip: "dhcp",
      unprivileged: false,
      nesting: true,
      keyctl: false,
      sshPublicKeys: publicKey,
      onBoot: true,
      protection: false,
    };
  }

  /** The program as the homelab engine should write it. */
  async function program(): Promise<Record<string, unknown>> {
    const registry = { name: "local_registry", url: backend?.registry ?? "", insecure: true };
    const context = join(serviceDir(), "docker/web");
    const c = new Resource("homelab:proxmox:Container", "hello_container", { ...containerInputs(), vmid: undefined, address: undefined });
    const image = new Resource("homelab:docker:Image", "hello_web_image", {
      name: "hello-web",
      context,
      dockerfile: "Dockerfile",
      buildArgs: {},
      registry,
      contextHash: (await hashContext({ context })).hash,
      ref: undefined,
    });
    new Resource(
      "homelab:compose:Deployment",
      "hello_container_compose",
      {
        service: "hello",
        address: c.address,
        vmid: c.vmid,
        composeFiles: await readComposeFiles(serviceDir(), ["docker-compose.yaml"]),
        images: [{ name: "hello-web", ref: image.ref, path: "./docker/web" }],
        registries: [registry],
        dockerSource: "distribution",
      },
      { dependsOn: [c, image] },
    );
    return { address: c.address, vmid: c.vmid, ref: image.ref };
  }

  interface Step {
    urn: string;
    op: string;
    diffs: string[];
    olds: Record<string, unknown>;
    news: Record<string, unknown>;
  }

  function collect(diags: Diag[], steps: Step[]): (e: EngineEvent) => void {
    return (e) => {
      const d = e.diagnosticEvent;
      if (d) diags.push({ urn: d.urn ?? "", message: d.message.trimEnd(), severity: d.severity, ephemeral: d.ephemeral === true });
      const m = e.resourcePreEvent?.metadata;
      if (m) steps.push({ urn: m.urn, op: m.op, diffs: m.diffs ?? [], olds: (m.old?.inputs ?? {}) as Record<string, unknown>, news: (m.new?.inputs ?? {}) as Record<string, unknown> });
    };
  }

  const of = (type: string) => (d: { urn: string }) => d.urn.includes(`::${type}::`);

  void it("up creates all three; status lines and build output arrive as the resources' diagnostics; the page answers", async () => {
    const diags: Diag[] = [];
    const t = Date.now();
    const up = await s.up({ onEvent: collect(diags, []) });
    figures.push(`first up (container, image, Docker install, deployment) ${Date.now() - t} ms`);
    assert.deepEqual(up.summary.resourceChanges, { create: 4 });
    figures.push(`diagnostics of the first up: ${diags.length} (${diags.filter((d) => d.ephemeral).length} ephemeral status lines)`);
    const address = String(up.outputs["address"]?.value);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
    const image = diags.filter(of("homelab:docker:Image"));
    assert.ok(image.some((d) => /^Step \d+\/\d+ : COPY busybox/.test(d.message) && d.severity === "info"), `build output: ${JSON.stringify(image.slice(0, 5))}`);
    const deploy = diags.filter(of("homelab:compose:Deployment"));
    assert.ok(deploy.some((d) => /HOMELAB-WAIT-OK|waiting for/.test(d.message)), "script output (verbose)");
    assert.ok(diags.some((d) => d.ephemeral && /^built .*hello-web/.test(d.message)), `ephemeral status lines are delivered: ${JSON.stringify(diags.filter((d) => d.ephemeral).slice(0, 3))}`);
  });

  void it("the secrets' hash is encrypted in the state; no secret value is anywhere in it", async () => {
    // The state file as the file backend keeps it (exportStack would decrypt).
    const file = join(dir, "state", ".pulumi", "stacks", "homelab", "test.hello.json");
    const text = await readFile(file, "utf8");
    assert.equal(text.includes(SECRET_VALUE), false);
    const state = (JSON.parse(text) as { checkpoint: { latest: unknown } }).checkpoint.latest as { resources?: Array<{ type: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }> };
    const deployment = state.resources?.find((r) => r.type === "homelab:compose:Deployment");
    assert.ok(deployment);
    for (const where of [deployment.inputs, deployment.outputs]) {
      for (const key of ["secretsHash", ...(where === deployment.outputs ? ["hash"] : [])]) {
        const v = where?.[key] as Record<string, unknown> | undefined;
        assert.equal(typeof v?.["ciphertext"], "string", `${key} is encrypted: ${JSON.stringify(v)}`);
      }
    }
    assert.equal(typeof (deployment.outputs?.["fileHashes"] as Record<string, unknown>)["/opt/homelab/hello/docker-compose.yaml"], "string");
  });

  void it("a compose change previews as one update of the deployment that names the file; up applies it with the same vmid", async () => {
    const vmid = Number((await s.outputs())["vmid"]?.value);
    const address = String((await s.outputs())["address"]?.value);
    const file = join(serviceDir(), "docker-compose.yaml");
    await writeFile(file, (await readFile(file, "utf8")).replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      HELLO_VERSION: \"2\"\n"));
    const diags: Diag[] = [];
    const steps: Step[] = [];
    const preview = await s.preview({ onEvent: collect(diags, steps) });
    assert.deepEqual(preview.changeSummary, { same: 3, update: 1 });
    const step = steps.find(of("homelab:compose:Deployment"));
    assert.equal(step?.op, "update");
    // The Node SDK cannot return changed keys, and the engine does not fill them in: the program's renderer
    // takes the provider's diagnostic, or compares the event's old and new inputs.
    assert.deepEqual(step.diffs, []);
    assert.deepEqual(describeDeploymentChange(step.olds, step.news), ["compose files changed: docker-compose.yaml"]);
    assert.equal((step.news["secretsHash"] as Record<string, unknown>)["ciphertext"], "[secret]", "events show secrets masked");
    assert.ok(diags.some((d) => of("homelab:compose:Deployment")(d) && d.message === "update: compose files changed: docker-compose.yaml"), JSON.stringify(diags.filter(of("homelab:compose:Deployment"))));
    const t = Date.now();
    const up = await s.up();
    figures.push(`compose change: up ${Date.now() - t} ms`);
    assert.deepEqual(up.summary.resourceChanges, { same: 3, update: 1 });
    assert.equal(Number(up.outputs["vmid"]?.value), vmid);
    assert.match((await fetchPage(`http://${address}/`)).body, /Hello from homelab/);
  });

  void it("a refresh finds nothing changed; destroy removes the deployment and the container, and leaves the image in the registry", async () => {
    const refreshed = await s.refresh();
    assert.equal(refreshed.summary.resourceChanges?.["update"] ?? 0, 0, JSON.stringify(refreshed.summary.resourceChanges));
    const ref = String((await s.outputs())["ref"]?.value);
    await s.destroy();
    assert.deepEqual(((await s.exportStack()).deployment as { resources?: unknown[] }).resources ?? [], []);
    assert.equal(await registryHasTag({ url: backend?.registry ?? "", insecure: true }, "hello-web", ref.split(":").pop() ?? ""), true);
  });
});
