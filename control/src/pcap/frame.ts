// Link-layer → IP → TCP/UDP decoding of one captured frame. Pure and zero-copy: the payload is a
// view into the frame. Frames that carry nothing we decode return null and, when a counter object
// is passed, count the reason (DropReason).

/** Link types decodeFrame understands (pcap-linktype(7) numbers). */
export const LinkType = {
  NULL: 0, // BSD loopback: 4-byte address family in the capturing host's byte order
  ETHERNET: 1,
  PPP: 9,
  FDDI: 10,
  RAW_12: 12, // DLT_RAW on most platforms
  RAW_14: 14, // DLT_RAW on OpenBSD
  PPP_HDLC: 50,
  PPP_ETHER: 51, // PPPoE session payload
  RAW: 101,
  LOOP: 108, // OpenBSD loopback: address family in network byte order
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  NFLOG: 239, // Linux netfilter log: TLVs, the packet in NFULA_PAYLOAD
  LINUX_SLL2: 276,
} as const;

export type DropReason =
  | "unsupported-link-type"
  | "truncated-link-header"
  | "not-ip" // ARP, LLDP, 802.3/LLC, … — nothing wrong, just not ours
  | "truncated-ip-header"
  | "bad-ip-header"
  | "ip-fragment" // non-first IPv4/IPv6 fragment (not reassembled)
  | "unsupported-transport" // ICMP, SCTP, ESP, …
  | "truncated-transport-header"
  | "bad-transport-header";

export type DropCounts = Partial<Record<DropReason, number>>;

export interface TcpHeader {
  /** Sequence number (unsigned 32-bit). */
  seq: number;
  /** Acknowledgement number (unsigned 32-bit; meaningful when flags & ACK). */
  ack: number;
  /** The 9 flag bits: FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80 NS=0x100. */
  flags: number;
  window: number;
  /** TCP header length in bytes (data offset × 4): the header precedes `payload` in the frame. */
  headerLength: number;
  /** The checksum field as sent. */
  checksum: number;
}

export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export interface DecodedPacket {
  ipVersion: 4 | 6;
  /** Textual addresses: dotted quad, or RFC 5952 IPv6 (no brackets). */
  src: string;
  dst: string;
  /** Raw address bytes (length 4 or 16), views into the frame. */
  srcIp: Uint8Array;
  dstIp: Uint8Array;
  proto: "tcp" | "udp";
  srcPort: number;
  dstPort: number;
  /** Transport payload (view). Link-layer padding is trimmed using the IP length fields. */
  payload: Uint8Array;
  /**
   * Payload bytes the IP/UDP headers announce; larger than payload.length when the frame was cut
   * by the capture's snap length, or for the first fragment of a fragmented datagram.
   */
  payloadLength: number;
  /** First fragment of a fragmented IP datagram: the payload is incomplete. */
  fragmented: boolean;
  tcp?: TcpHeader;
  /** IP TTL / hop limit. */
  ttl: number;
  /**
   * Tunnel layers removed to reach this packet (IP-in-IP, GRE, VXLAN, GTP-U, Teredo); always 0
   * unless the caller asked for decapsulation (DecodeOptions.decapsulate, offline detection only).
   */
  tunnelDepth: number;
  /**
   * Linux packet type from a cooked (SLL/SLL2) link header: 0 host, 1 broadcast, 2 multicast,
   * 3 other host, 4 outgoing (PACKET_OUTGOING: the capturing host sent it). -1 when the link
   * layer does not say (Ethernet, raw IP, capture files of other link types).
   */
  pktType: number;
}

/** PACKET_OUTGOING (linux/if_packet.h): the frame was sent by the capturing host on that interface. */
export const PACKET_OUTGOING = 4;

export interface DecodeOptions {
  /**
   * Remove tunnel layers (IP-in-IP, GRE, VXLAN, GTP-U, Teredo) and report the inner packet. Only
   * for reading third-party captures for protocol detection (`egret detect`): the inner packet's
   * addresses and ports are whatever the sender wrote, and the outer packet is what the network
   * (and any BPF filter) judged. The agent and every DNS-evidence path must never set it.
   */
  decapsulate?: boolean;
}

