// Address-in-CIDR-list checks for the observer's hot path. node:net BlockList allocates a
// SocketAddress per check, so this parses once per distinct address and caches the verdict.
import { isIPv4, isIPv6 } from "node:net";

interface Range {
  v4: boolean;
  /** Address as four big-endian 32-bit words (IPv4 uses only words[0]). */
  words: Uint32Array;
  prefix: number;
}

/** Verdict cache size: beyond it the cache is cleared (addresses seen on a node are few). */
const CACHE_LIMIT = 65_536;

function parseWords(ip: string): Uint32Array | null {
  if (isIPv4(ip)) {
    const p = ip.split(".").map(Number);
    return Uint32Array.of(((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0);
  }
  if (!isIPv6(ip)) return null;
  let text = ip;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const v4 = parseWords(text.slice(lastColon + 1))![0]!;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill("0"), ...t].map((g) => parseInt(g, 16));
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return words;
}

export class CidrSet {
  private readonly ranges: Range[] = [];
  private readonly cache = new Map<string, boolean>();

  /** Parses "10.0.0.10", "10.244.0.0/16", "fd00::/8"; throws naming `what` on bad input. */
  constructor(cidrs: readonly string[], what: string) {
    for (const raw of cidrs) {
      const [addr = "", bits] = raw.trim().split("/");
      const words = parseWords(addr);
      if (!words) throw new Error(`${what}: "${raw}" is not an IP address or CIDR (e.g. 10.0.0.10 or 10.244.0.0/16)`);
      const v4 = words.length === 1;
      const max = v4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (!/^\d*$/.test(bits ?? "") || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new Error(`${what}: "${raw}" has an invalid prefix length (0..${max})`);
      }
      this.ranges.push({ v4, words, prefix });
    }
  }

  get size(): number {
    return this.ranges.length;
  }

  has(ip: string): boolean {
    let v = this.cache.get(ip);
    if (v === undefined) {
      v = this.compute(ip);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(ip, v);
    }
    return v;
  }

  private compute(ip: string): boolean {
    const words = parseWords(ip);
    if (!words) return false;
    const v4 = words.length === 1;
    for (const r of this.ranges) {
      if (r.v4 !== v4) continue;
      let left = r.prefix, ok = true;
      for (let i = 0; left > 0 && ok; i++, left -= 32) {
        const bits = Math.min(32, left);
        const mask = bits === 32 ? 0xffffffff : ~(0xffffffff >>> bits) >>> 0;
        ok = ((words[i]! & mask) >>> 0) === ((r.words[i]! & mask) >>> 0);
      }
      if (ok) return true;
    }
    return false;
  }
}
