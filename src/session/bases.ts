/**
 * Building Docker-ready bases before a deploy applies: for each planned
 * compose container whose base (by content key) is not on its node yet, a
 * container is made from the distribution template, Docker and Compose are
 * installed and smoke-tested over SSH exactly as provisioning does, it is
 * cleaned of what clones must not share, stopped and turned into a
 * template tagged with its key. Once per node and key: a file lock keeps two
 * runs on this machine from building the same base, and the cluster is asked
 * again under it. Listing and pruning bases is here too.
 */
import { mkdir, mkdtemp, open, readFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EnvironmentConfig } from "../config/environment.ts";
import { homelabDir } from "../config/homelab-dir.ts";
import type { PlannedContainer, ServicePlan } from "../plan/types.ts";
import type { ProxmoxClient } from "../proxmox/client.ts";
import { BASE_DISK_GB, BASE_TAG, baseDescription, baseHostname, baseKeyTag, cleanBaseScript, findBaseResource, keyOfTags } from "../provision/base.ts";
import type { BaseSpec } from "../provision/base.ts";
import { parseTags } from "../proxmox/lxc-format.ts";
import { eth0Address } from "../provider/lxc-mapping.ts";
import { ensureDocker } from "../provision/deploy.ts";
import { templateRelease } from "../plan/guest-system.ts";
import { KnownHosts, connectSsh } from "../provision/ssh.ts";
import { processAlive } from "../engine/locks.ts";
import type { SshKey } from "../provision/ssh-key.ts";

/** One base a deploy needs: where, its key and what it is made of, and the bridge its builder uses. */
export interface BaseNeed {
  node: string;
  key: string;
  spec: BaseSpec;
  bridge: string;
  /** The services whose containers clone it. */
  services: string[];
}

/** A base on the cluster. */
export interface BaseInfo {
  node: string;
  vmid: number;
  key: string;
  description: string;
  /** Containers of homelab cloned from it that Proxmox still links to it, when known. */
  usedBy: number;
}

