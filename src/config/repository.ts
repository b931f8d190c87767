import type { Diagnostic } from "../util/diagnostics.ts";
import { emptyEnvironment, loadEnvironment, type EnvironmentConfig } from "./environment.ts";
import { discoverServices } from "./discover.ts";
import { assembleRepository, requireServices } from "./cross-service.ts";

export { RepositoryError, findRoot, discoverServices, chooseEnvironmentName } from "./discover.ts";
export { parseDependency } from "./cross-service.ts";
import { loadService } from "./service.ts";

export type { Repository } from "./cross-service.ts";
import type { Repository } from "./cross-service.ts";

/** Loads the environment and every service, and runs the checks that span services. */
export function loadRepository(opts: { root: string; envName: string | undefined; only?: readonly string[] }): Repository {
  const { root } = opts;
  const envDiagnostics: Diagnostic[] = [];
  let env: EnvironmentConfig = emptyEnvironment(opts.envName ?? "default");
  let envFromFile = false;
  if (opts.envName) {
    const loaded = loadEnvironment(root, opts.envName);
    envDiagnostics.push(...loaded.diagnostics);
    if (loaded.env) {
      env = loaded.env;
      envFromFile = true;
    }
  }
  const found = discoverServices(root);
  requireServices(root, found, opts.only);
  const loads = found.map((f) => loadService(f.file, envFromFile ? env : undefined));
  return assembleRepository({ root, env, envFromFile, envDiagnostics, loads, only: opts.only });
}
