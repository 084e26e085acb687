// IP addresses as two u64 halves (network byte order packed big-endian into integers), so the hot
// path compares integers and never builds strings. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), the
// same convention as the policy snapshot's CIDRs.
//
// parseHostPort() reads Envoy's address strings ("10.1.2.3:443", "[2001:db8::1]:443") and the
// textual addresses carried by protobuf messages, without allocating. Results are in the module
// globals below (valid until the next parse call).

export let parsedHi: u64 = 0;
export let parsedLo: u64 = 0;
export let parsedPort: u32 = 0;
export let parsedIsV4: bool = false;

// @ts-ignore: decorator
@inline export const V4_MAPPED_PREFIX: u64 = 0x0000ffff00000000;

export function isV4Mapped(hi: u64, lo: u64): bool {
  return hi == 0 && (lo >> 32) == 0xffff;
}

function hexVal(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  c |= 0x20;
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  return -1;
}

/** Parses dotted-quad IPv4 in [p, end); sets parsedHi/parsedLo. */
function parseV4(p: usize, end: usize): bool {
  let v: u32 = 0;
  let parts = 0;
  while (parts < 4) {
    if (p >= end) return false;
    let n: u32 = 0;
    let digits = 0;
    while (p < end) {
      const c = <u32>load<u8>(p);
      if (c < 0x30 || c > 0x39) break;
      if (digits > 0 && n == 0) return false; // no leading zeros (octal ambiguity)
      n = n * 10 + (c - 0x30);
      if (n > 255) return false;
      digits++;
      p++;
    }
    if (digits == 0) return false;
    v = (v << 8) | n;
    parts++;
    if (parts < 4) {
      if (p >= end || load<u8>(p) != 0x2e) return false;
      p++;
    }
  }
  if (p != end) return false;
  parsedHi = 0;
  parsedLo = V4_MAPPED_PREFIX | <u64>v;
  parsedIsV4 = true;
  return true;
}

const groups = new StaticArray<u32>(8);

/** Parses an IPv6 address (with :: compression and an optional trailing dotted IPv4) in [p, end). */
function parseV6(p: usize, end: usize): bool {
  let n = 0; // groups written
  let gap = -1; // index where "::" sits
  if (end - p >= 2 && load<u8>(p) == 0x3a && load<u8>(p + 1) == 0x3a) {
    gap = 0;
    p += 2;
    if (p == end) {
      parsedHi = 0;
      parsedLo = 0;
      parsedIsV4 = false;
      return true;
    }
  } else if (p < end && load<u8>(p) == 0x3a) {
    return false;
  }
  while (p < end) {
    if (n >= 8) return false;
    // Trailing embedded IPv4 (e.g. ::ffff:1.2.3.4)?
    let q = p;
    let sawDot = false;
    while (q < end && load<u8>(q) != 0x3a) {
      if (load<u8>(q) == 0x2e) sawDot = true;
      q++;
    }
    if (sawDot) {
      if (q != end || n > 6) return false;
      if (!parseV4(p, end)) return false;
      const v4 = <u32>parsedLo;
      unchecked((groups[n++] = v4 >> 16));
      unchecked((groups[n++] = v4 & 0xffff));
      p = end;
      break;
    }
    let g: u32 = 0;
    let digits = 0;
    while (p < end) {
      const h = hexVal(<u32>load<u8>(p));
      if (h < 0) break;
      g = (g << 4) | <u32>h;
      digits++;
      if (digits > 4) return false;
      p++;
    }
    if (digits == 0) return false;
    unchecked((groups[n++] = g));
    if (p == end) break;
    if (load<u8>(p) != 0x3a) return false;
    p++;
    if (p < end && load<u8>(p) == 0x3a) {
      if (gap >= 0) return false;
      gap = n;
      p++;
      if (p == end) break;
    } else if (p == end) {
      return false; // trailing single colon
    }
  }
  if (gap < 0 && n != 8) return false;
  if (gap >= 0 && n > 7) return false;
  let hi: u64 = 0;
  let lo: u64 = 0;
  const zeros = 8 - n;
  let out = 0;
  for (let i = 0; i < n; i++) {
    if (i == gap) out += zeros;
    const g = <u64>unchecked(groups[i]);
    const idx = out++;
    if (idx < 4) hi |= g << (<u64>(3 - idx) * 16);
    else lo |= g << (<u64>(7 - idx) * 16);
  }
  parsedHi = hi;
  parsedLo = lo;
  parsedIsV4 = isV4Mapped(hi, lo);
  return true;
}

