import { describeBackend } from "../config/state-backend.ts";
import type { BackendConfig } from "../config/backend-setting.ts";
import type { SecretsContext } from "../config/secrets.ts";
import { chooseBackend } from "../engine/settings.ts";

/** What resolving secrets needs to know of the run: the kind of state backend a deploy would use (light: no Pulumi). */
export function secretsContext(root: string, env: NodeJS.ProcessEnv, setting?: BackendConfig): SecretsContext {
  return { backend: describeBackend(chooseBackend(root, env, setting).url) };
}
