/** `GET /version`: the server's Proxmox VE release. */
import { z } from "zod";
import type { ProxmoxHttp } from "./http.ts";

const versionSchema = z.object({
  version: z.string(),
  release: z.string(),
  repoid: z.string().optional(),
  console: z.string().optional(),
});

/** What `GET /version` returns. */
export type ProxmoxVersion = z.output<typeof versionSchema>;

/** The version call. */
export class VersionApi {
  private readonly http: ProxmoxHttp;

  constructor(http: ProxmoxHttp) {
    this.http = http;
  }

  /** The pve-manager version and release of the node answering. */
  async get(): Promise<ProxmoxVersion> {
    return this.http.call({ method: "GET", path: "/version" }, versionSchema);
  }
}
