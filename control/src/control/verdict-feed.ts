// The live verdict feed behind `egret observe` (OperatorService.ObserveVerdicts): every verdict
// event control records goes into a bounded ring of recent events and, if it matches, into the
// bounded buffer of each open subscription. Publishing never waits and never allocates per
// subscriber beyond its buffer: a subscriber that reads too slowly loses events (counted per
// namespace, so a caller is told only about losses in namespaces it may read), never control's
// memory and never the filters' Report path.
import type { Reason, Verdict, VerdictEvent } from "../proto/messages.js";

export interface FeedLimits {
  /** Recent events kept for `--since` and for `egret status`'s recent denies. */
  history: number;
  /** Events buffered per subscription before newer ones are dropped. */
  subscriberBuffer: number;
  /** Open subscriptions per replica. */
  maxSubscribers: number;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = { history: 10_000, subscriberBuffer: 2_048, maxSubscribers: 64 };

/** What a caller asks to see; every empty set means "no filter on this field". */
export interface VerdictFilter {
  namespaces: ReadonlySet<string>;
  /** "name" (any namespace) or "namespace/name". */
  pods: ReadonlySet<string>;
  verdicts: ReadonlySet<Verdict>;
  reasons: ReadonlySet<Reason>;
  policies: ReadonlySet<string>;
  /** Events at or after this time (Unix ms); 0: no lower bound. */
  sinceMs: number;
}

export const NO_FILTER: VerdictFilter = { namespaces: new Set(), pods: new Set(), verdicts: new Set(), reasons: new Set(), policies: new Set(), sinceMs: 0 };

export function verdictMatches(f: VerdictFilter, e: VerdictEvent): boolean {
  if (f.sinceMs > 0 && e.time_unix_ms < f.sinceMs) return false;
  if (f.namespaces.size > 0 && !f.namespaces.has(e.pod_namespace)) return false;
  if (f.pods.size > 0 && !f.pods.has(e.pod_name) && !f.pods.has(`${e.pod_namespace}/${e.pod_name}`)) return false;
  if (f.verdicts.size > 0 && !f.verdicts.has(e.verdict)) return false;
  if (f.reasons.size > 0 && !f.reasons.has(e.reason)) return false;
  if (f.policies.size > 0 && !f.policies.has(e.policy)) return false;
  return true;
}

/** Longest text and most names an event keeps in the feed (a filter's report is the pod's word). */
const KEEP_TEXT = 256;
const KEEP_NAMES = 16;
const clipText = (s: string) => (s.length > KEEP_TEXT ? s.slice(0, KEEP_TEXT) : s);

/**
 * What the feed keeps of a recorded event: decoded bytes fields are views into the whole gRPC
 * message, so they are copied (else 10,000 retained events could pin 10,000 request buffers), and
 * texts and name lists are clipped, so the history stays bounded in bytes whatever a pod reports.
 */
export function retainedCopy(e: VerdictEvent): VerdictEvent {
  return {
    ...e,
    source_ip: Uint8Array.from(e.source_ip),
    destination_ip: Uint8Array.from(e.destination_ip),
    names: e.names.slice(0, KEEP_NAMES).map(clipText),
    pod_name: clipText(e.pod_name),
    pod_namespace: clipText(e.pod_namespace),
    protocol: clipText(e.protocol),
    sni: clipText(e.sni),
    host: clipText(e.host),
    policy: clipText(e.policy),
    rule: clipText(e.rule),
    matched_name: clipText(e.matched_name),
    instance_id: clipText(e.instance_id),
    detail: clipText(e.detail),
    cluster: clipText(e.cluster ?? ""),
  };
}

/** A fixed-capacity FIFO: pushing onto a full ring overwrites the oldest entry. */
class Ring<T> {
  private readonly items: (T | undefined)[];
  private start = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    if (this.capacity === 0) return;
    const at = (this.start + this.size) % this.capacity;
    this.items[at] = item;
    if (this.size < this.capacity) this.size++;
    else this.start = (this.start + 1) % this.capacity;
  }

  *values(): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.start + i) % this.capacity]!;
  }

  oldest(): T | undefined {
    return this.size > 0 ? this.items[this.start] : undefined;
  }
}

export class FeedFullError extends Error {}

/** One open `egret observe --follow`: a bounded buffer filled by the feed, drained by the edge. */
export class FeedSubscription {
  private queue: VerdictEvent[] = [];
  private head = 0;
  /** Events lost because the buffer was full, by namespace. */
  readonly droppedByNamespace = new Map<string, number>();
  closed = false;

  constructor(
    readonly filter: VerdictFilter,
    private readonly capacity: number,
    private readonly onReadable: () => void,
    private readonly onDrop: () => void,
    private readonly onClose: (s: FeedSubscription) => void,
  ) {}

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Called by the feed for every matching event; never blocks. */
  offer(e: VerdictEvent): void {
    if (this.closed) return;
    if (this.pending >= this.capacity) {
      this.droppedByNamespace.set(e.pod_namespace, (this.droppedByNamespace.get(e.pod_namespace) ?? 0) + 1);
      this.onDrop();
      return;
    }
    const wasEmpty = this.pending === 0;
    this.queue.push(e);
    if (wasEmpty) this.onReadable();
  }

  /** Up to `max` buffered events, oldest first. */
  take(max: number): VerdictEvent[] {
    const end = Math.min(this.queue.length, this.head + max);
    const out = this.queue.slice(this.head, end);
    this.head = end;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.onClose(this);
  }
}

export interface FeedCounters {
  /** A subscriber's buffer was full (egret_control_observe_dropped_total). */
  dropped(): void;
  /** Open subscriptions (egret_control_observe_streams). */
  subscribers(n: number): void;
}

export class VerdictFeed {
  readonly limits: FeedLimits;
  private readonly recent: Ring<VerdictEvent>;
  private readonly subs = new Set<FeedSubscription>();

  constructor(limits: Partial<FeedLimits> = {}, private readonly counters?: FeedCounters) {
    this.limits = { ...DEFAULT_FEED_LIMITS, ...limits };
    this.recent = new Ring(this.limits.history);
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  /** Records one event (kept as retainedCopy) and offers it to every matching subscription. */
  publish(recorded: VerdictEvent): void {
    const e = retainedCopy(recorded);
    this.recent.push(e);
    for (const s of this.subs) if (verdictMatches(s.filter, e)) s.offer(e);
  }

  /** Retained events matching `filter`, oldest first. */
  history(filter: VerdictFilter): VerdictEvent[] {
    const out: VerdictEvent[] = [];
    for (const e of this.recent.values()) if (verdictMatches(filter, e)) out.push(e);
    return out;
  }

  /** Every retained event, oldest first (status: recent denies). */
  retained(): IterableIterator<VerdictEvent> {
    return this.recent.values();
  }

  /** Time of the oldest retained event (0 when none). */
  oldestMs(): number {
    return this.recent.oldest()?.time_unix_ms ?? 0;
  }

  /** Opens a subscription; throws FeedFullError at `maxSubscribers`. */
  subscribe(filter: VerdictFilter, onReadable: () => void): FeedSubscription {
    if (this.subs.size >= this.limits.maxSubscribers) throw new FeedFullError(`${this.subs.size} observers already follow this replica`);
    const s = new FeedSubscription(filter, this.limits.subscriberBuffer, onReadable, () => this.counters?.dropped(), (x) => {
      this.subs.delete(x);
      this.counters?.subscribers(this.subs.size);
    });
    this.subs.add(s);
    this.counters?.subscribers(this.subs.size);
    return s;
  }

  close(): void {
    for (const s of [...this.subs]) s.close();
  }
}
