// IP fragment reassembly (control/src/pcap/ip-reassembler.ts): whole datagrams back, in any order;
// overlap attacks kill the datagram (as the receiving Linux kernel does); every table is bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { IpReassembler, DEFAULT_REASSEMBLY_LIMITS, fragmentInfo, type ReassemblyLimits } from "../../../src/pcap/ip-reassembler.js";
import { decodeIp } from "../../../src/pcap/index.js";
import { concat, fragmentIpv4, fragmentIpv6, ipv4, ipv6, udpDatagram } from "./builders.js";

const RESOLVER = "198.18.0.53", POD = "198.18.1.10", OTHER_POD = "198.18.1.11";
const LANE = "veth1>";

function payload(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const fragment4 = fragmentIpv4, fragment6 = fragmentIpv6;

function answer4(n: number, src = RESOLVER, dst = POD): Uint8Array {
  return ipv4(src, dst, 17, udpDatagram(53, 41000, payload(n)));
}
function answer6(n: number): Uint8Array {
  return ipv6("2001:db8::53", "2001:db8:1::10", 17, udpDatagram(53, 41000, payload(n)));
}

function feed(r: IpReassembler, frags: Uint8Array[], lane = LANE, now = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of frags) {
    const got = r.push(f, lane, "dst", now);
    if (got) out.push(got);
  }
  return out;
}

/** The UDP payload of a datagram, decoded the way the agent decodes it. */
function udpPayload(ip: Uint8Array): Uint8Array {
  const pkt = decodeIp(ip);
  assert.ok(pkt, "decodes");
  assert.equal(pkt.fragmented, false);
  assert.equal(pkt.payload.length, pkt.payloadLength);
  return pkt.payload;
}

test("a 4,000-byte EDNS answer in three IPv4 fragments is whole again, in order and shuffled", () => {
  const whole = answer4(4000);
  const frags = fragment4(whole, 1480);
  assert.equal(frags.length, 3);
  for (const order of [[0, 1, 2], [2, 0, 1], [1, 2, 0]]) {
    const r = new IpReassembler();
    const out = feed(r, order.map((i) => frags[i]!));
    assert.equal(out.length, 1);
    assert.deepEqual(udpPayload(out[0]!), payload(4000));
    assert.equal(r.size, 0);
    assert.equal(r.heldBytes, 0);
  }
});

test("IPv6: a Fragment header right after the fixed header; atomic fragments are whole", () => {
  const whole = answer6(3000);
  const r = new IpReassembler();
  const out = feed(r, fragment6(whole, 1232).reverse());
  assert.equal(out.length, 1);
  assert.deepEqual(udpPayload(out[0]!), payload(3000));
  const atomic = fragment6(answer6(100), 4096);
  assert.equal(atomic.length, 1);
  assert.deepEqual(udpPayload(feed(r, atomic)[0]!), payload(100));
});

test("packets that are not fragments pass through unchanged", () => {
  const r = new IpReassembler();
  const p = answer4(100);
  assert.equal(r.push(p, LANE, "dst", 0), p);
  assert.equal(fragmentInfo(p), null);
  assert.equal(r.stats.fragments, 0);
});

test("attack: an overlapping fragment that rewrites the answer kills the datagram (no evidence), like Linux", () => {
  const whole = answer4(4000);
  const frags = fragment4(whole, 1480);
  // The forged fragment starts inside the first one (offset 1472) with other bytes.
  const overlapping = ipv4(RESOLVER, POD, 17, payload(16, 99), { fragOffset: 1472 / 8, moreFragments: true });
  overlapping[4] = 0x12; overlapping[5] = 0x34;
  for (const order of [[frags[0]!, overlapping, frags[1]!, frags[2]!], [frags[0]!, frags[1]!, overlapping, frags[2]!], [overlapping, frags[0]!, frags[1]!, frags[2]!]]) {
    const r = new IpReassembler();
    const out = feed(r, order);
    assert.equal(out.length, 0, "nothing is delivered from a datagram with overlapping fragments");
    assert.equal(r.stats.overlaps, 1);
  }
});

test("attack: exact duplicates keep the first copy; a conflicting last fragment or data past the end kills", () => {
  const frags = fragment4(answer4(4000), 1480);
  const tampered = frags[1]!.slice();
  tampered[100] ^= 0xff; // same offset and length, other bytes: the first copy wins, as in the kernel
  let r = new IpReassembler();
  let out = feed(r, [frags[0]!, frags[1]!, tampered, frags[2]!]);
  assert.equal(out.length, 1);
  assert.deepEqual(udpPayload(out[0]!), payload(4000));
  assert.equal(r.stats.duplicates, 1);

  // Two last fragments ending differently.
  const shortLast = frags[2]!.slice(0, frags[2]!.length - 8);
  const len = shortLast.length; shortLast[2] = len >> 8; shortLast[3] = len & 0xff;
  r = new IpReassembler();
  out = feed(r, [frags[2]!, shortLast, frags[0]!, frags[1]!]);
  assert.equal(out.length, 0);
  assert.equal(r.stats.overlaps, 1);
});

test("fragments a pod sends never complete a datagram travelling to a pod (lanes)", () => {
  const frags = fragment4(answer4(4000), 1480);
  const r = new IpReassembler();
  assert.equal(feed(r, [frags[0]!, frags[1]!], "veth1>").length, 0);
  assert.equal(feed(r, [frags[2]!], "veth1<").length, 0);
  assert.equal(r.size, 2);
});

