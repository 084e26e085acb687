// Kubernetes mode: four supervised informers (Pods, Namespaces, EgressPolicy,
// ClusterEgressPolicy) feed the pod registry and the policy catalog; a status writer and a deny
// Event recorder write back. Ready only after all four have listed once.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Namespace,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "../common/log.js";
import type { PolicyApi } from "../control/policy-api.js";
import type { DenyEventSink as DenySink } from "../control/reports.js";
import type { ControlSource, SourceContext } from "../control/service.js";
import { namespaceLabelsOf, podRecordOf } from "./convert.js";
import { DenyEventRecorder, type EventClient, type EventLimits } from "./events.js";
import { CoverageEventRecorder } from "./coverage-events.js";
import { BypassEventRecorder } from "./bypass-events.js";
import type { BypassEventSink } from "../control/bypass.js";
import type { CoverageEventSink } from "../control/coverage.js";
import { PolicyStatusWriter, type StatusClient } from "./status.js";
import { SupervisedInformer, type BackoffOptions } from "./supervise.js";
import type { LeaderElector } from "./leader.js";
import { COVERAGE_SELECTOR, CoverageShare, kubeConfigMapClient, type ConfigMapClient, type CoverageTiming } from "./coverage-share.js";

export const POLICY_GROUP = "egret.dev";
export const POLICY_VERSION = "v1alpha1";
/** Istio ServiceEntries (mesh-configuration evidence); networking.istio.io/v1 is served from Istio 1.22 on. */
export const SERVICE_ENTRY_GROUP = "networking.istio.io";
export const SERVICE_ENTRY_VERSION = "v1";

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  policyApi: PolicyApi;
  log: Logger;
  backoff?: Partial<BackoffOptions>;
  eventLimits?: Partial<EventLimits>;
  statusDebounceMs?: number;
  /** Who posts Events (reportingInstance). */
  instance?: string;
  /** Write policy status (default true; replicas may all write — the content is identical). */
  writeStatus?: boolean;
  /** A list call unanswered this long counts as failed (default 60 s). */
  listTimeoutMs?: number;
  /**
   * Leader election: only the leader writes policy status and coverage Events (state every replica
   * computes); deny Events stay per replica (each report reaches one replica). Default: no election,
   * every replica writes.
   */
  leader?: LeaderElector;
  /** Watch Istio ServiceEntries for mesh-configuration evidence (default true). */
  serviceEntries?: boolean;
  /**
   * Share coverage with the other replicas (k8s/coverage-share.ts): publish this replica's Watch
   * bindings in a ConfigMap in `namespace` and count every live replica's. Absent: this replica
   * counts only its own filters (one replica, or tests).
   */
  coverageSharing?: { namespace: string; identity: string; timing?: Partial<CoverageTiming>; client?: ConfigMapClient };
}

/** client-node adapters for status and events. */
export function kubeClients(kc: KubeConfig, instance: string): { status: StatusClient; events: EventClient } {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    status: {
      async patchStatus(kind, namespace, name, status) {
        const body = { status };
        if (kind === "ClusterEgressPolicy") {
          await custom.patchClusterCustomObjectStatus({ group: POLICY_GROUP, version: POLICY_VERSION, plural: "clusteregresspolicies", name, body }, merge);
        } else {
          await custom.patchNamespacedCustomObjectStatus(
            { group: POLICY_GROUP, version: POLICY_VERSION, namespace: namespace ?? "", plural: "egresspolicies", name, body },
            merge,
          );
        }
      },
    },
    events: {
      async createEvent(e) {
        await core.createNamespacedEvent({
          namespace: e.namespace,
          body: {
            metadata: { generateName: `${e.podName}.egret-`, namespace: e.namespace },
            involvedObject: { apiVersion: "v1", kind: "Pod", name: e.podName, namespace: e.namespace },
            reason: e.reason,
            message: e.message,
            type: e.type ?? "Warning",
            count: e.count,
            firstTimestamp: e.firstTimestamp,
            lastTimestamp: e.lastTimestamp,
            source: { component: "egret-control" },
            reportingComponent: "egret.dev/control",
            reportingInstance: instance,
          },
        });
      },
    },
  };
}