/** The bases the plans clone from that are not on their nodes yet (each node and key once). Pure. */
export function missingBases(plans: readonly ServicePlan[]): BaseNeed[] {
  const out = new Map<string, BaseNeed>();
  for (const p of plans) {
    for (const r of p.resources) {
      if (r.kind !== "proxmox:container") continue;
      const c: PlannedContainer = r;
      if (c.base?.mode !== "clone" || c.base.vmid !== undefined) continue;
      const id = `${c.inputs.node}/${c.base.key}`;
      const need = out.get(id) ?? { node: c.inputs.node, key: c.base.key, spec: c.base.spec, bridge: c.inputs.bridge, services: [] };
      if (!need.services.includes(p.service)) need.services.push(p.service);
      out.set(id, need);
    }
  }
  return [...out.values()];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Builds and finds bases over one Proxmox client. */
export class BaseBuilder {
  private readonly client: ProxmoxClient;
  private readonly env: EnvironmentConfig;
  private readonly root: string;
  private readonly key: SshKey;
  private readonly say: (message: string) => void;

  constructor(o: { client: ProxmoxClient; env: EnvironmentConfig; root: string; key: SshKey; say: (message: string) => void }) {
    this.client = o.client;
    this.env = o.env;
    this.root = o.root;
    this.key = o.key;
    this.say = o.say;
  }

  /** The bases of this environment's nodes (all homelab bases on the cluster: they carry no environment). */
  async list(): Promise<BaseInfo[]> {
    const all = await this.client.cluster.resources({ type: "vm" });
    const bases = all.filter((r) => r.type === "lxc" && r.template === true && r.node !== undefined && r.vmid !== undefined && keyOfTags(parseTags(r.tags)) !== undefined);
    // The root volumes of the containers on each node with a base, read once per node however many bases it has.
    const rootsOn = new Map<string, Promise<string[]>>();
    const rootVolumes = (node: string): Promise<string[]> => {
      let roots = rootsOn.get(node);
      if (roots === undefined) {
        const guests = all.filter((g) => g.type === "lxc" && g.node === node && g.template !== true && g.vmid !== undefined);
        roots = Promise.all(guests.map(async (g) => (await this.client.lxc.config(node, Number(g.vmid)).catch(() => undefined))?.rootfs?.volume ?? ""));
        rootsOn.set(node, roots);
      }
      return roots;
    };
    const out: BaseInfo[] = [];
    for (const b of bases) {
      const config = await this.client.lxc.config(b.node ?? "", Number(b.vmid)).catch(() => undefined);
      const baseVolume = config?.rootfs?.volume ?? "";
      // A linked clone's root volume names its base's (`base-105-disk-0/vm-107-disk-0`).
      const usedBy = baseVolume === "" ? 0 : (await rootVolumes(b.node ?? "")).filter((v) => v.includes(`${baseVolume.slice(baseVolume.indexOf(":") + 1)}/`)).length;
      out.push({ node: b.node ?? "", vmid: Number(b.vmid), key: keyOfTags(parseTags(b.tags)) ?? "", description: config?.description ?? "", usedBy });
    }
    return out.sort((a, b) => a.node.localeCompare(b.node) || a.vmid - b.vmid);
  }

  /** Builds each missing base, one node and key at a time; returns the services whose base could not be built, with why and what to do. */
  async ensure(needs: readonly BaseNeed[]): Promise<Map<string, { message: string; hint: string }>> {
    const failed = new Map<string, { message: string; hint: string }>();
    for (const need of needs) {
      try {
        await this.withLock(need, async () => {
          if (await this.find(need.node, need.key)) return;
          await this.build(need);
        });
      } catch (e) {
        const message = `building the Docker-ready base on ${need.node} failed: ${e instanceof Error ? e.message : String(e)}`;
        const hint = "look at the output above; to install Docker in each container instead of cloning a base, set homelab:docker_base: install";
        for (const s of need.services) failed.set(s, { message, hint });
      }
    }
    return failed;
  }

  /** The base with this key on the node, if any. */
  async find(node: string, key: string): Promise<number | undefined> {
    const entry = findBaseResource(await this.client.cluster.resources({ type: "vm" }), node, key);
    return entry?.vmid !== undefined ? Number(entry.vmid) : undefined;
  }

  /** Removes a base (refused by Proxmox while linked clones use it). */
  async remove(node: string, vmid: number): Promise<void> {
    await this.client.lxc.delete(node, vmid, { purge: true });
  }

  private async build(need: BaseNeed): Promise<void> {
    const started = Date.now();
    const { node, key, spec } = need;
    this.say(`building the Docker-ready base ${key} on ${node} (${spec.template}, Docker from ${spec.dockerSource === "docker" ? "Docker's repository" : "the distribution"}): once per node`);
    const vmid = await this.client.cluster.nextId();
    const net = this.env.docker.baseNetwork;
    await this.client.lxc.create(node, {
      vmid,
      ostemplate: spec.template,
      hostname: baseHostname(key),
      description: `homelab: building the Docker-ready base ${key}`,
      memory: 1024,
      swap: 512,
      cores: 2,
      rootfs: { storage: this.env.defaults.storage, sizeGb: BASE_DISK_GB },
      net0: { name: "eth0", bridge: need.bridge, ip: net?.ip ?? "dhcp", ...(net?.gateway !== undefined ? { gw: net.gateway } : {}) },
      unprivileged: spec.unprivileged,
      features: spec.unprivileged ? { nesting: true, keyctl: true } : { nesting: true },
      sshPublicKeys: spec.sshPublicKey,
      tags: ["homelab", BASE_TAG],
    });
    const scratch = await mkdtemp(join(tmpdir(), "homelab-base-"));
    try {
      await this.client.lxc.start(node, vmid);
      const address = net?.ip.split("/")[0] ?? (await this.address(node, vmid));
      // The builder's host key is thrown away with it: trust on first use in a scratch known_hosts.
      const ex = await connectSsh({ host: address, privateKey: await readFile(this.key.privateKeyFile), privateKeyFile: this.key.privateKeyFile, knownHosts: new KnownHosts(join(scratch, "known_hosts")) });
      let docker = "";
      try {
        const codename = templateRelease(spec.template).codename;
        const r = await ensureDocker(ex, { docker: { source: spec.dockerSource, ...(spec.pins !== undefined && codename !== undefined ? { pins: { [codename]: spec.pins } } : {}) } });
        docker = `${r.report.packages} / compose ${r.report.compose}`;
        const clean = await ex.run(cleanBaseScript(), { check: false, timeoutMs: 300_000, what: "cleaning the base" });
        if (clean.code !== 0) throw new Error(`cleaning the base failed: ${clean.stderr.trim().split("\n").slice(-3).join(" ")}`);
      } finally {
        await ex.close();
      }
      await this.client.lxc.shutdown(node, vmid, { timeoutSec: 60, forceStop: true });
      await this.client.lxc.template(node, vmid);
      // Proxmox answers at once and converts in a task of its own: wait until the config says template.
      const deadline = Date.now() + 300_000;
      while (!(await this.client.lxc.config(node, vmid)).template) {
        if (Date.now() > deadline) throw new Error(`CT ${vmid} was not a template 300 s after the conversion began: look at its vztemplate task on ${node}`);
        await sleep(500);
      }
      await this.client.lxc.updateConfig(node, vmid, { description: baseDescription(spec, key, docker, new Date()), tags: ["homelab", BASE_TAG, baseKeyTag(key)] });
      this.say(`base CT ${vmid} on ${node} built in ${((Date.now() - started) / 1000).toFixed(1)} s (${docker})`);
    } catch (e) {
      await this.client.lxc.stop(node, vmid).catch(() => undefined);
      await this.client.lxc.delete(node, vmid, { purge: true }).catch(() => undefined);
      throw e;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private async address(node: string, vmid: number): Promise<string> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const a = eth0Address(await this.client.lxc.interfaces(node, vmid));
      if (a !== undefined) return a;
      if (Date.now() > deadline) throw new Error(`the base's builder CT ${vmid} got no address on eth0 in 180 s: give it one with homelab:docker_base_network`);
      await sleep(500);
    }
  }

  /** Runs `f` holding this machine's lock on one node's base, waiting for another run that holds it. */
  private async withLock(need: BaseNeed, f: () => Promise<void>): Promise<void> {
    const dir = join(homelabDir(this.root), "locks");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `base-${need.node}-${need.key}.lock`);
    const deadline = Date.now() + 30 * 60_000;
    for (;;) {
      try {
        const h = await open(file, "wx");
        await h.writeFile(`${process.pid}\n`);
        await h.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number((await readFile(file, "utf8").catch(() => "")).trim());
        if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
          await unlink(file).catch(() => undefined);
          continue;
        }
        if (Date.now() > deadline) throw new Error(`another homelab run (pid ${pid}) has been building this base for 30 minutes`, { cause: e });
        await sleep(1000);
      }
    }
    try {
      await f();
    } finally {
      await unlink(file).catch(() => undefined);
    }
  }
}
