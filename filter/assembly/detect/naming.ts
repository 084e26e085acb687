// DNS over TCP and LDAP (client first).
import { be16, LIKELY, MAYBE, NO, u8at, YES } from "./scan";

// ---------------------------------------------------------------------------------------------
// DNS over TCP (RFC 1035 §4.2.2, RFC 7766): a 2-byte length, then a query message.

export function parseDnsTcp(p: usize, len: i32): i32 {
  if (len >= 2) {
    const n = be16(p, 0);
    if (n < 17) return NO; // header (12) + root name (1) + type and class (4)
  }
  if (len >= 4 + 1 && (u8at(p, 4) & 0x80) != 0) return NO; // QR: a response
  if (len >= 6) {
    const flags = be16(p, 4);
    const opcode = (flags >> 11) & 0xf;
    if (opcode != 0 && opcode != 1 && opcode != 2 && opcode != 4 && opcode != 5) return NO;
    if ((flags & 0x0040) != 0) return NO; // Z must be zero
    if ((flags & 0x000f) != 0) return NO; // RCODE is zero in a request
  }
  if (len < 14) return MAYBE;
  const end = 2 + <i32>be16(p, 0);
  const flags = be16(p, 4);
  const opcode = (flags >> 11) & 0xf;
  const qd = be16(p, 6);
  const an = be16(p, 8);
  const ns = be16(p, 10);
  const ar = be16(p, 12);
  if (opcode == 1) {
    // Inverse query (RFC 1035 §6.4, obsolete): no question, one answer RR to look up.
    if (qd != 0 || an != 1 || ns != 0 || ar > 8) return NO;
    return dnsResourceRecord(p, len, 14, end);
  }
  if (opcode == 5) {
    if (qd != 1 || an > 100 || ns > 1000 || ar > 100) return NO; // UPDATE: zone, prerequisites, updates
  } else if (opcode == 4) {
    if (qd != 1 || an > 100 || ns != 0 || ar > 8) return NO; // NOTIFY may carry the new SOA
  } else {
    if (qd != 1 || an != 0 || ns != 0 || ar > 8) return NO; // OPT, TSIG, cookies …
  }
  // QNAME: uncompressed labels of visible characters.
  let pos = 14;
  let nameLen = 0;
  while (true) {
    if (pos >= len) return pos >= end ? NO : MAYBE;
    const l = <i32>u8at(p, pos);
    if (l == 0) break;
    if (l > 63) return NO;
    nameLen += l + 1;
    if (nameLen > 255 || pos + 1 + l >= end) return NO;
    for (let i = pos + 1; i <= pos + l && i < len; i++) {
      const c = u8at(p, i);
      if (c < 0x21 || c > 0x7e) return NO;
    }
    pos += 1 + l;
  }
  pos++;
  if (pos + 4 > end) return NO;
  if (pos + 4 > len) return MAYBE;
  const qtype = be16(p, pos);
  const qclass = be16(p, pos + 2);
  if (qtype == 0) return NO;
  if (qclass != 1 && qclass != 3 && qclass != 4 && qclass != 254 && qclass != 255) return NO;
  return len >= end ? YES : LIKELY;
}

/** A resource record at pos: uncompressed owner name, type, class, TTL, RDLENGTH and RDATA within end. */
function dnsResourceRecord(p: usize, len: i32, pos: i32, end: i32): i32 {
  let nameLen = 0;
  while (true) {
    if (pos >= len) return pos >= end ? NO : MAYBE;
    const l = <i32>u8at(p, pos);
    if (l == 0) break;
    if (l > 63) return NO;
    nameLen += l + 1;
    if (nameLen > 255 || pos + 1 + l >= end) return NO;
    pos += 1 + l;
  }
  pos++;
  if (pos + 10 > end) return NO;
  if (pos + 10 > len) return MAYBE;
  const rdLength = <i32>be16(p, pos + 8);
  if (pos + 10 + rdLength > end) return NO;
  return len >= end ? YES : LIKELY;
}

