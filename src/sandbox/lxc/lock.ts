/**
 * An exclusive file lock shared with other processes (and shell scripts) via
 * flock(1). Node has no flock, so a small `flock` child holds the lock for
 * us: it takes the lock, says so, and keeps it until its stdin closes, which
 * also happens when this process dies, so a crash never leaves it held.
 */
import { spawn } from "node:child_process";

/** The argv of the lock holder: prints `locked` once it holds `lockFile`, exits when stdin closes. */
export function lockHolderArgv(lockFile: string): string[] {
  return ["flock", "--exclusive", lockFile, "sh", "-c", "echo locked; exec cat >/dev/null"];
}

/** A held lock. */
export interface HeldLock {
  release(): Promise<void>;
}

/** Waits for the exclusive lock on `lockFile` (up to `timeoutMs`), calling `onWait` once if it has to wait. */
export function acquireFileLock(lockFile: string, options: { timeoutMs?: number; onWait?: () => void } = {}): Promise<HeldLock> {
  const [file, ...args] = lockHolderArgv(lockFile);
  return new Promise((resolve, reject) => {
    const child = spawn(file as string, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    let held = false;
    const waitTimer = setTimeout(() => options.onWait?.(), 500);
    const timeout = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out waiting for the lock ${lockFile}`));
    }, options.timeoutMs ?? 30 * 60_000);
    const exited = new Promise<void>((done) => child.on("close", () => done()));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) => {
      clearTimeout(waitTimer);
      clearTimeout(timeout);
      reject(new Error(`could not run flock for ${lockFile}: ${err.message}`));
    });
    child.on("close", (code) => {
      if (held) return;
      clearTimeout(waitTimer);
      clearTimeout(timeout);
      reject(new Error(`flock ${lockFile} exited with ${code ?? "a signal"}: ${stderr.trim()}`));
    });
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (held || !d.includes("locked")) return;
      held = true;
      clearTimeout(waitTimer);
      clearTimeout(timeout);
      resolve({
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
  });
}
