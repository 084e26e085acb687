// Bypass reports, control's side (the agent decides what is a bypass: control/src/agent/egress-*.ts).
//
//   filters ──Report──► ReportSink ──verdict──► BypassHub.verdict ──covered connection──► agents of the pod's node
//   agents ──Egress(attempts)──► BypassHub.attempts ──► cause, would-be verdict ──► audit line, metrics, Events
//
// Every replica tells the agents of a pod's node which connections its filters reported (any
// replica may receive a filter's Report batch), so the agent can tell the sidecar's own upstream
// SYN from one that skipped it. An attempt is accepted only for a pod on the agent's own node
// (the stream's authenticated node, as for DNS evidence), and only reported when a policy selects
// the pod: egress of unselected pods is not enforced by design.
import type { Logger } from "../common/log.js";
import { PolicyEngine } from "../policy/index.js";
import { bytesToIp, ipToBytes } from "../proto/ip.js";
import type { BypassAttempt, CoveredConnection, EgressKind, OpenedConnection, Outgoing, VerdictEvent } from "../proto/messages.js";
import { INSECURE_ANY_NODE } from "../auth/agent-auth.js";
import type { CoverageTracker } from "./coverage.js";
import type { ControlMetrics } from "./metrics.js";
import type { CompiledPod, PolicyApi } from "./policy-api.js";
import type { PolicyCatalog } from "./policies.js";
import { podKeyOf, type PodRecord, type PodRegistry } from "./pods.js";
import type { ResolutionStore } from "./store.js";
import type { AuditWriter, ReportIdentity } from "./reports.js";
import { applyBreakGlass, breakGlassFor } from "./break-glass.js";
import { isIP } from "node:net";

/** Why the egress skipped the filter, as far as control can tell. */
export type BypassCause =
  | "no-sidecar" | "envoy-without-filter" | "filter-not-connected"
  | "excluded-port" | "excluded-range" | "sidecar-skipped" | "udp-not-captured";

/** The audit line of a bypass (next to `egret.verdict` lines). */
export interface BypassRecord {
  kind: "egret.bypass";
  time: string;
  pod: string;
  src: string;
  dst: string;
  /** tcp, quic, dns or udp */
  protocol: string;
  cause: BypassCause;
  /** The DNS question, the QUIC version, or "". */
  detail: string;
  packets: number;
  names: string[];
  /** What the pod's policies would have decided for this destination, through the filter's engine. */
  verdict: string;
  reason: string;
  policy: string;
  rule: string;
  agent_node: string;
}

/** Kubernetes Events for bypasses (k8s mode). */
export interface BypassEventSink {
  bypass(rec: BypassRecord): void;
}

const PROTOCOL: Record<EgressKind, string> = {
  EGRESS_KIND_UNSPECIFIED: "", EGRESS_KIND_TCP_SYN: "tcp", EGRESS_KIND_UDP_QUIC: "quic", EGRESS_KIND_UDP_DNS: "dns", EGRESS_KIND_UDP_OTHER: "udp",
};
/** The protocol label the engine judges the would-be connection with. */
const ENGINE_PROTOCOL: Record<string, string | undefined> = { tcp: undefined, quic: "tls", dns: "dns", udp: "unknown" };

/** Where covered connections for one agent stream go. */
export interface CoveredSink {
  send(covered: Outgoing<CoveredConnection>[]): void;
}

export interface BypassHubOptions {
  registry: PodRegistry;
  catalog: PolicyCatalog;
  policyApi: PolicyApi;
  store: ResolutionStore;
  coverage: CoverageTracker;
  audit: AuditWriter;
  metrics: ControlMetrics;
  log: Logger;
  now?: () => number;
  clusterCidrs?: string[];
  replaceDefaultClusterCidrs?: boolean;
  breakGlassNamespace?: string;
  events?: BypassEventSink;
  /** The filter's engine for the would-be verdict (default: egret.wasm's, loaded on first use). */
  engine?: () => PolicyEngine;
  /** The snapshot already compiled for a watched pod (the hub's), to avoid compiling again. */
  compiledFor?: (namespace: string, name: string) => CompiledPod | undefined;
}

export class BypassHub {
  private readonly sinks = new Map<string, Set<CoveredSink>>();
  private readonly outgoing = new Map<string, Outgoing<CoveredConnection>[]>();
  private flushScheduled = false;
  private engine?: PolicyEngine | null;
  private events?: BypassEventSink;
  private readonly now: () => number;

  constructor(private readonly o: BypassHubOptions) {
    this.now = o.now ?? Date.now;
    this.events = o.events;
  }

  setEventSink(sink: BypassEventSink | undefined): void {
    this.events = sink;
  }

  /** An agent's Egress stream, bound to its node; call the returned function when it ends. */
  attachAgent(node: string, sink: CoveredSink): () => void {
    let set = this.sinks.get(node);
    if (!set) this.sinks.set(node, (set = new Set()));
    set.add(sink);
    this.o.metrics.egressStreams.inc();
    return () => {
      set.delete(sink);
      if (set.size === 0) this.sinks.delete(node);
      this.o.metrics.egressStreams.dec();
    };
  }

