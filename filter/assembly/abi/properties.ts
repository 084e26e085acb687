// Properties (reference/proxy-wasm.md §4): a path is a list of segments joined by NUL (0x00) —
// "source.address" as one segment is NotFound. Values are raw bytes: strings as-is, integers as
// 8-byte little-endian, maps and lists as pairs (§2.3, decode with PairsReader).
import { proxy_get_property, proxy_set_property } from "./imports";
import { Status } from "./enums";
import { HostBytes, OUT_PTR, OUT_LEN } from "./memory";

/** A property path built segment by segment in a fixed buffer (no allocation after construction). */
export class PropertyPath {
  readonly ptr: usize;
  readonly cap: u32;
  len: u32 = 0;
  /** False once a segment did not fit; get/set then answer BadArgument instead of a wrong path. */
  ok: bool = true;

  constructor(cap: u32 = 512) {
    this.cap = cap;
    this.ptr = heap.alloc(cap);
  }

  reset(): PropertyPath { this.len = 0; this.ok = true; return this; }

  /** Appends a segment given as a string (any characters except NUL, dots included). */
  seg(s: string): PropertyPath {
    const max = String.UTF8.byteLength(s);
    if (!this.openSegment(<u32>max)) return this;
    this.len += <u32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.ptr + this.len);
    return this;
  }

  /** Appends a segment given as bytes. */
  segBytes(ptr: usize, n: u32): PropertyPath {
    if (!this.openSegment(n)) return this;
    memory.copy(this.ptr + this.len, ptr, n);
    this.len += n;
    return this;
  }

  private openSegment(n: u32): bool {
    const sep: u32 = this.len > 0 ? 1 : 0;
    if (!this.ok || this.len + sep + n > this.cap) { this.ok = false; return false; }
    if (sep) { store<u8>(this.ptr + this.len, 0); this.len += 1; }
    return true;
  }
}

/** Reads a property into `out` (host-allocated; released on reuse). NotFound when absent. */
export function getProperty(path: PropertyPath, out: HostBytes): Status {
  if (!path.ok) { out.release(); return Status.BadArgument; }
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = <Status>proxy_get_property(path.ptr, path.len, OUT_PTR, OUT_LEN);
  if (st == Status.Ok) out.takeOut(); else out.release();
  return st;
}

/** Writes filter state `wasm.<path>` on the current connection (NotFound on a root context). */
export function setProperty(path: PropertyPath, value: usize, valueLen: u32): Status {
  if (!path.ok) return Status.BadArgument;
  return <Status>proxy_set_property(path.ptr, path.len, value, valueLen);
}

const PATH = new PropertyPath(1024);
const VALUE = new HostBytes();

/** Convenience for configuration-time reads: up to four segments; null when absent. Allocates. */
export function propertyString(a: string, b: string = "", c: string = "", d: string = ""): string | null {
  buildPath(a, b, c, d);
  if (getProperty(PATH, VALUE) != Status.Ok) return null;
  const s = VALUE.toString();
  VALUE.release();
  return s;
}

/** Convenience for int64 properties (ports, listener_direction); `fallback` when absent. */
export function propertyI64(fallback: i64, a: string, b: string = "", c: string = "", d: string = ""): i64 {
  buildPath(a, b, c, d);
  if (getProperty(PATH, VALUE) != Status.Ok) return fallback;
  const v = VALUE.i64LE(fallback);
  VALUE.release();
  return v;
}

function buildPath(a: string, b: string, c: string, d: string): void {
  PATH.reset().seg(a);
  if (b.length > 0) PATH.seg(b);
  if (c.length > 0) PATH.seg(c);
  if (d.length > 0) PATH.seg(d);
}
