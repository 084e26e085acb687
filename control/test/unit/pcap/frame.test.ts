import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeFrame, formatIp, formatEndpoint, LinkType, PACKET_OUTGOING, type DropCounts } from "../../../src/pcap/index.js";
import { concat, ethernet, ipv4, ipv6, linuxCooked, linuxCooked2, tcpSegment, udpDatagram } from "./builders.js";

const payload = new TextEncoder().encode("hello");
const tcp = tcpSegment(43210, 443, payload, { seq: 0xfffffff0, ack: 7, flags: 0x018, window: 512 });
const v4 = ipv4("198.18.0.1", "198.18.5.9", 6, tcp);
const v6 = ipv6("2001:db8::1", "2001:db8:0:0:1::2", 6, tcp);

function check(linkType: number, frame: Uint8Array, version: 4 | 6) {
  const p = decodeFrame(linkType, frame);
  assert.ok(p, `link type ${linkType}`);
  assert.equal(p.ipVersion, version);
  assert.equal(p.proto, "tcp");
  assert.equal(p.srcPort, 43210);
  assert.equal(p.dstPort, 443);
  assert.equal(new TextDecoder().decode(p.payload), "hello");
  assert.deepEqual({ ...p.tcp, checksum: 0 }, { seq: 0xfffffff0, ack: 7, flags: 0x018, window: 512, headerLength: 20, checksum: 0 });
  assert.equal(p.tunnelDepth, 0);
  if (version === 4) {
    assert.equal(p.src, "198.18.0.1");
    assert.equal(p.dst, "198.18.5.9");
    assert.deepEqual([...p.srcIp], [198, 18, 0, 1]);
  } else {
    assert.equal(p.src, "2001:db8::1");
    assert.equal(p.dst, "2001:db8::1:0:0:2");
    assert.equal(p.srcIp.length, 16);
  }
}

test("decodes TCP over IPv4 and IPv6 for every supported link type", () => {
  for (const [ip, ver] of [[v4, 4], [v6, 6]] as const) {
    check(LinkType.ETHERNET, ethernet(ip), ver);
    check(LinkType.ETHERNET, ethernet(ip, [0x8100]), ver);
    check(LinkType.ETHERNET, ethernet(ip, [0x88a8, 0x8100]), ver);
    check(LinkType.LINUX_SLL, linuxCooked(ip), ver);
    check(LinkType.LINUX_SLL2, linuxCooked2(ip), ver);
    for (const lt of [LinkType.RAW, LinkType.RAW_12, LinkType.RAW_14]) check(lt, ip, ver);
    check(ver === 4 ? LinkType.IPV4 : LinkType.IPV6, ip, ver);
    check(LinkType.NULL, concat(ver === 4 ? [2, 0, 0, 0] : [0, 0, 0, 30], ip), ver);
    check(LinkType.LOOP, concat(ver === 4 ? [0, 0, 0, 2] : [0, 0, 0, 24], ip), ver);
    check(LinkType.PPP, concat([0xff, 0x03], ver === 4 ? [0x00, 0x21] : [0x00, 0x57], ip), ver);
    check(LinkType.ETHERNET, ethernet(concat([0x11, 0, 0, 1, 0, 0], ver === 4 ? [0, 0x21] : [0, 0x57], ip), [], 0x8864), ver);
    check(LinkType.FDDI, concat([0x50], new Array(12).fill(1), [0xaa, 0xaa, 3, 0, 0, 0], ver === 4 ? [8, 0] : [0x86, 0xdd], ip), ver);
  }
});

test("trims Ethernet padding using the IPv4 total length", () => {
  const small = ipv4("198.18.0.1", "198.18.0.2", 6, tcpSegment(1, 2, []));
  const p = decodeFrame(1, concat(ethernet(small), new Array(6).fill(0xee)));
  assert.equal(p?.payload.length, 0);
});

test("skips IPv4 options and IPv6 extension headers", () => {
  const withOpts = ipv4("198.18.0.1", "198.18.5.9", 6, tcp, { options: [0x94, 0x04, 0, 0, 1, 1, 1, 0] });
  check(LinkType.RAW, withOpts, 4);
  const withExt = ipv6("2001:db8::1", "2001:db8:0:0:1::2", 6, tcp, [
    [0, [0, 0, 1, 4, 0, 0, 0, 0]], // hop-by-hop, 8 bytes
    [60, [0, 1, 1, 12, ...new Array(12).fill(0)]], // destination options, 16 bytes
    [44, [0, 0, 0, 0, 0, 0, 0, 9]], // fragment header, offset 0, M=0 (atomic)
  ]);
  check(LinkType.RAW, withExt, 6);
});

