// Enforcement coverage: for every pod a policy selects, whether a filter is enforcing it — a live
// Watch bound to that pod (filters are bound to their pod by peer address, auth/filter-binding.ts)
// — and when not, why: the pod has no sidecar, its Envoy does not carry the filter (the
// EnvoyFilter's workloadSelector leaves it out), or the filter never connected / went away.
//
// State-based: any change (pods, namespace labels, policies, Watch streams) marks the tracker
// dirty; one refresh recomputes every pod, diffs it against the previous state, and tells
// listeners which policies' figures moved (policy status) — so a burst of changes costs one pass.
// Events go out only for pods that stayed unenforced for `graceMs` (a starting pod's filter needs
// a moment to connect), once per transition.
//
// With several replicas a filter's Watch lives on one of them: `setPeers` adds the other
// replicas' published bindings (coverage-peers.ts), so every replica — the leader that writes
// status included — counts the union, and a new leader starts from the same picture.
import type { Logger } from "../common/log.js";
import type { ReplicaCoverageView } from "./coverage-peers.js";
import { applyBreakGlass, breakGlassFor } from "./break-glass.js";
import type { ControlMetrics } from "./metrics.js";
import type { PolicyApi } from "./policy-api.js";
import { policyKey, type PolicyCatalog } from "./policies.js";
import { podKeyOf, type PodRecord, type PodRegistry } from "./pods.js";

/** Why a selected pod is not enforced. */
export type UnenforcedReason = "no-sidecar" | "envoy-without-filter" | "filter-not-connected";
export const UNENFORCED_REASONS: readonly UnenforcedReason[] = ["no-sidecar", "envoy-without-filter", "filter-not-connected"];

export interface PodCoverage {
  /** "namespace/name" */
  pod: string;
  namespace: string;
  name: string;
  /** Keys of the policies selecting it ("EgressPolicy/ns/name", "ClusterEgressPolicy/name"). */
  policies: string[];
  state: "enforced" | "not-enforced";
  reason?: UnenforcedReason;
  /** Live filter Watch streams bound to the pod. */
  filters: number;
  /** When the pod entered its current state (ms since epoch). */
  since: number;
}

/** What `/coverage` and `egret status` read: selected pods, enforced or not, with the reason. */
export interface CoverageReport {
  selected: number;
  enforced: number;
  notEnforced: number;
  byReason: Record<UnenforcedReason, number>;
  pods: PodCoverage[];
  /** Replicas whose bindings are shared (this one first); absent when replicas do not share. */
  replicas?: ReplicaCoverageView[];
}

/** Other replicas' bindings (coverage-peers.ts `PeerCoverage`). */
export interface PeerBindings {
  filtersOf(key: string): number;
  views(): ReplicaCoverageView[];
}

/** Kubernetes Events for coverage transitions (k8s mode); absent in file mode. */
export interface CoverageEventSink {
  notEnforced(pod: PodCoverage): void;
  enforcedAgain(pod: PodCoverage): void;
}

export interface CoverageOptions {
  registry: PodRegistry;
  catalog: PolicyCatalog;
  policyApi: PolicyApi;
  metrics: ControlMetrics;
  log: Logger;
  now?: () => number;
  /** Labels of the EnvoyFilter's workloadSelector (`egret manifests --selector`); empty: every sidecar. */
  filterSelector?: Record<string, string>;
  breakGlassNamespace?: string;
  /** How long a pod stays unenforced before an Event says so (ms; default 30 s). */
  graceMs?: number;
  /** Refresh delay after a change (ms; default 500: one pass over pods × policies per burst of changes). */
  debounceMs?: number;
}

export class CoverageTracker {
  private readonly filters = new Map<string, number>();
  private state = new Map<string, PodCoverage>();
  /** Pods whose unenforced state was announced by an Event. */
  private readonly announced = new Set<string>();
  private readonly listeners = new Set<(policyKeys: Set<string>) => void>();
  private readonly localListeners = new Set<() => void>();
  private peers?: { bindings: PeerBindings; self: string };
  private events?: CoverageEventSink;
  private timer?: NodeJS.Timeout;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly now: () => number;

