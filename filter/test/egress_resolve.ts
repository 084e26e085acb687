// Unit-test harness for filter/assembly/resolve (driven by control/test/unit/egress-resolve.test.ts).
import { ResolutionTable } from "../assembly/resolve/table";
import { parseHostPort, parseIp, parsedHi, parsedLo, parsedPort, parsedIsV4, formatIp } from "../assembly/resolve/ip";

const io = memory.data(4096);
let table: ResolutionTable = new ResolutionTable(16, 1024);

export function ioPtr(): usize {
  return io;
}

export function create(capacity: i32, nameBytes: i32): void {
  table = new ResolutionTable(capacity, nameBytes);
}

/** Parses text at io[0..len) as an address; `withPort` selects parseHostPort. Returns 1/0. */
export function parse(len: i32, withPort: bool): i32 {
  return (withPort ? parseHostPort(io, <usize>len) : parseIp(io, <usize>len)) ? 1 : 0;
}
export function lastHi(): u64 {
  return parsedHi;
}
export function lastLo(): u64 {
  return parsedLo;
}
export function lastPort(): u32 {
  return parsedPort;
}
export function lastIsV4(): i32 {
  return parsedIsV4 ? 1 : 0;
}
/** Formats (hi, lo) into io; returns the length. */
export function format(hi: u64, lo: u64): u32 {
  return formatIp(hi, lo, io);
}

/** io holds name bytes at [0, nameLen) and via bytes at [nameLen, nameLen+viaLen). */
export function upsert(hi: u64, lo: u64, nameLen: u32, viaLen: u32, expiresMs: i64, nowMs: i64): i32 {
  return table.upsert(hi, lo, io, nameLen, io + nameLen, viaLen, expiresMs, nowMs) ? 1 : 0;
}
export function remove(hi: u64, lo: u64, nameLen: u32): i32 {
  return table.remove(hi, lo, io, nameLen) ? 1 : 0;
}
export function removeIp(hi: u64, lo: u64): i32 {
  return table.removeIp(hi, lo);
}
export function lookup(hi: u64, lo: u64, nowMs: i64, graceMs: i64): i32 {
  return table.lookup(hi, lo, nowMs, graceMs);
}
export function knowsIp(hi: u64, lo: u64): i32 {
  return table.knowsIp(hi, lo) ? 1 : 0;
}
/** Copies candidate i's name (which = 0) or via name (which = 1) into io; returns its length. */
export function candidate(i: i32, which: i32): u32 {
  const id = which == 0 ? table.candNameId(i) : table.candViaId(i);
  const n = table.names.len(id);
  memory.copy(io, table.names.ptr(id), n);
  return n;
}
export function candidateExpires(i: i32): i64 {
  return table.candExpires(i);
}
export function candidateIndexOf(len: u32): i32 {
  return table.candidateIndexOf(io, len);
}
export function truncated(): i32 {
  return table.candTruncated ? 1 : 0;
}
export function sweep(cutoff: i64): i32 {
  return table.sweep(cutoff);
}
export function clear(): void {
  table.clear();
}
export function size(): i32 {
  return table.size;
}
export function evicted(): u64 {
  return table.evicted;
}
export function rejected(): u64 {
  return table.rejected;
}
export function liveNames(): i32 {
  return table.names.live;
}
export function heapBytes(): usize {
  return memory.size() << 16;
}
