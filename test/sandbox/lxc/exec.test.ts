import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CommandError, createExecutor, formatArgv, tail } from "../../../src/sandbox/lxc/exec.ts";
import { acquireFileLock, lockHolderArgv } from "../../../src/sandbox/lxc/lock.ts";
import { lxcMonitors, memoryCgroupPath, processesMentioning, processUptime, isMounted, waitFor } from "../../../src/sandbox/lxc/host.ts";

test("the executor returns output and passes stdin", async () => {
  const ex = createExecutor();
  const res = await ex.run({ argv: ["sh", "-c", "cat; echo err >&2"], input: "hello" });
  assert.deepEqual(res, { code: 0, stdout: "hello", stderr: "err\n" });
});

test("a failing command becomes an error naming the command and its stderr tail", async () => {
  const ex = createExecutor();
  await assert.rejects(ex.run({ argv: ["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"] }), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, 3);
    assert.match(err.message, /exit 3/);
    assert.match(err.message, /sh -c/);
    assert.match(err.message, /the reason$/);
    return true;
  });
});

test("okCodes, missing programs and timeouts", async () => {
  const ex = createExecutor();
  assert.equal((await ex.run({ argv: ["sh", "-c", "exit 2"], okCodes: [0, 2] })).code, 2);
  await assert.rejects(ex.run({ argv: ["/nonexistent/program"] }), /could not start/);
  await assert.rejects(ex.run({ argv: ["sleep", "5"], timeoutMs: 100 }), /timed out after 100 ms/);
});

test("verbose mode logs each command and its exit", async () => {
  const lines: string[] = [];
  const ex = createExecutor({ verbose: true, logger: (l) => lines.push(l) });
  await ex.run({ argv: ["true"] });
  assert.equal(lines[0], "[sandbox:lxc] $ true");
  assert.match(lines[1] ?? "", /exit 0 in \d+ ms/);
  const quiet: string[] = [];
  await createExecutor({ logger: (l) => quiet.push(l) }).run({ argv: ["true"] });
  assert.deepEqual(quiet, []);
});

test("runAll stops at the first failure", async () => {
  const dir = await mkdtemp(join(tmpdir(), "homelab-exec-"));
  try {
    const ex = createExecutor();
    await assert.rejects(ex.runAll([{ argv: ["false"] }, { argv: ["touch", join(dir, "ran")] }]));
    await assert.rejects(readFile(join(dir, "ran")));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("spawnDaemon starts a detached process writing to its log", async () => {
  const dir = await mkdtemp(join(tmpdir(), "homelab-exec-"));
  try {
    const ex = createExecutor();
    const log = join(dir, "d.log");
    const pid = ex.spawnDaemon(["sh", "-c", "echo started; sleep 30"], log);
    await waitFor("log", async () => (await readFile(log, "utf8")).includes("started"), 5000, 20);
    process.kill(pid, "SIGKILL");
    assert.ok(pid > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("formatArgv quotes only what needs it; tail keeps the last lines", () => {
  assert.equal(formatArgv(["ls", "-l", "a b", "it's"]), `ls -l 'a b' 'it'\\''s'`);
  assert.equal(tail("a\nb\nc\n\n", 2), "b\nc");
});

test("the file lock is exclusive and released", async () => {
  const dir = await mkdtemp(join(tmpdir(), "homelab-lock-"));
  try {
    const file = join(dir, "lock");
    assert.deepEqual(lockHolderArgv(file).slice(0, 3), ["flock", "--exclusive", file]);
    const order: string[] = [];
    const first = await acquireFileLock(file);
    let waited = false;
    const second = acquireFileLock(file, { onWait: () => (waited = true) }).then((l) => {
      order.push("second");
      return l;
    });
    await new Promise((r) => setTimeout(r, 700));
    order.push("first-release");
    await first.release();
    const l2 = await second;
    await l2.release();
    assert.deepEqual(order, ["first-release", "second"]);
    assert.ok(waited, "the second caller was told it waits");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("host parsers: lxc monitors, processes, uptime, cgroup, mounts", async () => {
  const procs = [
    { pid: 10, argv: ["[lxc monitor] /s/lxc hlsbx0-101"] },
    { pid: 11, argv: ["docker-registry", "serve", "/s/registry.yml"] },
    { pid: 12, argv: ["bash"] },
  ];
  assert.deepEqual(lxcMonitors(procs), [{ pid: 10, lxcpath: "/s/lxc", name: "hlsbx0-101" }]);
  assert.deepEqual(processesMentioning(procs, "/s/").map((p) => p.pid), [10, 11]);
  assert.deepEqual(processesMentioning(procs, "/s/", new Set([10])).map((p) => p.pid), [11]);
  const stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 50000 1000 10";
  assert.equal(processUptime(stat, "1000.50 2000.00\n", 100), 500);
  assert.equal(memoryCgroupPath("12:pids:/lxc.payload.x\n5:memory:/lxc.payload.x\n"), "/lxc.payload.x");
  assert.equal(memoryCgroupPath("0::/\n"), undefined);
  assert.ok(isMounted("lxcfs /var/lib/lxcfs fuse.lxcfs rw 0 0\n", "/var/lib/lxcfs", "fuse.lxcfs"));
  assert.ok(!isMounted("lxcfs /var/lib/lxcfs fuse.lxcfs rw 0 0\n", "/var/lib/lxcfs", "ext4"));
  await assert.rejects(waitFor("never", () => Promise.resolve(false), 50, 10), /timed out after 50 ms waiting for never/);
});
