// The agent's memory of still-valid observations, replayed to a control replica that (re)connects,
// so a control restart loses nothing. Bounded per pod and in total, in observations and in bytes;
// a pod over its share loses its own oldest, and a full store takes from the pod holding the most
// bytes, never from a quieter pod (counted).
import type { DnsObservation } from "../dns/observer.js";

/**
 * What an observation costs the agent's heap, in bytes (an upper estimate: object headers,
 * strings at two bytes a character, one record object per address).
 */
export function observationBytes(o: DnsObservation): number {
  let n = 320 + 2 * o.qname.length + 2 * o.podIp.length;
  for (const c of o.cnameChain) n += 48 + 2 * c.length;
  for (const e of o.echPublicNames ?? []) n += 48 + 2 * e.length;
  for (const a of o.answers) {
    n += 120 + 2 * a.name.length;
    if (typeof a.data === "string") n += 32 + 2 * a.data.length;
    else if (a.data) for (const t of a.data) n += 32 + 2 * t.length;
  }
  return n;
}

export interface ObservationStoreOptions {
  now(): number;
  maxPerPod: number;
  maxTotal: number;
  /** observationBytes held per pod; beyond it the pod's oldest go (default 4 MiB). */
  maxBytesPerPod?: number;
  /** observationBytes held in total; beyond it the pod holding the most loses its oldest (default 64 MiB). */
  maxBytesTotal?: number;
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
  /** Observations larger than a pod's whole byte share (never stored). */
  oversized: number;
  /** observationBytes currently held. */
  bytes: number;
}

interface Entry extends StoredObservation {
  removed: boolean;
  bytes: number;
}

/** FIFO of entries with lazy removal: O(1) amortised push, shift and skip. */
class Fifo {
  items: Entry[] = [];
  head = 0;
  live = 0;
  bytes = 0;

  push(e: Entry): void {
    this.items.push(e);
    this.live++;
    this.bytes += e.bytes;
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
  readonly stats: ObservationStoreStats = { added: 0, evicted: 0, expired: 0, oversized: 0, bytes: 0 };
  /** Arrival order = age order (observations arrive in capture order). */
  private all = new Fifo();
  private readonly byPod = new Map<string, Fifo>();
  private lastPurge = -Infinity;

  private readonly maxBytesPerPod: number;
  private readonly maxBytesTotal: number;

  constructor(private readonly opts: ObservationStoreOptions) {
    this.maxBytesPerPod = opts.maxBytesPerPod ?? 4 << 20;
    this.maxBytesTotal = opts.maxBytesTotal ?? 64 << 20;
    if (!(opts.maxPerPod > 0 && opts.maxTotal > 0 && this.maxBytesPerPod > 0 && this.maxBytesTotal >= this.maxBytesPerPod)) {
      throw new Error("observation store caps must be positive, and the total bytes at least one pod's bytes");
    }
  }

  get size(): number {
    return this.all.live;
  }

  /** Expiry of an observation: its longest answer (or ECH public names') TTL, or the negative TTL. */
  expiryOf(obs: DnsObservation): number {
    let ttl = 0;
    for (const a of obs.answers) ttl = Math.max(ttl, a.ttl);
    if (obs.negative) ttl = Math.max(ttl, this.opts.negativeTtlSec);
    if (obs.echPublicNames !== undefined) ttl = Math.max(ttl, obs.echTtlSec ?? 0);
    return obs.time + ttl * 1000;
  }

  add(obs: DnsObservation): void {
    const expiresAt = this.expiryOf(obs);
    if (expiresAt <= this.opts.now()) return;
    this.purgeExpired();
    const bytes = observationBytes(obs);
    if (bytes > this.maxBytesPerPod) {
      this.stats.oversized++;
      return;
    }
    let pod = this.byPod.get(obs.podIp);
    while (pod && pod.live > 0 && (pod.live >= this.opts.maxPerPod || pod.bytes + bytes > this.maxBytesPerPod)) {
      this.evict(pod.first()!);
      pod = this.byPod.get(obs.podIp);
    }
    while (this.all.live > 0 && (this.all.live >= this.opts.maxTotal || this.stats.bytes + bytes > this.maxBytesTotal)) {
      this.evict(this.largestPod().first()!);
    }
    pod = this.byPod.get(obs.podIp);
    if (!pod) {
      pod = new Fifo();
      this.byPod.set(obs.podIp, pod);
    }
    const entry: Entry = { obs, expiresAt, removed: false, bytes };
    this.all.push(entry);
    pod.push(entry);
    this.stats.bytes += bytes;
    this.stats.added++;
  }

  /** The pod holding the most bytes (the store is full: a linear scan over pods). */
  private largestPod(): Fifo {
    let best: Fifo | undefined;
    for (const f of this.byPod.values()) if (!best || f.bytes > best.bytes) best = f;
    return best!;
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
    this.all.bytes -= e.bytes;
    this.stats.bytes -= e.bytes;
    const pod = this.byPod.get(e.obs.podIp);
    if (!pod) return;
    pod.live--;
    pod.bytes -= e.bytes;
    if (pod.live === 0) this.byPod.delete(e.obs.podIp);
  }
}
