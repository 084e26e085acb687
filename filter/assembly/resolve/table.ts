// The per-pod resolution table: which names this pod resolved to which IP, until when.
//
// One entry per (IP, name). A DNS answer "www.example.com CNAME cdn.example.net A 203.0.113.7"
// gives two entries for 203.0.113.7: the query name and the CNAME target, both candidates, both
// remembering the query name (`via`) so reports can show the chain's origin.
//
// Layout: flat typed arrays sized once at configure time (`capacity` entries), chained hashing on
// the IP (bucket heads + per-entry `next`), a free list, and an interned name pool (names.ts).
// Mutations (snapshot rebuild, delta patches, eviction) happen only in the root context; the
// per-connection lookup() reads the arrays and writes candidates into static scratch — it never
// allocates. Everything is bounded: when full, expired entries are swept first, then the entry
// that expires soonest is evicted, and each eviction is counted.
import { NamePool, NO_NAME } from "./names";

// @ts-ignore: decorator
@inline const NIL: i32 = -1;
/** Most candidate names one lookup reports; further names for the same IP are counted as truncated. */
// @ts-ignore: decorator
@inline export const MAX_CANDIDATES: i32 = 64;
/** Bytes per candidate in candBuf (policy/engine.ts CANDIDATE_SIZE). */
// @ts-ignore: decorator
@inline export const CANDIDATE_BYTES: i32 = 16;
/** Where an entry's evidence comes from (bits; an (IP, name) seen both ways has both). */
// @ts-ignore: decorator
@inline export const ORIGIN_POD_DNS: u8 = 1;
// @ts-ignore: decorator
@inline export const ORIGIN_MESH_CONFIG: u8 = 2;
/** ECH public names kept per entry (ResolvedName.ech_public_names; control sends at most 4, the rest are dropped). */
// @ts-ignore: decorator
@inline export const ECH_NAMES_PER_ENTRY: i32 = 2;
/** Candidate flag (policy/engine.ts CAND_MESH_CONFIG): the name's only evidence is mesh configuration. */
// @ts-ignore: decorator
@inline const CAND_MESH_CONFIG: u32 = 1;

function hashIp(hi: u64, lo: u64): u32 {
  let h = hi * 0x9e3779b97f4a7c15 ^ lo;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 33;
  return <u32>h;
}

export class ResolutionTable {
  readonly capacity: i32;
  private mask: u32;
  private buckets: StaticArray<i32>;
  private ipHi: StaticArray<u64>;
  private ipLo: StaticArray<u64>;
  private name: StaticArray<u32>;
  private via: StaticArray<u32>;
  /** ORIGIN_* bits: pod DNS and/or mesh configuration (a ServiceEntry address). */
  private origin: StaticArray<u8>;
  /** Absolute expiry, ms since the epoch (wall clock, like proxy_get_current_time_nanoseconds). */
  private expires: StaticArray<i64>;
  /** ECH_NAMES_PER_ENTRY name ids per entry: the ECH public names the pod's HTTPS/SVCB answers for the name named (NO_NAME = none). */
  private ech: StaticArray<u32>;
  /** The entry the last successful upsert() created or refreshed (for attachEch). */
  private lastEntry: i32 = NIL;
  /** Next entry in the same bucket, or in the free list for unused entries. */
  private next: StaticArray<i32>;
  private free: i32 = NIL;
  readonly names: NamePool;

  /** Live entries. */
  size: i32 = 0;
  /** Entries dropped to make room (not counting expiry). */
  evicted: u64 = 0;
  /** Entries removed because they expired. */
  expired: u64 = 0;
  /** Updates refused because the name pool was full even after compaction. */
  rejected: u64 = 0;

  // Candidate view of the last lookup(): entry indexes, valid until the next mutation.
  readonly candEntry: StaticArray<i32> = new StaticArray<i32>(MAX_CANDIDATES);
  candCount: i32 = 0;
  /** The last lookup found more live names than MAX_CANDIDATES. */
  candTruncated: bool = false;
  /** Latest expiry among the last lookup's candidates (0 if none). */
  candLatestExpiry: i64 = 0;
  /**
   * The same candidates in the policy engine's layout (CANDIDATE_SIZE = 16 bytes each:
   * u32 namePtr, u32 nameLen, i32 staleSeconds, u32 flags). Name pointers stay valid until the next mutation.
   */
  readonly candBuf: StaticArray<u8> = new StaticArray<u8>(MAX_CANDIDATES * CANDIDATE_BYTES);

