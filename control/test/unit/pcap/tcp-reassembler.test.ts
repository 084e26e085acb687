import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeFrame, TcpReassembler, type Direction, type TcpConnection, type TcpReassemblerLimits } from "../../../src/pcap/index.js";
import { tcp4Frame, type TcpOpts } from "./builders.js";

const C = "198.18.0.1";
const S = "198.18.0.2";
const SYN = 0x02, ACK = 0x10, FIN = 0x01, RST = 0x04, PSH = 0x08;

/** Records what the reassembler reports, as text per connection. */
function harness(limits: Partial<TcpReassemblerLimits> = {}) {
  const events: string[] = [];
  const streams = new Map<number, { conn: TcpConnection; fromClient: number[]; fromServer: number[] }>();
  const r = new TcpReassembler({
    onOpen: (conn) => { streams.set(conn.id, { conn, fromClient: [], fromServer: [] }); events.push(`open ${conn.id}`); },
    onData: (conn, dir: Direction, bytes) => { streams.get(conn.id)![dir].push(...bytes); events.push(`data ${conn.id} ${dir} ${bytes.length}`); },
    onGap: (conn, dir, n) => events.push(`gap ${conn.id} ${dir} ${n}`),
    onClose: (conn) => events.push(`close ${conn.id} ${conn.closeReason}`),
  }, limits);
  let t = 0;
  const send = (fromClient: boolean, payload: number[] | string, o: TcpOpts) => {
    const bytes = typeof payload === "string" ? [...new TextEncoder().encode(payload)] : payload;
    const frame = fromClient ? tcp4Frame(C, 40000, S, 5432, bytes, o) : tcp4Frame(S, 5432, C, 40000, bytes, o);
    r.push(decodeFrame(1, frame)!, ++t);
  };
  const text = (id: number, dir: Direction) => new TextDecoder().decode(Uint8Array.from(streams.get(id)![dir]));
  return { r, events, streams, send, text };
}

function handshake(h: ReturnType<typeof harness>, cisn = 1000, sisn = 5000) {
  h.send(true, [], { seq: cisn, flags: SYN });
  h.send(false, [], { seq: sisn, ack: cisn + 1, flags: SYN | ACK });
  h.send(true, [], { seq: cisn + 1, ack: sisn + 1, flags: ACK });
}

test("delivers both directions in order and closes on FIN from both sides", () => {
  const h = harness();
  handshake(h);
  h.send(true, "hello ", { seq: 1001, flags: ACK | PSH });
  h.send(true, "world", { seq: 1007, flags: ACK | PSH });
  h.send(false, "ok", { seq: 5001, flags: ACK | PSH });
  h.send(true, [], { seq: 1012, flags: ACK | FIN });
  h.send(false, [], { seq: 5003, flags: ACK | FIN });
  assert.equal(h.text(1, "fromClient"), "hello world");
  assert.equal(h.text(1, "fromServer"), "ok");
  const conn = h.streams.get(1)!.conn;
  assert.equal(conn.client.ip, C);
  assert.equal(conn.server.port, 5432);
  assert.equal(conn.roleSource, "syn");
  assert.equal(h.events.at(-1), "close 1 fin");
  assert.equal(h.r.openConnections, 0);
});

test("reorders out-of-order segments and trims retransmissions and overlaps first-wins", () => {
  const h = harness();
  handshake(h);
  h.send(true, "CDEF", { seq: 1003, flags: ACK });
  h.send(true, "GH", { seq: 1007, flags: ACK });
  h.send(true, "AB", { seq: 1001, flags: ACK });
  h.send(true, "ABCxyz", { seq: 1001, flags: ACK }); // retransmission with different bytes: ignored
  h.send(true, "HIJ", { seq: 1008, flags: ACK }); // overlaps one byte
  assert.equal(h.text(1, "fromClient"), "ABCDEFGHIJ");
  assert.equal(h.r.stats.outOfOrderSegments, 2);
  assert.ok(h.r.stats.retransmittedBytes >= 7);
  assert.equal(h.r.stats.bufferedBytes, 0);
});

test("handles sequence number wrap-around", () => {
  const h = harness();
  handshake(h, 0xfffffffd);
  h.send(true, "wrap", { seq: 0xfffffffe, flags: ACK });
  h.send(true, "ped", { seq: 2, flags: ACK });
  assert.equal(h.text(1, "fromClient"), "wrapped");
});

test("capture starting mid-flow: roles from the ports, streams from the first segment", () => {
  const h = harness();
  h.send(false, "server first", { seq: 77, flags: ACK }); // 5432 → 40000
  h.send(true, "client", { seq: 9, flags: ACK });
  const conn = h.streams.get(1)!.conn;
  assert.equal(conn.roleSource, "port-heuristic");
  assert.equal(conn.client.port, 40000);
  assert.equal(h.text(1, "fromServer"), "server first");
  assert.equal(h.text(1, "fromClient"), "client");
});