test("malformed fragments: a non-last length not a multiple of 8, zero length, past 65,535", () => {
  const r = new IpReassembler();
  const odd = ipv4(RESOLVER, POD, 17, payload(13), { moreFragments: true });
  assert.equal(r.push(odd, LANE, "dst", 0), null);
  const empty = ipv4(RESOLVER, POD, 17, new Uint8Array(0), { fragOffset: 10 });
  assert.equal(r.push(empty, LANE, "dst", 0), null);
  const far = ipv4(RESOLVER, POD, 17, payload(16), { fragOffset: 8190 });
  assert.equal(r.push(far, LANE, "dst", 0), null);
  const lying = ipv4(RESOLVER, POD, 17, payload(16), { fragOffset: 1, totalLength: 4000 });
  assert.equal(r.push(lying, LANE, "dst", 0), null);
  assert.equal(r.stats.malformed, 4);
  assert.equal(r.size, 0);
});

test("an incomplete datagram times out", () => {
  const limits: ReassemblyLimits = { ...DEFAULT_REASSEMBLY_LIMITS, timeoutMs: 1000 };
  const r = new IpReassembler(limits);
  const frags = fragment4(answer4(4000), 1480);
  feed(r, [frags[0]!], LANE, 0);
  assert.equal(r.size, 1);
  // A fragment 1 s later cannot complete it: the datagram is gone.
  assert.equal(feed(r, [frags[1]!, frags[2]!], LANE, 1000).length, 0);
  assert.equal(r.stats.timedOut, 1);
});

test("bounds: a pod flooding incomplete datagrams pays with its own; another pod's answer still completes", () => {
  const limits: ReassemblyLimits = { ...DEFAULT_REASSEMBLY_LIMITS, maxBytesPerPod: 64 << 10, maxDatagramsPerPod: 16, maxBytesTotal: 96 << 10, maxDatagramsTotal: 64 };
  const r = new IpReassembler(limits);
  for (let id = 0; id < 5000; id++) {
    const first = fragment4(answer4(4000, RESOLVER, POD), 1480, id)[0]!;
    r.push(first, LANE, "dst", 0);
    assert.ok(r.heldBytes <= limits.maxBytesTotal && r.size <= limits.maxDatagramsTotal);
  }
  assert.ok(r.stats.evicted >= 5000 - 16);
  const good = fragment4(answer4(4000, RESOLVER, OTHER_POD), 1480, 7);
  assert.equal(feed(r, good).length, 1, "the other pod's answer completes");
  // Too many fragments in one datagram.
  const tiny = fragment4(answer4(4000), 8, 9);
  const r2 = new IpReassembler({ ...DEFAULT_REASSEMBLY_LIMITS, maxFragmentsPerDatagram: 64 });
  assert.equal(feed(r2, tiny).length, 0);
  assert.ok(r2.stats.tooManyFragments >= 1); // later fragments start new datagrams, killed in turn
});

test("property: any fragment size, order and exact duplicates give back the datagram", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 1, max: 200 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 5 }),
    (n, units, v6, order, dups) => {
      const whole = v6 ? answer6(n) : answer4(n);
      const frags = v6 ? fragment6(whole, units * 8) : fragment4(whole, units * 8);
      fc.pre(frags.length <= 64);
      const seq = frags.slice();
      for (let i = 0; i < order.length && seq.length > 1; i++) {
        const a = order[i]! % seq.length, b = (order[i]! >> 3) % seq.length;
        [seq[a], seq[b]] = [seq[b]!, seq[a]!];
      }
      // A copy arriving after completion starts a new datagram that never completes: harmless.
      for (const d of dups) seq.splice(d % seq.length, 0, seq[(d >> 2) % seq.length]!);
      const r = new IpReassembler();
      const out = feed(r, seq);
      assert.ok(out.length >= 1, "completes");
      assert.deepEqual(udpPayload(out[0]!), payload(n));
    }));
});

test("fuzz: arbitrary fragments never throw and stay within every bound", () => {
  const limits: ReassemblyLimits = { timeoutMs: 5000, maxFragmentsPerDatagram: 8, maxBytesPerPod: 8 << 10, maxDatagramsPerPod: 4, maxBytesTotal: 16 << 10, maxDatagramsTotal: 8 };
  fc.assert(fc.property(fc.array(fc.record({
    pod: fc.integer({ min: 0, max: 3 }), id: fc.integer({ min: 0, max: 3 }), off: fc.integer({ min: 0, max: 8191 }), more: fc.boolean(),
    len: fc.integer({ min: 0, max: 1500 }), v6: fc.boolean(), t: fc.integer({ min: 0, max: 20_000 }), junk: fc.uint8Array({ maxLength: 60 }),
  }), { maxLength: 200 }), (items) => {
    const r = new IpReassembler(limits);
    let now = 0;
    for (const it of items) {
      now += it.t % 700;
      let pkt: Uint8Array;
      if (it.junk.length > 40 && it.junk[0]! < 16) pkt = it.junk;
      else if (it.v6) {
        const fo = (it.off << 3) | (it.more ? 1 : 0);
        pkt = concat(ipv6("2001:db8::53", `2001:db8:1::${it.pod}`, 44, concat([17, 0, (fo >> 8) & 0xff, fo & 0xff, 0, 0, 0, it.id], payload(it.len))));
      } else {
        pkt = ipv4(RESOLVER, `198.18.1.${it.pod}`, 17, payload(it.len), { fragOffset: it.off, moreFragments: it.more });
        pkt[5] = it.id;
      }
      r.push(pkt, LANE, "dst", now);
      assert.ok(r.heldBytes <= limits.maxBytesTotal, "total bytes");
      assert.ok(r.size <= limits.maxDatagramsTotal, "total datagrams");
    }
  }), { numRuns: 300 });
});
