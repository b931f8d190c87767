import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { createRequire } from "node:module";
import * as grpc from "@grpc/grpc-js";
import type * as EmptyPb from "google-protobuf/google/protobuf/empty_pb.js";
import type * as StructPb from "google-protobuf/google/protobuf/struct_pb.js";
import type * as ProviderGrpcPb from "@pulumi/pulumi/proto/provider_grpc_pb.js";
import type * as ProviderPb from "@pulumi/pulumi/proto/provider_pb.js";
import type { CheckResponse, CreateResponse, ReadResponse } from "@pulumi/pulumi/proto/provider_pb.js";
import type { PluginInfo } from "@pulumi/pulumi/proto/plugin_pb.js";
import { URN, inputs, startWorld } from "./helpers.ts";
import type { World } from "./helpers.ts";

// The generated protobuf modules are CommonJS whose exports ESM cannot name.
const require = createRequire(import.meta.url);
const { Empty } = require("google-protobuf/google/protobuf/empty_pb.js") as typeof EmptyPb;
const { Struct } = require("google-protobuf/google/protobuf/struct_pb.js") as typeof StructPb;
const { ResourceProviderClient } = require("@pulumi/pulumi/proto/provider_grpc_pb.js") as typeof ProviderGrpcPb;
const { CheckRequest, CreateRequest, DeleteRequest, ReadRequest } = require("@pulumi/pulumi/proto/provider_pb.js") as typeof ProviderPb;

const LAUNCHER = fileURLToPath(new URL("../../bin/pulumi-resource-homelab", import.meta.url));

/** Starts the plugin as the engine does (engine address as the argument) and reads the port it prints. */
async function startPlugin(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; stdout: () => string; stderr: () => string }> {
  const child = spawn(LAUNCHER, ["127.0.0.1:1"], { env: { ...process.env, ...env, CDPATH: "/tmp", HOMELAB_FROM_SOURCE: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port within 30 s; stderr: ${err}`)), 30_000);
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = /^(\d+)\n/.exec(out);
      if (line) {
        clearTimeout(timer);
        resolve(Number(line[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`plugin exited (${String(code)}) before printing a port; stderr: ${err}`));
    });
  });
  return { child, port, stdout: () => out, stderr: () => err };
}

/** One unary gRPC call as a promise. */
function unary<Res>(call: (done: (e: grpc.ServiceError | null, r: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    call((e, r) => (e ? reject(e) : resolve(r)));
  });
}

void describe("[pulumi] the pulumi-resource-homelab launcher", () => {
  let world: World;
  let plugin: Awaited<ReturnType<typeof startPlugin>>;
  let client: InstanceType<typeof ResourceProviderClient>;
  before(async () => {
    world = await startWorld({ sandbox: { taskDurationMs: 20, dhcpDelayMs: 50 } });
    plugin = await startPlugin(world.env);
    client = new ResourceProviderClient(`127.0.0.1:${plugin.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    plugin.child.kill("SIGTERM");
    if (plugin.child.exitCode === null) await once(plugin.child, "exit");
    await world.close();
  });

  void it("prints only the port on stdout, and answers GetPluginInfo with the package version", async () => {
    assert.match(plugin.stdout(), /^\d+\n$/);
    const info = await unary<PluginInfo>((done) => client.getPluginInfo(new Empty(), done));
    assert.match(info.getVersion(), /^\d+\.\d+\.\d+/);
  });

  void it("serves Check over gRPC: defaults applied, keyctl with a token refused with the fix", async () => {
    const ok = await unary<CheckResponse>((done) => client.check(new CheckRequest().setUrn(URN).setOlds(Struct.fromJavaScript({})).setNews(Struct.fromJavaScript({ node: "pve-01", template: inputs().template, hostname: "grpc" })), done));
    assert.deepEqual(ok.getFailuresList(), []);
    assert.equal(ok.getInputs()?.toJavaScript()["memory"], 512);
    const refused = await unary<CheckResponse>((done) => client.check(new CheckRequest().setUrn(URN).setOlds(Struct.fromJavaScript({})).setNews(Struct.fromJavaScript({ ...withoutGateway(), keyctl: true })), done));
    assert.equal(refused.getFailuresList()[0]?.getProperty(), "keyctl");
    assert.match(refused.getFailuresList()[0]?.getReason() ?? "", /root@pam/);
  });

  void it("creates, reads and deletes a container through the wire, credentials read from the environment's file", async () => {
    const news = Struct.fromJavaScript({ ...withoutGateway(), hostname: "wired", ip: "dhcp" });
    const created = await unary<CreateResponse>((done) => client.create(new CreateRequest().setUrn(URN).setProperties(news), done));
    const id = created.getId();
    const outs = created.getProperties();
    assert.match(id, /^\d+$/);
    const address = outs?.toJavaScript()["address"];
    assert.ok(typeof address === "string" && /^10\.10\.0\.\d+$/.test(address), `address ${JSON.stringify(address)}`);
    assert.deepEqual(await world.containersNamed("wired"), [Number(id)]);
    const read = await unary<ReadResponse>((done) => client.read(new ReadRequest().setId(id).setUrn(URN).setProperties(outs), done));
    assert.equal(read.getId(), id);
    await unary<EmptyPb.Empty>((done) => client.delete(new DeleteRequest().setId(id).setUrn(URN).setProperties(outs), done));
    assert.deepEqual(await world.containersNamed("wired"), []);
    const gone = await unary<ReadResponse>((done) => client.read(new ReadRequest().setId(id).setUrn(URN).setProperties(outs), done));
    assert.equal(gone.getId(), "");
  });

  void it("turns a failed create into a gRPC error that says what to do", async () => {
    const news = Struct.fromJavaScript({ ...withoutGateway(), hostname: "nowhere", node: "pve-09" });
    await assert.rejects(unary<CreateResponse>((done) => client.create(new CreateRequest().setUrn(URN).setProperties(news), done)), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /creating container nowhere on pve-09/);
      return true;
    });
    assert.equal(plugin.child.exitCode, null, "the plugin keeps serving after a failed call");
  });
});

function withoutGateway(): Record<string, unknown> {
  const { gateway: _g, ...rest } = inputs();
  return { ...rest };
}
