// Interned DNS names: each distinct name is stored once in a byte arena and referred to by a u32
// id. Names are normalized on the way in (ASCII lowercase, trailing dot removed), so equality is a
// byte compare. Reference-counted by the resolution table; compact() rewrites the arena without
// the holes of released names. Lookups (find) never allocate.

// @ts-ignore: decorator
@inline export const NO_NAME: u32 = 0xffffffff;
/** Longest DNS name in presentation form (RFC 1035: 255 octets on the wire). */
// @ts-ignore: decorator
@inline export const MAX_NAME_LEN: u32 = 253;

// @ts-ignore: decorator
@inline function lower(c: u32): u32 {
  return c - 0x41 < 26 ? c | 0x20 : c;
}

/** Length without a single trailing dot. */
export function trimmedLength(ptr: usize, len: u32): u32 {
  return len > 0 && load<u8>(ptr + len - 1) == 0x2e ? len - 1 : len;
}

function hashName(ptr: usize, len: u32): u32 {
  let h: u32 = 0x811c9dc5; // FNV-1a over lowercased bytes
  for (let i: u32 = 0; i < len; i++) {
    h ^= lower(<u32>load<u8>(ptr + i));
    h *= 0x01000193;
  }
  return h;
}

export class NamePool {
  private arena: StaticArray<u8>;
  private arenaUsed: i32 = 0;
  private offset: StaticArray<i32>;
  private length: StaticArray<u32>;
  private refs: StaticArray<u32>;
  private hash: StaticArray<u32>;
  private chain: StaticArray<u32>;
  private buckets: StaticArray<u32>;
  private mask: u32;
  private freeId: u32 = NO_NAME;
  readonly maxNames: i32;
  live: i32 = 0;

  constructor(maxNames: i32, arenaBytes: i32) {
    this.maxNames = maxNames;
    this.arena = new StaticArray<u8>(arenaBytes);
    this.offset = new StaticArray<i32>(maxNames);
    this.length = new StaticArray<u32>(maxNames);
    this.refs = new StaticArray<u32>(maxNames);
    this.hash = new StaticArray<u32>(maxNames);
    this.chain = new StaticArray<u32>(maxNames);
    let b: u32 = 16;
    while (b < <u32>maxNames) b <<= 1;
    this.mask = b - 1;
    this.buckets = new StaticArray<u32>(<i32>b);
    this.clear();
  }

  clear(): void {
    for (let i = 0; i <= <i32>this.mask; i++) unchecked((this.buckets[i] = NO_NAME));
    for (let i = 0; i < this.maxNames; i++) {
      unchecked((this.refs[i] = 0));
      unchecked((this.length[i] = 0));
      unchecked((this.chain[i] = i + 1 < this.maxNames ? <u32>(i + 1) : NO_NAME));
    }
    this.freeId = 0;
    this.arenaUsed = 0;
    this.live = 0;
  }

  ptr(id: u32): usize {
    return changetype<usize>(this.arena) + <usize>unchecked(this.offset[id]);
  }
  len(id: u32): u32 {
    return unchecked(this.length[id]);
  }

  private equals(id: u32, ptr: usize, len: u32): bool {
    if (unchecked(this.length[id]) != len) return false;
    const p = this.ptr(id);
    for (let i: u32 = 0; i < len; i++) {
      if (<u32>load<u8>(p + i) != lower(<u32>load<u8>(ptr + i))) return false;
    }
    return true;
  }

  /** Id of the name (case-insensitive, trailing dot ignored), or NO_NAME. Allocation-free. */
  find(ptr: usize, len: u32): u32 {
    len = trimmedLength(ptr, len);
    if (len == 0 || len > MAX_NAME_LEN) return NO_NAME;
    const h = hashName(ptr, len);
    let id = unchecked(this.buckets[h & this.mask]);
    while (id != NO_NAME) {
      if (unchecked(this.hash[id]) == h && this.equals(id, ptr, len)) return id;
      id = unchecked(this.chain[id]);
    }
    return NO_NAME;
  }

  /** Id of the name, adding it (with zero references) if new; NO_NAME when invalid or full. */
  intern(ptr: usize, len: u32): u32 {
    const found = this.find(ptr, len);
    if (found != NO_NAME) return found;
    len = trimmedLength(ptr, len);
    if (len == 0 || len > MAX_NAME_LEN) return NO_NAME;
    if (this.freeId == NO_NAME || this.arenaUsed + <i32>len > this.arena.length) return NO_NAME;
    const id = this.freeId;
    this.freeId = unchecked(this.chain[id]);
    const at = this.arenaUsed;
    const dst = changetype<usize>(this.arena) + <usize>at;
    for (let i: u32 = 0; i < len; i++) store<u8>(dst + i, <u8>lower(<u32>load<u8>(ptr + i)));
    this.arenaUsed += <i32>len;
    const h = hashName(ptr, len);
    unchecked((this.offset[id] = at));
    unchecked((this.length[id] = len));
    unchecked((this.hash[id] = h));
    unchecked((this.refs[id] = 0));
    const b = h & this.mask;
    unchecked((this.chain[id] = this.buckets[b]));
    unchecked((this.buckets[b] = id));
    this.live++;
    return id;
  }

  retain(id: u32): void {
    unchecked((this.refs[id] += 1));
  }

  /** Drops one reference; the name is freed when none remain. */
  release(id: u32): void {
    if (id == NO_NAME || unchecked(this.refs[id]) == 0) return;
    const r = unchecked(this.refs[id]) - 1;
    unchecked((this.refs[id] = r));
    if (r > 0) return;
    const b = unchecked(this.hash[id]) & this.mask;
    let p = unchecked(this.buckets[b]);
    if (p == id) unchecked((this.buckets[b] = this.chain[id]));
    else {
      while (p != NO_NAME && unchecked(this.chain[p]) != id) p = unchecked(this.chain[p]);
      if (p != NO_NAME) unchecked((this.chain[p] = this.chain[id]));
    }
    unchecked((this.length[id] = 0));
    unchecked((this.chain[id] = this.freeId));
    this.freeId = id;
    this.live--;
  }

  /**
   * Rewrites the arena so live names are contiguous (ids stay stable). Allocates one new arena:
   * runs only when the arena is full, in the root context, never on a connection path.
   */
  compact(): void {
    const fresh = new StaticArray<u8>(this.arena.length);
    const src = changetype<usize>(this.arena);
    const dst = changetype<usize>(fresh);
    let used = 0;
    for (let i = 0; i < this.maxNames; i++) {
      const l = unchecked(this.length[i]);
      if (l == 0) continue;
      memory.copy(dst + <usize>used, src + <usize>unchecked(this.offset[i]), l);
      unchecked((this.offset[i] = used));
      used += <i32>l;
    }
    this.arena = fresh;
    this.arenaUsed = used;
  }

  /** Frees a name that was interned but never retained (an insert that failed half-way). */
  dropIfUnused(id: u32): void {
    if (id == NO_NAME || unchecked(this.refs[id]) != 0 || unchecked(this.length[id]) == 0) return;
    unchecked((this.refs[id] = 1));
    this.release(id);
  }

  arenaBytesUsed(): i32 {
    return this.arenaUsed;
  }
}