export class KubeSource implements ControlSource {
  /** Forwards to the recorder created at start() (reports may arrive only after it). */
  readonly denyEvents: DenySink = { denied: (rec) => this.recorder?.denied(rec) };
  private recorder?: DenyEventRecorder;
  /** Forwards to the coverage recorder created at start(). */
  readonly coverageEvents: CoverageEventSink = {
    notEnforced: (p) => (this.writes() ? this.coverageRecorder?.notEnforced(p) : undefined),
    enforcedAgain: (p) => (this.writes() ? this.coverageRecorder?.enforcedAgain(p) : undefined),
  };
  private coverageRecorder?: CoverageEventRecorder;
  /** Forwards to the bypass recorder created at start(). */
  readonly bypassEvents: BypassEventSink = { bypass: (rec) => this.bypassRecorder?.bypass(rec) };
  private bypassRecorder?: BypassEventRecorder;
  private readonly informers: SupervisedInformer<KubernetesObject>[] = [];
  private statusWriter?: PolicyStatusWriter;
  private coverageShare?: CoverageShare;
  private readonly clients: { status: StatusClient; events: EventClient };

  constructor(private readonly o: KubeSourceOptions) {
    this.clients = kubeClients(o.kubeConfig, o.instance ?? "egret-control");
  }

  /** Whether this replica writes state-derived objects now (the leader, or no election). */
  private writes(): boolean {
    return !this.quiescing && (this.o.leader?.isLeader ?? true);
  }
  private quiescing = false;

  async start(ctx: SourceContext): Promise<void> {
    const { registry, catalog, metrics, meshConfig } = ctx;
    this.recorder = new DenyEventRecorder(this.clients.events, this.o.log, metrics, { limits: this.o.eventLimits });
    this.coverageRecorder = new CoverageEventRecorder(this.clients.events, this.o.log, metrics, { limits: this.o.eventLimits });
    this.bypassRecorder = new BypassEventRecorder(this.clients.events, this.o.log, metrics, { limits: this.o.eventLimits });
    const kc = this.o.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const common = {
      kubeConfig: kc,
      log: this.o.log,
      backoff: this.o.backoff,
      onStale: () => this.noteStaleness(metrics),
      onFresh: () => this.noteStaleness(metrics),
      listTimeoutMs: this.o.listTimeoutMs,
    };
    const add = <T extends KubernetesObject>(inf: SupervisedInformer<T>) => this.informers.push(inf as unknown as SupervisedInformer<KubernetesObject>);

    add(
      new SupervisedInformer<V1Namespace>({
        ...common,
        name: "namespaces",
        path: "/api/v1/namespaces",
        list: () => core.listNamespace(),
        onUpsert: (ns) => registry.setNamespace(ns.metadata!.name!, namespaceLabelsOf(ns)),
        onDelete: (ns) => registry.deleteNamespace(ns.metadata!.name!),
        onRestart: () => metrics.informerRestarts.inc({ resource: "namespaces" }),
      }),
    );
    add(
      new SupervisedInformer<V1Pod>({
        ...common,
        name: "pods",
        path: "/api/v1/pods",
        list: () => core.listPodForAllNamespaces(),
        onUpsert: (pod) => {
          const rec = podRecordOf(pod);
          if (rec) registry.upsertPod(rec);
          else if (pod.metadata?.namespace && pod.metadata.name) registry.deletePod(pod.metadata.namespace, pod.metadata.name);
        },
        onDelete: (pod) => registry.deletePod(pod.metadata!.namespace!, pod.metadata!.name!),
        onRestart: () => metrics.informerRestarts.inc({ resource: "pods" }),
      }),
    );
    for (const [kind, plural] of [
      ["EgressPolicy", "egresspolicies"],
      ["ClusterEgressPolicy", "clusteregresspolicies"],
    ] as const) {
      add(
        new SupervisedInformer<KubernetesObject>({
          ...common,
          name: plural,
          path: `/apis/${POLICY_GROUP}/${POLICY_VERSION}/${plural}`,
          list: async () =>
            (await custom.listClusterCustomObject({ group: POLICY_GROUP, version: POLICY_VERSION, plural })) as KubernetesListObject<KubernetesObject>,
          // List items may lack kind/apiVersion; the validator needs them.
          onUpsert: (obj) => catalog.applyObject({ ...obj, apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, kind }),
          onDelete: (obj) => catalog.deleteObject(kind, obj.metadata?.namespace, obj.metadata?.name ?? ""),
          onRestart: () => metrics.informerRestarts.inc({ resource: plural }),
        }),
      );
    }
    if (this.o.serviceEntries !== false) {
      add(
        new SupervisedInformer<KubernetesObject>({
          ...common,
          name: "serviceentries",
          path: `/apis/${SERVICE_ENTRY_GROUP}/${SERVICE_ENTRY_VERSION}/serviceentries`,
          list: async () =>
            (await custom.listClusterCustomObject({ group: SERVICE_ENTRY_GROUP, version: SERVICE_ENTRY_VERSION, plural: "serviceentries" })) as KubernetesListObject<KubernetesObject>,
          onUpsert: (obj) => {
            const r = meshConfig.upsert(obj);
            const ref = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
            if (r.ignored.length > 0) this.o.log.warn({ serviceEntry: ref, ignored: r.ignored }, "ServiceEntry: part ignored as evidence");
          },
          onDelete: (obj) => meshConfig.delete(obj.metadata?.namespace ?? "", obj.metadata?.name ?? ""),
          onRestart: () => metrics.informerRestarts.inc({ resource: "serviceentries" }),
        }),
      );
    }
    const sharing = this.o.coverageSharing;
    if (sharing && ctx.coverage) {
      const share = new CoverageShare({
        client: sharing.client ?? kubeConfigMapClient(kc, sharing.namespace),
        namespace: sharing.namespace,
        identity: sharing.identity,
        tracker: ctx.coverage,
        isLeader: () => this.writes(),
        metrics,
        log: this.o.log,
        timing: sharing.timing,
      });
      this.coverageShare = share;
      add(
        new SupervisedInformer<V1ConfigMap>({
          ...common,
          name: "coverage",
          path: `/api/v1/namespaces/${sharing.namespace}/configmaps`,
          labelSelector: COVERAGE_SELECTOR,
          list: () => core.listNamespacedConfigMap({ namespace: sharing.namespace, labelSelector: COVERAGE_SELECTOR }),
          onUpsert: (cm) => share.upsertObject(cm),
          onDelete: (cm) => share.deleteObject(cm),
          onRestart: () => metrics.informerRestarts.inc({ resource: "configmaps" }),
        }),
      );
    }
    if (this.o.writeStatus !== false) {
      this.statusWriter = new PolicyStatusWriter({
        client: this.clients.status,
        catalog,
        registry,
        policyApi: this.o.policyApi,
        log: this.o.log,
        metrics,
        debounceMs: this.o.statusDebounceMs,
        coverage: ctx.coverage,
        canWrite: () => this.writes(),
      });
    }
    const leader = this.o.leader;
    if (leader) {
      metrics.leader.set(0);
      leader.onChange((leading) => {
        metrics.leader.set(leading ? 1 : 0);
        if (leading) this.statusWriter?.rewriteAll();
      });
    }
    // Namespaces first so pods compile with their namespace labels on the first pass.
    await this.informers[0].start();
    await Promise.all(this.informers.slice(1).map((i) => i.start()));
    this.o.log.info({ resources: this.informers.map((i) => i.name) }, "kubernetes: initial sync done");
    // Every peer's bindings are in the cache now: count them, publish ours.
    this.coverageShare?.start();
    // Campaign once the state is complete, so a new leader's first statuses are right.
    leader?.start();
  }

