/**
 * The health gate after a deploy: a service that declares health checks is
 * healthy when each check passes within a few tries (its retries, a couple
 * of seconds apart), run against the containers the deploy left, as the
 * monitor runs them. A service that fails the gate (or whose deploy failed)
 * after its deploy took a rollback point is rolled back: see rollback.ts.
 */
import { CheckRunner } from "../monitor/checks.ts";
import type { CommandExecutor } from "../monitor/checks.ts";
import type { MonitoredService } from "../monitor/config.ts";
import { checkTarget, serviceTarget } from "../monitor/targets.ts";
import type { StackState } from "../engine/state.ts";

/** The verdict on one service: healthy, or the first failing check and why. */
export type GateVerdict = { healthy: true; checks: number } | { healthy: false; check: string; detail: string };

/** How patient the gate is. */
export interface GateOptions {
  /** Between two tries of a failing check (default 2 s). */
  spacingMs?: number;
  /** Tries of each check at least (default 2; a check's `retries` + 1 when more). */
  minTries?: number;
  executor?: CommandExecutor;
  ci?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a service's checks against its deployed containers until each passes once, or its tries are used up. */
export async function healthGate(service: MonitoredService, state: StackState | undefined, o: GateOptions = {}): Promise<GateVerdict> {
  if (service.checks.length === 0) return { healthy: true, checks: 0 };
  const target = serviceTarget(service.name, state);
  const runner = new CheckRunner({ ...(o.executor ? { executor: o.executor } : {}), ci: o.ci === true });
  try {
    const verdicts = await Promise.all(
      service.checks.map(async (c) => {
        runner.prepare(c.key, c.check, service.dir);
        const tries = Math.max(o.minTries ?? 2, c.check.retries + 1);
        let detail = "";
        for (let i = 0; i < tries; i++) {
          if (i > 0) await sleep(o.spacingMs ?? 2000);
          const controller = new AbortController();
          const timer = setTimeout(() => controller.abort(), c.check.timeout * 1000 + 1000);
          try {
            const r = await runner.run(c.key, c.check, checkTarget(target, c.check.resource), controller.signal);
            if (r.ok) return undefined;
            detail = r.detail;
          } finally {
            clearTimeout(timer);
          }
        }
        return { check: c.label, detail: `${detail} (${tries} tries)` };
      }),
    );
    const failed = verdicts.find((v) => v !== undefined);
    return failed ? { healthy: false, ...failed } : { healthy: true, checks: service.checks.length };
  } finally {
    await runner.close();
  }
}
