// Client bytes for claim attacks and their benign twins (issue #14): TLS ClientHellos with padding,
// several server_name extensions or encrypted_client_hello, split into records as a client would.
// Used by the host tests and by scripts that record attack captures for `egret simulate`.

export interface HelloOptions {
  /** One server_name extension per entry (two entries: the conflicting-SNI attack); [] for none. */
  names: string[];
  /** Bytes of a padding extension (RFC 7685) placed before the server_name extensions. */
  padding?: number;
  /** Offer encrypted_client_hello (0xfe0d) with an opaque payload, as real and GREASE ECH do. */
  ech?: boolean;
  alpn?: string[];
}

/** A TLS 1.3 ClientHello in records of at most 16 KiB. */
export function tlsHello(o: HelloOptions): Buffer {
  const ext: Buffer[] = [];
  if (o.padding) ext.push(extension(21, Buffer.alloc(o.padding)));
  for (const n of o.names) {
    const name = Buffer.from(n);
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    ext.push(extension(0, Buffer.concat([u16(entry.length), entry])));
  }
  if (o.alpn?.length) {
    const protos = Buffer.concat(o.alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])));
    ext.push(extension(16, Buffer.concat([u16(protos.length), protos])));
  }
  ext.push(extension(43, Buffer.from([0x02, 0x03, 0x04])));
  if (o.ech) ext.push(extension(0xfe0d, Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 7]), u16(32), Buffer.alloc(32, 9), u16(64), Buffer.alloc(64, 5)])));
  const exts = Buffer.concat(ext);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7), Buffer.from([0]),
    u16(4), Buffer.from([0x13, 0x01, 0x13, 0x02]), Buffer.from([1, 0]), u16(exts.length), exts,
  ]);
  const hs = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  const records: Buffer[] = [];
  for (let off = 0; off < hs.length; off += 16384) {
    const part = hs.subarray(off, Math.min(hs.length, off + 16384));
    records.push(Buffer.from([0x16, 0x03, 0x01]), u16(part.length), part);
  }
  return Buffer.concat(records);
}

function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}
function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u24(n: number): Buffer { return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]); }
