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

interface Entry extends StoredObservation {
  removed: boolean;
}

/** FIFO of entries with lazy removal: O(1) amortised push, shift and skip. */
class Fifo {
  items: Entry[] = [];
  head = 0;
  live = 0;

  push(e: Entry): void {
    this.items.push(e);
    this.live++;
  }

  /** Oldest entry not yet removed. */
  first(): Entry | undefined {
    while (this.head < this.items.length && this.items[this.head]!.removed) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }
}

export class ObservationStore {
  readonly stats: ObservationStoreStats = { added: 0, evicted: 0, expired: 0 };
  /** Arrival order = age order (observations arrive in capture order). */
  private all = new Fifo();
  private readonly byPod = new Map<string, Fifo>();
  private lastPurge = -Infinity;

  constructor(private readonly opts: ObservationStoreOptions) {
    if (!(opts.maxPerPod > 0 && opts.maxTotal > 0)) throw new Error("observation store caps must be positive");
  }

  get size(): number {
    return this.all.live;
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
    if (pod && pod.live >= this.opts.maxPerPod) this.evict(pod.first()!);
    if (this.all.live >= this.opts.maxTotal) this.evict(this.all.first()!);
    pod = this.byPod.get(obs.podIp);
    if (!pod) {
      pod = new Fifo();
      this.byPod.set(obs.podIp, pod);
    }
    const entry: Entry = { obs, expiresAt, removed: false };
    this.all.push(entry);
    pod.push(entry);
    this.stats.added++;
  }

  /** Every still-valid observation, oldest first. */
  valid(): DnsObservation[] {
    this.purgeExpired();
    const now = this.opts.now();
    const out: DnsObservation[] = [];
    const items = this.all.items;
    for (let i = this.all.head; i < items.length; i++) {
      const e = items[i]!;
      if (!e.removed && e.expiresAt > now) out.push(e.obs);
    }
    return out;
  }

  /** Drops expired entries. Expiries are not in arrival order (TTLs differ), so this rebuilds the
   *  queues; it runs at most once per second of clock time. */
  purgeExpired(): void {
    const now = this.opts.now();
    if (now - this.lastPurge < 1000 && now >= this.lastPurge) return;
    this.lastPurge = now;
    const next = new Fifo();
    const items = this.all.items;
    for (let i = this.all.head; i < items.length; i++) {
      const e = items[i]!;
      if (e.removed) continue;
      if (e.expiresAt <= now) {
        this.remove(e);
        this.stats.expired++;
      } else next.push(e);
    }
    this.all = next;
    // Per-pod queues are rebuilt too, so removed entries never accumulate in them.
    this.byPod.clear();
    for (const e of next.items) {
      let pod = this.byPod.get(e.obs.podIp);
      if (!pod) {
        pod = new Fifo();
        this.byPod.set(e.obs.podIp, pod);
      }
      pod.push(e);
    }
  }

  private evict(e: Entry): void {
    this.remove(e);
    this.stats.evicted++;
  }

  private remove(e: Entry): void {
    if (e.removed) return;
    e.removed = true;
    this.all.live--;
    const pod = this.byPod.get(e.obs.podIp);
    if (!pod) return;
    pod.live--;
    if (pod.live === 0) this.byPod.delete(e.obs.podIp);
  }
}
