// ControlService wires the pieces of `egret control` together. Sources of pods and policies
// (Kubernetes informers, or files) are plugged in through the small ControlSource interface, so
// this module depends on neither; the CLI (and tests) choose one.
//
//   agents ──Observe──► store ──changes──► hub ──Watch deltas──► filters
//                         │                 ▲
//                         └──► lookups ◄────┼──── Lookup
//   source (k8s | files) ──► registry, catalog ──► hub (recompile affected pods)
//   filters ──Report──► reports ──► audit lines, metrics, Kubernetes Events
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "../common/log.js";
import { NoAgentCredentials, type AgentAuthenticator } from "../auth/agent-auth.js";
import { FilterBinder } from "../auth/filter-binding.js";
import { NodeBinding, type HoldLimits } from "../auth/node-binding.js";
import type { PeerLimiter, PeerLimits } from "./peer-limits.js";
import { GrpcEdge, type GrpcLimits } from "./grpc-server.js";
import { HttpEdge, type Route } from "./http-server.js";
import { createPodNamesRoute } from "./pod-names.js";
import type { OperatorAuth } from "../auth/operator-auth.js";
import { WatchHub, type HubLimits } from "./hub.js";
import { LookupService } from "./lookup.js";
import { createControlMetrics, type ControlMetrics } from "./metrics.js";
import type { PolicyApi } from "./policy-api.js";
import { PolicyCatalog } from "./policies.js";
import { PodRegistry } from "./pods.js";
import { ReportSink, type AuditWriter, type DenyEventSink } from "./reports.js";
import { ResolutionStore, type StoreLimits } from "./store.js";
import { MeshConfigTable } from "./mesh-config.js";
import { NoOperatorCredentials, type OperatorAuthenticator } from "../auth/operator-access.js";
import { AgentTracker } from "./agent-tracker.js";
import { OperatorEdge } from "./operator-edge.js";
import type { LeaderView, StatusParts } from "./operator-status.js";
import { VerdictFeed, type FeedLimits } from "./verdict-feed.js";
import { CoverageTracker, type CoverageEventSink } from "./coverage.js";
import { parseHostPort, type HostPortRules } from "../common/host-port.js";
import { BypassHub, type BypassEventSink } from "./bypass.js";
import type { PolicyEngine } from "../policy/index.js";

export interface SourceContext {
  registry: PodRegistry;
  catalog: PolicyCatalog;
  metrics: ControlMetrics;
  /** ServiceEntries (mesh-configuration evidence); sources that know none leave it empty. */
  meshConfig: MeshConfigTable;
  /** Enforcement coverage of selected pods (policy status reads it). */
  coverage?: CoverageTracker;
}

/** Where pods, namespaces and policies come from. */
export interface ControlSource {
  /** Starts feeding registry and catalog; resolves once the first full state is in (or rejects). */
  start(ctx: SourceContext): Promise<void>;
  /** undefined when synced; otherwise why not (shown by /readyz). */
  notReadyReason(): string | undefined;
  /** Why the state served may be out of date (shown by /readyz, /status), or undefined. */
  staleReason?(): string | undefined;
  close(): Promise<void> | void;
  /**
   * Called first on stop, before the filters' streams close: a source that publishes this
   * replica's state for its peers (coverage sharing) stops here, so the closing streams are not
   * published as pods losing their filter (they reconnect to another replica).
   */
  quiesce?(): Promise<void> | void;
  /** Kubernetes Events for denies, when the source has a cluster to post them to. */
  denyEvents?: DenyEventSink;
  /** Kubernetes Events for selected pods no filter enforces. */
  coverageEvents?: CoverageEventSink;
  /** Kubernetes Events for bypass reports. */
  bypassEvents?: BypassEventSink;
}

