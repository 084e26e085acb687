// Unit-test harness for the ABI layer's pure codecs (no host): PairsReader validation and
// encodeGrpcService, checked against the Node host's implementations by
// control/test/unit/abi-codecs.test.ts.
import { PairsReader } from "../assembly/abi/pairs";
import { encodeGrpcService } from "../assembly/abi/grpc";

const IO_SIZE: i32 = 1 << 16;
const INPUT = memory.data(1 << 16);
const OUTPUT = memory.data(1 << 16);
const reader = new PairsReader();

export function input_ptr(): usize { return INPUT; }
export function output_ptr(): usize { return OUTPUT; }

/** Validates INPUT[0..len) as pairs; returns the count, or -1 if the reader rejected it. */
export function pairs_check(len: u32): i32 {
  return reader.reset(INPUT, len) ? <i32>reader.count : -1;
}

/** Offsets (from INPUT) and lengths of pair `i` of the last pairs_check, written to OUTPUT as 4 u32. */
export function pairs_entry(i: u32): void {
  store<u32>(OUTPUT, <u32>(reader.keyPtr(i) - INPUT));
  store<u32>(OUTPUT + 4, reader.keyLen(i));
  store<u32>(OUTPUT + 8, <u32>(reader.valuePtr(i) - INPUT));
  store<u32>(OUTPUT + 12, reader.valueLen(i));
}

/** encodeGrpcService(cluster = INPUT[0..c), authority = INPUT[c..c+a)) into OUTPUT; returns its length. */
export function grpc_service(c: u32, a: u32): i32 {
  const cluster = String.UTF8.decodeUnsafe(INPUT, c);
  const authority = String.UTF8.decodeUnsafe(INPUT + c, a);
  const out = encodeGrpcService(cluster, authority);
  if (out.byteLength > IO_SIZE) return -1;
  memory.copy(OUTPUT, changetype<usize>(out), out.byteLength);
  return out.byteLength;
}
