// Lookup: "which names did the pod at source IP S resolve to destination IP D?" Answers at once
// from the store; otherwise parks the question until the observation lands (the store notifies
// every change of (pod, ip)) or the wait ends. This is what makes the filter's hold safe: the app
// got its DNS answer at the instant the agent saw it, so the observation is in flight.
import { bytesToIp } from "../proto/ip.js";
import type { LookupResult, Resolution } from "../proto/messages.js";
import { ControlError } from "./errors.js";
import type { ControlMetrics } from "./metrics.js";
import type { PodRegistry } from "./pods.js";
import type { ResolutionStore } from "./store.js";
import { withMeshNames, type MeshConfigTable } from "./mesh-config.js";

export interface LookupAnswer {
  result: Exclude<LookupResult, "LOOKUP_RESULT_UNSPECIFIED">;
  resolution?: Resolution;
}

interface Waiter {
  podKeys: string[];
  dest: Uint8Array;
  /** Normalized claimed name the answer must include ("" = any resolution answers). */
  claim: string;
  /** Resolves with the answer, or rejects with the error (shutdown). */
  finish: (answer: LookupAnswer | ControlError) => void;
}

export class LookupService {
  /** "podKey>destIp" → waiters. */
  private readonly waiting = new Map<string, Set<Waiter>>();
  private pendingCount = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: ResolutionStore,
    private readonly registry: PodRegistry,
    private readonly metrics: ControlMetrics,
    private readonly limits: { maxPending: number } = { maxPending: 100_000 },
    private readonly now: () => number = Date.now,
    /** ServiceEntry addresses: answered at once for the pod's namespace (nothing to wait for). */
    private readonly meshConfig?: MeshConfigTable,
  ) {
    this.unsubscribe = store.subscribe((podKey, ip) => {
      const set = this.waiting.get(`${podKey}>${bytesToIp(ip)}`);
      if (!set) return;
      for (const w of [...set]) {
        const r = this.find(w.podKeys, w.dest);
        if (r && includesName(r, w.claim)) w.finish({ result: "LOOKUP_RESULT_FOUND", resolution: r });
      }
    });
  }

  get pending(): number {
    return this.pendingCount;
  }

  /**
   * Answers at once when known; else waits up to `waitMs` (resolve NOT_FOUND / UNKNOWN_POD
   * then). `signal` aborts the wait (the caller went away); the promise then resolves NOT_FOUND.
   * `claimedName` (TLS SNI / HTTP Host the filter could not verify): the IP being known is not
   * enough — wait until its names include this one; when the wait ends, answer with what is known.
   */
  lookup(sourceIp: Uint8Array, destIp: Uint8Array, waitMs: number, signal?: AbortSignal, claimedName = ""): Promise<LookupAnswer> {
    const claim = normalizeName(claimedName);
    const source = bytesToIp(sourceIp);
    const dest = bytesToIp(destIp);
    if (source === undefined || dest === undefined) {
      throw new ControlError("EGRET_LOOKUP_BAD_IP", `source_ip ${sourceIp.length} bytes, destination_ip ${destIp.length} bytes`);
    }
    // A pod may resolve from one of its IPs and connect from another (dual stack).
    const pod = this.registry.byIp(source);
    const podKeys = pod && pod.ips.length > 0 ? [source, ...pod.ips.filter((ip) => ip !== source)] : [source];
    const known = this.find(podKeys, destIp);
    if (known && includesName(known, claim)) {
      this.metrics.lookups.inc({ result: "found" });
      return Promise.resolve({ result: "LOOKUP_RESULT_FOUND", resolution: known });
    }
    const unknownAnswer = (): LookupAnswer => {
      // A claim that never arrived: the names known for the IP are still the answer.
      const r = claim ? this.find(podKeys, destIp) : undefined;
      if (r) return { result: "LOOKUP_RESULT_FOUND", resolution: r };
      return {
      result: this.registry.byIp(source) || this.store.entriesOf(source).length > 0 ? "LOOKUP_RESULT_NOT_FOUND" : "LOOKUP_RESULT_UNKNOWN_POD",
      };
    };
    if (waitMs <= 0 || signal?.aborted) {
      const a = unknownAnswer();
      this.metrics.lookups.inc({ result: a.result === "LOOKUP_RESULT_FOUND" ? "found" : a.result === "LOOKUP_RESULT_NOT_FOUND" ? "not_found" : "unknown_pod" });
      return Promise.resolve(a);
    }
    if (this.pendingCount >= this.limits.maxPending) {
      throw new ControlError("EGRET_LOOKUP_TOO_MANY_PENDING", `${this.pendingCount} waiting`);
    }
    const started = this.now();
    return new Promise<LookupAnswer>((resolve, reject) => {
      const keys = podKeys.map((k) => `${k}>${dest}`);
      let done = false;
      const waiter: Waiter = {
        podKeys,
        dest: destIp,
        claim,
        finish: (answer) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          for (const k of keys) {
            const set = this.waiting.get(k);
            set?.delete(waiter);
            if (set?.size === 0) this.waiting.delete(k);
          }
          this.pendingCount--;
          this.metrics.lookupsPending.set(this.pendingCount);
          if (answer instanceof ControlError) {
            reject(answer);
            return;
          }
          const waited = (this.now() - started) / 1000;
          this.metrics.lookupWait.observe(waited);
          const label =
            answer.result === "LOOKUP_RESULT_FOUND" ? "found_after_wait" : answer.result === "LOOKUP_RESULT_NOT_FOUND" ? "not_found" : "unknown_pod";
          this.metrics.lookups.inc({ result: label });
          resolve(answer);
        },
      };
      const onAbort = () => waiter.finish({ result: "LOOKUP_RESULT_NOT_FOUND" });
      const timer = setTimeout(() => waiter.finish(unknownAnswer()), waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      for (const k of keys) {
        let set = this.waiting.get(k);
        if (!set) this.waiting.set(k, (set = new Set()));
        set.add(waiter);
      }
      this.pendingCount++;
      this.metrics.lookupsPending.set(this.pendingCount);
    });
  }

  /** Stops; waiting Lookups fail with EGRET_SHUTTING_DOWN (UNAVAILABLE: the filter may ask another replica) rather than a false NOT_FOUND. */
  close(): void {
    this.unsubscribe();
    for (const set of this.waiting.values()) for (const w of [...set]) w.finish(new ControlError("EGRET_SHUTTING_DOWN", "Lookup abandoned"));
  }

  private find(podKeys: string[], dest: Uint8Array): Resolution | undefined {
    let found: Resolution | undefined;
    for (const k of podKeys) {
      found = this.store.get(k, dest);
      if (found) break;
    }
    if (!this.meshConfig) return found;
    const pod = this.registry.byIp(podKeys[0]);
    return pod ? withMeshNames(found, this.meshConfig.resolutionFor(pod.namespace, dest)) : found;
  }
}

/** DNS names compare case-insensitively, without the root dot. */
function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith(".") ? n.slice(0, -1) : n;
}

function includesName(r: Resolution, claim: string): boolean {
  if (!claim) return true;
  return r.names.some((n) => normalizeName(n.name) === claim);
}
