// Pairs serialization used for header/metadata maps and map/list properties (reference §2.3):
//   u32 count, count × (u32 keyLen, u32 valueLen), count × (key 0x00 value 0x00), little-endian.

/**
 * A validating, non-allocating view over serialized pairs. `reset` returns false (and the view is
 * empty) unless the buffer is consumed exactly with every string NUL-terminated, as the host does.
 */
export class PairsReader {
  private base: usize = 0;
  private n: u32 = 0;
  private dataStart: usize = 0;
  private cursorIndex: u32 = 0;
  private cursorOffset: usize = 0;

  get count(): u32 { return this.n; }

  reset(ptr: usize, len: u32): bool {
    this.n = 0; this.base = ptr; this.cursorIndex = 0;
    if (len == 0) return true;
    if (len < 4) return false;
    const count = load<u32>(ptr);
    // Each pair needs at least 8 header bytes and 2 NULs; reject counts the buffer cannot hold.
    if (<u64>count * 10 > <u64>(len - 4)) return false;
    const headerEnd = ptr + 4 + <usize>count * 8;
    let off = headerEnd;
    const end = ptr + len;
    for (let i: u32 = 0; i < count; i++) {
      const kl = load<u32>(ptr + 4 + <usize>i * 8);
      const vl = load<u32>(ptr + 8 + <usize>i * 8);
      if (<u64>off + <u64>kl + <u64>vl + 2 > <u64>end) return false;
      if (load<u8>(off + kl) != 0) return false;
      off += kl + 1;
      if (load<u8>(off + vl) != 0) return false;
      off += vl + 1;
    }
    if (off != end) return false;
    this.n = count; this.dataStart = headerEnd;
    this.cursorOffset = headerEnd;
    return true;
  }

  keyLen(i: u32): u32 { return i < this.n ? load<u32>(this.base + 4 + <usize>i * 8) : 0; }
  valueLen(i: u32): u32 { return i < this.n ? load<u32>(this.base + 8 + <usize>i * 8) : 0; }
  keyPtr(i: u32): usize { return i < this.n ? this.offsetOf(i) : 0; }
  valuePtr(i: u32): usize { return i < this.n ? this.offsetOf(i) + this.keyLen(i) + 1 : 0; }

  /** Index of the first pair whose key equals `key` (ASCII compare), or -1. */
  find(key: string): i32 {
    for (let i: u32 = 0; i < this.n; i++) {
      if (this.keyLen(i) != <u32>key.length) continue;
      const p = this.keyPtr(i);
      let same = true;
      for (let k = 0; k < key.length; k++) if (<u32>load<u8>(p + k) != <u32>key.charCodeAt(k)) { same = false; break; }
      if (same) return <i32>i;
    }
    return -1;
  }

  /** Key as a string (allocates). */
  key(i: u32): string { return String.UTF8.decodeUnsafe(this.keyPtr(i), this.keyLen(i)); }
  /** Value as a string (allocates). */
  value(i: u32): string { return String.UTF8.decodeUnsafe(this.valuePtr(i), this.valueLen(i)); }

  // Sequential access is O(1) per step; random access walks from the start.
  private offsetOf(i: u32): usize {
    if (i < this.cursorIndex) { this.cursorIndex = 0; this.cursorOffset = this.dataStart; }
    while (this.cursorIndex < i) {
      this.cursorOffset += this.keyLen(this.cursorIndex) + this.valueLen(this.cursorIndex) + 2;
      this.cursorIndex++;
    }
    return this.cursorOffset;
  }
}

/** Serializes string pairs (configuration time; allocates). */
export function encodePairs(keys: string[], values: string[]): ArrayBuffer {
  const n = keys.length < values.length ? keys.length : values.length;
  let size = 4 + n * 8;
  for (let i = 0; i < n; i++) size += String.UTF8.byteLength(keys[i]) + String.UTF8.byteLength(values[i]) + 2;
  const buf = new ArrayBuffer(size);
  const p = changetype<usize>(buf);
  store<u32>(p, n);
  let off = p + 4 + <usize>n * 8;
  for (let i = 0; i < n; i++) {
    const kl = String.UTF8.encodeUnsafe(changetype<usize>(keys[i]), keys[i].length, off);
    store<u8>(off + kl, 0);
    off += kl + 1;
    const vl = String.UTF8.encodeUnsafe(changetype<usize>(values[i]), values[i].length, off);
    store<u8>(off + vl, 0);
    off += vl + 1;
    store<u32>(p + 4 + <usize>i * 8, <u32>kl);
    store<u32>(p + 8 + <usize>i * 8, <u32>vl);
  }
  return buf;
}
