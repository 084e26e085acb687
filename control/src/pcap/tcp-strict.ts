// TCP reassembly for evidence (DNS over TCP in the agent and in `egret dns`): the bytes delivered
// are the bytes the receiving Linux socket read, or nothing. Where the offline reassembler
// (tcp-reassembler.ts) guesses to show as much as it can, this one refuses to guess:
//
// - a connection exists only from its handshake: a SYN from the client to an accepted server, then
//   the server's SYN+ACK acknowledging it. Segments of any other flow (mid-flow start, after an
//   eviction) are ignored;
// - once a direction loses its place (a hole skipped, a segment cut by the snap length, buffer
//   pressure), it is *lost* for the rest of the connection: reported once through onLost, never
//   resynchronised on whatever bytes come next;
// - as Linux: an RST counts only at exactly the next expected sequence number (RFC 5961 §3.2; an
//   in-window RST elsewhere only draws a challenge ACK); segments beyond a bounded window ahead are
//   dropped; of overlapping out-of-order segments the one starting earlier wins the overlap, one
//   starting at the same sequence number replaces a shorter one, and one wholly covered by a held
//   segment is dropped (tcp_data_queue_ofo); bytes already delivered are never replaced; a segment
//   with a bad checksum is dropped (the receiver would drop it) — checksums left to offload count;
// - every table is bounded per client (a pod) and in total; a full table evicts the busiest
//   client's least recently active connection, never a quiet client's.
import { TcpFlag, tcpChecksumStatus, type DecodedPacket } from "./frame.js";
import type { Direction, TcpEndpoint } from "./tcp-reassembler.js";

export type LostReason = "gap" | "cut" | "buffer" | "window";

export interface StrictTcpConnection {
  readonly id: number;
  readonly client: TcpEndpoint;
  readonly server: TcpEndpoint;
}

export interface StrictTcpCallbacks {
  /** The handshake completed: data may follow. */
  onOpen?(conn: StrictTcpConnection): void;
  /** In-order bytes of a live direction; a view valid only during the call. */
  onData?(conn: StrictTcpConnection, dir: Direction, bytes: Uint8Array): void;
  /** The direction lost its place; nothing more is delivered for it. */
  onLost?(conn: StrictTcpConnection, dir: Direction, reason: LostReason): void;
  onClose?(conn: StrictTcpConnection): void;
}

export interface StrictTcpLimits {
  /** Connections tracked on the node (handshakes in progress included). */
  maxConnections: number;
  /** Connections tracked per client address (a pod). */
  maxConnectionsPerClient: number;
  /** Out-of-order bytes held per connection; beyond it the direction is lost. */
  maxBufferedBytesPerConnection: number;
  /** Out-of-order bytes held in total; beyond it the direction that needs more is lost. */
  maxBufferedBytesTotal: number;
  /** Data further than this beyond the next expected byte is out of window (dropped). */
  maxWindowAhead: number;
  /** Out-of-order segments held per direction. */
  maxSegmentsPerDirection: number;
}

export const DEFAULT_STRICT_TCP_LIMITS: StrictTcpLimits = {
  maxConnections: 16_384,
  maxConnectionsPerClient: 256,
  maxBufferedBytesPerConnection: 256 << 10,
  maxBufferedBytesTotal: 16 << 20,
  maxWindowAhead: 256 << 10,
  maxSegmentsPerDirection: 256,
};

export interface StrictTcpStats {
  segments: number;
  opened: number;
  closed: number;
  /** Segments of no tracked connection (mid-flow start, evicted, never handshaken). */
  untracked: number;
  /** SYNs to servers not accepted (only flows to trusted resolvers are tracked). */
  notAccepted: number;
  badChecksums: number;
  /** RSTs not at the exact expected sequence number (ignored, as Linux does). */
  ignoredResets: number;
  outOfWindow: number;
  /** Directions lost (gap, cut, buffer, window). */
  lostDirections: number;
  evicted: number;
  bufferedBytes: number;
}

interface Held { seq: number; end: number; bytes: Uint8Array }

class Half {
  /** Next expected sequence number, once the direction's SYN was seen. */
  nextSeq = 0;
  started = false;
  lost = false;
  finSeq: number | undefined;
  finished = false;
  held: Held[] = [];
  heldBytes = 0;
}

interface Conn {
  conn: StrictTcpConnection;
  key: string;
  clientKey: string;
  /** `${client ip}|${client port}` sorts before the server's: the key's first side is the client. */
  clientIsn: number;
  established: boolean;
  fromClient: Half;
  fromServer: Half;
}

interface ClientConns { conns: Set<Conn> }

