// Bypass detection in the agent, wired: its own capture (egressBpfFilter: outbound SYNs and UDP,
// a ring apart from the DNS evidence), the EgressWatch state, one Egress stream per control
// replica, and its metrics. agent.ts only creates it and tells it the replicas.
import { Counter, Gauge, type Registry } from "prom-client";
import type { Logger } from "../common/log.js";
import { CidrSet } from "../dns/cidr.js";
import { effectiveClusterCidrs } from "../policy/network.js";
import { decodeFrame, type DropCounts } from "../pcap/index.js";
import { LiveCapture, type Frame } from "./capture.js";
import type { AgentCredentials } from "./credentials.js";
import type { EgressKind } from "./egress-classify.js";
import { assemble } from "./bpf.js";
import { egressSocketFilter } from "./egress-bpf.js";
import { EgressLink } from "./egress-link.js";
import { EgressWatch, type BypassReport, type EgressWatchLimits } from "./egress-watch.js";

/** After a lost Egress stream, filters' resent verdicts may lag by their report backoff (≤ 5 s). */
export const RECONNECT_GRACE_MS = 6_000;

export interface EgressBypassOptions {
  agentId: string;
  log: Logger;
  now(): number;
  /** Interface names / globs (the DNS capture's); empty: frames come from ingestFrame only. */
  interfaces: readonly string[];
  bufferBytes: number;
  rescanMs: number;
  dnsPorts: readonly number[];
  trustedResolvers: readonly string[];
  podCidrs: readonly string[];
  /** Cluster networks besides the default private ranges (`--cluster-cidr`): SYNs to them are not judged. */
  clusterCidrs?: readonly string[];
  limits?: Partial<EgressWatchLimits>;
  credentials?: AgentCredentials;
  connectTimeoutMs: number;
  /** How often windows are closed (ms). */
  tickMs?: number;
}

export class EgressBypass {
  readonly watch: EgressWatch;
  readonly frameDrops: DropCounts = {};
  /** Bypass reports no replica stream could carry (none connected). */
  unsent = 0;
  private readonly links = new Map<string, EgressLink>();
  private capture?: LiveCapture;
  private timer?: NodeJS.Timeout;
  private droppedSinceSend = 0;
  /**
   * Since when every replica's Egress stream has been up (undefined: not all are). After a stream
   * was lost, filters resend the verdicts control missed only after their backoff, so SYNs seen
   * before `stableSince` (connect time + RECONNECT_GRACE_MS) are not judged: no false bypass from
   * a control outage.
   */
  private stableSince?: number;
  private everStable = false;

  constructor(private readonly o: EgressBypassOptions) {
    const trusted = new CidrSet(o.trustedResolvers, "trusted resolver");
    const pods = o.podCidrs.length > 0 ? new CidrSet(o.podCidrs, "pod CIDR") : undefined;
    const internal = new CidrSet(effectiveClusterCidrs(o.clusterCidrs ?? []), "cluster CIDR");
    this.watch = new EgressWatch({
      now: o.now,
      limits: o.limits,
      classify: {
        isTrustedResolver: (ip) => trusted.has(ip),
        dnsPorts: new Set(o.dnsPorts),
        isInternal: (ip) => internal.has(ip),
        ...(pods ? { isPodAddress: (ip: string) => pods.has(ip) } : {}),
      },
      onBypass: (reports) => this.send(reports),
      judgeable: (first) => this.stableSince !== undefined && first >= this.stableSince,
    });
  }

  start(): void {
    const any = this.o.interfaces.includes("any");
    if (this.o.interfaces.length > 0 && !(any && this.o.podCidrs.length === 0)) {
      // Its own sockets and rings, with their own kernel filter (egress-bpf.ts).
      this.capture = new LiveCapture({
        interfaces: this.o.interfaces,
        dnsPorts: this.o.dnsPorts,
        socketFilter: assemble(egressSocketFilter(this.o.dnsPorts, this.o.trustedResolvers, this.o.podCidrs)),
        bufferBytes: this.o.bufferBytes,
        rescanMs: this.o.rescanMs,
        log: this.o.log,
        onFrame: (f) => this.ingestFrame(f),
      });
      this.capture.start();
    } else if (any) {
      this.o.log.warn("bypass detection is off: with --interface any it needs --pod-cidr (to tell what pods send from what reaches them)");
    }
    this.timer = setInterval(() => this.watch.tick(), this.o.tickMs ?? 100);
    this.timer.unref();
  }

