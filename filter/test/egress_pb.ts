// Unit-test harness for filter/assembly/pb (driven by control/test/unit/egress-pb.test.ts).
// Input and output go through one static scratch area; no proxy-wasm ABI.
import { PbReader, WIRE_LEN } from "../assembly/pb/reader";
import { PbWriter } from "../assembly/pb/writer";

const SCRATCH_SIZE: i32 = 1 << 16;
const scratch = memory.data(1 << 16);
const out = memory.data(1 << 16);
const reader = new PbReader();
const inner = new PbReader();
const writer = new PbWriter(out, <u32>SCRATCH_SIZE);

export function inputPtr(): usize {
  return scratch;
}
export function outputPtr(): usize {
  return out;
}

/**
 * Decodes the message in scratch[0..len) generically, writing one 24-byte record per field to
 * output: u32 field, u32 wire, u64 value (varint/fixed) or (u32 offset, u32 length) for bytes.
 * Length-delimited values are also tried as nested messages to exercise enter().
 * Returns the field count, or -1 when the input is malformed.
 */
export function decodeFlat(len: i32): i32 {
  reader.reset(scratch, <usize>len);
  let n = 0;
  while (reader.next()) {
    const rec = out + <usize>(n * 24);
    if (rec + 24 > out + <usize>SCRATCH_SIZE) return -2;
    store<u32>(rec, reader.field);
    store<u32>(rec + 4, reader.wire);
    if (reader.wire == WIRE_LEN) {
      reader.bytes();
      store<u32>(rec + 8, <u32>(reader.bytesPtr - scratch));
      store<u32>(rec + 12, reader.bytesLen);
      inner.enter(reader);
      while (inner.next()) inner.skip();
    } else if (reader.wire == 0) {
      store<u64>(rec + 8, reader.varint64());
    } else if (reader.wire == 1) {
      store<u64>(rec + 8, reader.fixed64());
    } else {
      store<u64>(rec + 8, <u64>reader.fixed32());
    }
    n++;
  }
  return reader.failed ? -1 : n;
}

/** Reads one varint at scratch[0..len) as zigzag sint64 (for tests of the decoder arithmetic). */
export function decodeSint64(len: i32): i64 {
  reader.reset(scratch, <usize>len);
  return reader.sint64();
}

/** Writer exercise: a fixed message shape with values from the caller; returns length or -1 on overflow. */
export function encodeSample(cap: u32, u: u64, s: i64, i: i32, f32: u32, f64: u64, bytesLen: u32, nestedRepeat: i32): i32 {
  writer.buf = out;
  writer.cap = cap;
  writer.reset();
  writer.uint64(1, u);
  writer.sint64(2, s);
  writer.int32(3, i);
  writer.fixed32(4, f32);
  writer.fixed64(5, f64);
  writer.bytes(6, scratch, bytesLen);
  writer.string(7, "h\u00e9llo");
  for (let k = 0; k < nestedRepeat; k++) {
    writer.begin(8);
    writer.uint32(1, <u32>k);
    writer.begin(2);
    writer.bytes(1, scratch, bytesLen);
    writer.end();
    writer.end();
  }
  writer.bool(9, true);
  return writer.ok() ? <i32>writer.pos : -1;
}
