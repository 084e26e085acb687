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
  let out = "";
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
    if (out.length > 0) out += ".";
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = buf[i]!;
      if (lowercase && c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c === 0x2e || c === 0x5c) out += "\\" + String.fromCharCode(c);
      else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
      else out += "\\" + String(c).padStart(3, "0");
    }
    pos += len + 1;
  }
  return out === "" ? "." : out;
}

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
