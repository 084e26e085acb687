// Unit tests of the evidence rules (control/src/dns/observer.ts) and DNS-over-TCP framing
// (pipeline.ts), driven with built messages and an injected clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DnsObserver, type DnsMessageMeta, type DnsObservation, type DnsObserverOptions } from "../../src/dns/observer.js";
import { DnsPipeline, TcpMessageFramer } from "../../src/dns/pipeline.js";
import { dnsMessage, packet, queryAndAnswer, T, tcpFramed } from "./dns-fixtures.js";

const POD = "198.18.1.10";
const POD2 = "198.18.1.11";
const RESOLVER = "198.18.0.53";

function setup(extra: Partial<DnsObserverOptions> = {}) {
  let now = 1_000_000;
  const seen: DnsObservation[] = [];
  const observer = new DnsObserver({
    now: () => now, trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"],
    onObservation: (o) => seen.push(o), ...extra,
  });
  const q = (payload: Uint8Array, over: Partial<DnsMessageMeta> = {}) =>
    observer.observe({ time: now, src: POD, dst: RESOLVER, srcPort: 40000, dstPort: 53, transport: "udp", ...over }, payload);
  const r = (payload: Uint8Array, over: Partial<DnsMessageMeta> = {}) =>
    observer.observe({ time: now, src: RESOLVER, dst: POD, srcPort: 53, dstPort: 40000, transport: "udp", ...over }, payload);
  return { observer, seen, q, r, advance: (ms: number) => { now += ms; } };
}

test("accepts an answer to the pod's own query, once", () => {
  const { observer, seen, q, r } = setup();
  const { query, answer } = queryAndAnswer("api.example.com", ["198.18.5.1", "198.18.5.2"], { ttl: 120 });
  assert.equal(q(query), "query");
  const obs = r(answer) as DnsObservation;
  assert.equal(typeof obs, "object");
  assert.equal(obs.podIp, POD);
  assert.equal(obs.resolver, RESOLVER);
  assert.equal(obs.qname, "api.example.com");
  assert.equal(obs.negative, false);
  assert.deepEqual(obs.answers.map((a) => [a.name, a.type, a.ttl, a.data]), [
    ["api.example.com", "A", 120, "198.18.5.1"], ["api.example.com", "A", 120, "198.18.5.2"],
  ]);
  assert.equal(seen.length, 1);
  // The same bytes again (a second interface): a duplicate, not a second observation.
  assert.equal(r(answer), "duplicate");
  // A different answer to the answered query.
  assert.equal(r(queryAndAnswer("api.example.com", ["203.0.113.9"]).answer), "already-answered");
  assert.equal(observer.stats.accepted, 1);
  assert.equal(observer.pendingCount, 0);
});

test("rejects unsolicited, mismatched id, port and question", () => {
  const { observer, seen, q, r } = setup();
  const { query, answer } = queryAndAnswer("api.example.com", ["198.18.5.1"], { id: 100 });
  assert.equal(r(answer), "unsolicited");
  q(query);
  assert.equal(r(queryAndAnswer("api.example.com", ["198.18.6.6"], { id: 101 }).answer), "mismatched-id");
  assert.equal(r(answer, { dstPort: 40001 }), "mismatched-port");
  assert.equal(r(answer, { srcPort: 5353 }), "mismatched-port");
  assert.equal(r(queryAndAnswer("evil.example.com", ["198.18.6.6"], { id: 100 }).answer), "mismatched-question");
  assert.equal(r(queryAndAnswer("api.example.com", ["198.18.6.6"], { id: 100, type: T.AAAA }).answer, {}), "mismatched-question");
  assert.equal(r(answer, { transport: "tcp" }), "unsolicited");
  assert.equal(seen.length, 0);
  // The real answer still gets through afterwards.
  assert.equal(typeof r(answer), "object");
  assert.deepEqual(
    Object.entries(observer.stats.rejected).filter(([, n]) => n > 0),
    [["unsolicited", 2], ["mismatched-id", 1], ["mismatched-port", 2], ["mismatched-question", 2]],
  );
});

