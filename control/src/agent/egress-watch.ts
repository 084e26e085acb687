// Bypass detection, the agent's state: which egress the sidecar never judged.
//
// - A TCP SYN leaving a pod is a candidate keyed by (pod IP, destination IP, port). Control
//   replicas tell the agent, per pod of this node, each connection a filter reported a verdict for
//   (`covered`, the sidecar's own upstream connection: Envoy connects from the pod's address to the
//   original destination). A candidate no verdict covers within `windowMs` (either side of the SYN)
//   is a bypass; several SYNs to one key in the window are one report with a packet count.
// - A UDP flow (not DNS to a trusted resolver; egress-classify.ts) is a bypass at once, reported
//   once per `flowQuietMs` per (pod, kind, source port, destination, port).
//
// Bounds, so a hostile pod can neither flood control nor push out another pod's evidence: every
// new key or flow takes a token from its pod's bucket (`newPerPodPerSecond`, burst `newBurst`) —
// what finds the bucket empty is dropped and counted, never queued; candidates and flows are
// capped per pod (a pod over its cap loses its own oldest) and in total (the pod holding the most
// loses its oldest); covered connections are remembered per pod, bounded the same way.
import type { DecodedPacket } from "../pcap/index.js";
import { classifyEgress, type ClassifyContext, type EgressKind, type EgressPacket } from "./egress-classify.js";

export interface EgressWatchLimits {
  /** How long a SYN waits for a covering verdict, and how old a verdict may be to cover it (ms). */
  windowMs: number;
  /** A UDP flow is reported again only after this long (ms). */
  flowQuietMs: number;
  newPerPodPerSecond: number;
  newBurst: number;
  maxEntriesPerPod: number;
  maxEntries: number;
  maxCoveredPerPod: number;
}

export const DEFAULT_EGRESS_LIMITS: EgressWatchLimits = {
  windowMs: 4_000,
  flowQuietMs: 60_000,
  newPerPodPerSecond: 50,
  newBurst: 200,
  maxEntriesPerPod: 1_024,
  maxEntries: 32_768,
  maxCoveredPerPod: 4_096,
};

/** One bypass as the agent reports it (the API form is BypassAttempt). */
export interface BypassReport extends EgressPacket {
  first: number;
  last: number;
  packets: number;
  iface: string;
}

export interface EgressCounters {
  synsSeen: number;
  synsCovered: number;
  udpSeen: number;
  bypasses: Record<EgressKind, number>;
  /** New keys or flows dropped because their pod's bucket was empty. */
  rateLimited: number;
  /** Candidates or flows pushed out by a bound. */
  evicted: number;
  coveredReceived: number;
  /** SYN candidates not judged: the verdicts that could cover them may not have reached the agent (control unreachable around their window). */
  unjudged: number;
}

interface Candidate {
  pod: string;
  report: BypassReport;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class EgressWatch {
  readonly limits: EgressWatchLimits;
  readonly counters: EgressCounters = {
    synsSeen: 0, synsCovered: 0, udpSeen: 0, bypasses: { "tcp-syn": 0, "udp-quic": 0, "udp-dns": 0, "udp-other": 0 }, rateLimited: 0, evicted: 0, coveredReceived: 0, unjudged: 0,
  };
  /** SYN candidates by key, oldest first (Map keeps insertion order). */
  private readonly pending = new Map<string, Candidate>();
  /** UDP flows reported, by key → when (for the quiet period). */
  private readonly flows = new Map<string, { pod: string; at: number }>();
  private readonly perPod = new Map<string, number>();
  private readonly covered = new Map<string, Map<string, number>>();
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly o: {
      now(): number;
      classify: ClassifyContext;
      /** Called with bypasses as they are decided (UDP at once, SYNs when their window ends). */
      onBypass(reports: BypassReport[]): void;
      limits?: Partial<EgressWatchLimits>;
      /** Whether covered connections could have reached the agent for a SYN first seen at `first` (default: always). */
      judgeable?(first: number): boolean;
    },
  ) {
    this.limits = { ...DEFAULT_EGRESS_LIMITS, ...o.limits };
  }

  /** Candidates and flows held (for metrics). */
  get size(): number {
    return this.pending.size + this.flows.size;
  }

  /** One decoded packet from the egress capture. Never throws on its contents. */
  ingest(pkt: DecodedPacket, time: number, iface: string): void {
    const e = classifyEgress(pkt, this.o.classify);
    if (!e) return;
    if (e.kind === "tcp-syn") this.syn(e, time, iface);
    else this.udp(e, time, iface);
  }

  /**
   * A filter reported a verdict for this connection, or (port 0: any port) asked control about the
   * destination while holding a connection to it (Lookup) — from a control replica.
   */
  coveredConnection(podIp: string, dstIp: string, dstPort: number, at = this.o.now()): void {
    this.counters.coveredReceived++;
    const key = synKey(podIp, dstIp, dstPort);
    if (dstPort === 0) {
      const prefix = `${podIp}|${dstIp}|`;
      for (const [k, c] of this.pending) if (k.startsWith(prefix) && at >= c.report.first - this.limits.windowMs) this.coverPending(k, c);
    } else {
      const c = this.pending.get(key);
      if (c && at >= c.report.first - this.limits.windowMs) this.coverPending(key, c);
    }
    let seen = this.covered.get(podIp);
    if (!seen) this.covered.set(podIp, (seen = new Map()));
    seen.delete(key);
    seen.set(key, at);
    while (seen.size > this.limits.maxCoveredPerPod) seen.delete(seen.keys().next().value!);
  }