export interface ControlServiceOptions {
  /** Who may read /debug/names (per-pod evidence); without it the endpoint is not served. */
  operatorAuth?: OperatorAuth;
  policyApi: PolicyApi;
  source: ControlSource;
  log: Logger;
  /** "host:port" for gRPC; port 0 picks a free one. */
  grpcListen: string;
  /** TLS listener (PEM certificate chain and key): AgentService (bearer tokens) is then served only there. */
  tls?: { cert: Buffer; key: Buffer; listen: string; files?: { cert: string; key: string; reloadMs: number } };
  /** "host:port" for HTTP (/metrics, /healthz, /readyz, /status); omit to run without. */
  httpListen?: string;
  audit: AuditWriter;
  now?: () => number;
  clusterCidrs?: string[];
  /** exportTo of ServiceEntries that set none (Istio meshConfig.defaultServiceExportTo; default ["*"]). */
  defaultExportTo?: string[];
  replaceDefaultClusterCidrs?: boolean;
  /** The namespace whose egret.dev/break-glass label applies mesh-wide (break-glass.ts). */
  breakGlassNamespace?: string;
  storeLimits?: Partial<StoreLimits>;
  hubLimits?: Partial<HubLimits>;
  grpcLimits?: Partial<GrpcLimits>;
  maxPendingLookups?: number;
  /** Expiry sweep period (ms). */
  sweepIntervalMs?: number;
  epoch?: string;
  serverId?: string;
  httpRoutes?: Route[];
  metrics?: ControlMetrics;
  /** Who may deliver DNS evidence (default: nobody — every Observe is refused UNAUTHENTICATED). */
  agentAuth?: AgentAuthenticator;
  /** Peer ranges whose filter calls are served unverified (clusters that SNAT pod traffic); default none. */
  filterSnatPeers?: string[];
  /** What one peer address may hold and do on the gRPC port (peer-limits.ts). */
  peerLimits?: Partial<PeerLimits>;
  /** Observations for pod IPs not yet known, held until the pod appears. */
  holdLimits?: Partial<HoldLimits>;
  /** Who may use `egret observe` / `egret status` (gRPC), and which namespaces (default: nobody). */
  operatorAccess?: OperatorAuthenticator;
  /** Recent verdicts kept, and each observer's buffer. */
  feedLimits?: Partial<FeedLimits>;
  /** Leader election, once there is one; undefined: status shows the leader as unknown. */
  leader?: () => LeaderView | undefined;
  /** Labels that mark control's own pods in its namespace (status lists them as replicas). */
  replicaSelector?: { namespace: string; labels: Record<string, string> };
  /** Labels of the EnvoyFilter's workloadSelector (`egret manifests --selector`): sidecars it leaves out are `envoy-without-filter`. */
  filterSelector?: Record<string, string>;
  /** How long a selected pod stays unenforced before it is announced (log, Event); default 30 s. */
  coverageGraceMs?: number;
  /** The engine for bypass reports' would-be verdicts (default: egret.wasm's, loaded on first use). */
  bypassEngine?: () => PolicyEngine;
}

export class ControlService {
  readonly metrics: ControlMetrics;
  readonly store: ResolutionStore;
  readonly registry = new PodRegistry();
  readonly meshConfig: MeshConfigTable;
  readonly catalog: PolicyCatalog;
  readonly hub: WatchHub;
  readonly lookups: LookupService;
  readonly reports: ReportSink;
  readonly serverId: string;
  readonly nodeBinding: NodeBinding;
  readonly feed: VerdictFeed;
  readonly agents: AgentTracker;
  readonly coverage: CoverageTracker;
  readonly bypass: BypassHub;
  private readonly grpc: GrpcEdge;
  private http?: HttpEdge;
  private sweepTimer?: NodeJS.Timeout;
  private synced = false;
  private syncError?: string;
  private stopped = false;

