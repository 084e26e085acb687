// Builders for the first messages of every protocol the detector knows (client and server side),
// built from the protocol specifications rather than pasted captures, plus near-misses.
const enc = new TextEncoder();

export function bytes(...parts: (Uint8Array | number[] | string)[]): Uint8Array {
  const arrs = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of arrs) { out.set(a, off); off += a.length; }
  return out;
}
export const u16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
export const u24 = (v: number) => [(v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
export const u32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
export const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

// ---- TLS ----
export interface HelloOpts {
  sni?: string | string[];
  alpn?: string[];
  versions?: number[];
  ech?: boolean;
  /** Split the handshake message into TLS records of at most this many bytes. */
  recordSize?: number;
  legacyVersion?: number;
  /** Extra filler extension bytes (to make the hello large). */
  padding?: number;
  compression?: number[];
}
function ext(type: number, body: Uint8Array | number[]): Uint8Array {
  const b = body instanceof Uint8Array ? body : Uint8Array.from(body);
  return bytes(u16(type), u16(b.length), b);
}
export function clientHelloBody(o: HelloOpts = {}): Uint8Array {
  const exts: Uint8Array[] = [ext(0x0a0a, [])]; // GREASE
  const snis = o.sni === undefined ? [] : Array.isArray(o.sni) ? o.sni : [o.sni];
  for (const name of snis) {
    const n = enc.encode(name);
    exts.push(ext(0, bytes(u16(n.length + 3), [0], u16(n.length), n)));
  }
  if (o.alpn) {
    const list = bytes(...o.alpn.map((a) => bytes([a.length], a)));
    exts.push(ext(16, bytes(u16(list.length), list)));
  }
  if (o.versions) exts.push(ext(43, bytes([o.versions.length * 2], ...o.versions.map(u16))));
  if (o.ech) exts.push(ext(0xfe0d, new Uint8Array(40).fill(7)));
  if (o.padding) exts.push(ext(21, new Uint8Array(o.padding)));
  const extBlock = bytes(...exts);
  const comp = o.compression ?? [0];
  return bytes(u16(o.legacyVersion ?? 0x0303), new Uint8Array(32).fill(0x42), [32], new Uint8Array(32).fill(0x17),
    u16(6), [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f], [comp.length], comp, u16(extBlock.length), extBlock);
}
export function clientHello(o: HelloOpts = {}): Uint8Array {
  const body = clientHelloBody(o);
  const hs = bytes([1], u24(body.length), body);
  const size = o.recordSize ?? 16384;
  const records: Uint8Array[] = [];
  for (let off = 0; off < hs.length; off += size) {
    const frag = hs.subarray(off, off + size);
    records.push(bytes([0x16, 3, 1], u16(frag.length), frag));
  }
  return bytes(...records);
}
export function sslv2Hello(): Uint8Array {
  const cs = [0x00, 0x00, 0x04, 0x01, 0x00, 0x80]; // 2 cipher specs
  const challenge = new Uint8Array(16).fill(9);
  const body = bytes([1], u16(0x0301), u16(cs.length), u16(0), u16(challenge.length), cs, challenge);
  return bytes([0x80 | (body.length >> 8), body.length & 0xff], body);
}

// ---- HTTP ----
export const h2Preface = () => bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [0, 0, 0, 4, 0, 0, 0, 0, 0]);
export function httpRequest(method: string, target: string, headers: [string, string][] = [], version = "HTTP/1.1"): Uint8Array {
  return bytes(`${method} ${target} ${version}\r\n`, ...headers.map(([k, v]) => `${k}: ${v}\r\n`), "\r\n");
}

// ---- databases ----
export function pgStartup(params: [string, string][] = [["user", "app"], ["database", "orders"]], minor = 0): Uint8Array {
  const body = bytes(...params.flatMap(([k, v]) => [k, [0], v, [0]]), [0]);
  return bytes(u32(8 + body.length), u32((3 << 16) | minor), body);
}
export const pgSslRequest = () => bytes(u32(8), u32(80877103));
export const pgGssEncRequest = () => bytes(u32(8), u32(80877104));
export const pgCancelRequest = () => bytes(u32(16), u32(80877102), u32(4242), u32(0xdeadbeef));

export function mysqlGreeting(version = "8.0.36"): Uint8Array {
  const payload = bytes([10], version, [0], le32(17), new Uint8Array(8).fill(0x61), [0], [0xff, 0xf7], [0xff], [2, 0], [0xff, 0xdf],
    [21], new Array(10).fill(0), new Uint8Array(12).fill(0x62), [0], "caching_sha2_password", [0]);
  return bytes([payload.length & 0xff, (payload.length >> 8) & 0xff, 0, 0], payload);
}
export function mysqlError(message = "Host '198.18.0.1' is not allowed to connect to this MySQL server"): Uint8Array {
  const payload = bytes([0xff], [0x6a, 0x04], message);
  return bytes([payload.length & 0xff, (payload.length >> 8) & 0xff, 0, 0], payload);
}

function bsonDoc(key: string, value: number): Uint8Array {
  const el = bytes([0x10], key, [0], le32(value)); // int32 element
  return bytes(le32(4 + el.length + 1), el, [0]);
}
export function mongoOpMsg(command = "hello"): Uint8Array {
  const doc = bsonDoc(command, 1);
  const body = bytes(le32(0), [0], doc);
  return bytes(le32(16 + body.length), le32(7), le32(0), le32(2013), body);
}
export function mongoOpQuery(): Uint8Array {
  const doc = bsonDoc("isMaster", 1);
  const body = bytes(le32(0), "admin.$cmd", [0], le32(0), le32(0xffffffff), doc);
  return bytes(le32(16 + body.length), le32(1), le32(0), le32(2004), body);
}
export function mongoOpCompressed(): Uint8Array {
  const body = bytes(le32(2013), le32(40), [2], new Uint8Array(30).fill(0x78));
  return bytes(le32(16 + body.length), le32(9), le32(0), le32(2012), body);
}

export function cassandraOptions(version = 4): Uint8Array {
  return bytes([version, 0], u16(0), [0x05], u32(0));
}
export function cassandraStartup(version = 4): Uint8Array {
  const str = (s: string) => bytes(u16(s.length), s);
  const body = bytes(u16(1), str("CQL_VERSION"), str("3.0.0"));
  return bytes([version, 0], u16(1), [0x01], u32(body.length), body);
}

export function kafkaRequest(apiKey = 18, apiVersion = 3, clientId: string | null = "rdkafka"): Uint8Array {
  const id = clientId === null ? u16(0xffff) : bytes(u16(clientId.length), clientId);
  const body = bytes(u16(apiKey), u16(apiVersion), u32(1), id, [0]);
  return bytes(u32(body.length), body);
}

// ---- caches ----
export function respCommand(...args: string[]): Uint8Array {
  return bytes(`*${args.length}\r\n`, ...args.map((a) => `$${enc.encode(a).length}\r\n${a}\r\n`));
}
export function memcachedBinaryGet(key = "k"): Uint8Array {
  return bytes([0x80, 0x00], u16(key.length), [0, 0], u16(0), u32(key.length), u32(0), new Array(8).fill(0), key);
}

// ---- messaging ----
export const amqp091Header = () => bytes("AMQP", [0, 0, 9, 1]);
export const amqp10Header = () => bytes("AMQP", [0, 1, 0, 0]);
export function mqttConnect(level = 4, clientId = "sensor-1", user?: string): Uint8Array {
  const name = level === 3 ? "MQIsdp" : "MQTT";
  const flags = 0x02 | (user ? 0x80 : 0);
  const props = level === 5 ? [0] : [];
  const payload = bytes(u16(clientId.length), clientId, user ? bytes(u16(user.length), user) : []);
  const variable = bytes(u16(name.length), name, [level, flags], u16(60), props);
  const remaining = variable.length + payload.length;
  return bytes([0x10, remaining], variable, payload);
}

// ---- naming ----
export function dnsQuery(name = "db.example.com", qtype = 1, edns = false): Uint8Array {
  const labels = bytes(...name.split(".").map((l) => bytes([l.length], l)), [0]);
  const opt = edns ? bytes([0], u16(41), u16(1232), u32(0), u16(0)) : new Uint8Array(0);
  const msg = bytes(u16(0x1234), u16(0x0100), u16(1), u16(0), u16(0), u16(edns ? 1 : 0), labels, u16(qtype), u16(1), opt);
  return bytes(u16(msg.length), msg);
}
function ber(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return bytes([tag], len, content);
}
export function ldapBind(dn = "cn=admin,dc=example,dc=org", password = "secret", id = 1): Uint8Array {
  const op = ber(0x60, bytes(ber(0x02, Uint8Array.from([3])), ber(0x04, enc.encode(dn)), ber(0x80, enc.encode(password))));
  return ber(0x30, bytes(ber(0x02, Uint8Array.from([id])), op));
}
export function ldapSearchRootDse(): Uint8Array {
  const filter = ber(0x87, enc.encode("objectClass"));
  const op = ber(0x63, bytes(ber(0x04, new Uint8Array(0)), [0x0a, 1, 0], [0x0a, 1, 0], ber(0x02, Uint8Array.from([0])),
    ber(0x02, Uint8Array.from([0])), [0x01, 1, 0], filter, ber(0x30, ber(0x04, enc.encode("namingContexts")))));
  return ber(0x30, bytes(ber(0x02, Uint8Array.from([1])), op));
}
export function ldapStartTls(): Uint8Array {
  const op = ber(0x77, ber(0x80, enc.encode("1.3.6.1.4.1.1466.20037")));
  return ber(0x30, bytes(ber(0x02, Uint8Array.from([1])), op));
}

// ---- text ----
export const sshBanner = (sw = "OpenSSH_9.2p1 Debian-2+deb12u3") => bytes(`SSH-2.0-${sw}\r\n`);