// ---------------------------------------------------------------------------------------------
// LDAP (RFC 4511 §4.1.1): LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp, controls [0] }
// in BER. The first request is usually a BindRequest, a SearchRequest (root DSE) or the StartTLS
// ExtendedRequest.

/** Result of reading one BER TLV header. */
class Tlv {
  tag: u32 = 0;
  headerLen: i32 = 0;
  length: i32 = 0;
}
const tlv = new Tlv();

/**
 * Reads the tag and length at pos into `tlv`. Returns 1 when read, 0 when more bytes are needed,
 * -1 when malformed (indefinite or oversized length, multi-byte tag).
 */
function readTlv(p: usize, len: i32, pos: i32): i32 {
  if (pos + 2 > len) return 0;
  const tag = u8at(p, pos);
  if ((tag & 0x1f) == 0x1f) return -1;
  const l0 = u8at(p, pos + 1);
  tlv.tag = tag;
  if (l0 < 0x80) {
    tlv.headerLen = 2;
    tlv.length = <i32>l0;
    return 1;
  }
  const k = <i32>(l0 & 0x7f);
  if (k == 0 || k > 4) return -1;
  if (pos + 2 + k > len) return 0;
  let v: u64 = 0;
  for (let i = 0; i < k; i++) v = (v << 8) | <u64>u8at(p, pos + 2 + i);
  if (v > 0x7fffffff) return -1;
  tlv.headerLen = 2 + k;
  tlv.length = <i32>v;
  return 1;
}

// @ts-ignore: decorator
@inline const LDAP_MAX_MESSAGE: i32 = 1 << 20;

export function parseLdap(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != 0x30) return NO;
  let r = readTlv(p, len, 0);
  if (r < 0) return NO;
  if (r == 0) return MAYBE;
  const msgLen = tlv.length;
  if (msgLen < 5 || msgLen > LDAP_MAX_MESSAGE) return NO;
  const end = tlv.headerLen + msgLen;
  let pos = tlv.headerLen;
  // messageID: INTEGER, 1–4 content bytes, positive (0 is reserved for unsolicited notifications)
  r = readTlv(p, len, pos);
  if (r < 0) return NO;
  if (r == 0) return MAYBE;
  if (tlv.tag != 0x02 || tlv.length < 1 || tlv.length > 4) return NO;
  if (pos + 2 + tlv.length > len) return MAYBE;
  if ((u8at(p, pos + 2) & 0x80) != 0) return NO;
  let id: u32 = 0;
  for (let i = 0; i < tlv.length; i++) id = (id << 8) | u8at(p, pos + 2 + i);
  if (id == 0) return NO;
  pos += 2 + tlv.length;
  r = readTlv(p, len, pos);
  if (r < 0) return NO;
  if (r == 0) return MAYBE;
  const op = tlv.tag;
  const opEnd = pos + tlv.headerLen + tlv.length;
  if (opEnd > end) return NO;
  const body = pos + tlv.headerLen;
  let v: i32;
  if (op == 0x60) v = bindRequest(p, len, body, opEnd);
  else if (op == 0x63) v = searchRequest(p, len, body, opEnd);
  else if (op == 0x77) v = extendedRequest(p, len, body, opEnd);
  else if (op == 0x42) v = tlv.length == 0 ? YES : NO; // UnbindRequest
  else if (op == 0x50) v = tlv.length >= 1 && tlv.length <= 4 ? YES : NO; // AbandonRequest
  else if (op == 0x66 || op == 0x68 || op == 0x6c || op == 0x6e) v = firstIsOctetString(p, len, body, opEnd);
  else if (op == 0x4a) v = tlv.length > 0 ? YES : NO; // DelRequest: an LDAPDN
  else return NO;
  if (v == NO || v == MAYBE) return v;
  // Optional controls [0] after the op, and nothing else, up to the message end.
  if (opEnd < end) {
    if (opEnd < len && u8at(p, opEnd) != 0xa0) return NO;
  }
  return len >= end ? YES : LIKELY;
}

