// TCP stream reassembly for offline analysis (egret detect / dns / simulate): per connection and
// per direction, an ordered byte stream delivered through callbacks, in capture order, with
// bounded buffering. Deterministic: the same packets give the same callbacks in the same order.
//
// Roles: the sender of a SYN (without ACK) is the client; the sender of a SYN+ACK is the server.
// When the capture starts mid-flow (no handshake seen), the server is guessed from the ports:
// a port below 1024 against one that is not; else a port outside the ephemeral range (32768+)
// against one inside it; else the lower port. Equal ports: the first sender is the client.
// `roleSource` on the connection says which rule decided.
//
// Streams: the first SYN fixes the initial sequence number; without one, the first segment seen
// in that direction does (an earlier segment arriving later is then treated as old data). Data
// before the expected sequence number (retransmission) is trimmed first-wins; data after it is
// held (copied) until the hole fills. When the hole never fills — buffer limit reached, FIN/RST,
// end of capture — the missing bytes are skipped, onGap reports them, and delivery resumes.

import { formatEndpoint, TcpFlag, type DecodedPacket } from "./frame.js";

export type Direction = "fromClient" | "fromServer";
export type RoleSource = "syn" | "syn-ack" | "port-heuristic" | "first-packet";
export type CloseReason = "fin" | "rst" | "end-of-capture" | "evicted" | "port-reused";

export interface TcpEndpoint {
  ip: string;
  /** Raw address bytes (4 or 16); a copy, safe to keep. */
  ipBytes: Uint8Array;
  port: number;
}

export interface TcpConnection {
  /** Sequential id in order of first packet, from 1. */
  readonly id: number;
  readonly client: TcpEndpoint;
  readonly server: TcpEndpoint;
  readonly ipVersion: 4 | 6;
  readonly roleSource: RoleSource;
  /** Capture time of the first and latest packet. */
  readonly firstTime: number;
  lastTime: number;
  /** Payload bytes delivered so far per direction. */
  bytesFromClient: number;
  bytesFromServer: number;
  /** Bytes skipped because they were never captured (sum of onGap). */
  gapBytes: number;
  closeReason: CloseReason | undefined;
}

export interface TcpReassemblerCallbacks {
  /** A new connection was seen (before any onData for it). */
  onOpen?(conn: TcpConnection): void;
  /** In-order bytes of one direction. `bytes` is a view valid only during the call: copy to keep. */
  onData?(conn: TcpConnection, dir: Direction, bytes: Uint8Array): void;
  /** `length` bytes of one direction were lost (never captured); delivery continues after them. */
  onGap?(conn: TcpConnection, dir: Direction, length: number): void;
  /** The connection ended (FIN both ways, RST, eviction, or flush at end of capture). */
  onClose?(conn: TcpConnection): void;
}

export interface TcpReassemblerLimits {
  /** Out-of-order bytes held per connection (both directions); beyond it the oldest hole is skipped. */
  maxBufferedBytesPerConnection: number;
  /** Out-of-order bytes held in total; beyond it new out-of-order segments are dropped (counted). */
  maxBufferedBytesTotal: number;
  /** Connections tracked at once; beyond it the least recently active one is closed ("evicted"). */
  maxConnections: number;
}

export const DEFAULT_TCP_LIMITS: TcpReassemblerLimits = {
  maxBufferedBytesPerConnection: 1 << 20,
  maxBufferedBytesTotal: 64 << 20,
  maxConnections: 1 << 18,
};

export interface TcpReassemblerStats {
  segments: number;
  connectionsOpened: number;
  connectionsClosed: number;
  retransmittedBytes: number;
  outOfOrderSegments: number;
  gapBytes: number;
  /** Out-of-order segments dropped because the total buffer limit was reached. */
  droppedSegmentsBufferLimit: number;
  /** Segments far outside any plausible window (corrupt or unrelated), dropped. */
  droppedSegmentsOutOfWindow: number;
  evictedConnections: number;
  /** RST segments for connections not being tracked (ignored). */
  strayResets: number;
  /** Segments without SYN that arrived after their connection closed (final ACKs, retransmissions; ignored). */
  lateSegments: number;
  /** Out-of-order bytes currently held. */
  bufferedBytes: number;
}

/** How long a closed 4-tuple keeps absorbing late segments (2 × a common MSL). */
const TIME_WAIT_SECONDS = 120;

/** Out-of-order segments held per direction at most (each insertion is linear in this). */
const MAX_PENDING_SEGMENTS = 1024;

/** Segments further than this beyond the expected sequence number are implausible. */
const MAX_SEQ_JUMP = 1 << 30;

interface PendingSegment {
  seq: number;
  bytes: Uint8Array;
}

