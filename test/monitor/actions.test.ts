import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import ssh2 from "ssh2";
import type { Connection, ServerChannel } from "ssh2";
import { ensureSshKey } from "../../src/provision/ssh-key.ts";
import type { StackState } from "../../src/engine/state.ts";
import { engineLockHolder, ServiceRemediator } from "../../src/monitor/actions.ts";
import type { ComposeRestarter, ServiceDeployer } from "../../src/monitor/actions.ts";
import { commandCheck } from "../../src/monitor/checks.ts";
import { ManualClock } from "../../src/monitor/clock.ts";
import { sshCommandExecutor } from "../../src/monitor/ssh.ts";
import { checkTarget, serviceTarget, StateTargets, StaticTargets } from "../../src/monitor/targets.ts";
import { knownHostsFile } from "../../src/config/homelab-dir.ts";

const { Server, utils } = ssh2;

function state(resources: { id: string; address?: string; protect?: boolean; type?: string }[]): StackState {
  return {
    resources: resources.map((r) => ({
      urn: `urn:pulumi:lab.peach::homelab::${r.type ?? "homelab:proxmox:Container"}::${r.id}`,
      id: r.id,
      type: r.type ?? "homelab:proxmox:Container",
      physicalId: "101",
      protect: r.protect ?? false,
      inputs: {},
      outputs: r.address !== undefined ? { address: r.address, vmid: 101, node: "pve-01" } : { vmid: 101 },
    })),
    pending: [],
    outputs: {},
    deployment: {},
  };
}

void describe("targets from the deployment state", () => {
  void it("each container with its address and protect flag; checks find theirs", () => {
    const t = serviceTarget("peach", state([{ id: "web", address: "10.0.0.5" }, { id: "db", address: "10.0.0.6", protect: true }, { id: "img", type: "homelab:docker:Image" }]));
    assert.deepEqual(t, { service: "peach", deployed: true, containers: [{ id: "web", address: "10.0.0.5", protect: false }, { id: "db", address: "10.0.0.6", protect: true }] });
    assert.deepEqual(checkTarget(t, "db"), { service: "peach", resource: "db", address: "10.0.0.6" });
    // Two containers and no resource named: no address (validation makes such a check name one).
    assert.equal(checkTarget(t, undefined).address, undefined);
    const one = serviceTarget("peach", state([{ id: "web" }]));
    assert.deepEqual(checkTarget(one, undefined), { service: "peach", resource: "web", address: undefined });
    assert.equal(serviceTarget("peach", undefined).deployed, false);
  });

  void it("are cached for a while, re-read after invalidate, and a failed read is not cached", async () => {
    const clock = new ManualClock(0);
    const reads: string[] = [];
    let fail = false;
    let address = "10.0.0.5";
    const t = new StateTargets(
      {
        readState: (stack) => {
          reads.push(stack);
          return fail ? Promise.reject(new Error("state unreadable")) : Promise.resolve(state([{ id: "web", address }]));
        },
      },
      "lab",
      { clock, ttlMs: 60_000 },
    );
    assert.equal((await t.get("peach")).containers[0]?.address, "10.0.0.5");
    address = "10.0.0.9";
    assert.equal((await t.get("peach")).containers[0]?.address, "10.0.0.5");
    t.invalidate("peach");
    assert.equal((await t.get("peach")).containers[0]?.address, "10.0.0.9");
    await clock.advance(60_000);
    fail = true;
    await assert.rejects(t.get("peach"), /state unreadable/);
    fail = false;
    assert.equal((await t.get("peach")).deployed, true);
    assert.deepEqual(reads, ["lab.peach", "lab.peach", "lab.peach", "lab.peach"]);
  });
});