/** Signed distance a - b in sequence space. */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export class StrictTcpReassembler {
  readonly stats: StrictTcpStats = {
    segments: 0, opened: 0, closed: 0, untracked: 0, notAccepted: 0, badChecksums: 0, ignoredResets: 0,
    outOfWindow: 0, lostDirections: 0, evicted: 0, bufferedBytes: 0,
  };
  private readonly limits: StrictTcpLimits;
  /** Map order = least recently active first. */
  private readonly table = new Map<string, Conn>();
  private readonly byClient = new Map<string, ClientConns>();
  private nextId = 1;

  constructor(
    private readonly callbacks: StrictTcpCallbacks,
    limits: Partial<StrictTcpLimits> = {},
    /** Whether a SYN to this server opens a connection (e.g. only trusted resolvers on DNS ports). */
    private readonly acceptServer: (ip: string, port: number) => boolean = () => true,
  ) {
    this.limits = { ...DEFAULT_STRICT_TCP_LIMITS, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`StrictTcpReassembler limit ${k} must be a positive integer, got ${v}`);
    }
  }

  get openConnections(): number {
    return this.table.size;
  }

  /**
   * Feeds one segment in capture order. `fromClientSide`: false when the capture knows the segment
   * travelled toward the client side (a pod), so it cannot be that pod's SYN.
   */
  push(pkt: DecodedPacket, fromClientSide?: boolean): void {
    const tcp = pkt.tcp;
    if (pkt.proto !== "tcp" || !tcp) return;
    this.stats.segments++;
    const sender = `${pkt.src}|${pkt.srcPort}`, receiver = `${pkt.dst}|${pkt.dstPort}`;
    const syn = (tcp.flags & TcpFlag.SYN) !== 0, ack = (tcp.flags & TcpFlag.ACK) !== 0;
    let c = this.table.get(`${sender}>${receiver}`);
    let fromClient = true;
    if (!c) {
      c = this.table.get(`${receiver}>${sender}`);
      fromClient = false;
    }
    if (syn && !ack) {
      if (c && fromClient && c.clientIsn === tcp.seq) return; // a retransmitted SYN
      if (c) this.close(c); // a new SYN on the 4-tuple: the old connection is gone
      if (fromClientSide === false) return void this.stats.untracked++;
      if (!this.acceptServer(pkt.dst, pkt.dstPort)) return void this.stats.notAccepted++;
      if (this.checksumBad(pkt)) return;
      this.open(pkt, `${sender}>${receiver}`, tcp.seq);
      return;
    }
    if (!c) return void this.stats.untracked++;
    this.touch(c);
    if (this.checksumBad(pkt)) return;
    const half = fromClient ? c.fromClient : c.fromServer;
    const dir: Direction = fromClient ? "fromClient" : "fromServer";
    if (!c.established) {
      // Only the server's SYN+ACK for this very SYN completes the handshake.
      if (!fromClient && syn && ack && tcp.ack === ((c.clientIsn + 1) >>> 0)) {
        c.established = true;
        c.fromServer.started = true;
        c.fromServer.nextSeq = (tcp.seq + 1) >>> 0;
        this.callbacks.onOpen?.(c.conn);
      }
      return;
    }
    if (syn) return; // a retransmitted SYN+ACK
    if (tcp.flags & TcpFlag.RST) {
      if (tcp.seq === half.nextSeq) this.close(c);
      else this.stats.ignoredResets++;
      return;
    }
    if (!half.lost && !half.finished) this.data(c, dir, half, pkt, tcp.seq);
    if (tcp.flags & TcpFlag.FIN && !half.lost) {
      half.finSeq ??= (tcp.seq + pkt.payloadLength) >>> 0;
      if (seqDiff(half.finSeq, half.nextSeq) <= 0) half.finished = true;
    }
    const done = (h: Half) => h.finished || h.lost;
    if (done(c.fromClient) && done(c.fromServer)) this.close(c);
  }

  /** Closes every connection (end of a capture file). Held data past holes is never delivered. */
  flush(): void {
    for (const c of [...this.table.values()]) this.close(c);
  }

  private checksumBad(pkt: DecodedPacket): boolean {
    if (tcpChecksumStatus(pkt) !== "bad") return false;
    this.stats.badChecksums++;
    return true;
  }

  private open(pkt: DecodedPacket, key: string, isn: number): void {
    const clientKey = pkt.src;
    let mine = this.byClient.get(clientKey);
    if (mine && mine.conns.size >= this.limits.maxConnectionsPerClient) this.evictFrom(mine);
    if (this.table.size >= this.limits.maxConnections) this.evictFrom(this.busiestClient());
    mine = this.byClient.get(clientKey);
    if (!mine) {
      mine = { conns: new Set() };
      this.byClient.set(clientKey, mine);
    }
    const c: Conn = {
      conn: {
        id: this.nextId++,
        client: { ip: pkt.src, ipBytes: pkt.srcIp.slice(), port: pkt.srcPort },
        server: { ip: pkt.dst, ipBytes: pkt.dstIp.slice(), port: pkt.dstPort },
      },
      key, clientKey, clientIsn: pkt.tcp!.seq, established: false, fromClient: new Half(), fromServer: new Half(),
    };
    // SYN data (TCP Fast Open) is not read by a listener without TFO; the client resends it.
    c.fromClient.started = true;
    c.fromClient.nextSeq = (isn + 1) >>> 0;
    this.table.set(key, c);
    mine.conns.add(c);
    this.stats.opened++;
  }

  /** The client with the most connections (the table is full: a rare, linear scan). */
  private busiestClient(): ClientConns {
    let best: ClientConns | undefined;
    for (const m of this.byClient.values()) if (!best || m.conns.size > best.conns.size) best = m;
    return best!;
  }

  /** Keeps both orders (node-wide and the client's) least recently active first. */
  private touch(c: Conn): void {
    this.table.delete(c.key);
    this.table.set(c.key, c);
    const mine = this.byClient.get(c.clientKey);
    if (mine) {
      mine.conns.delete(c);
      mine.conns.add(c);
    }
  }

  /** Evicts the least recently active connection of one client. */
  private evictFrom(mine: ClientConns): void {
    const oldest = mine.conns.values().next().value;
    if (!oldest) return;
    this.stats.evicted++;
    this.close(oldest);
  }

  private data(c: Conn, dir: Direction, half: Half, pkt: DecodedPacket, seq: number): void {
    const payload = pkt.payload;
    if (payload.length < pkt.payloadLength) {
      // Cut by the snap length (or a first IP fragment): the receiver got bytes we never will.
      this.lose(c, dir, half, "cut");
      return;
    }
    if (payload.length === 0) return;
    const off = seqDiff(seq, half.nextSeq);
    if (off + payload.length <= 0) return; // old data: what was delivered stays delivered
    if (off <= 0) {
      this.deliver(c, dir, half, payload.subarray(-off));
      this.drain(c, dir, half);
      return;
    }
    if (off + payload.length > this.limits.maxWindowAhead) {
      this.stats.outOfWindow++;
      return;
    }
    this.hold(c, dir, half, seq, payload);
  }

  /** Queues an out-of-order segment as tcp_data_queue_ofo does. */
  private hold(c: Conn, dir: Direction, half: Half, seq: number, payload: Uint8Array): void {
    const end = (seq + payload.length) >>> 0;
    const held = half.held;
    let i = 0;
    while (i < held.length && seqDiff(held[i]!.seq, seq) < 0) i++;
    // A held segment starting before this one and covering it: all bits present, drop.
    if (i > 0 && seqDiff(held[i - 1]!.end, end) >= 0) return;
    if (i < held.length && held[i]!.seq === seq && seqDiff(held[i]!.end, end) >= 0) return;
    // Held segments starting at or after this one and wholly covered by it are replaced.
    while (i < held.length && seqDiff(held[i]!.end, end) <= 0) {
      const gone = held.splice(i, 1)[0]!;
      half.heldBytes -= gone.bytes.length;
      this.stats.bufferedBytes -= gone.bytes.length;
    }
    const connHeld = c.fromClient.heldBytes + c.fromServer.heldBytes;
    if (connHeld + payload.length > this.limits.maxBufferedBytesPerConnection || held.length >= this.limits.maxSegmentsPerDirection ||
        this.stats.bufferedBytes + payload.length > this.limits.maxBufferedBytesTotal) {
      this.lose(c, dir, half, "buffer");
      return;
    }
    held.splice(i, 0, { seq, end, bytes: payload.slice() });
    half.heldBytes += payload.length;
    this.stats.bufferedBytes += payload.length;
  }

  private deliver(c: Conn, dir: Direction, half: Half, bytes: Uint8Array): void {
    let out = bytes;
    if (half.finSeq !== undefined) {
      const room = seqDiff(half.finSeq, half.nextSeq);
      if (room <= 0) return;
      if (out.length > room) out = out.subarray(0, room);
    }
    if (out.length === 0) return;
    half.nextSeq = (half.nextSeq + out.length) >>> 0;
    this.callbacks.onData?.(c.conn, dir, out);
    if (half.finSeq !== undefined && seqDiff(half.finSeq, half.nextSeq) <= 0) half.finished = true;
  }

  /** Delivers held segments that became in order; the earlier-starting segment won each overlap. */
  private drain(c: Conn, dir: Direction, half: Half): void {
    while (half.held.length > 0 && !half.lost && this.table.has(c.key)) {
      const h = half.held[0]!;
      const off = seqDiff(h.seq, half.nextSeq);
      if (off > 0) return;
      half.held.shift();
      half.heldBytes -= h.bytes.length;
      this.stats.bufferedBytes -= h.bytes.length;
      if (off + h.bytes.length > 0) this.deliver(c, dir, half, h.bytes.subarray(-off));
    }
  }

  private lose(c: Conn, dir: Direction, half: Half, reason: LostReason): void {
    if (half.lost) return;
    half.lost = true;
    this.release(half);
    this.stats.lostDirections++;
    this.callbacks.onLost?.(c.conn, dir, reason);
  }

  private release(half: Half): void {
    this.stats.bufferedBytes -= half.heldBytes;
    half.held = [];
    half.heldBytes = 0;
  }

  private close(c: Conn): void {
    if (!this.table.delete(c.key)) return;
    this.release(c.fromClient);
    this.release(c.fromServer);
    const mine = this.byClient.get(c.clientKey);
    if (mine) {
      mine.conns.delete(c);
      if (mine.conns.size === 0) this.byClient.delete(c.clientKey);
    }
    this.stats.closed++;
    if (c.established) this.callbacks.onClose?.(c.conn);
  }
}