  private coverPending(key: string, c: Candidate): void {
    this.counters.synsCovered += c.report.packets;
    this.remove(this.pending, key, c.pod);
  }

  /** Ends the windows that are over (SYN bypasses) and forgets what aged out. Call periodically. */
  tick(): void {
    const now = this.o.now();
    const due: BypassReport[] = [];
    for (const [key, c] of this.pending) {
      if (c.report.first + this.limits.windowMs > now) break;
      this.remove(this.pending, key, c.pod);
      if (this.o.judgeable && !this.o.judgeable(c.report.first)) this.counters.unjudged++;
      else due.push(c.report);
    }
    for (const [key, f] of this.flows) {
      if (f.at + this.limits.flowQuietMs > now) break;
      this.remove(this.flows, key, f.pod);
    }
    for (const [pod, seen] of this.covered) {
      for (const [key, at] of seen) {
        if (at + this.limits.windowMs > now) break;
        seen.delete(key);
      }
      if (seen.size === 0) this.covered.delete(pod);
    }
    for (const [pod, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(pod);
    this.emit(due);
  }

  private syn(e: EgressPacket, time: number, iface: string): void {
    this.counters.synsSeen++;
    const key = synKey(e.podIp, e.dstIp, e.dstPort);
    const seen = this.covered.get(e.podIp);
    const coveredAt = Math.max(seen?.get(key) ?? -Infinity, seen?.get(synKey(e.podIp, e.dstIp, 0)) ?? -Infinity);
    if (coveredAt >= time - this.limits.windowMs) {
      this.counters.synsCovered++;
      return;
    }
    const c = this.pending.get(key);
    if (c) {
      c.report.packets++;
      c.report.last = time;
      return;
    }
    if (!this.admit(e.podIp, time)) return;
    this.add(this.pending, key, { pod: e.podIp, report: { ...e, first: time, last: time, packets: 1, iface } });
  }

  private udp(e: EgressPacket, time: number, iface: string): void {
    this.counters.udpSeen++;
    const key = `${e.kind}|${e.podIp}|${e.srcPort}|${e.dstIp}|${e.dstPort}`;
    if (this.flows.has(key)) return;
    if (!this.admit(e.podIp, time)) return;
    this.add(this.flows, key, { pod: e.podIp, at: time });
    this.emit([{ ...e, first: time, last: time, packets: 1, iface }]);
  }

  /** Takes a token from the pod's bucket; false (counted) when it is empty. */
  private admit(pod: string, now: number): boolean {
    let b = this.buckets.get(pod);
    if (!b) this.buckets.set(pod, (b = { tokens: this.limits.newBurst, at: now }));
    b.tokens = Math.min(this.limits.newBurst, b.tokens + ((now - b.at) / 1000) * this.limits.newPerPodPerSecond);
    b.at = now;
    if (b.tokens < 1) {
      this.counters.rateLimited++;
      return false;
    }
    b.tokens--;
    return true;
  }

  private add<T extends { pod: string }>(map: Map<string, T>, key: string, value: T): void {
    const own = this.perPod.get(value.pod) ?? 0;
    if (own >= this.limits.maxEntriesPerPod) this.evictOldestOf(value.pod);
    else if (this.size >= this.limits.maxEntries) this.evictOldestOf(this.busiestPod());
    map.set(key, value);
    this.perPod.set(value.pod, (this.perPod.get(value.pod) ?? 0) + 1);
  }

  private remove<T extends { pod: string }>(map: Map<string, T>, key: string, pod: string): void {
    if (!map.delete(key)) return;
    const n = (this.perPod.get(pod) ?? 1) - 1;
    if (n > 0) this.perPod.set(pod, n);
    else this.perPod.delete(pod);
  }

  private busiestPod(): string {
    let best = "";
    let most = -1;
    for (const [pod, n] of this.perPod) if (n > most) [best, most] = [pod, n];
    return best;
  }

  /** Drops the pod's oldest entry (counted): a SYN candidate, else a flow (which may then be reported again). */
  private evictOldestOf(pod: string): void {
    this.counters.evicted++;
    for (const [key, c] of this.pending) {
      if (c.pod !== pod) continue;
      this.remove(this.pending, key, pod);
      return;
    }
    for (const [key, f] of this.flows) {
      if (f.pod !== pod) continue;
      this.remove(this.flows, key, pod);
      return;
    }
  }

  private emit(reports: BypassReport[]): void {
    if (reports.length === 0) return;
    for (const r of reports) this.counters.bypasses[r.kind]++;
    this.o.onBypass(reports);
  }
}

function synKey(podIp: string, dstIp: string, dstPort: number): string {
  return `${podIp}|${dstIp}|${dstPort}`;
}
