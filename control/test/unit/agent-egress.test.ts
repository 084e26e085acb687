// Bypass detection in the agent: packet classification (egress-classify.ts, pure) and the
// correlation state (egress-watch.ts) on a fake clock. Attacks: a pod flooding SYNs and UDP
// flows is rate-limited and bounded, and cannot push out another pod's evidence.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeFrame, LinkType } from "../../src/pcap/index.js";
import { classifyEgress, quicLongHeaderVersion, type ClassifyContext } from "../../src/agent/egress-classify.js";
import { egressSocketFilter } from "../../src/agent/egress-bpf.js";
import { BPF_ANCILLARY, type BpfInstruction } from "../../src/agent/bpf.js";
import { EgressWatch, type BypassReport } from "../../src/agent/egress-watch.js";
import { ethernet, ipv4, ipv6, linuxCooked, tcpSegment, udpDatagram } from "./pcap/builders.js";
import { dnsMessage, T } from "./dns-fixtures.js";

const RESOLVER = "198.19.0.53";
const ctx: ClassifyContext = { isTrustedResolver: (ip) => ip === RESOLVER, dnsPorts: new Set([53]) };
const decode = (frame: Uint8Array, link: number = LinkType.ETHERNET) => decodeFrame(link, frame)!;
const syn = (src: string, sport: number, dst: string, dport: number, flags = 0x02) => decode(ethernet(ipv4(src, dst, 6, tcpSegment(sport, dport, [], { flags }))));
const udp = (src: string, sport: number, dst: string, dport: number, payload: Uint8Array | number[]) => decode(ethernet(ipv4(src, dst, 17, udpDatagram(sport, dport, payload))));
/** A QUIC v1 Initial's first bytes: long header, version 1, 8-byte DCID, 0-byte SCID, then padding. */
const QUIC_INITIAL = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, ...new Array(1180).fill(0)];

test("classify: outbound SYNs (not SYN+ACK), QUIC long headers, DNS to an untrusted resolver, other UDP; DNS to the trusted resolver is not egress", () => {
  assert.equal(classifyEgress(syn("198.18.1.10", 40000, "203.0.113.5", 443), ctx)?.kind, "tcp-syn");
  assert.equal(classifyEgress(syn("198.18.1.10", 40000, "203.0.113.5", 443, 0x12), ctx), null, "SYN+ACK");
  assert.equal(classifyEgress(syn("198.18.1.10", 40000, "203.0.113.5", 443, 0x10), ctx), null, "ACK");
  const inCluster = { ...ctx, isInternal: (ip: string) => ip.startsWith("10.") };
  assert.equal(classifyEgress(syn("198.18.1.10", 40000, "10.96.0.10", 15012, 0x02), inCluster), null, "SYNs into the cluster are Envoy's own or in-mesh: not judged");
  assert.equal(classifyEgress(udp("198.18.1.10", 40000, "10.96.0.99", 8125, [1]), inCluster)?.kind, "udp-other", "UDP is judged whatever its destination");
  const v6 = decode(ethernet(ipv6("fd00::10", "2001:db8::5", 6, tcpSegment(40000, 443, [], { flags: 0x02 }))));
  assert.equal(classifyEgress(v6, ctx)?.kind, "tcp-syn");
  const quic = classifyEgress(udp("198.18.1.10", 50000, "203.0.113.5", 443, QUIC_INITIAL), ctx)!;
  assert.deepEqual([quic.kind, quic.detail], ["udp-quic", "quic/1"]);
  const query = dnsMessage({ id: 7, questions: [{ name: "exfil.example.net", type: T.TXT }] });
  const dns = classifyEgress(udp("198.18.1.10", 50001, "8.8.8.8", 53, query), ctx)!;
  assert.deepEqual([dns.kind, dns.detail], ["udp-dns", "exfil.example.net"]);
  assert.equal(classifyEgress(udp("198.18.1.10", 50001, RESOLVER, 53, query), ctx), null, "DNS to the trusted resolver is evidence, not egress");
  assert.equal(classifyEgress(udp("198.18.1.10", 50002, RESOLVER, 443, QUIC_INITIAL), ctx)?.kind, "udp-quic", "the trusted resolver on another port is egress");
  assert.equal(classifyEgress(udp("198.18.1.10", 50003, "203.0.113.5", 9999, [1, 2, 3]), ctx)?.kind, "udp-other");
  // QUIC short headers, version negotiation and over-long connection IDs are not long headers.
  assert.equal(quicLongHeaderVersion(Uint8Array.from([0x43, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0])), undefined);
  assert.equal(quicLongHeaderVersion(Uint8Array.from([0xc0, 0, 0, 0, 0, 0, 0])), undefined);
  assert.equal(quicLongHeaderVersion(Uint8Array.from([0xc0, 0, 0, 0, 1, 21, ...new Array(30).fill(0)])), undefined);
  // With pod networks given, only their sources count; the `any` device's forwarded copy (outgoing) never does.
  assert.equal(classifyEgress(syn("203.0.113.5", 443, "198.18.1.10", 40000), { ...ctx, isPodAddress: (ip) => ip.startsWith("198.18.") }), null);
  const cooked = decode(linuxCooked(ipv4("198.18.1.10", "203.0.113.5", 6, tcpSegment(40000, 443, [], { flags: 0x02 }))), LinkType.LINUX_SLL);
  assert.equal(classifyEgress({ ...cooked, pktType: 4 }, ctx), null);
});

