// TLS: the ClientHello (SNI, ALPN, supported_versions, ECH), possibly spread over several TCP
// segments and several TLS records; the SSLv2-compatible ClientHello; and, for captures that start
// mid-connection, runs of well-formed TLS records in either direction.
// Reference: RFC 8446 §4.1.2 / §5.1, RFC 6066 §3, RFC 7301, draft-ietf-tls-esni (0xfe0d).
import { Claims, TLS_SNI_CONFLICT, TLS_SSLV2_HELLO, TLS_TRUNCATED } from "./claims";
import { be16, be24, LIKELY, MAYBE, NO, u8at, YES } from "./scan";

// @ts-ignore: decorator
@inline const RECORD_HANDSHAKE: u32 = 0x16;
/** Largest record payload a peer may send (2^14 plus the TLS 1.2 expansion allowance). */
// @ts-ignore: decorator
@inline const MAX_RECORD: u32 = 16384 + 2048;
// @ts-ignore: decorator
@inline const HS_CLIENT_HELLO: u32 = 1;
/** No real ClientHello comes near this; bigger announced lengths are garbage. */
// @ts-ignore: decorator
@inline const MAX_CLIENT_HELLO: u32 = 1 << 17;
// @ts-ignore: decorator
@inline const EXT_SERVER_NAME: u32 = 0;
// @ts-ignore: decorator
@inline const EXT_ALPN: u32 = 16;
// @ts-ignore: decorator
@inline const EXT_SUPPORTED_VERSIONS: u32 = 43;
// @ts-ignore: decorator
@inline const EXT_ECH: u32 = 0xfe0d;
// @ts-ignore: decorator
@inline const EXT_ESNI_DRAFT: u32 = 0xffce;

/** Whether raw bytes start like a TLS record carrying a ClientHello (needs 11 bytes to say YES). */
export function looksLikeClientHelloRecord(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != RECORD_HANDSHAKE) return NO;
  if (len >= 2 && u8at(p, 1) != 3) return NO;
  if (len >= 3 && u8at(p, 2) > 4) return NO;
  if (len >= 5) {
    const rl = be16(p, 3);
    if (rl == 0 || rl > MAX_RECORD) return NO;
  }
  if (len >= 6 && u8at(p, 5) != HS_CLIENT_HELLO) return NO;
  if (len >= 10 && u8at(p, 9) != 3) return NO;
  if (len >= 11 && u8at(p, 10) > 4) return NO;
  return len >= 11 ? YES : MAYBE;
}

/**
 * Strips TLS record headers from the client stream so the handshake bytes lie contiguous in the
 * detector's buffer. Output never overtakes input, so it can run in place over raw bytes.
 */
export class RecordStripper {
  /** Payload bytes left in the current record. */
  remaining: i32 = 0;
  /** Header bytes collected (0–5) and their value so far. */
  headerHave: i32 = 0;
  header: u64 = 0;
  /** A record that is not a sane handshake record was met: nothing after it is handshake. */
  bad: bool = false;
  records: i32 = 0;

  reset(): void {
    this.remaining = 0;
    this.headerHave = 0;
    this.header = 0;
    this.bad = false;
    this.records = 0;
  }

  /** Consumes n bytes at src, appending payload at dst+have (≤ cap). Returns the new length. */
  ingest(src: usize, n: i32, dst: usize, have: i32, cap: i32): i32 {
    let i = 0;
    while (i < n && !this.bad) {
      if (this.remaining > 0) {
        let take = n - i;
        if (take > this.remaining) take = this.remaining;
        if (take > cap - have) take = cap - have;
        if (take <= 0) return have; // buffer full
        memory.copy(dst + <usize>have, src + <usize>i, <usize>take);
        have += take;
        i += take;
        this.remaining -= take;
        continue;
      }
      this.header = (this.header << 8) | <u64>load<u8>(src + <usize>i);
      this.headerHave++;
      i++;
      if (this.headerHave == 5) {
        const type = <u32>(this.header >> 32) & 0xff;
        const major = <u32>(this.header >> 24) & 0xff;
        const minor = <u32>(this.header >> 16) & 0xff;
        const rl = <i32>(this.header & 0xffff);
        if (type != RECORD_HANDSHAKE || major != 3 || minor > 4 || rl == 0 || <u32>rl > MAX_RECORD) this.bad = true;
        this.remaining = rl;
        this.headerHave = 0;
        this.header = 0;
        this.records++;
      }
    }
    return have;
  }
}

