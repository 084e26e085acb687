// Every Prometheus metric egret control exports, declared in one place, on a registry owned by
// the service instance (no global default registry: tests run several services in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createControlMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "egret_control_process_" });
  const r = [registry];
  return {
    registry,
    verdicts: new Counter({
      name: "egret_control_verdicts_total",
      help: "Verdict events reported by filters, by verdict, reason, policy, rule and mode",
      labelNames: ["verdict", "reason", "policy", "rule", "mode"] as const,
      registers: r,
    }),
    reportEventsRejected: new Counter({
      name: "egret_control_report_events_rejected_total",
      help: "Verdict events refused (malformed), by cause",
      labelNames: ["cause"] as const,
      registers: r,
    }),
    reportEventsDroppedByFilters: new Counter({
      name: "egret_control_report_events_dropped_by_filters_total",
      help: "Verdict events filters say they dropped before sending (their buffer was full)",
      registers: r,
    }),
    observations: new Counter({
      name: "egret_control_observations_total",
      help: "DNS observations received from agents, by outcome (stored, negative, or the rejection reason)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    observeBatches: new Counter({
      name: "egret_control_observe_batches_total",
      help: "Observation batches received, by kind (live, replay) ",
      labelNames: ["kind"] as const,
      registers: r,
    }),
    observeSequenceGaps: new Counter({
      name: "egret_control_observe_sequence_gaps_total",
      help: "Batches whose sequence number skipped ahead (batches lost between agent and replica)",
      registers: r,
    }),
    agentAuth: new Counter({
      name: "egret_control_agent_auth_total",
      help: "Observe stream authentications, by outcome (ok, missing, malformed, invalid, expired, wrong_audience, forbidden, unavailable, not_configured)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    peerLimitExceeded: new Counter({
      name: "egret_control_peer_limit_exceeded_total",
      help: "Refusals because one peer address exceeded a per-peer limit: streams, lookups, connections, message_size, keepalive",
      labelNames: ["limit"] as const,
      registers: r,
    }),
    tokenReviews: new Counter({
      name: "egret_control_token_reviews_total",
      help: "Agent token checks in Kubernetes mode: cache_hit (no API call), reviewed (a TokenReview answered), error (the API could not be asked)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    agentStreamsExpired: new Counter({
      name: "egret_control_agent_streams_expired_total",
      help: "Observe streams ended because the agent's token expired (the agent reconnects with its rotated token)",
      registers: r,
    }),
    foreignNodeObservations: new Counter({
      name: "egret_control_foreign_node_observations_total",
      help: "Observations rejected because their pod is not scheduled on the reporting agent's node, by the agent's node",
      labelNames: ["agent_node"] as const,
      registers: r,
    }),
    heldObservations: new Gauge({
      name: "egret_control_held_observations",
      help: "Observations for pod IPs not yet known, held until the pod appears (then judged by its node)",
      registers: r,
    }),
    filterBinding: new Counter({
      name: "egret_control_filter_binding_total",
      help: "Filter calls checked against the pod owning the peer address, by call (watch, lookup, report) and outcome (bound, unverified_snat, denied)",
      labelNames: ["call", "outcome"] as const,
      registers: r,
    }),
    leader: new Gauge({ name: "egret_control_leader", help: "1 while this replica holds the leader Lease (writes policy status and coverage Events); 0 otherwise", registers: r }),
    agentStreams: new Gauge({ name: "egret_control_agent_streams", help: "Open Observe streams", registers: r }),
    resolutionEntries: new Gauge({ name: "egret_control_resolution_entries", help: "Entries (pod, ip, name) in the resolution store", registers: r }),
    resolutionPods: new Gauge({ name: "egret_control_resolution_pods", help: "Pod IPs holding resolutions", registers: r }),
    resolutionEvictions: new Counter({
      name: "egret_control_resolution_evictions_total",
      help: "Resolution entries evicted by a bound (names_per_ip, ips_per_name, per_pod, total)",
      labelNames: ["bound"] as const,
      registers: r,
    }),
    resolutionExpired: new Counter({ name: "egret_control_resolution_expired_total", help: "Resolution entries expired", registers: r }),
    watchStreams: new Gauge({ name: "egret_control_watch_streams", help: "Open Watch streams", registers: r }),
    watchResponses: new Counter({
      name: "egret_control_watch_responses_total",
      help: "Watch responses sent, by type (snapshot, delta)",
      labelNames: ["type"] as const,
      registers: r,
    }),
    watchAcks: new Counter({
      name: "egret_control_watch_acks_total",
      help: "Watch acknowledgements received, by kind (ack, nack)",
      labelNames: ["kind"] as const,
      registers: r,
    }),
    watchResumes: new Counter({
      name: "egret_control_watch_resumes_total",
      help: "Watch subscriptions that asked to resume, by outcome (delta, snapshot)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    watchIdentityMismatches: new Counter({
      name: "egret_control_watch_identity_mismatches_total",
      help: "SUBSCRIBEs whose pod_ips share no address with the pod's known IPs (misconfiguration or a stale pod)",
      registers: r,
    }),
    lookups: new Counter({
      name: "egret_control_lookups_total",
      help: "Lookups answered, by result (found, found_after_wait, not_found, unknown_pod, error)",
      labelNames: ["result"] as const,
      registers: r,
    }),
    lookupWait: new Histogram({
      name: "egret_control_lookup_wait_seconds",
      help: "Time a Lookup waited for its observation (only Lookups that waited)",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    }),
    lookupsPending: new Gauge({ name: "egret_control_lookups_pending", help: "Lookups waiting for an observation", registers: r }),
    policyCompiles: new Counter({
      name: "egret_control_policy_compiles_total",
      help: "Per-pod snapshot compilations, by outcome (changed, unchanged, error)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    policies: new Gauge({
      name: "egret_control_policies",
      help: "Policies known, by state (accepted, invalid_keeping_previous, invalid)",
      labelNames: ["state"] as const,
      registers: r,
    }),
    pods: new Gauge({ name: "egret_control_pods", help: "Pods known (with at least one IP)", registers: r }),
    kubernetesStale: new Gauge({
      name: "egret_control_kubernetes_stale",
      help: "1 while the Kubernetes API has been unreachable past the stale threshold: control serves the last known pods and policies",
      registers: r,
    }),
    informerRestarts: new Counter({
      name: "egret_control_informer_restarts_total",
      help: "Kubernetes informer restarts after an error, by resource",
      labelNames: ["resource"] as const,
      registers: r,
    }),
    statusWrites: new Counter({
      name: "egret_control_policy_status_writes_total",
      help: "Policy status updates written to Kubernetes, by outcome (ok, error)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    kubeEvents: new Counter({
      name: "egret_control_kubernetes_events_total",
      help: "Kubernetes Events (denies, coverage, bypass), by outcome (posted, rate_limited, error)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    operatorAuth: new Counter({
      name: "egret_control_operator_auth_total",
      help: "egret observe/status calls authenticated, by outcome (ok, missing, malformed, invalid, unavailable, not_configured)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    observeStreams: new Gauge({ name: "egret_control_observe_streams", help: "Open egret observe --follow streams", registers: r }),
    observeDropped: new Counter({
      name: "egret_control_observe_dropped_total",
      help: "Verdict events not delivered to an egret observe stream because it read too slowly (its buffer was full)",
      registers: r,
    }),
    // Enforcement coverage (coverage.ts): pods some policy selects, enforced by a connected filter or not.
    selectedPods: new Gauge({ name: "egret_control_selected_pods", help: "Pods selected by at least one policy", registers: r }),
    enforcedPods: new Gauge({ name: "egret_control_enforced_pods", help: "Selected pods with a filter connected (a live Watch bound to the pod)", registers: r }),
    unenforcedPods: new Gauge({
      name: "egret_control_unenforced_pods",
      help: "Selected pods no filter enforces, by reason (no-sidecar, envoy-without-filter, filter-not-connected)",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    coverageTransitions: new Counter({
      name: "egret_control_coverage_transitions_total",
      help: "Selected pods announced unenforced (after the grace period) or enforced again, by state reached and reason",
      labelNames: ["to", "reason"] as const,
      registers: r,
    }),
    // Coverage shared across replicas (coverage-peers.ts, k8s/coverage-share.ts).
    coveragePublishes: new Counter({
      name: "egret_control_coverage_publishes_total",
      help: "Writes of this replica's Watch bindings (its coverage ConfigMap), by outcome (created, updated, conflict, error)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    coveragePeers: new Gauge({
      name: "egret_control_coverage_peers",
      help: "Other replicas' published bindings this replica sees, by state (live: counted; expired: stopped renewing, not counted)",
      labelNames: ["state"] as const,
      registers: r,
    }),
    coveragePeerObjectsRejected: new Counter({
      name: "egret_control_coverage_peer_objects_rejected_total",
      help: "Peers' coverage objects that could not be read (their bindings are not counted)",
      registers: r,
    }),
    // Bypass reports (bypass.ts): egress agents saw leave a pod without the filter's verdict.
    bypassEvents: new Counter({
      name: "egret_control_bypass_events_total",
      help: "Bypasses reported (audit line egret.bypass), by protocol (tcp, quic, dns, udp) and likely cause",
      labelNames: ["protocol", "cause"] as const,
      registers: r,
    }),
    bypassAttempts: new Counter({
      name: "egret_control_bypass_attempts_total",
      help: "Bypass attempts received from agents, by outcome (reported, not_selected, unknown_pod, foreign_node, invalid)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    bypassDroppedByAgents: new Counter({
      name: "egret_control_bypass_dropped_by_agents_total",
      help: "Bypass candidates agents say they dropped (a pod over its rate, bounds), by the agent's node",
      labelNames: ["agent_node"] as const,
      registers: r,
    }),
    egressStreams: new Gauge({ name: "egret_control_egress_streams", help: "Open agent Egress streams (bypass detection)", registers: r }),
    openedConnections: new Counter({
      name: "egret_control_opened_connections_total",
      help: "OpenedConnection entries filters reported (a connection going upstream before its verdict, or new bytes long after it), by outcome (covered: passed to the agents; ignored: not the bound pod's source or malformed)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
    coveredSent: new Counter({
      name: "egret_control_covered_connections_sent_total",
      help: "Connections a filter reported, sent to the agents of the pod's node (so they can tell the sidecar's SYNs from bypasses)",
      registers: r,
    }),
    fileReloads: new Counter({
      name: "egret_control_file_reloads_total",
      help: "File-mode reloads, by outcome (ok, error)",
      labelNames: ["outcome"] as const,
      registers: r,
    }),
  };
}

export type ControlMetrics = ReturnType<typeof createControlMetrics>;
