// TypeScript shapes of the egret.v1 messages as @grpc/proto-loader presents them with the options
// in ./index.ts: field names exactly as in the .proto (snake_case), 64-bit integers as JS numbers,
// enums as their string names (numbers are also accepted when sending), bytes as Buffer
// (any Uint8Array is accepted when sending), and every field present on decode (defaults filled).
// Keep in step with proto/egret/v1/*.proto; the proto lint test checks every field is named here.

export type Verdict = "VERDICT_UNSPECIFIED" | "VERDICT_ALLOW" | "VERDICT_DENY" | "VERDICT_ALERT" | "VERDICT_WOULD_DENY";

export type Reason =
  | "REASON_UNSPECIFIED"
  | "REASON_ALLOWED"
  | "REASON_DENIED_BY_RULE"
  | "REASON_ALERT_BY_RULE"
  | "REASON_DEFAULT_DENY"
  | "REASON_PROTOCOL_MISMATCH"
  | "REASON_SNI_UNVERIFIED"
  | "REASON_HOST_UNVERIFIED"
  | "REASON_UNATTRIBUTED"
  | "REASON_LOOKUP_TIMEOUT"
  | "REASON_CONTROL_UNAVAILABLE"
  | "REASON_NOT_SELECTED"
  | "REASON_DETECTION_TIMEOUT"
  | "REASON_INTERNAL_ERROR"
  | "REASON_CLUSTER_UNVERIFIED"
  | "REASON_REVOKED";

export type NameSource = "NAME_SOURCE_UNSPECIFIED" | "NAME_SOURCE_POD_DNS" | "NAME_SOURCE_MESH_CONFIG";

export type PolicyMode = "POLICY_MODE_UNSPECIFIED" | "POLICY_MODE_ENFORCE" | "POLICY_MODE_MONITOR";
export type DnsTransport = "DNS_TRANSPORT_UNSPECIFIED" | "DNS_TRANSPORT_UDP" | "DNS_TRANSPORT_TCP";
export type WatchRequestType =
  | "WATCH_REQUEST_TYPE_UNSPECIFIED"
  | "WATCH_REQUEST_TYPE_SUBSCRIBE"
  | "WATCH_REQUEST_TYPE_ACK"
  | "WATCH_REQUEST_TYPE_NACK";
export type WatchResponseType = "WATCH_RESPONSE_TYPE_UNSPECIFIED" | "WATCH_RESPONSE_TYPE_SNAPSHOT" | "WATCH_RESPONSE_TYPE_DELTA";
export type LookupResult =
  | "LOOKUP_RESULT_UNSPECIFIED"
  | "LOOKUP_RESULT_FOUND"
  | "LOOKUP_RESULT_NOT_FOUND"
  | "LOOKUP_RESULT_UNKNOWN_POD";

/** Bytes as received (Buffer) or as sent (any Uint8Array). */
export type Bytes = Uint8Array;

export interface ResolvedName {
  name: string;
  cname_chain: string[];
  expires_unix_ms: number;
  /** Unset when sending = pod DNS (the store's entries leave it out). */
  source: NameSource;
  config_ref: string;
  /** ECH public names the pod's HTTPS/SVCB answers for `name` named (empty when none, or from older servers). */
  ech_public_names: string[];
}

export interface Resolution {
  ip: Bytes;
  names: ResolvedName[];
  expires_unix_ms: number;
}

export interface WatchRequest {
  type: WatchRequestType;
  pod_name: string;
  pod_namespace: string;
  pod_ips: Bytes[];
  instance_id: string;
  resume_epoch: string;
  resume_version: number;
  response_version: number;
  response_nonce: string;
  error_detail: string;
}

export interface WatchResponse {
  type: WatchResponseType;
  epoch: string;
  version: number;
  base_version: number;
  nonce: string;
  policy: Bytes;
  policy_hash: string;
  pod_selected: boolean;
  upserts: Resolution[];
  removals: Bytes[];
  server_time_unix_ms: number;
}

export interface LookupRequest {
  source_ip: Bytes;
  destination_ip: Bytes;
  pod_name: string;
  pod_namespace: string;
  wait_ms: number;
  instance_id: string;
  claimed_name: string;
}

export interface LookupResponse {
  result: LookupResult;
  resolution: Resolution | null;
  server_time_unix_ms: number;
}

export interface VerdictEvent {
  time_unix_ms: number;
  pod_name: string;
  pod_namespace: string;
  source_ip: Bytes;
  source_port: number;
  destination_ip: Bytes;
  destination_port: number;
  names: string[];
  protocol: string;
  sni: string;
  host: string;
  verdict: Verdict;
  reason: Reason;
  policy: string;
  rule: string;
  mode: PolicyMode;
  matched_name: string;
  instance_id: string;
  detail: string;
  evidence: NameSource;
  cluster: string;
}

