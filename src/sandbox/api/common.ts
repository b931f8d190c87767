/** Parameter rules and helpers shared by the endpoints. */
import { checkNodeName, checkStorageId } from "../formats.ts";
import type { NumberRule, Scalar, StringRule } from "../params.ts";
import type { SandboxState } from "./types.ts";

/** `node` (`pve-node`). */
export const NODE: StringRule = { type: "string", format: checkNodeName };
/** `vmid` (`pve-vmid`). */
export const VMID: NumberRule = { type: "integer", minimum: 100, maximum: 999_999_999 };
/** `storage` (`pve-storage-id`). */
export const STORAGE: StringRule = { type: "string", format: checkStorageId };

/** A checked string parameter. */
export function str(params: Record<string, Scalar>, name: string): string | undefined {
  const v = params[name];
  return v === undefined ? undefined : String(v);
}

/** A checked integer or number parameter. */
export function num(params: Record<string, Scalar>, name: string): number | undefined {
  const v = params[name];
  return typeof v === "number" ? v : undefined;
}

/** A checked boolean parameter. */
export function flag(params: Record<string, Scalar>, name: string): boolean | undefined {
  const v = params[name];
  return typeof v === "boolean" ? v : undefined;
}

/** A required string parameter (the checker guarantees it). */
export function reqStr(params: Record<string, Scalar>, name: string): string {
  return String(params[name]);
}

/** A required integer parameter (the checker guarantees it). */
export function reqNum(params: Record<string, Scalar>, name: string): number {
  return Number(params[name]);
}

/** The request's `node`, checked to be in the cluster (Proxmox's "hostname lookup" failure otherwise). */
export function checkNode(state: SandboxState, params: Record<string, Scalar>): string {
  const node = reqStr(params, "node");
  state.cluster.node(node);
  return node;
}
