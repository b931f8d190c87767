/**
 * Restoring a container from a vzdump archive (`POST /nodes/{node}/lxc`
 * with `restore=1`), as pve-container's `create_vm` and `PVE::LXC::Create`
 * do it: the config comes from the archive's `etc/vzdump/pct.conf`, every
 * mount point of it gets a new volume of its recorded size on `storage`
 * (bind mounts are kept as they were, root@pam only), the archive is
 * unpacked into them, and the archive's options fill in whatever the request
 * did not give; a template's archive becomes a template again. With
 * `force=1` over an existing (stopped) container, that container's volumes
 * (everything its config names, unused disks included, backed up or not)
 * are destroyed once the new ones exist.
 */
import { volumeRef } from "../../cluster.ts";
import type { ConfigValue, GuestState, Volume } from "../../cluster.ts";
import { generateMac, parseDiskSize } from "../../formats.ts";
import type { PlacedVolume } from "../../guest-backend.ts";
import { parseConfig } from "../../pct-conf.ts";
import type { TaskWork } from "../../tasks.ts";
import type { SandboxState } from "../types.ts";
import { makeTemplate } from "./clone.ts";
import { isRunning } from "./checks.ts";
import { fillCreateDefaults, guestSpec } from "./config.ts";
import { startGuest } from "./lifecycle.ts";
import { configRule, propertyOf, render } from "./schema.ts";
import { allocateVolumes, destroyVolumes, freeVolume, mountKeys, mountType, refOf, sizeGb, volumeOf } from "./volumes.ts";

/** A restore as the handler checked it. */
export interface RestorePlan {
  /** The backup volume named as `ostemplate` (`local:backup/vzdump-lxc-...`). */
  archive: { volid: string; storage: string; file: string };
  /** Where new volumes go (`storage`, default `local`). */
  storage: string;
  /** `rootfs` / `mp[n]` given with the request; none means "as in the archive". */
  mounts: Record<string, string>;
  /** Options given with the request, stored form. */
  config: Record<string, ConfigValue>;
  unprivileged: boolean | undefined;
  unique: boolean;
  start: boolean;
  isRoot: boolean;
  /** The container existed before (`force`). */
  existed: boolean;
}

/** A value read from a config file, typed as the sandbox keeps it (numbers and 0/1 flags). */
function typed(key: string, text: string): ConfigValue {
  const rule = configRule(key);
  if (rule?.type === "boolean") return /^(1|on|yes|true)$/i.test(text) ? 1 : 0;
  if (rule?.type === "integer" || rule?.type === "number") return Number(text);
  return text;
}

/** The mount points to create from the archive's config (`storage_only_mode`): volumes on `storage` at their recorded size; bind mounts delayed. */
function mountsFromArchive(orig: Record<string, string>, plan: RestorePlan, warn: (m: string) => void): { create: Record<string, string>; delayed: Record<string, string> } {
  const create: Record<string, string> = {};
  const delayed: Record<string, string> = {};
  for (const key of mountKeys(orig)) {
    const values = propertyOf(key, String(orig[key]));
    const type = mountType(String(values["volume"]));
    if (type === "volume") {
      const size = values["size"];
      if (size === undefined) throw new Error(`unable to detect disk size - please specify ${key} (size)`);
      delete values["size"];
      values["volume"] = `${plan.storage}:${sizeGb(parseDiskSize(String(size)))}`;
      create[key] = render(values, ["volume"]);
    } else {
      if (key === "rootfs") throw new Error(`restoring rootfs to ${type} mount is only possible by specifying -rootfs manually!`);
      if (!plan.isRoot) throw new Error(`restoring '${key}' to ${type} mount is only possible for root`);
      if (values["backup"] === true) {
        warn("WARNING - unsupported configuration!");
        warn(`backup was enabled for ${type} mount point ${key} ('${String(values["mp"])}')`);
        warn("mount point configuration will be restored after archive extraction!");
        warn("contained files will be restored to wrong directory!");
      }
      delayed[key] = render(values, ["volume"]);
    }
  }
  if (create["rootfs"] === undefined) throw new Error("rootfs configuration could not be recovered, please check and specify manually!");
  return { create, delayed };
}

/**
 * Merges the archive's options into the new config (`sanitize_and_merge_config`):
 * what the request gave wins; volumes, unused disks, snapshots, `parent`,
 * `template` and `unprivileged` never come from the archive; `unique` gives
 * every NIC from the archive a new MAC.
 */