export interface ReportRequest {
  events: VerdictEvent[];
  dropped_events: number;
  opened_connections: OpenedConnection[];
}

/** The sidecar may be opening an upstream connection to this destination now (filter.proto). */
export interface OpenedConnection {
  source_ip: Uint8Array;
  destination_ip: Uint8Array;
  destination_port: number;
  time_unix_ms: number;
}

export interface ReportResponse {
  accepted_events: number;
  rejected_events: number;
}

export interface DnsAnswer {
  ip: Bytes;
  ttl_seconds: number;
}

export interface Observation {
  pod_ip: Bytes;
  query_name: string;
  query_type: number;
  rcode: number;
  cname_chain: string[];
  answers: DnsAnswer[];
  resolver_ip: Bytes;
  resolver_port: number;
  transport: DnsTransport;
  observed_unix_ms: number;
  interface_name: string;
  /** ECH public names from HTTPS/SVCB answers (empty from agents that predate the field). */
  ech_public_names: string[];
  ech_ttl_seconds: number;
}

export interface ObserveRequest {
  agent_id: string;
  sequence: number;
  observations: Observation[];
  replay: boolean;
  capture_drops: number;
}

export interface ObserveResponse {
  acked_sequence: number;
  accepted_observations: number;
  rejected_observations: number;
  server_id: string;
}

// ---- operator.proto (egret observe / egret status) ----------------------------------------

export type LeaderState = "LEADER_STATE_UNSPECIFIED" | "LEADER_STATE_LEADER" | "LEADER_STATE_FOLLOWER";

export interface ObserveVerdictsRequest {
  namespaces: string[];
  pods: string[];
  verdicts: Verdict[];
  reasons: Reason[];
  policies: string[];
  since_unix_ms: number;
  follow: boolean;
}

export interface ObserveVerdictsResponse {
  verdicts: VerdictEvent[];
  dropped_verdicts: number;
  history_done: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface GetStatusRequest {}

export interface ControlReplica {
  name: string;
  ready: boolean;
  leader: LeaderState;
  answering: boolean;
  detail: string;
}

export interface AgentStatus {
  node: string;
  agent_id: string;
  capture_drops: number;
  connected_since_unix_ms: number;
  last_batch_unix_ms: number;
  accepted_observations: number;
  rejected_observations: number;
}

export interface NamespaceFilters {
  namespace: string;
  connected_pods: number;
  known_pods: number;
  selected_pods: number;
  policy_selected_pods: number;
}

export interface NotEnforcedPod {
  namespace: string;
  name: string;
  reason: string;
  since_unix_ms: number;
}

export interface PolicyStatus {
  kind: string;
  namespace: string;
  name: string;
  in_force: boolean;
  ready: boolean;
  mode: PolicyMode;
  messages: string[];
}

export interface DenyCount {
  namespace: string;
  verdict: Verdict;
  reason: Reason;
  count: number;
  last_unix_ms: number;
}

export interface GetStatusResponse {
  server_id: string;
  ready: boolean;
  not_ready_reason: string;
  cluster_visible: boolean;
  replicas: ControlReplica[];
  agents: AgentStatus[];
  filters: NamespaceFilters[];
  policies: PolicyStatus[];
  denies: DenyCount[];
  denies_since_unix_ms: number;
  server_time_unix_ms: number;
  not_enforced_pods: NotEnforcedPod[];
}

export type EgressKind = "EGRESS_KIND_UNSPECIFIED" | "EGRESS_KIND_TCP_SYN" | "EGRESS_KIND_UDP_QUIC" | "EGRESS_KIND_UDP_DNS" | "EGRESS_KIND_UDP_OTHER";

export interface BypassAttempt {
  pod_ip: Bytes;
  source_port: number;
  destination_ip: Bytes;
  destination_port: number;
  kind: EgressKind;
  observed_unix_ms: number;
  last_unix_ms: number;
  packets: number;
  detail: string;
  interface_name: string;
}

export interface EgressRequest {
  agent_id: string;
  attempts: BypassAttempt[];
  dropped_attempts: number;
}

export interface CoveredConnection {
  pod_ip: Bytes;
  destination_ip: Bytes;
  destination_port: number;
  reported_unix_ms: number;
}

export interface EgressResponse {
  covered_connections: CoveredConnection[];
  accepted_attempts: number;
  rejected_attempts: number;
}

/** What a sender writes: every field optional (proto3 defaults apply), bytes as any Uint8Array. */
export type Outgoing<T> = T extends Uint8Array
  ? Uint8Array
  : T extends (infer E)[]
    ? Outgoing<E>[]
    : T extends object
      ? { [K in keyof T]?: Outgoing<T[K]> | null }
      : T;
