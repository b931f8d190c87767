/**
 * End to end (root, LXC, Docker): the lxc backend's own Docker Engine
 * (`docker: true`), which deploys use to build images and push them to the
 * backend's plain-HTTP registry. It answers on `dockerHost`, trusts the
 * registry, pushes there; close, and the clean-up after a crash (dockerd
 * killed outright with a container running), leave no process, mount or
 * folder behind. Nothing here talks to any address but the backend's bridge.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { cleanUpLxcBackend, createLxcBackend } from "../../../src/sandbox/lxc/backend.ts";
import type { LxcGuestBackend } from "../../../src/sandbox/lxc/backend.ts";
import { dockerRunDirOf } from "../../../src/sandbox/lxc/layout.ts";
import { createExecutor } from "../../../src/sandbox/lxc/exec.ts";
import { listProcesses } from "../../../src/sandbox/lxc/host.ts";
import { ensureSandboxHost, leftovers } from "./helpers.ts";

const BRIDGE = "hldock0";
const SUBNET = "10.87.81.0/24";
const HOST_ADDRESS = "10.87.81.1";

/** Starts a backend with Docker, recording how long dockerd took to answer (from the verbose log). */
async function start(stateDir: string): Promise<{ backend: LxcGuestBackend; ms: number; dockerdMs: number | undefined }> {
  const lines: string[] = [];
  const executor = createExecutor({ verbose: true, logger: (l) => lines.push(l) });
  const started = Date.now();
  const backend = await createLxcBackend({ stateDir, bridge: BRIDGE, subnet: SUBNET, docker: true, executor });
  const ms = Date.now() - started;
  const m = lines.map((l) => /dockerd \(pid \d+\) answered after (\d+) ms/.exec(l)).find((x) => x !== null);
  return { backend, ms, dockerdMs: m?.[1] !== undefined ? Number(m[1]) : undefined };
}

function engine(backend: LxcGuestBackend): Docker {
  const host = backend.dockerHost ?? "";
  assert.ok(host.startsWith("unix://"), `dockerHost: ${host}`);
  return new Docker({ socketPath: host.slice("unix://".length) });
}

/** Reads an Engine progress stream to its end; throws with the first error it reports. */
async function follow(docker: Docker, stream: NodeJS.ReadableStream): Promise<Array<{ stream?: string; status?: string }>> {
  const events = await new Promise<Array<{ stream?: string; status?: string; error?: string; errorDetail?: { message?: string } }>>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, out: Array<{ stream?: string; status?: string; error?: string }>) => (err ? reject(err) : resolve(out)));
  });
  const failed = events.find((e) => e.error !== undefined || e.errorDetail !== undefined);
  if (failed) throw new Error(failed.errorDetail?.message ?? failed.error ?? "engine error");
  return events;
}

/** Builds a tiny image FROM scratch holding the host's static busybox. */
async function buildBusybox(docker: Docker, dir: string, ref: string): Promise<void> {
  const ctx = join(dir, "image");
  await mkdir(ctx, { recursive: true });
  await copyFile("/bin/busybox", join(ctx, "busybox"));
  await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "hello from the sandbox registry"]\n');
  await follow(docker, await docker.buildImage({ context: ctx, src: ["Dockerfile", "busybox"] }, { t: ref, rm: true, forcerm: true }));
}

/** Processes of Docker's (dockerd, containerd, shims) that name the state folder or the docker run folder. */
async function dockerProcesses(stateDir: string): Promise<string[]> {
  const needles = [stateDir, `${dockerRunDirOf(BRIDGE)}/`];
  return (await listProcesses())
    .filter((p) => /(^|\/)(dockerd|containerd|containerd-shim-runc-v2)$/.test(p.argv[0] ?? "") && p.argv.some((a) => needles.some((n) => a.includes(n))))
    .map((p) => `${p.pid}: ${p.argv.join(" ")}`);
}

async function mountsUnder(dirs: string[]): Promise<string[]> {
  return (await readFile("/proc/mounts", "utf8")).split("\n").filter((l) => dirs.some((d) => (l.split(" ")[1] ?? "").startsWith(d)));
}

