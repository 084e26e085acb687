// The evidence TCP reassembler (control/src/pcap/tcp-strict.ts) and the DNS pipeline over it:
// #14 finding 7 (a desynchronised stream must never be re-framed), Linux's rules for resets,
// overlaps, window and checksums, per-client bounds, and properties over random segmentations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { StrictTcpReassembler, type StrictTcpLimits } from "../../../src/pcap/index.js";
import { DnsObserver, type DnsObservation } from "../../../src/dns/observer.js";
import { DnsPipeline } from "../../../src/dns/pipeline.js";
import { dnsMessage, packet, queryAndAnswer, T, tcpFramed } from "../dns-fixtures.js";

const POD = "198.18.1.10", POD2 = "198.18.1.11", RESOLVER = "198.18.0.53";
const SYN = 0x02, ACK = 0x10, PSH_ACK = 0x18, RST = 0x04;

function harness(limits: Partial<StrictTcpLimits> = {}) {
  const out = { client: [] as number[], server: [] as number[], lost: [] as string[], closed: 0 };
  const r = new StrictTcpReassembler({
    onData: (_c, dir, bytes) => (dir === "fromClient" ? out.client : out.server).push(...bytes),
    onLost: (_c, dir, reason) => out.lost.push(`${dir}:${reason}`),
    onClose: () => out.closed++,
  }, limits);
  const c = (seq: number, flags: number, payload: number[] | Uint8Array = [], o: { sport?: number; src?: string; checksum?: number } = {}) =>
    r.push(packet({ src: o.src ?? POD, dst: RESOLVER, sport: o.sport ?? 40000, dport: 53, payload: Uint8Array.from(payload), tcp: { seq, flags, ...(o.checksum !== undefined ? { checksum: o.checksum } : {}) } }), true);
  const s = (seq: number, flags: number, payload: number[] | Uint8Array = [], o: { dport?: number; dst?: string; ack?: number } = {}) =>
    r.push(packet({ src: RESOLVER, dst: o.dst ?? POD, sport: 53, dport: o.dport ?? 40000, payload: Uint8Array.from(payload), tcp: { seq, flags, ack: o.ack ?? 0 } }), false);
  const handshake = (o: { sport?: number; src?: string } = {}) => {
    c(1000, SYN, [], o);
    s(5000, SYN | ACK, [], { ack: 1001, ...(o.sport ? { dport: o.sport } : {}), ...(o.src ? { dst: o.src } : {}) });
  };
  return { r, out, c, s, handshake };
}

test("a stream is evidence only from its handshake: mid-flow segments and a SYN+ACK for another SYN are ignored", () => {
  const { r, out, c, s } = harness();
  c(1001, PSH_ACK, [1, 2, 3]);
  s(5001, PSH_ACK, [4, 5, 6]);
  assert.deepEqual([out.client, out.server], [[], []]);
  c(1000, SYN);
  s(5000, SYN | ACK, [], { ack: 777 }); // does not acknowledge this SYN
  c(1001, PSH_ACK, [1]);
  assert.deepEqual(out.client, []);
  s(5000, SYN | ACK, [], { ack: 1001 });
  c(1001, PSH_ACK, [1]);
  s(5001, PSH_ACK, [2]);
  assert.deepEqual([out.client, out.server], [[1], [2]]);
  assert.ok(r.stats.untracked >= 2);
});

test("a segment toward the pod cannot open a connection; only accepted servers are tracked", () => {
  const r = new StrictTcpReassembler({}, {}, (ip) => ip === RESOLVER);
  r.push(packet({ src: POD, dst: RESOLVER, sport: 1, dport: 53, payload: new Uint8Array(0), tcp: { seq: 1, flags: SYN } }), false);
  r.push(packet({ src: POD, dst: "198.18.0.99", sport: 1, dport: 53, payload: new Uint8Array(0), tcp: { seq: 1, flags: SYN } }), true);
  assert.equal(r.openConnections, 0);
  assert.equal(r.stats.notAccepted, 1);
});

test("a gap loses the direction for good: later bytes are never re-framed (finding 7)", () => {
  const { out, handshake, s } = harness({ maxSegmentsPerDirection: 2 });
  handshake();
  s(5001, PSH_ACK, [1, 2]);
  s(5010, PSH_ACK, [9]);
  s(5020, PSH_ACK, [9]);
  s(5030, PSH_ACK, [9]); // a third held segment: the direction gives up
  s(5003, PSH_ACK, Array.from({ length: 40 }, () => 7)); // the hole fills, too late
  assert.deepEqual(out.server, [1, 2]);
  assert.deepEqual(out.lost, ["fromServer:buffer"]);
});

