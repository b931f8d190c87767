/** `/nodes`, a node's status and notes, templates (aplinfo) and tasks. */
import { configDigest } from "../pct-conf.ts";
import { failure, paramError } from "../errors.ts";
import type { TemplateInfo } from "../guest-backend.ts";
import { checkConfigIdList, splitList } from "../formats.ts";
import { parseUpid } from "../tasks.ts";
import { NODE, STORAGE, VMID, checkNode, flag, num, reqStr, str } from "./common.ts";
import { PVE_VERSION } from "./cluster.ts";
import type { Scalar } from "../params.ts";
import type { TaskRecord } from "../tasks.ts";
import type { Endpoint, Reply, SandboxState } from "./types.ts";

const GiB = 1024 ** 3;

/** Templates the sandbox offers for download (`GET /nodes/{node}/aplinfo`). */
const APPLIANCES: { os: string; package: string; version: string; headline: string; size: number }[] = [
  { os: "debian-11", package: "debian-11-standard", version: "11.7-1", headline: "Debian 11 Bullseye (standard)", size: 126_268_434 },
  { os: "debian-12", package: "debian-12-standard", version: "12.7-1", headline: "Debian 12 Bookworm (standard)", size: 123_461_212 },
  { os: "debian-13", package: "debian-13-standard", version: "13.1-2", headline: "Debian 13 Trixie (standard)", size: 129_113_090 },
  { os: "ubuntu-22.04", package: "ubuntu-22.04-standard", version: "22.04-1", headline: "Ubuntu 22.04 Jammy (standard)", size: 129_824_858 },
  { os: "ubuntu-24.04", package: "ubuntu-24.04-standard", version: "24.04-2", headline: "Ubuntu 24.04 Noble (standard)", size: 141_102_374 },
  { os: "ubuntu-25.04", package: "ubuntu-25.04-standard", version: "25.04-1.1", headline: "Ubuntu 25.04 Plucky (standard)", size: 152_004_417 },
  { os: "alpine-3.22", package: "alpine-3.22-default", version: "20250617", headline: "Alpine Linux 3.22 (default)", size: 3_144_272 },
];

function applianceFile(a: (typeof APPLIANCES)[number]): string {
  return `${a.package}_${a.version}_amd64.tar.${a.os.startsWith("alpine") ? "xz" : "zst"}`;
}

