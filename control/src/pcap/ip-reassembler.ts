// IP fragment reassembly for evidence: the datagram a receiving Linux host would build, or nothing.
// Rules follow the Linux receive path (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c,
// inet_frag_queue_insert), so the agent never reads bytes the pod's kernel would not deliver:
//   - a fragment that overlaps another one kills the whole datagram (Linux since 4.19, RFC 5722);
//     an exact duplicate (same offset and end) is ignored, the first copy kept;
//   - a second "last fragment" with another end, or data past the end, kills it;
//   - a non-last fragment whose length is not a multiple of 8 kills it (IPv6 discards such a
//     fragment; IPv4 would trim it — either way the agent takes no evidence from it);
//   - a killed datagram's later fragments start a new one (as Linux after inet_frag_kill).
// Everything is bounded: datagrams time out `timeoutMs` after their first fragment (Linux
// ipfrag_time, 30 s); fragments per datagram, bytes per datagram (65,535 of payload), bytes and
// datagrams per pod, bytes and datagrams in total. When a pod is over its budget it loses its own
// oldest datagram; when the total is, the pod holding the most bytes loses its oldest. Every loss
// is counted in `stats`.
// Datagrams are keyed by (lane, version, source, destination, identification, protocol for IPv4):
// the caller's lane separates what it must never mix (the agent: interface and direction, so
// fragments a pod sends can never complete an answer travelling to a pod).
// IPv6: only a Fragment header directly after the fixed header is handled (what a resolver's
// kernel sends, and all the agent's kernel filter admits); other packets pass through unchanged.
// Depends on nothing but the language: no Node APIs, no other folder.

export interface ReassemblyLimits {
  timeoutMs: number;
  maxFragmentsPerDatagram: number;
  maxBytesPerPod: number;
  maxDatagramsPerPod: number;
  maxBytesTotal: number;
  maxDatagramsTotal: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  timeoutMs: 30_000,
  maxFragmentsPerDatagram: 64,
  maxBytesPerPod: 1 << 20,
  maxDatagramsPerPod: 64,
  maxBytesTotal: 16 << 20,
  maxDatagramsTotal: 4096,
};

export interface ReassemblyStats {
  /** Fragments taken in (including those later dropped). */
  fragments: number;
  /** Datagrams completed. */
  reassembled: number;
  /** Exact duplicate fragments ignored (the first copy kept). */
  duplicates: number;
  /** Datagrams killed because fragments overlapped or disagreed on the end. */
  overlaps: number;
  /** Datagrams or fragments dropped as malformed (bad header, length not a multiple of 8, past 65,535). */
  malformed: number;
  /** Datagrams killed for having more than maxFragmentsPerDatagram fragments. */
  tooManyFragments: number;
  /** Datagrams incomplete after timeoutMs. */
  timedOut: number;
  /** Datagrams evicted by the per-pod or total budgets. */
  evicted: number;
}

interface Piece {
  offset: number;
  end: number;
  data: Uint8Array;
}

interface Pending {
  key: string;
  pod: string;
  created: number;
  /** Header of the fragment at offset 0 (IPv4 header with options, or IPv6 fixed header), once seen. */
  header: Uint8Array | null;
  /** IPv6: the Fragment header's next-header value; IPv4: the protocol. */
  nextHeader: number;
  version: 4 | 6;
  pieces: Piece[];
  /** Payload length, once the last fragment was seen; -1 before. */
  total: number;
  bytes: number;
}

interface PodUse {
  bytes: number;
  datagrams: number;
}

/** What one IP packet is, for reassembly. */
interface FragmentInfo {
  version: 4 | 6;
  id: number;
  offset: number;
  more: boolean;
  /** Where the fragment's payload starts and ends in the packet. */
  payloadStart: number;
  payloadEnd: number;
  /** Header bytes to keep when this is the first fragment. */
  headerLength: number;
  nextHeader: number;
  src: string;
  dst: string;
}

const MAX_PAYLOAD = 65_535;

