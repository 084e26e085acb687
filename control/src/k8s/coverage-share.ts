// Coverage shared across control replicas through the Kubernetes API. Each replica publishes the
// pods its filters' Watch streams are bound to in a ConfigMap of its own
// (`egret-coverage-<replica>` in control's namespace, label egret.dev/coverage=replica), rewritten
// when the set changes (at most every `publishDelayMs`) and renewed every `renewMs`; every replica
// watches all of them (control/src/control/coverage-peers.ts counts live peers' sets). Why objects
// in the API and not replicas asking each other: it is state, reconciled like everything else
// control reads (an informer, no new port, no replica-to-replica credentials or NetworkPolicy hole);
// every replica — not only the leader — holds the union, so a new leader starts from the same
// picture (no Event burst on failover) and `/status` on any replica is cluster-wide.
//
// A replica that dies stops renewing: readers drop its set `leaseDurationMs` after they last saw it
// renew (their own clock). A stopping replica leaves its object in place: its filters reconnect to
// another replica meanwhile, so their pods never flap to "not connected". The leader deletes
// objects that stayed expired for `gcAfterMs`.
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "../common/log.js";
import type { CoverageTracker } from "../control/coverage.js";
import { PeerCoverage, decodeCoveragePods, encodeCoveragePods } from "../control/coverage-peers.js";
import type { ControlMetrics } from "../control/metrics.js";

export const COVERAGE_LABEL = "egret.dev/coverage";
export const COVERAGE_LABEL_VALUE = "replica";
export const COVERAGE_SELECTOR = `${COVERAGE_LABEL}=${COVERAGE_LABEL_VALUE}`;
const PODS_KEY = "pods.gz";

export interface CoverageTiming {
  /** Renew (rewrite) this replica's object at least this often (ms). */
  renewMs: number;
  /** Readers drop a set not renewed for this long (ms). */
  leaseDurationMs: number;
  /** A changed set is written at most this long after the change (ms). */
  publishDelayMs: number;
  /** The leader deletes objects expired for this long (ms). */
  gcAfterMs: number;
}

export const DEFAULT_COVERAGE_TIMING: CoverageTiming = { renewMs: 10_000, leaseDurationMs: 30_000, publishDelayMs: 1_000, gcAfterMs: 300_000 };

/** The ConfigMap API in control's namespace (client-node in production, with RBAC of the Role egret-control-coverage). */
export interface ConfigMapClient {
  get(name: string): Promise<V1ConfigMap | undefined>;
  create(cm: V1ConfigMap): Promise<V1ConfigMap>;
  /** Rejects with `{ code: 409 }` on a stale resourceVersion, `{ code: 404 }` when gone. */
  replace(cm: V1ConfigMap): Promise<V1ConfigMap>;
  delete(name: string, resourceVersion?: string): Promise<void>;
}

