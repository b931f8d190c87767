/**
 * The two kinds of locks a container has on Proxmox, as the workers use
 * them: the config file lock, held only while a config is read and written
 * (`lock_config`), and the `lock:` entry in the config, which marks a long
 * operation (`snapshot`, `backup`, `disk`...) and makes everything else
 * refuse the container (`set_lock` / `remove_lock`).
 */
import type { GuestState } from "../../cluster.ts";
import type { SandboxState } from "../types.ts";
import { checkLock } from "./checks.ts";

/** Runs `body` holding a container's config file lock (`lock_config`), waiting up to the lock timeout. */
export async function withFileLock<T>(state: SandboxState, vmid: number, body: () => Promise<T> | T): Promise<T> {
  const release = await state.cluster.fileLock(vmid).acquire(state.lockTimeoutMs);
  try {
    return await body();
  } finally {
    release();
  }
}

/** Sets the `lock:` entry under the config file lock; a container locked already refuses (`set_lock`). */
export async function setLock(state: SandboxState, node: string, vmid: number, lock: string): Promise<GuestState> {
  return withFileLock(state, vmid, () => {
    const g = state.cluster.guest(node, vmid);
    checkLock(g);
    g.config["lock"] = lock;
    return g;
  });
}

/** Removes the `lock:` entry, which must be `lock` (`remove_lock`). */
export async function removeLock(state: SandboxState, node: string, vmid: number, lock: string): Promise<void> {
  await withFileLock(state, vmid, () => {
    const g = state.cluster.guest(node, vmid);
    const now = g.config["lock"];
    if (now === undefined) throw new Error(`no lock found trying to remove '${lock}' lock`);
    if (now !== lock) throw new Error(`found lock '${String(now)}' trying to remove '${lock}' lock`);
    delete g.config["lock"];
  });
}