  /**
   * Why the state served may be out of date (the Kubernetes API has been unreachable for a
   * while), or undefined. Control stays Ready meanwhile: filters keep the last policy, which is
   * better than losing their control plane too.
   */
  staleReason(): string | undefined {
    const stale = this.informers.filter((i) => i.staleSince !== undefined);
    if (stale.length === 0) return undefined;
    const since = Math.min(...stale.map((i) => i.staleSince!));
    return `Kubernetes API unreachable: ${stale.map((i) => i.name).join(", ")} stale since ${new Date(since).toISOString()} (${stale[0]!.lastError ?? "no answer"})`;
  }

  private noteStaleness(metrics: SourceContext["metrics"]): void {
    metrics.kubernetesStale.set(this.staleReason() === undefined ? 0 : 1);
  }

  notReadyReason(): string | undefined {
    const pending = this.informers.filter((i) => !i.synced);
    if (this.informers.length === 0) return "informers not started";
    if (pending.length === 0) return undefined;
    return `waiting for the first list of ${pending.length} resource(s)`;
  }

  /** Writes pending statuses now (tests). */
  flushStatus(): Promise<void> {
    return this.statusWriter?.flush() ?? Promise.resolve();
  }

  /**
   * Before the filters' streams close: a stopping replica neither publishes its shrinking bindings
   * nor, as leader, writes status or Events saying its pods lost their filter — they reconnect to
   * another replica. It hands the Lease over so the next leader starts at once.
   */
  async quiesce(): Promise<void> {
    this.quiescing = true;
    this.coverageShare?.stop();
    this.statusWriter?.close();
    await this.o.leader?.stop();
  }

  async close(): Promise<void> {
    await this.o.leader?.stop();
    this.coverageShare?.stop();
    this.statusWriter?.close();
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