/**
 * Parses the handshake bytes [p, p+len) as a ClientHello, recording claims (offsets relative to
 * p). `streamBad`: the record layer broke; `full`: no more bytes will come.
 * Returns YES (complete and valid), LIKELY (valid so far), MAYBE or NO.
 */
export function parseClientHello(p: usize, len: i32, claims: Claims, streamBad: bool, full: bool): i32 {
  claims.sniLen = 0;
  claims.alpnCount = 0;
  claims.ech = false;
  claims.tlsFlags = 0;
  if (len < 4) return streamBad ? NO : MAYBE;
  if (u8at(p, 0) != HS_CLIENT_HELLO) return NO;
  const bodyLen = be24(p, 1);
  if (bodyLen < 38 || bodyLen > MAX_CLIENT_HELLO) return NO;
  const end = 4 + <i32>bodyLen;
  const complete = len >= end;
  if (!complete && streamBad) return NO;
  const avail = complete ? end : len;
  if (avail < 6) return MAYBE;
  if (u8at(p, 4) != 3 || u8at(p, 5) > 4) return NO;
  claims.tlsVersion = <i32>be16(p, 4);
  // Until the whole message is here (or no more will come) the header is all that matters:
  // walking the partial body on every segment would make tiny segments quadratic.
  if (!complete && !full) return LIKELY;
  // From here the structure is TLS; what remains decides YES vs. NO and fills the claims.
  const partial = LIKELY;
  let pos = 6 + 32;
  if (pos + 1 > avail) return partial;
  const sidLen = <i32>u8at(p, pos);
  if (sidLen > 32) return NO;
  pos += 1 + sidLen;
  if (pos + 2 > avail) return partial;
  const csLen = <i32>be16(p, pos);
  if (csLen < 2 || (csLen & 1) != 0) return NO;
  pos += 2 + csLen;
  if (pos + 1 > avail) return pos > end ? NO : partial;
  // Must list "null", but some stacks send an empty list; the framing is what matters here.
  const compLen = <i32>u8at(p, pos);
  pos += 1 + compLen;
  if (pos > end) return NO;
  if (pos == end) return complete ? YES : partial; // no extensions (SSL 3.0 style)
  if (pos + 2 > avail) return partial;
  const extTotal = <i32>be16(p, pos);
  pos += 2;
  if (pos + extTotal != end) return NO;
  let sawSni = false;
  let sawAlpn = false;
  let maxVersion = claims.tlsVersion;
  while (pos + 4 <= avail) {
    const type = be16(p, pos);
    const extLen = <i32>be16(p, pos + 2);
    const body = pos + 4;
    if (body + extLen > end) return NO;
    if (body + extLen > avail) break; // rest not here yet
    if (type == EXT_SERVER_NAME) {
      if (sawSni) {
        claims.tlsFlags |= TLS_SNI_CONFLICT;
        claims.sniLen = 0;
      } else if (!parseServerName(p, body, extLen, claims)) return NO;
      sawSni = true;
    } else if (type == EXT_ALPN) {
      if (sawAlpn || !parseAlpn(p, body, extLen, claims)) return NO;
      sawAlpn = true;
    } else if (type == EXT_SUPPORTED_VERSIONS) {
      if (extLen < 3 || <i32>u8at(p, body) != extLen - 1 || ((extLen - 1) & 1) != 0) return NO;
      for (let v = body + 1; v + 2 <= body + extLen; v += 2) {
        let ver = <i32>be16(p, v);
        if ((ver & 0xff00) == 0x7f00) ver = 0x0304; // TLS 1.3 drafts
        if ((ver & 0x0f0f) == 0x0a0a) continue; // GREASE
        if (ver >= 0x0300 && ver <= 0x0304 && ver > maxVersion) maxVersion = ver;
      }
    } else if (type == EXT_ECH || type == EXT_ESNI_DRAFT) {
      claims.ech = true;
    }
    pos = body + extLen;
  }
  if (claims.tlsFlags & TLS_SNI_CONFLICT) claims.sniLen = 0;
  claims.tlsVersion = maxVersion;
  if (complete && pos == end) return YES;
  if (complete) return NO; // extension headers did not tile the extension block
  if (full) claims.tlsFlags |= TLS_TRUNCATED;
  return partial;
}

