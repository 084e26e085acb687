// Builders for test captures: frames (Ethernet, VLAN, cooked, raw), IPv4/IPv6, TCP/UDP, and
// libpcap/pcapng files. Checksums are left zero: the decoder does not verify them.

export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const arrs = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of arrs) { out.set(a, off); off += a.length; }
  return out;
}
const u16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const u32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

export function ipv4Bytes(s: string): number[] {
  return s.split(".").map(Number);
}
export function ipv6Bytes(s: string): number[] {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":").filter(Boolean) : [];
  const t = tail ? tail.split(":").filter(Boolean) : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t].map((w) => parseInt(w, 16));
  return words.flatMap(u16);
}

export interface TcpOpts { seq?: number; ack?: number; flags?: number; window?: number; options?: number[] }
export function tcpSegment(sport: number, dport: number, payload: Uint8Array | number[], o: TcpOpts = {}): Uint8Array {
  const opts = o.options ?? [];
  const hdrLen = 20 + opts.length;
  return concat(u16(sport), u16(dport), u32(o.seq ?? 0), u32(o.ack ?? 0),
    [((hdrLen / 4) << 4) | (((o.flags ?? 0x18) >> 8) & 1), (o.flags ?? 0x18) & 0xff], u16(o.window ?? 65535), [0, 0, 0, 0], opts, payload);
}
export function udpDatagram(sport: number, dport: number, payload: Uint8Array | number[]): Uint8Array {
  return concat(u16(sport), u16(dport), u16(8 + payload.length), [0, 0], payload);
}
export interface Ipv4Opts { options?: number[]; fragOffset?: number; moreFragments?: boolean; ttl?: number; totalLength?: number }
export function ipv4(src: string, dst: string, proto: number, body: Uint8Array, o: Ipv4Opts = {}): Uint8Array {
  const opts = o.options ?? [];
  const ihl = 20 + opts.length;
  const frag = ((o.moreFragments ? 1 : 0) << 13) | ((o.fragOffset ?? 0) & 0x1fff);
  return concat([0x40 | (ihl / 4), 0], u16(o.totalLength ?? ihl + body.length), [0, 1], u16(frag), [o.ttl ?? 64, proto, 0, 0],
    ipv4Bytes(src), ipv4Bytes(dst), opts, body);
}
/** `ext`: extension headers as [type, bytes] in order; their next-header bytes are filled in. */
export function ipv6(src: string, dst: string, proto: number, body: Uint8Array, ext: [number, number[]][] = []): Uint8Array {
  const chain: Uint8Array[] = [];
  for (let i = 0; i < ext.length; i++) {
    const bytes = ext[i]![1].slice();
    bytes[0] = i + 1 < ext.length ? ext[i + 1]![0] : proto;
    chain.push(Uint8Array.from(bytes));
  }
  const first = ext.length ? ext[0]![0] : proto;
  const payload = concat(...chain, body);
  return concat([0x60, 0, 0, 0], u16(payload.length), [first, 64], ipv6Bytes(src), ipv6Bytes(dst), payload);
}
/** Splits an unfragmented IPv4 datagram into fragments of `size` payload bytes (a multiple of 8). */
export function fragmentIpv4(dgram: Uint8Array, size: number, id = 0x1234): Uint8Array[] {
  const ihl = (dgram[0]! & 0xf) * 4;
  const body = dgram.subarray(ihl);
  const out: Uint8Array[] = [];
  for (let off = 0; off < body.length; off += size) {
    const chunk = body.subarray(off, Math.min(body.length, off + size));
    const h = dgram.slice(0, ihl);
    const len = ihl + chunk.length;
    h[2] = len >> 8; h[3] = len & 0xff;
    h[4] = id >> 8; h[5] = id & 0xff;
    const flags = ((off + size < body.length ? 1 : 0) << 13) | (off / 8);
    h[6] = flags >> 8; h[7] = flags & 0xff;
    out.push(concat(h, chunk));
  }
  return out;
}

/** Splits an unfragmented IPv6 datagram (no extension headers) with a Fragment header after the fixed header. */
export function fragmentIpv6(dgram: Uint8Array, size: number, id = 0xabcdef01): Uint8Array[] {
  const next = dgram[6]!;
  const body = dgram.subarray(40);
  const out: Uint8Array[] = [];
  for (let off = 0; off < body.length; off += size) {
    const chunk = body.subarray(off, Math.min(body.length, off + size));
    const h = dgram.slice(0, 40);
    const plen = 8 + chunk.length;
    h[4] = plen >> 8; h[5] = plen & 0xff; h[6] = 44;
    const fo = off | (off + size < body.length ? 1 : 0);
    out.push(concat(h, [next, 0, fo >> 8, fo & 0xff, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff], chunk));
  }
  return out;
}