export function kubeConfigMapClient(kc: KubeConfig, namespace: string): ConfigMapClient {
  const api = kc.makeApiClient(CoreV1Api);
  return {
    async get(name) {
      try {
        return await api.readNamespacedConfigMap({ name, namespace });
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    create: (body) => api.createNamespacedConfigMap({ namespace, body }),
    replace: (body) => api.replaceNamespacedConfigMap({ name: body.metadata!.name!, namespace, body }),
    async delete(name, resourceVersion) {
      await api.deleteNamespacedConfigMap({ name, namespace, body: resourceVersion ? { preconditions: { resourceVersion } } : {} });
    },
  };
}

/** The object name of a replica's bindings (DNS-1123: lower case, at most 253 characters). */
export function coverageObjectName(replica: string): string {
  const clean = replica.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  return `egret-coverage-${clean || "replica"}`.slice(0, 253);
}

export interface CoverageShareOptions {
  client: ConfigMapClient;
  namespace: string;
  /** This replica (the pod name). */
  identity: string;
  tracker: CoverageTracker;
  /** Whether this replica may delete expired peers' objects (the leader). */
  isLeader: () => boolean;
  metrics: ControlMetrics;
  log: Logger;
  timing?: Partial<CoverageTiming>;
  now?: () => number;
}

export class CoverageShare {
  readonly peers: PeerCoverage;
  private readonly timing: CoverageTiming;
  private readonly now: () => number;
  private readonly name: string;
  private resourceVersion?: string;
  private lastWrite = -Infinity;
  private dirty = true;
  private writing = false;
  private timer?: NodeJS.Timeout;
  private publishTimer?: NodeJS.Timeout;
  private stopped = false;
  private unsubscribe?: () => void;

  constructor(private readonly o: CoverageShareOptions) {
    this.timing = { ...DEFAULT_COVERAGE_TIMING, ...o.timing };
    if (this.timing.renewMs >= this.timing.leaseDurationMs) throw new Error("coverage sharing: renewMs must be shorter than leaseDurationMs");
    this.now = o.now ?? Date.now;
    this.name = coverageObjectName(o.identity);
    this.peers = new PeerCoverage({ self: o.identity, now: o.now, onChange: () => this.peersChanged() });
  }

  /** Informer event: a replica's object was added or changed (this replica's own is ignored). */
  upsertObject(cm: V1ConfigMap): void {
    const replica = cm.data?.replica;
    if (!replica || cm.metadata?.labels?.[COVERAGE_LABEL] !== COVERAGE_LABEL_VALUE) return;
    let pods: Map<string, number>;
    try {
      const packed = cm.binaryData?.[PODS_KEY];
      pods = packed ? decodeCoveragePods(Buffer.from(packed, "base64")) : new Map();
    } catch (err) {
      // Counted as publishing nothing: an unreadable set must not make pods look enforced.
      this.o.metrics.coveragePeerObjectsRejected.inc();
      this.o.log.warn({ object: cm.metadata?.name, err: (err as Error).message }, "coverage sharing: a replica's bindings could not be read; its pods are not counted");
      pods = new Map();
    }
    const leaseDurationMs = Number(cm.data?.leaseDurationMs);
    this.peers.upsert({
      replica,
      renewTime: cm.data?.renewTime ?? "",
      leaseDurationMs: Number.isFinite(leaseDurationMs) && leaseDurationMs > 0 ? leaseDurationMs : this.timing.leaseDurationMs,
      pods,
    });
  }

  /** Informer event: a replica's object was deleted. */
  deleteObject(cm: V1ConfigMap): void {
    const replica = cm.data?.replica;
    if (replica) this.peers.delete(replica);
  }

  /** Counts peers in the tracker, publishes this replica's set, and starts the renew/expire/GC rounds. */
  start(): void {
    this.o.tracker.setPeers(this.peers, this.o.identity);
    this.unsubscribe = this.o.tracker.onLocalFilters(() => this.localChanged());
    const period = Math.max(10, Math.min(this.timing.renewMs, this.timing.leaseDurationMs / 4));
    this.timer = setInterval(() => void this.round(), period);
    this.timer.unref?.();
    void this.round();
  }

  /** One round (tests): expire peers, renew if due, delete long-expired objects when leading. */
  async round(): Promise<void> {
    this.peers.expire();
    this.updateGauges();
    if (this.dirty || this.now() - this.lastWrite >= this.timing.renewMs) await this.publish();
    if (this.o.isLeader()) await this.collectGarbage();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.publishTimer);
    this.unsubscribe?.();
  }

  private localChanged(): void {
    this.dirty = true;
    if (this.publishTimer || this.stopped) return;
    const wait = Math.max(0, this.lastWrite + this.timing.publishDelayMs - this.now());
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      void this.publish();
    }, wait);
    this.publishTimer.unref?.();
  }

  private peersChanged(): void {
    this.o.tracker.peersChanged();
    this.updateGauges();
  }

  /** Writes this replica's bindings; a failed write is retried on the next round. */
  private async publish(): Promise<void> {
    if (this.writing || this.stopped) return;
    this.writing = true;
    this.dirty = false;
    const body = this.object();
    try {
      if (this.resourceVersion === undefined) {
        const existing = await this.o.client.get(this.name);
        this.resourceVersion = existing?.metadata?.resourceVersion;
      }
      let written: V1ConfigMap;
      if (this.resourceVersion === undefined) {
        written = await this.o.client.create(body);
        this.o.metrics.coveragePublishes.inc({ outcome: "created" });
      } else {
        written = await this.o.client.replace({ ...body, metadata: { ...body.metadata, resourceVersion: this.resourceVersion } });
        this.o.metrics.coveragePublishes.inc({ outcome: "updated" });
      }
      this.resourceVersion = written.metadata?.resourceVersion;
      this.lastWrite = this.now();
    } catch (err) {
      const code = (err as { code?: number }).code;
      // Someone else wrote it (a previous incarnation) or it was deleted: re-read on the retry.
      this.resourceVersion = undefined;
      this.dirty = true;
      this.o.metrics.coveragePublishes.inc({ outcome: code === 409 ? "conflict" : "error" });
      if (code !== 409) this.o.log.warn({ object: this.name, err: (err as Error).message }, "coverage sharing: publishing this replica's bindings failed; retrying");
    } finally {
      this.writing = false;
    }
  }

  private object(): V1ConfigMap {
    return {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: this.name,
        namespace: this.o.namespace,
        labels: { [COVERAGE_LABEL]: COVERAGE_LABEL_VALUE, "app.kubernetes.io/name": "egret", "app.kubernetes.io/component": "control" },
      },
      data: { replica: this.o.identity, renewTime: new Date(this.now()).toISOString(), leaseDurationMs: String(this.timing.leaseDurationMs) },
      binaryData: { [PODS_KEY]: encodeCoveragePods(this.o.tracker.localFilters()).toString("base64") },
    };
  }

  private async collectGarbage(): Promise<void> {
    for (const replica of this.peers.expiredLongerThan(this.timing.gcAfterMs)) {
      try {
        await this.o.client.delete(coverageObjectName(replica));
        this.o.log.info({ replica }, "coverage sharing: deleted the bindings of a replica that stopped renewing long ago");
      } catch (err) {
        if ((err as { code?: number }).code !== 404) this.o.log.warn({ replica, err: (err as Error).message }, "coverage sharing: deleting an expired replica's bindings failed");
      }
      this.peers.delete(replica);
    }
  }

  private updateGauges(): void {
    const views = this.peers.views();
    this.o.metrics.coveragePeers.set({ state: "live" }, views.filter((v) => v.live).length);
    this.o.metrics.coveragePeers.set({ state: "expired" }, views.filter((v) => !v.live).length);
  }
}