  constructor(private readonly o: CoverageOptions) {
    this.now = o.now ?? Date.now;
    this.unsubscribe.push(
      o.registry.onChange(() => this.markDirty()),
      o.catalog.onChange(() => this.markDirty()),
    );
  }

  /** Where Events go (set once the source that can post them has started). */
  setEventSink(sink: CoverageEventSink | undefined): void {
    this.events = sink;
  }

  /** Called with the keys of policies whose coverage figures changed. */
  onChange(listener: (policyKeys: Set<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Counts other replicas' bindings too (`self`: this replica's identity, for the report). */
  setPeers(bindings: PeerBindings | undefined, self = ""): void {
    this.peers = bindings ? { bindings, self } : undefined;
    this.markDirty();
  }

  /** The peers' bindings changed (published, expired, deleted). */
  peersChanged(): void {
    this.markDirty();
  }

  /** Hears every change of this replica's own bindings (what it publishes). */
  onLocalFilters(listener: () => void): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }

  /** This replica's own live bindings: pod key → Watch streams. */
  localFilters(): ReadonlyMap<string, number> {
    return this.filters;
  }

  /** A filter's Watch was bound to the pod; call the returned function when the stream ends. */
  filterConnected(namespace: string, name: string): () => void {
    const key = podKeyOf(namespace, name);
    this.filters.set(key, (this.filters.get(key) ?? 0) + 1);
    this.localChanged();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.filters.get(key) ?? 1) - 1;
      if (n > 0) this.filters.set(key, n);
      else this.filters.delete(key);
      this.localChanged();
    };
  }

  /** Live filter streams bound to the pod, on this replica and on live peers. */
  filtersOf(namespace: string, name: string): number {
    return this.countFilters(podKeyOf(namespace, name));
  }

  /** The coverage of one pod, or undefined when no policy selects it. */
  podCoverage(namespace: string, name: string): PodCoverage | undefined {
    return this.state.get(podKeyOf(namespace, name));
  }

  /** Selected pods (optionally of one namespace), unenforced first. */
  report(filter: { namespace?: string } = {}): CoverageReport {
    const byReason = Object.fromEntries(UNENFORCED_REASONS.map((r) => [r, 0])) as Record<UnenforcedReason, number>;
    const pods = [...this.state.values()].filter((p) => filter.namespace === undefined || p.namespace === filter.namespace);
    pods.sort((a, b) => (a.state === b.state ? (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0) : a.state === "not-enforced" ? -1 : 1));
    let enforced = 0;
    for (const p of pods) {
      if (p.state === "enforced") enforced++;
      else byReason[p.reason!]++;
    }
    const out: CoverageReport = { selected: pods.length, enforced, notEnforced: pods.length - enforced, byReason, pods: pods.map((p) => ({ ...p, policies: [...p.policies] })) };
    if (this.peers) out.replicas = [{ replica: this.peers.self, self: true, pods: this.filters.size, live: true, renewedAt: this.now() }, ...this.peers.bindings.views()];
    return out;
  }

  /** The figures of one policy (for its status). */
  forPolicy(key: string): { selected: number; enforced: number; unenforced: { pod: string; reason: UnenforcedReason }[] } {
    let selected = 0;
    let enforced = 0;
    const unenforced: { pod: string; reason: UnenforcedReason }[] = [];
    for (const p of this.state.values()) {
      if (!p.policies.includes(key)) continue;
      selected++;
      if (p.state === "enforced") enforced++;
      else unenforced.push({ pod: p.pod, reason: p.reason! });
    }
    unenforced.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
    return { selected, enforced, unenforced };
  }

  /** Recomputes every pod now (also what the debounced refresh runs). */
  refresh(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = this.now();
    const next = new Map<string, PodCoverage>();
    const moved = new Set<string>();
    const active = this.o.catalog.active();
    for (const pod of this.o.registry.all()) {
      const key = podKeyOf(pod.namespace, pod.name);
      const policies = this.selecting(pod, active);
      const before = this.state.get(key);
      if (policies.length === 0) {
        if (before) for (const k of before.policies) moved.add(k);
        continue;
      }
      const filters = this.countFilters(key);
      const reason = filters > 0 ? undefined : this.reasonFor(pod);
      const state = reason ? "not-enforced" : "enforced";
      const same = before !== undefined && before.state === state && before.reason === reason;
      const entry: PodCoverage = { pod: key, namespace: pod.namespace, name: pod.name, policies, state, ...(reason ? { reason } : {}), filters, since: same ? before.since : now };
      if (!same || before.policies.join(",") !== policies.join(",")) for (const k of new Set([...policies, ...(before?.policies ?? [])])) moved.add(k);
      next.set(key, entry);
    }
    for (const [key, before] of this.state) if (!next.has(key)) for (const k of before.policies) moved.add(k);
    this.state = next;
    this.announce(now);
    this.updateGauges();
    if (moved.size > 0) for (const l of this.listeners) l(moved);
  }

  /** Applies pending changes now (readers that must agree with the registry, e.g. policy status). */
  refreshIfDirty(): void {
    if (this.timer) this.refresh();
  }

  /** Periodic: Events for pods unenforced past the grace period. */
  tick(): void {
    this.announce(this.now());
  }

  close(): void {
    // Streams that end while the service stops are not published as gone: their filters are
    // reconnecting to another replica, and this replica's published set expires on its own.
    this.localListeners.clear();
    for (const u of this.unsubscribe) u();
    if (this.timer) clearTimeout(this.timer);
  }

  private countFilters(key: string): number {
    return (this.filters.get(key) ?? 0) + (this.peers?.bindings.filtersOf(key) ?? 0);
  }

  private localChanged(): void {
    this.markDirty();
    for (const l of this.localListeners) l();
  }

  private markDirty(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.refresh(), this.o.debounceMs ?? 500);
    this.timer.unref?.();
  }

  private selecting(pod: PodRecord, active: ReturnType<PolicyCatalog["active"]>): string[] {
    const ns = this.o.registry.namespaceLabels(pod.namespace);
    const glass = breakGlassFor(pod.namespace, this.o.breakGlassNamespace, (n) => this.o.registry.namespaceLabels(n));
    const keys: string[] = [];
    for (const p of applyBreakGlass(active, glass)) {
      try {
        if (this.o.policyApi.policySelectsPod(p, pod, ns)) keys.push(policyKey(p.kind, p.namespace, p.name));
      } catch (err) {
        this.o.log.debug({ err, policy: p.ref }, "coverage: policySelectsPod failed; counted as not selecting");
      }
    }
    return keys.sort();
  }

  private reasonFor(pod: PodRecord): UnenforcedReason {
    if (pod.sidecar === false) return "no-sidecar";
    if (pod.sidecar === true && !matchesSelector(pod.labels, this.o.filterSelector ?? {})) return "envoy-without-filter";
    return "filter-not-connected";
  }

  private announce(now: number): void {
    const grace = this.o.graceMs ?? 30_000;
    for (const [key, p] of this.state) {
      if (p.state === "not-enforced" && !this.announced.has(key) && now - p.since >= grace) {
        this.announced.add(key);
        this.o.metrics.coverageTransitions.inc({ to: "not-enforced", reason: p.reason! });
        this.o.log.warn({ pod: key, reason: p.reason, policies: p.policies }, "coverage: a selected pod is not enforced");
        this.events?.notEnforced(p);
      } else if (p.state === "enforced" && this.announced.has(key)) {
        this.announced.delete(key);
        this.o.metrics.coverageTransitions.inc({ to: "enforced", reason: "" });
        this.o.log.info({ pod: key }, "coverage: pod enforced again");
        this.events?.enforcedAgain(p);
      }
    }
    for (const key of this.announced) if (!this.state.has(key)) this.announced.delete(key);
  }

  private updateGauges(): void {
    const r = this.report();
    this.o.metrics.selectedPods.set(r.selected);
    this.o.metrics.enforcedPods.set(r.enforced);
    for (const reason of UNENFORCED_REASONS) this.o.metrics.unenforcedPods.set({ reason }, r.byReason[reason]);
  }
}

function matchesSelector(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
