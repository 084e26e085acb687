// One peer cannot starve the others: what one source address may hold on this replica — open
// streams (Watch, Observe, Report), waiting Lookups, HTTP/2 connections — and how it may use a
// connection (message size, keepalive pings). A pod can reach control's port and is root in its
// container, so every limit is per peer IP, counted when hit
// (`egret_control_peer_limit_exceeded_total{limit}`), and mapped through the error catalogue.
import type * as http2 from "node:http2";
import { ControlError } from "./errors.js";
import { canonicalIp } from "./pods.js";

export interface PeerLimits {
  /** Open Watch + Observe + Report streams per peer IP (a pod's sidecar needs a handful). */
  maxStreamsPerPeer: number;
  /** Lookups waiting at once per peer IP. */
  maxLookupsPerPeer: number;
  /** HTTP/2 connections per peer IP (extra ones are closed at once). */
  maxConnectionsPerPeer: number;
  /** Largest request message accepted (bytes); larger ones end the call RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** A PING sooner than this after the previous one on a connection is a strike (no client of ours pings). */
  minPingIntervalMs: number;
  /** Strikes allowed per connection; one more closes it (GOAWAY ENHANCE_YOUR_CALM, as gRPC servers do). */
  maxPingStrikes: number;
}

export const DEFAULT_PEER_LIMITS: PeerLimits = {
  maxStreamsPerPeer: 64,
  maxLookupsPerPeer: 256,
  maxConnectionsPerPeer: 32,
  maxMessageBytes: 4 * 1024 * 1024,
  minPingIntervalMs: 10_000,
  maxPingStrikes: 2,
};

export type PeerLimitKind = "streams" | "lookups" | "connections" | "message_size" | "keepalive";

/** HTTP/2 GOAWAY error code ENHANCE_YOUR_CALM (RFC 9113 §7). */
const ENHANCE_YOUR_CALM = 0xb;

export class PeerLimiter {
  private readonly streams = new Map<string, number>();
  private readonly lookups = new Map<string, number>();
  private readonly connections = new Map<string, number>();

  constructor(
    readonly limits: PeerLimits,
    private readonly onExceeded: (kind: PeerLimitKind, peer: string) => void,
  ) {}

  /** Takes a stream slot for `peer`; returns its release (idempotent). Throws EGRET_PEER_TOO_MANY_STREAMS. */
  openStream(peer: string): () => void {
    return this.take(this.streams, peer, this.limits.maxStreamsPerPeer, "streams", "EGRET_PEER_TOO_MANY_STREAMS");
  }

  /** Takes a Lookup slot for `peer`; returns its release (idempotent). Throws EGRET_PEER_TOO_MANY_LOOKUPS. */
  startLookup(peer: string): () => void {
    return this.take(this.lookups, peer, this.limits.maxLookupsPerPeer, "lookups", "EGRET_PEER_TOO_MANY_LOOKUPS");
  }

  /** Open streams / waiting Lookups / connections of `peer` now (tests, /status). */
  held(peer: string): { streams: number; lookups: number; connections: number } {
    return { streams: this.streams.get(peer) ?? 0, lookups: this.lookups.get(peer) ?? 0, connections: this.connections.get(peer) ?? 0 };
  }

  /** Counts a message over maxMessageBytes (refused by grpc-js before it reaches a handler). */
  messageTooLarge(peer: string): void {
    this.onExceeded("message_size", peer);
  }

  /**
   * Watches one HTTP/2 connection: closes it when its peer already holds maxConnectionsPerPeer,
   * and when it pings more often than allowed (keepalive abuse).
   */
  guardSession(session: http2.ServerHttp2Session): void {
    const peer = canonicalRemote(session.socket?.remoteAddress);
    if (peer === undefined) return;
    const n = (this.connections.get(peer) ?? 0) + 1;
    if (n > this.limits.maxConnectionsPerPeer) {
      this.onExceeded("connections", peer);
      session.goaway(ENHANCE_YOUR_CALM);
      session.destroy();
      return;
    }
    this.connections.set(peer, n);
    session.once("close", () => this.release(this.connections, peer));
    let lastPing = -Infinity;
    let strikes = 0;
    session.on("stream", () => (strikes = 0));
    session.on("ping", () => {
      const now = performance.now();
      if (now - lastPing < this.limits.minPingIntervalMs) strikes++;
      lastPing = now;
      if (strikes <= this.limits.maxPingStrikes) return;
      this.onExceeded("keepalive", peer);
      session.goaway(ENHANCE_YOUR_CALM, 0, Buffer.from("too_many_pings"));
      session.destroy();
    });
  }

  private take(map: Map<string, number>, peer: string, max: number, kind: PeerLimitKind, code: "EGRET_PEER_TOO_MANY_STREAMS" | "EGRET_PEER_TOO_MANY_LOOKUPS"): () => void {
    const n = map.get(peer) ?? 0;
    if (n >= max) {
      this.onExceeded(kind, peer);
      throw new ControlError(code, `${peer} holds ${n}`);
    }
    map.set(peer, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release(map, peer);
    };
  }

  private release(map: Map<string, number>, peer: string): void {
    const n = (map.get(peer) ?? 1) - 1;
    if (n <= 0) map.delete(peer);
    else map.set(peer, n);
  }
}

/** The socket's remote address as the same canonical IP text the gRPC calls' peers become. */
function canonicalRemote(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return canonicalIp(mapped ? mapped[1]! : address);
}
