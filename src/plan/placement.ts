import type { InventoryNode } from "../proxmox/inventory.ts";
import type { NodeCandidate, NodeCandidateCode } from "./types.ts";

/** What a container asks of its node. */
export interface PlacementRequest {
  /** All of these tags (from the environment's host inventory). */
  tags: readonly string[];
  /** MB of memory it needs. */
  memoryMb: number;
  cores: number;
  /** The node it runs on now, if deployed. */
  current?: string | undefined;
  /** Nodes where a matching template is usable. */
  nodesWithTemplate: ReadonlySet<string>;
}

/** A node that passed the hard constraints, as strategies see it. */
export interface EligibleNode {
  node: InventoryNode;
  /** MB free after what this run has already placed on it. */
  memFreeMb: number;
  cpuFree: number;
}

/** A placement strategy orders eligible nodes, best first. Register new ones in STRATEGIES. */
export interface PlacementStrategy {
  name: string;
  describe(n: EligibleNode): string;
  compare(a: EligibleNode, b: EligibleNode): number;
}

const gib = (mb: number): string => `${(mb / 1024).toFixed(1)} GiB`;

/** The strategies by name; `most-free-memory` is the default. */
export const STRATEGIES: ReadonlyMap<string, PlacementStrategy> = new Map(
  (
    [
      {
        name: "most-free-memory",
        describe: (n) => `${gib(n.memFreeMb)} free`,
        compare: (a, b) => b.memFreeMb - a.memFreeMb || a.node.name.localeCompare(b.node.name),
      },
      {
        name: "most-free-cpu",
        describe: (n) => `${n.cpuFree.toFixed(1)} idle CPUs`,
        compare: (a, b) => b.cpuFree - a.cpuFree || b.memFreeMb - a.memFreeMb || a.node.name.localeCompare(b.node.name),
      },
    ] satisfies PlacementStrategy[]
  ).map((s) => [s.name, s]),
);

/** The default placement strategy's name. */
export const DEFAULT_STRATEGY = "most-free-memory";

/** The outcome of placement: the chosen node (if any) and every node with its reason. */
export interface PlacementResult {
  chosen: string | undefined;
  sticky: boolean;
  candidates: NodeCandidate[];
}

/**
 * Chooses a node. Hard constraints first (online, carries every tag, has a
 * matching template, enough free memory counting what this run already
 * placed), then the strategy ranks what is left. Placement is sticky: a
 * deployed container stays on its node while the node still carries its tags
 * and has its template; a busier node is no reason to move it.
 */
export function placeContainer(
  nodes: readonly InventoryNode[],
  hostTags: Readonly<Record<string, readonly string[]>>,
  req: PlacementRequest,
  strategy: PlacementStrategy,
  reservedMb: ReadonlyMap<string, number>,
): PlacementResult {
  const candidates: NodeCandidate[] = [];
  const eligible: EligibleNode[] = [];
  let sticky: string | undefined;
  for (const node of nodes) {
    const memFreeMb = Math.floor(node.memFree / (1024 * 1024)) - (reservedMb.get(node.name) ?? 0);
    const tags = hostTags[node.name] ?? [];
    const missing = req.tags.filter((t) => !tags.includes(t));
    const push = (eligibleNow: boolean, code: NodeCandidateCode, reason: string): void => void candidates.push({ node: node.name, eligible: eligibleNow, code, reason, memFreeMb });
    if (missing.length > 0) push(false, "missing-tags", `missing tag${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`);
    else if (!req.nodesWithTemplate.has(node.name)) push(false, "no-template", "no matching template on its storages");
    else if (node.name === req.current) {
      // Its own memory is already in the node's usage; being offline is not a reason to move it either.
      sticky = node.name;
      push(true, "sticky", node.online ? "deployed here, and its constraints still hold" : "deployed here (node is offline now)");
    } else if (!node.online) push(false, "offline", "offline");
    else if (memFreeMb < req.memoryMb) push(false, "low-memory", `not enough free memory: ${gib(memFreeMb)} < ${gib(req.memoryMb)}`);
    else {
      eligible.push({ node, memFreeMb, cpuFree: node.cpuFree });
      push(true, "ranked-lower", "");
    }
  }
  if (sticky !== undefined) {
    for (const c of candidates) {
      if (c.node === sticky || !c.eligible) continue;
      c.code = "stays";
      c.reason = "eligible, but the container stays where it is";
    }
    return { chosen: sticky, sticky: true, candidates: order(candidates, sticky) };
  }
  eligible.sort((a, b) => strategy.compare(a, b));
  const best = eligible[0];
  for (const e of eligible) {
    const c = candidates.find((x) => x.node === e.node.name);
    if (!c) continue;
    c.code = e === best ? "chosen" : "ranked-lower";
    c.reason = e === best ? `chosen by ${strategy.name}: ${strategy.describe(e)}` : `eligible, ranked lower by ${strategy.name}: ${strategy.describe(e)}`;
  }
  return { chosen: best?.node.name, sticky: false, candidates: order(candidates, best?.node.name) };
}

function order(cs: NodeCandidate[], chosen: string | undefined): NodeCandidate[] {
  return [...cs].sort((a, b) => Number(b.node === chosen) - Number(a.node === chosen) || Number(b.eligible) - Number(a.eligible) || a.node.localeCompare(b.node));
}
