// Builders for DNS test messages (no pasted hex): dnsMessage({...}) encodes a message with name
// compression, so tests state what they mean. Shared by the dns-* unit tests and the fuzz test.
import { isIPv4 } from "node:net";
import { transportChecksum, type DecodedPacket } from "../../src/pcap/index.js";

export interface RRSpec {
  name: string;
  type: number;
  ttl?: number;
  cls?: number;
  /** "1.2.3.4" for A, "2001:db8::1" for AAAA, a name for CNAME/NS/PTR, raw bytes otherwise. */
  data: string | Uint8Array;
}

export interface MessageSpec {
  id?: number;
  response?: boolean;
  opcode?: number;
  rcode?: number;
  tc?: boolean;
  questions?: { name: string; type: number; cls?: number }[];
  answers?: RRSpec[];
  authority?: RRSpec[];
  additional?: RRSpec[];
  /** Adds an OPT record (UDP payload 1232) carrying the upper rcode bits. */
  edns?: { extRcode?: number };
  compress?: boolean;
}

export const T = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, SVCB: 64, HTTPS: 65 } as const;

function ipv6Bytes(text: string): number[] {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

export function dnsMessage(spec: MessageSpec): Uint8Array {
  const out: number[] = [];
  const names = new Map<string, number>();
  const u16 = (v: number) => out.push((v >> 8) & 0xff, v & 0xff);
  const u32 = (v: number) => out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const name = (n: string) => {
    const labels = n === "." || n === "" ? [] : n.replace(/\.$/, "").split(".");
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join(".").toLowerCase();
      const at = names.get(suffix);
      if (spec.compress !== false && at !== undefined) {
        u16(0xc000 | at);
        return;
      }
      if (out.length < 0x3fff) names.set(suffix, out.length);
      const bytes = Buffer.from(labels[i]!, "latin1");
      out.push(bytes.length, ...bytes);
    }
    out.push(0);
  };
  const rr = (r: RRSpec) => {
    name(r.name);
    u16(r.type);
    u16(r.cls ?? 1);
    u32(r.ttl ?? 300);
    const lenAt = out.length;
    u16(0);
    const start = out.length;
    if (r.data instanceof Uint8Array) out.push(...r.data);
    else if (r.type === T.A && isIPv4(r.data)) out.push(...r.data.split(".").map(Number));
    else if (r.type === T.AAAA) out.push(...ipv6Bytes(r.data));
    else if (r.type === T.MX) { u16(10); name(r.data); }
    else name(r.data);
    const len = out.length - start;
    out[lenAt] = len >> 8;
    out[lenAt + 1] = len & 0xff;
  };
  const qs = spec.questions ?? [];
  const additional = [...(spec.additional ?? [])];
  u16(spec.id ?? 0x1234);
  const rcode = spec.rcode ?? 0;
  u16((spec.response ? 0x8000 : 0) | ((spec.opcode ?? 0) << 11) | (spec.tc ? 0x0200 : 0) | 0x0100 | (spec.response ? 0x80 : 0) | (rcode & 0xf));
  u16(qs.length);
  u16(spec.answers?.length ?? 0);
  u16(spec.authority?.length ?? 0);
  u16(additional.length + (spec.edns ? 1 : 0));
  for (const q of qs) {
    name(q.name);
    u16(q.type);
    u16(q.cls ?? 1);
  }
  for (const r of spec.answers ?? []) rr(r);
  for (const r of spec.authority ?? []) rr(r);
  for (const r of additional) rr(r);
  if (spec.edns) {
    out.push(0);
    u16(T.OPT);
    u16(1232);
    u32(((spec.edns.extRcode ?? 0) << 24) >>> 0);
    u16(0);
  }
  return Uint8Array.from(out);
}

/** A query and the matching answer for `name` (A records). */
export function queryAndAnswer(name: string, ips: string[], opts: { id?: number; ttl?: number; type?: number } = {}) {
  const type = opts.type ?? T.A;
  const id = opts.id ?? 0x4242;
  const query = dnsMessage({ id, questions: [{ name, type }] });
  const answer = dnsMessage({
    id, response: true, questions: [{ name, type }],
    answers: ips.map((ip) => ({ name, type, ttl: opts.ttl ?? 300, data: ip })),
  });
  return { query, answer };
}

