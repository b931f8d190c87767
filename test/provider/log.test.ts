/**
 * Status lines and verbose output: through the engine's Log RPC (a fake
 * engine here, a gRPC server with the SDK's own service definition), in
 * order and attached to the resource; to stderr without an engine, and only
 * when verbose; output lines split from chunks.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { ProviderLog, engineAddressFromArgs, urnName } from "../../src/provider/log.ts";
import type { LogEntry } from "../../src/provider/log.ts";

const URN = "urn:pulumi:test.hello::homelab::homelab:docker:Image::hello_web_image";

interface LogRequestLike {
  getSeverity(): number;
  getMessage(): string;
  getUrn(): string;
  getEphemeral(): boolean;
}
interface GrpcServer {
  addService(service: unknown, impl: Record<string, unknown>): void;
  bindAsync(address: string, creds: unknown, cb: (err: Error | null, port: number) => void): void;
  forceShutdown(): void;
}
interface Grpc {
  Server: new () => GrpcServer;
  ServerCredentials: { createInsecure(): unknown };
}

/** A fake Pulumi engine that records Log calls. */
async function fakeEngine(): Promise<{ address: string; received: LogEntry[]; stop(): void }> {
  const here = createRequire(import.meta.url);
  const grpcPb = here.resolve("@pulumi/pulumi/proto/engine_grpc_pb.js");
  const sdk = createRequire(grpcPb);
  const grpc = sdk("@grpc/grpc-js") as Grpc;
  const { EngineService } = sdk(grpcPb) as { EngineService: unknown };
  const { Empty } = sdk("google-protobuf/google/protobuf/empty_pb.js") as { Empty: new () => unknown };
  const received: LogEntry[] = [];
  const server = new grpc.Server();
  server.addService(EngineService, {
    log: (call: { request: LogRequestLike }, callback: (err: null, res: unknown) => void) => {
      const r = call.request;
      received.push({ urn: r.getUrn(), severity: r.getSeverity() === 2 ? "warning" : "info", message: r.getMessage(), ephemeral: r.getEphemeral() });
      callback(null, new Empty());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, received, stop: () => server.forceShutdown() };
}

void describe("ProviderLog", () => {
  let engine: Awaited<ReturnType<typeof fakeEngine>>;
  before(async () => {
    engine = await fakeEngine();
  });
  after(() => engine.stop());

  void it("reads the engine's address from the plugin's arguments as the SDK does", () => {
    assert.equal(engineAddressFromArgs(["127.0.0.1:4567"]), "127.0.0.1:4567");
    assert.equal(engineAddressFromArgs(["--logtostderr", "-v=9", "--tracing", "http://t", "127.0.0.1:1"]), "127.0.0.1:1");
    assert.equal(engineAddressFromArgs([]), undefined);
    assert.equal(urnName(URN), "hello_web_image");
  });

  void it("sends status lines, warnings and (verbose) output to the engine, in order, attached to the resource", async () => {
    const stderr: string[] = [];
    const log = new ProviderLog({ engineAddress: engine.address, verbose: true, stderr: (t) => stderr.push(t) });
    log.status(URN, "building hello-web:0123");
    const out = log.lines(URN);
    out("Step 1/3 : FROM scr");
    out("atch\nStep 2/3 : COPY busybox /bin/busybox\n\n partial");
    out(undefined);
    log.warn(URN, "careful");
    log.info(URN, "update: compose files changed: docker-compose.yaml");
    await log.flush();
    log.close();
    assert.deepEqual(engine.received, [
      { urn: URN, severity: "info", message: "building hello-web:0123", ephemeral: true },
      { urn: URN, severity: "info", message: "Step 1/3 : FROM scratch", ephemeral: false },
      { urn: URN, severity: "info", message: "Step 2/3 : COPY busybox /bin/busybox", ephemeral: false },
      { urn: URN, severity: "info", message: " partial", ephemeral: false },
      { urn: URN, severity: "warning", message: "careful", ephemeral: false },
      { urn: URN, severity: "info", message: "update: compose files changed: docker-compose.yaml", ephemeral: false },
    ]);
    assert.deepEqual(stderr, [], "nothing on stderr while the engine answers");
  });

  void it("without verbose, output is dropped and status lines still reach the engine", async () => {
    engine.received.length = 0;
    const log = new ProviderLog({ engineAddress: engine.address, verbose: false });
    log.status(URN, "installing Docker");
    log.output(URN, "Get:1 http://deb.debian.org bookworm InRelease");
    log.lines(URN)("more output\n");
    await log.flush();
    log.close();
    assert.deepEqual(engine.received.map((e) => e.message), ["installing Docker"]);
  });

  void it("without an engine, stderr gets prefixed lines, and status and output only when verbose", async () => {
    const quiet: string[] = [];
    const q = new ProviderLog({ verbose: false, stderr: (t) => quiet.push(t) });
    q.status(URN, "building");
    q.output(URN, "Step 1/2");
    q.warn(URN, "kept tags\nin the registry");
    await q.flush();
    assert.deepEqual(quiet, ["homelab provider: hello_web_image: warning: kept tags\nhomelab provider: hello_web_image: warning: in the registry\n"]);
    const loud: string[] = [];
    const v = new ProviderLog({ verbose: true, stderr: (t) => loud.push(t) });
    v.status(URN, "building");
    v.output(URN, "Step 1/2");
    assert.deepEqual(loud, ["homelab provider: hello_web_image: building\n", "homelab provider: hello_web_image: Step 1/2\n"]);
  });

  void it("an engine that went away: lines fall back to stderr, nothing is lost or thrown", async () => {
    const gone = await fakeEngine();
    gone.stop();
    const err: string[] = [];
    const log = new ProviderLog({ engineAddress: gone.address, verbose: true, stderr: (t) => err.push(t) });
    log.warn(URN, "first");
    await log.flush();
    log.warn(URN, "second");
    await log.flush();
    log.close();
    assert.deepEqual(err, ["homelab provider: hello_web_image: warning: first\n", "homelab provider: hello_web_image: warning: second\n"]);
  });
});
