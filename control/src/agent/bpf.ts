// The agent's kernel packet filter, as a classic BPF program for an AF_PACKET SOCK_DGRAM socket
// (packet data starts at the IP header; the link protocol and the packet type are read with the
// kernel's ancillary loads, which nothing inside a packet can forge). It admits:
//   - answers: UDP/TCP from a DNS port to a non-DNS port, only as the node sends them (PACKET_OUTGOING);
//   - queries: UDP/TCP to a DNS port from a non-DNS port, only as the node receives them;
//   - IP fragments that may belong to either (the ports are in the first fragment only): IPv4
//     fragments with offset > 0 of UDP/TCP, and IPv6 packets whose first next-header is a
//     Fragment header over UDP/TCP. The agent reassembles them and judges the whole datagram.
// Accepted packets are cut at `snapLength` bytes. `assemble` produces `struct sock_filter[]` bytes
// in host byte order, which `packet_ring.cc` attaches with SO_ATTACH_FILTER before binding.
import { endianness } from "node:os";

export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS = 0x20, LD_H_ABS = 0x28, LD_B_ABS = 0x30, LD_H_IND = 0x48, LD_MEM = 0x60;
const LDX_B_MSH = 0xb1, ST = 0x02, JA = 0x05, JEQ_K = 0x15, JSET_K = 0x45, RET_K = 0x06;
/** SKF_AD_OFF + SKF_AD_PROTOCOL / SKF_AD_PKTTYPE, as an unsigned 32-bit offset. */
const AD_PROTOCOL = 0xfffff000 + 0, AD_PKTTYPE = 0xfffff000 + 4;
const ETH_P_IP = 0x0800, ETH_P_IPV6 = 0x86dd;
const PACKET_OUTGOING = 4;
const UDP = 17, TCP = 6, IPV6_FRAGMENT = 44;

export const BPF_OPCODES = { LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_H_IND, LD_MEM, LDX_B_MSH, ST, JA, JEQ_K, JSET_K, RET_K } as const;
export const BPF_ANCILLARY = { PROTOCOL: AD_PROTOCOL, PKTTYPE: AD_PKTTYPE } as const;

type Step =
  | { op: "insn"; code: number; k: number }
  | { op: "jump"; code: number; k: number; jt: string | null; jf: string | null } // null: next instruction
  | { op: "goto"; to: string }
  | { op: "label"; name: string };

/** A tiny assembler with symbolic forward jumps (classic BPF only jumps forward). */
export class Program {
  private readonly steps: Step[] = [];
  insn(code: number, k = 0): this { this.steps.push({ op: "insn", code, k }); return this; }
  jeq(k: number, jt: string | null, jf: string | null = null): this { this.steps.push({ op: "jump", code: JEQ_K, k, jt, jf }); return this; }
  jset(k: number, jt: string | null, jf: string | null = null): this { this.steps.push({ op: "jump", code: JSET_K, k, jt, jf }); return this; }
  /** Any conditional jump (e.g. BPF_JMP|BPF_JGE|BPF_K). */
  jump(code: number, k: number, jt: string | null, jf: string | null = null): this { this.steps.push({ op: "jump", code, k, jt, jf }); return this; }
  goto(to: string): this { this.steps.push({ op: "goto", to }); return this; }
  label(name: string): this { this.steps.push({ op: "label", name }); return this; }

  resolve(): BpfInstruction[] {
    const at = new Map<string, number>();
    let n = 0;
    for (const s of this.steps) if (s.op === "label") at.set(s.name, n); else n++;
    const out: BpfInstruction[] = [];
    const target = (name: string, pc: number, short: boolean): number => {
      const to = at.get(name);
      if (to === undefined) throw new Error(`bpf: undefined label ${name}`);
      const off = to - pc - 1;
      if (off < 0 || (short && off > 255)) throw new Error(`bpf: jump to ${name} out of range (${off})`);
      return off;
    };
    for (const s of this.steps) {
      const pc = out.length;
      if (s.op === "insn") out.push({ code: s.code, jt: 0, jf: 0, k: s.k >>> 0 });
      else if (s.op === "jump") out.push({ code: s.code, jt: s.jt ? target(s.jt, pc, true) : 0, jf: s.jf ? target(s.jf, pc, true) : 0, k: s.k >>> 0 });
      else if (s.op === "goto") out.push({ code: JA, jt: 0, jf: 0, k: target(s.to, pc, false) });
    }
    return out;
  }
}