class HalfStream {
  started = false;
  /** Next expected sequence number (unsigned 32-bit). */
  nextSeq = 0;
  /** Sequence number of the FIN, once seen. */
  finSeq: number | undefined;
  finished = false;
  /** Out-of-order segments sorted by sequence number (they may overlap; drain trims). */
  pending: PendingSegment[] = [];
  pendingBytes = 0;
}

interface ConnState {
  conn: TcpConnection;
  key: string;
  /** Key side A (the lexicographically ordered first endpoint) is the client? */
  clientIsA: boolean;
  clientIsn: number | undefined;
  fromClient: HalfStream;
  fromServer: HalfStream;
}

/** Signed distance a - b in 32-bit sequence space. */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

function isEphemeral(port: number): boolean {
  return port >= 32768;
}

export class TcpReassembler {
  readonly stats: TcpReassemblerStats = {
    segments: 0, connectionsOpened: 0, connectionsClosed: 0, retransmittedBytes: 0, outOfOrderSegments: 0,
    gapBytes: 0, droppedSegmentsBufferLimit: 0, droppedSegmentsOutOfWindow: 0, evictedConnections: 0, strayResets: 0, lateSegments: 0, bufferedBytes: 0,
  };
  private readonly limits: TcpReassemblerLimits;
  /** Live connections; Map order = least recently active first (re-inserted on activity). */
  private readonly table = new Map<string, ConnState>();
  /**
   * 4-tuples closed by FIN or RST, with the close time: their late non-SYN segments (the last ACK,
   * retransmissions) belong to the old connection, not a new one. Bounded like the table.
   */
  private readonly recentlyClosed = new Map<string, { time: number; clientIsn: number | undefined }>();
  private nextId = 1;

  constructor(private readonly callbacks: TcpReassemblerCallbacks, limits: Partial<TcpReassemblerLimits> = {}) {
    this.limits = { ...DEFAULT_TCP_LIMITS, ...limits };
    if (this.limits.maxBufferedBytesPerConnection < 1 || this.limits.maxBufferedBytesTotal < 1 || this.limits.maxConnections < 1) {
      throw new RangeError("TcpReassembler limits must be positive");
    }
  }

  /** Number of connections currently tracked. */
  get openConnections(): number {
    return this.table.size;
  }

  /** Feeds one decoded packet (non-TCP packets are ignored). `time` is the capture time. */
  push(pkt: DecodedPacket, time: number): void {
    const tcp = pkt.tcp;
    if (pkt.proto !== "tcp" || !tcp) return;
    this.stats.segments++;
    const a = `${pkt.src}|${pkt.srcPort}`;
    const b = `${pkt.dst}|${pkt.dstPort}`;
    const senderIsA = a <= b;
    const key = senderIsA ? `${a}|${b}` : `${b}|${a}`;
    const syn = (tcp.flags & TcpFlag.SYN) !== 0;
    const ack = (tcp.flags & TcpFlag.ACK) !== 0;

    let st = this.table.get(key);
    if (st && syn && !ack && st.clientIsn !== undefined && st.clientIsn !== tcp.seq && senderIsA === st.clientIsA) {
      // A new SYN with a different ISN on the same 4-tuple: the old connection is over.
      this.close(st, "port-reused");
      st = undefined;
    } else if (st && syn && !ack && st.clientIsn === undefined && senderIsA === st.clientIsA && st.fromClient.started) {
      // Started mid-flow, then a fresh SYN from the same side: port reuse.
      this.close(st, "port-reused");
      st = undefined;
    }
    if (!st) {
      const closed = this.recentlyClosed.get(key);
      // Late segments of a closed connection, including its own SYN retransmitted after a
      // refusal (same initial sequence number), are not a new connection.
      if (closed !== undefined && time - closed.time <= TIME_WAIT_SECONDS && (!syn || (!ack && closed.clientIsn === tcp.seq))) {
        this.stats.lateSegments++;
        return;
      }
    }
    if (!st && tcp.flags & TcpFlag.RST) {
      this.stats.strayResets++;
      return;
    }
    if (!st) this.recentlyClosed.delete(key);
    if (!st) {
      st = this.open(pkt, key, senderIsA, syn, ack, time);
    } else {
      // Keep Map order = recency for eviction.
      this.table.delete(key);
      this.table.set(key, st);
    }
    const conn = st.conn;
    conn.lastTime = Math.max(conn.lastTime, time);
    const fromClient = senderIsA === st.clientIsA;
    const dir: Direction = fromClient ? "fromClient" : "fromServer";
    const half = fromClient ? st.fromClient : st.fromServer;

    if (syn) {
      if (fromClient && !ack) st.clientIsn ??= tcp.seq;
      if (!half.started) {
        half.started = true;
        half.nextSeq = (tcp.seq + 1) >>> 0;
      }
    }
    if (tcp.flags & TcpFlag.RST) {
      // Text an RST may carry (RFC 1122 §4.2.2.12) is diagnostic, not stream data.
      this.close(st, "rst");
      return;
    }
    const dataSeq = syn ? (tcp.seq + 1) >>> 0 : tcp.seq;
    if (!half.started) {
      half.started = true;
      half.nextSeq = dataSeq;
    }
    if (pkt.payload.length > 0) this.accept(st, dir, half, dataSeq, pkt.payload);
    // Bytes the segment carried but the capture cut off (snap length, first IP fragment) will
    // never arrive: if the stream has reached them, skip them now instead of waiting.
    const missing = pkt.payloadLength - pkt.payload.length;
    if (missing > 0 && !half.finished && half.nextSeq === ((dataSeq + pkt.payload.length) >>> 0)) {
      half.nextSeq = (half.nextSeq + missing) >>> 0;
      conn.gapBytes += missing;
      this.stats.gapBytes += missing;
      this.callbacks.onGap?.(conn, dir, missing);
      this.drain(st, dir, half);
    }
    if (tcp.flags & TcpFlag.FIN) {
      half.finSeq ??= (dataSeq + pkt.payload.length) >>> 0;
      // A FIN past a hole waits: the missing bytes may still be retransmitted.
      if (seqDiff(half.finSeq, half.nextSeq) <= 0) half.finished = true;
    }
    if (st.fromClient.finished && st.fromServer.finished) this.close(st, "fin");
  }

  /** Closes every connection still open (end of capture), oldest activity first. */
  flush(): void {
    for (const st of [...this.table.values()]) this.close(st, "end-of-capture");
  }

  private open(pkt: DecodedPacket, key: string, senderIsA: boolean, syn: boolean, ack: boolean, time: number): ConnState {
    if (this.table.size >= this.limits.maxConnections) {
      const oldest = this.table.values().next().value as ConnState;
      this.stats.evictedConnections++;
      this.close(oldest, "evicted");
    }
    let senderIsClient: boolean;
    let roleSource: RoleSource;
    if (syn && !ack) [senderIsClient, roleSource] = [true, "syn"];
    else if (syn && ack) [senderIsClient, roleSource] = [false, "syn-ack"];
    else {
      const sp = pkt.srcPort;
      const dp = pkt.dstPort;
      if ((sp < 1024) !== (dp < 1024)) [senderIsClient, roleSource] = [dp < 1024, "port-heuristic"];
      else if (isEphemeral(sp) !== isEphemeral(dp)) [senderIsClient, roleSource] = [isEphemeral(sp), "port-heuristic"];
      else if (sp !== dp) [senderIsClient, roleSource] = [dp < sp, "port-heuristic"];
      else [senderIsClient, roleSource] = [true, "first-packet"];
    }
    const sender: TcpEndpoint = { ip: pkt.src, ipBytes: pkt.srcIp.slice(), port: pkt.srcPort };
    const receiver: TcpEndpoint = { ip: pkt.dst, ipBytes: pkt.dstIp.slice(), port: pkt.dstPort };
    const conn: TcpConnection = {
      id: this.nextId++,
      client: senderIsClient ? sender : receiver,
      server: senderIsClient ? receiver : sender,
      ipVersion: pkt.ipVersion, roleSource, firstTime: time, lastTime: time,
      bytesFromClient: 0, bytesFromServer: 0, gapBytes: 0, closeReason: undefined,
    };
    const st: ConnState = {
      conn, key, clientIsA: senderIsClient === senderIsA, clientIsn: undefined,
      fromClient: new HalfStream(), fromServer: new HalfStream(),
    };
    this.table.set(key, st);
    this.stats.connectionsOpened++;
    this.callbacks.onOpen?.(conn);
    return st;
  }

