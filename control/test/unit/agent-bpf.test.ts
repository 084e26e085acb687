// The agent's kernel filter (control/src/agent/bpf.ts), run by a classic-BPF interpreter written
// here from the kernel's semantics (net/core/filter.c: ancillary loads, MSH, scratch memory), on
// hand-built IPv4/IPv6 packets with the kernel's packet type. The live path is covered by
// control/test/e2e/agent-capture.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { assemble, BPF_ANCILLARY, BPF_OPCODES as OP, dnsSocketFilter, type BpfInstruction } from "../../src/agent/bpf.js";
import { forEachRecord, type RingFrame } from "../../src/agent/packet-ring.js";

const OUTGOING = 4, HOST = 0;
const SNAP = 65_595;

/** Runs a program the way the kernel does for a SOCK_DGRAM packet socket (data = IP header on). */
function runBpf(prog: readonly BpfInstruction[], pkt: Uint8Array, skb: { protocol: number; pktType: number }): number {
  let a = 0, x = 0;
  const mem = new Array<number>(16).fill(0);
  const load = (k: number, size: 1 | 2 | 4): number | null => {
    if (k === BPF_ANCILLARY.PROTOCOL) return skb.protocol;
    if (k === BPF_ANCILLARY.PKTTYPE) return skb.pktType;
    if (k < 0 || k + size > pkt.length) return null; // out of bounds: the program returns 0
    let v = 0;
    for (let i = 0; i < size; i++) v = (v * 256) + pkt[k + i]!;
    return v >>> 0;
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    switch (i.code) {
      case OP.LD_W_ABS: case OP.LD_H_ABS: case OP.LD_B_ABS: {
        const v = load(i.k, i.code === OP.LD_W_ABS ? 4 : i.code === OP.LD_H_ABS ? 2 : 1);
        if (v === null) return 0;
        a = v;
        break;
      }
      case OP.LD_H_IND: {
        const v = load(x + i.k, 2);
        if (v === null) return 0;
        a = v;
        break;
      }
      case OP.LDX_B_MSH: {
        const v = load(i.k, 1);
        if (v === null) return 0;
        x = (v & 0xf) * 4;
        break;
      }
      case OP.ST: mem[i.k] = a; break;
      case OP.LD_MEM: a = mem[i.k]!; break;
      case OP.JA: pc += i.k; break;
      case OP.JEQ_K: pc += a === i.k ? i.jt : i.jf; break;
      case OP.JSET_K: pc += (a & i.k) !== 0 ? i.jt : i.jf; break;
      case OP.RET_K: return i.k;
      default: throw new Error(`unknown opcode ${i.code}`);
    }
  }
  throw new Error("program fell off its end");
}

function ipv4(proto: number, sport: number, dport: number, opts: { fragOffset?: number; mf?: boolean; ihl?: number } = {}): Uint8Array {
  const ihl = opts.ihl ?? 5;
  const p = new Uint8Array(ihl * 4 + 8 + 12);
  p[0] = 0x40 | ihl;
  const frag = ((opts.mf ? 1 : 0) << 13) | ((opts.fragOffset ?? 0) & 0x1fff);
  p[6] = frag >> 8; p[7] = frag & 0xff;
  p[8] = 64; p[9] = proto;
  const t = ihl * 4;
  p[t] = sport >> 8; p[t + 1] = sport & 0xff; p[t + 2] = dport >> 8; p[t + 3] = dport & 0xff;
  return p;
}

function ipv6(next: number, sport: number, dport: number, fragmentOf?: number): Uint8Array {
  const p = new Uint8Array(40 + 8 + 8 + 12);
  p[0] = 0x60; p[6] = next; p[7] = 64;
  let t = 40;
  if (next === 44) { p[40] = fragmentOf ?? 17; t = 48; }
  p[t] = sport >> 8; p[t + 1] = sport & 0xff; p[t + 2] = dport >> 8; p[t + 3] = dport & 0xff;
  return p;
}

