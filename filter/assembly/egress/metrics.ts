// Every metric the enforcement filter defines, in one list (Envoy's ALL_*_STATS style). Envoy
// exposes them as `wasmcustom.egret_*` (Prometheus: `egret_*`), summed over all VMs of a proxy.
// Defined once per VM in on_configure; updating a metric never allocates.
import { Metric, counter, gauge, histogram } from "../abi/metrics";

// Indexes into VERDICT_COUNTERS follow egret.v1.Verdict; REASON_COUNTERS follow egret.v1.Reason.
const VERDICT_NAMES: string[] = ["unspecified", "allow", "deny", "alert", "would_deny"];
export const REASON_NAMES: string[] = [
  "unspecified", "allowed", "denied_by_rule", "alert_by_rule", "default_deny", "protocol_mismatch",
  "sni_unverified", "host_unverified", "unattributed", "lookup_timeout", "control_unavailable",
  "not_selected", "detection_timeout", "internal_error", "cluster_unverified",
  "revoked",
];

export class EgressMetrics {
  /** egret_connections_<verdict>: decided connections by verdict. */
  readonly verdicts: Metric[] = [];
  /** egret_decisions_<reason>: decided connections by reason. */
  readonly reasons: Metric[] = [];
  /** Connections held in on_new_connection while Lookup asks control (the race). */
  readonly holdsLookup: Metric = counter("egret_holds_lookup");
  /** Connections whose client bytes were held for the protocol detector. */
  readonly holdsDetect: Metric = counter("egret_holds_detect");
  /** Connections held because no snapshot had arrived yet. */
  readonly holdsStartup: Metric = counter("egret_holds_startup");
  readonly lookupFound: Metric = counter("egret_lookup_found");
  readonly lookupNotFound: Metric = counter("egret_lookup_not_found");
  readonly lookupTimeout: Metric = counter("egret_lookup_timeout");
  readonly lookupFailed: Metric = counter("egret_lookup_failed");
  /** Lookup calls started again after a transport failure. */
  readonly lookupRetries: Metric = counter("egret_lookup_retries");
  /** Connections to ServiceEntry addresses whose verdict was cross-checked against xds.cluster_name. */
  readonly clusterChecks: Metric = counter("egret_cluster_checks");
  /** ECH ClientHellos allowed (opt-in) on the names whose HTTPS/SVCB answers, as this pod got them, named the outer SNI. */
  readonly echNarrowed: Metric = counter("egret_ech_narrowed");
  /** Time a connection was held for Lookup, in ms. */
  readonly lookupLatencyMs: Metric = histogram("egret_lookup_latency_ms");
  /** Time client bytes were held for detection, in ms. */
  readonly detectLatencyMs: Metric = histogram("egret_detect_latency_ms");
  readonly detectTimeouts: Metric = counter("egret_detect_timeouts");
  /** Connections closed on the first server bytes (server-first protocols). */
  readonly upstreamCloses: Metric = counter("egret_upstream_closes");
  /** Connections whose h2c server sent its preface (SETTINGS) before a verdict: held, not judged. */
  readonly h2ServerPrefaceHeld: Metric = counter("egret_h2_server_preface_held");
  readonly tableEntries: Metric = gauge("egret_table_entries");
  readonly tableNames: Metric = gauge("egret_table_names");
  readonly tableEvictions: Metric = counter("egret_table_evictions");
  readonly tableExpired: Metric = counter("egret_table_expired");
  readonly tableRejected: Metric = counter("egret_table_rejected");
  readonly watchConnected: Metric = gauge("egret_watch_connected");
  readonly watchReconnects: Metric = counter("egret_watch_reconnects");
  readonly watchSnapshots: Metric = counter("egret_watch_snapshots");
  readonly watchDeltas: Metric = counter("egret_watch_deltas");
  readonly watchNacks: Metric = counter("egret_watch_nacks");
  readonly policyLoaded: Metric = gauge("egret_policy_loaded");
  readonly reportEventsSent: Metric = counter("egret_report_events_sent");
  readonly reportEventsDropped: Metric = counter("egret_report_events_dropped");
  readonly reportBatches: Metric = counter("egret_report_batches");
  /** OpenedConnection entries queued: connections that went upstream before their verdict, or carried bytes long after it. */
  readonly openedReported: Metric = counter("egret_report_opened_connections");
  /** OpenedConnection entries the full Report buffer could not take (their SYN may be reported as a bypass). */
  readonly openedDropped: Metric = counter("egret_report_opened_connections_dropped");
  readonly pendingConnections: Metric = gauge("egret_pending_connections");
  readonly internalErrors: Metric = counter("egret_internal_errors");
  /** Open connections judged again after a policy change (those now denied count as decisions_revoked). */
  readonly rejudged: Metric = counter("egret_rejudged_connections");

  constructor() {
    for (let i = 0; i < VERDICT_NAMES.length; i++) this.verdicts.push(counter("egret_connections_" + VERDICT_NAMES[i]));
    for (let i = 0; i < REASON_NAMES.length; i++) this.reasons.push(counter("egret_decisions_" + REASON_NAMES[i]));
  }

  decided(verdict: i32, reason: i32): void {
    if (verdict >= 0 && verdict < this.verdicts.length) unchecked(this.verdicts[verdict]).increment(1);
    if (reason >= 0 && reason < this.reasons.length) unchecked(this.reasons[reason]).increment(1);
  }
}