void describe("ServiceRemediator", () => {
  const targets = new StaticTargets([{ service: "peach", deployed: true, containers: [{ id: "web", address: "10.0.0.5", protect: false }, { id: "db", address: "10.0.0.6", protect: false }] }]);
  const signal = new AbortController().signal;
  const restarted: string[] = [];
  const restarter: ComposeRestarter = { restart: (address, service) => Promise.resolve(`restarted ${service} on ${address}`).finally(() => restarted.push(address)) };

  void it("restarts the compose project in every compose container of the service", async () => {
    const r = new ServiceRemediator({ targets, composeContainers: new Map([["peach", ["web", "db"]]]), restarter });
    assert.equal(await r.restart("peach", signal), "restarted peach on 10.0.0.5; restarted peach on 10.0.0.6");
    assert.deepEqual(restarted, ["10.0.0.5", "10.0.0.6"]);
  });

  void it("says why a restart is impossible: no compose container, no address", async () => {
    const none = new ServiceRemediator({ targets, composeContainers: new Map(), restarter });
    await assert.rejects(none.restart("peach", signal), /no container of peach runs docker compose/);
    const ghost = new ServiceRemediator({ targets, composeContainers: new Map([["peach", ["gone"]]]), restarter });
    await assert.rejects(ghost.restart("peach", signal), /container gone of peach has no known address/);
  });

  void it("recreates and detects deploys through the deployer; without one, recreating is refused", async () => {
    const asked: string[] = [];
    const deployer: ServiceDeployer = {
      recreate: (s) => Promise.resolve(`destroyed and redeployed ${s}`).finally(() => asked.push(`recreate ${s}`)),
      lockHolder: (s) => Promise.resolve(s === "busy" ? "pid 42 on host, still running" : undefined),
    };
    const r = new ServiceRemediator({ targets, composeContainers: new Map(), restarter, deployer });
    assert.equal(await r.recreate("peach", signal), "destroyed and redeployed peach");
    assert.deepEqual(await r.isDeploying("peach"), { deploying: false, detail: "" });
    assert.deepEqual(await r.isDeploying("busy"), { deploying: true, detail: "a deploy holds the stack of busy (pid 42 on host, still running)" });
    const bare = new ServiceRemediator({ targets, composeContainers: new Map(), restarter });
    await assert.rejects(bare.recreate("peach", signal), /needs the engine/);
    assert.deepEqual(await bare.isDeploying("peach"), { deploying: false, detail: "" });
  });

  void it("engineLockHolder: a lock of the stack (a backend homelab reads), else the backend's update-in-progress flag", async () => {
    const lock = { key: ".pulumi/locks/organization/homelab/lab.peach/x.json", location: "/state/.pulumi/locks/organization/homelab/lab.peach/x.json", pid: process.pid, username: "root", hostname: hostname(), since: new Date("2025-01-01T10:00:00Z") };
    const listed: string[] = [];
    const fileBackend = engineLockHolder({ readsLocks: true, locks: (s) => Promise.resolve(s === "lab.peach" ? [lock] : []), listStacks: () => Promise.resolve(listed.map((name) => ({ name, updateInProgress: true }))) }, "lab");
    assert.match((await fileBackend("peach")) ?? "", new RegExp(`^pid ${process.pid} on ${hostname()} \\(root\\) since 2025-01-01T10:00:00Z, still running$`));
    assert.equal(await fileBackend("other"), undefined);
    const cloud = engineLockHolder({ readsLocks: false, locks: () => Promise.resolve([]), listStacks: () => Promise.resolve([{ name: "lab.peach", updateInProgress: true }, { name: "lab.other", updateInProgress: false }]) }, "lab");
    assert.equal(await cloud("peach"), "an update of lab.peach is in progress");
    assert.equal(await cloud("other"), undefined);
  });
});

void describe("command checks over SSH (in-process ssh2 server on 127.0.0.1)", () => {
  let root: string;
  let port: number;
  let close: () => Promise<void>;
  const commands: string[] = [];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "homelab-monitor-ssh-"));
    const client = ensureSshKey(root, "lab");
    const host = ensureSshKey(root, "hostkey");
    const allowed = utils.parseKey(client.publicKey);
    if (allowed instanceof Error) throw allowed;
    writeFileSync(join(root, "ready"), "");
    const server = new Server({ hostKeys: [readFileSync(host.privateKeyFile, "utf8")] }, (c: Connection) => {
      c.on("authentication", (ctx) => {
        if (ctx.method !== "publickey" || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject();
        if (ctx.signature && ctx.blob && allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
        ctx.accept();
      });
      c.on("ready", () =>
        c.on("session", (accept) =>
          accept().on("exec", (acceptExec, _reject, info) => {
            const stream: ServerChannel = acceptExec();
            const child = spawn("sh", ["-c", info.command], { cwd: root });
            let script = "";
            stream.on("data", (d: Buffer) => (script += d.toString()));
            stream.on("end", () => commands.push(script));
            stream.pipe(child.stdin);
            child.stdout.pipe(stream, { end: false });
            child.stderr.pipe(stream.stderr, { end: false });
            child.on("close", (code) => {
              stream.exit(code ?? 1);
              stream.end();
            });
          }),
        ),
      );
      c.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    close = () => new Promise((r) => server.close(() => r()));
  });
  after(async () => {
    await close();
    rmSync(root, { recursive: true, force: true });
  });

  void it("runs the command in the container with the environment's key; exit 0 is healthy; the host key is pinned", async () => {
    const ex = sshCommandExecutor(root, "lab", { port });
    const target = { service: "peach", resource: "web", address: "127.0.0.1" };
    const signal = new AbortController().signal;
    const ok = await commandCheck({ type: "command", command: ["test", "-f", "ready"], interval: 60, timeout: 5, retries: 3 }, target, signal, ex);
    assert.equal(ok.ok, true, ok.detail);
    const bad = await commandCheck({ type: "command", command: "echo starting; echo 'db not ready' >&2; exit 4", interval: 60, timeout: 5, retries: 3 }, target, signal, ex);
    assert.equal(bad.ok, false);
    assert.equal(bad.detail, "exit 4: db not ready");
    // The command went on stdin, not on the command line.
    assert.ok(commands.includes("test -f ready"));
    assert.match(readFileSync(knownHostsFile(root, "lab"), "utf8"), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${port} ssh-ed25519 `));
  });

  void it("no key yet: the check fails and says where the key comes from", async () => {
    const empty = mkdtempSync(join(tmpdir(), "homelab-monitor-nokey-"));
    try {
      const r = await commandCheck({ type: "command", command: "true", interval: 60, timeout: 5, retries: 3 }, { service: "p", resource: "web", address: "127.0.0.1" }, new AbortController().signal, sshCommandExecutor(empty, "lab", { port }));
      assert.match(r.detail, /cannot read the environment's SSH key .*made by the first deploy/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
