// A DNS message parser written for evidence collection: zero-copy (records are offsets into the
// captured buffer; names are decoded only when the observer asks), bounded (name length, pointer
// hops, record count), and total — every input yields either a message or a reason code, never an
// exception. Malformed means "we will not use it as evidence", so the checks are strict: a record
// overrunning the message, an A record that is not 4 bytes or a CNAME whose target does not fill its
// rdata all reject the whole message.
import {
  CLASS_IN, DNS_HEADER_LEN, MAX_NAME_WIRE_LEN, MAX_POINTER_HOPS, MAX_RECORDS, RRType,
} from "./wire.js";

/** Why a message was not parsed. Stable strings: they become metric labels. */
export type DnsParseError =
  | "short-header"      // fewer than 12 bytes
  | "truncated-name"    // a name runs past the end of the message
  | "bad-label-type"    // label type 0x40/0x80 (obsolete extended / reserved)
  | "bad-pointer"       // a compression pointer outside the message
  | "name-loop"         // more than MAX_POINTER_HOPS compression pointers in one name
  | "name-too-long"     // a decoded name longer than 255 octets
  | "truncated-record"  // a question or record fixed part or rdata runs past the end
  | "bad-rdata"         // rdata of a type we read (A, AAAA, CNAME, …) has the wrong shape
  | "bad-edns"          // OPT record in the additional section not owned by the root, or twice
  | "too-many-records"; // more than MAX_RECORDS question+resource records

export interface DnsQuestion {
  /** Offset of the (possibly compressed) name in `DnsMessage.buf`. */
  readonly nameOffset: number;
  readonly qtype: number;
  readonly qclass: number;
}

export const enum Section { Answer = 1, Authority = 2, Additional = 3 }

export interface DnsRecord {
  readonly section: Section;
  readonly nameOffset: number;
  readonly type: number;
  readonly rclass: number;
  /** Unsigned 32-bit wire TTL (RFC 2181 §8 interpretation is the observer's job). */
  readonly ttl: number;
  readonly rdataOffset: number;
  readonly rdataLength: number;
}

export interface Edns {
  readonly udpPayloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

export interface DnsMessage {
  /** The message bytes (a view of the captured buffer, not a copy); all offsets index into it. */
  readonly buf: Uint8Array;
  readonly id: number;
  readonly isResponse: boolean;
  readonly opcode: number;
  readonly authoritative: boolean;
  readonly truncated: boolean;
  readonly recursionDesired: boolean;
  readonly recursionAvailable: boolean;
  /** Full response code: header RCODE plus the EDNS0 extended bits (RFC 6891 §6.1.3). */
  readonly rcode: number;
  readonly questions: DnsQuestion[];
  readonly answers: DnsRecord[];
  readonly authority: DnsRecord[];
  readonly additional: DnsRecord[];
  readonly edns: Edns | null;
}

export type ParseResult =
  | { readonly ok: true; readonly message: DnsMessage }
  | { readonly ok: false; readonly error: DnsParseError; readonly offset: number };

/** Negative return values of skipName/readName-style helpers encode these errors. */
const NAME_ERRORS: DnsParseError[] = ["truncated-name", "bad-label-type", "bad-pointer", "name-loop", "name-too-long"];
const E_TRUNC = -1, E_LABEL = -2, E_PTR = -3, E_LOOP = -4, E_LONG = -5;

function nameError(code: number): DnsParseError {
  return NAME_ERRORS[-code - 1]!;
}

/**
 * Validates the name at `off` (following compression pointers) and returns the offset just past it
 * in the original position, or a negative error code. `end` bounds the whole message.
 */
export function skipName(buf: Uint8Array, off: number, end: number): number {
  let pos = off;
  let after = -1; // where the name ends in place, fixed at the first pointer
  let hops = 0;
  let wireLen = 1; // the root label's zero byte
  for (;;) {
    if (pos >= end) return E_TRUNC;
    const len = buf[pos]!;
    if (len === 0) return after >= 0 ? after : pos + 1;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= end) return E_TRUNC;
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= end) return E_PTR;
      if (after < 0) after = pos + 2;
      if (++hops > MAX_POINTER_HOPS) return E_LOOP;
      pos = target;
      continue;
    }
    if (kind !== 0) return E_LABEL;
    wireLen += len + 1;
    if (wireLen > MAX_NAME_WIRE_LEN) return E_LONG;
    if (pos + 1 + len > end) return E_TRUNC;
    pos += 1 + len;
  }
}

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/** Why the last parseDnsMessageOrNull call returned null, and where (set only on failure). */
let lastError: DnsParseError = "truncated-record";
let lastErrorOffset = 0;

