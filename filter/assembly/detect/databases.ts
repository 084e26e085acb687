// Database and cache wire protocols: PostgreSQL, MySQL/MariaDB, MongoDB, Cassandra CQL, Kafka.
// Each recognizer validates the first message's framing and field ranges, not just a magic.
import { be16, be32, isAlpha, isDigit, isPrintable, le16, le24, le32, LIKELY, MAYBE, NO, u8at, YES } from "./scan";

// ---------------------------------------------------------------------------------------------
// PostgreSQL (client first): StartupMessage v3.x, SSLRequest, GSSENCRequest, CancelRequest.
// https://www.postgresql.org/docs/current/protocol-message-formats.html

// @ts-ignore: decorator
@inline const PG_SSL_REQUEST: u32 = 80877103;
// @ts-ignore: decorator
@inline const PG_GSSENC_REQUEST: u32 = 80877104;
// @ts-ignore: decorator
@inline const PG_CANCEL_REQUEST: u32 = 80877102;
// @ts-ignore: decorator
@inline const PG_MAX_STARTUP: u32 = 10000; // the server's own limit (MAX_STARTUP_PACKET_LENGTH)

export function parsePostgres(p: usize, len: i32): i32 {
  // The length is big-endian and small: its first two bytes are zero.
  if (len >= 1 && u8at(p, 0) != 0) return NO;
  if (len >= 2 && u8at(p, 1) != 0) return NO;
  if (len < 8) return MAYBE;
  const n = be32(p, 0);
  const code = be32(p, 4);
  if (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) return n == 8 ? YES : NO;
  if (code == PG_CANCEL_REQUEST) {
    // 4-byte secret key before protocol 3.2; up to 256 bytes since.
    if (n < 16 || n > 12 + 256) return NO;
    return len >= <i32>n ? YES : MAYBE;
  }
  if ((code >> 16) != 3 || (code & 0xffff) > 2) return NO;
  if (n < 9 || n > PG_MAX_STARTUP) return NO;
  // Parameters: (name NUL value NUL)* NUL; "user" is required.
  const end = <i32>n;
  const avail = len < end ? len : end;
  let pos = 8;
  let sawUser = false;
  while (pos < avail) {
    if (u8at(p, pos) == 0) {
      if (pos != end - 1) return NO;
      return sawUser ? YES : NO;
    }
    const nameStart = pos;
    while (pos < avail && u8at(p, pos) != 0) {
      if (!isPrintable(u8at(p, pos))) return NO;
      pos++;
    }
    if (pos >= avail) break;
    if (pos - nameStart == 4 && u8at(p, nameStart) == 0x75 && u8at(p, nameStart + 1) == 0x73 &&
        u8at(p, nameStart + 2) == 0x65 && u8at(p, nameStart + 3) == 0x72) sawUser = true;
    pos++;
    while (pos < avail && u8at(p, pos) != 0) {
      const c = u8at(p, pos);
      if (c < 0x20 && c != 0x09) return NO; // values are text (UTF-8 allowed)
      pos++;
    }
    if (pos >= avail) break;
    pos++;
  }
  return pos >= end ? NO : MAYBE;
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB (server first): Protocol::HandshakeV10, or an ERR packet refusing the client.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_v10.html

export function parseMysqlGreeting(p: usize, len: i32): i32 {
  if (len >= 4 && u8at(p, 3) != 0) return NO; // sequence id 0
  if (len >= 3) {
    const n = le24(p, 0);
    if (n < 8 || n > 1024) return NO;
  }
  if (len < 5) return MAYBE;
  const n = <i32>le24(p, 0);
  const end = 4 + n;
  const avail = len < end ? len : end;
  const kind = u8at(p, 4);
  if (kind == 0xff) {
    // ERR before the handshake: code, then a human-readable message (no SQL state marker).
    if (avail >= 7) {
      const code = le16(p, 5);
      if (code < 1000 || code > 9999) return NO;
    }
    for (let i = 7; i < avail; i++) if (!isPrintable(u8at(p, i))) return NO;
    if (n < 12) return NO;
    return len >= end ? YES : MAYBE;
  }
  if (kind != 10) return NO;
  // server version: NUL-terminated, starts with a digit ("8.0.36", "10.11.6-MariaDB", "5.5.5-…")
  let pos = 5;
  if (pos < avail && !isDigit(u8at(p, pos))) return NO;
  while (pos < avail && u8at(p, pos) != 0) {
    if (!isPrintable(u8at(p, pos))) return NO;
    if (pos - 5 > 80) return NO;
    pos++;
  }
  if (pos >= avail) return len >= end ? NO : MAYBE;
  if (pos == 5) return NO;
  pos++; // NUL
  // connection id (4), auth-plugin-data part 1 (8), filler 0x00, capability flags low (2)
  const filler = pos + 12;
  if (filler + 1 > end) return NO;
  if (filler < avail && u8at(p, filler) != 0) return NO;
  if (filler + 3 > avail) return MAYBE;
  const capsLow = le16(p, filler + 1);
  if ((capsLow & 0x0200) == 0) return NO; // CLIENT_PROTOCOL_41: set by every server since 4.1
  // charset (1), status (2), caps high (2), auth data length (1), reserved (10: zero, MariaDB
  // uses the last 4 for its extended capabilities)
  const reserved = filler + 3 + 6;
  if (reserved + 6 <= avail) {
    for (let i = reserved; i < reserved + 6; i++) if (u8at(p, i) != 0) return NO;
  }
  return len >= end ? YES : LIKELY;
}

// ---------------------------------------------------------------------------------------------
// MongoDB (client first): OP_MSG, OP_QUERY, OP_COMPRESSED.
// https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/

// @ts-ignore: decorator
@inline const OP_QUERY: u32 = 2004;
// @ts-ignore: decorator
@inline const OP_COMPRESSED: u32 = 2012;
// @ts-ignore: decorator
@inline const OP_MSG: u32 = 2013;
// @ts-ignore: decorator
@inline const MONGO_MAX_MESSAGE: u32 = 48000000;

export function parseMongo(p: usize, len: i32, midstream: bool = false): i32 {
  if (len >= 4) {
    const n = le32(p, 0);
    if (n < 21 || n > MONGO_MAX_MESSAGE) return NO;
  }
  // Mid-connection, any message may be first: replies carry responseTo.
  if (len >= 12 && !midstream) {
    const responseTo = le32(p, 8);
    if (responseTo != 0 && responseTo != 0xffffffff) return NO; // a request answers nothing (some drivers send -1)
  }
  if (len < 16) return MAYBE;
  const n = <i32>le32(p, 0);
  const op = le32(p, 12);
  if (op == OP_MSG) {
    if (len >= 20) {
      const flags = le32(p, 16);
      if ((flags & ~(<u32>0x00010003)) != 0) return NO; // checksumPresent, moreToCome, exhaustAllowed
    }
    if (len >= 21) {
      const kind = u8at(p, 20);
      if (kind == 0) return bsonDocumentStart(p, len, 21, n);
      if (kind == 1) {
        if (len < 25) return MAYBE;
        const size = le32(p, 21);
        if (size < 5 || <i32>size > n - 21) return NO;
        return cstringThenMaybe(p, len, 25, 21 + <i32>size, true);
      }
      return NO;
    }
    return MAYBE;
  }
  if (op == OP_QUERY) {
    // flags (4; bits 0 and 8+ reserved), fullCollectionName cstring "db.collection", skip, return, query
    if (len >= 20) {
      const flags = le32(p, 16);
      if ((flags & 0xffffff01) != 0) return NO;
    }
    let pos = 20;
    let dot = false;
    while (pos < len && pos < n && u8at(p, pos) != 0) {
      const c = u8at(p, pos);
      if (c < 0x21 || c > 0x7e) return NO;
      if (c == 0x2e) dot = true;
      pos++;
    }
    if (pos >= n) return NO;
    if (pos >= len) return MAYBE;
    if (!dot || pos == 20) return NO;
    return bsonDocumentStart(p, len, pos + 1 + 8, n);
  }
  if (op == OP_COMPRESSED) {
    if (len < 25) return MAYBE;
    const original = le32(p, 16);
    const size = le32(p, 20);
    const compressor = u8at(p, 24);
    if (original != OP_MSG && original != OP_QUERY && original != 2001 && original != 2002 && original != 2005 && original != 2006 && original != 2007) return NO;
    if (size < 5 || size > MONGO_MAX_MESSAGE || compressor > 3 || n < 26) return NO;
    return YES;
  }
  return NO;
}

/** A BSON document at pos inside a message of length n: length, then a first element's type and name. */
function bsonDocumentStart(p: usize, len: i32, pos: i32, n: i32): i32 {
  if (pos + 4 > len) return pos + 4 > n ? NO : MAYBE;
  const docLen = le32(p, pos);
  if (docLen < 5 || <i32>docLen > n - pos) return NO;
  if (pos + 5 > len) return MAYBE;
  const type = u8at(p, pos + 4);
  if (type == 0) return docLen == 5 ? YES : NO; // empty document
  if (!((type >= 0x01 && type <= 0x13) || type == 0x7f || type == 0xff)) return NO;
  return cstringThenMaybe(p, len, pos + 5, pos + <i32>docLen, false);
}

/** A non-empty printable cstring starting at pos that ends before limit. */
function cstringThenMaybe(p: usize, len: i32, pos: i32, limit: i32, allowDot: bool): i32 {
  const start = pos;
  while (pos < len && pos < limit) {
    const c = u8at(p, pos);
    if (c == 0) return pos > start ? YES : NO;
    if (c < 0x20 || c > 0x7e) return NO;
    if (!allowDot && pos == start && !isAlpha(c) && c != 0x24 && c != 0x5f) return NO; // command names
    pos++;
  }
  return pos >= limit ? NO : MAYBE;
}

// ---------------------------------------------------------------------------------------------
// Apache Cassandra CQL native protocol v3–v5 (client first): OPTIONS or STARTUP.
// https://github.com/apache/cassandra/blob/trunk/doc/native_protocol_v4.spec (§2, §4.1.1)

export function parseCassandra(p: usize, len: i32): i32 {
  if (len >= 1) {
    const v = u8at(p, 0);
    if (v < 3 || v > 5) return NO; // request direction bit clear, versions 3–5
  }
  if (len >= 2 && u8at(p, 1) > (u8at(p, 0) == 5 ? <u32>0x1f : <u32>0x0f)) return NO;
  if (len >= 5) {
    const op = u8at(p, 4);
    if (op != 0x01 && op != 0x05) return NO;
  }
  if (len >= 9) {
    const bodyLen = be32(p, 5);
    const op = u8at(p, 4);
    if (op == 0x05) return bodyLen == 0 ? YES : NO;
    if (bodyLen < 2 || bodyLen > 65536) return NO;
  }
  if (len < 11) return MAYBE;
  // STARTUP body: [string map] that must name CQL_VERSION.
  const end = 9 + <i32>be32(p, 5);
  const pairs = <i32>be16(p, 9);
  if (pairs < 1 || pairs > 16) return NO;
  let pos = 11;
  let sawVersion = false;
  for (let i = 0; i < pairs * 2; i++) {
    if (pos + 2 > len) return pos + 2 > end ? NO : MAYBE;
    const sl = <i32>be16(p, pos);
    pos += 2;
    if (pos + sl > end) return NO;
    for (let j = pos; j < pos + sl && j < len; j++) if (!isPrintable(u8at(p, j))) return NO;
    if (pos + sl > len) return MAYBE;
    if ((i & 1) == 0 && sl == 11 && isCqlVersionKey(p, pos)) sawVersion = true;
    pos += sl;
  }
  return pos == end && sawVersion ? YES : NO;
}

function isCqlVersionKey(p: usize, pos: i32): bool {
  const k = "CQL_VERSION";
  for (let i = 0; i < 11; i++) if (u8at(p, pos + i) != <u32>k.charCodeAt(i)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Apache Kafka (client first): request header v1/v2 — length, api key, api version,
// correlation id, client id. https://kafka.apache.org/protocol#protocol_messages

// @ts-ignore: decorator
@inline const KAFKA_MAX_API_KEY: u32 = 90;
// @ts-ignore: decorator
@inline const KAFKA_MAX_API_VERSION: u32 = 20;
/** A connection's first request (ApiVersions, Metadata, SASL, a small Produce) is far smaller. */
// @ts-ignore: decorator
@inline const KAFKA_MAX_FIRST_REQUEST: u32 = 1 << 24;

export function parseKafka(p: usize, len: i32): i32 {
  if (len >= 1 && u8at(p, 0) != 0) return NO;
  if (len >= 4) {
    const n = be32(p, 0);
    if (n < 10 || n > KAFKA_MAX_FIRST_REQUEST) return NO;
  }
  if (len >= 6 && be16(p, 4) > KAFKA_MAX_API_KEY) return NO;
  if (len >= 8 && be16(p, 6) > KAFKA_MAX_API_VERSION) return NO;
  if (len < 14) return MAYBE;
  const n = <i32>be32(p, 0);
  const idLen = <i32>(<i16>be16(p, 12));
  if (idLen == -1) return YES; // null client id: nothing more to check in the header
  // Every client library names itself ("rdkafka", "producer-1", "sarama", …); an empty id is also
  // what other length-prefixed protocols with zeroed fields look like (ZooKeeper's connect).
  if (idLen < 1 || 14 + idLen > 4 + n) return NO;
  for (let i = 14; i < 14 + idLen && i < len; i++) {
    const c = u8at(p, i);
    if (c < 0x20 || c > 0x7e) return NO;
  }
  return len >= 14 + idLen ? YES : MAYBE;
}

// ---------------------------------------------------------------------------------------------
// Mid-connection only: Cassandra frames of any opcode, from either side.

/**
 * A CQL v3–v5 frame header (request or response) with a known opcode for its direction, and its
 * body either complete and followed by another such header or ending the bytes, or cut by them.
 */
export function parseCassandraFrames(p: usize, len: i32, full: bool): i32 {
  let pos = 0;
  let frames = 0;
  while (pos < len) {
    if (pos + 9 > len) break;
    const v = u8at(p, pos);
    const version = v & 0x7f;
    const response = (v & 0x80) != 0;
    if (version < 3 || version > 5) return NO;
    if (u8at(p, pos + 1) > (version == 5 ? <u32>0x1f : <u32>0x0f)) return NO;
    const op = u8at(p, pos + 4);
    if (response) {
      if (!(op == 0x00 || op == 0x02 || op == 0x03 || op == 0x06 || op == 0x08 || op == 0x0c || op == 0x0e || op == 0x10)) return NO;
    } else if (!(op == 0x01 || op == 0x05 || op == 0x07 || op == 0x09 || op == 0x0a || op == 0x0b || op == 0x0d || op == 0x0f)) return NO;
    const body = be32(p, pos + 5);
    if (body > (1 << 28)) return NO;
    if (op == 0x05 && !response && body != 0) return NO;
    frames++;
    if (frames >= 2) return YES;
    pos += 9 + <i32>body;
  }
  if (frames == 1) return pos == len ? LIKELY : MAYBE;
  return full && len >= 9 ? NO : MAYBE;
}