  constructor(private readonly o: ControlServiceOptions) {
    this.metrics = o.metrics ?? createControlMetrics({ defaultMetrics: true });
    this.serverId = o.serverId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.store = new ResolutionStore({
      now: o.now,
      limits: o.storeLimits,
      // A watched pod's policies may ask for a longer grace than the configured one.
      graceFor: (podIp) => {
        const pod = this.registry.byIp(podIp);
        return pod ? this.hub.compiledFor(pod.namespace, pod.name)?.maxGraceSeconds : undefined;
      },
    });
    this.catalog = new PolicyCatalog(o.policyApi);
    this.meshConfig = new MeshConfigTable({ defaultExportTo: o.defaultExportTo });
    this.hub = new WatchHub({
      meshConfig: this.meshConfig,
      store: this.store,
      registry: this.registry,
      catalog: this.catalog,
      policyApi: o.policyApi,
      log: o.log,
      metrics: this.metrics,
      now: o.now,
      limits: o.hubLimits,
      clusterCidrs: o.clusterCidrs,
      replaceDefaultClusterCidrs: o.replaceDefaultClusterCidrs,
      breakGlassNamespace: o.breakGlassNamespace,
      epoch: o.epoch,
    });
    this.lookups = new LookupService(this.store, this.registry, this.metrics, { maxPending: o.maxPendingLookups ?? 100_000 }, o.now, this.meshConfig);
    this.coverage = new CoverageTracker({
      registry: this.registry,
      catalog: this.catalog,
      policyApi: o.policyApi,
      metrics: this.metrics,
      log: o.log,
      now: o.now,
      filterSelector: o.filterSelector,
      breakGlassNamespace: o.breakGlassNamespace,
      graceMs: o.coverageGraceMs,
    });
    this.coverage.setEventSink(o.source.coverageEvents);
    this.bypass = new BypassHub({
      registry: this.registry,
      catalog: this.catalog,
      policyApi: o.policyApi,
      store: this.store,
      coverage: this.coverage,
      audit: o.audit,
      metrics: this.metrics,
      log: o.log,
      now: o.now,
      clusterCidrs: o.clusterCidrs,
      replaceDefaultClusterCidrs: o.replaceDefaultClusterCidrs,
      breakGlassNamespace: o.breakGlassNamespace,
      events: o.source.bypassEvents,
      compiledFor: (namespace, name) => this.hub.compiledFor(namespace, name),
      ...(o.bypassEngine ? { engine: o.bypassEngine } : {}),
    });
    this.feed = new VerdictFeed(o.feedLimits, {
      dropped: () => this.metrics.observeDropped.inc(),
      subscribers: (n) => this.metrics.observeStreams.set(n),
    });
    this.agents = new AgentTracker(o.now);
    this.reports = new ReportSink(o.audit, this.metrics, o.source.denyEvents, (e, bound) => this.bypass.verdict(e, bound), (e) => this.feed.publish(e));
    this.nodeBinding = new NodeBinding(
      this.registry,
      (outcome, ip, node, podNode) => {
        this.metrics.observations.inc({ outcome: outcome === "stored" ? "held_stored" : outcome });
        if (outcome === "foreign_node") {
          this.metrics.foreignNodeObservations.inc({ agent_node: node });
          this.o.log.warn({ podIp: ip, agentNode: node, podNode }, "observe: a held observation's pod is not on the agent's node; rejected");
        }
      },
      o.holdLimits,
      o.now,
    );
    this.grpc = new GrpcEdge({
      registry: this.registry,
      agentAuth: o.agentAuth ?? new NoAgentCredentials(),
      filterBinder: new FilterBinder(this.registry, o.filterSnatPeers ?? []),
      nodeBinding: this.nodeBinding,
      ...(o.tls ? { tls: { cert: o.tls.cert, key: o.tls.key, ...(o.tls.files ? { files: o.tls.files } : {}) } } : {}),
      hub: this.hub,
      coverage: this.coverage,
      bypass: this.bypass,
      lookups: this.lookups,
      store: this.store,
      reports: this.reports,
      metrics: this.metrics,
      log: o.log,
      serverId: this.serverId,
      limits: o.grpcLimits,
      peerLimits: o.peerLimits,
      isReady: () => this.notReadyReason() === undefined,
      now: o.now,
      agents: this.agents,
      operator: new OperatorEdge({
        auth: o.operatorAccess ?? new NoOperatorCredentials(),
        feed: this.feed,
        status: this.statusParts(),
        metrics: this.metrics,
        log: o.log,
      }).handlers(),
    });
    // A pod IP that leaves a pod (deleted, or IP changed) takes that pod's resolutions with it.
    this.registry.onChange((c) => {
      if (c.kind !== "pod" || !c.before) return;
      const kept = new Set(c.after?.ips ?? []);
      for (const ip of c.before.ips) if (!kept.has(ip)) this.store.dropPod(ip);
    });
    this.catalog.onState(() => this.updatePolicyGauges());
  }

