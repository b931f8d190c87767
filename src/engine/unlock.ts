/**
 * `homelab unlock SERVICE`: clears the lock a crashed run left on a stack,
 * and refuses while the run that holds it is alive. In a file backend the
 * lock's owner (pid and host) is known; elsewhere it is not, so `--force`
 * is required there and `pulumi cancel` does the work.
 */
import type { Engine } from "./engine.ts";
import { describeLock, lockOwner } from "./locks.ts";
import { removeLock } from "./pulumi-internals.ts";
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
  if (engine.backend.dir === undefined) {
    if (!force) {
      return {
        stack,
        status: "refused",
        locks: [],
        message: `the backend ${engine.backend.url} does not say who holds a lock, so homelab cannot tell whether that run is still alive`,
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
      hint: `homelab cannot check a run on another machine; if you are sure it is gone: homelab unlock ${service} --force`,
    };
  }
  for (const l of locks) await removeLock(l.lock);
  return { stack, status: "unlocked", locks, message: `removed ${locks.length} stale lock(s) of ${stack}: ${locks.map((l) => l.text).join("; ")}`, hint: `deploy again: homelab deploy ${service}` };
}
