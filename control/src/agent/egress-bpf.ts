// Bypass detection's kernel filter: a classic BPF program for the agent's AF_PACKET capture
// (bpf.ts, capture.ts; packet data starts at the IP header, the link protocol and packet type come
// from the kernel's ancillary loads). A socket of its own, apart from the DNS evidence's: a pod
// flooding UDP fills this ring, not the one carrying DNS answers. It admits, only as the node
// receives them from a pod (not PACKET_OUTGOING) and only from the pod networks when given:
//   - TCP SYNs without ACK (IPv4 with any header length, not a later fragment; IPv6 when TCP
//     follows the fixed header);
//   - UDP (not a later fragment) except to a DNS port of a trusted resolver (that is evidence).
// Frames are cut at `snapLength` bytes (a QUIC long header and a DNS question fit).
import { BPF_ANCILLARY, Program, type BpfInstruction } from "./bpf.js";

const LD_W_ABS = 0x20, LD_H_ABS = 0x28, LD_B_ABS = 0x30, LD_B_IND = 0x50, LD_H_IND = 0x48, LDX_B_MSH = 0xb1, RET_K = 0x06;
const JGE_K = 0x35, JGT_K = 0x25;
const ETH_P_IP = 0x0800, ETH_P_IPV6 = 0x86dd, PACKET_OUTGOING = 4, UDP = 17, TCP = 6;
const TCP_SYN = 0x02, TCP_ACK = 0x10;
export const EGRESS_SNAP_LENGTH = 600;

interface Cidr { words: number[]; prefix: number }

function parseCidr(text: string): Cidr {
  const [addr = "", len] = text.split("/");
  const v6 = addr.includes(":");
  const words: number[] = [];
  if (!v6) {
    const b = addr.split(".").map(Number);
    if (b.length !== 4 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${text}`);
    words.push(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
  } else {
    const [head = "", tail = ""] = addr.split("::");
    const h = head ? head.split(":") : [];
    const t = addr.includes("::") ? (tail ? tail.split(":") : []) : [];
    const groups = [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t].map((g) => parseInt(g || "0", 16));
    if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) throw new Error(`not an IPv6 address: ${text}`);
    for (let i = 0; i < 4; i++) words.push(((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0);
  }
  const prefix = len === undefined ? words.length * 32 : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > words.length * 32) throw new Error(`bad prefix length: ${text}`);
  return { words, prefix };
}

/** Jumps to `yes` when the address at `offset` lies in `cidr`, else falls through to `no`. */
function matchCidr(p: Program, offset: number, cidr: Cidr, yes: string, no: string): void {
  let left = cidr.prefix;
  for (let i = 0; i < cidr.words.length && left > 0; i++, left -= 32) {
    const bits = Math.min(32, left);
    const mask = bits === 32 ? 0xffffffff : (~(0xffffffff >>> bits)) >>> 0;
    const lo = (cidr.words[i]! & mask) >>> 0;
    const hi = (lo | (~mask >>> 0)) >>> 0;
    p.insn(LD_W_ABS, offset + 4 * i).jump(JGE_K, lo, null, no).jump(JGT_K, hi, no, null);
  }
  p.goto(yes);
}

let labels = 0;

/** Addresses at `offset` in any of `cidrs` → `yes`; none → `no`. */
function anyCidr(p: Program, offset: number, cidrs: Cidr[], yes: string, no: string): void {
  for (const c of cidrs) {
    const next = `cidr${labels++}`;
    matchCidr(p, offset, c, yes, next);
    p.label(next);
  }
  p.goto(no);
}

export function egressSocketFilter(dnsPorts: readonly number[], trustedResolvers: readonly string[], podCidrs: readonly string[], snapLength = EGRESS_SNAP_LENGTH): BpfInstruction[] {
  const resolvers = trustedResolvers.map(parseCidr);
  const pods = podCidrs.map(parseCidr);
  const v4 = (l: Cidr[]) => l.filter((c) => c.words.length === 1);
  const v6 = (l: Cidr[]) => l.filter((c) => c.words.length === 4);
  const p = new Program();
  p.insn(LD_W_ABS, BPF_ANCILLARY.PKTTYPE).jeq(PACKET_OUTGOING, "reject");
  p.insn(LD_W_ABS, BPF_ANCILLARY.PROTOCOL).jeq(ETH_P_IP, "v4").jeq(ETH_P_IPV6, "v6").goto("reject");
  // IPv4: from a pod network; not a later fragment; TCP SYN or UDP.
  p.label("v4");
  if (pods.length) anyCidr(p, 12, v4(pods), "v4pod", "reject");
  p.label("v4pod").insn(LD_H_ABS, 6).jset(0x1fff, "reject");
  p.insn(LD_B_ABS, 9).jeq(TCP, "v4tcp").jeq(UDP, "v4udp").goto("reject");
  p.label("v4tcp").insn(LDX_B_MSH, 0).insn(LD_B_IND, 13).jset(TCP_ACK, "reject").jset(TCP_SYN, "accept").goto("reject");
  p.label("v4udp").insn(LDX_B_MSH, 0).insn(LD_H_IND, 2);
  for (const port of dnsPorts) p.jeq(port, "v4dns");
  p.goto("accept");
  p.label("v4dns");
  anyCidr(p, 16, v4(resolvers), "reject", "accept");
  // IPv6: from a pod network; TCP or UDP right after the fixed header.
  p.label("v6");
  if (pods.length) anyCidr(p, 8, v6(pods), "v6pod", "reject");
  p.label("v6pod").insn(LD_B_ABS, 6).jeq(TCP, "v6tcp").jeq(UDP, "v6udp").goto("reject");
  p.label("v6tcp").insn(LD_B_ABS, 53).jset(TCP_ACK, "reject").jset(TCP_SYN, "accept").goto("reject");
  p.label("v6udp").insn(LD_H_ABS, 42);
  for (const port of dnsPorts) p.jeq(port, "v6dns");
  p.goto("accept");
  p.label("v6dns");
  anyCidr(p, 24, v6(resolvers), "reject", "accept");
  p.label("accept").insn(RET_K, snapLength);
  p.label("reject").insn(RET_K, 0);
  return p.resolve();
}