  /** A verdict a filter reported (ReportSink, already bound to its pod): tell the pod's node. */
  verdict(e: VerdictEvent, bound: ReportIdentity | undefined): void {
    const pod = bound ? this.o.registry.get(bound.namespace, bound.name) : this.o.registry.get(e.pod_namespace, e.pod_name);
    if (!pod) return;
    this.cover(pod, e.source_ip, e.destination_ip, e.destination_port);
    this.coverRoutedCluster(pod, e);
  }

  /**
   * A ServiceEntry VIP is never what leaves the pod: Envoy routes the VIP to its cluster
   * (`outbound|PORT|SUBSET|HOST`, the verdict's `cluster`) and connects to the endpoints, which for
   * `resolution: DNS` it resolves itself, from the pod's address — so they are in this pod's own DNS
   * evidence for HOST. Those addresses (any port: the endpoint's may differ) are covered too, or
   * every VIP connection would be a false `sidecar-skipped` bypass. STATIC endpoints are not known
   * here and stay uncovered.
   */
  private coverRoutedCluster(pod: PodRecord, e: VerdictEvent): void {
    const host = routedHost(e.cluster);
    if (!host) return;
    for (const podIp of pod.ips) {
      for (const r of this.o.store.entriesOf(podIp)) {
        if (r.names.some((n) => n.name === host)) this.cover(pod, e.source_ip, r.ip, 0);
      }
    }
  }

  /**
   * Connections a filter let go upstream before their verdict, or carried new bytes on long after
   * it (ReportRequest.opened_connections; the stream is bound to its pod): Envoy's SYN for them may leave now.
   * Entries whose source is not one of the bound pod's addresses are ignored (returned count).
   */
  opened(list: OpenedConnection[], bound: ReportIdentity | undefined): number {
    const pod = bound ? this.o.registry.get(bound.namespace, bound.name) : undefined;
    let ignored = 0;
    for (const o of list) {
      const src = o.source_ip.length ? bytesToIp(o.source_ip) : undefined;
      if (!pod || bytesToIp(o.destination_ip) === undefined || o.destination_port === 0 || o.destination_port > 65535 || (src !== undefined && !pod.ips.includes(src))) {
        ignored++;
        continue;
      }
      this.cover(pod, o.source_ip, o.destination_ip, o.destination_port);
    }
    this.o.metrics.openedConnections.inc({ outcome: "covered" }, list.length - ignored);
    if (ignored > 0) this.o.metrics.openedConnections.inc({ outcome: "ignored" }, ignored);
    return ignored;
  }

  /**
   * A filter's Lookup (already bound to its pod): it holds a connection to this destination — the
   * verdict may come much later (a claim Lookup waits, detection waits for bytes) while Envoy's
   * upstream SYN has already left. Port 0: any port.
   */
  lookedUp(sourceIp: Uint8Array, destinationIp: Uint8Array): void {
    const pod = this.o.registry.byIp(sourceIp);
    if (pod) this.cover(pod, sourceIp, destinationIp, 0);
  }

