// The observer's query tables without an object per query: every pending or recently answered
// query is a slot (an index) into typed arrays, linked into hash chains and age lists by index.
// With a node's answers remembered for the duplicate window (150,000 queries at 30k answers/s), one
// heap object per query made the garbage collector copy and mark every one of them again and again
// (a quarter of the observer's CPU time); typed arrays are one object each, whatever they hold.
// Only the strings stay as references: addresses (already shared, see ../pcap formatIpAt) and the
// question name.

/** No slot (the null of every link). */
export const NONE = -1;

const INITIAL_SLOTS = 1024;

function grownInt32(a: Int32Array, size: number): Int32Array {
  const b = new Int32Array(size).fill(NONE);
  b.set(a);
  return b;
}

/**
 * Storage for queries. A slot is allocated for a query when it becomes pending, stays the same
 * while the query moves to the answered list, and is freed when it leaves both. The caller keeps
 * at most its own bounds of slots live; the arrays grow (doubling) to that many.
 */
export class QuerySlots {
  hash: Int32Array = new Int32Array(INITIAL_SLOTS);
  id: Int32Array = new Int32Array(INITIAL_SLOTS);
  clientPort: Int32Array = new Int32Array(INITIAL_SLOTS);
  serverPort: Int32Array = new Int32Array(INITIAL_SLOTS);
  qtype: Int32Array = new Int32Array(INITIAL_SLOTS);
  qclass: Int32Array = new Int32Array(INITIAL_SLOTS);
  /** 1 for DNS over TCP, 0 for UDP. */
  tcp: Uint8Array = new Uint8Array(INITIAL_SLOTS);
  /** When the query was seen; once answered, when the answer was. */
  time: Float64Array = new Float64Array(INITIAL_SLOTS);
  /** Once answered: FNV-1a and length of the accepted response. */
  payloadHash: Int32Array = new Int32Array(INITIAL_SLOTS);
  payloadLength: Int32Array = new Int32Array(INITIAL_SLOTS);
  /** Links of the hash chain and of the age list the slot is on (pending or answered). */
  bucketNext: Int32Array = new Int32Array(INITIAL_SLOTS).fill(NONE);
  older: Int32Array = new Int32Array(INITIAL_SLOTS).fill(NONE);
  newer: Int32Array = new Int32Array(INITIAL_SLOTS).fill(NONE);
  /** While pending: links of its client's age list. */
  clientOlder: Int32Array = new Int32Array(INITIAL_SLOTS).fill(NONE);
  clientNewer: Int32Array = new Int32Array(INITIAL_SLOTS).fill(NONE);
  client: string[] = new Array<string>(INITIAL_SLOTS).fill("");
  server: string[] = new Array<string>(INITIAL_SLOTS).fill("");
  qname: string[] = new Array<string>(INITIAL_SLOTS).fill("");
  private capacity = INITIAL_SLOTS;
  /** Slots ever handed out; below it, free slots are chained through bucketNext. */
  private used = 0;
  private freeHead = NONE;
  live = 0;

  alloc(): number {
    this.live++;
    if (this.freeHead !== NONE) {
      const i = this.freeHead;
      this.freeHead = this.bucketNext[i]!;
      this.bucketNext[i] = NONE;
      return i;
    }
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  /** Returns a slot that is on no list any more; its strings are released. */
  free(i: number): void {
    this.live--;
    this.client[i] = this.server[i] = this.qname[i] = "";
    this.older[i] = this.newer[i] = this.clientOlder[i] = this.clientNewer[i] = NONE;
    this.bucketNext[i] = this.freeHead;
    this.freeHead = i;
  }

  private grow(): void {
    const size = this.capacity * 2;
    for (const k of ["hash", "id", "clientPort", "serverPort", "qtype", "qclass", "payloadHash", "payloadLength"] as const) {
      const b = new Int32Array(size);
      b.set(this[k]);
      this[k] = b;
    }
    for (const k of ["bucketNext", "older", "newer", "clientOlder", "clientNewer"] as const) this[k] = grownInt32(this[k], size);
    const tcp = new Uint8Array(size);
    tcp.set(this.tcp);
    this.tcp = tcp;
    const time = new Float64Array(size);
    time.set(this.time);
    this.time = time;
    for (const k of ["client", "server", "qname"] as const) {
      const b = new Array<string>(size).fill("");
      for (let i = 0; i < this.capacity; i++) b[i] = this[k][i]!;
      this[k] = b;
    }
    this.capacity = size;
  }
}

/**
 * Slots indexed by a 30-bit hash (collisions chained; callers compare the full identity) and kept
 * in insertion order, oldest first. The buckets are a power-of-two array with at least four slots
 * per entry, grown with the list: most misses end at an empty bucket without touching a query.
 */
export class SlotList {
  private buckets = new Int32Array(INITIAL_SLOTS).fill(NONE);
  private mask = INITIAL_SLOTS - 1;
  oldest = NONE;
  private newest = NONE;
  size = 0;

  constructor(private readonly s: QuerySlots) {}

  /** First slot of the bucket for `hash` (follow bucketNext for the rest), or NONE. */
  bucket(hash: number): number {
    return this.buckets[hash & this.mask]!;
  }

  add(i: number): void {
    const s = this.s;
    if (this.size * 4 >= this.buckets.length) this.grow();
    const b = s.hash[i]! & this.mask;
    s.bucketNext[i] = this.buckets[b]!;
    this.buckets[b] = i;
    s.older[i] = this.newest;
    s.newer[i] = NONE;
    if (this.newest !== NONE) s.newer[this.newest] = i;
    else this.oldest = i;
    this.newest = i;
    this.size++;
  }

  remove(i: number): void {
    const s = this.s;
    const b = s.hash[i]! & this.mask;
    if (this.buckets[b] === i) {
      this.buckets[b] = s.bucketNext[i]!;
    } else {
      for (let n = this.buckets[b]!; n !== NONE; n = s.bucketNext[n]!) {
        if (s.bucketNext[n] === i) { s.bucketNext[n] = s.bucketNext[i]!; break; }
      }
    }
    s.bucketNext[i] = NONE;
    const older = s.older[i]!, newer = s.newer[i]!;
    if (older !== NONE) s.newer[older] = newer;
    else this.oldest = newer;
    if (newer !== NONE) s.older[newer] = older;
    else this.newest = older;
    s.older[i] = s.newer[i] = NONE;
    this.size--;
  }

  /** Doubles the buckets and rechains every slot (walking the age list: every slot is on it). */
  private grow(): void {
    const s = this.s;
    const size = this.buckets.length * 2;
    this.buckets = new Int32Array(size).fill(NONE);
    this.mask = size - 1;
    for (let n = this.oldest; n !== NONE; n = s.newer[n]!) {
      const b = s.hash[n]! & this.mask;
      s.bucketNext[n] = this.buckets[b]!;
      this.buckets[b] = n;
    }
  }
}
