// Pairs serialization for header/metadata maps and map properties (reference/proxy-wasm.md §2.3).

export type Pairs = [string | Uint8Array, string | Uint8Array][];

const bytesOf = (v: string | Uint8Array): Buffer => (typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v));

export function encodePairs(pairs: Pairs): Buffer {
  const parts = pairs.map(([k, v]) => [bytesOf(k), bytesOf(v)] as const);
  const header = Buffer.alloc(4 + parts.length * 8);
  header.writeUInt32LE(parts.length, 0);
  const body: Buffer[] = [];
  parts.forEach(([k, v], i) => {
    header.writeUInt32LE(k.length, 4 + i * 8);
    header.writeUInt32LE(v.length, 8 + i * 8);
    body.push(k, Buffer.of(0), v, Buffer.of(0));
  });
  return Buffer.concat([header, ...body]);
}

/** Limits from proxy-wasm-cpp-host limits.h. */
export const PAIRS_MAX_BYTES = 1 << 20;
export const PAIRS_MAX_COUNT = 1024;

/**
 * Decodes pairs as the host does: the buffer must be consumed exactly and every string
 * NUL-terminated, otherwise the map is treated as empty (returns []).
 */
export function decodePairs(buf: Uint8Array): [Buffer, Buffer][] {
  if (buf.length === 0 || buf.length > PAIRS_MAX_BYTES || buf.length < 4) return [];
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const count = b.readUInt32LE(0);
  if (count > PAIRS_MAX_COUNT || 4 + count * 8 > b.length) return [];
  let off = 4 + count * 8;
  const out: [Buffer, Buffer][] = [];
  for (let i = 0; i < count; i++) {
    const kl = b.readUInt32LE(4 + i * 8), vl = b.readUInt32LE(8 + i * 8);
    if (off + kl + vl + 2 > b.length || b[off + kl] !== 0 || b[off + kl + 1 + vl] !== 0) return [];
    out.push([Buffer.from(b.subarray(off, off + kl)), Buffer.from(b.subarray(off + kl + 1, off + kl + 1 + vl))]);
    off += kl + vl + 2;
  }
  return off === b.length ? out : [];
}