function watch(limits = {}) {
  let now = 1_000_000;
  const reports: BypassReport[] = [];
  const w = new EgressWatch({ now: () => now, classify: ctx, onBypass: (r) => reports.push(...r), limits: { windowMs: 1000, ...limits } });
  return { w, reports, advance: (ms: number) => (now += ms), at: () => now };
}

test("watch: a SYN a verdict covers (after or before it) is the sidecar's; one no verdict covers within the window is a bypass, several SYNs one report", () => {
  const { w, reports, advance, at } = watch();
  w.ingest(syn("198.18.1.10", 40000, "203.0.113.5", 443), at(), "p1");
  advance(300);
  w.coveredConnection("198.18.1.10", "203.0.113.5", 443);
  w.coveredConnection("198.18.1.10", "203.0.113.6", 443);
  advance(100);
  w.ingest(syn("198.18.1.10", 40001, "203.0.113.6", 443), at(), "p1"); // verdict came first
  w.ingest(syn("198.18.1.10", 40002, "203.0.113.7", 8443), at(), "p1");
  w.ingest(syn("198.18.1.10", 40003, "203.0.113.7", 8443), at(), "p1"); // same key, retry
  advance(999);
  w.tick();
  assert.equal(reports.length, 0, "the window is not over yet");
  advance(2);
  w.tick();
  assert.deepEqual(reports.map((r) => [r.kind, r.dstIp, r.dstPort, r.packets]), [["tcp-syn", "203.0.113.7", 8443, 2]]);
  assert.equal(w.counters.synsCovered, 2);
  // A verdict older than the window covers nothing.
  advance(5000);
  w.tick();
  w.ingest(syn("198.18.1.10", 40004, "203.0.113.6", 443), at(), "p1");
  advance(1001);
  w.tick();
  assert.equal(reports.length, 2, "an old verdict does not cover a new SYN");
});

test("watch: a Lookup (any port) covers the pod's SYNs to that destination, before or after them; DNS over TCP to the trusted resolver is not egress", () => {
  const { w, reports, advance, at } = watch();
  w.ingest(syn("198.18.1.10", 40000, "203.0.113.5", 443), at(), "p1");
  advance(200);
  w.coveredConnection("198.18.1.10", "203.0.113.5", 0);
  w.ingest(syn("198.18.1.10", 40001, "203.0.113.5", 8443), at(), "p1");
  w.ingest(syn("198.18.1.11", 40002, "203.0.113.5", 443), at(), "p2"); // another pod: not covered
  w.ingest(syn("198.18.1.10", 40003, RESOLVER, 53), at(), "p1");
  advance(1001);
  w.tick();
  assert.deepEqual(reports.map((r) => r.podIp), ["198.18.1.11"]);
});

test("watch: a UDP flow is reported at once, then not again for the quiet period", () => {
  const { w, reports, advance, at } = watch({ flowQuietMs: 10_000 });
  for (let i = 0; i < 50; i++) w.ingest(udp("198.18.1.10", 50000, "203.0.113.5", 443, QUIC_INITIAL), at(), "p1");
  assert.equal(reports.length, 1);
  advance(10_001);
  w.tick();
  w.ingest(udp("198.18.1.10", 50000, "203.0.113.5", 443, QUIC_INITIAL), at(), "p1");
  assert.equal(reports.length, 2);
});

test("watch attack: a pod flooding new SYN destinations and UDP flows is rate-limited and bounded; a quiet pod's SYN is still judged and reported", () => {
  const { w, reports, advance, at } = watch({ newPerPodPerSecond: 10, newBurst: 20, maxEntriesPerPod: 64, maxEntries: 128 });
  w.ingest(syn("198.18.1.20", 40000, "203.0.113.9", 443), at(), "quiet");
  for (let i = 0; i < 100_000; i++) {
    const dst = `203.0.${(i >> 8) & 255}.${i & 255}`;
    w.ingest(i % 2 ? syn("198.18.1.66", 1024 + (i % 60000), dst, 443) : udp("198.18.1.66", 1024 + (i % 60000), dst, 53, [1, 2, 3, 4]), at(), "flood");
    if (i % 1000 === 0) advance(10);
  }
  assert.ok(w.size <= 128, `bounded: ${w.size}`);
  assert.ok(w.counters.rateLimited > 99_000, `rate-limited: ${w.counters.rateLimited}`);
  const floodReports = reports.filter((r) => r.podIp === "198.18.1.66").length;
  assert.ok(floodReports <= 20 + 10 * 2, `the flood's reports stay within its rate: ${floodReports}`);
  advance(1001);
  w.tick();
  assert.ok(reports.some((r) => r.podIp === "198.18.1.20" && r.dstIp === "203.0.113.9"), "the quiet pod's SYN was kept and reported");
});