  /** The gRPC port's per-peer limits and what each peer holds now. */
  get grpcPeers(): PeerLimiter {
    return this.grpc.peers;
  }

  /** Binds the ports, then syncs the source (ready after it). Resolves to the bound ports. */
  async start(): Promise<{ grpcPort: number; httpPort?: number; tlsPort?: number }> {
    const grpcPort = await this.grpc.listen(this.o.grpcListen);
    const tlsPort = this.o.tls ? await this.grpc.listenTls(this.o.tls.listen) : undefined;
    let httpPort: number | undefined;
    if (this.o.httpListen) {
      this.http = new HttpEdge({
        registry: this.metrics.registry,
        notReadyReason: () => this.notReadyReason(),
        readyDetail: () => this.o.source.staleReason?.(),
        status: () => this.status(),
        routes: [coverageRoute(this.coverage), ...(this.o.operatorAuth ? [this.podNamesRoute(this.o.operatorAuth)] : []), ...(this.o.httpRoutes ?? [])],
      });
      const { host, port } = parseHostPort(this.o.httpListen, "http listen address", LISTEN_ADDRESS);
      httpPort = await this.http.listen(port, host);
    }
    this.sweepTimer = setInterval(() => this.sweep(), this.o.sweepIntervalMs ?? 1000);
    this.sweepTimer.unref();
    try {
      await this.o.source.start({ registry: this.registry, catalog: this.catalog, metrics: this.metrics, meshConfig: this.meshConfig, coverage: this.coverage });
      this.coverage.refresh();
      this.synced = true;
      this.o.log.info({ grpcPort, tlsPort, httpPort, serverId: this.serverId, epoch: this.hub.epoch }, "egret control ready");
    } catch (err) {
      this.syncError = err instanceof Error ? err.message : String(err);
      throw err;
    }
    return { grpcPort, httpPort, tlsPort };
  }

  /** GET /debug/names (pod-names.ts): the names this replica holds for a pod, and why. */
  podNamesRoute(auth: OperatorAuth): Route {
    return createPodNamesRoute({
      registry: this.registry, store: this.store, meshConfig: this.meshConfig,
      compiledFor: (namespace, name) => this.hub.compiledFor(namespace, name), now: this.o.now ?? Date.now,
    }, auth, () => this.notReadyReason());
  }

  notReadyReason(): string | undefined {
    if (this.stopped) return "shutting down";
    if (this.syncError) return `initial sync failed: ${this.syncError}`;
    if (!this.synced) return "initial sync of pods and policies in progress";
    return this.o.source.notReadyReason();
  }

  /** Drops expired resolutions (the hub turns them into removal deltas). */
  sweep(): number {
    this.nodeBinding.expire();
    this.metrics.heldObservations.set(this.nodeBinding.heldObservations);
    const n = this.store.sweep();
    if (n > 0) this.metrics.resolutionExpired.inc(n);
    const c = this.store.counters;
    const size = this.store.size;
    this.metrics.resolutionEntries.set(size.entries);
    this.metrics.resolutionPods.set(size.pods);
    this.syncEvictionCounter("names_per_ip", c.evictedNamesPerIp);
    this.syncEvictionCounter("ips_per_name", c.evictedIpsPerName);
    this.syncEvictionCounter("per_pod", c.evictedPerPod);
    this.syncEvictionCounter("total", c.evictedTotal);
    this.metrics.pods.set(this.registry.all().length);
    this.coverage.tick();
    return n;
  }