/** The program described at the top of this file. */
export function dnsSocketFilter(ports: readonly number[], snapLength: number): BpfInstruction[] {
  if (ports.length === 0 || ports.length > 64) throw new Error("dnsSocketFilter: 1 to 64 DNS ports");
  const p = new Program();
  // Which network protocol (the kernel's skb->protocol, not a field of the packet).
  p.insn(LD_W_ABS, AD_PROTOCOL).jeq(ETH_P_IP, "v4").jeq(ETH_P_IPV6, "v6").goto("reject");
  // IPv4: UDP/TCP only; a fragment with offset > 0 has no ports: accepted for reassembly.
  p.label("v4").insn(LD_B_ABS, 9).jeq(UDP, "v4l4").jeq(TCP, "v4l4").goto("reject");
  p.label("v4l4").insn(LD_H_ABS, 6).jset(0x1fff, "accept");
  p.insn(LDX_B_MSH, 0).insn(LD_H_IND, 0).insn(ST, 0).insn(LD_H_IND, 2).insn(ST, 1).goto("ports");
  // IPv6: UDP/TCP right after the fixed header, or a Fragment header over UDP/TCP.
  p.label("v6").insn(LD_B_ABS, 6).jeq(UDP, "v6l4").jeq(TCP, "v6l4").jeq(IPV6_FRAGMENT, "v6frag").goto("reject");
  p.label("v6frag").insn(LD_B_ABS, 40).jeq(UDP, "accept").jeq(TCP, "accept").goto("reject");
  p.label("v6l4").insn(LD_H_ABS, 40).insn(ST, 0).insn(LD_H_ABS, 42).insn(ST, 1);
  // M[0] = source port, M[1] = destination port.
  p.label("ports").insn(LD_MEM, 0);
  for (const port of ports) p.jeq(port, "fromDns");
  p.goto("fromOther");
  // From a DNS port: an answer, unless also to a DNS port; only as the node sends it.
  p.label("fromDns").insn(LD_MEM, 1);
  for (const port of ports) p.jeq(port, "reject");
  p.insn(LD_W_ABS, AD_PKTTYPE).jeq(PACKET_OUTGOING, "accept").goto("reject");
  // From another port: a query when to a DNS port; only as the node receives it.
  p.label("fromOther").insn(LD_MEM, 1);
  for (const port of ports) p.jeq(port, "query");
  p.goto("reject");
  p.label("query").insn(LD_W_ABS, AD_PKTTYPE).jeq(PACKET_OUTGOING, "reject").goto("accept");
  p.label("accept").insn(RET_K, snapLength);
  p.label("reject").insn(RET_K, 0);
  return p.resolve();
}

/** `struct sock_filter[]` bytes: u16 code, u8 jt, u8 jf, u32 k, in host byte order. */
export function assemble(program: readonly BpfInstruction[]): Buffer {
  const out = Buffer.alloc(program.length * 8);
  const le = endianness() === "LE";
  program.forEach((ins, i) => {
    if (le) out.writeUInt16LE(ins.code, i * 8); else out.writeUInt16BE(ins.code, i * 8);
    out[i * 8 + 2] = ins.jt;
    out[i * 8 + 3] = ins.jf;
    if (le) out.writeUInt32LE(ins.k >>> 0, i * 8 + 4); else out.writeUInt32BE(ins.k >>> 0, i * 8 + 4);
  });
  return out;
}