test("SYN+ACK seen without the SYN makes its sender the server", () => {
  const h = harness();
  h.send(false, [], { seq: 10, ack: 1, flags: SYN | ACK });
  h.send(true, "x", { seq: 1, flags: ACK });
  assert.equal(h.streams.get(1)!.conn.roleSource, "syn-ack");
  assert.equal(h.streams.get(1)!.conn.client.port, 40000);
  assert.equal(h.text(1, "fromClient"), "x");
});

test("RST closes at once after delivering held data past the hole; stray RSTs are ignored", () => {
  const h = harness();
  h.send(true, [], { seq: 1, flags: RST });
  assert.equal(h.r.stats.strayResets, 1);
  assert.equal(h.events.length, 0);
  handshake(h);
  h.send(true, "late", { seq: 1010, flags: ACK });
  h.send(false, [], { seq: 5001, flags: RST | ACK });
  assert.deepEqual(h.events.slice(-3), ["gap 1 fromClient 9", "data 1 fromClient 4", "close 1 rst"]);
});

test("a new SYN with another ISN on the same 4-tuple starts a new connection", () => {
  const h = harness();
  handshake(h, 100);
  h.send(true, "one", { seq: 101, flags: ACK });
  handshake(h, 90000);
  h.send(true, "two", { seq: 90001, flags: ACK });
  h.send(true, [], { seq: 100, flags: SYN }); // retransmitted SYN of the *current* conn? no: another ISN again
  assert.ok(h.events.includes("close 1 port-reused"));
  assert.equal(h.text(1, "fromClient"), "one");
  assert.equal(h.text(2, "fromClient"), "two");
});

test("per-connection buffer limit skips the oldest hole, reporting the gap", () => {
  const h = harness({ maxBufferedBytesPerConnection: 10 });
  handshake(h);
  h.send(true, "0123456", { seq: 1011, flags: ACK }); // hole of 10 bytes before it
  h.send(true, "abcdef", { seq: 1030, flags: ACK }); // exceeds 10 held bytes → skip first hole
  assert.equal(h.text(1, "fromClient"), "0123456");
  assert.ok(h.events.includes("gap 1 fromClient 10"));
  h.r.flush();
  assert.equal(h.text(1, "fromClient"), "0123456abcdef");
  assert.equal(h.r.stats.gapBytes, 10 + 12);
  assert.equal(h.r.stats.bufferedBytes, 0);
});

test("total buffer limit drops further out-of-order segments (counted)", () => {
  const h = harness({ maxBufferedBytesTotal: 8 });
  handshake(h);
  h.send(true, "abcdef", { seq: 1101, flags: ACK });
  h.send(true, "ghijkl", { seq: 1201, flags: ACK });
  assert.equal(h.r.stats.droppedSegmentsBufferLimit, 1);
  assert.equal(h.r.stats.bufferedBytes, 6);
});

test("connection limit evicts the least recently active connection", () => {
  const events: string[] = [];
  const r = new TcpReassembler({ onClose: (c) => events.push(`${c.client.port} ${c.closeReason}`) }, { maxConnections: 2 });
  for (const [port, t] of [[1001, 1], [1002, 2], [1001, 3], [1003, 4]] as const) {
    r.push(decodeFrame(1, tcp4Frame(C, port, S, 80, [1], { seq: t, flags: ACK }))!, t);
  }
  assert.deepEqual(events, ["1002 evicted"]);
  assert.equal(r.stats.evictedConnections, 1);
  assert.equal(r.openConnections, 2);
});

test("rejects non-positive limits", () => {
  assert.throws(() => new TcpReassembler({}, { maxConnections: 0 }), RangeError);
});

