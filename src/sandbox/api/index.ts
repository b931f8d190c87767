/** Every served endpoint, in one router. */
import { Router } from "../router.ts";
import { accessEndpoints } from "./access.ts";
import { clusterEndpoints } from "./cluster.ts";
import { cloneEndpoints } from "./lxc/clone.ts";
import { diskEndpoints } from "./lxc/disks.ts";
import { lxcEndpoints } from "./lxc/endpoints.ts";
import { snapshotEndpoints } from "./lxc/snapshot-endpoints.ts";
import { nodeEndpoints } from "./nodes.ts";
import { storageEndpoints } from "./storage.ts";
import { vzdumpEndpoints } from "./vzdump.ts";
import type { Endpoint } from "./types.ts";

/** All endpoints the sandbox serves. */
const ENDPOINTS: Endpoint[] = [
  ...accessEndpoints,
  ...clusterEndpoints,
  ...nodeEndpoints,
  ...storageEndpoints,
  ...lxcEndpoints,
  ...snapshotEndpoints,
  ...diskEndpoints,
  ...cloneEndpoints,
  ...vzdumpEndpoints,
];

/** A router over all endpoints. */
export function apiRouter(): Router<Endpoint> {
  const router = new Router<Endpoint>();
  for (const e of ENDPOINTS) router.add(e.method, e.path, e);
  return router;
}
