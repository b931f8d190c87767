/**
 * Command checks over SSH: the provisioning layer's executor (ssh2, the
 * environment's key in `.homelab/ssh/<env>/id_ed25519`, host keys pinned in
 * its known_hosts), one short session per check. The command goes on stdin to
 * `sh -s`, so it never shows in a process list.
 */
import { readFileSync } from "node:fs";
import { knownHostsFile, sshKeyFile } from "../config/homelab-dir.ts";
import { connectSsh, KnownHosts } from "../provision/ssh.ts";
import type { CommandExecutor } from "./checks.ts";

/** The real executor for command checks. The key is read on first use. */
export function sshCommandExecutor(root: string, envName: string, o: { port?: number } = {}): CommandExecutor {
  const keyFile = sshKeyFile(root, envName);
  const knownHosts = new KnownHosts(knownHostsFile(root, envName));
  let key: Buffer | undefined;
  return {
    async run(target, command, run) {
      if (key === undefined) {
        try {
          key = readFileSync(keyFile);
        } catch {
          throw new Error(`cannot read the environment's SSH key ${keyFile}; it is made by the first deploy`);
        }
      }
      // No retries beyond the check's own timeout: a container that does not answer in time is failing.
      const ex = await connectSsh(
        { host: target.address, ...(o.port !== undefined ? { port: o.port } : {}), privateKey: key, privateKeyFile: keyFile, knownHosts },
        { timeoutMs: run.timeoutMs, attemptTimeoutMs: run.timeoutMs },
      );
      const onAbort = (): void => void ex.close();
      run.signal.addEventListener("abort", onAbort, { once: true });
      try {
        const r = await ex.run(command, { check: false, timeoutMs: run.timeoutMs, what: "a health check" });
        return { code: r.code, output: `${r.stdout}${r.stderr}` };
      } finally {
        run.signal.removeEventListener("abort", onAbort);
        await ex.close();
      }
    },
  };
}