function hex(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

/**
 * Parses the fragment fields of an IP packet. Returns null for a packet that is not a fragment
 * (pass it on), "malformed" for a fragment that cannot be used.
 */
export function fragmentInfo(ip: Uint8Array): FragmentInfo | null | "malformed" {
  if (ip.length < 1) return null;
  const version = ip[0]! >> 4;
  if (version === 4) {
    if (ip.length < 20) return null;
    const flags = (ip[6]! << 8) | ip[7]!;
    const more = (flags & 0x2000) !== 0;
    const offset = (flags & 0x1fff) * 8;
    if (!more && offset === 0) return null;
    const ihl = (ip[0]! & 0xf) * 4;
    const totalLength = (ip[2]! << 8) | ip[3]!;
    if (ihl < 20 || totalLength < ihl || totalLength > ip.length) return "malformed";
    return {
      version: 4, id: (ip[4]! << 8) | ip[5]!, offset, more, payloadStart: ihl, payloadEnd: totalLength, headerLength: ihl,
      nextHeader: ip[9]!, src: hex(ip, 12, 16), dst: hex(ip, 16, 20),
    };
  }
  if (version === 6) {
    if (ip.length < 48 || ip[6] !== 44) return null;
    const payloadLength = (ip[4]! << 8) | ip[5]!;
    if (payloadLength < 8 || 40 + payloadLength > ip.length) return "malformed";
    const fo = (ip[42]! << 8) | ip[43]!;
    return {
      version: 6, id: ((ip[44]! << 24) | (ip[45]! << 16) | (ip[46]! << 8) | ip[47]!) >>> 0, offset: fo & 0xfff8, more: (fo & 1) !== 0,
      payloadStart: 48, payloadEnd: 40 + payloadLength, headerLength: 40, nextHeader: ip[40]!, src: hex(ip, 8, 24), dst: hex(ip, 24, 40),
    };
  }
  return null;
}

/** Builds the unfragmented datagram: the first fragment's header, then the payload. */
function assemble(p: Pending): Uint8Array {
  const h = p.header!;
  const out = new Uint8Array(h.length + p.total);
  out.set(h, 0);
  for (const piece of p.pieces) out.set(piece.data, h.length + piece.offset);
  if (p.version === 4) {
    const len = h.length + p.total;
    out[2] = len >> 8; out[3] = len & 0xff;
    out[6] = 0; out[7] = 0; // no MF, offset 0 (DF dropped: the datagram is whole now)
    out[10] = 0; out[11] = 0;
    let sum = 0;
    for (let i = 0; i < h.length; i += 2) sum += (out[i]! << 8) | out[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const ck = ~sum & 0xffff;
    out[10] = ck >> 8; out[11] = ck & 0xff;
  } else {
    out[4] = p.total >> 8; out[5] = p.total & 0xff;
    out[6] = p.nextHeader;
  }
  return out;
}

export class IpReassembler {
  readonly stats: ReassemblyStats = { fragments: 0, reassembled: 0, duplicates: 0, overlaps: 0, malformed: 0, tooManyFragments: 0, timedOut: 0, evicted: 0 };
  /** Pending datagrams, oldest first (Map keeps insertion order; a datagram's age never changes). */
  private readonly pending = new Map<string, Pending>();
  private readonly pods = new Map<string, PodUse>();
  private bytes = 0;

  constructor(private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY_LIMITS) {}

  /** Datagrams waiting for fragments. */
  get size(): number {
    return this.pending.size;
  }

  /** Bytes of fragment payload held. */
  get heldBytes(): number {
    return this.bytes;
  }

  /**
   * One IP packet (from its header). Returns it unchanged when it is not a fragment, a new
   * unfragmented datagram when this fragment completes one, or null (held, or dropped and counted).
   * `podSide` says which address is the pod's ("src" for what a pod sends, "dst" for what it
   * receives): its budget pays for the datagram. `ip` may be a view of a reused buffer: what is
   * held is copied.
   */
  push(ip: Uint8Array, lane: string, podSide: "src" | "dst", now: number): Uint8Array | null {
    this.expire(now);
    const f = fragmentInfo(ip);
    if (f === null) return ip;
    this.stats.fragments++;
    if (f === "malformed") {
      this.stats.malformed++;
      return null;
    }
    const key = `${lane}|${f.version}|${f.src}|${f.dst}|${f.id}|${f.version === 4 ? f.nextHeader : ""}`;
    const length = f.payloadEnd - f.payloadStart;
    const end = f.offset + length;
    let p = this.pending.get(key);
    const kill = (counter: "malformed" | "overlaps" | "tooManyFragments"): null => {
      this.stats[counter]++;
      if (p) this.remove(p);
      return null;
    };
    if (end > MAX_PAYLOAD || length === 0 || (f.more && (length & 7) !== 0)) return kill("malformed");
    if (!p) {
      p = { key, pod: podSide === "src" ? f.src : f.dst, created: now, header: null, nextHeader: f.nextHeader, version: f.version, pieces: [], total: -1, bytes: 0 };
      this.admit(p);
    }
    if (!f.more) {
      if (p.total >= 0 && p.total !== end) return kill("overlaps");
      if (p.pieces.some((x) => x.end > end)) return kill("overlaps");
      p.total = end;
    } else if (p.total >= 0 && end > p.total) {
      return kill("overlaps");
    }
    if (f.version === 6 && f.offset === 0 && !f.more) {
      // An atomic fragment (RFC 8021): a whole datagram with a Fragment header.
      p.header = ip.slice(0, f.headerLength);
      p.nextHeader = f.nextHeader;
    }
    let at = 0;
    for (; at < p.pieces.length && p.pieces[at]!.offset < f.offset; at++);
    const before = p.pieces[at - 1], after = p.pieces[at];
    if (after && after.offset === f.offset && after.end === end) {
      this.stats.duplicates++;
      return null;
    }
    if ((before && before.end > f.offset) || (after && after.offset < end)) return kill("overlaps");
    if (p.pieces.length >= this.limits.maxFragmentsPerDatagram) return kill("tooManyFragments");
    const data = ip.slice(f.payloadStart, f.payloadEnd);
    p.pieces.splice(at, 0, { offset: f.offset, end, data });
    if (f.offset === 0) {
      p.header = ip.slice(0, f.headerLength);
      p.nextHeader = f.nextHeader;
    }
    this.charge(p, data.length);
    if (!this.pending.has(key)) return null; // evicted by its own budget
    if (p.total < 0 || !p.header) return null;
    let covered = 0;
    for (const piece of p.pieces) {
      if (piece.offset !== covered) return null;
      covered = piece.end;
    }
    if (covered !== p.total) return null;
    this.remove(p);
    this.stats.reassembled++;
    return assemble(p);
  }

  /** Drops datagrams older than the timeout. */
  expire(now: number): void {
    for (const p of this.pending.values()) {
      if (now - p.created < this.limits.timeoutMs && now >= p.created) break;
      this.remove(p);
      this.stats.timedOut++;
    }
  }

  /** Holds a new datagram of `p.pod`, first making room within the datagram budgets. */
  private admit(p: Pending): void {
    const use = this.pods.get(p.pod);
    if (use && use.datagrams >= this.limits.maxDatagramsPerPod) this.evictOldestOf(p.pod);
    while (this.pending.size >= this.limits.maxDatagramsTotal && this.evictFromBiggest());
    this.pending.set(p.key, p);
    const now = this.pods.get(p.pod);
    if (now) now.datagrams++;
    else this.pods.set(p.pod, { bytes: 0, datagrams: 1 });
  }

  /** Accounts `n` more bytes to `p`, evicting to stay within the byte budgets (possibly `p` itself). */
  private charge(p: Pending, n: number): void {
    p.bytes += n;
    this.bytes += n;
    const use = this.pods.get(p.pod)!;
    use.bytes += n;
    while (use.bytes > this.limits.maxBytesPerPod && this.evictOldestOf(p.pod));
    while (this.bytes > this.limits.maxBytesTotal && this.evictFromBiggest());
  }

  private evictOldestOf(pod: string): boolean {
    for (const p of this.pending.values()) {
      if (p.pod !== pod) continue;
      this.remove(p);
      this.stats.evicted++;
      return true;
    }
    return false;
  }

  /** The pod holding the most bytes loses its oldest datagram. */
  private evictFromBiggest(): boolean {
    let biggest: string | undefined, most = -1;
    for (const [pod, use] of this.pods) if (use.bytes > most) { most = use.bytes; biggest = pod; }
    return biggest !== undefined && this.evictOldestOf(biggest);
  }

  private remove(p: Pending): void {
    if (!this.pending.delete(p.key)) return;
    this.bytes -= p.bytes;
    const use = this.pods.get(p.pod);
    if (use) {
      use.bytes -= p.bytes;
      use.datagrams--;
      if (use.datagrams <= 0) this.pods.delete(p.pod);
    }
  }
}