const V4 = 0x0800, V6 = 0x86dd;
const prog = dnsSocketFilter([53, 5353], SNAP);

test("answers are admitted only as the node sends them; queries only as it receives them", () => {
  for (const proto of [17, 6]) {
    assert.equal(runBpf(prog, ipv4(proto, 53, 40000), { protocol: V4, pktType: OUTGOING }), SNAP, "answer toward a pod");
    assert.equal(runBpf(prog, ipv4(proto, 53, 40000), { protocol: V4, pktType: HOST }), 0, "an \"answer\" a pod sends");
    assert.equal(runBpf(prog, ipv4(proto, 40000, 5353), { protocol: V4, pktType: HOST }), SNAP, "query from a pod");
    assert.equal(runBpf(prog, ipv4(proto, 40000, 53), { protocol: V4, pktType: OUTGOING }), 0, "a query sent to a pod");
    assert.equal(runBpf(prog, ipv6(proto, 5353, 40000), { protocol: V6, pktType: OUTGOING }), SNAP);
    assert.equal(runBpf(prog, ipv6(proto, 53, 40000), { protocol: V6, pktType: HOST }), 0);
    assert.equal(runBpf(prog, ipv6(proto, 40000, 53), { protocol: V6, pktType: HOST }), SNAP);
  }
});

test("DNS port to DNS port, other ports, other protocols and other link protocols are rejected", () => {
  assert.equal(runBpf(prog, ipv4(17, 53, 53), { protocol: V4, pktType: OUTGOING }), 0);
  assert.equal(runBpf(prog, ipv4(17, 53, 5353), { protocol: V4, pktType: HOST }), 0);
  assert.equal(runBpf(prog, ipv4(17, 443, 40000), { protocol: V4, pktType: OUTGOING }), 0);
  assert.equal(runBpf(prog, ipv4(1, 53, 40000), { protocol: V4, pktType: OUTGOING }), 0, "ICMP");
  assert.equal(runBpf(prog, ipv4(47, 53, 40000), { protocol: V4, pktType: OUTGOING }), 0, "GRE");
  assert.equal(runBpf(prog, ipv4(17, 53, 40000), { protocol: 0x0806, pktType: OUTGOING }), 0, "ARP");
  // The protocol comes from the kernel, not the version nibble: an IPv6 frame read as IPv4 is not.
  assert.equal(runBpf(prog, ipv6(17, 53, 40000), { protocol: V4, pktType: OUTGOING }), 0);
});

test("IPv4 options move the ports (IHL), and fragments are admitted for reassembly", () => {
  assert.equal(runBpf(prog, ipv4(17, 53, 40000, { ihl: 7 }), { protocol: V4, pktType: OUTGOING }), SNAP);
  assert.equal(runBpf(prog, ipv4(17, 443, 40000, { ihl: 7 }), { protocol: V4, pktType: OUTGOING }), 0);
  // First fragment: judged by its ports like any packet.
  assert.equal(runBpf(prog, ipv4(17, 53, 40000, { mf: true }), { protocol: V4, pktType: OUTGOING }), SNAP);
  assert.equal(runBpf(prog, ipv4(17, 443, 40000, { mf: true }), { protocol: V4, pktType: OUTGOING }), 0);
  // Later fragments have no ports: UDP/TCP ones are admitted either way, others are not.
  assert.equal(runBpf(prog, ipv4(17, 0, 0, { fragOffset: 185 }), { protocol: V4, pktType: OUTGOING }), SNAP);
  assert.equal(runBpf(prog, ipv4(17, 0, 0, { fragOffset: 185 }), { protocol: V4, pktType: HOST }), SNAP);
  assert.equal(runBpf(prog, ipv4(1, 0, 0, { fragOffset: 185 }), { protocol: V4, pktType: OUTGOING }), 0);
  assert.equal(runBpf(prog, ipv6(44, 0, 0, 17), { protocol: V6, pktType: OUTGOING }), SNAP);
  assert.equal(runBpf(prog, ipv6(44, 0, 0, 58), { protocol: V6, pktType: OUTGOING }), 0, "ICMPv6 fragments");
});