test("property: any segmentation, reordering and duplication reassembles the exact stream", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.array(fc.integer({ min: 1, max: 299 }), { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      (data, cutsRaw, shuffle, isn) => {
        const cuts = [...new Set(cutsRaw.filter((c) => c < data.length))].sort((a, b) => a - b);
        const bounds = [0, ...cuts, data.length];
        const segs = bounds.slice(0, -1).map((s, i) => ({ off: s, bytes: data.subarray(s, bounds[i + 1]) }));
        // Deliver in a shuffled order with duplicates: the random draws pick segments.
        const order = [...segs, ...shuffle.map((n) => segs[n % segs.length]!)];
        for (let i = order.length - 1; i > 0; i--) {
          const j = (shuffle[i % Math.max(1, shuffle.length)] ?? i) % (i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        const got: number[] = [];
        const r = new TcpReassembler({ onData: (_c, dir, b) => { if (dir === "fromClient") got.push(...b); } });
        r.push(decodeFrame(1, tcp4Frame(C, 40000, S, 443, [], { seq: isn, flags: SYN }))!, 0);
        for (const s of order) r.push(decodeFrame(1, tcp4Frame(C, 40000, S, 443, s.bytes, { seq: (isn + 1 + s.off) >>> 0, flags: ACK }))!, 1);
        r.flush();
        assert.deepEqual(Uint8Array.from(got), data);
        assert.equal(r.stats.gapBytes, 0);
        assert.equal(r.stats.bufferedBytes, 0);
      },
    ),
    { numRuns: 400 },
  );
});

test("property: deterministic — the same packets give the same callbacks", () => {
  fc.assert(
    fc.property(fc.array(fc.record({ c: fc.boolean(), seq: fc.integer({ min: 0, max: 64 }), len: fc.integer({ min: 0, max: 8 }), flags: fc.constantFrom(SYN, ACK, ACK | FIN, RST, SYN | ACK, ACK | PSH) }), { maxLength: 40 }), (pkts) => {
      const run = () => {
        const h = harness({ maxBufferedBytesPerConnection: 16 });
        for (const p of pkts) h.send(p.c, new Array(p.len).fill(p.seq & 0xff), { seq: p.seq, flags: p.flags });
        h.r.flush();
        assert.equal(h.r.stats.bufferedBytes, 0);
        return h.events.join("\n");
      };
      assert.equal(run(), run());
    }),
    { numRuns: 300 },
  );
});

test("a segment cut by the snap length reports the lost tail at once and the stream goes on", () => {
  const events: string[] = [];
  const got: number[] = [];
  const r = new TcpReassembler({
    onGap: (_c, dir, n) => events.push(`gap ${dir} ${n}`),
    onData: (_c, dir, b) => { if (dir === "fromClient") got.push(...b); },
  });
  r.push(decodeFrame(1, tcp4Frame(C, 40000, S, 80, [], { seq: 99, flags: SYN }))!, 0);
  const full = tcp4Frame(C, 40000, S, 80, new Array(100).fill(0x61), { seq: 100, flags: ACK });
  r.push(decodeFrame(1, full.subarray(0, full.length - 60))!, 1); // 40 of 100 payload bytes captured
  r.push(decodeFrame(1, tcp4Frame(C, 40000, S, 80, [0x62, 0x63], { seq: 200, flags: ACK }))!, 2);
  assert.deepEqual(events, ["gap fromClient 60"]);
  assert.equal(got.length, 42);
  assert.deepEqual(got.slice(-2), [0x62, 0x63]);
  assert.equal(r.stats.bufferedBytes, 0);
});

test("the final ACK and late retransmissions after a close do not open a phantom connection", () => {
  const h = harness();
  handshake(h);
  h.send(true, "A", { seq: 1001, flags: ACK | PSH });
  h.send(true, [], { seq: 1002, flags: ACK | FIN });
  h.send(false, [], { seq: 5001, ack: 1003, flags: ACK | FIN });
  h.send(true, [], { seq: 1003, ack: 5002, flags: ACK }); // last ACK
  h.send(true, "A", { seq: 1001, flags: ACK | PSH }); // late retransmission
  h.r.flush();
  assert.deepEqual(h.events.filter((e) => e.startsWith("open") || e.startsWith("close")), ["open 1", "close 1 fin"]);
  assert.equal(h.r.stats.lateSegments, 2);
  handshake(h, 7000); // a real new connection on the same 4-tuple
  assert.ok(h.events.includes("open 2"));
});

test("a refused SYN retried with the same ISN stays one connection attempt", () => {
  const h = harness();
  for (let i = 0; i < 3; i++) {
    h.send(true, [], { seq: 777, flags: SYN });
    h.send(false, [], { seq: 0, ack: 778, flags: RST | ACK });
  }
  assert.deepEqual(h.events, ["open 1", "close 1 rst"]);
  assert.equal(h.r.stats.lateSegments, 4);
});

test("a flood of tiny out-of-order segments stays bounded in count", () => {
  const h = harness();
  handshake(h);
  // 3000 one-byte segments, each after a one-byte hole: at most 1024 are held at a time.
  for (let i = 0; i < 3000; i++) h.send(true, [0x41], { seq: 1001 + 2 * i + 1, flags: ACK });
  assert.ok(h.r.stats.gapBytes >= 3000 - 1024, `gaps ${h.r.stats.gapBytes}`);
  h.r.flush();
  assert.equal(h.text(1, "fromClient").length, 3000);
  assert.equal(h.r.stats.bufferedBytes, 0);
});
