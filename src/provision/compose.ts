/**
 * A Docker Compose deployment as data: the files to put in the container
 * (compose files, the secrets file, the `compose` wrapper, the systemd unit,
 * registry settings) and their content hash. All pure: the scripts that
 * apply, wait for and remove it are compose-scripts.ts's, run by deploy.ts.
 *
 * Layout inside the container, for service `peach`:
 *   /opt/homelab/peach/<compose files, relative paths kept>   0644
 *   /opt/homelab/peach/secrets.env    `export KEY='value'` lines   0600
 *   /opt/homelab/peach/compose        runs compose for the project  0755
 *   /etc/systemd/system/homelab-peach.service
 *   /etc/docker/daemon.json           only for insecure registries
 *   /root/.docker/config.json         only for registries with credentials, 0600
 *
 * The secrets file is compose-secrets.ts's (why not `.env` is said there), the
 * image rewriting compose-images.ts's, the other files and the hashes
 * compose-files.ts's.
 */
import { posix } from "node:path";
import { ComposeInputError, composeProjectName, composeWrapper, daemonJson, deploymentDir, dockerConfigJson, hashFiles, normalizeRelative, systemdUnit, unitName } from "./compose-files.ts";
import type { DeployFile, DeploymentHashes, RegistryAccess } from "./compose-files.ts";
import { rewriteImages } from "./compose-images.ts";
import type { BuiltImage, ImageRewrite } from "./compose-images.ts";
import { secretsFile } from "./compose-secrets.ts";
import { VOLUMES_FILE, placedVolumes, volumesOverride } from "./compose-volumes.ts";
import type { PlacedVolume } from "./compose-volumes.ts";
import type { SecretValues } from "./compose-secrets.ts";

/** Everything a compose deployment is made from. */
export interface ComposeDeploymentInput {
  service: string;
  /** Compose files in order, paths relative to service.yaml. */
  composeFiles: ReadonlyArray<{ path: string; content: string }>;
  /** Secret values by key (as in `.secrets.example.yaml`); exported as the key upper-cased. */
  secrets: SecretValues;
  images?: readonly BuiltImage[];
  registries?: readonly RegistryAccess[];
  /** Default /opt/homelab. */
  baseDir?: string;
  /** Seconds `up` may take (pulls included) before systemd gives up (default 1800). */
  startTimeoutSec?: number;
  /** The folder (a data volume's mount path) that holds the project's named volumes (`docker.volumes_on`). */
  volumesDir?: string;
}

/** A compose deployment, ready to apply. */
export interface ComposeDeployment {
  service: string;
  project: string;
  dir: string;
  unitName: string;
  /** Absolute paths of the compose files inside the container, in order. */
  composePaths: string[];
  /** Variables the secrets file exports. */
  secretVariables: string[];
  files: DeployFile[];
  rewrites: ImageRewrite[];
  /** The named volumes placed on the data volume (empty without `volumesDir`). */
  volumes: PlacedVolume[];
  /** Things the user should know (e.g. a `build:` the container cannot do). */
  warnings: string[];
  hashes: DeploymentHashes;
}

/** Builds the deployment of a service's compose project: files, rewrites, hashes. */
export function buildComposeDeployment(input: ComposeDeploymentInput): ComposeDeployment {
  const project = composeProjectName(input.service);
  const dir = deploymentDir(input.service, input.baseDir);
  if (input.composeFiles.length === 0) throw new ComposeInputError(`service ${input.service} has docker.compose but no compose files`);
  const images = input.images ?? [];
  const registries = input.registries ?? [];
  const files: DeployFile[] = [];
  const rewrites: ImageRewrite[] = [];
  const warnings: string[] = [];
  const composePaths: string[] = [];
  const reserved = new Set(["secrets.env", "compose"]);
  for (const f of input.composeFiles) {
    const rel = normalizeRelative(f.path, "compose file");
    if (reserved.has(rel) || rel === VOLUMES_FILE) throw new ComposeInputError(`compose file "${f.path}" has a name homelab uses for its own files (${[...reserved].join(", ")}): rename it`);
    const abs = posix.join(dir, rel);
    if (composePaths.includes(abs)) throw new ComposeInputError(`compose file "${f.path}" is listed twice`);
    const r = rewriteImages(rel, f.content, images);
    rewrites.push(...r.rewrites);
    warnings.push(...r.warnings);
    composePaths.push(abs);
    files.push({ path: abs, content: r.content, mode: 0o644, role: "compose", secret: false });
  }
  const volumes = input.volumesDir !== undefined ? placedVolumes(input.composeFiles, project, input.volumesDir) : [];
  if (volumes.length > 0) {
    // Last, so its volume definitions win over the service's own.
    const abs = posix.join(dir, VOLUMES_FILE);
    composePaths.push(abs);
    files.push({ path: abs, content: volumesOverride(volumes), mode: 0o644, role: "volumes", secret: false });
  }
  const secrets = secretsFile(input.secrets);
  files.push({ path: posix.join(dir, "secrets.env"), content: secrets.content, mode: 0o600, role: "secrets", secret: true });
  files.push({ path: posix.join(dir, "compose"), content: composeWrapper({ service: input.service, dir, composePaths }), mode: 0o755, role: "wrapper", secret: false });
  files.push({
    path: `/etc/systemd/system/${unitName(input.service)}`,
    content: systemdUnit({ service: input.service, dir, ...(input.startTimeoutSec !== undefined ? { startTimeoutSec: input.startTimeoutSec } : {}) }),
    mode: 0o644,
    role: "unit",
    secret: false,
  });
  const daemon = daemonJson(registries);
  if (daemon !== undefined) files.push({ path: "/etc/docker/daemon.json", content: daemon, mode: 0o644, role: "daemon-json", secret: false });
  const config = dockerConfigJson(registries);
  if (config !== undefined) files.push({ path: "/root/.docker/config.json", content: config, mode: 0o600, role: "docker-config", secret: true });
  return {
    service: input.service,
    project,
    dir,
    unitName: unitName(input.service),
    composePaths,
    secretVariables: secrets.variables,
    files,
    rewrites,
    volumes,
    warnings,
    hashes: hashFiles(files),
  };
}
