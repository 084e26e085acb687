// `egret status` (OperatorService.GetStatus): one screen of what this replica knows — replicas
// and the leader, agents and their capture drops, connected filters per namespace, policies and
// their readiness, recent denies by reason — with every row the caller may not read left out:
// namespaced rows by namespace, cluster-wide rows only for callers who may list
// ClusterEgressPolicies.
import type { OperatorAccess } from "../auth/operator-access.js";
import type {
  AgentStatus,
  ControlReplica,
  DenyCount,
  GetStatusResponse,
  LeaderState,
  NamespaceFilters,
  PolicyMode,
  PolicyStatus,
  Reason,
  Verdict,
} from "../proto/messages.js";
import type { PolicyState } from "./policies.js";
import type { CoverageReport } from "./coverage.js";
import type { PodRecord } from "./pods.js";
import type { VerdictFeed } from "./verdict-feed.js";

/** What the leader election knows, when there is one (trust's Lease); undefined: none. */
export interface LeaderView {
  /** The current holder's identity, if known. */
  holder?: string;
  /** Whether this replica holds the lease. */
  self: boolean;
}

/** The parts of a control replica the status reads. */
export interface StatusParts {
  serverId: string;
  notReadyReason(): string | undefined;
  /** The other control replicas this one knows of (e.g. from the pod list), by name. */
  peerReplicas(): string[];
  leader(): LeaderView | undefined;
  agents(): AgentStatus[];
  pods(): PodRecord[];
  /** Pods with an open Watch stream: key "namespace/name" → at least one policy selects it. */
  connectedFilters(): Map<string, boolean>;
  policies(): PolicyState[];
  /** Enforcement coverage of selected pods (control/coverage.ts). */
  coverage(): CoverageReport;
  feed: VerdictFeed;
  now(): number;
}

export async function buildStatus(parts: StatusParts, access: OperatorAccess): Promise<GetStatusResponse> {
  const cluster = await access.canReadCluster();
  const readable = await readableNamespaces(parts, access);
  const notReady = parts.notReadyReason();
  const coverage = parts.coverage();
  return {
    server_id: parts.serverId,
    ready: notReady === undefined,
    not_ready_reason: notReady ?? "",
    cluster_visible: cluster,
    replicas: cluster ? replicaRows(parts, notReady, coverage) : [],
    agents: cluster ? parts.agents() : [],
    filters: filterRows(parts, readable, coverage),
    policies: policyRows(parts.policies(), readable, cluster),
    denies: denyRows(parts.feed, readable),
    denies_since_unix_ms: parts.feed.oldestMs(),
    server_time_unix_ms: parts.now(),
    not_enforced_pods: coverage.pods
      .filter((p) => p.state === "not-enforced" && readable.has(p.namespace))
      .map((p) => ({ namespace: p.namespace, name: p.name, reason: p.reason ?? "", since_unix_ms: p.since })),
  };
}

/** Every namespace any row could name, each checked once. */
async function readableNamespaces(parts: StatusParts, access: OperatorAccess): Promise<Set<string>> {
  const names = new Set<string>();
  for (const p of parts.pods()) names.add(p.namespace);
  for (const s of parts.policies()) if (s.namespace) names.add(s.namespace);
  for (const e of parts.feed.retained()) names.add(e.pod_namespace);
  for (const p of parts.coverage().pods) names.add(p.namespace);
  const checked = await Promise.all([...names].map(async (ns) => [ns, await access.canReadNamespace(ns)] as const));
  return new Set(checked.filter(([, ok]) => ok).map(([ns]) => ns));
}

