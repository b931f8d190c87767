/** Storages, their content (templates), and template downloads from the appliance index (`aplinfo`). */
import { z } from "zod";
import { contextFromPath } from "./errors.ts";
import { apiPath } from "./http.ts";
import type { ProxmoxHttp } from "./http.ts";
import { WRITE } from "./retry.ts";
import { commaList, flag, num } from "./schema.ts";
import type { TaskResult, TasksApi, WaitOptions } from "./tasks.ts";

const storageSchema = z.object({
  storage: z.string(),
  type: z.string(),
  content: commaList,
  active: flag.optional(),
  enabled: flag.optional(),
  shared: flag.optional(),
  total: num.optional(),
  used: num.optional(),
  avail: num.optional(),
});

/** One entry of `GET /nodes/{node}/storage`. */
export type StorageInfo = z.output<typeof storageSchema>;

const contentSchema = z.object({
  volid: z.string(),
  content: z.string(),
  format: z.string().optional(),
  size: num,
  ctime: num.optional(),
  notes: z.string().optional(),
});

/** One volume of `GET /nodes/{node}/storage/{storage}/content`. */
export type StorageContent = z.output<typeof contentSchema>;

const aplinfoSchema = z.object({
  template: z.string(),
  package: z.string().optional(),
  version: z.string().optional(),
  type: z.string().optional(),
  os: z.string().optional(),
  section: z.string().optional(),
  headline: z.string().optional(),
  description: z.string().optional(),
  sha512sum: z.string().optional(),
  location: z.string().optional(),
});

/** One downloadable appliance template from `GET /nodes/{node}/aplinfo`. */
export type ApplianceTemplate = z.output<typeof aplinfoSchema>;

/** Content types a storage can hold. */
export type ContentType = "vztmpl" | "iso" | "backup" | "rootdir" | "images" | "snippets" | "import";

/** The parts of a template volid such as `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`. */
export interface TemplateName {
  storage: string;
  /** File name: `debian-12-standard_12.7-1_amd64.tar.zst`. */
  file: string;
  /** Before the first `_`: `debian-12-standard`. */
  name: string;
  /** Between the underscores: `12.7-1` (not semver). */
  version: string | undefined;
  arch: string | undefined;
}

/** Splits a template volid (or a bare file name) into name, version and architecture. Pure. */
export function parseTemplateVolid(volid: string): TemplateName {
  const colon = volid.indexOf(":");
  const storage = colon >= 0 ? volid.slice(0, colon) : "";
  const rest = colon >= 0 ? volid.slice(colon + 1) : volid;
  const file = rest.replace(/^vztmpl\//, "");
  const stem = file.replace(/\.(?:tar\.(?:gz|xz|zst|bz2)|tgz|tar)$/, "");
  const m = /^([^_]+)_([^_]+)_([^_]+)$/.exec(stem);
  if (m) return { storage, file, name: m[1]!, version: m[2]!, arch: m[3]! };
  return { storage, file, name: stem, version: undefined, arch: undefined };
}

/** Storage calls. */
export class StorageApi {
  private readonly http: ProxmoxHttp;
  private readonly tasks: TasksApi;

  constructor(http: ProxmoxHttp, tasks: TasksApi) {
    this.http = http;
    this.tasks = tasks;
  }

  /** Storages of a node, optionally only those that can hold `content`. */
  async list(node: string, options: { content?: ContentType; enabled?: boolean } = {}): Promise<StorageInfo[]> {
    return this.http.call(
      { method: "GET", path: apiPath`/nodes/${node}/storage`, params: { content: options.content, enabled: options.enabled } },
      z.array(storageSchema),
    );
  }

  /** Volumes on a storage, optionally of one content type. */
  async content(node: string, storage: string, options: { content?: ContentType } = {}): Promise<StorageContent[]> {
    return this.http.call(
      { method: "GET", path: apiPath`/nodes/${node}/storage/${storage}/content`, params: { content: options.content } },
      z.array(contentSchema),
    );
  }

  /** Container templates on a storage. */
  async templates(node: string, storage: string): Promise<StorageContent[]> {
    return this.content(node, storage, { content: "vztmpl" });
  }

  /** Templates the node can download (the appliance index). */
  async aplinfo(node: string): Promise<ApplianceTemplate[]> {
    return this.http.call({ method: "GET", path: apiPath`/nodes/${node}/aplinfo` }, z.array(aplinfoSchema));
  }

  /** Starts a template download; returns the task's UPID. */
  async startTemplateDownload(node: string, storage: string, template: string): Promise<string> {
    return this.http.call({ method: "POST", path: apiPath`/nodes/${node}/aplinfo`, params: { storage, template }, policy: WRITE }, z.string());
  }

  /** Downloads a template from the appliance index into `storage` and waits for it. */
  async downloadTemplate(node: string, storage: string, template: string, wait: WaitOptions = {}): Promise<TaskResult> {
    const upid = await this.startTemplateDownload(node, storage, template);
    return this.tasks.wait(upid, wait, contextFromPath("POST", apiPath`/nodes/${node}/aplinfo`));
  }
}
