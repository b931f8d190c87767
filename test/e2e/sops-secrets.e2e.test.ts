/**
 * A SOPS-encrypted secret through a real deploy with provisioning: a copy of
 * hello whose compose file passes the secret `greeting` into the
 * container's environment, encrypted for an age key with sops into
 * `services/vault/.secrets.sops.yaml`. Validation needs no key; a deploy
 * without it stops at the preview with what to do; with it the value
 * reaches the guest's secrets file (0600) and the running container, and
 * never the CLI's output (verbose), its state and logs in plain text, or the
 * arguments of any process on this machine while it deploys. A new value
 * encrypted in its place is rolled out by the next deploy.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LxcWorld, waitForPage } from "./lxc-world.ts";
import type { Run } from "./lxc-world.ts";
import { quote } from "../../src/provision/shell.ts";
import { sopsTools } from "../helpers/services.ts";

const BRIDGE = "hlsops0";
const SUBNET = "10.87.89.0/24";
const SERVICE = "vault";

function tool(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => execFile(file, args, { env }, (e, out, err) => (e ? reject(new Error(`${file} ${args[0] ?? ""}: ${e.message}\n${err}`)) : resolve(out))));
}

/** Every file under `dir` whose bytes contain `needle`, except under `skip`. */
function filesContaining(dir: string, needle: string, skip: readonly string[]): string[] {
  const hits: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if (skip.some((d) => path.startsWith(d + "/"))) continue;
    try {
      if (readFileSync(path).includes(needle)) hits.push(path);
    } catch {
      // sockets and files that vanished meanwhile
    }
  }
  return hits;
}