test("a segment cut by the snap length loses the direction", () => {
  const { r, out, handshake } = harness();
  handshake();
  const p = packet({ src: RESOLVER, dst: POD, sport: 53, dport: 40000, payload: Uint8Array.from([1, 2, 3]), tcp: { seq: 5001, flags: PSH_ACK } });
  r.push({ ...p, payloadLength: 100 }, false);
  r.push(packet({ src: RESOLVER, dst: POD, sport: 53, dport: 40000, payload: Uint8Array.from([4]), tcp: { seq: 5101, flags: PSH_ACK } }), false);
  assert.deepEqual(out.server, []);
  assert.deepEqual(out.lost, ["fromServer:cut"]);
});

test("an RST counts only at exactly the next sequence number (RFC 5961, as Linux)", () => {
  const { r, out, handshake, c, s } = harness();
  handshake();
  s(5001, PSH_ACK, [1]);
  s(5003, RST); // in window, not exact: ignored
  s(4000, RST); // out of window
  s(5002, PSH_ACK, [2]);
  assert.deepEqual(out.server, [1, 2]);
  assert.equal(r.stats.ignoredResets, 2);
  c(1001, RST);
  assert.equal(out.closed, 1);
  assert.equal(r.openConnections, 0);
});

test("overlapping out-of-order segments resolve as Linux's out-of-order queue does", () => {
  const { out, handshake, s } = harness();
  handshake();
  // Same start: the longer segment replaces the shorter one.
  s(5011, PSH_ACK, [0xa1, 0xa2]);
  s(5011, PSH_ACK, [0xb1, 0xb2, 0xb3, 0xb4]);
  // Wholly covered by a held segment: dropped.
  s(5012, PSH_ACK, [0xc2]);
  // Starts later and overlaps: the earlier-starting segment wins the overlap.
  s(5014, PSH_ACK, [0xd4, 0xd5]);
  s(5001, PSH_ACK, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(out.server, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xb1, 0xb2, 0xb3, 0xb4, 0xd5]);
  // Delivered bytes are never replaced by a retransmission that differs.
  s(5001, PSH_ACK, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
  assert.equal(out.server.length, 15 + 1);
  assert.equal(out.server.at(-1), 9);
});

test("data beyond the window ahead is dropped, not held", () => {
  const { r, out, handshake, s } = harness({ maxWindowAhead: 1000 });
  handshake();
  s(5001 + 5000, PSH_ACK, [1]);
  s(5001, PSH_ACK, [2]);
  assert.deepEqual(out.server, [2]);
  assert.equal(r.stats.outOfWindow, 1);
  assert.equal(r.stats.bufferedBytes, 0);
});

test("a segment with a bad checksum is dropped; a checksum left to offload counts", () => {
  const { r, out, handshake, c } = harness();
  handshake();
  c(1001, PSH_ACK, [1, 2], { checksum: 0x1234 });
  assert.deepEqual(out.client, []);
  assert.equal(r.stats.badChecksums, 1);
  c(1001, PSH_ACK, [1, 2]);
  assert.deepEqual(out.client, [1, 2]);
  // CHECKSUM_PARTIAL: the field holds only the folded pseudo-header sum (src, dst, proto 6, length 22).
  const words = [198 * 256 + 18, 1 * 256 + 10, 198 * 256 + 18, 0 * 256 + 53, 6, 22];
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  c(1003, PSH_ACK, [3, 4], { checksum: sum });
  assert.deepEqual(out.client, [1, 2, 3, 4]);
});

test("one pod's connections evict only its own: another pod's stream survives a flood", () => {
  const { r, out, c, s } = harness({ maxConnectionsPerClient: 8, maxConnections: 20 });
  c(1000, SYN, [], { src: POD2, sport: 999 });
  s(5000, SYN | ACK, [], { ack: 1001, dst: POD2, dport: 999 });
  for (let i = 0; i < 500; i++) c(1000, SYN, [], { sport: 20000 + i, src: i % 3 ? POD : "198.18.1.12" });
  assert.ok(r.openConnections <= 20);
  s(5001, PSH_ACK, [42], { dst: POD2, dport: 999 });
  assert.deepEqual(out.server, [42]);
  assert.ok(r.stats.evicted > 400);
});

/** Finding 7, end to end through the pipeline: a TXT answer hides a complete A answer. */
function hiddenMessageScenario(loseASegment: boolean): DnsObservation[] {
  const seen: DnsObservation[] = [];
  let now = 1000;
  const observer = new DnsObserver({ now: () => now, trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"], onObservation: (o) => seen.push(o) });
  const pipeline = new DnsPipeline(observer, { isTrustedServer: (ip) => ip === RESOLVER });
  const c = { src: POD, dst: RESOLVER, sport: 41000, dport: 53 };
  const s = { src: RESOLVER, dst: POD, sport: 53, dport: 41000 };
  const push = (p: Parameters<typeof packet>[0], fromPod: boolean) => pipeline.push(packet(p), { time: (now += 1), fromPod });
  const allowed = queryAndAnswer("allowed.example.com", ["198.18.77.1"], { id: 2 });
  const fake = queryAndAnswer("allowed.example.com", ["198.18.66.6"], { id: 2, ttl: 604800 }).answer;
  const txtQuery = dnsMessage({ id: 1, questions: [{ name: "attacker.example", type: T.TXT }] });
  const hidden = tcpFramed(fake);
  const txtAnswer = dnsMessage({ id: 1, response: true, questions: [{ name: "attacker.example", type: T.TXT }],
    answers: [{ name: "attacker.example", type: T.TXT, data: Uint8Array.from([hidden.length, ...hidden]) }] });
  push({ ...c, payload: new Uint8Array(0), tcp: { seq: 100, flags: SYN } }, true);
  push({ ...s, payload: new Uint8Array(0), tcp: { seq: 900, ack: 101, flags: SYN | ACK } }, false);
  const queries = tcpFramed(txtQuery, allowed.query);
  push({ ...c, payload: queries, tcp: { seq: 101, flags: PSH_ACK } }, true);
  const stream = tcpFramed(txtAnswer, allowed.answer);
  const hiddenAt = 2 + txtAnswer.length - hidden.length; // where the hidden [length][message] starts
  const first = stream.subarray(0, hiddenAt), rest = stream.subarray(hiddenAt);
  if (!loseASegment) push({ ...s, payload: first, tcp: { seq: 901, flags: PSH_ACK } }, false);
  // With the first segment lost, the capture resumes exactly at the hidden message.
  push({ ...s, payload: rest, tcp: { seq: 901 + hiddenAt, flags: PSH_ACK } }, false);
  pipeline.flush();
  return seen;
}

test("finding 7: after a lost segment, a hidden message inside a TXT answer is never taken for the resolver's answer", () => {
  const seen = hiddenMessageScenario(true);
  assert.deepEqual(seen.filter((o) => o.qname === "allowed.example.com"), []);
});

test("finding 7 benign twin: the same stream captured whole gives both real answers, never the hidden one", () => {
  const seen = hiddenMessageScenario(false);
  assert.deepEqual(seen.map((o) => o.qname), ["attacker.example", "allowed.example.com"]);
  assert.deepEqual(seen[1]!.answers.map((a) => a.data), ["198.18.77.1"]);
});

test("property: any segmentation, reordering and duplication of a whole stream delivers it exactly; a loss delivers a prefix and nothing after", async () => {
  const fc = (await import("fast-check")).default;
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 1, maxLength: 300 }),
    fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
    fc.array(fc.nat(), { maxLength: 30 }),
    fc.option(fc.nat(), { nil: undefined }),
    (stream, cuts, shuffle, lose) => {
      const segs: [number, Uint8Array][] = [];
      for (let at = 0, i = 0; at < stream.length; i++) {
        const n = cuts[i % cuts.length]!;
        segs.push([at, stream.subarray(at, at + n)]);
        at += n;
      }
      const lost = lose !== undefined && segs.length > 1 ? lose % segs.length : -1;
      const order = segs.map((_, i) => i).filter((i) => i !== lost);
      for (let k = 0; k < shuffle.length && order.length > 1; k++) {
        const a = shuffle[k]! % order.length, b = (shuffle[k]! >> 3) % order.length;
        [order[a], order[b]] = [order[b]!, order[a]!];
      }
      if (shuffle.length > 0 && order.length > 0) order.push(order[shuffle[0]! % order.length]!); // a duplicate
      const { out, handshake, s } = harness({ maxSegmentsPerDirection: 1024 });
      handshake();
      for (const i of order) s(5001 + segs[i]![0], PSH_ACK, segs[i]![1]);
      const got = Uint8Array.from(out.server);
      if (lost < 0) assert.deepEqual(got, stream);
      else {
        assert.ok(got.length <= segs[lost]![0], "nothing past the lost segment is delivered");
        assert.deepEqual(got, stream.subarray(0, got.length));
      }
    }), { numRuns: 400 });
});
