// Protobuf wire-format writer into a caller-owned, preallocated buffer. Never grows the buffer and
// never traps: writing past the capacity sets `overflow` and the message must be discarded.
// Nested messages are written in place: begin() reserves one length byte, end() patches the length
// and shifts the body when the varint needs more bytes, so output is canonical.
import { WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from "./reader";

// @ts-ignore: decorator
@inline const MAX_DEPTH: i32 = 16;

export function varintSize(v: u64): u32 {
  let n: u32 = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

export class PbWriter {
  buf: usize = 0;
  cap: u32 = 0;
  pos: u32 = 0;
  overflow: bool = false;
  private starts: StaticArray<u32> = new StaticArray<u32>(MAX_DEPTH);
  private depth: i32 = 0;

  constructor(buf: usize, cap: u32) {
    this.buf = buf;
    this.cap = cap;
  }

  reset(): PbWriter {
    this.pos = 0;
    this.overflow = false;
    this.depth = 0;
    return this;
  }

  private room(n: u32): bool {
    if (this.overflow || this.cap - this.pos < n) {
      this.overflow = true;
      return false;
    }
    return true;
  }

  rawVarint(v: u64): void {
    if (!this.room(varintSize(v))) return;
    let p = this.buf + this.pos;
    while (v >= 0x80) {
      store<u8>(p++, <u8>(v & 0x7f) | 0x80);
      v >>= 7;
    }
    store<u8>(p++, <u8>v);
    this.pos = <u32>(p - this.buf);
  }

  tag(field: u32, wire: u32): void {
    this.rawVarint((<u64>field << 3) | wire);
  }

  uint64(field: u32, v: u64): void {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(v);
  }

  uint32(field: u32, v: u32): void {
    this.uint64(field, <u64>v);
  }

  /** int32/enum: negative values are sign-extended to ten bytes, as protobuf requires. */
  int32(field: u32, v: i32): void {
    this.uint64(field, <u64><i64>v);
  }

  int64(field: u32, v: i64): void {
    this.uint64(field, <u64>v);
  }

  sint64(field: u32, v: i64): void {
    this.uint64(field, <u64>((v << 1) ^ (v >> 63)));
  }

  bool(field: u32, v: bool): void {
    this.uint64(field, v ? 1 : 0);
  }

  fixed32(field: u32, v: u32): void {
    this.tag(field, WIRE_FIXED32);
    if (!this.room(4)) return;
    store<u32>(this.buf + this.pos, v);
    this.pos += 4;
  }

  fixed64(field: u32, v: u64): void {
    this.tag(field, WIRE_FIXED64);
    if (!this.room(8)) return;
    store<u64>(this.buf + this.pos, v);
    this.pos += 8;
  }

  bytes(field: u32, ptr: usize, len: u32): void {
    this.tag(field, WIRE_LEN);
    this.rawVarint(<u64>len);
    if (!this.room(len)) return;
    memory.copy(this.buf + this.pos, ptr, len);
    this.pos += len;
  }

  /** Writes a string field as UTF-8 without allocating. */
  string(field: u32, s: string): void {
    const n = <u32>String.UTF8.byteLength(s);
    this.tag(field, WIRE_LEN);
    this.rawVarint(<u64>n);
    if (!this.room(n)) return;
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.buf + this.pos);
    this.pos += n;
  }

  /** Opens a nested message (or packed field) `field`; close it with end(). */
  begin(field: u32): void {
    this.tag(field, WIRE_LEN);
    if (this.depth >= MAX_DEPTH) {
      this.overflow = true;
      return;
    }
    if (!this.room(1)) return;
    unchecked((this.starts[this.depth++] = this.pos));
    this.pos += 1; // one length byte reserved
  }

  end(): void {
    if (this.depth <= 0) {
      this.overflow = true;
      return;
    }
    const lenAt = unchecked(this.starts[--this.depth]);
    if (this.overflow) return;
    const bodyAt = lenAt + 1;
    const bodyLen = this.pos - bodyAt;
    const extra = varintSize(<u64>bodyLen) - 1;
    if (extra > 0) {
      if (!this.room(extra)) return;
      memory.copy(this.buf + bodyAt + extra, this.buf + bodyAt, bodyLen);
      this.pos += extra;
    }
    let p = this.buf + lenAt;
    let v = bodyLen;
    while (v >= 0x80) {
      store<u8>(p++, <u8>(v & 0x7f) | 0x80);
      v >>= 7;
    }
    store<u8>(p, <u8>v);
  }

  /** Drops everything written after `pos` (e.g. an event that did not fit) and clears overflow. */
  rollback(pos: u32): void {
    this.pos = pos;
    this.overflow = false;
    this.depth = 0;
  }

  /** True when the message is complete (all begin() closed) and fits. */
  ok(): bool {
    return !this.overflow && this.depth == 0;
  }
}

export { WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT };
