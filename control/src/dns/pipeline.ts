// From decoded packets to DNS messages: UDP payloads go to the observer as they are; TCP segments
// are reassembled (../pcap StrictTcpReassembler: only handshaken flows to trusted resolvers, Linux's
// rules for resets, overlaps, window and checksums) and split into messages by their 2-byte length
// prefix (RFC 1035 §4.2.2: several messages per stream, a message may span segments, a segment may
// hold several). A direction that loses its place is never resynchronised: the next bytes would be
// read as a length prefix wherever they fall, and a pod controls what falls there (#14 finding 7).
// The same pipeline serves `egret agent` (live frames) and `egret dns` (capture files).
import { StrictTcpReassembler, type DecodedPacket, type Direction, type StrictTcpConnection } from "../pcap/index.js";
import type { DnsMessageMeta, DnsObserver } from "./observer.js";

export interface PipelineOptions {
  /** Server ports that carry DNS (default [53]); a packet is DNS when either port is one of them. */
  dnsPorts?: readonly number[];
  /** Connections tracked for TCP reassembly (the busiest client's least recently active evicted beyond it). */
  maxTcpConnections?: number;
  /** Connections tracked per client (a pod). */
  maxTcpConnectionsPerClient?: number;
  /**
   * Whether a TCP connection to this server is tracked at all (the agent: trusted resolvers only;
   * default every server on a DNS port).
   */
  isTrustedServer?(ip: string): boolean;
  /**
   * Bytes held in total for DNS-over-TCP: out-of-order segments in the reassembler, plus partial
   * messages in the framers (each up to 64 KiB). Beyond it, the partial message that overflows is
   * dropped (counted in tcpOverflows), so many half-sent messages cannot exhaust memory.
   */
  maxTcpBufferedBytes?: number;
}

export interface PacketContext {
  /** Capture time in ms since the epoch. */
  time: number;
  iface?: string;
  /** See DnsMessageMeta.fromPod. */
  fromPod?: boolean;
  /** Frame number in a capture file. */
  frame?: number;
}

export interface PipelineStats {
  /** Packets offered to push(). */
  packets: number;
  /** Packets on a DNS port (UDP datagrams and TCP segments). */
  dnsPackets: number;
  /** UDP datagrams whose payload is incomplete: first IP fragment or cut by the snap length. */
  incompleteDatagrams: number;
  /** TCP stream directions given up (a gap, a cut segment, buffer pressure): never resynchronised. */
  tcpGaps: number;
  /** TCP messages cut short by the end of their connection. */
  tcpPartialMessages: number;
  /** Partial TCP messages dropped because the buffered-bytes budget was exhausted. */
  tcpOverflows: number;
}

/** Reassembles one direction of a DNS-over-TCP stream into length-framed messages. */
export class TcpMessageFramer {
  private buf = new Uint8Array(0);
  private used = 0;

  /** Set once the stream lost its place: nothing more is framed. */
  dead = false;

  /** Appends in-order stream bytes; calls `emit` for every complete message. */
  push(bytes: Uint8Array, emit: (message: Uint8Array) => void): void {
    if (this.dead) return;
    let data = bytes;
    // Finish a message begun in earlier segments, copying only what it needs.
    while (this.used > 0 && data.length > 0) {
      const need = this.used < 2 ? 2 - this.used : 2 + ((this.buf[0]! << 8) | this.buf[1]!) - this.used;
      const take = Math.min(need, data.length);
      this.append(data.subarray(0, take));
      data = data.subarray(take);
      if (this.used >= 2 && this.used === 2 + ((this.buf[0]! << 8) | this.buf[1]!)) {
        const message = this.buf.slice(2, this.used);
        this.used = 0;
        emit(message);
      }
    }
    // Whole messages straight from the segment, without copying.
    while (data.length >= 2) {
      const len = (data[0]! << 8) | data[1]!;
      if (data.length < 2 + len) break;
      emit(data.subarray(2, 2 + len));
      data = data.subarray(2 + len);
    }
    if (data.length > 0) this.append(data);
  }

  /** Bytes of an incomplete message held. */
  get pending(): number {
    return this.used;
  }

  reset(): void {
    this.used = 0;
    this.buf = new Uint8Array(0);
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.used + bytes.length > this.buf.length) {
      // Never more than one message (≤ 65,537 bytes) is held.
      const grown = new Uint8Array(Math.min(65_537, Math.max(this.used + bytes.length, this.buf.length * 2, 512)));
      grown.set(this.buf.subarray(0, this.used));
      this.buf = grown;
    }
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }
}

interface TcpFlowState {
  fromClient: TcpMessageFramer;
  fromServer: TcpMessageFramer;
}

export class DnsPipeline {
  readonly stats: PipelineStats = { packets: 0, dnsPackets: 0, incompleteDatagrams: 0, tcpGaps: 0, tcpPartialMessages: 0, tcpOverflows: 0 };
  /** Bytes of partial messages held by all framers. */
  private framedBytes = 0;
  private readonly maxFramedBytes: number;
  readonly tcp: StrictTcpReassembler;
  private readonly ports: Set<number>;
  private readonly flows = new Map<number, TcpFlowState>();
  /** Context of the packet being pushed: the reassembler delivers synchronously inside push(). */
  private ctx: PacketContext = { time: 0 };

