/**
 * The SSH executor against an in-process ssh2 server on 127.0.0.1 that runs
 * commands with the local sh: pinning, changed keys, retries, stdin scripts
 * and uploads, without a container.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import ssh2 from "ssh2";
import type { Connection, ServerChannel } from "ssh2";
import { HOSTILE, scratch } from "./helpers.ts";
import { knownHostsFile } from "../../src/config/homelab-dir.ts";
import { KnownHosts, SshError, connectSsh, fingerprint, forgetHost, hostKeyFromBlob, parseKnownHosts, translateSshError, withSsh } from "../../src/provision/ssh.ts";

// ssh2 is CommonJS; only some of its exports are visible as named ES exports.
const { Server, utils } = ssh2;

function keygen(dir: string, name: string): { privateKey: string; publicKey: string } {
  const file = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return { privateKey: readFileSync(file, "utf8"), publicKey: readFileSync(`${file}.pub`, "utf8").trim() };
}

interface TestServer {
  port: number;
  commands: string[];
  close(): Promise<void>;
}

/** An SSH server that accepts one client key and runs exec requests with sh in `cwd`. */
function startServer(o: { hostKey: string; clientPublicKey: string; cwd: string; port?: number }): Promise<TestServer> {
  const allowed = utils.parseKey(o.clientPublicKey);
  if (allowed instanceof Error) throw allowed;
  const commands: string[] = [];
  const server = new Server({ hostKeys: [o.hostKey] }, (client: Connection) => {
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey" || ctx.key.algo !== allowed.type || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject();
      if (ctx.signature && ctx.blob && allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
      ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        const session = accept();
        session.on("exec", (acceptExec, _reject, info) => {
          commands.push(info.command);
          const stream: ServerChannel = acceptExec();
          const child = spawn("sh", ["-c", info.command], { cwd: o.cwd });
          stream.pipe(child.stdin);
          child.stdout.pipe(stream, { end: false });
          child.stderr.pipe(stream.stderr, { end: false });
          child.on("close", (code) => {
            stream.exit(code ?? 1);
            stream.end();
          });
        });
      });
    });
    client.on("error", () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(o.port ?? 0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        commands,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

describe("known_hosts store", () => {
  test("parses OpenSSH lines, keeps comments and hashed entries as they are", () => {
    const lines = parseKnownHosts("# c\n10.0.0.5 ssh-ed25519 AAAA\n[10.0.0.6]:2222,h ssh-rsa BBBB comment\n|1|x= ssh-ed25519 CCCC\n");
    assert.deepEqual(lines.map((l) => l.hosts), [[], ["10.0.0.5"], ["[10.0.0.6]:2222", "h"], []]);
    assert.deepEqual(lines[2]?.key, { type: "ssh-rsa", base64: "BBBB" });
  });

  test("pin, lookup, replace and forget; file 0600 in a 0700 folder; other lines kept", async () => {
    const s = scratch();
    try {
      const file = knownHostsFile(s.dir, "prod");
      assert.equal(file, join(s.dir, ".homelab/ssh/prod/known_hosts"));
      const kh = new KnownHosts(file);
      assert.equal(await kh.lookup("10.0.0.5"), undefined);
      await Promise.all([kh.pin("10.0.0.5", 22, { type: "ssh-ed25519", base64: "AAA" }), kh.pin("10.0.0.6", 2222, { type: "ssh-ed25519", base64: "BBB" })]);
      assert.deepEqual(await kh.lookup("10.0.0.5"), { type: "ssh-ed25519", base64: "AAA" });
      assert.deepEqual(await kh.lookup("10.0.0.6", 2222), { type: "ssh-ed25519", base64: "BBB" });
      assert.equal(await kh.lookup("10.0.0.6"), undefined, "another port is another host");
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(s.dir, ".homelab/ssh/prod")).mode & 0o777, 0o700);
      writeFileSync(file, `# mine\n${readFileSync(file, "utf8")}`);
      await kh.pin("10.0.0.5", 22, { type: "ssh-ed25519", base64: "NEW" });
      assert.deepEqual(await kh.lookup("10.0.0.5"), { type: "ssh-ed25519", base64: "NEW" });
      assert.equal(await forgetHost(file, "10.0.0.6"), true);
      assert.equal(await forgetHost(file, "10.0.0.6"), false);
      assert.equal(readFileSync(file, "utf8"), "# mine\n10.0.0.5 ssh-ed25519 NEW\n");
    } finally {
      s.done();
    }
  });

  test("fingerprints match ssh-keygen -l", () => {
    const s = scratch();
    try {
      const k = keygen(s.dir, "k");
      const [type = "", base64 = ""] = k.publicKey.split(" ");
      const expected = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", join(s.dir, "k.pub")]).toString().split(" ")[1];
      assert.equal(fingerprint({ type, base64 }), expected);
      assert.deepEqual(hostKeyFromBlob(Buffer.from(base64, "base64")), { type, base64 });
      assert.throws(() => hostKeyFromBlob(Buffer.from([0, 0, 0, 9, 1])), /malformed/);
    } finally {
      s.done();
    }
  });
});