  constructor(capacity: i32, nameBytes: i32) {
    if (capacity < 16) capacity = 16;
    this.capacity = capacity;
    let b: u32 = 16;
    while (b < <u32>capacity) b <<= 1;
    this.mask = b - 1;
    this.buckets = new StaticArray<i32>(<i32>b);
    this.ipHi = new StaticArray<u64>(capacity);
    this.ipLo = new StaticArray<u64>(capacity);
    this.name = new StaticArray<u32>(capacity);
    this.via = new StaticArray<u32>(capacity);
    this.origin = new StaticArray<u8>(capacity);
    this.expires = new StaticArray<i64>(capacity);
    this.ech = new StaticArray<u32>(capacity * ECH_NAMES_PER_ENTRY);
    this.next = new StaticArray<i32>(capacity);
    this.names = new NamePool(capacity, nameBytes);
    this.clear();
  }

  /** Drops every entry (a fresh snapshot follows). */
  clear(): void {
    for (let i = 0; i <= <i32>this.mask; i++) unchecked((this.buckets[i] = NIL));
    for (let i = 0; i < this.capacity; i++) {
      unchecked((this.next[i] = i + 1 < this.capacity ? i + 1 : NIL));
      unchecked((this.name[i] = NO_NAME));
    }
    for (let i = 0; i < this.capacity * ECH_NAMES_PER_ENTRY; i++) unchecked((this.ech[i] = NO_NAME));
    this.lastEntry = NIL;
    this.free = 0;
    this.size = 0;
    this.names.clear();
    this.candCount = 0;
  }

  private find(hi: u64, lo: u64, nameId: u32): i32 {
    let e = unchecked(this.buckets[hashIp(hi, lo) & this.mask]);
    while (e != NIL) {
      if (unchecked(this.ipLo[e]) == lo && unchecked(this.ipHi[e]) == hi && unchecked(this.name[e]) == nameId) return e;
      e = unchecked(this.next[e]);
    }
    return NIL;
  }

  /**
   * Records that this pod resolved `name` (reached from query name `viaName`; pass the same name
   * for a direct answer) to the IP, valid until `expiresMs`, from evidence `origin` (ORIGIN_*).
   * An existing entry keeps the later expiry and gains the origin. Names are normalized
   * (lowercase, no trailing dot). Returns false when refused.
   */
  upsert(hi: u64, lo: u64, namePtr: usize, nameLen: u32, viaPtr: usize, viaLen: u32, expiresMs: i64, nowMs: i64, origin: u8 = ORIGIN_POD_DNS): bool {
    let nameId = this.names.find(namePtr, nameLen);
    if (nameId != NO_NAME) {
      const e = this.find(hi, lo, nameId);
      if (e != NIL) {
        if (expiresMs > unchecked(this.expires[e])) unchecked((this.expires[e] = expiresMs));
        unchecked((this.origin[e] |= origin));
        this.lastEntry = e;
        return true;
      }
    }
    if (this.free == NIL && !this.makeRoom(nowMs)) return false;
    nameId = this.intern(namePtr, nameLen, nowMs);
    if (nameId == NO_NAME) return false;
    let viaId = this.intern(viaPtr, viaLen, nowMs);
    if (viaId == NO_NAME) viaId = nameId;
    // Interning may have evicted; make sure a slot is still free.
    if (this.free == NIL && !this.makeRoom(nowMs)) {
      this.names.dropIfUnused(nameId);
      this.names.dropIfUnused(viaId);
      this.rejected++;
      return false;
    }
    const e = this.free;
    this.free = unchecked(this.next[e]);
    unchecked((this.ipHi[e] = hi));
    unchecked((this.ipLo[e] = lo));
    unchecked((this.name[e] = nameId));
    unchecked((this.via[e] = viaId));
    unchecked((this.origin[e] = origin));
    this.names.retain(nameId);
    this.names.retain(viaId);
    unchecked((this.expires[e] = expiresMs));
    const b = hashIp(hi, lo) & this.mask;
    unchecked((this.next[e] = this.buckets[b]));
    unchecked((this.buckets[b] = e));
    this.size++;
    this.lastEntry = e;
    return true;
  }

  /**
   * Sets ECH public name number `k` (< ECH_NAMES_PER_ENTRY) of the entry the last upsert() touched
   * (a Watch upsert replaces the IP's entries, so its names come fresh). False when refused.
   */
  attachEch(k: i32, ptr: usize, len: u32, nowMs: i64): bool {
    const e = this.lastEntry;
    if (e == NIL || k < 0 || k >= ECH_NAMES_PER_ENTRY || len == 0) return false;
    const id = this.intern(ptr, len, nowMs);
    // Interning may have evicted the entry itself to make room.
    if (id == NO_NAME || unchecked(this.name[e]) == NO_NAME) {
      if (id != NO_NAME) this.names.dropIfUnused(id);
      return false;
    }
    const at = e * ECH_NAMES_PER_ENTRY + k;
    const old = unchecked(this.ech[at]);
    if (old == id) return true;
    this.names.retain(id);
    if (old != NO_NAME) this.names.release(old);
    unchecked((this.ech[at] = id));
    return true;
  }

