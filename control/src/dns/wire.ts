// DNS wire-format constants (RFC 1035, 3596, 6891, 2782) and the small helpers every other file in
// this folder shares. No parsing logic lives here.

export const DNS_HEADER_LEN = 12;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label at most 63. */
export const MAX_NAME_WIRE_LEN = 255;
export const MAX_LABEL_LEN = 63;
/** Compression pointers followed per name before we call it a loop. A legitimate name has at
 *  most 127 labels, so no honest encoder needs more hops than that. */
export const MAX_POINTER_HOPS = 127;
/** Records per message we are willing to index; a 64 KiB message holds at most ~5,900. */
export const MAX_RECORDS = 4096;

export const enum RRType {
  A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28, SRV = 33,
  DNAME = 39, OPT = 41, SVCB = 64, HTTPS = 65, SPF = 99,
}

export const enum Rcode {
  NoError = 0, FormErr = 1, ServFail = 2, NXDomain = 3, NotImp = 4, Refused = 5,
}

export const CLASS_IN = 1;

const TYPE_NAMES: Record<number, string> = {
  1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 11: "WKS", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
  17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR",
  36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
  46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
  53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD",
  64: "SVCB", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
  255: "ANY", 256: "URI", 257: "CAA",
};

/** Mnemonic for a record type ("A", "HTTPS"); unknown types as their decimal number. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? String(type);
}

/** Inverse of typeName, for flags and tests: "aaaa" → 28, "65" → 65; undefined if unknown. */
export function typeCode(name: string): number | undefined {
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n <= 0xffff ? n : undefined;
  }
  const upper = name.toUpperCase();
  for (const [code, mnemonic] of Object.entries(TYPE_NAMES)) if (mnemonic === upper) return Number(code);
  return undefined;
}

/** Dotted-quad text of 4 bytes at `off`. */
export function ipv4Text(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** RFC 5952 canonical text of 16 bytes at `off` (lowercase, longest zero run of ≥2 groups as ::). */
export function ipv6Text(buf: Uint8Array, off: number): string {
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!;
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // An IPv4-mapped address keeps its dotted tail, as inet_ntop and tshark print it.
  if (bestStart === 0 && bestLen === 5 && groups[5] === 0xffff) return `::ffff:${ipv4Text(buf, off + 12)}`;
  const hex = (a: number, b: number) => groups.slice(a, b).map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}