function mergeConfig(conf: Record<string, ConfigValue>, orig: Record<string, string>, unique: boolean): void {
  for (const [key, text] of Object.entries(orig)) {
    if (["digest", "rootfs", "snapshots", "unprivileged", "parent", "template", "lock"].includes(key) || /^(mp|unused)\d+$/.test(key)) continue;
    if (unique && /^net\d+$/.test(key)) {
      const net = propertyOf(key, text);
      net["hwaddr"] = generateMac();
      conf[key] = render(net, ["name"]);
      continue;
    }
    conf[key] ??= typed(key, text);
  }
}

/** The work of a `vzrestore` task for `g`, which holds `lock: create` (over the old config when it existed). */
export function restoreWork(state: SandboxState, g: GuestState, plan: RestorePlan): TaskWork {
  const { vmid, node } = g;
  let allocated: Volume[] = [];
  let modified = false;
  let made = false;
  return {
    errorPrefix: `unable to restore CT ${vmid} -`,
    async run(ctx) {
      if (await isRunning(state, g)) throw new Error("can't overwrite running container");
      const ref = { node, storage: plan.archive.storage, file: plan.archive.file };
      if (!state.cluster.backup(node, plan.archive.volid)) throw new Error(`can't find file '${plan.archive.volid}'`);
      ctx.log(`recovering backed-up configuration from '${plan.archive.volid}'`);
      const orig = parseConfig(await state.cluster.backend.readBackupConfig(ref));
      const unprivileged = plan.unprivileged ?? orig["unprivileged"] === "1";
      let wanted = plan.mounts;
      let delayed: Record<string, string> = {};
      if (Object.keys(wanted).length === 0) ({ create: wanted, delayed } = mountsFromArchive(orig, plan, (m) => ctx.warn(m)));
      // From here on a failure removes the config, as Proxmox does.
      modified = true;
      const volumes = await allocateVolumes(state, node, vmid, wanted, ctx);
      allocated = volumes.allocated;
      const old = g.config;
      if (Object.keys(old).some((k) => k !== "lock")) {
        if (g.created) await state.cluster.backend.destroy(vmid);
        g.created = false;
        await destroyVolumes(state, { ...g, config: old, pending: g.pending }, ctx, false);
        g.config = { lock: "create" };
        g.pending = {};
        g.pendingDelete = [];
        g.snapshots = {};
      }
      ctx.log(`restoring '${plan.archive.volid}' now..`);
      const placed: PlacedVolume[] = [];
      for (const key of mountKeys(volumes.values)) {
        if (key === "rootfs") continue;
        const volid = volumeOf(key, volumes.values[key] ?? "");
        const r = refOf(state, node, volid);
        if (r) placed.push({ path: String(propertyOf(key, volumes.values[key] ?? "")["mp"]), volume: r });
      }
      const rootVol = state.cluster.volume(node, volumeOf("rootfs", volumes.values["rootfs"] ?? ""));
      if (!rootVol) throw new Error("rootfs volume missing");
      await state.cluster.backend.restoreBackup(ref, { rootfs: volumeRef(rootVol), mounts: placed });
      ctx.log("merging backed-up and given configuration..");
      const conf: Record<string, ConfigValue> = { ...plan.config, ...volumes.values };
      mergeConfig(conf, orig, plan.unique);
      if (unprivileged) conf["unprivileged"] = 1;
      else delete conf["unprivileged"];
      fillCreateDefaults(conf, vmid);
      Object.assign(conf, delayed);
      await state.cluster.backend.create(guestSpec(state, g, conf, { template: undefined, sshPublicKeys: "", unprivileged }));
      made = true;
      g.config = conf;
      g.created = true;
      // A template's backup comes back as a template.
      if (orig["template"] === "1") {
        ctx.log("Convert restored container to template...");
        g.config = await makeTemplate(state, g, conf, ctx);
      }
      if (plan.start) await startGuest(state, g, ctx);
    },
    async onError() {
      if (made) await state.cluster.backend.destroy(vmid);
      for (const v of allocated) await freeVolume(state, v).catch(() => undefined);
      if (modified || !plan.existed) {
        if (g.created && !made) await state.cluster.backend.destroy(vmid).catch(() => undefined);
        state.cluster.guests.delete(vmid);
      } else {
        delete g.config["lock"];
      }
    },
  };
}