test("drops non-first fragments, decodes first fragments as fragmented", () => {
  const drops: DropCounts = {};
  assert.equal(decodeFrame(101, ipv4("198.18.0.1", "198.18.0.2", 17, udpDatagram(1, 53, [1, 2]), { fragOffset: 10 }), drops), null);
  assert.equal(decodeFrame(101, ipv6("2001:db8::1", "2001:db8::2", 17, udpDatagram(1, 53, [1]), [[44, [0, 0, 0, 0x50, 0, 0, 0, 1]]]), drops), null);
  assert.equal(drops["ip-fragment"], 2);
  const dgram = udpDatagram(5353, 53, new Array(100).fill(7));
  const first = decodeFrame(101, ipv4("198.18.0.1", "198.18.0.2", 17, dgram.subarray(0, 48), { moreFragments: true }));
  assert.ok(first?.fragmented);
  assert.equal(first.payload.length, 40);
  assert.equal(first.payloadLength, 100);
});

test("decodes UDP and reports the announced payload length of snapped frames", () => {
  const frame = ethernet(ipv4("198.18.0.1", "198.18.0.2", 17, udpDatagram(5353, 53, new Array(50).fill(1))));
  const full = decodeFrame(1, frame);
  assert.equal(full?.proto, "udp");
  assert.equal(full.payload.length, 50);
  assert.equal(full.tcp, undefined);
  const snapped = decodeFrame(1, frame.subarray(0, frame.length - 20));
  assert.equal(snapped?.payload.length, 30);
  assert.equal(snapped.payloadLength, 50);
});

test("counts the reason for every frame it cannot decode", () => {
  const drops: DropCounts = {};
  const arp = concat(new Array(12).fill(0), [0x08, 0x06], new Array(28).fill(0));
  const cases: [number, Uint8Array, string][] = [
    [147, v4, "unsupported-link-type"],
    [1, new Uint8Array(10), "truncated-link-header"],
    [1, arp, "not-ip"],
    [101, v4.subarray(0, 12), "truncated-ip-header"],
    [101, Uint8Array.from([0x45, 0, 0, 10, ...new Array(16).fill(0)]), "bad-ip-header"],
    [101, Uint8Array.from([0x75, ...new Array(30).fill(0)]), "bad-ip-header"],
    [101, ipv4("198.18.0.1", "198.18.0.2", 1, new Uint8Array(8)), "unsupported-transport"],
    [101, ipv4("198.18.0.1", "198.18.0.2", 6, new Uint8Array(10)), "truncated-transport-header"],
    [101, ipv4("198.18.0.1", "198.18.0.2", 6, concat(new Array(12).fill(0), [0x20], new Array(7).fill(0))), "bad-transport-header"],
  ];
  for (const [lt, frame, reason] of cases) {
    const before = drops[reason as keyof DropCounts] ?? 0;
    assert.equal(decodeFrame(lt, frame, drops), null, reason);
    assert.equal(drops[reason as keyof DropCounts], before + 1, reason);
  }
});

test("formats IP addresses per RFC 5952 and endpoints with brackets for IPv6", () => {
  const v6 = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));
  assert.equal(formatIp(v6("20010db8000000000000000000000001")), "2001:db8::1");
  assert.equal(formatIp(v6("20010db8000000010000000000000001")), "2001:db8:0:1::1");
  assert.equal(formatIp(v6("20010db8000100000001000000000000")), "2001:db8:1:0:1::");
  assert.equal(formatIp(v6("00000000000000000000000000000000")), "::");
  assert.equal(formatIp(v6("00000000000000000000ffffc6120001")), "::ffff:198.18.0.1");
  assert.equal(formatIp(v6("20010db8000100010001000100010001")), "2001:db8:1:1:1:1:1:1");
  assert.equal(formatEndpoint("2001:db8::1", 443), "[2001:db8::1]:443");
  assert.equal(formatEndpoint("198.18.0.1", 80), "198.18.0.1:80");
});