test("property: the program agrees with the rules it implements on any ports and packet types", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.boolean(),
    (sport, dport, pktType, v6, udp) => {
      const ports = new Set([53, 5353]);
      const answer = ports.has(sport) && !ports.has(dport);
      const query = ports.has(dport) && !ports.has(sport);
      const want = (answer && pktType === OUTGOING) || (query && pktType !== OUTGOING) ? SNAP : 0;
      const pkt = v6 ? ipv6(udp ? 17 : 6, sport, dport) : ipv4(udp ? 17 : 6, sport, dport);
      assert.equal(runBpf(prog, pkt, { protocol: v6 ? V6 : V4, pktType }), want);
    }));
});

test("a truncated packet never reads past its end (the program returns 0)", () => {
  const full = ipv4(17, 53, 40000);
  for (let n = 0; n < 24; n++) assert.equal(runBpf(prog, full.subarray(0, n), { protocol: V4, pktType: OUTGOING }), 0, `length ${n}`);
});

test("assemble writes struct sock_filter (u16 code, u8 jt, u8 jf, u32 k), and jumps stay in range", () => {
  const bytes = assemble(prog);
  assert.equal(bytes.length, prog.length * 8);
  assert.equal(bytes.readUInt16LE(0), prog[0]!.code);
  assert.equal(bytes.readUInt32LE(4), prog[0]!.k);
  prog.forEach((i, pc) => {
    if (i.code === OP.JEQ_K || i.code === OP.JSET_K) assert.ok(pc + 1 + Math.max(i.jt, i.jf) < prog.length);
  });
  assert.equal(prog.at(-1)!.code, OP.RET_K);
  assert.throws(() => dnsSocketFilter([], SNAP), /1 to 64 DNS ports/);
  // 64 ports still fit the 8-bit conditional jumps.
  const many = dnsSocketFilter(Array.from({ length: 64 }, (_, i) => 1000 + i), SNAP);
  assert.equal(runBpf(many, ipv4(17, 1063, 40000), { protocol: V4, pktType: OUTGOING }), SNAP);
});

test("the addon's records are read back in order with their fields", () => {
  const buf = Buffer.alloc(256);
  const put = (off: number, cap: number, orig: number, ifindex: number, sec: number, nsec: number, pktType: number, proto: number, fill: number): number => {
    buf.writeUInt32LE(cap, off); buf.writeUInt32LE(orig, off + 4); buf.writeUInt32LE(ifindex, off + 8);
    buf.writeUInt32LE(sec, off + 12); buf.writeUInt32LE(nsec, off + 16); buf.writeUInt16LE(pktType, off + 20); buf.writeUInt16LE(proto, off + 22);
    buf.fill(fill, off + 24, off + 24 + cap);
    return off + 24 + ((cap + 3) & ~3);
  };
  let end = put(0, 5, 5, 7, 1_700_000_000, 500_000_000, 4, V4, 0xaa);
  end = put(end, 8, 1500, 9, 1_700_000_001, 0, 0, V6, 0xbb);
  const got: RingFrame[] = [];
  forEachRecord(buf, end, (f) => got.push({ ...f, data: Uint8Array.from(f.data) }));
  assert.equal(got.length, 2);
  assert.deepEqual([...got[0]!.data], [0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
  assert.equal(got[0]!.time, 1_700_000_000_500);
  assert.equal(got[0]!.pktType, 4);
  assert.equal(got[1]!.origLen, 1500);
  assert.equal(got[1]!.ifindex, 9);
  assert.equal(got[1]!.ethProto, V6);
});