function parseServerName(p: usize, body: i32, extLen: i32, claims: Claims): bool {
  // An empty server_name extension is what servers echo; from a client it is odd but harmless.
  if (extLen == 0) return true;
  if (extLen < 2 || <i32>be16(p, body) != extLen - 2) return false;
  let q = body + 2;
  const end = body + extLen;
  while (q + 3 <= end) {
    const nameType = u8at(p, q);
    const nameLen = <i32>be16(p, q + 1);
    if (q + 3 + nameLen > end) return false;
    if (nameType == 0 && claims.sniLen == 0) {
      if (nameLen == 0 || nameLen > 255) return false;
      claims.sniOff = q + 3;
      claims.sniLen = nameLen;
    }
    q += 3 + nameLen;
  }
  return q == end;
}

function parseAlpn(p: usize, body: i32, extLen: i32, claims: Claims): bool {
  if (extLen < 2 || <i32>be16(p, body) != extLen - 2) return false;
  let q = body + 2;
  const end = body + extLen;
  while (q < end) {
    const n = <i32>u8at(p, q);
    if (n == 0 || q + 1 + n > end) return false;
    claims.addAlpn(q + 1, n);
    q += 1 + n;
  }
  return true;
}

/** SSLv2-compatible ClientHello (RFC 6101 appendix E.2 / RFC 5246 appendix E.2). */
export function parseSslv2Hello(p: usize, len: i32, claims: Claims): i32 {
  if (len >= 1 && (u8at(p, 0) & 0x80) == 0) return NO;
  if (len >= 3 && u8at(p, 2) != 1) return NO;
  if (len >= 5) {
    const v = be16(p, 3);
    if (v != 0x0002 && (v < 0x0300 || v > 0x0303)) return NO;
  }
  if (len < 11) return MAYBE;
  const recLen = <i32>(be16(p, 0) & 0x7fff);
  const csLen = <i32>be16(p, 5);
  const sidLen = <i32>be16(p, 7);
  const chLen = <i32>be16(p, 9);
  if (csLen == 0 || csLen % 3 != 0 || (sidLen != 0 && sidLen != 16) || chLen < 16 || chLen > 32) return NO;
  if (9 + csLen + sidLen + chLen != recLen) return NO;
  claims.tlsVersion = <i32>be16(p, 3);
  claims.tlsFlags = TLS_SSLV2_HELLO;
  return len >= 2 + recLen ? YES : LIKELY;
}

/**
 * Mid-connection only: bytes that are a run of well-formed TLS records (any content type).
 * YES once a complete record is followed by another valid record header; LIKELY for a single
 * complete record that ends exactly where the bytes end.
 */
export function parseRecordRun(p: usize, len: i32, full: bool): i32 {
  let pos = 0;
  let complete = 0;
  let headers = 0;
  while (pos < len) {
    const t = u8at(p, pos);
    if (t < 0x14 || t > 0x18) return NO;
    if (pos + 2 <= len && u8at(p, pos + 1) != 3) return NO;
    if (pos + 3 <= len && u8at(p, pos + 2) > 4) return NO;
    if (pos + 5 > len) break;
    const rl = <i32>be16(p, pos + 3);
    if (rl == 0 || <u32>rl > MAX_RECORD) return NO;
    headers++;
    if (complete >= 1) return YES;
    if (pos + 5 + rl > len) break;
    complete++;
    pos += 5 + rl;
  }
  if (complete == 1) return pos == len ? LIKELY : MAYBE;
  return len >= 5 && full ? NO : MAYBE;
}
