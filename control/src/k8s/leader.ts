// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics
// (tools/leaderelection): a candidate takes the Lease when it does not exist, is released (empty
// holder) or its holder has not renewed for leaseDuration *as observed on this replica's clock*
// (so clock skew between replicas does not matter); the leader renews every retryPeriod and steps
// down when it could not renew for renewDeadline. Writes use the Lease's resourceVersion, so two
// candidates cannot both win (the loser gets 409 Conflict). Exactly one replica writes policy
// status; every replica serves. Clock and timers are passed in; `step()` is one round (tests).
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../common/log.js";

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** The Lease API (client-node in production). `replace` rejects with `{ code: 409 }` on a stale resourceVersion. */
export interface LeaseClient {
  get(): Promise<LeaseObject | undefined>;
  create(lease: LeaseObject): Promise<LeaseObject>;
  replace(lease: LeaseObject): Promise<LeaseObject>;
}

export interface LeaderTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** client-go's defaults for controllers (kube-controller-manager: 15 s / 10 s / 2 s). */
export const DEFAULT_LEADER_TIMING: LeaderTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export interface LeaderElectorOptions {
  client: LeaseClient;
  /** This replica (the pod name). */
  identity: string;
  name: string;
  namespace: string;
  timing?: Partial<LeaderTiming>;
  now?: () => number;
  log: Logger;
  onChange?: (leader: boolean) => void;
}

export class LeaderElector {
  private leading = false;
  private observed?: { holder: string; renewTime: string; at: number };
  private lastRenewed = -Infinity;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly timing: LeaderTiming;
  private readonly now: () => number;
  private readonly listeners = new Set<(leader: boolean) => void>();

  constructor(private readonly o: LeaderElectorOptions) {
    this.timing = { ...DEFAULT_LEADER_TIMING, ...o.timing };
    this.now = o.now ?? Date.now;
    if (this.timing.renewDeadlineMs >= this.timing.leaseDurationMs) throw new Error("leader election: renewDeadline must be shorter than leaseDuration");
  }

  /** Hears every change of leadership; returns the unsubscribe function. */
  onChange(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen on the Lease (for /status and logs). */
  get observedHolder(): string | undefined {
    return this.observed?.holder || undefined;
  }

  /** Runs rounds every retryPeriod until stop(). */
  start(): void {
    const loop = async () => {
      await this.step();
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.timing.retryPeriodMs);
      this.timer?.unref?.();
    };
    void loop();
  }

  /** Stops; a leader releases the Lease (empty holder) so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.o.client.get();
      if (lease?.spec.holderIdentity === this.o.identity) {
        await this.o.client.replace({ ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: new Date(this.now()).toISOString() } });
      }
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "leader election: releasing the Lease failed; another replica takes over when it expires");
    }
  }

  /** One round: try to acquire or renew; steps down when renewing has failed for renewDeadline. */
  async step(): Promise<boolean> {
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "leader election: Lease request failed");
    }
    const now = this.now();
    if (ok) {
      this.lastRenewed = now;
      this.setLeading(true);
    } else if (this.leading && now - this.lastRenewed >= this.timing.renewDeadlineMs) {
      this.o.log.error({ identity: this.o.identity }, "leader election: could not renew the Lease in time; no longer the leader");
      this.setLeading(false);
    } else if (this.leading && !ok && this.observed && this.observed.holder !== this.o.identity) {
      this.setLeading(false); // someone else holds it now
    }
    return this.leading;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const nowIso = new Date(now).toISOString();
    const leaseDurationSeconds = Math.ceil(this.timing.leaseDurationMs / 1000);
    const existing = await this.o.client.get();
    if (!existing) {
      const created = await this.o.client.create({
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: { holderIdentity: this.o.identity, leaseDurationSeconds, acquireTime: nowIso, renewTime: nowIso, leaseTransitions: 0 },
      });
      this.observe(created, now);
      return true;
    }
    this.observe(existing, now);
    const holder = existing.spec.holderIdentity ?? "";
    const duration = (existing.spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder !== "" && holder !== this.o.identity && this.observed!.at + duration > now) return false;
    const mine = holder === this.o.identity;
    const spec: LeaseSpec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds,
      acquireTime: mine ? existing.spec.acquireTime : nowIso,
      renewTime: nowIso,
      leaseTransitions: (existing.spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      this.observe(await this.o.client.replace({ metadata: existing.metadata, spec }), now);
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 409) return false; // another replica wrote first
      throw err;
    }
  }

  /** Remembers when (on this clock) the Lease's holder/renewTime last changed. */
  private observe(lease: LeaseObject, now: number): void {
    const holder = lease.spec.holderIdentity ?? "";
    const renewTime = lease.spec.renewTime ?? "";
    if (this.observed?.holder !== holder || this.observed.renewTime !== renewTime) this.observed = { holder, renewTime, at: now };
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.o.log.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}`, leader: leading }, leading ? "leader election: now the leader" : "leader election: not the leader");
    this.o.onChange?.(leading);
    for (const l of this.listeners) l(leading);
  }
}

/** client-node adapter: the Lease `namespace/name` (RBAC: get, create, update on leases in control's namespace). */
export function kubeLeaseClient(kc: KubeConfig, namespace: string, name: string): LeaseClient {
  const api = kc.makeApiClient(CoordinationV1Api);
  const toLease = (l: V1Lease): LeaseObject => ({
    metadata: { name: l.metadata?.name ?? name, namespace: l.metadata?.namespace ?? namespace, resourceVersion: l.metadata?.resourceVersion },
    spec: {
      holderIdentity: l.spec?.holderIdentity,
      leaseDurationSeconds: l.spec?.leaseDurationSeconds,
      acquireTime: l.spec?.acquireTime ? new Date(l.spec.acquireTime).toISOString() : undefined,
      renewTime: l.spec?.renewTime ? new Date(l.spec.renewTime).toISOString() : undefined,
      leaseTransitions: l.spec?.leaseTransitions,
    },
  });
  const toBody = (l: LeaseObject): V1Lease => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: l.metadata,
    spec: {
      holderIdentity: l.spec.holderIdentity,
      leaseDurationSeconds: l.spec.leaseDurationSeconds,
      leaseTransitions: l.spec.leaseTransitions,
      // MicroTime: RFC 3339 with microseconds on the wire (client-node's V1MicroTime).
      acquireTime: l.spec.acquireTime ? new V1MicroTime(l.spec.acquireTime) : undefined,
      renewTime: l.spec.renewTime ? new V1MicroTime(l.spec.renewTime) : undefined,
    },
  });
  return {
    async get() {
      try {
        return toLease(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    async create(lease) {
      return toLease(await api.createNamespacedLease({ namespace, body: toBody(lease) }));
    },
    async replace(lease) {
      return toLease(await api.replaceNamespacedLease({ name, namespace, body: toBody(lease) }));
    },
  };
}