function drop(counts: DropCounts | undefined, reason: DropReason): null {
  if (counts) counts[reason] = (counts[reason] ?? 0) + 1;
  return null;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ETHERTYPE_QINQ_OLD = 0x9100;
const ETHERTYPE_PPPOE_SESSION = 0x8864;
const ETHERTYPE_MPLS = 0x8847;
const ETHERTYPE_MPLS_MULTICAST = 0x8848;
const PPP_IPV4 = 0x0021;
const PPP_IPV6 = 0x0057;
const MAX_VLAN_TAGS = 4;

/**
 * Decodes one frame of the given link type down to TCP or UDP. Returns null (counting the reason
 * in `drops` when given) for anything else. Never throws.
 */
export function decodeFrame(linkType: number, data: Uint8Array, drops?: DropCounts, options?: DecodeOptions): DecodedPacket | null {
  const pkt = decodeLink(linkType, data, drops, options?.decapsulate ? 0 : NO_DECAPSULATION);
  if (pkt && pkt.tunnelDepth === 0) pkt.pktType = linkPacketType(linkType, data);
  return pkt;
}

/** The Linux packet type a cooked link header records, or -1. */
export function linkPacketType(linkType: number, d: Uint8Array): number {
  if (linkType === LinkType.LINUX_SLL && d.length >= 16) return (d[0]! << 8) | d[1]!;
  if (linkType === LinkType.LINUX_SLL2 && d.length >= 20) return d[10]!;
  return -1;
}

/** Tunnels nested deeper than this are dropped as bad headers (loops of crafted encapsulation). */
const MAX_TUNNEL_DEPTH = 4;
/** The `depth` of a decode that never enters a tunnel: tunnel protocols are just transports. */
const NO_DECAPSULATION = -1;

function decodeLink(linkType: number, data: Uint8Array, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  if (linkType === LinkType.NFLOG) return decodeNflog(data, drops, depth);
  const ipOffset = linkPayloadOffset(linkType, data, drops);
  if (ipOffset < 0) return null;
  return decodeIpFrom(data, ipOffset, drops, depth);
}

/** NFLOG (pcap-linktype(7)): 4-byte header, then TLVs (host byte order); type 9 is the packet. */
function decodeNflog(d: Uint8Array, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  if (d.length < 4) return drop(drops, "truncated-link-header");
  let off = 4;
  while (off + 4 <= d.length) {
    const len = d[off]! | (d[off + 1]! << 8);
    const type = d[off + 2]! | (d[off + 3]! << 8);
    if (len < 4 || off + len > d.length) return drop(drops, "truncated-link-header");
    if (type === 9) return decodeIpAt(d.subarray(off + 4, off + len), drops, depth);
    off += (len + 3) & ~3;
  }
  return drop(drops, "not-ip");
}

/**
 * Offset of the IP header in a frame of the given link type, or -1 when there is none (NFLOG
 * included: its packet is a TLV, not at a fixed offset).
 */
export function ipHeaderOffset(linkType: number, data: Uint8Array): number {
  return linkType === LinkType.NFLOG ? -1 : linkPayloadOffset(linkType, data);
}

/** Offset of the IP header in a frame, or -1 (counted) when there is none. */
function linkPayloadOffset(linkType: number, d: Uint8Array, drops?: DropCounts): number {
  switch (linkType) {
    case LinkType.ETHERNET: {
      if (d.length < 14) return drop(drops, "truncated-link-header") ?? -1;
      return etherTypePayload(d, 12, drops);
    }
    case LinkType.LINUX_SLL: {
      if (d.length < 16) return drop(drops, "truncated-link-header") ?? -1;
      return etherTypePayload(d, 14, drops);
    }
    case LinkType.LINUX_SLL2: {
      if (d.length < 20) return drop(drops, "truncated-link-header") ?? -1;
      const type = (d[0]! << 8) | d[1]!;
      return ipByEtherType(type, 20, drops);
    }
    case LinkType.RAW:
    case LinkType.RAW_12:
    case LinkType.RAW_14:
    case LinkType.IPV4:
    case LinkType.IPV6:
      return 0;
    case LinkType.NULL:
    case LinkType.LOOP: {
      if (d.length < 4) return drop(drops, "truncated-link-header") ?? -1;
      // The family value differs per OS (AF_INET6 is 10, 24, 28 or 30) and byte order; the IP
      // version nibble is authoritative, so only reject families that are certainly not IP.
      const le = d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24);
      const be = (d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!;
      const isIp = (f: number) => f === 2 || f === 10 || f === 24 || f === 28 || f === 30;
      return isIp(le) || isIp(be) ? 4 : drop(drops, "not-ip") ?? -1;
    }
    case LinkType.FDDI:
      // Frame control, destination, source, then an 802.2 LLC/SNAP header.
      if (d.length < 13) return drop(drops, "truncated-link-header") ?? -1;
      return snapPayload(d, 13, drops);
    case LinkType.PPP:
    case LinkType.PPP_HDLC:
      return pppPayload(d, 0, drops);
    case LinkType.PPP_ETHER:
      if (d.length < 6) return drop(drops, "truncated-link-header") ?? -1;
      return pppPayload(d, 6, drops);
    default:
      return drop(drops, "unsupported-link-type") ?? -1;
  }
}

function etherTypePayload(d: Uint8Array, typeOffset: number, drops?: DropCounts): number {
  let off = typeOffset;
  let type = (d[off]! << 8) | d[off + 1]!;
  for (let tags = 0; type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD; tags++) {
    if (tags >= MAX_VLAN_TAGS) return drop(drops, "not-ip") ?? -1;
    off += 4;
    if (off + 2 > d.length) return drop(drops, "truncated-link-header") ?? -1;
    type = (d[off]! << 8) | d[off + 1]!;
  }
  // A value up to 1500 is an 802.3 length: an LLC header follows, possibly SNAP with an EtherType.
  if (type <= 1500) return snapPayload(d, off + 2, drops);
  if (type === ETHERTYPE_MPLS || type === ETHERTYPE_MPLS_MULTICAST) {
    // Label stack entries until bottom-of-stack; then IPv4/IPv6 by version nibble.
    let p = off + 2;
    for (let labels = 0; ; labels++) {
      if (labels >= 8 || p + 4 > d.length) return drop(drops, "truncated-link-header") ?? -1;
      const bottom = (d[p + 2]! & 1) !== 0;
      p += 4;
      if (bottom) break;
    }
    if (p >= d.length) return drop(drops, "truncated-link-header") ?? -1;
    const v = d[p]! >> 4;
    return v === 4 || v === 6 ? p : drop(drops, "not-ip") ?? -1;
  }
  if (type === ETHERTYPE_PPPOE_SESSION) {
    if (off + 2 + 6 > d.length) return drop(drops, "truncated-link-header") ?? -1;
    return pppPayload(d, off + 2 + 6, drops);
  }
  return ipByEtherType(type, off + 2, drops);
}

/** 802.2 LLC + SNAP (AA AA 03, OUI 000000) carrying an EtherType; anything else is not IP. */
function snapPayload(d: Uint8Array, off: number, drops?: DropCounts): number {
  if (off + 8 > d.length) return drop(drops, "not-ip") ?? -1;
  if (d[off] !== 0xaa || d[off + 1] !== 0xaa || d[off + 2] !== 0x03 || d[off + 3] !== 0 || d[off + 4] !== 0 || d[off + 5] !== 0) {
    return drop(drops, "not-ip") ?? -1;
  }
  return ipByEtherType((d[off + 6]! << 8) | d[off + 7]!, off + 8, drops);
}

function ipByEtherType(type: number, payloadOffset: number, drops?: DropCounts): number {
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? payloadOffset : drop(drops, "not-ip") ?? -1;
}

function pppPayload(d: Uint8Array, off: number, drops?: DropCounts): number {
  // Optional HDLC address/control bytes 0xff 0x03; protocol field may be compressed to 1 byte.
  if (off + 2 <= d.length && d[off] === 0xff && d[off + 1] === 0x03) off += 2;
  if (off >= d.length) return drop(drops, "truncated-link-header") ?? -1;
  let proto: number;
  if (d[off]! & 1) {
    proto = d[off]!;
    off += 1;
  } else {
    if (off + 2 > d.length) return drop(drops, "truncated-link-header") ?? -1;
    proto = (d[off]! << 8) | d[off + 1]!;
    off += 2;
  }
  return proto === PPP_IPV4 || proto === PPP_IPV6 ? off : drop(drops, "not-ip") ?? -1;
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** Decodes a packet starting at the IP header (IPv4 or IPv6, by version nibble). */
export function decodeIp(ip: Uint8Array, drops?: DropCounts, options?: DecodeOptions): DecodedPacket | null {
  return decodeIpAt(ip, drops, options?.decapsulate ? 0 : NO_DECAPSULATION);
}

function decodeIpAt(ip: Uint8Array, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  return decodeIpFrom(ip, 0, drops, depth);
}

/** Decodes the IP packet occupying `buf[base, buf.length)` (offsets instead of a view per layer). */
function decodeIpFrom(buf: Uint8Array, base: number, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  if (buf.length - base < 1) return drop(drops, "truncated-ip-header");
  const version = buf[base]! >> 4;
  if (version === 4) return decodeIpv4(buf, base, drops, depth);
  if (version === 6) return decodeIpv6(base === 0 ? buf : buf.subarray(base), drops, depth);
  return drop(drops, "bad-ip-header");
}

function decodeIpv4(buf: Uint8Array, base: number, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  const ipLength = buf.length - base;
  if (ipLength < 20) return drop(drops, "truncated-ip-header");
  const ihl = (buf[base]! & 0x0f) * 4;
  const totalLength = (buf[base + 2]! << 8) | buf[base + 3]!;
  if (ihl < 20 || totalLength < ihl) return drop(drops, "bad-ip-header");
  if (ipLength < ihl) return drop(drops, "truncated-ip-header");
  const fragField = (buf[base + 6]! << 8) | buf[base + 7]!;
  const moreFragments = (fragField & 0x2000) !== 0;
  if ((fragField & 0x1fff) !== 0) return drop(drops, "ip-fragment");
  // TCP segmentation offload captures show total length 0: trust the captured bytes then.
  const end = totalLength === 0 ? ipLength : Math.min(totalLength, ipLength);
  const announced = totalLength === 0 ? ipLength - ihl : totalLength - ihl;
  return decodeTransport(
    buf[base + 9]!, 4, buf, base + 12, buf, base + 16, buf, base + ihl, base + Math.max(ihl, end), announced, moreFragments,
    buf[base + 8]!, drops, depth,
  );
}

const V6_HOP_BY_HOP = 0;
const V6_ROUTING = 43;
const V6_FRAGMENT = 44;
const V6_AH = 51;
const V6_DEST_OPTS = 60;
const V6_MOBILITY = 135;
const V6_HIP = 139;
const V6_SHIM6 = 140;
const MAX_V6_EXTENSIONS = 16;

function decodeIpv6(ip: Uint8Array, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  if (ip.length < 40) return drop(drops, "truncated-ip-header");
  const payloadLength = (ip[4]! << 8) | ip[5]!;
  // Payload length 0 means a jumbogram (or TSO): use the captured bytes.
  const end = payloadLength === 0 ? ip.length : Math.min(40 + payloadLength, ip.length);
  const announcedEnd = payloadLength === 0 ? ip.length : 40 + payloadLength;
  let next = ip[6]!;
  let off = 40;
  let fragmented = false;
  for (let i = 0; ; i++) {
    if (i > MAX_V6_EXTENSIONS) return drop(drops, "bad-ip-header");
    if (next === V6_HOP_BY_HOP || next === V6_ROUTING || next === V6_DEST_OPTS || next === V6_MOBILITY || next === V6_HIP || next === V6_SHIM6) {
      if (off + 2 > end) return drop(drops, "truncated-ip-header");
      const len = (ip[off + 1]! + 1) * 8;
      next = ip[off]!;
      off += len;
    } else if (next === V6_AH) {
      if (off + 2 > end) return drop(drops, "truncated-ip-header");
      const len = (ip[off + 1]! + 2) * 4;
      next = ip[off]!;
      off += len;
    } else if (next === V6_FRAGMENT) {
      if (off + 8 > end) return drop(drops, "truncated-ip-header");
      const fragOffset = ((ip[off + 2]! << 8) | ip[off + 3]!) >> 3;
      if (fragOffset !== 0) return drop(drops, "ip-fragment");
      fragmented = fragmented || (ip[off + 3]! & 1) !== 0;
      next = ip[off]!;
      off += 8;
    } else break;
    if (off > end) return drop(drops, "truncated-ip-header");
  }
  return decodeTransport(next, 6, ip, 8, ip, 24, ip, off, Math.max(off, end), announcedEnd - off, fragmented, ip[7]!, drops, depth);
}

const IPPROTO_IPIP = 4;
const IPPROTO_IPV6 = 41;
const IPPROTO_GRE = 47;
const UDP_VXLAN = 4789;
const UDP_GTP_U = 2152;
const UDP_TEREDO = 3544;

/**
 * `seg` is the transport segment `s[segStart, segEnd)`; the addresses are `srcBuf[srcOff, +len)` and
 * `dstBuf[dstOff, +len)` (len 4 or 16 by ipVersion). Offsets rather than views: fewer allocations.
 */
function decodeTransport(
  proto: number, ipVersion: 4 | 6, srcBuf: Uint8Array, srcOff: number, dstBuf: Uint8Array, dstOff: number,
  s: Uint8Array, segStart: number, segEnd: number, announced: number,
  fragmented: boolean, ttl: number, drops: DropCounts | undefined, depth: number,
): DecodedPacket | null {
  const segLength = segEnd - segStart;
  if (proto === IPPROTO_IPIP || proto === IPPROTO_IPV6 || proto === IPPROTO_GRE) {
    if (depth === NO_DECAPSULATION) return drop(drops, "unsupported-transport");
    if (fragmented) return drop(drops, "ip-fragment");
    if (depth >= MAX_TUNNEL_DEPTH) return drop(drops, "bad-ip-header");
    const seg = s.subarray(segStart, segEnd);
    if (proto !== IPPROTO_GRE) return decodeIpAt(seg, drops, depth + 1);
    return decodeGre(seg, drops, depth + 1);
  }
  const addrLen = ipVersion === 4 ? 4 : 16;
  if (proto === IPPROTO_TCP) {
    if (segLength < 20) return drop(drops, "truncated-transport-header");
    const dataOffset = (s[segStart + 12]! >> 4) * 4;
    if (dataOffset < 20) return drop(drops, "bad-transport-header");
    if (segLength < dataOffset) return drop(drops, "truncated-transport-header");
    const payload = s.subarray(segStart + dataOffset, segEnd);
    const srcIp = srcBuf.subarray(srcOff, srcOff + addrLen), dstIp = dstBuf.subarray(dstOff, dstOff + addrLen);
    return {
      ipVersion, src: formatIpAt(srcBuf, srcOff, srcIp), dst: formatIpAt(dstBuf, dstOff, dstIp), srcIp, dstIp, proto: "tcp",
      srcPort: (s[segStart]! << 8) | s[segStart + 1]!, dstPort: (s[segStart + 2]! << 8) | s[segStart + 3]!,
      payload, payloadLength: Math.max(payload.length, announced - dataOffset), fragmented, ttl, tunnelDepth: Math.max(depth, 0), pktType: -1,
      tcp: {
        seq: readU32(s, segStart + 4), ack: readU32(s, segStart + 8),
        flags: ((s[segStart + 12]! & 1) << 8) | s[segStart + 13]!,
        window: (s[segStart + 14]! << 8) | s[segStart + 15]!,
        headerLength: dataOffset, checksum: (s[segStart + 16]! << 8) | s[segStart + 17]!,
      },
    };
  }
  if (proto === IPPROTO_UDP) {
    if (segLength < 8) return drop(drops, "truncated-transport-header");
    const udpLength = (s[segStart + 4]! << 8) | s[segStart + 5]!;
    // Length 0 is legal for UDP over IPv6 jumbograms; otherwise it must cover the header.
    if (udpLength !== 0 && udpLength < 8) return drop(drops, "bad-transport-header");
    const claimed = udpLength === 0 ? Math.max(segLength, announced) - 8 : udpLength - 8;
    const payload = s.subarray(segStart + 8, segStart + 8 + Math.min(claimed, segLength - 8));
    const dport = (s[segStart + 2]! << 8) | s[segStart + 3]!;
    if (!fragmented && depth !== NO_DECAPSULATION && depth < MAX_TUNNEL_DEPTH) {
      if (dport === UDP_VXLAN && isVxlan(payload)) return decodeLink(LinkType.ETHERNET, payload.subarray(8), drops, depth + 1);
      if (dport === UDP_GTP_U) {
        const inner = gtpPayloadOffset(payload);
        if (inner > 0) return decodeIpAt(payload.subarray(inner), drops, depth + 1);
      }
      const sport = (s[segStart]! << 8) | s[segStart + 1]!;
      if (dport === UDP_TEREDO || sport === UDP_TEREDO) {
        const inner = teredoPayloadOffset(payload);
        if (inner >= 0) return decodeIpAt(payload.subarray(inner), drops, depth + 1);
      }
    }
    const srcIp = srcBuf.subarray(srcOff, srcOff + addrLen), dstIp = dstBuf.subarray(dstOff, dstOff + addrLen);
    return {
      ipVersion, src: formatIpAt(srcBuf, srcOff, srcIp), dst: formatIpAt(dstBuf, dstOff, dstIp), srcIp, dstIp, proto: "udp",
      srcPort: (s[segStart]! << 8) | s[segStart + 1]!, dstPort: dport,
      payload, payloadLength: Math.max(payload.length, claimed), fragmented, ttl, tunnelDepth: Math.max(depth, 0), pktType: -1,
    };
  }
  return drop(drops, "unsupported-transport");
}

/** GRE (RFC 2784/2890): optional checksum, key and sequence words; IP, Ethernet or ERSPAN II inside. */
function decodeGre(g: Uint8Array, drops: DropCounts | undefined, depth: number): DecodedPacket | null {
  if (g.length < 4) return drop(drops, "truncated-transport-header");
  const flags = (g[0]! << 8) | g[1]!;
  if ((flags & 0x7) !== 0) return drop(drops, "unsupported-transport"); // version 1 (PPTP) and others
  const type = (g[2]! << 8) | g[3]!;
  let off = 4 + (flags & 0x8000 ? 4 : 0) + (flags & 0x2000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
  if (off > g.length) return drop(drops, "truncated-transport-header");
  if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) return decodeIpAt(g.subarray(off), drops, depth);
  if (type === 0x88be && flags & 0x1000) off += 8; // ERSPAN type II header
  if (type === 0x6558 || type === 0x88be) return decodeLink(LinkType.ETHERNET, g.subarray(off), drops, depth);
  return drop(drops, "unsupported-transport");
}

/** VXLAN (RFC 7348): flags 0x08 (valid VNI), reserved bytes zero, then an Ethernet frame. */
function isVxlan(p: Uint8Array): boolean {
  return p.length >= 8 + 14 && p[0] === 0x08 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[7] === 0;
}

/** GTP-U G-PDU (3GPP TS 29.281): returns the offset of the inner IP packet, or -1. */
function gtpPayloadOffset(p: Uint8Array): number {
  if (p.length < 8 || (p[0]! & 0xf0) !== 0x30 || p[1] !== 0xff) return -1;
  let off = 8;
  if (p[0]! & 0x07) {
    if (p.length < 12) return -1;
    off = 12;
    let next = p[11]!;
    for (let n = 0; next !== 0 && n < 8; n++) { // extension headers, length in 4-byte units
      if (off >= p.length) return -1;
      const len = p[off]! * 4;
      if (len === 0 || off + len > p.length) return -1;
      next = p[off + len - 1]!;
      off += len;
    }
  }
  if (off >= p.length) return -1;
  const v = p[off]! >> 4;
  return v === 4 || v === 6 ? off : -1;
}

/**
 * Teredo (RFC 4380 §5.1.1): optional authentication (0x0001) and origin indication (0x0000)
 * headers, then an IPv6 packet whose payload length fits the datagram. Returns its offset or -1.
 */
function teredoPayloadOffset(p: Uint8Array): number {
  let off = 0;
  if (p.length >= 4 && p[0] === 0 && p[1] === 1) {
    const idLen = p[2]!;
    const authLen = p[3]!;
    off = 4 + idLen + authLen + 8 + 1; // nonce (8) and confirmation byte
  }
  if (p.length >= off + 8 && p[off] === 0 && p[off + 1] === 0) off += 8;
  if (p.length < off + 40 || p[off]! >> 4 !== 6) return -1;
  const payloadLength = (p[off + 4]! << 8) | p[off + 5]!;
  return off + 40 + payloadLength === p.length ? off : -1;
}

function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/**
 * IPv4 address text by address, direct-mapped: captures repeat a few addresses, and a cached string
 * costs no formatting, no allocation, and compares by identity downstream.
 */
const V4_CACHE_SIZE = 4096;
const v4CacheKeys = new Int32Array(V4_CACHE_SIZE);
const v4CacheText: (string | undefined)[] = new Array<string | undefined>(V4_CACHE_SIZE).fill(undefined);

/** formatIp of `addr` (the view `buf[off, off + 4 or 16)`), IPv4 through the cache. */
function formatIpAt(buf: Uint8Array, off: number, addr: Uint8Array): string {
  if (addr.length !== 4) return formatIp(addr);
  const key = (buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
  const slot = (key ^ (key >>> 12) ^ (key >>> 20)) & (V4_CACHE_SIZE - 1);
  const hit = v4CacheText[slot];
  if (hit !== undefined && v4CacheKeys[slot] === key) return hit;
  const text = `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  v4CacheKeys[slot] = key;
  v4CacheText[slot] = text;
  return text;
}

/** Formats 4 or 16 address bytes: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run "::"). */
export function formatIp(a: Uint8Array): string {
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  if (a.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${a.length}`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((a[i]! << 8) | a[i + 1]!);
  // IPv4-mapped ::ffff:a.b.c.d keeps the dotted tail (RFC 5952 §5).
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `::ffff:${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  let bestStart = -1;
  let bestLen = 1; // a single zero word is not compressed
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** "ip:port", with IPv6 addresses in brackets. */
export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** One's-complement sum (not yet folded) of `b[from, to)` as big-endian 16-bit words, added to `sum`. */
function onesSum(sum: number, b: Uint8Array, from: number, to: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < to) sum += b[i]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Folded one's-complement sum of the TCP/UDP pseudo-header (RFC 793 / RFC 8200 §8.1). */
export function pseudoHeaderSum(srcIp: Uint8Array, dstIp: Uint8Array, proto: number, length: number): number {
  let sum = onesSum(0, srcIp, 0, srcIp.length);
  sum = onesSum(sum, dstIp, 0, dstIp.length);
  return fold(sum + proto + (length >>> 16) + (length & 0xffff));
}

/** The checksum field value that makes `segment` (its checksum bytes at `checksumOffset`) valid. */
export function transportChecksum(srcIp: Uint8Array, dstIp: Uint8Array, proto: number, segment: Uint8Array, checksumOffset: number): number {
  let sum = pseudoHeaderSum(srcIp, dstIp, proto, segment.length);
  sum = onesSum(sum, segment, 0, checksumOffset);
  sum = onesSum(sum, segment, checksumOffset + 2, segment.length);
  return ~fold(sum) & 0xffff;
}

export type ChecksumStatus = "valid" | "offloaded" | "bad" | "unchecked";

/**
 * Whether a decoded TCP segment's checksum holds. "offloaded": the field holds only the
 * pseudo-header sum, as a sender that leaves the rest to checksum offload (CHECKSUM_PARTIAL)
 * writes it; a packet captured on its way out of this node looks so, and the receiver of such a
 * packet does not verify it either. "unchecked": the capture cut the segment, or it is not TCP.
 */
export function tcpChecksumStatus(pkt: DecodedPacket): ChecksumStatus {
  const tcp = pkt.tcp;
  if (!tcp || pkt.payload.length !== pkt.payloadLength || pkt.payload.byteOffset < tcp.headerLength) return "unchecked";
  const segment = new Uint8Array(pkt.payload.buffer, pkt.payload.byteOffset - tcp.headerLength, tcp.headerLength + pkt.payload.length);
  if (transportChecksum(pkt.srcIp, pkt.dstIp, 6, segment, 16) === tcp.checksum) return "valid";
  // RFC 1624: 0x0000 and 0xffff are the same one's-complement value.
  if (tcp.checksum === 0xffff && transportChecksum(pkt.srcIp, pkt.dstIp, 6, segment, 16) === 0) return "valid";
  return tcp.checksum === pseudoHeaderSum(pkt.srcIp, pkt.dstIp, 6, segment.length) ? "offloaded" : "bad";
}