test("rejects answers from untrusted resolvers and answers sent by pods", () => {
  const { q, r, seen } = setup();
  const { query, answer } = queryAndAnswer("api.example.com", ["198.18.5.1"]);
  q(query);
  assert.equal(r(answer, { src: "198.18.0.54" }), "untrusted-resolver");
  assert.equal(r(answer, { src: POD2 }), "sent-by-pod");
  assert.equal(r(answer, { fromPod: true }), "sent-by-pod", "spoofed resolver address, but seen leaving a pod");
  assert.equal(seen.length, 0);
  assert.equal(typeof r(answer), "object");
});

test("drops queries from outside the pod CIDRs and to untrusted servers", () => {
  const { q, r, observer } = setup();
  const { query, answer } = queryAndAnswer("api.example.com", ["198.18.5.1"]);
  assert.equal(q(query, { src: "198.18.9.9" }), "query-not-from-pod");
  assert.equal(q(query, { dst: "8.8.8.8" }), "query-to-untrusted-resolver");
  assert.equal(observer.pendingCount, 0);
  assert.equal(r(answer, { src: "8.8.8.8" }), "untrusted-resolver");
});

test("matches the question case-insensitively (0x20 randomisation)", () => {
  const { q, r } = setup();
  q(dnsMessage({ id: 9, questions: [{ name: "ApI.ExAmPlE.cOm", type: T.A }] }));
  const obs = r(dnsMessage({ id: 9, response: true, questions: [{ name: "ApI.ExAmPlE.cOm", type: T.A }], answers: [{ name: "api.example.com", type: T.A, data: "198.18.5.1" }] }));
  assert.equal((obs as DnsObservation).qname, "api.example.com");
  assert.equal((obs as DnsObservation).answers.length, 1);
});

test("follows CNAME chains from the question only; ignores records off the chain", () => {
  const { q, r } = setup();
  q(dnsMessage({ id: 5, questions: [{ name: "www.example.com", type: T.A }] }));
  const obs = r(dnsMessage({
    id: 5, response: true, questions: [{ name: "www.example.com", type: T.A }],
    answers: [
      { name: "www.example.com", type: T.CNAME, data: "a.cdn.net" },
      { name: "a.cdn.net", type: T.CNAME, data: "b.cdn.net" },
      { name: "b.cdn.net", type: T.A, data: "198.18.7.1" },
      { name: "bank.example.org", type: T.A, data: "198.18.66.6" }, // not rooted at the question
      { name: "other.net", type: T.CNAME, data: "b.cdn.net" },
    ],
  })) as DnsObservation;
  assert.deepEqual(obs.cnameChain, ["a.cdn.net", "b.cdn.net"]);
  assert.deepEqual(obs.answers.map((a) => a.data), ["a.cdn.net", "b.cdn.net", "198.18.7.1"]);
  assert.equal(obs.negative, false);
});

test("a CNAME loop and an over-long chain stop cleanly", () => {
  const { q, r } = setup({ maxCnameChain: 3 });
  q(dnsMessage({ id: 6, questions: [{ name: "a.x", type: T.A }] }));
  const loop = r(dnsMessage({
    id: 6, response: true, questions: [{ name: "a.x", type: T.A }],
    answers: [{ name: "a.x", type: T.CNAME, data: "b.x" }, { name: "b.x", type: T.CNAME, data: "a.x" }],
  })) as DnsObservation;
  assert.deepEqual(loop.cnameChain, ["b.x"]);
  assert.equal(loop.negative, true);
  q(dnsMessage({ id: 7, questions: [{ name: "c0.x", type: T.A }] }));
  const long = r(dnsMessage({
    id: 7, response: true, questions: [{ name: "c0.x", type: T.A }],
    answers: [
      ...[0, 1, 2, 3, 4].map((i) => ({ name: `c${i}.x`, type: T.CNAME as number, data: `c${i + 1}.x` })),
      { name: "c5.x", type: T.A, data: "198.18.0.1" },
    ],
  })) as DnsObservation;
  assert.deepEqual(long.cnameChain, ["c1.x", "c2.x", "c3.x"]);
  assert.ok(!long.answers.some((a) => a.type === "A"), "addresses beyond the chain limit are not evidence");
});