  /** Interns a name, compacting and evicting when the pool is full. */
  private intern(ptr: usize, len: u32, nowMs: i64): u32 {
    if (len == 0) return NO_NAME;
    let id = this.names.intern(ptr, len);
    if (id != NO_NAME) return id;
    // Pool full: sweep expired entries (releases names), compact, retry; then evict soonest-expiring.
    this.sweep(nowMs);
    this.names.compact();
    id = this.names.intern(ptr, len);
    let guard = 0;
    while (id == NO_NAME && this.size > 0 && guard < 8) {
      this.evictSoonest();
      this.names.compact();
      id = this.names.intern(ptr, len);
      guard++;
    }
    if (id == NO_NAME) this.rejected++;
    return id;
  }

  /** Removes the (IP, name) entry; returns whether it existed. */
  remove(hi: u64, lo: u64, namePtr: usize, nameLen: u32): bool {
    const nameId = this.names.find(namePtr, nameLen);
    if (nameId == NO_NAME) return false;
    const e = this.find(hi, lo, nameId);
    if (e == NIL) return false;
    this.unlink(e);
    return true;
  }

  /** Removes every entry for the IP; returns how many. */
  removeIp(hi: u64, lo: u64): i32 {
    let n = 0;
    let e = unchecked(this.buckets[hashIp(hi, lo) & this.mask]);
    while (e != NIL) {
      const nx = unchecked(this.next[e]);
      if (unchecked(this.ipLo[e]) == lo && unchecked(this.ipHi[e]) == hi) {
        this.unlink(e);
        n++;
      }
      e = nx;
    }
    return n;
  }

  private unlink(e: i32): void {
    const b = hashIp(unchecked(this.ipHi[e]), unchecked(this.ipLo[e])) & this.mask;
    let p = unchecked(this.buckets[b]);
    if (p == e) {
      unchecked((this.buckets[b] = this.next[e]));
    } else {
      while (p != NIL && unchecked(this.next[p]) != e) p = unchecked(this.next[p]);
      if (p == NIL) return; // not linked: nothing to do (never happens for a live entry)
      unchecked((this.next[p] = this.next[e]));
    }
    this.names.release(unchecked(this.name[e]));
    this.names.release(unchecked(this.via[e]));
    for (let k = 0; k < ECH_NAMES_PER_ENTRY; k++) {
      const at = e * ECH_NAMES_PER_ENTRY + k;
      if (unchecked(this.ech[at]) != NO_NAME) this.names.release(unchecked(this.ech[at]));
      unchecked((this.ech[at] = NO_NAME));
    }
    if (this.lastEntry == e) this.lastEntry = NIL;
    unchecked((this.name[e] = NO_NAME));
    unchecked((this.next[e] = this.free));
    this.free = e;
    this.size--;
  }

  /** Removes entries expired before `cutoffMs`; returns how many. Root context only (O(capacity)). */
  sweep(cutoffMs: i64): i32 {
    let n = 0;
    for (let e = 0; e < this.capacity; e++) {
      if (unchecked(this.name[e]) != NO_NAME && unchecked(this.expires[e]) <= cutoffMs) {
        this.unlink(e);
        n++;
      }
    }
    this.expired += <u64>n;
    return n;
  }

  private makeRoom(nowMs: i64): bool {
    if (this.sweep(nowMs) > 0) return true;
    return this.evictSoonest();
  }

  private evictSoonest(): bool {
    let best = NIL;
    let bestExp = i64.MAX_VALUE;
    for (let e = 0; e < this.capacity; e++) {
      if (unchecked(this.name[e]) != NO_NAME && unchecked(this.expires[e]) < bestExp) {
        bestExp = unchecked(this.expires[e]);
        best = e;
      }
    }
    if (best == NIL) return false;
    this.unlink(best);
    this.evicted++;
    return true;
  }

