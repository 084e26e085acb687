// The agent's memory of still-valid observations, replayed to a control replica that (re)connects,
// so a control restart loses nothing. Bounded per pod and in total; the oldest go first (counted).
import type { DnsObservation } from "../dns/observer.js";

export interface ObservationStoreOptions {
  now(): number;
  maxPerPod: number;
  maxTotal: number;
  /** How long a negative answer (NXDOMAIN/NODATA) is worth replaying, in seconds. */
  negativeTtlSec: number;
}

export interface StoredObservation {
  readonly obs: DnsObservation;
  /** ms since the epoch after which no record of it is valid. */
  readonly expiresAt: number;
}

export interface ObservationStoreStats {
  added: number;
  evicted: number;
  expired: number;
}

export class ObservationStore {
  readonly stats: ObservationStoreStats = { added: 0, evicted: 0, expired: 0 };
  /** Insertion order = age order (observations arrive in capture order). */
  private readonly all = new Map<number, StoredObservation>();
  private readonly byPod = new Map<string, Map<number, StoredObservation>>();
  private nextKey = 1;

  constructor(private readonly opts: ObservationStoreOptions) {
    if (!(opts.maxPerPod > 0 && opts.maxTotal > 0)) throw new Error("observation store caps must be positive");
  }

  get size(): number {
    return this.all.size;
  }

  /** Expiry of an observation: its longest answer TTL, or the negative TTL. */
  expiryOf(obs: DnsObservation): number {
    let ttl = 0;
    for (const a of obs.answers) ttl = Math.max(ttl, a.ttl);
    if (obs.negative) ttl = Math.max(ttl, this.opts.negativeTtlSec);
    return obs.time + ttl * 1000;
  }

  add(obs: DnsObservation): void {
    const expiresAt = this.expiryOf(obs);
    if (expiresAt <= this.opts.now()) return;
    this.purgeExpired();
    let pod = this.byPod.get(obs.podIp);
    if (pod && pod.size >= this.opts.maxPerPod) this.evict(pod.keys().next().value as number, obs.podIp);
    if (this.all.size >= this.opts.maxTotal) {
      const [oldest, s] = this.all.entries().next().value as [number, StoredObservation];
      this.evict(oldest, s.obs.podIp);
    }
    pod = this.byPod.get(obs.podIp);
    if (!pod) {
      pod = new Map();
      this.byPod.set(obs.podIp, pod);
    }
    const key = this.nextKey++;
    const stored = { obs, expiresAt };
    this.all.set(key, stored);
    pod.set(key, stored);
    this.stats.added++;
  }

  /** Every still-valid observation, oldest first. */
  valid(): DnsObservation[] {
    this.purgeExpired();
    const now = this.opts.now();
    const out: DnsObservation[] = [];
    for (const s of this.all.values()) if (s.expiresAt > now) out.push(s.obs);
    return out;
  }

  /** Drops expired entries. Expiries are not monotonic (TTLs differ), so this scans everything;
   *  it runs at most once per second of wall time. */
  purgeExpired(): void {
    const now = this.opts.now();
    if (now - this.lastPurge < 1000) return;
    this.lastPurge = now;
    for (const [key, s] of this.all) {
      if (s.expiresAt <= now) {
        this.remove(key, s.obs.podIp);
        this.stats.expired++;
      }
    }
  }

  private lastPurge = -Infinity;

  private evict(key: number, podIp: string): void {
    this.remove(key, podIp);
    this.stats.evicted++;
  }

  private remove(key: number, podIp: string): void {
    this.all.delete(key);
    const pod = this.byPod.get(podIp);
    if (!pod) return;
    pod.delete(key);
    if (pod.size === 0) this.byPod.delete(podIp);
  }
}
