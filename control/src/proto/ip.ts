// IP addresses as the API carries them: 4 bytes (IPv4) or 16 bytes (IPv6), network byte order.
// One address, one meaning (issue #14): an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291
// §2.5.5.2) IS the IPv4 address a.b.c.d — 4 bytes and dotted text everywhere, as the filter
// (resolve/ip.ts) and the policy engine (IPv4 kept as ::ffff:0:0/96) read it. The agent, control's
// store, Lookup, Watch and the CLI all go through these functions.
import { isIPv4, isIPv6 } from "node:net";

/** Whether 16 address bytes are ::ffff:a.b.c.d (IPv4-mapped). */
export function isV4MappedBytes(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** The normal form of address bytes: IPv4-mapped IPv6 becomes its 4 IPv4 bytes; others unchanged. */
export function canonicalIpBytes(bytes: Uint8Array): Uint8Array {
  return isV4MappedBytes(bytes) ? bytes.slice(12) : bytes;
}

/** "192.0.2.1" / "2001:db8::1" → 4 / 16 bytes. Throws on anything else. IPv4-mapped IPv6 becomes 4 bytes. */
export function ipToBytes(ip: string): Uint8Array {
  return canonicalIpBytes(ipTextToBytes(ip));
}

function ipTextToBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split(".").map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
  let text = ip;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const out = new Uint8Array(16);
  // A trailing dotted quad ("::ffff:192.0.2.1") becomes two hextets.
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const v4 = ipTextToBytes(text.slice(lastColon + 1));
    text = text.slice(0, lastColon + 1) + ((v4[0] << 8) | v4[1]).toString(16) + ":" + ((v4[2] << 8) | v4[3]).toString(16);
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  const write = (parts: string[], at: number) => {
    parts.forEach((h, i) => {
      const v = parseInt(h, 16);
      out[at + i * 2] = v >> 8;
      out[at + i * 2 + 1] = v & 0xff;
    });
  };
  write(headParts, 0);
  write(tailParts, 16 - tailParts.length * 2);
  return out;
}

/** 4 or 16 bytes → canonical text ("192.0.2.1", "2001:db8::1"; ::ffff:a.b.c.d → "a.b.c.d"); undefined for any other length. */
export function bytesToIp(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (isV4MappedBytes(bytes)) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  if (bytes.length !== 16) return undefined;
  const hextets: number[] = [];
  for (let i = 0; i < 16; i += 2) hextets.push((bytes[i] << 8) | bytes[i + 1]);
  // RFC 5952: compress the longest run (≥2) of zero hextets, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (bestStart < 0) return hex.join(":");
  return hex.slice(0, bestStart).join(":") + "::" + hex.slice(bestStart + bestLen).join(":");
}