test("records NXDOMAIN and NODATA as negative answers", () => {
  const { q, r, observer } = setup();
  q(dnsMessage({ id: 1, questions: [{ name: "nope.example", type: T.A }] }));
  const nx = r(dnsMessage({ id: 1, response: true, rcode: 3, questions: [{ name: "nope.example", type: T.A }] })) as DnsObservation;
  assert.equal(nx.negative, true);
  assert.equal(nx.rcode, 3);
  q(dnsMessage({ id: 2, questions: [{ name: "v4only.example", type: T.AAAA }] }));
  const nodata = r(dnsMessage({ id: 2, response: true, questions: [{ name: "v4only.example", type: T.AAAA }] })) as DnsObservation;
  assert.equal(nodata.negative, true);
  assert.equal(nodata.rcode, 0);
  assert.equal(observer.stats.negative, 2);
});

test("clamps TTLs and treats TTLs >= 2^31 as zero", () => {
  const { q, r } = setup({ minTtlSec: 30, maxTtlSec: 3600 });
  q(dnsMessage({ id: 3, questions: [{ name: "t.example", type: T.A }] }));
  const obs = r(dnsMessage({
    id: 3, response: true, questions: [{ name: "t.example", type: T.A }],
    answers: [1, 600, 999999, 0x80000000].map((ttl, i) => ({ name: "t.example", type: T.A, ttl, data: `198.18.0.${i + 1}` })),
  })) as DnsObservation;
  assert.deepEqual(obs.answers.map((a) => a.ttl), [30, 600, 3600, 30]);
});

test("forgets unanswered queries after the timeout, by the injected clock", () => {
  const { q, r, observer, advance } = setup({ queryTimeoutMs: 5000 });
  const { query, answer } = queryAndAnswer("slow.example", ["198.18.0.1"]);
  q(query);
  advance(4000);
  assert.equal(observer.pendingCount, 1);
  advance(2000);
  assert.equal(r(answer), "unsolicited");
  assert.equal(observer.stats.expiredQueries, 1);
});

test("caps pending queries per pod and in total, evicting the oldest", () => {
  const { q, r, observer } = setup({ maxPendingPerPod: 4, maxPendingTotal: 6 });
  const pairs = Array.from({ length: 6 }, (_, i) => queryAndAnswer(`n${i}.example`, ["198.18.0.1"], { id: i }));
  for (const p of pairs) q(p.query);
  assert.equal(observer.pendingCount, 4);
  assert.equal(observer.stats.evictedQueries, 2);
  // The oldest was evicted; its flow still has other pending queries, hence "mismatched-id".
  assert.equal(r(pairs[0]!.answer), "mismatched-id");
  assert.equal(typeof r(pairs[5]!.answer), "object");
  for (let i = 0; i < 4; i++) q(queryAndAnswer(`m${i}.example`, ["198.18.0.1"], { id: 100 + i }).query, { src: POD2 });
  assert.ok(observer.pendingCount <= 6);
  assert.equal(observer.stats.evictedQueries, 3);
});

test("ignores a query seen twice and answers it once", () => {
  const { q, r, seen, observer } = setup();
  const { query, answer } = queryAndAnswer("twice.example", ["198.18.0.1"]);
  q(query);
  assert.equal(q(query), "ignored");
  r(answer);
  r(answer);
  assert.equal(seen.length, 1);
  assert.equal(observer.stats.duplicateQueries, 1);
});

test("offline mode believes any server answering a matching query, with the same matching rules", () => {
  const { q, r } = setup({ trustedResolvers: null, podCidrs: [] });
  const { query, answer } = queryAndAnswer("any.example", ["198.18.0.1"]);
  q(query, { dst: "192.0.2.53" });
  assert.equal(r(answer, { src: "192.0.2.54" }), "unsolicited");
  assert.equal(typeof r(answer, { src: "192.0.2.53" }), "object");
});

test("invalid options fail with a message naming the field", () => {
  assert.throws(() => new DnsObserver({ now: Date.now, trustedResolvers: ["not-an-ip"] }), /trusted resolver: "not-an-ip"/);
  assert.throws(() => new DnsObserver({ now: Date.now, trustedResolvers: null, podCidrs: ["10.0.0.0/33"] }), /pod CIDR.*prefix/);
  assert.throws(() => new DnsObserver({ now: Date.now, trustedResolvers: null, minTtlSec: 10, maxTtlSec: 5 }), /TTL bounds/);
});