/** Classic BPF as the kernel runs it on a SOCK_DGRAM packet socket (data = IP header on), for the ops the egress filter uses. */
function runBpf(prog: readonly BpfInstruction[], pkt: Uint8Array, skb: { protocol: number; pktType: number }): number {
  let a = 0, x = 0;
  const load = (k: number, size: number): number | null => {
    if (k === BPF_ANCILLARY.PROTOCOL) return skb.protocol;
    if (k === BPF_ANCILLARY.PKTTYPE) return skb.pktType;
    if (k + size > pkt.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + pkt[k + i]!;
    return v >>> 0;
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    const sizes: Record<number, number> = { 0x20: 4, 0x28: 2, 0x30: 1, 0x48: 2, 0x50: 1 };
    if (i.code in sizes) {
      const v = load((i.code === 0x48 || i.code === 0x50 ? x : 0) + i.k, sizes[i.code]!);
      if (v === null) return 0;
      a = v;
    } else if (i.code === 0xb1) {
      const v = load(i.k, 1);
      if (v === null) return 0;
      x = (v & 0xf) * 4;
    } else if (i.code === 0x05) pc += i.k;
    else if (i.code === 0x15) pc += a === i.k ? i.jt : i.jf;
    else if (i.code === 0x45) pc += (a & i.k) !== 0 ? i.jt : i.jf;
    else if (i.code === 0x35) pc += a >= i.k ? i.jt : i.jf;
    else if (i.code === 0x25) pc += a > i.k ? i.jt : i.jf;
    else if (i.code === 0x06) return i.k;
    else throw new Error(`opcode ${i.code}`);
  }
  throw new Error("fell off the end");
}

test("egress kernel filter: SYNs and UDP from the pod networks as the node receives them; not SYN+ACKs, not DNS to a trusted resolver, not what the node sends", () => {
  const prog = egressSocketFilter([53], [RESOLVER, "fd00::53"], ["198.18.1.0/24", "fd00:1::/64"]);
  const v4 = (src: string, dst: string, proto: number, body: Uint8Array, pktType = 0) => runBpf(prog, ipv4(src, dst, proto, body), { protocol: 0x0800, pktType }) > 0;
  const v6 = (src: string, dst: string, proto: number, body: Uint8Array, pktType = 0) => runBpf(prog, ipv6(src, dst, proto, body), { protocol: 0x86dd, pktType }) > 0;
  assert.equal(v4("198.18.1.10", "203.0.113.5", 6, tcpSegment(40000, 443, [], { flags: 0x02 })), true, "SYN");
  assert.equal(v4("198.18.1.10", "203.0.113.5", 6, tcpSegment(40000, 443, [], { flags: 0x12 })), false, "SYN+ACK");
  assert.equal(v4("198.18.1.10", "203.0.113.5", 6, tcpSegment(40000, 443, [1, 2], { flags: 0x18 })), false, "data");
  assert.equal(v4("198.18.1.10", "203.0.113.5", 6, tcpSegment(40000, 443, [], { flags: 0x02 }), 4), false, "the node's own (outgoing) copy");
  assert.equal(v4("198.18.2.10", "203.0.113.5", 6, tcpSegment(40000, 443, [], { flags: 0x02 })), false, "not from a pod network");
  assert.equal(v4("198.18.1.10", "203.0.113.5", 17, udpDatagram(50000, 443, QUIC_INITIAL)), true, "UDP");
  assert.equal(v4("198.18.1.10", RESOLVER, 17, udpDatagram(50000, 53, [1, 2, 3])), false, "DNS to the trusted resolver");
  assert.equal(v4("198.18.1.10", "8.8.8.8", 17, udpDatagram(50000, 53, [1, 2, 3])), true, "DNS to another resolver");
  assert.equal(v6("fd00:1::10", "2001:db8::5", 6, tcpSegment(40000, 443, [], { flags: 0x02 })), true, "IPv6 SYN");
  assert.equal(v6("fd00:1::10", "fd00::53", 17, udpDatagram(50000, 53, [1])), false, "IPv6 DNS to the trusted resolver");
  assert.equal(v6("fd00:1::10", "2001:db8::5", 17, udpDatagram(50000, 443, QUIC_INITIAL)), true, "IPv6 UDP");
  assert.equal(v6("fd00:2::10", "2001:db8::5", 6, tcpSegment(40000, 443, [], { flags: 0x02 })), false, "IPv6 not from a pod network");
  const any = egressSocketFilter([53], [RESOLVER], []);
  assert.equal(runBpf(any, ipv4("10.1.2.3", "203.0.113.5", 6, tcpSegment(1, 443, [], { flags: 0x02 })), { protocol: 0x0800, pktType: 0 }) > 0, true, "no pod networks: every source");
});