  private cover(pod: PodRecord, sourceIp: Uint8Array, destinationIp: Uint8Array, port: number): void {
    if (!this.sinks.has(pod.node ?? "") && !this.sinks.has(INSECURE_ANY_NODE)) return;
    const source = sourceIp.length ? bytesToIp(sourceIp) : undefined;
    const podIps = source !== undefined && pod.ips.includes(source) ? [source] : pod.ips;
    const at = this.now();
    for (const ip of podIps) {
      const c = { pod_ip: ipToBytes(ip), destination_ip: destinationIp, destination_port: port, reported_unix_ms: at };
      for (const node of [pod.node ?? "", INSECURE_ANY_NODE]) {
        if (!this.sinks.has(node)) continue;
        let list = this.outgoing.get(node);
        if (!list) this.outgoing.set(node, (list = []));
        list.push(c);
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Attempts from an agent bound to `node`: accepted ones are reported. Returns the counts. */
  attempts(list: BypassAttempt[], node: string, dropped: number): { accepted: number; rejected: number } {
    if (dropped > 0) this.o.metrics.bypassDroppedByAgents.inc({ agent_node: clip(node) }, dropped);
    let accepted = 0;
    let rejected = 0;
    for (const a of list) {
      const outcome = this.attempt(a, node);
      this.o.metrics.bypassAttempts.inc({ outcome });
      if (outcome === "reported" || outcome === "not_selected") accepted++;
      else rejected++;
    }
    return { accepted, rejected };
  }

  private attempt(a: BypassAttempt, node: string): string {
    const protocol = PROTOCOL[a.kind] ?? "";
    if (!protocol) return "invalid";
    const src = bytesToIp(a.pod_ip);
    const dst = bytesToIp(a.destination_ip);
    if (src === undefined || dst === undefined || a.destination_port > 65535 || a.source_port > 65535) return "invalid";
    const pod = this.o.registry.byIp(src);
    if (!pod) return "unknown_pod";
    if (node !== INSECURE_ANY_NODE && pod.node !== node) {
      this.o.metrics.foreignNodeObservations.inc({ agent_node: clip(node) });
      return "foreign_node";
    }
    const coverage = this.o.coverage.podCoverage(pod.namespace, pod.name);
    if (!coverage) return "not_selected";
    const cause: BypassCause = coverage.state === "not-enforced" ? coverage.reason! : protocol !== "tcp" ? "udp-not-captured" : tcpCause(pod, dst, a.destination_port);
    const names = (this.o.store.get(src, a.destination_ip)?.names ?? []).map((n) => n.name);
    const would = this.wouldDecide(pod, dst, a.destination_port, names, protocol);
    const rec: BypassRecord = {
      kind: "egret.bypass",
      time: new Date(a.observed_unix_ms > 0 && a.observed_unix_ms < 8.64e15 ? a.observed_unix_ms : this.now()).toISOString(),
      pod: podKeyOf(pod.namespace, pod.name),
      src: hostPort(src, a.source_port),
      dst: hostPort(dst, a.destination_port),
      protocol,
      cause,
      detail: a.detail.slice(0, 256),
      packets: a.packets,
      names,
      ...would,
      agent_node: node,
    };
    this.o.audit.write(JSON.stringify(rec) + "\n");
    this.o.metrics.bypassEvents.inc({ protocol, cause });
    this.events?.bypass(rec);
    return "reported";
  }

  /** What the pod's policies would have decided, had this gone through the filter. */
  private wouldDecide(pod: PodRecord, ip: string, port: number, names: string[], protocol: string): Pick<BypassRecord, "verdict" | "reason" | "policy" | "rule"> {
    const engine = this.engineOrNull();
    if (!engine) return { verdict: "unknown", reason: "engine-unavailable", policy: "", rule: "" };
    try {
      const glass = breakGlassFor(pod.namespace, this.o.breakGlassNamespace, (ns) => this.o.registry.namespaceLabels(ns));
      const compiled = this.o.compiledFor?.(pod.namespace, pod.name) ?? this.o.policyApi.compilePodSnapshot(
        [...applyBreakGlass(this.o.catalog.active(), glass)],
        { namespace: pod.namespace, name: pod.name, labels: pod.labels, ips: pod.ips },
        this.o.registry.namespaceLabels(pod.namespace),
        { clusterCidrs: this.o.clusterCidrs, replaceDefaultClusterCidrs: this.o.replaceDefaultClusterCidrs },
      );
      engine.load(compiled.bytes);
      const engineProtocol = ENGINE_PROTOCOL[protocol];
      const r = engine.evaluate({ ip, port, names, ...(engineProtocol ? { protocol: engineProtocol } : {}) });
      return { verdict: r.verdict, reason: r.reason, policy: r.policy >= 0 ? engine.policyRef(r.policy) : "", rule: r.rule >= 0 ? engine.ruleLabel(r.rule) : "" };
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, pod: podKeyOf(pod.namespace, pod.name) }, "bypass: the would-be verdict could not be computed");
      return { verdict: "unknown", reason: "engine-error", policy: "", rule: "" };
    }
  }

  private engineOrNull(): PolicyEngine | null {
    if (this.engine === undefined) {
      try {
        this.engine = this.o.engine ? this.o.engine() : new PolicyEngine();
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, "bypass: the policy engine (egret.wasm) is not available; bypass reports carry no would-be verdict");
        this.engine = null;
      }
    }
    return this.engine;
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const [node, list] of this.outgoing) {
      for (const sink of this.sinks.get(node) ?? []) sink.send(list);
      this.o.metrics.coveredSent.inc(list.length);
    }
    this.outgoing.clear();
  }
}

/** The host of an Envoy outbound cluster name (`outbound|443||api.example.com`), else undefined. */
export function routedHost(cluster: string | undefined): string | undefined {
  const parts = (cluster ?? "").split("|");
  if (parts.length !== 4 || parts[0] !== "outbound" || !parts[3] || parts[3].includes("*")) return undefined;
  return parts[3].toLowerCase();
}

/** A SYN from an enforced pod that no verdict covered: an annotation exclusion, or something else. */
export function tcpCause(pod: PodRecord, dst: string, port: number): BypassCause {
  if (pod.excludedOutboundPorts?.includes(port)) return "excluded-port";
  if (pod.excludedOutboundRanges?.some((cidr) => inCidr(dst, cidr))) return "excluded-range";
  return "sidecar-skipped";
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, lenText] = cidr.split("/");
  if (!isIP(ip) || !isIP(net ?? "")) return false;
  const a = ipToBytes(ip);
  const n = ipToBytes(net ?? "");
  if (a.length !== n.length || a.length === 0) return false;
  const len = lenText === undefined ? a.length * 8 : Number(lenText);
  for (let bit = 0; bit < len; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a[bit >> 3] & mask) !== (n[bit >> 3] & mask)) return false;
  }
  return true;
}

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const clip = (s: string) => (s.length > 128 ? s.slice(0, 128) : s);