function fail(error: DnsParseError, offset: number): null {
  lastError = error;
  lastErrorOffset = offset;
  return null;
}

/** Shared by messages parsed with `shareEmpty`: never pushed to (arrays are created only when a section has records). */
const EMPTY_RECORDS: DnsRecord[] = [];

/**
 * Parses one DNS message occupying `buf[start, end)`. The result's `buf` is a view of exactly
 * those bytes (compression pointers are relative to the message start), and offsets index it.
 */
export function parseDnsMessage(buf: Uint8Array, start = 0, end = buf.length): ParseResult {
  const message = parseDnsMessageOrNull(buf, start, end, false);
  return message !== null ? { ok: true, message } : { ok: false, error: lastError, offset: lastErrorOffset };
}

/**
 * parseDnsMessage without the result wrapper, for hot paths: the message, or null with the reason
 * in parseErrorOf(). With `shareEmpty`, empty sections share one array, which the caller must
 * never modify.
 */
export function parseDnsMessageOrNull(buf: Uint8Array, start = 0, end = buf.length, shareEmpty = false): DnsMessage | null {
  const target = freshMessage(shareEmpty);
  return parseGuarded(buf, start, end, target) ? target : null;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MessageFields = Mutable<Omit<DnsMessage, "questions" | "answers" | "authority" | "additional">>;

/**
 * One message object reused for every parse (the agent's observer): the same checks as
 * parseDnsMessageOrNull, without allocating a message, its section arrays or its records per
 * packet. What `parse` returns is valid until the next call; nothing may keep it or its records.
 */
export class ReusableDnsMessage {
  private readonly message: DnsMessage = freshMessage(false);

  /** The message in `buf[start, end)`, or null (reason in lastParseError()). */
  parse(buf: Uint8Array, start = 0, end = buf.length): DnsMessage | null {
    return parseGuarded(buf, start, end, this.message) ? this.message : null;
  }
}

function freshMessage(shareEmpty: boolean): DnsMessage {
  return {
    buf: EMPTY_BYTES, id: 0, isResponse: false, opcode: 0, authoritative: false, truncated: false,
    recursionDesired: false, recursionAvailable: false, rcode: 0, questions: [],
    answers: shareEmpty ? EMPTY_RECORDS : [], authority: shareEmpty ? EMPTY_RECORDS : [],
    additional: shareEmpty ? EMPTY_RECORDS : [], edns: null,
  };
}

const EMPTY_BYTES = new Uint8Array(0);

function parseGuarded(buf: Uint8Array, start: number, end: number, target: DnsMessage): boolean {
  try {
    return parseUnchecked(buf, start, Math.min(end, buf.length), target);
  } catch {
    // Unreachable by construction (every read is bounds-checked); kept so no input can ever
    // throw past this boundary if a future edit misses a check.
    fail("truncated-record", start);
    return false;
  }
}

/** The reason the last parseDnsMessageOrNull call that returned null failed. */
export function lastParseError(): DnsParseError {
  return lastError;
}

/**
 * `out[i]` as a record with these fields: the object already there is reused (a reusable message's
 * pool), otherwise one is added. `out` is never the shared EMPTY_RECORDS (count > 0 replaces it).
 */
function putRecord(out: DnsRecord[], i: number, section: Section, nameOffset: number, type: number, rclass: number, ttl: number, rdataOffset: number, rdataLength: number): void {
  const r = out[i] as Mutable<DnsRecord> | undefined;
  if (r === undefined) {
    out.push({ section, nameOffset, type, rclass, ttl, rdataOffset, rdataLength });
    return;
  }
  r.section = section; r.nameOffset = nameOffset; r.type = type; r.rclass = rclass; r.ttl = ttl;
  r.rdataOffset = rdataOffset; r.rdataLength = rdataLength;
}

/** A section array able to hold `count` records: the shared empty one stays only while empty. */
function sectionFor(current: DnsRecord[], count: number): DnsRecord[] {
  return count > 0 && current === EMPTY_RECORDS ? [] : current;
}

/** Fills `target` from `whole[start, end)`; false (reason in lastError) when it is not a message. */
function parseUnchecked(whole: Uint8Array, start: number, end: number, target: DnsMessage): boolean {
  // Compression pointers are relative to the message start, so work on a view of the message.
  const buf = start === 0 && end === whole.length ? whole : whole.subarray(start, end);
  const len = buf.length;
  if (len < DNS_HEADER_LEN) return fail("short-header", start) ?? false;
  const flags = u16(buf, 2);
  const qd = u16(buf, 4), an = u16(buf, 6), ns = u16(buf, 8), ar = u16(buf, 10);
  if (qd + an + ns + ar > MAX_RECORDS) return fail("too-many-records", start + 4) ?? false;
  const m = target as Mutable<DnsMessage>;

  let pos = DNS_HEADER_LEN;
  const questions = m.questions as Mutable<DnsQuestion>[];
  for (let i = 0; i < qd; i++) {
    const next = skipName(buf, pos, len);
    if (next < 0) return fail(nameError(next), start + pos) ?? false;
    if (next + 4 > len) return fail("truncated-record", start + next) ?? false;
    const q = questions[i];
    if (q === undefined) questions.push({ nameOffset: pos, qtype: u16(buf, next), qclass: u16(buf, next + 2) });
    else { q.nameOffset = pos; q.qtype = u16(buf, next); q.qclass = u16(buf, next + 2); }
    pos = next + 4;
  }
  if (questions.length !== qd) questions.length = qd;

  const answers = m.answers = sectionFor(m.answers, an);
  const authority = m.authority = sectionFor(m.authority, ns);
  const additional = m.additional = sectionFor(m.additional, ar);
  let edns: Edns | null = null;
  let extRcode = 0;
  for (let s = 0; s < 3; s++) {
    const out = s === 0 ? answers : s === 1 ? authority : additional;
    const count = s === 0 ? an : s === 1 ? ns : ar;
    const section = (s + 1) as Section;
    for (let i = 0; i < count; i++) {
      const next = skipName(buf, pos, len);
      if (next < 0) return fail(nameError(next), start + pos) ?? false;
      if (next + 10 > len) return fail("truncated-record", start + next) ?? false;
      const type = u16(buf, next);
      const rclass = u16(buf, next + 2);
      const ttl = u32(buf, next + 4);
      const rdLen = u16(buf, next + 8);
      const rdOff = next + 10;
      if (rdOff + rdLen > len) return fail("truncated-record", start + next) ?? false;
      if (type === RRType.OPT && section === Section.Additional) {
        // RFC 6891 §6.1.1: one OPT, owned by the root. (An OPT misplaced in another section is
        // skipped like any record we do not read: it carries no evidence.)
        if (edns !== null || next !== pos + 1 || buf[pos] !== 0) return fail("bad-edns", start + pos) ?? false;
        extRcode = ttl >>> 24;
        edns = { udpPayloadSize: rclass, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0 };
      } else if (rclass === CLASS_IN && !rdataShapeOk(buf, type, rdOff, rdLen)) {
        return fail("bad-rdata", start + rdOff) ?? false;
      }
      putRecord(out, i, section, pos, type, rclass, ttl, rdOff, rdLen);
      pos = rdOff + rdLen;
    }
    if (out.length !== count) out.length = count;
  }
  const fields = m as MessageFields;
  fields.buf = buf;
  fields.id = u16(buf, 0);
  fields.isResponse = (flags & 0x8000) !== 0;
  fields.opcode = (flags >>> 11) & 0xf;
  fields.authoritative = (flags & 0x0400) !== 0;
  fields.truncated = (flags & 0x0200) !== 0;
  fields.recursionDesired = (flags & 0x0100) !== 0;
  fields.recursionAvailable = (flags & 0x0080) !== 0;
  fields.rcode = (extRcode << 4) | (flags & 0xf);
  fields.edns = edns;
  return true;
}

/** Checks the rdata of the types whose contents we use as evidence or render. */
function rdataShapeOk(buf: Uint8Array, type: number, off: number, len: number): boolean {
  switch (type) {
    case RRType.A:
      return len === 4;
    case RRType.AAAA:
      return len === 16;
    case RRType.CNAME:
    case RRType.NS:
    case RRType.PTR:
    case RRType.DNAME:
      return len > 0 && skipName(buf, off, off + len) === off + len;
    case RRType.MX:
      return len > 2 && skipName(buf, off + 2, off + len) === off + len;
    case RRType.SRV:
      return len > 6 && skipName(buf, off + 6, off + len) === off + len;
    default:
      return true; // other types are skipped by length; their contents are never evidence
  }
}