/** Polls every process's arguments on this machine while `running` is pending; returns those that held `needle`. */
async function argumentsDuring<T>(needle: string, running: Promise<T>): Promise<{ result: T; seen: string[]; scans: number }> {
  const seen: string[] = [];
  let scans = 0;
  let done = false;
  const scan = (): void => {
    scans++;
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue; // gone meanwhile
      }
      if (cmdline.includes(needle)) seen.push(cmdline.replace(/\0/g, " "));
    }
  };
  const loop = (async () => {
    while (!done) {
      scan();
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  try {
    return { result: await running, seen, scans };
  } finally {
    done = true;
    await loop;
  }
}

void describe("[root][lxc][docker][pulumi][sops] a SOPS + age secret through a real deploy with provisioning", { timeout: 45 * 60_000 }, () => {
  let world: LxcWorld | undefined;
  let keys = "";
  let sops = "";
  let recipient = "";
  const w = (): LxcWorld => {
    assert.ok(world, "no world: before() failed");
    return world;
  };
  // A distinctive token inside a value that needs quoting on its way (a space, a quote, a $).
  const token = "tok" + Math.random().toString(36).slice(2, 12);
  const first = `it's the $greeting ${token}`;
  const rotated = "rot" + Math.random().toString(36).slice(2, 12);
  const second = `rotated ${rotated}`;

  /** Encrypts `{greeting: value}` for the age key into the service's SOPS file (the plaintext lives only in a temporary file). */
  const encrypt = async (value: string): Promise<void> => {
    const plain = join(keys, "plain.yaml");
    writeFileSync(plain, `greeting: ${JSON.stringify(value)}\n`, { mode: 0o600 });
    const out = await tool(sops, ["--encrypt", "--age", recipient, "--input-type", "yaml", "--output-type", "yaml", plain], { PATH: w().cliEnv["PATH"], XDG_CONFIG_HOME: keys });
    rmSync(plain);
    writeFileSync(join(w().repo, "services", SERVICE, ".secrets.sops.yaml"), out);
  };

  // The guests' configs and their volumes (root and mount points), where a Proxmox node keeps its guests' disks.
  const guestDisks = (): string[] => [join(w().repo, ".homelab", "sandbox", "lxc", "lxc"), join(w().repo, ".homelab", "sandbox", "lxc", "storage")];

  const deploy = async (): Promise<{ run: Run; seen: string[]; scans: number }> => {
    const t = Date.now();
    const { result, seen, scans } = await argumentsDuring(token, w().homelab("--env", "sandbox", "--verbose", "deploy", SERVICE, "--yes"));
    w().figures.push(`deploy ${SERVICE}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    assert.equal(result.code, 0, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
    return { run: result, seen, scans };
  };

  before(async () => {
    const tools = await sopsTools();
    sops = tools.sops;
    keys = mkdtempSync(join(tmpdir(), "homelab-sops-keys-"));
    world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-sops-e2e-" });
    // sops on PATH for the provider plugin; an empty config folder, so no key is found by default.
    world.cliEnv["PATH"] = `${dirname(process.execPath)}:${tools.path}`;
    world.cliEnv["XDG_CONFIG_HOME"] = keys;
    const keyFile = join(keys, "age.key");
    await tool(tools.ageKeygen, ["-o", keyFile], { PATH: tools.path });
    recipient = (await tool(tools.ageKeygen, ["-y", keyFile], { PATH: tools.path })).trim();
    world.addHello(SERVICE, "Hello from the vault");
    world.edit(`services/${SERVICE}/docker-compose.yaml`, (t) => t.replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      GREETING: ${GREETING}\n"));
    writeFileSync(join(world.repo, "services", SERVICE, ".secrets.example.yaml"), "greeting: a greeting the web container gets in its environment\n");
    await encrypt(first);
    await world.start();
  });

  after(async () => {
    if (world) {
      if (world.figures.length > 0) console.log(`sops e2e figures:\n  ${world.figures.join("\n  ")}`);
      await world.close();
    }
    if (keys !== "") rmSync(keys, { recursive: true, force: true });
  });

  void it("validate needs no key; a deploy without one stops at the preview saying what to set", async () => {
    const v = await w().homelab("--env", "sandbox", "validate", SERVICE);
    assert.equal(v.code, 0, v.stderr);
    const dry = await w().homelab("--env", "sandbox", "deploy", SERVICE, "--dry-run");
    assert.equal(dry.code, 1, `${dry.stdout}\n${dry.stderr}`);
    assert.match(dry.stdout + dry.stderr, /cannot decrypt services\/vault\/\.secrets\.sops\.yaml of service vault: no age key here can decrypt it: set SOPS_AGE_KEY_FILE/);
  });

  void it("with SOPS_AGE_KEY_FILE the secret reaches the guest's secrets file and the container, and nothing else", async () => {
    w().cliEnv["SOPS_AGE_KEY_FILE"] = join(keys, "age.key");
    const { run, seen, scans } = await deploy();
    assert.ok(scans > 10, `the process arguments were looked at ${scans} times during the deploy`);
    assert.deepEqual(seen, [], "the secret was in a process's arguments");
    assert.ok(!(run.stdout + run.stderr).includes(token), "the secret was in the deploy's output");
    assert.match(run.stdout, /vault_container\.compose/);

    const c = await w().container(SERVICE);
    await waitForPage(`http://${c.address}/`, "Hello from the vault", 60_000);
    const inGuest = await w().guest(c.address, [
      "stat -c '%a %U' /opt/homelab/vault/secrets.env",
      `grep -cxF -- ${quote(`export GREETING=${quote(first)}`)} /opt/homelab/vault/secrets.env`,
      `docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' $(docker ps -q) | grep -cxF -- ${quote(`GREETING=${first}`)}`,
      // Nothing in the guest runs with it in its arguments either (the pattern is split so this grep does not match itself).
      `ps -eo args | grep -c ${quote(`${token.slice(0, 3)}[${token.slice(3, 4)}]${token.slice(4)}`)} || true`,
    ].join("\n"));
    assert.equal(inGuest.code, 0, inGuest.stderr);
    assert.deepEqual(inGuest.stdout.trim().split("\n"), ["600 root", "1", "1", "0"]);

    // The state (Pulumi's, the sandbox's), the logs and every other file of the repository: never the value
    // in plain text. Only the guests' own disks (the sandbox's LXC containers) hold it, as a Proxmox node's would.
    assert.deepEqual(filesContaining(w().repo, token, guestDisks()), []);
  });

  void it("a second deploy with nothing changed changes nothing; a new value encrypted in its place is rolled out", async () => {
    const again = await deploy();
    assert.match(again.run.stdout, /no changes|unchanged/);
    assert.doesNotMatch(again.run.stdout, /updated|created|replaced/);

    await encrypt(second);
    const dry = await w().homelab("--env", "sandbox", "deploy", SERVICE, "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /~ update\s+vault_container\.compose/);
    assert.match(dry.stdout, /no change\s+vault_container\n/);
    assert.ok(!(dry.stdout + dry.stderr).includes(rotated));
    const rolled = await w().homelab("--env", "sandbox", "deploy", SERVICE, "--yes");
    assert.equal(rolled.code, 0, `${rolled.stdout}\n${rolled.stderr}`);
    assert.ok(!(rolled.stdout + rolled.stderr).includes(rotated));
    const c = await w().container(SERVICE);
    const env = await w().guest(c.address, "docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' $(docker ps -q) | grep '^GREETING='");
    assert.equal(env.stdout.trim(), `GREETING=${second}`);
    assert.deepEqual(filesContaining(w().repo, rotated, guestDisks()), []);
  });
});