test("DNS over TCP: several messages per segment and messages split byte by byte", () => {
  const framed: Uint8Array[] = [];
  const f = new TcpMessageFramer();
  const a = dnsMessage({ id: 1, questions: [{ name: "a.example", type: T.A }] });
  const b = dnsMessage({ id: 2, questions: [{ name: "b.example", type: T.A }] });
  const stream = tcpFramed(a, b, a);
  for (let i = 0; i < stream.length; i++) f.push(stream.subarray(i, i + 1), (m) => framed.push(m.slice()));
  f.push(tcpFramed(b, a), (m) => framed.push(m.slice()));
  assert.deepEqual(framed.map((m) => m[1]), [1, 2, 1, 2, 1]);
  assert.deepEqual(framed[1], b);
  assert.equal(f.pending, 0);
});

test("the pipeline reassembles DNS over TCP and feeds the observer", () => {
  const seen: DnsObservation[] = [];
  let now = 5_000;
  const observer = new DnsObserver({ now: () => now, trustedResolvers: [RESOLVER], onObservation: (o) => seen.push(o) });
  const pipeline = new DnsPipeline(observer);
  const c = { src: POD, dst: RESOLVER, sport: 41000, dport: 53 };
  const s = { src: RESOLVER, dst: POD, sport: 53, dport: 41000 };
  const q1 = queryAndAnswer("big.example", Array.from({ length: 40 }, (_, i) => `198.18.9.${i}`), { id: 11 });
  const q2 = queryAndAnswer("two.example", ["198.18.8.1"], { id: 12 });
  const push = (p: Parameters<typeof packet>[0]) => pipeline.push(packet(p), { time: (now += 1) });
  push({ ...c, payload: new Uint8Array(0), tcp: { seq: 1000, flags: 0x02 } });
  push({ ...s, payload: new Uint8Array(0), tcp: { seq: 9000, ack: 1001, flags: 0x12 } });
  const qs = tcpFramed(q1.query, q2.query);
  push({ ...c, payload: qs, tcp: { seq: 1001, flags: 0x18 } });
  const answers = tcpFramed(q1.answer, q2.answer);
  // Segments out of order, the first answer split in three.
  const cut1 = 100, cut2 = 300;
  push({ ...s, payload: answers.subarray(cut1, cut2), tcp: { seq: 9001 + cut1, flags: 0x18 } });
  push({ ...s, payload: answers.subarray(0, cut1), tcp: { seq: 9001, flags: 0x18 } });
  push({ ...s, payload: answers.subarray(cut2), tcp: { seq: 9001 + cut2, flags: 0x18 } });
  assert.deepEqual(seen.map((o) => [o.qname, o.transport, o.answers.length]), [["big.example", "tcp", 40], ["two.example", "tcp", 1]]);
});

test("IPv6 pods and resolvers, through the pipeline", () => {
  const seen: DnsObservation[] = [];
  const observer = new DnsObserver({ now: () => 0, trustedResolvers: ["fd00:53::/64"], podCidrs: ["fd00:1::/64"], onObservation: (o) => seen.push(o) });
  const pipeline = new DnsPipeline(observer);
  const { query, answer } = queryAndAnswer("v6.example", ["2001:db8::7"], { type: T.AAAA, id: 3 });
  pipeline.push(packet({ src: "fd00:1::10", dst: "fd00:53::53", sport: 40000, dport: 53, payload: query }), { time: 1 });
  pipeline.push(packet({ src: "fd00:53::53", dst: "fd00:1::10", sport: 53, dport: 40000, payload: answer }), { time: 2 });
  pipeline.push(packet({ src: "fd00:1::11", dst: "fd00:1::10", sport: 53, dport: 40000, payload: answer }), { time: 3 });
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.podIp, "fd00:1::10");
  assert.equal(seen[0]!.resolver, "fd00:53::53");
  assert.deepEqual(seen[0]!.answers.map((a) => a.data), ["2001:db8::7"]);
  assert.equal(observer.stats.rejected["sent-by-pod"], 1);
});

