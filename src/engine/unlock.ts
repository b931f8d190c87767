/**
 * `homelab unlock SERVICE`: clears the lock a crashed run left on a stack,
 * and refuses while the run that holds it is alive. Pulumi's locks never
 * expire (pkg/backend/diy/lock.go): a lock records the pid, user and host of
 * its `pulumi` process, so a lock taken on this machine is removed once that
 * process is gone; one taken on another machine only with `--force` (homelab
 * cannot see that machine's processes). Where homelab does not read the
 * backend's locks itself (gs://, azblob://, Pulumi Cloud) nothing is known of
 * the owner: `--force` runs `pulumi cancel`.
 */
import type { Engine } from "./engine.ts";
import { describeLock, lockOwner } from "./locks.ts";
import type { LockOwner, StackLock } from "./locks.ts";
import { stackName } from "./stacks.ts";

/** The outcome of an unlock. */
export interface UnlockResult {
  stack: string;
  status: "unlocked" | "not-locked" | "refused";
  /** The locks found, each with whether its owner runs. */
  locks: { lock: StackLock; owner: LockOwner; text: string }[];
  message: string;
  hint: string | undefined;
}

/** Clears a service's stale stack lock; never one whose owner runs (nor, without force, one whose owner is unknown). */
export async function unlockService(engine: Engine, envName: string, service: string, force: boolean, alive?: (pid: number) => boolean): Promise<UnlockResult> {
  const stack = stackName(envName, service);
  if (!engine.readsLocks) {
    if (!force) {
      return {
        stack,
        status: "refused",
        locks: [],
        message: `homelab does not read the locks of ${engine.backend.display} itself, so it cannot tell who holds one and whether that run is still alive`,
        hint: `if you are sure no deploy of ${service} runs, use \`homelab unlock ${service} --force\` (runs \`pulumi cancel\`)`,
      };
    }
    await engine.cancel(stack);
    return { stack, status: "unlocked", locks: [], message: `cancelled any update of ${stack} and cleared its lock`, hint: undefined };
  }
  const locks = (await engine.locks(stack)).map((lock) => {
    const owner = lockOwner(lock, undefined, alive);
    return { lock, owner, text: describeLock(lock, owner) };
  });
  if (locks.length === 0) return { stack, status: "not-locked", locks, message: `${stack} is not locked`, hint: undefined };
  const live = locks.filter((l) => l.owner === "alive");
  if (live.length > 0) {
    return {
      stack,
      status: "refused",
      locks,
      message: `${stack} is locked by a run that is still going: ${live.map((l) => l.text).join("; ")}`,
      hint: "wait for it to finish, or stop it (Ctrl-C in its terminal); then no unlock is needed",
    };
  }
  const unknown = locks.filter((l) => l.owner === "unknown");
  if (unknown.length > 0 && !force) {
    return {
      stack,
      status: "refused",
      locks,
      message: `${stack} is locked by ${unknown.map((l) => l.text).join("; ")}`,
      hint: `homelab cannot see the processes of another machine; if you are sure that run is gone (ask its owner): homelab unlock ${service} --force`,
    };
  }
  for (const l of locks) await engine.removeLock(l.lock);
  return { stack, status: "unlocked", locks, message: `removed ${locks.length} stale lock(s) of ${stack}: ${locks.map((l) => l.text).join("; ")}`, hint: `deploy again: homelab deploy ${service}` };
}