  stop(): void {
    this.capture?.stop();
    if (this.timer) clearInterval(this.timer);
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }

  /** One frame of the egress capture (tests inject frames here). Never throws on its contents. */
  ingestFrame(frame: Frame): void {
    const pkt = decodeFrame(frame.linkType, frame.data, this.frameDrops);
    // The live capture states the kernel's packet type: the classifier drops what the node sent.
    if (pkt) this.watch.ingest(frame.pktType !== undefined ? { ...pkt, pktType: frame.pktType } : pkt, frame.time, frame.iface);
  }

  /** The control replicas (the same set the Observe streams go to). */
  setReplicas(addresses: string[]): void {
    const wanted = new Set(addresses);
    for (const [a, l] of this.links) {
      if (wanted.has(a)) continue;
      l.close();
      this.links.delete(a);
    }
    for (const a of wanted) {
      if (this.links.has(a)) continue;
      const link = new EgressLink({
        address: a,
        agentId: this.o.agentId,
        log: this.o.log,
        connectTimeoutMs: this.o.connectTimeoutMs,
        ...(this.o.credentials ? { credentials: this.o.credentials } : {}),
        onCovered: (pod, dst, port) => this.watch.coveredConnection(pod, dst, port),
        onState: () => this.linksChanged(),
      });
      this.links.set(a, link);
      link.start();
    }
    this.linksChanged();
  }

  private linksChanged(): void {
    const all = this.links.size > 0 && [...this.links.values()].every((l) => l.connected);
    if (!all) this.stableSince = undefined;
    else if (this.stableSince === undefined) {
      this.stableSince = this.o.now() + (this.everStable ? RECONNECT_GRACE_MS : 0);
      this.everStable = true;
    }
  }

  get connectedReplicas(): number {
    return [...this.links.values()].filter((l) => l.connected).length;
  }

  /** /metrics: egret_agent_egress_* and egret_agent_bypass_*. */
  registerMetrics(registry: Registry): void {
    const w = this.watch;
    const counter = (name: string, help: string, value: () => number) =>
      new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(value()); } });
    counter("egret_agent_egress_syns_total", "Outbound TCP SYNs seen on pod interfaces.", () => w.counters.synsSeen);
    counter("egret_agent_egress_syns_covered_total", "Outbound SYNs a filter verdict covered (the sidecar's own upstream connections).", () => w.counters.synsCovered);
    counter("egret_agent_egress_udp_total", "Outbound UDP datagrams seen on pod interfaces (not DNS to a trusted resolver).", () => w.counters.udpSeen);
    counter("egret_agent_egress_covered_received_total", "Covered connections received from control replicas.", () => w.counters.coveredReceived);
    counter("egret_agent_egress_rate_limited_total", "New SYN keys or UDP flows dropped because their pod exceeded its rate (a flooding pod).", () => w.counters.rateLimited);
    counter("egret_agent_egress_evicted_total", "SYN candidates or UDP flows pushed out by the per-pod or node bound.", () => w.counters.evicted);
    counter("egret_agent_egress_unjudged_total", "SYN candidates not judged because a control replica's stream was down around them (its verdicts may be late).", () => w.counters.unjudged);
    counter("egret_agent_bypass_unsent_total", "Bypass reports dropped because no control replica was connected.", () => this.unsent);
    gauge(registry, "egret_agent_egress_entries", "SYN candidates and UDP flows held.", () => w.size);
    new Counter({
      name: "egret_agent_bypass_reports_total", help: "Bypasses reported, by kind (tcp-syn, udp-quic, udp-dns, udp-other).", labelNames: ["kind"], registers: [registry],
      collect() {
        this.reset();
        for (const k of Object.keys(w.counters.bypasses) as EgressKind[]) this.labels(k).inc(w.counters.bypasses[k]);
      },
    });
  }

  /** To one replica (the first connected, in address order): one audit line per bypass. */
  private send(reports: BypassReport[]): void {
    const dropped = this.watch.counters.rateLimited + this.watch.counters.evicted;
    const link = [...this.links.values()].filter((l) => l.connected).sort((a, b) => (a.address < b.address ? -1 : 1))[0];
    if (!link || !link.send(reports, dropped - this.droppedSinceSend)) {
      this.unsent += reports.length;
      return;
    }
    this.droppedSinceSend = dropped;
    this.o.log.debug({ bypasses: reports.length, replica: link.address }, "bypass reported");
  }
}

function gauge(registry: Registry, name: string, help: string, value: () => number): void {
  new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
}