  constructor(private readonly observer: DnsObserver, options: PipelineOptions = {}) {
    const ports = options.dnsPorts ?? [53];
    for (const p of ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`DNS port must be 1..65535, got ${p}`);
    }
    this.ports = new Set(ports);
    const budget = options.maxTcpBufferedBytes ?? 64 << 20;
    if (!(budget >= 1 << 17)) throw new Error(`maxTcpBufferedBytes must be at least 128 KiB, got ${budget}`);
    // Half for out-of-order segments, half for partial messages.
    this.maxFramedBytes = budget / 2;
    const trusted = options.isTrustedServer;
    this.tcp = new StrictTcpReassembler({
      onOpen: (conn) => this.flows.set(conn.id, { fromClient: new TcpMessageFramer(), fromServer: new TcpMessageFramer() }),
      onData: (conn, dir, bytes) => this.onTcpData(conn, dir, bytes),
      onLost: (conn, dir) => {
        const f = this.flows.get(conn.id);
        this.stats.tcpGaps++;
        if (f) this.kill(dir === "fromClient" ? f.fromClient : f.fromServer);
      },
      onClose: (conn) => {
        const f = this.flows.get(conn.id);
        if (f && (f.fromClient.pending > 0 || f.fromServer.pending > 0)) this.stats.tcpPartialMessages++;
        if (f) {
          this.resetFramer(f.fromClient);
          this.resetFramer(f.fromServer);
        }
        this.flows.delete(conn.id);
      },
    }, {
      maxBufferedBytesTotal: budget / 2,
      maxBufferedBytesPerConnection: Math.min(256 << 10, budget / 4),
      ...(options.maxTcpConnections ? { maxConnections: options.maxTcpConnections } : {}),
      ...(options.maxTcpConnectionsPerClient ? { maxConnectionsPerClient: options.maxTcpConnectionsPerClient } : {}),
    }, (ip, port) => this.ports.has(port) && (trusted ? trusted(ip) : true));
  }

  /** Feeds one decoded packet. Never throws on packet contents. */
  push(pkt: DecodedPacket, ctx: PacketContext): void {
    this.stats.packets++;
    if (!this.ports.has(pkt.srcPort) && !this.ports.has(pkt.dstPort)) return;
    this.stats.dnsPackets++;
    if (pkt.proto === "udp") {
      if (pkt.fragmented || pkt.payload.length < pkt.payloadLength) {
        this.stats.incompleteDatagrams++;
        return;
      }
      this.observer.observe(this.udpMeta(pkt, ctx), pkt.payload);
      return;
    }
    // A copy: a caller may reuse its context object for the next packet.
    this.ctx = { ...ctx };
    this.tcp.push(pkt, ctx.fromPod);
  }

  /** End of input (offline): delivers held TCP data and closes every connection. */
  flush(): void {
    this.tcp.flush();
  }

  private onTcpData(conn: StrictTcpConnection, dir: Direction, bytes: Uint8Array): void {
    const f = this.flows.get(conn.id);
    if (!f) return;
    const [from, to] = dir === "fromClient" ? [conn.client, conn.server] : [conn.server, conn.client];
    const meta = this.meta(from.ip, to.ip, from.port, to.port, "tcp", this.ctx);
    // The client is the side whose SYN opened the connection: the pod, when the capture knows.
    if (this.ctx.fromPod !== undefined) meta.fromPod = dir === "fromClient";
    const framer = dir === "fromClient" ? f.fromClient : f.fromServer;
    const before = framer.pending;
    framer.push(bytes, (message) => this.observer.observe(meta, message));
    this.framedBytes += framer.pending - before;
    if (this.framedBytes > this.maxFramedBytes) {
      this.stats.tcpOverflows++;
      this.kill(framer);
    }
  }

  private resetFramer(framer: TcpMessageFramer): void {
    this.framedBytes -= framer.pending;
    framer.reset();
  }

  /** The direction lost its place: drop what it held and frame nothing more. */
  private kill(framer: TcpMessageFramer): void {
    this.resetFramer(framer);
    framer.dead = true;
  }

  /**
   * The meta of a UDP message: one object refilled per datagram (the observer reads it only
   * during observe(); see DnsObserverOptions.onReject).
   */
  private udpMeta(pkt: DecodedPacket, ctx: PacketContext): DnsMessageMeta {
    const m = this.reusedMeta;
    m.time = ctx.time; m.src = pkt.src; m.dst = pkt.dst; m.srcPort = pkt.srcPort; m.dstPort = pkt.dstPort;
    m.iface = ctx.iface; m.fromPod = ctx.fromPod; m.frame = ctx.frame;
    return m;
  }

  private readonly reusedMeta: DnsMessageMeta = {
    time: 0, src: "", dst: "", srcPort: 0, dstPort: 0, transport: "udp", iface: undefined, fromPod: undefined, frame: undefined,
  };

  private meta(src: string, dst: string, srcPort: number, dstPort: number, transport: "udp" | "tcp", ctx: PacketContext): DnsMessageMeta {
    const m: DnsMessageMeta = { time: ctx.time, src, dst, srcPort, dstPort, transport };
    if (ctx.iface !== undefined) m.iface = ctx.iface;
    if (ctx.fromPod !== undefined) m.fromPod = ctx.fromPod;
    if (ctx.frame !== undefined) m.frame = ctx.frame;
    return m;
  }
}