/** A decoded UDP or TCP packet, as ../pcap's decodeFrame would produce it. */
export function packet(p: {
  src: string; dst: string; sport: number; dport: number; payload: Uint8Array;
  tcp?: { seq: number; ack?: number; flags: number; checksum?: number };
}): DecodedPacket {
  const v4 = isIPv4(p.src);
  const ip = (s: string) => (v4 ? Uint8Array.from(s.split(".").map(Number)) : Uint8Array.from(ipv6Bytes(s)));
  const srcIp = ip(p.src), dstIp = ip(p.dst);
  let payload = p.payload;
  let tcp: DecodedPacket["tcp"];
  if (p.tcp) {
    // A real segment (header, then the payload, in one buffer) with a valid checksum, so the
    // payload view has its header in front of it as in a captured frame.
    const seg = new Uint8Array(20 + p.payload.length);
    const seq = p.tcp.seq >>> 0, ack = (p.tcp.ack ?? 0) >>> 0;
    seg.set([p.sport >> 8, p.sport & 0xff, p.dport >> 8, p.dport & 0xff, seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff,
      ack >>> 24, (ack >>> 16) & 0xff, (ack >>> 8) & 0xff, ack & 0xff, 0x50, p.tcp.flags & 0xff, 0xff, 0xff]);
    seg.set(p.payload, 20);
    const checksum = p.tcp.checksum ?? transportChecksum(srcIp, dstIp, 6, seg, 16);
    seg[16] = checksum >> 8;
    seg[17] = checksum & 0xff;
    payload = seg.subarray(20);
    tcp = { seq, ack, flags: p.tcp.flags, window: 65535, headerLength: 20, checksum };
  }
  return {
    ipVersion: v4 ? 4 : 6, src: p.src, dst: p.dst, srcIp, dstIp,
    proto: p.tcp ? "tcp" : "udp", srcPort: p.sport, dstPort: p.dport,
    payload, payloadLength: payload.length, fragmented: false, pktType: -1,
    ...(tcp ? { tcp } : {}),
    ttl: 64,
    tunnelDepth: 0,
  };
}

/** 2-byte length prefix + message (DNS over TCP framing). */
export function tcpFramed(...messages: Uint8Array[]): Uint8Array {
  const total = messages.reduce((n, m) => n + 2 + m.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const m of messages) {
    out[at] = m.length >> 8;
    out[at + 1] = m.length & 0xff;
    out.set(m, at + 2);
    at += 2 + m.length;
  }
  return out;
}

/** An Ethernet + IPv4/IPv6 + UDP frame carrying `payload` (checksums left zero: not verified). */
export function udpFrame(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const v4 = isIPv4(src);
  const ipLen = v4 ? 20 : 40;
  const frame = new Uint8Array(14 + ipLen + 8 + payload.length);
  frame.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
  frame[12] = v4 ? 0x08 : 0x86;
  frame[13] = v4 ? 0x00 : 0xdd;
  const ip = 14;
  const udpLen = 8 + payload.length;
  if (v4) {
    frame[ip] = 0x45;
    const total = 20 + udpLen;
    frame[ip + 2] = total >> 8;
    frame[ip + 3] = total & 0xff;
    frame[ip + 8] = 64;
    frame[ip + 9] = 17;
    frame.set(src.split(".").map(Number), ip + 12);
    frame.set(dst.split(".").map(Number), ip + 16);
  } else {
    frame[ip] = 0x60;
    frame[ip + 4] = udpLen >> 8;
    frame[ip + 5] = udpLen & 0xff;
    frame[ip + 6] = 17;
    frame[ip + 7] = 64;
    frame.set(ipv6Bytes(src), ip + 8);
    frame.set(ipv6Bytes(dst), ip + 24);
  }
  const u = ip + ipLen;
  frame[u] = sport >> 8;
  frame[u + 1] = sport & 0xff;
  frame[u + 2] = dport >> 8;
  frame[u + 3] = dport & 0xff;
  frame[u + 4] = udpLen >> 8;
  frame[u + 5] = udpLen & 0xff;
  frame.set(payload, u + 8);
  return frame;
}

/** An ECHConfig (version 0xfe0d, or `version`) whose contents name `publicName`; built field by field. */
export function echConfig(publicName: string, version = 0xfe0d): number[] {
  const name = [...Buffer.from(publicName, "latin1")];
  const contents = [
    7, 0x00, 0x20, // config_id, kem_id DHKEM(X25519)
    0x00, 32, ...new Array(32).fill(0xab), // public_key
    0x00, 4, 0x00, 0x01, 0x00, 0x01, // cipher_suites: HKDF-SHA256 / AES-128-GCM
    0, // maximum_name_length
    name.length, ...name,
    0x00, 0x00, // extensions
  ];
  return [version >> 8, version & 0xff, contents.length >> 8, contents.length & 0xff, ...contents];
}

/** SVCB/HTTPS rdata (ServiceMode, target ".") with alpn and an `ech` SvcParam listing `configs`. */
export function httpsRdata(configs: number[][], opts: { priority?: number; target?: string } = {}): Uint8Array {
  const target = (opts.target ?? "").split(".").filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l, "latin1")]);
  const list = configs.flat();
  const echValue = [list.length >> 8, list.length & 0xff, ...list];
  const priority = opts.priority ?? 1;
  const params = priority === 0 ? [] : [
    0x00, 0x01, 0x00, 0x03, 0x02, 0x68, 0x32, // alpn = h2
    0x00, 0x05, echValue.length >> 8, echValue.length & 0xff, ...echValue,
  ];
  return Uint8Array.from([priority >> 8, priority & 0xff, ...target, 0, ...params]);
}
