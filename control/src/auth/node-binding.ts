// An agent speaks only for pods on its own node. Each observation's pod IP is looked up in the pod
// registry: a pod scheduled on the agent's node → accepted; on another node (or on none) →
// rejected, counted and logged. A pod IP the registry does not know yet (the agent saw the pod's
// first DNS answer before control's pod watch caught up) is held, bounded and briefly, and
// judged when the pod appears, so evidence is neither lost to that race nor accepted unchecked.
import { bytesToIp } from "../proto/ip.js";
import type { PodRegistry } from "../control/pods.js";
import { INSECURE_ANY_NODE } from "./agent-auth.js";

export type EvidenceOwner = "own" | "foreign" | "unknown";

export interface HoldLimits {
  /** Observations held for unknown pod IPs, in total. */
  maxHeld: number;
  /** How long one is held before it is dropped (ms). */
  holdMs: number;
}

export const DEFAULT_HOLD_LIMITS: HoldLimits = { maxHeld: 10_000, holdMs: 30_000 };

interface Held {
  node: string;
  since: number;
  apply: () => void;
}

export type HeldOutcome = "stored" | "foreign_node" | "unknown_pod_expired";

export class NodeBinding {
  private readonly held = new Map<string, Held[]>();
  private heldCount = 0;
  private readonly limits: HoldLimits;

  constructor(
    private readonly registry: PodRegistry,
    private readonly onHeldOutcome: (outcome: HeldOutcome, ip: string, node: string, podNode: string | undefined) => void,
    limits: Partial<HoldLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULT_HOLD_LIMITS, ...limits };
    registry.onChange((c) => {
      if (c.kind === "pod" && c.after) for (const ip of c.after.ips) this.release(ip);
    });
  }

  get heldObservations(): number {
    return this.heldCount;
  }

  /** Whose pod `podIp` is, as seen from an agent bound to `node`. */
  classify(podIp: Uint8Array, node: string): EvidenceOwner {
    if (node === INSECURE_ANY_NODE) return "own";
    const pod = this.registry.byIp(podIp);
    if (!pod) return "unknown";
    return pod.node === node ? "own" : "foreign";
  }

  /** The node the registry places the pod owning `podIp` on ("" when none). */
  nodeOf(podIp: Uint8Array): string {
    return this.registry.byIp(podIp)?.node ?? "";
  }

  /** Holds an observation for an unknown pod IP; false when the hold is full (the caller rejects it). */
  hold(podIp: Uint8Array, node: string, apply: () => void): boolean {
    this.expire();
    const ip = bytesToIp(podIp);
    if (ip === undefined || this.heldCount >= this.limits.maxHeld) return false;
    let list = this.held.get(ip);
    if (!list) this.held.set(ip, (list = []));
    list.push({ node, since: this.now(), apply });
    this.heldCount++;
    return true;
  }

  /** Drops what was held too long (also called on every hold). */
  expire(): void {
    const cutoff = this.now() - this.limits.holdMs;
    for (const [ip, list] of this.held) {
      const keep = list.filter((h) => h.since > cutoff);
      for (const h of list) if (h.since <= cutoff) this.onHeldOutcome("unknown_pod_expired", ip, h.node, undefined);
      this.heldCount -= list.length - keep.length;
      if (keep.length === 0) this.held.delete(ip);
      else this.held.set(ip, keep);
    }
  }

  private release(ip: string): void {
    const list = this.held.get(ip);
    if (!list) return;
    this.held.delete(ip);
    this.heldCount -= list.length;
    const podNode = this.registry.byIp(ip)?.node;
    for (const h of list) {
      if (podNode !== undefined && podNode === h.node) {
        h.apply();
        this.onHeldOutcome("stored", ip, h.node, podNode);
      } else {
        this.onHeldOutcome("foreign_node", ip, h.node, podNode);
      }
    }
  }
}
