import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSandboxServer } from "../../src/sandbox/server.ts";
import { CONTAINER, makeRepo } from "../helpers/repo.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));

function homelab(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, NO_COLOR: "1" } }, (e, stdout, stderr) => resolve({ code: e ? Number(e.code ?? 1) : 0, stdout, stderr }));
  });
}

test("show --plan asks the cluster and explains the template and node chosen, and why not the others", async () => {
  const sb = await startSandboxServer({ port: 0 });
  const repo = makeRepo({ "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}      resources: { memory: 1024 }\n` });
  try {
    const secret = join(repo.root, "token-secret");
    writeFileSync(secret, sb.tokenSecret + "\n", { mode: 0o600 });
    writeFileSync(
      join(repo.root, "Pulumi.sb.yaml"),
      `config:\n  homelab:proxmox:\n    endpoint: ${sb.url}\n    token_id: "${sb.tokenId}"\n    token_secret_file: ${secret}\n    fingerprint: "${sb.fingerprint}"\n  homelab:tier1_hosts: [pve-01, pve-02]\n`,
    );
    sb.counters.reset();
    const r = await homelab(["--dir", repo.root, "--env", "sb", "show", "app", "--plan"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /placement in sb \(3 nodes, 6 templates, 4 requests\)/);
    // As on a Proxmox VE 9 cluster: `*debian*` `>=12` is Debian 13.
    assert.match(r.stdout, /template +debian-13-standard_13\.1-2_amd64 — newest matching version/);
    assert.match(r.stdout, /beat debian-12-standard_12\.7-1_amd64: matches, older than 13\.1-2/);
    assert.match(r.stdout, /system +Debian 13 \(trixie\)\n/);
    assert.match(r.stdout, /not debian-11-standard_11\.7-1_amd64: version 11\.7-1 does not satisfy >=12/);
    assert.match(r.stdout, /node +pve-0[12] — chosen by most-free-memory/);
    assert.match(r.stdout, /not pve-03: missing tag tier:1/);
    // Reads only: the inventory snapshot, no write request.
    const writes = Object.entries(sb.counters.get()).filter(([k]) => !k.startsWith("GET "));
    assert.deepEqual(writes, []);
    assert.ok(!r.stdout.includes(sb.tokenSecret) && !r.stderr.includes(sb.tokenSecret));
  } finally {
    repo.cleanup();
    await sb.close();
  }
});

test("show --plan without a reachable cluster says so and fails", async () => {
  const repo = makeRepo({
    "services/app/service.yaml": `name: app\nresources:\n${CONTAINER}`,
    "Pulumi.sb.yaml": "config:\n  homelab:proxmox:\n    endpoint: https://127.0.0.1:9\n    token_id: root@pam!x\n    token_secret_env: NO_SUCH_VARIABLE_HL\n",
  });
  try {
    const r = await homelab(["--dir", repo.root, "--env", "sb", "show", "app", "--plan"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read the cluster of environment sb: token_secret_env names NO_SUCH_VARIABLE_HL, which is not set\n {2}hint: export NO_SUCH_VARIABLE_HL/);
  } finally {
    repo.cleanup();
  }
});