describe("[root][lxc][docker] the lxc backend's own Docker Engine", { timeout: 15 * 60_000 }, () => {
  test("answers on dockerHost, lists the registry as insecure, pushes an image there; close leaves no dockerd, containerd or mount", async (t) => {
    await ensureSandboxHost();
    const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-docker-"));
    const stateDir = join(dir, "state");
    try {
      const { backend, ms, dockerdMs } = await start(stateDir);
      t.diagnostic(`backend with Docker started in ${ms} ms; dockerd answered /_ping after ${String(dockerdMs)} ms`);
      let closed = false;
      try {
        assert.equal(backend.dockerHost, `unix://${dockerRunDirOf(BRIDGE)}/docker.sock`);
        const docker = engine(backend);
        assert.equal(String(await docker.ping()), "OK");

        const info = (await docker.info()) as { DockerRootDir: string; RegistryConfig: { IndexConfigs: Record<string, { Secure: boolean }> } };
        assert.equal(info.RegistryConfig.IndexConfigs[backend.registry]?.Secure, false, `the registry is insecure: ${JSON.stringify(info.RegistryConfig.IndexConfigs)}`);
        assert.equal(info.DockerRootDir, join(stateDir, "docker", "data"), "images live in the state folder");

        const ref = `${backend.registry}/homelab-test/busybox:1`;
        const built = Date.now();
        await buildBusybox(docker, dir, ref);
        const pushed = Date.now();
        await follow(docker, await docker.getImage(`${backend.registry}/homelab-test/busybox`).push({ tag: "1", authconfig: {} }));
        t.diagnostic(`built in ${pushed - built} ms, pushed in ${Date.now() - pushed} ms`);
        const tags = (await (await fetch(`http://${backend.registry}/v2/homelab-test/busybox/tags/list`)).json()) as { tags?: string[] };
        assert.deepEqual(tags.tags, ["1"]);

        // Something of Docker's mounted under the state folder, for close to remove.
        assert.ok((await mountsUnder([stateDir])).length > 0, "dockerd mounts its data root");
        assert.ok((await dockerProcesses(stateDir)).some((p) => /^\d+: containerd --config /.test(p)), "a managed containerd runs");

        const closing = Date.now();
        await backend.close();
        closed = true;
        t.diagnostic(`close with Docker took ${Date.now() - closing} ms`);
      } finally {
        if (!closed) await backend.close();
      }
      assert.deepEqual(await dockerProcesses(stateDir), []);
      assert.deepEqual(await mountsUnder([stateDir, dockerRunDirOf(BRIDGE)]), []);
      assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: HOST_ADDRESS }), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("after a crash that killed dockerd outright, with a container running, cleanUpLxcBackend removes the shim, the container, the mounts", async (t) => {
    await ensureSandboxHost();
    const dir = await mkdtemp(join(tmpdir(), "homelab-lxc-docker-"));
    const stateDir = join(dir, "state");
    try {
      const { backend } = await start(stateDir);
      try {
        const docker = engine(backend);
        const ref = `${backend.registry}/homelab-test/busybox:1`;
        await buildBusybox(docker, dir, ref);
        const container = await docker.createContainer({ Image: ref, Cmd: ["/bin/busybox", "sleep", "1000"], HostConfig: { NetworkMode: "none" } });
        await container.start();
        const inside = ((await container.inspect()) as { State: { Pid: number } }).State.Pid;
        assert.ok(inside > 0);

        const dockerdPid = Number((await readFile(join(stateDir, "run", "dockerd.pid"), "utf8")).trim());
        process.kill(dockerdPid, "SIGKILL");
        await new Promise((r) => setTimeout(r, 1000));
        const left = await leftovers({ stateDir, bridge: BRIDGE, hostAddress: HOST_ADDRESS });
        assert.ok(left.some((l) => /containerd-shim-runc-v2/.test(l)), `the container's shim outlives dockerd: ${left.join("; ")}`);
        assert.ok(left.some((l) => l.startsWith("mount:")), "and its mounts");

        const cleaning = Date.now();
        const said: string[] = [];
        await cleanUpLxcBackend({ stateDir, bridge: BRIDGE, executor: createExecutor({ verbose: true, logger: (l) => said.push(l) }) });
        t.diagnostic(`clean-up after the crash took ${Date.now() - cleaning} ms`);
        let alive = true;
        try {
          process.kill(inside, 0);
          alive = !/\) Z /.test(await readFile(`/proc/${inside}/stat`, "utf8"));
        } catch {
          alive = false;
        }
        assert.equal(alive, false, "the container's process is gone");
        assert.ok(said.some((l) => l.includes(`killing leftover container ${container.id}`)), `runc killed it: ${said.join("\n")}`);
        assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: HOST_ADDRESS }), []);
      } finally {
        // What the backend itself knows is gone already; closing must still work.
        await backend.close();
      }
      assert.deepEqual(await leftovers({ stateDir, bridge: BRIDGE, hostAddress: HOST_ADDRESS }), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