/** BindRequest ::= [APPLICATION 0] SEQUENCE { version INTEGER (1..127), name LDAPDN, authentication } */
function bindRequest(p: usize, len: i32, pos: i32, end: i32): i32 {
  let r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  if (tlv.tag != 0x02 || tlv.length != 1) return NO;
  if (pos + 3 > len) return MAYBE;
  const version = u8at(p, pos + 2);
  if (version < 2 || version > 3) return NO;
  pos += 3;
  r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  if (tlv.tag != 0x04 || pos + tlv.headerLen + tlv.length > end) return NO;
  pos += tlv.headerLen + tlv.length;
  r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  // simple [0] OCTET STRING, sasl [3] SaslCredentials, or Microsoft's Sicily NTLM [9] [10] [11]
  if (tlv.tag != 0x80 && tlv.tag != 0xa3 && tlv.tag != 0x89 && tlv.tag != 0x8a && tlv.tag != 0x8b) return NO;
  return pos + tlv.headerLen + tlv.length == end ? YES : NO;
}

/** SearchRequest: baseObject, scope, derefAliases, sizeLimit, timeLimit, typesOnly, filter, attributes. */
function searchRequest(p: usize, len: i32, pos: i32, end: i32): i32 {
  let r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  if (tlv.tag != 0x04) return NO;
  pos += tlv.headerLen + tlv.length;
  if (pos > end) return NO;
  // scope ENUMERATED (0..3), derefAliases ENUMERATED (0..3)
  for (let i = 0; i < 2; i++) {
    if (pos + 3 > len) return MAYBE;
    if (u8at(p, pos) != 0x0a || u8at(p, pos + 1) != 1 || u8at(p, pos + 2) > 3) return NO;
    pos += 3;
  }
  // sizeLimit, timeLimit INTEGER
  for (let i = 0; i < 2; i++) {
    r = readTlv(p, len, pos);
    if (r <= 0) return r < 0 ? NO : MAYBE;
    if (tlv.tag != 0x02 || tlv.length < 1 || tlv.length > 5) return NO;
    pos += tlv.headerLen + tlv.length;
  }
  // typesOnly BOOLEAN
  if (pos + 3 > len) return MAYBE;
  if (u8at(p, pos) != 0x01 || u8at(p, pos + 1) != 1) return NO;
  pos += 3;
  if (pos >= len) return MAYBE;
  const f = u8at(p, pos);
  // Filter CHOICE: and/or/not/equality/substrings/≥/≤/present/approx/extensible
  if (!((f >= 0xa0 && f <= 0xa9 && f != 0xa7) || f == 0x87)) return NO;
  return pos < end ? YES : NO;
}

/** ExtendedRequest ::= [APPLICATION 23] SEQUENCE { requestName [0] LDAPOID, requestValue [1] OPTIONAL } */
function extendedRequest(p: usize, len: i32, pos: i32, end: i32): i32 {
  const r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  if (tlv.tag != 0x80 || tlv.length < 3 || pos + tlv.headerLen + tlv.length > end) return NO;
  const s = pos + tlv.headerLen;
  for (let i = s; i < s + tlv.length; i++) {
    if (i >= len) return MAYBE;
    const c = u8at(p, i);
    if (!(c == 0x2e || (c >= 0x30 && c <= 0x39))) return NO; // numeric OID
  }
  return YES;
}

function firstIsOctetString(p: usize, len: i32, pos: i32, end: i32): i32 {
  const r = readTlv(p, len, pos);
  if (r <= 0) return r < 0 ? NO : MAYBE;
  return tlv.tag == 0x04 && pos + tlv.headerLen + tlv.length <= end ? YES : NO;
}