  private accept(st: ConnState, dir: Direction, half: HalfStream, seq: number, payload: Uint8Array): void {
    if (half.finished) {
      this.stats.retransmittedBytes += payload.length;
      return;
    }
    const off = seqDiff(seq, half.nextSeq);
    if (off + payload.length <= 0) {
      this.stats.retransmittedBytes += payload.length;
      return;
    }
    if (off <= 0) {
      if (off < 0) this.stats.retransmittedBytes += -off;
      this.deliver(st, dir, half, payload.subarray(-off));
      this.drain(st, dir, half);
      return;
    }
    if (off > MAX_SEQ_JUMP) {
      this.stats.droppedSegmentsOutOfWindow++;
      return;
    }
    this.stats.outOfOrderSegments++;
    // Make room: within the connection, skip the oldest hole; in total, drop this segment. The
    // segment count is bounded too, so crafted floods of tiny segments stay linear.
    while ((this.connBuffered(st) + payload.length > this.limits.maxBufferedBytesPerConnection || half.pending.length >= MAX_PENDING_SEGMENTS) && half.pending.length > 0) {
      this.skipHole(st, dir, half);
      // Skipping may have made this segment in-order or old.
      if (seqDiff(seq, half.nextSeq) <= 0) {
        this.accept(st, dir, half, seq, payload);
        return;
      }
    }
    const other = half === st.fromClient ? st.fromServer : st.fromClient;
    while (this.connBuffered(st) + payload.length > this.limits.maxBufferedBytesPerConnection && other.pending.length > 0) {
      this.skipHole(st, dir === "fromClient" ? "fromServer" : "fromClient", other);
    }
    if (payload.length > this.limits.maxBufferedBytesPerConnection || this.stats.bufferedBytes + payload.length > this.limits.maxBufferedBytesTotal) {
      this.stats.droppedSegmentsBufferLimit++;
      return;
    }
    const seg: PendingSegment = { seq, bytes: payload.slice() };
    let i = half.pending.length;
    while (i > 0 && seqDiff(half.pending[i - 1]!.seq, seq) > 0) i--;
    half.pending.splice(i, 0, seg);
    half.pendingBytes += payload.length;
    this.stats.bufferedBytes += payload.length;
  }

  private connBuffered(st: ConnState): number {
    return st.fromClient.pendingBytes + st.fromServer.pendingBytes;
  }

  private deliver(st: ConnState, dir: Direction, half: HalfStream, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    let out = bytes;
    // Bytes past a FIN are not stream data.
    if (half.finSeq !== undefined) {
      const room = seqDiff(half.finSeq, half.nextSeq);
      if (room <= 0) return;
      if (out.length > room) out = out.subarray(0, room);
    }
    half.nextSeq = (half.nextSeq + out.length) >>> 0;
    if (dir === "fromClient") st.conn.bytesFromClient += out.length;
    else st.conn.bytesFromServer += out.length;
    this.callbacks.onData?.(st.conn, dir, out);
    if (half.finSeq !== undefined && seqDiff(half.finSeq, half.nextSeq) <= 0) half.finished = true;
  }

  /** Delivers held segments that have become in-order. */
  private drain(st: ConnState, dir: Direction, half: HalfStream): void {
    while (half.pending.length > 0 && !half.finished) {
      const seg = half.pending[0]!;
      const off = seqDiff(seg.seq, half.nextSeq);
      if (off > 0) return;
      half.pending.shift();
      half.pendingBytes -= seg.bytes.length;
      this.stats.bufferedBytes -= seg.bytes.length;
      if (off + seg.bytes.length <= 0) {
        this.stats.retransmittedBytes += seg.bytes.length;
        continue;
      }
      if (off < 0) this.stats.retransmittedBytes += -off;
      this.deliver(st, dir, half, seg.bytes.subarray(-off));
    }
    if (half.finished) this.discardPending(half);
  }

  /** Gives up on the hole before the first held segment: reports it and delivers what follows. */
  private skipHole(st: ConnState, dir: Direction, half: HalfStream): void {
    const first = half.pending[0];
    if (!first) return;
    const gap = seqDiff(first.seq, half.nextSeq);
    if (gap > 0) {
      half.nextSeq = first.seq;
      st.conn.gapBytes += gap;
      this.stats.gapBytes += gap;
      this.callbacks.onGap?.(st.conn, dir, gap);
    }
    this.drain(st, dir, half);
  }

  private discardPending(half: HalfStream): void {
    this.stats.bufferedBytes -= half.pendingBytes;
    half.pending = [];
    half.pendingBytes = 0;
  }

  private close(st: ConnState, reason: CloseReason): void {
    if (!this.table.delete(st.key)) return;
    // Deliver held data past holes, so analysis sees everything that was captured.
    while (st.fromClient.pending.length > 0 && !st.fromClient.finished) this.skipHole(st, "fromClient", st.fromClient);
    while (st.fromServer.pending.length > 0 && !st.fromServer.finished) this.skipHole(st, "fromServer", st.fromServer);
    this.discardPending(st.fromClient);
    this.discardPending(st.fromServer);
    st.conn.closeReason = reason;
    this.stats.connectionsClosed++;
    if (reason === "fin" || reason === "rst") {
      this.recentlyClosed.set(st.key, { time: st.conn.lastTime, clientIsn: st.clientIsn });
      if (this.recentlyClosed.size > this.limits.maxConnections) {
        this.recentlyClosed.delete(this.recentlyClosed.keys().next().value as string);
      }
    }
    this.callbacks.onClose?.(st.conn);
  }
}

/** "ip:port" of a connection endpoint (IPv6 in brackets). */
export function endpointString(e: TcpEndpoint): string {
  return formatEndpoint(e.ip, e.port);
}
