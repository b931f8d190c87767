/** Every served endpoint, in one router. */
import { Router } from "../router.ts";
import { accessEndpoints } from "./access.ts";
import { clusterEndpoints } from "./cluster.ts";
import { lxcEndpoints } from "./lxc/endpoints.ts";
import { nodeEndpoints } from "./nodes.ts";
import type { Endpoint } from "./types.ts";

/** All endpoints the sandbox serves. */
const ENDPOINTS: Endpoint[] = [...accessEndpoints, ...clusterEndpoints, ...nodeEndpoints, ...lxcEndpoints];

/** A router over all endpoints. */
export function apiRouter(): Router<Endpoint> {
  const router = new Router<Endpoint>();
  for (const e of ENDPOINTS) router.add(e.method, e.path, e);
  return router;
}