  /**
   * Fills the candidate view with the names this pod resolved to the IP that are still usable at
   * `nowMs`: an entry is kept `graceMs` after its TTL ran out (pass the snapshot's largest policy
   * grace; the engine applies each policy's own grace from staleSeconds). Allocation-free.
   * Returns the candidate count.
   */
  lookup(hi: u64, lo: u64, nowMs: i64, graceMs: i64): i32 {
    let n = 0;
    let latest: i64 = 0;
    this.candTruncated = false;
    let e = unchecked(this.buckets[hashIp(hi, lo) & this.mask]);
    while (e != NIL) {
      if (unchecked(this.ipLo[e]) == lo && unchecked(this.ipHi[e]) == hi) {
        const exp = unchecked(this.expires[e]);
        if (exp + graceMs > nowMs) {
          if (n < MAX_CANDIDATES) {
            unchecked((this.candEntry[n] = e));
            const rec = changetype<usize>(this.candBuf) + <usize>(n * CANDIDATE_BYTES);
            const id = unchecked(this.name[e]);
            store<u32>(rec, <u32>this.names.ptr(id));
            store<u32>(rec + 4, this.names.len(id));
            // Seconds since the TTL ran out, rounded up; ≤ 0 while fresh.
            const staleMs = nowMs - exp;
            // Clamped to i32: mesh-configuration names expire in the far future (year 9999).
            const staleS = staleMs <= 0 ? staleMs / 1000 : (staleMs + 999) / 1000;
            store<i32>(rec + 8, staleS < <i64>i32.MIN_VALUE ? i32.MIN_VALUE : (staleS > <i64>i32.MAX_VALUE ? i32.MAX_VALUE : <i32>staleS));
            store<u32>(rec + 12, unchecked(this.origin[e]) == ORIGIN_MESH_CONFIG ? CAND_MESH_CONFIG : 0);
            n++;
            if (exp > latest) latest = exp;
          } else {
            this.candTruncated = true;
          }
        }
      }
      e = unchecked(this.next[e]);
    }
    this.candCount = n;
    this.candLatestExpiry = latest;
    return n;
  }

  /** True when some entry for the IP exists, valid or expired (distinguishes "expired" from "never resolved"). */
  knowsIp(hi: u64, lo: u64): bool {
    let e = unchecked(this.buckets[hashIp(hi, lo) & this.mask]);
    while (e != NIL) {
      if (unchecked(this.ipLo[e]) == lo && unchecked(this.ipHi[e]) == hi) return true;
      e = unchecked(this.next[e]);
    }
    return false;
  }

  // Accessors for candidate i of the last lookup().
  candNameId(i: i32): u32 {
    return unchecked(this.name[this.candEntry[i]]);
  }
  candViaId(i: i32): u32 {
    return unchecked(this.via[this.candEntry[i]]);
  }
  candExpires(i: i32): i64 {
    return unchecked(this.expires[this.candEntry[i]]);
  }
  /** Whether candidate i's only evidence is mesh configuration (no DNS answer to the pod). */
  candMeshOnly(i: i32): bool {
    return unchecked(this.origin[this.candEntry[i]]) == ORIGIN_MESH_CONFIG;
  }

  /**
   * ECH narrowing: keeps, in place and in order, only the candidates of the last lookup() whose
   * name's HTTPS/SVCB answers (as this pod received them) named the public name `ptr/len` (the
   * outer SNI, compared label-exact, case-insensitively). Returns how many remain; when none does,
   * the candidates are left as they were (0). Allocation-free.
   */
  narrowToEchPublicName(ptr: usize, len: u32): i32 {
    const id = this.names.find(ptr, len);
    if (id == NO_NAME) return 0;
    let kept = 0;
    for (let i = 0; i < this.candCount; i++) {
      const e = unchecked(this.candEntry[i]);
      let named = false;
      for (let k = 0; k < ECH_NAMES_PER_ENTRY; k++) if (unchecked(this.ech[e * ECH_NAMES_PER_ENTRY + k]) == id) named = true;
      if (named) kept++;
    }
    if (kept == 0) return 0;
    let w = 0;
    const base = changetype<usize>(this.candBuf);
    for (let i = 0; i < this.candCount; i++) {
      const e = unchecked(this.candEntry[i]);
      let named = false;
      for (let k = 0; k < ECH_NAMES_PER_ENTRY; k++) if (unchecked(this.ech[e * ECH_NAMES_PER_ENTRY + k]) == id) named = true;
      if (!named) continue;
      if (w != i) {
        unchecked((this.candEntry[w] = e));
        memory.copy(base + <usize>(w * CANDIDATE_BYTES), base + <usize>(i * CANDIDATE_BYTES), <usize>CANDIDATE_BYTES);
      }
      w++;
    }
    this.candCount = w;
    return w;
  }

  /** Index of the candidate whose name equals the bytes (case-insensitive, trailing dot ignored), or -1. */
  candidateIndexOf(ptr: usize, len: u32): i32 {
    const id = this.names.find(ptr, len);
    if (id == NO_NAME) return -1;
    for (let i = 0; i < this.candCount; i++) if (this.candNameId(i) == id) return i;
    return -1;
  }
}
