// Turns offsets from message.ts into text, on demand. Names use presentation format (RFC 1035
// §5.1, as dig prints them) without the trailing dot: bytes outside printable ASCII, and `.` or `\`
// inside a label, are escaped as \DDD / \. ; the root is ".". Callers normalise case themselves.
import type { DnsMessage, DnsRecord } from "./message.js";
import { skipName } from "./message.js";
import { MAX_POINTER_HOPS, RRType, ipv4Text, ipv6Text, typeName } from "./wire.js";

/**
 * Decodes the name at `off` in `buf` (a message view). Returns null for a name skipName would
 * reject, so callers can render names of messages that were already validated without re-checking.
 */
export function readName(buf: Uint8Array, off: number, lowercase = false): string | null {
  if (skipName(buf, off, buf.length) < 0) return null;
  // Characters go to a scratch buffer and become one flat string at the end: building the text
  // with += per character makes deep rope strings that are slow to compare and hash.
  const out = nameScratch;
  let n = 0;
  let pos = off;
  let hops = 0;
  for (;;) {
    const len = buf[pos]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (++hops > MAX_POINTER_HOPS) return null;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if (n > 0) out[n++] = 0x2e;
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = buf[i]!;
      if (lowercase && c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c === 0x2e || c === 0x5c) {
        out[n++] = 0x5c;
        out[n++] = c;
      } else if (c > 0x20 && c < 0x7f) {
        out[n++] = c;
      } else {
        out[n++] = 0x5c;
        out[n++] = 0x30 + Math.floor(c / 100);
        out[n++] = 0x30 + (Math.floor(c / 10) % 10);
        out[n++] = 0x30 + (c % 10);
      }
    }
    pos += len + 1;
  }
  return n === 0 ? "." : latin1(out, n);
}

/** readName's output buffer: a name is ≤ 255 wire octets, each rendered as at most 4 characters. */
const nameScratch = Buffer.alloc(4 * 255);

type Latin1Slicer = Buffer & { latin1Slice?(start: number, end: number): string };
/**
 * `buf.toString("latin1", 0, n)`; through Buffer's latin1Slice when Node has it, which skips
 * toString's argument and encoding dispatch (a measurable share of the observer's time).
 */
const latin1: (buf: Buffer, n: number) => string = typeof (nameScratch as Latin1Slicer).latin1Slice === "function"
  ? (buf, n) => (buf as Latin1Slicer).latin1Slice!(0, n)
  : (buf, n) => buf.toString("latin1", 0, n);

/** Rendered record, as `egret dns` prints it and observations carry it. */
export interface RenderedRecord {
  name: string;
  type: string;
  ttl: number;
  /** See renderRdata; null when the type's data is not rendered. */
  data: string | string[] | null;
}

function characterStrings(buf: Uint8Array, off: number, end: number): string[] | null {
  const out: string[] = [];
  while (off < end) {
    const n = buf[off]!;
    if (off + 1 + n > end) return null;
    let s = "";
    for (let i = off + 1; i <= off + n; i++) {
      const c = buf[i]!;
      s += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : "\\" + String(c).padStart(3, "0");
    }
    out.push(s);
    off += 1 + n;
  }
  return out;
}

/**
 * Text of a record's data. A/AAAA: address text (RFC 5952 for IPv6); CNAME, NS, PTR, DNAME: the
 * target name; MX: the exchange; SRV: the target; SOA: the primary server (MNAME); TXT/SPF: the
 * string, or the list of strings when there are several. Other types: null (skipped by length,
 * never evidence). Names are lowercased when `lowercase` is set.
 */
export function renderRdata(msg: DnsMessage, rr: DnsRecord, lowercase = false): string | string[] | null {
  const { buf } = msg;
  const off = rr.rdataOffset, len = rr.rdataLength, end = off + len;
  switch (rr.type) {
    case RRType.A:
      return len === 4 ? ipv4Text(buf, off) : null;
    case RRType.AAAA:
      return len === 16 ? ipv6Text(buf, off) : null;
    case RRType.CNAME:
    case RRType.NS:
    case RRType.PTR:
    case RRType.DNAME:
    case RRType.SOA:
      return len > 0 ? readName(buf, off, lowercase) : null;
    case RRType.MX:
      return len > 2 ? readName(buf, off + 2, lowercase) : null;
    case RRType.SRV:
      return len > 6 ? readName(buf, off + 6, lowercase) : null;
    case RRType.TXT:
    case RRType.SPF: {
      const strings = characterStrings(buf, off, end);
      if (strings === null) return null;
      return strings.length === 1 ? strings[0]! : strings;
    }
    default:
      return null;
  }
}

export function renderRecord(msg: DnsMessage, rr: DnsRecord, ttl = rr.ttl, lowercase = false): RenderedRecord {
  return {
    name: readName(msg.buf, rr.nameOffset, lowercase) ?? "",
    type: typeName(rr.type),
    ttl,
    data: renderRdata(msg, rr, lowercase),
  };
}

/**
 * True when the (validated) name at `off` renders, as readName would, to exactly `text` — without
 * building the string. Lets the observer match a response's question against a pending query's
 * name with no allocation.
 */
export function nameEquals(buf: Uint8Array, off: number, text: string, lowercase = false): boolean {
  let pos = off;
  let hops = 0;
  let i = 0; // position in text
  let first = true;
  for (;;) {
    if (pos >= buf.length) return false;
    const len = buf[pos]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (++hops > MAX_POINTER_HOPS || pos + 1 >= buf.length) return false;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0 || pos + 1 + len > buf.length) return false;
    if (!first && text.charCodeAt(i++) !== 0x2e) return false;
    first = false;
    for (let k = pos + 1; k <= pos + len; k++) {
      let c = buf[k]!;
      if (lowercase && c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c === 0x2e || c === 0x5c) {
        if (text.charCodeAt(i) !== 0x5c || text.charCodeAt(i + 1) !== c) return false;
        i += 2;
      } else if (c > 0x20 && c < 0x7f) {
        if (text.charCodeAt(i++) !== c) return false;
      } else {
        // \DDD: three decimal digits.
        if (text.charCodeAt(i) !== 0x5c) return false;
        const d0 = 0x30 + Math.floor(c / 100), d1 = 0x30 + (Math.floor(c / 10) % 10), d2 = 0x30 + (c % 10);
        if (text.charCodeAt(i + 1) !== d0 || text.charCodeAt(i + 2) !== d1 || text.charCodeAt(i + 3) !== d2) return false;
        i += 4;
      }
    }
    pos += len + 1;
  }
  return first ? text === "." : i === text.length;
}

/**
 * 32-bit hash of the name at `off` (validated) over its label lengths and bytes, lowercased when
 * `lowercase` is set: two names readName renders to the same text hash the same.
 */
export function nameHash(buf: Uint8Array, off: number, seed: number, lowercase = false): number {
  let h = seed;
  let pos = off;
  let hops = 0;
  while (pos < buf.length) {
    const len = buf[pos]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (++hops > MAX_POINTER_HOPS || pos + 1 >= buf.length) break;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    h = Math.imul(h ^ len, 0x01000193);
    const end = Math.min(buf.length - 1, pos + len);
    for (let k = pos + 1; k <= end; k++) {
      let c = buf[k]!;
      if (lowercase && c >= 0x41 && c <= 0x5a) c |= 0x20;
      h = Math.imul(h ^ c, 0x01000193);
    }
    pos += len + 1;
  }
  return h >>> 0;
}