  status(): unknown {
    return {
      serverId: this.serverId,
      epoch: this.hub.epoch,
      ready: this.notReadyReason() ?? "ready",
      // One condition per question an operator asks; status "False" says what is wrong.
      conditions: [{
        type: "KubernetesSynced",
        status: this.o.source.staleReason?.() === undefined ? "True" : "False",
        ...(this.o.source.staleReason?.() !== undefined ? { reason: "ApiUnreachable", message: `${this.o.source.staleReason!()}; serving the last known state` } : {}),
      }],
      store: this.store.size,
      watchStreams: this.hub.streamCount,
      watchedPods: this.hub.watchedPods(),
      pendingLookups: this.lookups.pending,
      pods: this.registry.all().length,
      coverage: coverageSummary(this.coverage),
      serviceEntries: this.meshConfig.describe(),
      policies: this.catalog.all().map((s) => ({
        key: s.key,
        ref: s.active?.ref,
        inForce: s.active !== undefined,
        invalid: s.invalid?.messages,
        warnings: s.warnings.length ? s.warnings : undefined,
      })),
    };
  }

  /** What `egret status` reads (control/operator-status.ts). */
  private statusParts(): StatusParts {
    const sel = this.o.replicaSelector;
    return {
      serverId: this.serverId,
      notReadyReason: () => this.notReadyReason(),
      peerReplicas: () =>
        sel ? this.registry.inNamespace(sel.namespace).filter((p) => Object.entries(sel.labels).every(([k, v]) => p.labels[k] === v)).map((p) => p.name) : [],
      leader: () => this.o.leader?.(),
      agents: () => this.agents.rows(),
      pods: () => this.registry.all(),
      connectedFilters: () => this.hub.connectedFilters(),
      policies: () => this.catalog.all(),
      coverage: () => {
        this.coverage.refreshIfDirty();
        return this.coverage.report();
      },
      feed: this.feed,
      now: this.o.now ?? Date.now,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.o.source.quiesce?.();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.feed.close();
    this.lookups.close();
    this.coverage.close();
    await this.grpc.close();
    this.hub.close();
    await this.o.source.close();
    await this.http?.close();
  }

  private readonly evictionSeen: Record<string, number> = {};
  private syncEvictionCounter(bound: string, total: number): void {
    const delta = total - (this.evictionSeen[bound] ?? 0);
    if (delta > 0) this.metrics.resolutionEvictions.inc({ bound }, delta);
    this.evictionSeen[bound] = total;
  }

  private updatePolicyGauges(): void {
    let accepted = 0;
    let keeping = 0;
    let invalid = 0;
    for (const s of this.catalog.all()) {
      if (!s.invalid) accepted++;
      else if (s.active) keeping++;
      else invalid++;
    }
    this.metrics.policies.set({ state: "accepted" }, accepted);
    this.metrics.policies.set({ state: "invalid_keeping_previous" }, keeping);
    this.metrics.policies.set({ state: "invalid" }, invalid);
  }
}

/** /status's coverage part: the figures and the unenforced pods (the full list is /coverage). */
function coverageSummary(coverage: CoverageTracker) {
  const r = coverage.report();
  return {
    selected: r.selected,
    enforced: r.enforced,
    notEnforced: r.notEnforced,
    byReason: r.byReason,
    unenforcedPods: r.pods.filter((p) => p.state === "not-enforced").map((p) => ({ pod: p.pod, reason: p.reason, policies: p.policies, since: new Date(p.since).toISOString() })),
  };
}

/**
 * GET /coverage[?namespace=NS]: every selected pod, enforced or not with the reason — the data
 * `egret status` lists (CoverageReport, JSON).
 */
function coverageRoute(coverage: CoverageTracker): Route {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://control");
    if (url.pathname !== "/coverage") return false;
    const namespace = url.searchParams.get("namespace") ?? undefined;
    const r = coverage.report(namespace ? { namespace } : {});
    const body = { ...r, pods: r.pods.map((p) => ({ ...p, since: new Date(p.since).toISOString() })) };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body, null, 2) + "\n");
    return true;
  };
}


/** Rules of a listen address: ":PORT" = every address, port 0 = any free port. */
export const LISTEN_ADDRESS: HostPortRules = { allowEmptyHost: true, allowPortZero: true };