/** The endpoints of this module. */
export const nodeEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/nodes",
    params: { rules: {} },
    async handle({ state }) {
      const data: Record<string, unknown>[] = [];
      for (const [name, node] of state.cluster.nodes) {
        const usage = await state.cluster.nodeUsage(name);
        data.push({
          node: name,
          id: `node/${name}`,
          type: "node",
          status: "online",
          cpu: usage.cpu,
          maxcpu: node.spec.cores,
          mem: usage.mem,
          maxmem: node.spec.memory,
          disk: 4 * GiB,
          maxdisk: node.spec.localSize,
          uptime: state.cluster.uptime(name),
          level: "",
        });
      }
      return { data };
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/status",
    params: { rules: { node: NODE } },
    async handle({ params, state }) {
      const name = checkNode(state, params);
      const spec = state.cluster.node(name).spec;
      const usage = await state.cluster.nodeUsage(name);
      const load = (usage.cpu * spec.cores).toFixed(2);
      return {
        data: {
          cpu: usage.cpu,
          cpuinfo: { cpus: spec.cores, cores: spec.cores / spec.sockets, sockets: spec.sockets, model: spec.cpuModel, mhz: String(spec.mhz), hvm: "1", flags: "" },
          memory: { total: spec.memory, used: usage.mem, free: spec.memory - usage.mem, available: spec.memory - usage.mem },
          swap: { total: 8 * GiB, used: 0, free: 8 * GiB },
          rootfs: { total: spec.localSize, used: 4 * GiB, free: spec.localSize - 4 * GiB, avail: spec.localSize - 4 * GiB },
          ksm: { shared: 0 },
          loadavg: [load, load, load],
          uptime: state.cluster.uptime(name),
          idle: 0,
          wait: 0,
          kversion: "Linux 6.14.11-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 (2025-10-10T08:04Z) x86_64",
          "current-kernel": { sysname: "Linux", release: "6.14.11-4-pve", version: "#1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4", machine: "x86_64" },
          pveversion: `pve-manager/${PVE_VERSION.version}/${PVE_VERSION.repoid}`,
          "boot-info": { mode: "efi", secureboot: 0 },
        },
      };
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/config",
    params: {
      rules: {
        node: NODE,
        property: { type: "string", optional: true, enum: ["acme", "acmedomain0", "acmedomain1", "acmedomain2", "acmedomain3", "acmedomain4", "acmedomain5", "ballooning-target", "description", "startall-onboot-delay", "wakeonlan"] },
      },
    },
    handle({ params, state }) {
      const node = state.cluster.node(checkNode(state, params));
      const config: Record<string, string> = {};
      if (node.description !== undefined) config["description"] = node.description;
      const property = str(params, "property");
      if (property !== undefined && property !== "description") return Promise.resolve({ data: {} });
      return Promise.resolve({ data: { ...config, digest: configDigest(config) } });
    },
  },
  {
    method: "PUT",
    path: "/nodes/{node}/config",
    params: {
      rules: {
        node: NODE,
        acme: { type: "string", optional: true },
        "ballooning-target": { type: "integer", optional: true, minimum: 0, maximum: 100 },
        delete: { type: "string", optional: true, format: checkConfigIdList },
        description: { type: "string", optional: true, maxLength: 65536 },
        digest: { type: "string", optional: true, maxLength: 40 },
        "startall-onboot-delay": { type: "integer", optional: true, minimum: 0, maximum: 300 },
        wakeonlan: { type: "string", optional: true },
      },
      indexed: { acmedomain: { rule: { type: "string", optional: true }, count: 6 } },
    },
    handle({ params, state }) {
      const node = state.cluster.node(checkNode(state, params));
      const current: Record<string, string> = node.description !== undefined ? { description: node.description } : {};
      const digest = str(params, "digest");
      if (digest !== undefined && digest !== configDigest(current)) {
        throw failure("detected modified configuration - file changed by other user? Try again.");
      }
      const deletes = splitList(str(params, "delete") ?? "");
      if (deletes.includes("description") && params["description"] !== undefined) {
        throw paramError({ delete: "you can't use '-description' and '-delete description' at the same time" });
      }
      if (deletes.includes("description")) node.description = undefined;
      const description = str(params, "description");
      if (description !== undefined) node.description = description;
      return Promise.resolve({ data: null });
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/aplinfo",
    params: { rules: { node: NODE } },
    handle({ params, state }) {
      checkNode(state, params);
      const data = APPLIANCES.map((a) => ({
        os: a.os,
        package: a.package,
        version: a.version,
        template: applianceFile(a),
        headline: a.headline,
        description: a.headline,
        section: "system",
        type: "lxc",
        architecture: "amd64",
        source: "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        location: `http://download.proxmox.com/images/system/${applianceFile(a)}`,
        infopage: "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        maintainer: "Proxmox Support Team <support@proxmox.com>",
        manageurl: "",
      }));
      return Promise.resolve({ data });
    },
  },
  {
    method: "POST",
    path: "/nodes/{node}/aplinfo",
    params: { rules: { node: NODE, storage: STORAGE, template: { type: "string", maxLength: 255 } } },
    handle({ params, state, user }) {
      const node = checkNode(state, params);
      const storage = reqStr(params, "storage");
      const def = state.cluster.storage(storage);
      if (!def.content.includes("vztmpl")) throw failure(`storage '${storage}' does not support templates`);
      const name = reqStr(params, "template");
      const appliance = APPLIANCES.find((a) => applianceFile(a) === name);
      if (!appliance) throw paramError({ template: "no such template" });
      const upid = state.tasks.start(node, "download", name, user, {
        async run(ctx) {
          ctx.log(`starting template download from: http://download.proxmox.com/images/system/${name}`);
          ctx.log(`target file: /var/lib/vz/template/cache/${name}`);
          await ctx.sleep(0);
          const n = state.cluster.node(node);
          const info: TemplateInfo = { volid: `${storage}:vztmpl/${name}`, size: appliance.size, ctime: Math.floor(state.clock() / 1000) };
          n.downloaded = [...n.downloaded.filter((t) => t.volid !== info.volid), info];
          ctx.log(`${Math.round(appliance.size / 1024 / 1024)}MiB downloaded`);
          ctx.log("download of template finished");
        },
      });
      return Promise.resolve({ data: upid });
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/tasks",
    params: {
      rules: {
        node: NODE,
        errors: { type: "boolean", optional: true },
        limit: { type: "integer", optional: true, minimum: 0 },
        since: { type: "integer", optional: true },
        source: { type: "string", optional: true, enum: ["archive", "active", "all"] },
        start: { type: "integer", optional: true, minimum: 0 },
        statusfilter: { type: "string", optional: true, format: (v) => (splitList(v).every((t) => ["ok", "warning", "error", "unknown"].includes(t.toLowerCase())) ? undefined : "value does not match the regex pattern") },
        typefilter: { type: "string", optional: true },
        until: { type: "integer", optional: true },
        userfilter: { type: "string", optional: true },
        vmid: { ...VMID, optional: true },
      },
    },
    handle({ params, state }) {
      const node = checkNode(state, params);
      return Promise.resolve(taskList(state, node, params));
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/tasks/{upid}/status",
    params: { rules: { node: NODE, upid: { type: "string" } } },
    handle({ params, state }) {
      const node = checkNode(state, params);
      const task = findTask(state, node, reqStr(params, "upid"));
      const { log: _log, endtime: _end, ...status } = task;
      return Promise.resolve({ data: status });
    },
  },
  {
    method: "GET",
    path: "/nodes/{node}/tasks/{upid}/log",
    params: {
      rules: {
        node: NODE,
        upid: { type: "string" },
        download: { type: "boolean", optional: true },
        limit: { type: "integer", optional: true, minimum: 0 },
        start: { type: "integer", optional: true, minimum: 0 },
      },
    },
    handle({ params, state }) {
      const node = checkNode(state, params);
      const task = findTask(state, node, reqStr(params, "upid"));
      if (flag(params, "download")) return Promise.resolve({ data: task.log.join("\n") + "\n" });
      const start = num(params, "start") ?? 0;
      const limit = num(params, "limit") ?? 50;
      const lines = task.log.slice(start, limit === 0 ? undefined : start + limit).map((t, i) => ({ n: start + i + 1, t }));
      return Promise.resolve({ data: lines, attributes: { total: task.log.length } });
    },
  },
];

function findTask(state: SandboxState, node: string, upid: string): NonNullable<ReturnType<SandboxState["tasks"]["get"]>> {
  if (!parseUpid(upid)) throw paramError({ upid: "unable to parse worker upid" });
  const task = state.tasks.get(upid);
  if (!task || task.node !== node) throw paramError({ upid: "no such task" });
  return task;
}

/** `upid_normalize_status_type`: a running task has no status yet. */
function statusType(t: TaskRecord): string {
  if (t.status === "running" || t.exitstatus === undefined) return "unknown";
  if (t.exitstatus === "OK") return "ok";
  return /^WARNINGS: \d+$/.test(t.exitstatus) ? "warning" : "error";
}

/**
 * `GET /nodes/{node}/tasks`, as pve-manager lists them: `source` `archive`
 * (the default) has the finished tasks, newest first, `active` the running
 * ones, `all` both (running first); filters by id (`vmid`), exact type,
 * user, start time and status, then `start` and `limit` (50) page; `total`
 * counts what the filters let through.
 */
function taskList(state: SandboxState, node: string, params: Record<string, Scalar>): Reply {
  const source = str(params, "source") ?? "archive";
  const errors = flag(params, "errors") ?? false;
  const vmid = num(params, "vmid");
  const typefilter = str(params, "typefilter");
  const userfilter = str(params, "userfilter")?.toLowerCase();
  const since = num(params, "since");
  const until = num(params, "until");
  let statuses = new Set(["ok", "warning", "error", "unknown"]);
  const wanted = str(params, "statusfilter");
  if (wanted !== undefined && !errors) statuses = new Set(splitList(wanted.toLowerCase()));
  if (errors) statuses.delete("ok");
  const running = state.tasks.active().filter((t) => t.node === node);
  const done = state.tasks.finished().filter((t) => t.node === node);
  const listed = [...(source === "archive" ? [] : running), ...(source === "active" ? [] : done)].filter(
    (t) =>
      (userfilter === undefined || t.user.toLowerCase().includes(userfilter)) &&
      (typefilter === undefined || t.type === typefilter) &&
      (vmid === undefined || t.id === String(vmid)) &&
      (since === undefined || t.starttime >= since) &&
      (until === undefined || t.starttime <= until) &&
      statuses.has(statusType(t)),
  );
  const start = num(params, "start") ?? 0;
  const limit = num(params, "limit") ?? 50;
  const data = listed.slice(start, start + limit).map((t) => {
    const item: Record<string, unknown> = { upid: t.upid, node: t.node, pid: t.pid, pstart: t.pstart, starttime: t.starttime, type: t.type, id: t.id, user: t.user };
    if (t.status === "stopped") {
      item["endtime"] = t.endtime;
      item["status"] = t.exitstatus;
    }
    return item;
  });
  return { data, attributes: { total: listed.length } };
}