describe("errors say what to do", () => {
  test("auth, refused, unreachable, timeout, bad key", () => {
    const auth = Object.assign(new Error("All configured authentication methods failed"), { level: "client-authentication" });
    assert.equal(translateSshError(auth, "h", 22, "/k").kind, "auth");
    assert.match(translateSshError(auth, "h", 22, "/k").message, /refused the SSH key \/k for root[\s\S]*authorized_keys/);
    assert.match(translateSshError(new Error("connect ECONNREFUSED 1.2.3.4:22"), "h", 22, undefined).message, /nothing accepts SSH connections on h:22[\s\S]*sshd/);
    assert.match(translateSshError(new Error("connect EHOSTUNREACH"), "h", 22, undefined).message, /unreachable[\s\S]*bridge/);
    assert.equal(translateSshError(new Error("Timed out while waiting for handshake"), "h", 22, undefined).kind, "timeout");
    assert.equal(translateSshError(new Error("Cannot parse privateKey: Unsupported key format"), "h", 22, "/k").kind, "key");
  });
});

describe("SSH executor against a local ssh2 server", () => {
  let s: ReturnType<typeof scratch>;
  let client: { privateKey: string; publicKey: string };
  let hostA: { privateKey: string; publicKey: string };
  let hostB: { privateKey: string; publicKey: string };
  let server: TestServer;
  let kh: KnownHosts;

  before(async () => {
    s = scratch();
    client = keygen(s.dir, "client");
    hostA = keygen(s.dir, "hostA");
    hostB = keygen(s.dir, "hostB");
    server = await startServer({ hostKey: hostA.privateKey, clientPublicKey: client.publicKey, cwd: s.dir });
    kh = new KnownHosts(join(s.dir, "known_hosts"));
  });

  after(async () => {
    await server.close();
    s.done();
  });

  const target = (over: Partial<Parameters<typeof connectSsh>[0]> = {}): Parameters<typeof connectSsh>[0] => ({ host: "127.0.0.1", port: server.port, privateKey: client.privateKey, knownHosts: kh, ...over });

  test("first contact pins the host key; scripts go on stdin to sh -s, output streams", async () => {
    const chunks: string[] = [];
    const r = await withSsh(target(), (ex) => ex.run("echo out; echo err >&2; exit 0\n", { onOutput: (c) => chunks.push(c) }));
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "out\n");
    assert.equal(r.stderr, "err\n");
    assert.ok(chunks.join("").includes("out"));
    assert.deepEqual(await kh.lookup("127.0.0.1", server.port), { type: "ssh-ed25519", base64: hostA.publicKey.split(" ")[1] ?? "" });
    assert.deepEqual(server.commands.slice(-1), ["sh -s"], "the command line is only sh -s");
  });

  test("a failing script rejects with its output; check: false returns the code", async () => {
    await withSsh(target(), async (ex) => {
      const r = await ex.run("echo bad >&2; exit 7\n", { check: false });
      assert.equal(r.code, 7);
      await assert.rejects(ex.run("echo 'broken thing' >&2; exit 3\n", { what: "the test script" }), (e: unknown) => e instanceof SshError && /the test script failed on 127.0.0.1 \(exit 3\)/.test(e.message) && /broken thing/.test(e.message));
    });
  });

  test("hostile script content and uploads are byte-exact, with modes, and never on a command line", async () => {
    const before = server.commands.length;
    const secret = HOSTILE.join("\n");
    const path = join(s.dir, "up dir", "a file 'q' $(x).env");
    await withSsh(target(), async (ex) => {
      await ex.upload(path, secret, 0o600);
      await ex.upload(join(s.dir, "bin.dat"), Buffer.from([0, 1, 2, 255, 10]), 0o644);
      const r = await ex.run(`cat <<'EOF'\n${"$(touch PWNED) `touch PWNED`"}\nEOF\n`);
      assert.equal(r.stdout, "$(touch PWNED) `touch PWNED`\n");
    });
    assert.equal(readFileSync(path, "utf8"), secret);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readFileSync(join(s.dir, "bin.dat")), Buffer.from([0, 1, 2, 255, 10]));
    assert.equal(statSync(join(s.dir, "bin.dat")).mode & 0o777, 0o644);
    assert.ok(!existsSync(join(s.dir, "PWNED")));
    for (const c of server.commands.slice(before)) assert.ok(!c.includes("line1"), `no secret on the command line: ${c}`);
  });

  test("a changed host key is refused with what to do; forgetting it lets the new key be pinned", async () => {
    const port = server.port;
    await server.close();
    server = await startServer({ hostKey: hostB.privateKey, clientPublicKey: client.publicKey, cwd: s.dir, port });
    await assert.rejects(connectSsh(target({ port }), { timeoutMs: 5000 }), (e: unknown) => {
      assert.ok(e instanceof SshError);
      assert.equal(e.kind, "host-key-changed");
      assert.match(e.message, /SSH host key of \[127\.0\.0\.1\]:\d+ has changed: pinned ssh-ed25519 SHA256:\S+, now ssh-ed25519 SHA256:\S+/);
      assert.match(e.message, /re-created outside homelab[\s\S]*remove its line from .*known_hosts/);
      return true;
    });
    assert.equal(await kh.forget("127.0.0.1"), true);
    await withSsh(target({ port }), (ex) => ex.run("true\n"));
    assert.equal((await kh.lookup("127.0.0.1", port))?.base64, hostB.publicKey.split(" ")[1]);
  });

  test("a key the server does not accept is an auth error, not retried", async () => {
    const other = keygen(s.dir, "other");
    const started = Date.now();
    await assert.rejects(connectSsh(target({ privateKey: other.privateKey, privateKeyFile: "/x/id_ed25519" }), { timeoutMs: 20_000 }), (e: unknown) => e instanceof SshError && e.kind === "auth" && /\/x\/id_ed25519/.test(e.message));
    assert.ok(Date.now() - started < 10_000);
  });

  test("retries while nothing listens yet, then connects when sshd comes up", async () => {
    const port = server.port;
    await server.close();
    const retries: string[] = [];
    setTimeout(() => {
      void startServer({ hostKey: hostB.privateKey, clientPublicKey: client.publicKey, cwd: s.dir, port }).then((srv) => (server = srv));
    }, 800);
    const ex = await connectSsh(target({ port }), { timeoutMs: 15_000, onRetry: (_n, why) => retries.push(why) });
    try {
      assert.equal((await ex.run("echo up\n")).stdout, "up\n");
    } finally {
      await ex.close();
    }
    assert.ok(retries.length > 0 && retries.every((r) => /ECONNREFUSED/.test(r)), retries.join(", "));
  });

  test("gives up when nothing answers, saying so", async () => {
    const probe = await startServer({ hostKey: hostA.privateKey, clientPublicKey: client.publicKey, cwd: s.dir });
    const port = probe.port;
    await probe.close();
    await assert.rejects(connectSsh(target({ port }), { timeoutMs: 1500 }), (e: unknown) => e instanceof SshError && e.kind === "refused" && /nothing accepts SSH connections/.test(e.message));
  });
});
