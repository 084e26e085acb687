// Memory the host writes into. The host returns data by calling the exported `malloc` and writing
// (pointer, length) into out-parameters (reference/proxy-wasm.md §2.4); the module owns and frees
// that memory. Out-parameter cells are static (`memory.data`) so host calls never allocate here.

// @ts-ignore: decorator
@inline export const OUT_PTR: usize = memory.data(4);
// @ts-ignore: decorator
@inline export const OUT_LEN: usize = memory.data(4);
// @ts-ignore: decorator
@inline export const OUT_U32: usize = memory.data(4);
// @ts-ignore: decorator
@inline export const OUT_U64: usize = memory.data(8);

/** Called by the host to obtain memory for returned data (CPPH looks up `malloc` first). */
export function malloc(size: usize): usize {
  // heap.alloc never returns 0 for a valid size; 0 tells the host allocation failed.
  return heap.alloc(size == 0 ? 1 : size);
}

/** The spec's name for the same allocator; exported too so either lookup order finds one. */
export function proxy_on_memory_allocate(size: usize): usize {
  return malloc(size);
}

/**
 * A block of bytes the host copied into module memory. `release()` frees it; reusing a HostBytes
 * for the next call releases the previous block first, so one instance per call site is enough
 * and the data path allocates nothing beyond what the host itself forces.
 */
export class HostBytes {
  ptr: usize = 0;
  len: u32 = 0;

  /** Frees the host-allocated copy; safe to call twice. */
  release(): void {
    if (this.ptr != 0) heap.free(this.ptr);
    this.ptr = 0;
    this.len = 0;
  }

  /** Takes ownership of what the host wrote into OUT_PTR/OUT_LEN. */
  takeOut(): void {
    this.release();
    this.ptr = load<u32>(OUT_PTR);
    this.len = load<u32>(OUT_LEN);
    if (this.len == 0 && this.ptr != 0) { heap.free(this.ptr); this.ptr = 0; }
  }

  /** Byte at `i` (0 when out of range). */
  at(i: u32): u8 { return i < this.len ? load<u8>(this.ptr + i) : 0; }

  /** Copies up to `cap` bytes to `dst`; returns the number copied. */
  copyTo(dst: usize, cap: u32): u32 {
    const n = this.len < cap ? this.len : cap;
    if (n > 0) memory.copy(dst, this.ptr, n);
    return n;
  }

  /** Little-endian signed 64-bit value (property ints, §4.2); `fallback` if not 8 bytes. */
  i64LE(fallback: i64 = 0): i64 { return this.len == 8 ? load<i64>(this.ptr) : fallback; }

  /** True when the bytes equal the ASCII/UTF-8 string `s` (no allocation for ASCII `s`). */
  equalsAscii(s: string): bool {
    const n = <u32>s.length;
    if (n != this.len) return false;
    for (let i: u32 = 0; i < n; i++) if (<u32>load<u8>(this.ptr + i) != <u32>s.charCodeAt(i)) return false;
    return true;
  }

  /** Decodes as UTF-8 (allocates: configuration time only). */
  toString(): string { return this.len == 0 ? "" : String.UTF8.decodeUnsafe(this.ptr, this.len); }

  /** Copies into a new ArrayBuffer (allocates: configuration time only). */
  toArrayBuffer(): ArrayBuffer {
    const out = new ArrayBuffer(<i32>this.len);
    if (this.len > 0) memory.copy(changetype<usize>(out), this.ptr, this.len);
    return out;
  }
}

/** Scratch used to pass short strings (log lines, names) to the host without allocating. */
// @ts-ignore: decorator
@inline export const SCRATCH_SIZE: u32 = 4096;
// @ts-ignore: decorator
@inline export const SCRATCH: usize = memory.data(4096);

/** Encodes `s` as UTF-8 into SCRATCH (truncated to fit); returns the byte length. */
export function toScratch(s: string): u32 {
  // Worst case is 3 bytes per UTF-16 unit; shorten the input rather than overrun the buffer.
  let units = s.length;
  const maxUnits = <i32>(SCRATCH_SIZE / 3);
  if (units > maxUnits) units = maxUnits;
  return <u32>String.UTF8.encodeUnsafe(changetype<usize>(s), units, SCRATCH);
}
