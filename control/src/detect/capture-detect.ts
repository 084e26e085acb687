// Detects the application protocol of every TCP connection in a capture: reassembles each
// connection and feeds both directions, in capture order, to the detector compiled into
// egret.wasm — the same feeding order the filter sees (client bytes as they arrive, server bytes
// as they arrive). Connections whose start was not captured are run in the detector's midstream
// mode; a direction with a hole stops being fed (what follows a hole is not its beginning), and a
// connection left "unknown" with a lost or one-sided direction is judged again in midstream mode.
import { decodeCapture, formatEndpoint, TcpReassembler, type DropCounts, type TcpConnection } from "../pcap/index.js";
import { DetectorEngine, PROTO_NEED_MORE, type DetectedClaims, type DetectionSession } from "./wasm-detector.js";

export interface ConnectionDetection {
  client: string;
  server: string;
  protocol: string;
  claims: DetectedClaims;
  /** How client/server roles were assigned (see control/src/pcap/README.md). */
  roleSource: TcpConnection["roleSource"];
  bytesFromClient: number;
  bytesFromServer: number;
  firstTime: number;
}

export interface CaptureDetection {
  connections: ConnectionDetection[];
  captureErrors: number;
  captureLastError: string | undefined;
  drops: DropCounts;
  reassembly: TcpReassembler["stats"];
}

interface Tracked {
  /** Open only while undecided: a detector is taken from the pool at the first byte and
   * returned as soon as it answers, so only undecided connections hold one. */
  session: DetectionSession | undefined;
  /** The answer once decided (protocol id and claims). */
  decided: { id: number; claims: DetectedClaims } | undefined;
  midstream: boolean;
  clientBroken: boolean;
  serverBroken: boolean;
  index: number;
  /** The bytes fed, in order, kept for a midstream replay (bounded by REPLAY_BYTES per direction). */
  replay: { fromServer: boolean; bytes: Uint8Array }[];
  replayClient: number;
  replayServer: number;
}

/**
 * Connections tracked at once: beyond it the least recently active one is closed (and judged),
 * which keeps the detector pool (~11 KiB of wasm memory each, at most 65,536) bounded.
 */
const MAX_OPEN_CONNECTIONS = 32768;

/** Per direction, more than the detector inspects (8 KiB client, 2 KiB server). */
const REPLAY_BYTES = 16384;

const NO_CLAIMS: DetectedClaims = {
  sni: null, alpn: null, tlsVersion: null, ech: false, httpHost: null, httpHostPort: null, proxyForm: null,
  connectTarget: null, connectTargetPort: null, h2Authority: null, h2Flags: 0,
};

/** Runs detection over a whole capture file's bytes. Throws CaptureFormatError for a non-capture. */
export function detectCapture(bytes: Uint8Array, engine: DetectorEngine = new DetectorEngine()): CaptureDetection {
  const drops: DropCounts = {};
  // Protocol detection over third-party captures may look inside tunnels; DNS evidence never does.
  const { reader, packets } = decodeCapture(bytes, drops, { decapsulate: true });
  const results: (ConnectionDetection | undefined)[] = [];
  const tracked = new Map<number, Tracked>();
  /** Records the session's answer and returns its detector to the pool. */
  const settle = (t: Tracked, session: DetectionSession, id: number) => {
    t.decided = { id, claims: session.claims() };
    session.close();
    t.session = undefined;
    // Decided on a protocol: the replay copy is no longer needed. An "unknown" keeps it: a
    // midstream replay may still be due at close.
    if (id !== 0) t.replay = [];
  };
  const reassembler = new TcpReassembler({
    onOpen(conn) {
      const midstream = conn.roleSource !== "syn" && conn.roleSource !== "syn-ack";
      tracked.set(conn.id, {
        session: undefined, decided: undefined, midstream, clientBroken: false, serverBroken: false, index: results.length,
        replay: [], replayClient: 0, replayServer: 0,
      });
      results.push(undefined);
    },
    onData(conn, dir, data) {
      const t = tracked.get(conn.id);
      if (!t) return;
      const fromServer = dir === "fromServer";
      if (fromServer ? t.serverBroken : t.clientBroken) return;
      if (t.decided && t.decided.id !== 0) return;
      const room = REPLAY_BYTES - (fromServer ? t.replayServer : t.replayClient);
      if (room > 0) {
        const kept = data.slice(0, room);
        t.replay.push({ fromServer, bytes: kept });
        if (fromServer) t.replayServer += kept.length;
        else t.replayClient += kept.length;
      }
      if (t.decided) return;
      const session = (t.session ??= engine.open(t.midstream));
      const id = fromServer ? session.feedServer(data) : session.feedClient(data);
      if (id !== PROTO_NEED_MORE) settle(t, session, id);
    },
    onGap(conn, dir) {
      const t = tracked.get(conn.id);
      if (!t) return;
      if (dir === "fromClient") t.clientBroken = true;
      else t.serverBroken = true;
    },
    onClose(conn) {
      const t = tracked.get(conn.id);
      if (!t) return;
      tracked.delete(conn.id);
      if (!t.decided) {
        if (t.session) settle(t, t.session, t.session.expire());
        else t.decided = { id: 0, claims: NO_CLAIMS };
      }
      let decided = t.decided!;
      // The capture lost a direction's beginning (one-sided capture, hole): judge the bytes again
      // as mid-connection traffic, as for captures that start mid-flow.
      const partial = t.clientBroken || t.serverBroken || conn.bytesFromClient === 0 || conn.bytesFromServer === 0;
      if (decided.id === 0 && !t.midstream && partial && t.replay.length > 0) {
        const session = engine.open(true);
        for (const chunk of t.replay) {
          if (session.done) break;
          if (chunk.fromServer) session.feedServer(chunk.bytes);
          else session.feedClient(chunk.bytes);
        }
        decided = { id: session.expire(), claims: session.claims() };
        session.close();
      }
      t.replay = [];
      results[t.index] = {
        client: formatEndpoint(conn.client.ip, conn.client.port),
        server: formatEndpoint(conn.server.ip, conn.server.port),
        protocol: engine.protocolName(decided.id),
        claims: decided.claims,
        roleSource: conn.roleSource,
        bytesFromClient: conn.bytesFromClient,
        bytesFromServer: conn.bytesFromServer,
        firstTime: conn.firstTime,
      };
    },
  }, { maxConnections: MAX_OPEN_CONNECTIONS });
  for (const { time, packet } of packets) reassembler.push(packet, time);
  reassembler.flush();
  return {
    connections: results.filter((r): r is ConnectionDetection => r !== undefined),
    captureErrors: reader.errors,
    captureLastError: reader.lastError,
    drops,
    reassembly: reassembler.stats,
  };
}

/** The JSON object `egret detect --json` prints for one connection. */
export function detectionJson(c: ConnectionDetection): Record<string, unknown> {
  const target = c.claims.connectTarget === null ? null
    : c.claims.connectTargetPort === null ? c.claims.connectTarget
    : formatEndpoint(c.claims.connectTarget, c.claims.connectTargetPort);
  return {
    client: c.client,
    server: c.server,
    protocol: c.protocol,
    sni: c.claims.sni,
    alpn: c.claims.alpn,
    // HTTP/2's :authority is the request's host (RFC 9113 §8.3.1).
    http_host: c.claims.httpHost ?? c.claims.h2Authority,
    connect_target: target,
  };
}
