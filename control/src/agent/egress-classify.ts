// Bypass detection, the packet side: which packets leaving a pod could have skipped its sidecar,
// and what they are. Pure functions over decoded frames (../pcap), so they work with any capture
// path (libpcap today, AF_PACKET tomorrow) and in tests without one.
//
// - Outbound TCP SYNs (SYN without ACK) to destinations outside the cluster networks: the
//   sidecar's own upstream connections look exactly like an app's connection that skipped the
//   sidecar; the agent tells them apart by the filter's verdicts (egress-watch.ts), never here.
// - Outbound UDP not to a trusted resolver's DNS port: Istio's sidecar captures no UDP, so every
//   such datagram left unchecked. QUIC is recognised from its long header (RFC 9000 §17.2: header
//   form and fixed bit set, a non-zero version, connection-ID lengths ≤ 20), a DNS query from its
//   header and question (to a resolver that is not trusted).
import { PACKET_OUTGOING, TcpFlag, type DecodedPacket } from "../pcap/index.js";
import { parseDnsMessageOrNull } from "../dns/message.js";
import { readName } from "../dns/render.js";

export type EgressKind = "tcp-syn" | "udp-quic" | "udp-dns" | "udp-other";

export interface EgressPacket {
  kind: EgressKind;
  podIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  /** QUIC version ("quic/1"), DNS question name, or "". */
  detail: string;
}

export interface ClassifyContext {
  /** The resolvers whose DNS port traffic is DNS evidence, not bypass. */
  isTrustedResolver(ip: string): boolean;
  dnsPorts: ReadonlySet<number>;
  /** Pod networks: only packets from them are judged (undefined: every source, as on a pod's own link). */
  isPodAddress?(ip: string): boolean;
  /**
   * Cluster networks: SYNs to them are not judged. Envoy's own upstreams (istiod, egret control,
   * in-mesh services) live there, and for in-mesh services it connects to an endpoint, not to the
   * address the app dialled, so no verdict names them; the correlation is sound only for
   * passthrough destinations, where Envoy connects to the original destination.
   */
  isInternal?(ip: string): boolean;
}

/**
 * What a frame leaving a pod is, for bypass detection; null for everything else (packets toward
 * pods, SYN+ACKs, DNS to trusted resolvers, non-first fragments the decoder already dropped).
 */
export function classifyEgress(pkt: DecodedPacket, ctx: ClassifyContext): EgressPacket | null {
  // A cooked header (the `any` device) says who sent it: the node's own forwarded copy is not the pod's.
  if (pkt.pktType === PACKET_OUTGOING) return null;
  if (ctx.isPodAddress && !ctx.isPodAddress(pkt.src)) return null;
  const base = { podIp: pkt.src, srcPort: pkt.srcPort, dstIp: pkt.dst, dstPort: pkt.dstPort };
  if (pkt.proto === "tcp") {
    const flags = pkt.tcp?.flags ?? 0;
    if (ctx.isInternal?.(pkt.dst)) return null;
    // DNS over TCP to a trusted resolver is evidence (the DNS capture reassembles it), not egress.
    if (ctx.dnsPorts.has(pkt.dstPort) && ctx.isTrustedResolver(pkt.dst)) return null;
    return (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN ? { ...base, kind: "tcp-syn", detail: "" } : null;
  }
  if (ctx.dnsPorts.has(pkt.dstPort) && ctx.isTrustedResolver(pkt.dst)) return null;
  const quic = quicLongHeaderVersion(pkt.payload);
  if (quic !== undefined) return { ...base, kind: "udp-quic", detail: `quic/${quicVersionLabel(quic)}` };
  const question = dnsQuestion(pkt.payload);
  if (question !== undefined) return { ...base, kind: "udp-dns", detail: question };
  return { ...base, kind: "udp-other", detail: "" };
}

/**
 * The version of a QUIC long-header packet (RFC 9000 §17.2), or undefined. Version 0 is Version
 * Negotiation, which only servers send; a client's first flight (Initial) always has a long header.
 */
export function quicLongHeaderVersion(p: Uint8Array): number | undefined {
  if (p.length < 7 || (p[0] & 0xc0) !== 0xc0) return undefined;
  const version = ((p[1] << 24) | (p[2] << 16) | (p[3] << 8) | p[4]) >>> 0;
  if (version === 0) return undefined;
  const dcid = p[5];
  if (dcid > 20 || p.length < 7 + dcid) return undefined;
  const scid = p[6 + dcid];
  if (scid > 20 || p.length < 7 + dcid + scid) return undefined;
  return version;
}

/** "1", "2", "draft-29", or the version in hex. */
export function quicVersionLabel(v: number): string {
  if (v === 1) return "1";
  if (v === 0x6b3343cf) return "2";
  if (v >>> 8 === 0xff0000) return `draft-${v & 0xff}`;
  return `0x${v.toString(16).padStart(8, "0")}`;
}

/** The question name of a DNS query (QR = 0, one question or more), or undefined. */
export function dnsQuestion(p: Uint8Array): string | undefined {
  if (p.length < 17 || (p[2] & 0x80) !== 0) return undefined;
  const msg = parseDnsMessageOrNull(p);
  if (!msg || msg.isResponse || msg.questions.length === 0) return undefined;
  return readName(msg.buf, msg.questions[0].nameOffset, true) ?? undefined;
}
