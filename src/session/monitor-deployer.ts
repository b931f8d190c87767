/**
 * The monitor's recreate through a deploy session: the session destroys and
 * redeploys; this turns its outcome into what the monitor expects (a
 * one-line summary, an error, or DeployInProgressError when another run
 * holds the stack, so the monitor waits instead of counting a failure).
 */
import { DeployInProgressError } from "../monitor/actions.ts";
import type { ServiceDeployer } from "../monitor/actions.ts";
import type { DeploySession } from "./session.ts";

/** A ServiceDeployer over a session; no signal handling of its own (Ctrl-C and SIGTERM stay with the monitor). */
export function sessionDeployer(session: Pick<DeploySession, "recreate" | "lockHolder">): ServiceDeployer {
  return {
    lockHolder: (service) => session.lockHolder(service),
    async recreate(service) {
      const r = await session.recreate(service);
      switch (r.status) {
        case "recreated":
          return `destroyed and redeployed ${service}`;
        case "destroy-refused":
          throw new Error(`destroy refused: ${r.violations.map((v) => v.message).join("; ")}`);
        case "destroy-failed": {
          if (r.heldBy !== undefined) throw new DeployInProgressError(`destroying ${service}: a deploy holds the stack of ${service} (${r.heldBy})`);
          const error = r.outcome.error;
          throw new Error(`destroying ${service} ${r.outcome.status}${error ? `: ${firstLine(error.message)}` : ""}`);
        }
        case "redeploy-failed": {
          if (r.heldBy !== undefined) throw new DeployInProgressError(`redeploying ${service}: a deploy holds the stack of ${service} (${r.heldBy})`);
          const o = r.outcome;
          const why = [o.error?.message, ...o.problems.map((p) => `${p.resource}: ${p.message}`), ...o.diagnostics.filter((d) => d.severity === "error").map((d) => d.message)].filter((m): m is string => m !== undefined && m !== "");
          throw new Error(`destroyed ${service}, but redeploying it ${o.status === "failed" ? "failed" : `ended ${o.status}`}${why.length > 0 ? `: ${why.slice(0, 2).map(firstLine).join(" / ")}` : ""}`);
        }
      }
    },
  };
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}