function replicaRows(parts: StatusParts, notReady: string | undefined, coverage: CoverageReport): ControlReplica[] {
  const lead = parts.leader();
  const selfState: LeaderState = lead === undefined ? "LEADER_STATE_UNSPECIFIED" : lead.self ? "LEADER_STATE_LEADER" : "LEADER_STATE_FOLLOWER";
  const self: ControlReplica = {
    name: parts.serverId,
    ready: notReady === undefined,
    leader: selfState,
    answering: true,
    detail: notReady ?? (lead === undefined ? "leader unknown: no leader election on this replica" : ""),
  };
  // Replicas sharing coverage publish their bindings (coverage-peers.ts): say whether each still renews.
  const shared = new Map((coverage.replicas ?? []).filter((r) => !r.self).map((r) => [r.replica, r]));
  const names = new Set([...parts.peerReplicas(), ...shared.keys()]);
  names.delete(parts.serverId);
  const peers = [...names].map((name): ControlReplica => {
    const c = shared.get(name);
    const ago = c ? Math.max(0, Math.round((parts.now() - c.renewedAt) / 1000)) : 0;
    return {
      name,
      ready: false,
      leader: lead?.holder === undefined ? "LEADER_STATE_UNSPECIFIED" : lead.holder === name ? "LEADER_STATE_LEADER" : "LEADER_STATE_FOLLOWER",
      answering: false,
      detail: c
        ? c.live
          ? `shares coverage: ${c.pods} pods' filters bound there, renewed ${ago}s ago`
          : `coverage expired: not renewed for ${ago}s (its pods count as not connected)`
        : "known from the pod list; readiness not asked (egret status --control ADDRESS of that replica)",
    };
  });
  return [self, ...peers.sort((a, b) => a.name.localeCompare(b.name))];
}

function filterRows(parts: StatusParts, readable: Set<string>, coverage: CoverageReport): NamespaceFilters[] {
  const rows = new Map<string, NamespaceFilters>();
  const row = (ns: string) => {
    let r = rows.get(ns);
    if (!r) rows.set(ns, (r = { namespace: ns, connected_pods: 0, known_pods: 0, selected_pods: 0, policy_selected_pods: 0 }));
    return r;
  };
  for (const p of parts.pods()) if (readable.has(p.namespace)) row(p.namespace).known_pods++;
  for (const p of coverage.pods) if (readable.has(p.namespace)) row(p.namespace).policy_selected_pods++;
  for (const [key, selected] of parts.connectedFilters()) {
    const ns = key.slice(0, key.indexOf("/"));
    if (!readable.has(ns)) continue;
    row(ns).connected_pods++;
    if (selected) row(ns).selected_pods++;
  }
  return [...rows.values()].sort((a, b) => a.namespace.localeCompare(b.namespace));
}

function policyRows(states: PolicyState[], readable: Set<string>, cluster: boolean): PolicyStatus[] {
  return states
    .filter((s) => (s.namespace ? readable.has(s.namespace) : cluster))
    .map((s) => {
      const mode: PolicyMode = s.active?.mode === "Monitor" ? "POLICY_MODE_MONITOR" : s.active ? "POLICY_MODE_ENFORCE" : "POLICY_MODE_UNSPECIFIED";
      return {
        kind: s.kind,
        namespace: s.namespace ?? "",
        name: s.name,
        in_force: s.active !== undefined,
        ready: s.invalid === undefined,
        mode,
        messages: s.invalid?.messages ?? s.warnings,
      };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}

function denyRows(feed: VerdictFeed, readable: Set<string>): DenyCount[] {
  const rows = new Map<string, DenyCount>();
  for (const e of feed.retained()) {
    if (e.verdict !== "VERDICT_DENY" && e.verdict !== "VERDICT_WOULD_DENY") continue;
    if (!readable.has(e.pod_namespace)) continue;
    const key = `${e.pod_namespace}\u0000${e.verdict}\u0000${e.reason}`;
    const r = rows.get(key) ?? { namespace: e.pod_namespace, verdict: e.verdict as Verdict, reason: e.reason as Reason, count: 0, last_unix_ms: 0 };
    r.count++;
    r.last_unix_ms = Math.max(r.last_unix_ms, e.time_unix_ms);
    rows.set(key, r);
  }
  return [...rows.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || b.count - a.count || a.reason.localeCompare(b.reason));
}
