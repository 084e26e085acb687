// HTTP/2 with prior knowledge (h2c) client bytes for claim tests: the connection preface, a SETTINGS
// frame and the first request's HEADERS (+ CONTINUATION) frames, with the header block written
// field by field in any HPACK representation (RFC 7541 §6). Values are written raw or Huffman-coded
// (`huffman`). The product's decoder is checked against nghttp2's encoder (node:http2) and RFC 7541
// Appendix C, so this encoder only needs to agree with them, not with the decoder.

import http2 from "node:http2";
import net from "node:net";

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** One header-block representation. */
export type HpackRep =
  /** Indexed field (static 1–61, dynamic 62+). */
  | { indexed: number }
  /** Literal field; `nameIndex` 0 writes the name as a string. The value: raw `value` or Huffman-coded `huffman`. */
  | { name?: string; nameIndex?: number; value: string; indexing: "incremental" | "none" | "never" }
  | { name?: string; nameIndex?: number; huffman: string; indexing: "incremental" | "none" | "never" }
  /** Dynamic table size update. */
  | { sizeUpdate: number }
  /** Bytes written as they are (a Huffman string from a real encoder, or garbage). */
  | { raw: Buffer };

/** An integer with an N-bit prefix and the given high bits (RFC 7541 §5.1). */
export function hpackInteger(value: number, prefixBits: number, high: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Huffman code lengths of symbols 0..256 (RFC 7541 Appendix B); the code is canonical. */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const HUFFMAN_CODES: bigint[] = (() => {
  const codes: bigint[] = new Array<bigint>(257);
  const order = [...HUFFMAN_LENGTHS.keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  let code = 0n;
  let len = HUFFMAN_LENGTHS[order[0]!]!;
  for (const [i, s] of order.entries()) {
    if (i > 0) code = (code + 1n) << BigInt(HUFFMAN_LENGTHS[s]! - len);
    len = HUFFMAN_LENGTHS[s]!;
    codes[s] = code;
  }
  return codes;
})();

/** A Huffman-coded string literal (H = 1), padded with the most significant bits of EOS. */
export function hpackHuffman(s: string): Buffer {
  let acc = 0n;
  let bits = 0;
  for (const c of Buffer.from(s, "latin1")) {
    acc = (acc << BigInt(HUFFMAN_LENGTHS[c]!)) | HUFFMAN_CODES[c]!;
    bits += HUFFMAN_LENGTHS[c]!;
  }
  const pad = (8 - (bits % 8)) % 8;
  acc = (acc << BigInt(pad)) | ((1n << BigInt(pad)) - 1n);
  const bytes = Buffer.alloc((bits + pad) / 8);
  for (let i = bytes.length - 1; i >= 0; i--) { bytes[i] = Number(acc & 0xffn); acc >>= 8n; }
  return Buffer.concat([hpackInteger(bytes.length, 7, 0x80), bytes]);
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, "latin1");
  return Buffer.concat([hpackInteger(b.length, 7, 0), b]);
}

export function hpackBlock(reps: HpackRep[]): Buffer {
  return Buffer.concat(reps.map((r) => {
    if ("raw" in r) return r.raw;
    if ("indexed" in r) return hpackInteger(r.indexed, 7, 0x80);
    if ("sizeUpdate" in r) return hpackInteger(r.sizeUpdate, 5, 0x20);
    const [bits, high] = r.indexing === "incremental" ? [6, 0x40] : r.indexing === "never" ? [4, 0x10] : [4, 0];
    const name = r.nameIndex ? hpackInteger(r.nameIndex, bits, high) : Buffer.concat([Buffer.from([high]), hpackString(r.name ?? "")]);
    return Buffer.concat([name, "huffman" in r ? hpackHuffman(r.huffman) : hpackString(r.value)]);
  }));
}

/** A request's usual pseudo-headers (GET, http, /) and :authority, as a browser-like client writes them. */
export function requestBlock(authority: string, extra: HpackRep[] = []): Buffer {
  return hpackBlock([
    { indexed: 2 }, { indexed: 6 }, { indexed: 4 },
    { nameIndex: 1, value: authority, indexing: "incremental" },
    ...extra,
  ]);
}

export function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

export interface H2cOptions {
  /** Frames between SETTINGS and HEADERS (WINDOW_UPDATE, PRIORITY, …). */
  before?: Buffer[];
  /** Split the block: HEADERS carries this many bytes, the rest goes in CONTINUATION frames of this size. */
  fragment?: number;
  /** Pad the HEADERS frame with this many bytes (PADDED flag). */
  padding?: number;
  /** Include a priority section (PRIORITY flag). */
  priority?: boolean;
  stream?: number;
  /** Frames after the first request (a second request, DATA, …). */
  after?: Buffer[];
}

/** Preface, SETTINGS, then the HEADERS (and CONTINUATION) frames of `block`. */
export function h2cRequest(block: Buffer, o: H2cOptions = {}): Buffer {
  const stream = o.stream ?? 1;
  const settings = h2Frame(4, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0, 0x60, 0, 0]));
  const frames = [H2_PREFACE, settings, ...(o.before ?? [])];
  const n = o.fragment ?? block.length;
  const first = block.subarray(0, n);
  const rest = block.subarray(n);
  let flags = rest.length === 0 ? 0x04 : 0; // END_HEADERS
  const parts: Buffer[] = [];
  if (o.padding !== undefined) { flags |= 0x08; parts.push(Buffer.from([o.padding])); }
  if (o.priority) { flags |= 0x20; parts.push(Buffer.from([0, 0, 0, 0, 15])); }
  parts.push(first);
  if (o.padding !== undefined) parts.push(Buffer.alloc(o.padding));
  frames.push(h2Frame(1, flags | 0x01, stream, Buffer.concat(parts))); // END_STREAM: a GET
  for (let off = 0; off < rest.length; off += n) {
    const piece = rest.subarray(off, off + n);
    frames.push(h2Frame(9, off + n >= rest.length ? 0x04 : 0, stream, piece));
  }
  return Buffer.concat([...frames, ...(o.after ?? [])]);
}

/**
 * The bytes node:http2 (nghttp2: its framing and HPACK encoder, Huffman where shorter) sends for
 * these requests on one connection, captured by a plain TCP server on loopback that never answers.
 */
export async function nghttp2Requests(requests: http2.OutgoingHttpHeaders[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let done!: () => void;
  const allSent = new Promise<void>((resolve) => { done = resolve; });
  const server = net.createServer((sock) => {
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      let blocks = 0;
      for (let off = 24; off + 9 <= all.length;) {
        const len = all.readUIntBE(off, 3);
        if (off + 9 + len > all.length) break;
        if ((all[off + 3] === 1 || all[off + 3] === 9) && (all[off + 4]! & 4) !== 0) blocks++;
        off += 9 + len;
      }
      if (blocks >= requests.length) done();
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const client = http2.connect("http://placeholder.invalid", { createConnection: () => net.connect(port, "127.0.0.1") });
  client.on("error", () => undefined);
  for (const headers of requests) client.request(headers, { endStream: true }).on("error", () => undefined);
  await allSent;
  client.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return Buffer.concat(chunks);
}