test("half-sent DNS-over-TCP messages cannot exceed the buffered-bytes budget", () => {
  const observer = new DnsObserver({ now: () => 0, trustedResolvers: null });
  const pipeline = new DnsPipeline(observer, { maxTcpBufferedBytes: 128 * 1024 });
  const partial = new Uint8Array(30_000);
  partial[0] = 0xff; // announces a 65,535-byte message that never completes
  partial[1] = 0xff;
  for (let i = 0; i < 4; i++) {
    const c = { src: POD, dst: RESOLVER, sport: 42000 + i, dport: 53 };
    pipeline.push(packet({ ...c, payload: new Uint8Array(0), tcp: { seq: 100, flags: 0x02 } }), { time: 1 });
    pipeline.push(packet({ src: RESOLVER, dst: POD, sport: 53, dport: 42000 + i, payload: new Uint8Array(0), tcp: { seq: 5, ack: 101, flags: 0x12 } }), { time: 1 });
    pipeline.push(packet({ ...c, payload: partial, tcp: { seq: 101, flags: 0x18 } }), { time: 2 });
  }
  assert.ok(pipeline.stats.tcpOverflows >= 1, "the third stream overflows the 64 KiB framing budget");
  // A complete message on a fresh stream still goes through.
  const q = tcpFramed(dnsMessage({ id: 5, questions: [{ name: "ok.example", type: T.A }] }));
  const c = { src: POD, dst: RESOLVER, sport: 43000, dport: 53 };
  pipeline.push(packet({ ...c, payload: new Uint8Array(0), tcp: { seq: 7, flags: 0x02 } }), { time: 3 });
  pipeline.push(packet({ src: RESOLVER, dst: POD, sport: 53, dport: 43000, payload: new Uint8Array(0), tcp: { seq: 5, ack: 8, flags: 0x12 } }), { time: 3 });
  pipeline.push(packet({ ...c, payload: q, tcp: { seq: 8, flags: 0x18 } }), { time: 4 });
  assert.equal(observer.stats.queries, 1);
});

test("DNS over TCP: any segmentation of a stream yields the same messages (property)", async () => {
  const fc = (await import("fast-check")).default;
  const message = fc.record({ id: fc.integer({ min: 0, max: 0xffff }), label: fc.stringMatching(/^[a-z0-9]{1,20}$/) })
    .map(({ id, label }) => dnsMessage({ id, questions: [{ name: `${label}.example`, type: T.A }] }));
  fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 40 }), (messages, cuts) => {
    const stream = tcpFramed(...messages);
    const framer = new TcpMessageFramer();
    const out: Uint8Array[] = [];
    let at = 0, i = 0;
    while (at < stream.length) {
      const n = cuts[i++ % cuts.length]!;
      framer.push(stream.subarray(at, at + n), (m) => out.push(m.slice()));
      at += n;
    }
    assert.equal(out.length, messages.length);
    out.forEach((m, j) => assert.deepEqual(m, messages[j]));
    assert.equal(framer.pending, 0);
  }), { numRuns: 500 });
});

test("finding 1: a pod flooding the node's pending-query table evicts only its own queries; a quiet pod's answer still counts", () => {
  const { observer, seen, q, r } = setup({ maxPendingPerPod: 64, maxPendingTotal: 100 });
  const victim = queryAndAnswer("api.example.com", ["198.18.5.1"], { id: 7 });
  assert.equal(q(victim.query, { src: POD2 }), "query");
  // Several flooding pods fill the table; the node-wide cap then takes from the busiest one.
  for (let i = 0; i < 500; i++) {
    const flood = queryAndAnswer(`f${i}.attacker.example`, ["198.18.6.6"], { id: i & 0xffff });
    q(flood.query, { src: i % 2 ? POD : "198.18.1.12", srcPort: 1024 + i });
  }
  assert.ok(observer.stats.evictedQueries >= 400);
  assert.ok(observer.pendingCount <= 100);
  // Benign twin: the victim's real answer is still evidence.
  const obs = r(victim.answer, { dst: POD2 });
  assert.equal(typeof obs, "object", `victim's answer was ${String(obs)}`);
  assert.equal(seen.length, 1);
});

test("finding 1: a query the capture saw travelling toward a pod is not that pod's query", () => {
  const { observer, q } = setup();
  assert.equal(q(queryAndAnswer("api.example.com", ["198.18.5.1"]).query, { fromPod: false }), "query-not-from-pod");
  assert.equal(observer.pendingCount, 0);
});