/** Parses a bare IPv4 or IPv6 address (no port, no brackets). */
export function parseIp(ptr: usize, len: usize): bool {
  if (len == 0 || len > 64) return false;
  const end = ptr + len;
  for (let p = ptr; p < end; p++) {
    if (load<u8>(p) == 0x3a) return parseV6(ptr, end);
  }
  return parseV4(ptr, end);
}

/** Parses "a.b.c.d:port" or "[v6]:port" (Envoy's address form) into parsed*. */
export function parseHostPort(ptr: usize, len: usize): bool {
  if (len < 3 || len > 80) return false;
  const end = ptr + len;
  let colon: usize = 0;
  for (let p = end - 1; p > ptr; p--) {
    if (load<u8>(p) == 0x3a) {
      colon = p;
      break;
    }
  }
  if (colon == 0 || colon + 1 >= end) return false;
  let port: u32 = 0;
  for (let p = colon + 1; p < end; p++) {
    const c = <u32>load<u8>(p);
    if (c < 0x30 || c > 0x39) return false;
    port = port * 10 + (c - 0x30);
    if (port > 65535) return false;
  }
  let ok: bool;
  if (load<u8>(ptr) == 0x5b) {
    if (load<u8>(colon - 1) != 0x5d) return false;
    ok = parseV6(ptr + 1, colon - 1);
  } else {
    ok = parseV4(ptr, colon);
  }
  if (!ok) return false;
  parsedPort = port;
  return true;
}

/** Sets parsed* from 4 (IPv4) or 16 (IPv6) raw network-order bytes, as protobuf `bytes` carry them. */
export function ipFromBytes(ptr: usize, len: usize): bool {
  if (len == 4) {
    parsedHi = 0;
    parsedLo = V4_MAPPED_PREFIX | <u64>bswap<u32>(load<u32>(ptr));
    parsedIsV4 = true;
    return true;
  }
  if (len == 16) {
    parsedHi = bswap<u64>(load<u64>(ptr));
    parsedLo = bswap<u64>(load<u64>(ptr + 8));
    parsedIsV4 = isV4Mapped(parsedHi, parsedLo);
    return true;
  }
  return false;
}

/** Writes the address as text ("1.2.3.4" or RFC 5952 IPv6) at out; returns the length (≤ 45). */
export function formatIp(hi: u64, lo: u64, out: usize): u32 {
  let p = out;
  if (isV4Mapped(hi, lo)) {
    for (let i = 3; i >= 0; i--) {
      p = writeDec(p, <u32>((lo >> (<u64>i * 8)) & 0xff));
      if (i > 0) store<u8>(p++, 0x2e);
    }
    return <u32>(p - out);
  }
  for (let i = 0; i < 8; i++) unchecked((groups[i] = <u32>(((i < 4 ? hi : lo) >> (<u64>(3 - (i & 3)) * 16)) & 0xffff)));
  // longest run of ≥2 zero groups is compressed (RFC 5952 §4.2)
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (unchecked(groups[i]) != 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && unchecked(groups[j]) == 0) j++;
    if (j - i > bestLen) {
      bestLen = j - i;
      bestAt = i;
    }
    i = j;
  }
  for (let i = 0; i < 8; i++) {
    if (i == bestAt) {
      store<u8>(p++, 0x3a);
      if (i == 0) store<u8>(p++, 0x3a);
      i += bestLen - 1;
      if (i == 7) break;
      continue;
    }
    p = writeHex(p, unchecked(groups[i]));
    if (i < 7) store<u8>(p++, 0x3a);
  }
  return <u32>(p - out);
}

function writeDec(p: usize, v: u32): usize {
  if (v >= 100) store<u8>(p++, <u8>(0x30 + v / 100));
  if (v >= 10) store<u8>(p++, <u8>(0x30 + (v / 10) % 10));
  store<u8>(p++, <u8>(0x30 + v % 10));
  return p;
}

function writeHex(p: usize, v: u32): usize {
  let started = false;
  for (let s = 12; s >= 0; s -= 4) {
    const d = (v >> <u32>s) & 0xf;
    if (d == 0 && !started && s > 0) continue;
    started = true;
    store<u8>(p++, <u8>(d < 10 ? 0x30 + d : 0x57 + d));
  }
  return p;
}
