// Verdict reports from filters become: one JSON audit line per event, Prometheus counters by
// verdict/reason/policy/rule/mode, and (Kubernetes mode) rate-limited Events on the pod for
// denies. Malformed events are counted and dropped, never thrown.
import { bytesToIp } from "../proto/ip.js";
import type { VerdictEvent } from "../proto/messages.js";
import type { ControlMetrics } from "./metrics.js";
import { formatHostPort } from "../common/host-port.js";

/** Where audit lines go: stdout, a file stream, or a test array. */
export interface AuditWriter {
  write(line: string): void;
}

/** Kubernetes Events for denies (k8s mode); absent in file mode. */
export interface DenyEventSink {
  denied(event: AuditRecord): void;
}

/** The audit line, one JSON object per verdict. `kind` tells it apart from log lines. */
export interface AuditRecord {
  kind: "egret.verdict";
  time: string;
  pod: string;
  src: string;
  dst: string;
  names: string[];
  protocol: string;
  sni: string;
  host: string;
  verdict: string;
  reason: string;
  policy: string;
  rule: string;
  mode: string;
  matched_name: string;
  instance: string;
  detail: string;
  /** Which kind of evidence supported `matched_name`: "pod-dns", "mesh-config", or "" (no name decided). */
  evidence: string;
  /** Envoy's chosen cluster when the filter cross-checked it (ServiceEntry destinations), else "". */
  cluster: string;
}

/** "REASON_DENIED_BY_RULE" → "denied-by-rule" (the design's spelling). */
export function enumLabel(value: string, prefix: string): string {
  return (value.startsWith(prefix) ? value.slice(prefix.length) : value).toLowerCase().replace(/_/g, "-");
}

function hostPort(ip: Uint8Array, port: number): string {
  return formatHostPort(bytesToIp(ip) ?? "", port);
}

// Bounded label values keep a hostile or buggy filter from exploding metric cardinality.
const LABEL_MAX = 128;
const clip = (s: string) => (s.length > LABEL_MAX ? s.slice(0, LABEL_MAX) : s);

/** The pod a Report stream is bound to. */
export interface ReportIdentity {
  namespace: string;
  name: string;
  ips: string[];
}

function foreignSource(e: VerdictEvent, bound: ReportIdentity): string | undefined {
  if (e.source_ip.length === 0) return undefined;
  const src = bytesToIp(e.source_ip);
  return src !== undefined && bound.ips.includes(src) ? undefined : "foreign_source";
}

/** The audit line of an event (also what `egret observe --json` prints). */
export function auditRecordOf(e: VerdictEvent): AuditRecord {
  return {
    kind: "egret.verdict",
    time: new Date(e.time_unix_ms > 0 ? e.time_unix_ms : Date.now()).toISOString(),
    pod: e.pod_namespace || e.pod_name ? `${e.pod_namespace}/${e.pod_name}` : "",
    src: e.source_ip.length ? hostPort(e.source_ip, e.source_port) : "",
    dst: hostPort(e.destination_ip, e.destination_port),
    names: e.names,
    protocol: e.protocol,
    sni: e.sni,
    host: e.host,
    verdict: enumLabel(e.verdict, "VERDICT_"),
    reason: enumLabel(e.reason, "REASON_"),
    policy: e.policy,
    rule: e.rule,
    mode: e.mode === "POLICY_MODE_UNSPECIFIED" ? "" : enumLabel(e.mode, "POLICY_MODE_"),
    matched_name: e.matched_name,
    instance: e.instance_id,
    detail: e.detail,
    evidence: e.evidence === "NAME_SOURCE_UNSPECIFIED" || !e.evidence ? "" : enumLabel(e.evidence, "NAME_SOURCE_"),
    cluster: e.cluster ?? "",
  };
}

export class ReportSink {
  accepted = 0;
  rejected = 0;

  constructor(
    private readonly audit: AuditWriter,
    private readonly metrics: ControlMetrics,
    private readonly events?: DenyEventSink,
    /** Hears every recorded verdict (bypass detection: the connection the sidecar handled). */
    private readonly onVerdict?: (e: VerdictEvent, bound: ReportIdentity | undefined) => void,
    /** Hears every recorded event, with the identity it was recorded under (the verdict feed). */
    private readonly onRecorded?: (e: VerdictEvent) => void,
  ) {}

  /**
   * Records one batch; returns how many events were accepted and rejected. `bound` is the pod the
   * Report stream is bound to (its peer address): events are recorded under it whatever pod they
   * name, and an event whose source address is not one of its IPs is rejected (cause
   * `foreign_source`). Without a binding (--filter-snat-peer) events keep the identity they claim.
   */
  recordBatch(events: VerdictEvent[], droppedByFilter: number, bound?: ReportIdentity): { accepted: number; rejected: number } {
    if (droppedByFilter > 0) this.metrics.reportEventsDroppedByFilters.inc(droppedByFilter);
    let accepted = 0;
    let rejected = 0;
    for (const e of events) {
      const cause = this.problem(e) ?? (bound ? foreignSource(e, bound) : undefined);
      if (cause) {
        rejected++;
        this.metrics.reportEventsRejected.inc({ cause });
        continue;
      }
      try {
        this.record(bound ? { ...e, pod_namespace: bound.namespace, pod_name: bound.name } : e);
        accepted++;
        this.onVerdict?.(e, bound);
      } catch {
        // Input from a filter must never take the service down: count it and go on.
        rejected++;
        this.metrics.reportEventsRejected.inc({ cause: "unrecordable" });
      }
    }
    this.accepted += accepted;
    this.rejected += rejected;
    return { accepted, rejected };
  }

  private problem(e: VerdictEvent): string | undefined {
    if (e.verdict === "VERDICT_UNSPECIFIED" || typeof e.verdict !== "string" || !e.verdict.startsWith("VERDICT_")) return "verdict";
    if (e.reason === "REASON_UNSPECIFIED" || typeof e.reason !== "string" || !e.reason.startsWith("REASON_")) return "reason";
    if (e.destination_ip.length !== 4 && e.destination_ip.length !== 16) return "destination_ip";
    if (e.destination_port > 65535 || e.source_port > 65535) return "port";
    // Date cannot represent times beyond ±8.64e15 ms; such a value is a broken clock or encoder.
    if (!Number.isFinite(e.time_unix_ms) || Math.abs(e.time_unix_ms) > 8.64e15) return "time";
    return undefined;
  }

  private record(e: VerdictEvent): void {
    const rec = auditRecordOf(e);
    this.audit.write(JSON.stringify(rec) + "\n");
    this.metrics.verdicts.inc({ verdict: rec.verdict, reason: rec.reason, policy: clip(rec.policy), rule: clip(rec.rule), mode: rec.mode });
    if (this.events && (e.verdict === "VERDICT_DENY" || e.verdict === "VERDICT_WOULD_DENY")) this.events.denied(rec);
    this.onRecorded?.(e);
  }
}
