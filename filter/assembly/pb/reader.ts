// Protobuf wire-format reader over a borrowed byte range (https://protobuf.dev/programming-guides/encoding/).
// Never traps and never allocates: every malformed input (truncated varint, length past the end,
// field number 0, groups, unknown wire type) sets `failed` and makes every later read return 0.
// Callers check `failed` once after decoding a message.

// @ts-ignore: decorator
@inline export const WIRE_VARINT: u32 = 0;
// @ts-ignore: decorator
@inline export const WIRE_FIXED64: u32 = 1;
// @ts-ignore: decorator
@inline export const WIRE_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const WIRE_FIXED32: u32 = 5;

/** Highest field number protobuf allows (2^29 - 1). */
// @ts-ignore: decorator
@inline const MAX_FIELD: u32 = 0x1fffffff;

export class PbReader {
  /** Current read position (absolute address). Invariant: start <= pos <= end. */
  pos: usize = 0;
  end: usize = 0;
  start: usize = 0;
  /** Set on the first malformed byte; sticky until reset. */
  failed: bool = false;
  /** Field number and wire type of the tag read by the last next(). */
  field: u32 = 0;
  wire: u32 = 0;
  /** Range of the last length-delimited value read by bytes()/next() helpers. */
  bytesPtr: usize = 0;
  bytesLen: u32 = 0;

  reset(ptr: usize, len: usize): PbReader {
    this.start = ptr;
    this.pos = ptr;
    this.end = ptr + len;
    this.failed = false;
    this.field = 0;
    this.wire = 0;
    this.bytesPtr = 0;
    this.bytesLen = 0;
    return this;
  }

  /** Points this reader at the bytes of the last length-delimited value of `parent`. */
  enter(parent: PbReader): PbReader {
    return this.reset(parent.bytesPtr, parent.bytesLen);
  }

  fail(): void {
    this.failed = true;
    this.pos = this.end;
  }

  /** Reads the next tag; false at the end of the message or after an error. */
  next(): bool {
    if (this.failed || this.pos >= this.end) return false;
    const tag = this.varint64();
    if (this.failed) return false;
    const field = <u32>(tag >> 3);
    const wire = <u32>(tag & 7);
    if (field == 0 || tag >> 3 > <u64>MAX_FIELD || (wire != WIRE_VARINT && wire != WIRE_FIXED64 && wire != WIRE_LEN && wire != WIRE_FIXED32)) {
      this.fail();
      return false;
    }
    this.field = field;
    this.wire = wire;
    return true;
  }

  varint64(): u64 {
    let result: u64 = 0;
    let shift: u64 = 0;
    let p = this.pos;
    const end = this.end;
    while (true) {
      if (p >= end || shift > 63) {
        this.fail();
        return 0;
      }
      const b = <u64>load<u8>(p);
      p++;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
      shift += 7;
    }
    this.pos = p;
    return result;
  }

  /** uint32/int32/enum: the low 32 bits, as protobuf specifies for truncation. */
  varint32(): u32 {
    return <u32>this.varint64();
  }

  sint64(): i64 {
    const v = this.varint64();
    return <i64>(v >> 1) ^ -<i64>(v & 1);
  }

  sint32(): i32 {
    return <i32>this.sint64();
  }

  bool(): bool {
    return this.varint64() != 0;
  }

  fixed32(): u32 {
    if (this.end - this.pos < 4) {
      this.fail();
      return 0;
    }
    const v = load<u32>(this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): u64 {
    if (this.end - this.pos < 8) {
      this.fail();
      return 0;
    }
    const v = load<u64>(this.pos);
    this.pos += 8;
    return v;
  }

  /** Reads a length-delimited value into bytesPtr/bytesLen; false on error. */
  bytes(): bool {
    const n = this.varint64();
    if (this.failed) return false;
    if (n > <u64>(this.end - this.pos)) {
      this.fail();
      return false;
    }
    this.bytesPtr = this.pos;
    this.bytesLen = <u32>n;
    this.pos += <usize>n;
    return true;
  }

  /** Skips the value of the field whose tag next() just read. */
  skip(): void {
    const w = this.wire;
    if (w == WIRE_VARINT) this.varint64();
    else if (w == WIRE_FIXED64) this.fixed64();
    else if (w == WIRE_FIXED32) this.fixed32();
    else if (w == WIRE_LEN) this.bytes();
    else this.fail();
  }

  /** True when the current field has the wire type a decoder expects; skips it (unknown-field rule) otherwise. */
  expect(wire: u32): bool {
    if (this.wire == wire) return true;
    this.skip();
    return false;
  }
}
