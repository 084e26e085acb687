// Matchers used by the engine: name comparison and CIDRs. No allocation. (Domain patterns are
// matched through the snapshot's suffix index, see engine.ts indexCandidates.)
import { CIDR_FAMILY, CIDR_PREFIX, CIDR_HI, CIDR_LO } from "./layout";

/** ASCII lowercase of one byte. */
// @ts-ignore: decorator
@inline function lower(c: u32): u32 {
  return c - 0x41 < 26 ? c | 0x20 : c;
}

/** Length of a name without its trailing dot (names arrive without one; tolerated anyway). */
// @ts-ignore: decorator
@inline export function trimmedLength(ptr: usize, len: i32): i32 {
  return len > 0 && load<u8>(ptr + <usize>(len - 1)) == 0x2e ? len - 1 : len;
}

/** Case-insensitive comparison of name bytes [a, a+n) with lowercase bytes [b, b+n). */
export function equalFold(a: usize, b: usize, n: i32): bool {
  for (let i = 0; i < n; i++) {
    if (lower(<u32>load<u8>(a + <usize>i)) != <u32>load<u8>(b + <usize>i)) return false;
  }
  return true;
}

/** Case-insensitive equality of two names, each possibly with a trailing dot. */
export function sameName(a: usize, aLen: i32, b: usize, bLen: i32): bool {
  const n = trimmedLength(a, aLen);
  if (n != trimmedLength(b, bLen)) return false;
  for (let i = 0; i < n; i++) {
    if (lower(<u32>load<u8>(a + <usize>i)) != lower(<u32>load<u8>(b + <usize>i))) return false;
  }
  return true;
}

/**
 * Whether address (hi, lo) — 16 bytes as two big-endian halves, IPv4 mapped — lies in the CIDR
 * entry at `entry` (layout.ts CIDR_*). IPv4 entries match only
 * IPv4-mapped addresses and IPv6 entries only the others.
 */
export function cidrContains(entry: usize, hi: u64, lo: u64, isV4: bool): bool {
  const family = load<u8>(entry, CIDR_FAMILY);
  if ((family == 4) != isV4) return false;
  const prefix = <u64>load<u8>(entry, CIDR_PREFIX);
  const netHi = load<u64>(entry, CIDR_HI);
  const netLo = load<u64>(entry, CIDR_LO);
  if (prefix == 0) return true;
  if (prefix <= 64) return ((hi ^ netHi) >> (64 - prefix)) == 0;
  if (hi != netHi) return false;
  return prefix == 128 ? lo == netLo : ((lo ^ netLo) >> (128 - prefix)) == 0;
}

/** True when the address is IPv4-mapped (::ffff:a.b.c.d). */
// @ts-ignore: decorator
@inline export function isV4Mapped(hi: u64, lo: u64): bool {
  return hi == 0 && (lo >> 32) == 0xffff;
}
