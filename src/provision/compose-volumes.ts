/**
 * Compose named volumes placed on a container's data volume
 * (`docker.volumes_on`): an override file that homelab adds after the
 * service's own compose files turns each named volume into a bind of
 * `<volume path>/<name>`, so its data lives on the Proxmox mount point that
 * outlives the container; and the script lines that, the first time, move
 * the data of a volume Docker made earlier (before volumes_on) into that
 * folder, so turning volumes_on on loses nothing. Pure.
 */
import { posix } from "node:path";
import { isMap, isScalar, parseDocument } from "yaml";
import { stringify } from "yaml";
import { ComposeInputError } from "./compose-files.ts";
import { quote } from "./shell.ts";

/** The override file's name in the deployment folder. */
export const VOLUMES_FILE = "homelab-volumes.yaml";

/** A compose named volume and where its data lives in the container. */
export interface PlacedVolume {
  /** Its key under the compose files' top-level `volumes:`. */
  key: string;
  /** The name Docker knows it by: its `name:`, else `<project>_<key>`. */
  dockerName: string;
  /** The folder on the data volume. */
  dir: string;
}

/** The named volumes the compose files declare (all files, in order, each once), placed under `volumesDir`. Pure. */
export function placedVolumes(files: ReadonlyArray<{ path: string; content: string }>, project: string, volumesDir: string): PlacedVolume[] {
  const out = new Map<string, PlacedVolume>();
  for (const f of files) {
    const doc = parseDocument(f.content);
    if (doc.errors.length > 0) throw new ComposeInputError(`compose file ${f.path} is not valid YAML: ${doc.errors[0]?.message ?? ""}`);
    const volumes = doc.get("volumes");
    if (!isMap(volumes)) continue;
    for (const item of volumes.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(key)) throw new ComposeInputError(`compose file ${f.path}: volume name ${JSON.stringify(key)} is not one Docker takes`);
      const def = item.value;
      const named = isMap(def) ? def.get("name") : undefined;
      out.set(key, { key, dockerName: typeof named === "string" ? named : `${project}_${key}`, dir: posix.join(volumesDir, key) });
    }
  }
  return [...out.values()];
}

/** The override compose file: each named volume a bind of its folder on the data volume. Pure. */
export function volumesOverride(volumes: readonly PlacedVolume[]): string {
  const defs: Record<string, unknown> = {};
  for (const v of volumes) defs[v.key] = { driver: "local", driver_opts: { type: "none", o: "bind", device: v.dir } };
  return `# Written by homelab: the project's named volumes live on the container's data volume (docker.volumes_on).\n${stringify({ volumes: defs })}`;
}

/**
 * Shell lines run before the project starts: make each volume's folder, and move the data of a
 * volume Docker made before volumes_on (a plain local volume of the same name) into it. The
 * move needs the project stopped; it copies into an empty folder only and removes the old
 * volume only after the copy succeeded. A folder that already holds data while an old volume
 * does too is a conflict left for a human: nothing is deleted.
 */
export function migrationLines(volumes: readonly PlacedVolume[], unit: string): string[] {
  const lines: string[] = [];
  for (const v of volumes) {
    const name = quote(v.dockerName);
    const dir = quote(v.dir);
    lines.push(
      `mkdir -p ${dir}`,
      `if docker volume inspect ${name} >/dev/null 2>&1 && [ "$(docker volume inspect -f '{{index .Options "device"}}' ${name})" != ${dir} ]; then`,
      `  if [ -n "$(ls -A ${dir})" ]; then echo "homelab: both Docker's volume ${v.dockerName} and ${v.dir} hold data; move what you need into ${v.dir}, then remove the volume (docker volume rm ${v.dockerName})" >&2; exit 1; fi`,
      `  systemctl stop ${quote(unit)} 2>/dev/null || true`,
      `  docker ps -aq --filter volume=${name} | xargs -r docker rm -f >/dev/null`,
      `  cp -a "$(docker volume inspect -f '{{.Mountpoint}}' ${name})/." ${dir}/`,
      `  docker volume rm ${name} >/dev/null`,
      `  printf 'HOMELAB-MIGRATED %s\\n' ${quote(v.key)}`,
      "fi",
    );
  }
  return lines;
}