test("with decapsulate (offline detection only), removes tunnel layers: IP-in-IP, GRE, VXLAN, GTP-U, MPLS, and reads NFLOG", () => {
  const D = { decapsulate: true } as const;
  const inner4 = ipv4("10.0.0.1", "10.0.0.2", 6, tcpSegment(43210, 443, payload, { seq: 0xfffffff0, ack: 7, flags: 0x018, window: 512 }));
  const expectInner = (p: ReturnType<typeof decodeFrame>, depth: number, what: string) => {
    assert.ok(p, what);
    assert.equal(p.src, "10.0.0.1", what);
    assert.equal(p.dstPort, 443, what);
    assert.equal(new TextDecoder().decode(p.payload), "hello", what);
    assert.equal(p.tunnelDepth, depth, what);
  };
  expectInner(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 4, inner4)), undefined, D), 1, "IPv4 in IPv4");
  const v6inner = ipv6("2001:db8::1", "2001:db8::2", 6, tcpSegment(1, 443, payload));
  assert.equal(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 41, v6inner)), undefined, D)?.src, "2001:db8::1", "IPv6 in IPv4 (6in4)");
  const greKeyed = concat([0x20, 0x00, 0x08, 0x00], [0, 0, 0, 42], inner4); // K flag, key, IPv4
  expectInner(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 47, greKeyed)), undefined, D), 1, "GRE with key");
  const greEth = concat([0x00, 0x00, 0x65, 0x58], ethernet(inner4));
  expectInner(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 47, greEth)), undefined, D), 1, "GRE transparent Ethernet");
  const vxlan = udpDatagram(50000, 4789, concat([0x08, 0, 0, 0, 0, 0, 7, 0], ethernet(inner4, [0x8100])));
  expectInner(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 17, vxlan)), undefined, D), 1, "VXLAN");
  const gtp = udpDatagram(2152, 2152, concat([0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 9, 0], inner4)); // E flag, one extension
  expectInner(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 17, gtp)), undefined, D), 1, "GTP-U with an extension header");
  const teredo = udpDatagram(3544, 40000, concat([0, 0, 0x9c, 0x40, 1, 2, 3, 4], v6inner)); // origin indication, IPv6
  assert.equal(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 17, teredo)), undefined, D)?.src, "2001:db8::1", "Teredo");
  const mpls = concat([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], [0x88, 0x47], [0, 1, 0, 64], [0, 2, 1, 64], inner4);
  expectInner(decodeFrame(1, mpls), 0, "two MPLS labels");
  const nflog = concat([2, 0, 0, 0], [8, 0, 1, 0, 0x08, 0x00, 0, 0], [4 + inner4.length, 0, 9, 0], inner4);
  expectInner(decodeFrame(LinkType.NFLOG, nflog), 0, "NFLOG");
  // Not a tunnel after all: a UDP datagram to 4789 that is not VXLAN stays UDP.
  const notVxlan = decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 17, udpDatagram(1, 4789, [1, 2, 3]))));
  assert.equal(notVxlan?.proto, "udp");
  assert.equal(notVxlan.tunnelDepth, 0);
  // Nesting is bounded.
  let nested: Uint8Array = inner4;
  for (let i = 0; i < 6; i++) nested = ipv4("198.18.0.1", "198.18.0.2", 4, nested);
  const drops: DropCounts = {};
  assert.equal(decodeFrame(101, nested, drops, D), null);
  assert.equal(drops["bad-ip-header"], 1);
});

test("live decoding never enters a tunnel: the outer packet is what the network judged (finding 1)", () => {
  const inner4 = ipv4("10.0.0.1", "10.0.0.2", 17, udpDatagram(53, 40000, payload));
  const drops: DropCounts = {};
  assert.equal(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 4, inner4)), drops), null, "IP-in-IP");
  assert.equal(decodeFrame(1, ethernet(ipv4("198.18.0.1", "198.18.0.2", 47, concat([0, 0, 8, 0], inner4))), drops), null, "GRE");
  assert.equal(drops["unsupported-transport"], 2);
  const v6inner = ipv6("2001:db8::53", "2001:db8::1", 17, udpDatagram(53, 40000, payload));
  const teredo = decodeFrame(1, ethernet(ipv4("198.18.1.10", "198.18.0.53", 17, udpDatagram(3544, 53, concat([0, 0, 0x9c, 0x40, 1, 2, 3, 4], v6inner)))));
  assert.equal(teredo?.src, "198.18.1.10", "Teredo stays the outer UDP datagram");
  assert.equal(teredo.srcPort, 3544);
  assert.equal(teredo.tunnelDepth, 0);
  const vxlan = decodeFrame(1, ethernet(ipv4("198.18.1.10", "198.18.0.53", 17, udpDatagram(4789, 53, concat([0x08, 0, 0, 0, 0, 0, 7, 0], ethernet(inner4))))));
  assert.equal(vxlan?.src, "198.18.1.10", "VXLAN stays the outer UDP datagram");
  const gtp = decodeFrame(1, ethernet(ipv4("198.18.1.10", "198.18.0.53", 17, udpDatagram(2152, 53, concat([0x30, 0xff, 0, 0, 0, 0, 0, 1], inner4)))));
  assert.equal(gtp?.src, "198.18.1.10", "GTP-U stays the outer UDP datagram");
});

test("a cooked (SLL/SLL2) header gives the frame's direction; other link types do not", () => {
  const ip = ipv4("198.18.0.53", "198.18.1.10", 17, udpDatagram(53, 40000, payload));
  const sll = (pktType: number) => concat([0, pktType, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00], ip);
  assert.equal(decodeFrame(LinkType.LINUX_SLL, sll(4))?.pktType, PACKET_OUTGOING);
  assert.equal(decodeFrame(LinkType.LINUX_SLL, sll(0))?.pktType, 0);
  const sll2 = (pktType: number) => concat([0x08, 0x00, 0, 0, 0, 0, 0, 7, 0, 1, pktType, 6, 1, 2, 3, 4, 5, 6, 0, 0], ip);
  assert.equal(decodeFrame(LinkType.LINUX_SLL2, sll2(4))?.pktType, PACKET_OUTGOING);
  assert.equal(decodeFrame(LinkType.LINUX_SLL2, sll2(3))?.pktType, 3);
  assert.equal(decodeFrame(1, ethernet(ip))?.pktType, -1);
});