test("names stay label-exact: a wire label holding '.' is never evidence, as a question or a CNAME target; the plain name still is", () => {
  const { observer, seen, q, r } = setup();
  // Question [allowed.one][example]: rendered "allowed\.one.example", which a text matcher would
  // split into three labels and match against *.one.example.
  const wireName = [11, ...Buffer.from("allowed.one"), 7, ...Buffer.from("example"), 0];
  const header = (id: number, response: boolean, answers: number) => [id >> 8, id & 0xff, response ? 0x81 : 0x01, response ? 0x80 : 0, 0, 1, 0, answers, 0, 0, 0, 0];
  const question = [...wireName, 0, 1, 0, 1];
  const query = Uint8Array.from([...header(9, false, 0), ...question]);
  const answer = Uint8Array.from([...header(9, true, 1), ...question, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 198, 18, 66, 6]);
  assert.equal(q(query), "escaped-name");
  assert.equal(r(answer), "unsolicited");
  // A CNAME from a plain name to [allowed.one][example]: the chain stops; its address is not the question's.
  const plain = [5, ...Buffer.from("plain"), 7, ...Buffer.from("example"), 0];
  const cq = Uint8Array.from([...header(10, false, 0), ...plain, 0, 1, 0, 1]);
  const target = wireName;
  const cnameRdata = target;
  const ca = Uint8Array.from([...header(10, true, 2), ...plain, 0, 1, 0, 1,
    0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0, 0, cnameRdata.length, ...cnameRdata,
    0xc0, 12 + plain.length + 4 + 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 198, 18, 66, 6]);
  assert.equal(q(cq), "query");
  const obs = r(ca) as DnsObservation;
  assert.equal(typeof obs, "object");
  assert.deepEqual(obs.cnameChain, []);
  assert.ok(!obs.answers.some((a) => a.data === "198.18.66.6"), JSON.stringify(obs.answers));
  assert.equal(obs.negative, true);
  // Benign twin: the same shape with ordinary labels is evidence.
  const good = queryAndAnswer("allowed.one.example", ["198.18.77.1"], { id: 11 });
  q(good.query);
  assert.deepEqual((r(good.answer) as DnsObservation).answers.map((a) => a.data), ["198.18.77.1"]);
  assert.equal(seen.length, 2);
  assert.equal(observer.stats.rejected["escaped-name"], 1);
});

test("thousands of queries in flight: each answer finds its own query, slots are reused after expiry, copies stay duplicates", () => {
  const { observer, seen, q, r, advance } = setup({ maxPendingPerPod: 10_000 });
  const n = 5000; // several growths of the query slots and hash buckets (1,024 at first)
  const pairs = Array.from({ length: n }, (_, i) => queryAndAnswer(`svc${i}.example.com`, [`198.18.${7 + (i >> 8)}.${i & 255}`], { id: i & 0xffff }));
  for (let i = 0; i < n; i++) assert.equal(q(pairs[i]!.query, { srcPort: 20000 + i }), "query");
  assert.equal(observer.pendingCount, n);
  // Answered in reverse order: every slot leaves the pending list from the middle of its chains.
  for (let i = n - 1; i >= 0; i--) {
    const obs = r(pairs[i]!.answer, { dstPort: 20000 + i }) as DnsObservation;
    assert.equal(obs.qname, `svc${i}.example.com`);
    assert.equal(obs.podPort, 20000 + i);
  }
  assert.equal(observer.pendingCount, 0);
  assert.equal(r(pairs[42]!.answer, { dstPort: 20042 }), "duplicate");
  assert.equal(r(pairs[43]!.answer, { dstPort: 20042 }), "unsolicited", "another query's answer on that port");
  // Past the duplicate window every answered slot is freed and reused by new queries.
  advance(60_000);
  observer.expire();
  for (let i = 0; i < n; i++) assert.equal(q(pairs[i]!.query, { srcPort: 30000 + i }), "query");
  for (let i = 0; i < n; i += 7) assert.equal(typeof r(pairs[i]!.answer, { dstPort: 30000 + i }), "object");
  assert.equal(r(pairs[7]!.answer, { dstPort: 20007 }), "unsolicited", "the first round's query was forgotten");
  assert.equal(seen.length, n + Math.ceil(n / 7));
});