export function ethernet(ip: Uint8Array, vlans: number[] = [], etherTypeOverride?: number): Uint8Array {
  const type = etherTypeOverride ?? ((ip[0]! >> 4) === 6 ? 0x86dd : 0x0800);
  const tags = vlans.flatMap((tpid, i) => [...u16(tpid), ...u16(100 + i)]);
  return concat([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], tags, u16(type), ip);
}
export function linuxCooked(ip: Uint8Array): Uint8Array {
  const type = (ip[0]! >> 4) === 6 ? 0x86dd : 0x0800;
  return concat([0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0], u16(type), ip);
}
export function linuxCooked2(ip: Uint8Array): Uint8Array {
  const type = (ip[0]! >> 4) === 6 ? 0x86dd : 0x0800;
  return concat(u16(type), [0, 0], u32(2), [0, 1, 4, 6], [2, 0, 0, 0, 0, 1, 0, 0], ip);
}

/** A TCP/IPv4 Ethernet frame in one call. */
export function tcp4Frame(src: string, sport: number, dst: string, dport: number, payload: Uint8Array | number[], o: TcpOpts = {}): Uint8Array {
  return ethernet(ipv4(src, dst, 6, tcpSegment(sport, dport, payload, o)));
}

export interface PcapRecord { time: number; data: Uint8Array; origLen?: number }
export function pcapFile(linkType: number, records: PcapRecord[], opts: { littleEndian?: boolean; nanos?: boolean } = {}): Uint8Array {
  const le = opts.littleEndian ?? true;
  const magic = opts.nanos ? 0xa1b23c4d : 0xa1b2c3d4;
  const ticks = opts.nanos ? 1e9 : 1e6;
  const hdr = new DataView(new ArrayBuffer(24));
  hdr.setUint32(0, magic, le); hdr.setUint16(4, 2, le); hdr.setUint16(6, 4, le); hdr.setUint32(16, 262144, le); hdr.setUint32(20, linkType, le);
  const parts: Uint8Array[] = [new Uint8Array(hdr.buffer)];
  for (const r of records) {
    const h = new DataView(new ArrayBuffer(16));
    const sec = Math.floor(r.time);
    h.setUint32(0, sec, le); h.setUint32(4, Math.round((r.time - sec) * ticks), le);
    h.setUint32(8, r.data.length, le); h.setUint32(12, r.origLen ?? r.data.length, le);
    parts.push(new Uint8Array(h.buffer), r.data);
  }
  return concat(...parts);
}

function pad4(b: Uint8Array): Uint8Array {
  return concat(b, new Array((4 - (b.length % 4)) % 4).fill(0));
}
function block(type: number, body: Uint8Array, le: boolean): Uint8Array {
  const total = 12 + body.length;
  const h = new DataView(new ArrayBuffer(8));
  h.setUint32(0, type, le); h.setUint32(4, total, le);
  const t = new DataView(new ArrayBuffer(4));
  t.setUint32(0, total, le);
  return concat(new Uint8Array(h.buffer), body, new Uint8Array(t.buffer));
}
export interface NgInterface { linkType: number; tsresol?: number; snapLen?: number }
export interface NgPacket { iface: number; ticks: bigint; data: Uint8Array; simple?: boolean }
export function pcapngFile(interfaces: NgInterface[], packets: NgPacket[], opts: { littleEndian?: boolean } = {}): Uint8Array {
  const le = opts.littleEndian ?? true;
  const shb = new DataView(new ArrayBuffer(16));
  shb.setUint32(0, 0x1a2b3c4d, le); shb.setUint16(4, 1, le); shb.setUint16(6, 0, le);
  shb.setBigInt64(8, -1n, le);
  // The SHB type is a palindrome, so byte order does not matter for it.
  const parts: Uint8Array[] = [block(0x0a0d0d0a, new Uint8Array(shb.buffer), le)];
  for (const i of interfaces) {
    const b = new DataView(new ArrayBuffer(8));
    b.setUint16(0, i.linkType, le); b.setUint32(4, i.snapLen ?? 0, le);
    let opts: Uint8Array = new Uint8Array(0);
    if (i.tsresol !== undefined) {
      const o = new DataView(new ArrayBuffer(8));
      o.setUint16(0, 9, le); o.setUint16(2, 1, le); o.setUint8(4, i.tsresol);
      opts = concat(new Uint8Array(o.buffer), [0, 0, 0, 0]);
    }
    parts.push(block(1, concat(new Uint8Array(b.buffer), opts), le));
  }
  for (const p of packets) {
    if (p.simple) {
      const b = new DataView(new ArrayBuffer(4));
      b.setUint32(0, p.data.length, le);
      parts.push(block(3, pad4(concat(new Uint8Array(b.buffer), p.data)), le));
      continue;
    }
    const b = new DataView(new ArrayBuffer(20));
    b.setUint32(0, p.iface, le);
    b.setUint32(4, Number(p.ticks >> 32n), le); b.setUint32(8, Number(p.ticks & 0xffffffffn), le);
    b.setUint32(12, p.data.length, le); b.setUint32(16, p.data.length, le);
    parts.push(block(6, pad4(concat(new Uint8Array(b.buffer), p.data)), le));
  }
  return concat(...parts);
}
