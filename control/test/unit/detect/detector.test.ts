// Synthetic deliveries of every protocol's first bytes — whole, byte at a time and in random
// segmentations — through the detector compiled into egret.wasm; near-misses must stay unknown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DetectorEngine, PROTO_NEED_MORE, type DetectedClaims } from "../../../src/detect/wasm-detector.js";
import * as m from "./messages.js";
import { h2cRequest, requestBlock } from "../../support/h2c.js";

const engine = new DetectorEngine();

type Step = { from: "client" | "server"; data: Uint8Array };
const C = (data: Uint8Array | string): Step => ({ from: "client", data: typeof data === "string" ? m.bytes(data) : data });
const S = (data: Uint8Array | string): Step => ({ from: "server", data: typeof data === "string" ? m.bytes(data) : data });

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Mode = "whole" | "bytewise" | number; // number: random segmentation seed
/** Feeds the steps in order, split per mode; returns the result without expiring, plus claims. */
function run(steps: Step[], mode: Mode, expire = false): { id: number; protocol: string; claims: DetectedClaims } {
  const s = engine.open(false);
  try {
    const rand = typeof mode === "number" ? rng(mode) : undefined;
    for (const step of steps) {
      let off = 0;
      while (off < step.data.length) {
        const n = mode === "whole" ? step.data.length : mode === "bytewise" ? 1 : 1 + Math.floor(rand!() * 40);
        const chunk = step.data.subarray(off, off + n);
        if (step.from === "client") s.feedClient(chunk);
        else s.feedServer(chunk);
        off += n;
      }
    }
    const id = expire ? s.expire() : s.result;
    return { id, protocol: id === PROTO_NEED_MORE ? "(need more)" : engine.protocolName(id), claims: s.claims() };
  } finally {
    s.close();
  }
}

interface Case { name: string; steps: Step[]; protocol: string; claims?: Partial<DetectedClaims> }

const cases: Case[] = [
  { name: "TLS 1.3 ClientHello with SNI, ALPN, supported_versions", steps: [C(m.clientHello({ sni: "API.Example.COM", alpn: ["h2", "http/1.1"], versions: [0x3a3a, 0x0304, 0x0303] }))],
    protocol: "tls", claims: { sni: "api.example.com", alpn: ["h2", "http/1.1"], tlsVersion: 0x0304, ech: false } },
  { name: "TLS ClientHello split over many 100-byte records", steps: [C(m.clientHello({ sni: "pg.db.example.com", alpn: ["postgresql"], recordSize: 100, padding: 600 }))],
    protocol: "tls", claims: { sni: "pg.db.example.com", alpn: ["postgresql"], tlsVersion: 0x0303 } },
  { name: "TLS ClientHello offering ECH", steps: [C(m.clientHello({ sni: "public.example.net", ech: true, versions: [0x0304] }))],
    protocol: "tls", claims: { sni: "public.example.net", ech: true } },
  { name: "TLS 1.0 ClientHello without extensions' SNI", steps: [C(m.clientHello({ legacyVersion: 0x0301 }))], protocol: "tls", claims: { sni: null, tlsVersion: 0x0301 } },
  { name: "TLS ClientHello with two SNI extensions leaves the SNI absent", steps: [C(m.clientHello({ sni: ["a.example", "b.example"] }))], protocol: "tls", claims: { sni: null } },
  { name: "SSLv2-compatible ClientHello", steps: [C(m.sslv2Hello())], protocol: "tls", claims: { sni: null, tlsVersion: 0x0301 } },
  { name: "HTTP/1.1 GET with Host (port split, lowercased)", steps: [C(m.httpRequest("GET", "/index.html", [["User-Agent", "t"], ["Host", "WWW.Example.com:8080"]]))],
    protocol: "http", claims: { httpHost: "www.example.com", httpHostPort: 8080, proxyForm: null } },
  { name: "HTTP CONNECT to a forward proxy", steps: [C(m.httpRequest("CONNECT", "Secure.Example.com:443", [["Host", "secure.example.com:443"]]))],
    protocol: "http", claims: { proxyForm: "connect", connectTarget: "secure.example.com", connectTargetPort: 443 } },
  { name: "HTTP CONNECT to an IPv6 literal", steps: [C(m.httpRequest("CONNECT", "[2001:db8::1]:8443", []))],
    protocol: "http", claims: { proxyForm: "connect", connectTarget: "2001:db8::1", connectTargetPort: 8443 } },
  { name: "HTTP absolute-form URI through a proxy", steps: [C(m.httpRequest("GET", "http://Files.Example.org/a?b", [["Host", "files.example.org"]]))],
    protocol: "http", claims: { proxyForm: "absolute", connectTarget: "files.example.org", connectTargetPort: 80, httpHost: "files.example.org" } },
  { name: "HTTP with conflicting Host headers reports no host", steps: [C(m.httpRequest("GET", "/", [["Host", "a.example"], ["Host", "b.example"]]))],
    protocol: "http", claims: { httpHost: null } },
  { name: "HTTP/1.0 POST with a custom method-like token", steps: [C(m.httpRequest("PROPFIND", "/dav/", [["Host", "dav.example"]], "HTTP/1.0"))], protocol: "http" },
  { name: "HTTP/2 prior knowledge: the first request's :authority", steps: [C(h2cRequest(requestBlock("API.Example.com:8443"), { fragment: 5 }))],
    protocol: "http2", claims: { h2Authority: "api.example.com", h2Flags: 0, httpHost: null } },
  { name: "PostgreSQL StartupMessage 3.0", steps: [C(m.pgStartup())], protocol: "postgresql" },
  { name: "PostgreSQL StartupMessage 3.2", steps: [C(m.pgStartup([["user", "u"]], 2))], protocol: "postgresql" },
  { name: "PostgreSQL SSLRequest (STARTTLS keeps the label)", steps: [C(m.pgSslRequest()), S("S"), C(m.clientHello({ sni: "db" }))], protocol: "postgresql" },
  { name: "PostgreSQL GSSENCRequest", steps: [C(m.pgGssEncRequest())], protocol: "postgresql" },
  { name: "PostgreSQL CancelRequest", steps: [C(m.pgCancelRequest())], protocol: "postgresql" },
  { name: "MySQL 8 greeting", steps: [S(m.mysqlGreeting())], protocol: "mysql" },
  { name: "MariaDB greeting", steps: [S(m.mysqlGreeting("5.5.5-10.11.6-MariaDB-0+deb12u1"))], protocol: "mysql" },
  { name: "MySQL refusing the host", steps: [S(m.mysqlError())], protocol: "mysql" },
  { name: "Redis RESP array", steps: [C(m.respCommand("SET", "k", "v"))], protocol: "redis" },
  { name: "Redis RESP3 HELLO", steps: [C(m.respCommand("HELLO", "3"))], protocol: "redis" },
  { name: "Redis inline PING", steps: [C("PING\r\n")], protocol: "redis" },
  { name: "Redis inline GET in upper case", steps: [C("GET user:1\r\n")], protocol: "redis" },
  { name: "Redis inline 'get k' settled by a RESP reply", steps: [C("get k\r\n"), S("$1\r\nv\r\n")], protocol: "redis" },
  { name: "memcached 'get k' settled by a memcached reply", steps: [C("get k\r\n"), S("VALUE k 0 1\r\nv\r\nEND\r\n")], protocol: "memcached" },
  { name: "memcached set", steps: [C("set session:9 0 3600 5\r\nhello\r\n")], protocol: "memcached" },
  { name: "memcached stats", steps: [C("stats\r\n")], protocol: "memcached" },
  { name: "memcached meta get", steps: [C("mg foo v t\r\n")], protocol: "memcached" },
  { name: "memcached binary GET", steps: [C(m.memcachedBinaryGet("user:1"))], protocol: "memcached" },
  { name: "MongoDB OP_MSG hello", steps: [C(m.mongoOpMsg())], protocol: "mongodb" },
  { name: "MongoDB OP_QUERY isMaster", steps: [C(m.mongoOpQuery())], protocol: "mongodb" },
  { name: "MongoDB OP_COMPRESSED", steps: [C(m.mongoOpCompressed())], protocol: "mongodb" },
  { name: "SSH client banner", steps: [C(m.sshBanner())], protocol: "ssh" },
  { name: "SSH server banner after preamble lines", steps: [S("Welcome\r\nAuthorized use only\r\n"), S(m.sshBanner("dropbear_2022.83"))], protocol: "ssh" },
  { name: "Kafka ApiVersions", steps: [C(m.kafkaRequest())], protocol: "kafka" },
  { name: "Kafka Metadata with a null client id", steps: [C(m.kafkaRequest(3, 1, null))], protocol: "kafka" },
  { name: "AMQP 0-9-1 header", steps: [C(m.amqp091Header())], protocol: "amqp" },
  { name: "AMQP 1.0 header", steps: [C(m.amqp10Header())], protocol: "amqp" },
  { name: "MQTT 3.1.1 CONNECT", steps: [C(m.mqttConnect(4, "dev", "user"))], protocol: "mqtt" },
  { name: "MQTT 3.1 CONNECT (MQIsdp)", steps: [C(m.mqttConnect(3))], protocol: "mqtt" },
  { name: "MQTT 5 CONNECT", steps: [C(m.mqttConnect(5))], protocol: "mqtt" },
  { name: "LDAP simple bind", steps: [C(m.ldapBind())], protocol: "ldap" },
  { name: "LDAP root DSE search", steps: [C(m.ldapSearchRootDse())], protocol: "ldap" },
  { name: "LDAP StartTLS", steps: [C(m.ldapStartTls())], protocol: "ldap" },
  { name: "DNS over TCP query", steps: [C(m.dnsQuery())], protocol: "dns" },
  { name: "DNS over TCP query with EDNS", steps: [C(m.dnsQuery("_ldap._tcp.example.org", 33, true))], protocol: "dns" },
  { name: "DNS over TCP inverse query (IQUERY)", steps: [C(m.bytes(m.u16(27), m.u16(0x87ee), m.u16(0x0980), m.u16(0), m.u16(1), m.u16(0), m.u16(0), [0], m.u16(1), m.u16(1), m.u32(31337), m.u16(4), [4, 3, 2, 1]))], protocol: "dns" },
  { name: "Cassandra v4 OPTIONS", steps: [C(m.cassandraOptions())], protocol: "cassandra" },
  { name: "Cassandra v5 STARTUP", steps: [C(m.cassandraStartup(5))], protocol: "cassandra" },
  { name: "SMTP ESMTP greeting", steps: [S("220 mx.example.org ESMTP Postfix\r\n")], protocol: "smtp" },
  { name: "SMTP multi-line greeting", steps: [S("220-mail.example.org\r\n220 ESMTP ready\r\n")], protocol: "smtp" },
  { name: "SMTP neutral greeting settled by EHLO", steps: [S("220 mail.example.org\r\n"), C("EHLO client.example\r\n")], protocol: "smtp" },
  { name: "FTP greeting", steps: [S("220 (vsFTPd 3.0.3)\r\n")], protocol: "ftp" },
  { name: "FTP neutral greeting settled by USER", steps: [S("220-FileZilla Server 1.8\r\n220 Please visit https://filezilla-project.org/\r\n"), C("USER anonymous\r\n")], protocol: "ftp" },
  { name: "greeting naming both SMTP and FTP settled by EHLO", steps: [S("220 ftp.example.com ESMTP\r\n"), C("EHLO x\r\n")], protocol: "smtp" },
  { name: "FTP multi-line greeting with uncoded lines (RFC 959)", steps: [S("220-Welcome to the archive\r\n    mirrors: see /pub\r\n220 FTP server ready\r\n")], protocol: "ftp" },
  { name: "IMAP greeting", steps: [S("* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n")], protocol: "imap" },
  { name: "IMAP PREAUTH greeting", steps: [S("* PREAUTH ready\r\n")], protocol: "imap" },
  { name: "POP3 greeting", steps: [S("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")], protocol: "pop3" },
  { name: "bare +OK settled by CAPA", steps: [S("+OK\r\n"), C("CAPA\r\n")], protocol: "pop3" },
];

const nearMisses: Case[] = [
  { name: "RTSP request", steps: [C("OPTIONS rtsp://198.18.0.9:554/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")], protocol: "unknown" },
  { name: "SIP request", steps: [C("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n")], protocol: "unknown" },
  { name: "HTTP/2 preface with a wrong byte", steps: [C(m.bytes("PRI * HTTP/2.0\r\n\r\nSX\r\n\r\n"))], protocol: "unknown" },
  { name: "PostgreSQL-like length with an unknown code", steps: [C(m.bytes(m.u32(8), m.u32(80877199)))], protocol: "unknown" },
  { name: "PostgreSQL startup without user", steps: [C(m.pgStartup([["database", "x"]]))], protocol: "unknown" },
  { name: "TLS record of another content type", steps: [C(m.bytes([0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5, 6]))], protocol: "unknown" },
  { name: "MQTT CONNECT with the reserved flag set", steps: [C(m.bytes([0x10, 12], m.u16(4), "MQTT", [4, 0x03], m.u16(60), m.u16(0)))], protocol: "unknown" },
  { name: "AMQP header with an unknown version", steps: [C(m.bytes("AMQP", [0, 0, 8, 7]))], protocol: "unknown" },
  { name: "SSH banner with a bad version", steps: [C("SSH-3.0-x\r\n")], protocol: "unknown" },
  { name: "SMTP neutral greeting then an unrelated command", steps: [S("220 hello\r\n"), C("HELP\r\n")], protocol: "unknown" },
  { name: "Redis/memcached ambiguity with an unrelated reply", steps: [C("get k\r\n"), S("HTTP/1.1 400 Bad Request\r\n\r\n")], protocol: "unknown" },
  { name: "DNS response sent by the client", steps: [C(m.bytes(m.dnsQuery().subarray(0, 4), [0x81, 0x80], m.dnsQuery().subarray(6)))], protocol: "unknown" },
  { name: "Kafka-like header with an impossible api key", steps: [C(m.bytes(m.u32(20), m.u16(999), m.u16(1), m.u32(1), m.u16(3), "abc", new Array(7).fill(0)))], protocol: "unknown" },
  { name: "plain text", steps: [C("hello world, this is not a protocol\r\n")], protocol: "unknown" },
  { name: "server speaks first with an unknown banner", steps: [S("WELCOME TO THE MAINFRAME\r\n")], protocol: "unknown" },
  { name: "ZooKeeper connect request", steps: [C(m.bytes(m.u32(44), m.u32(0), new Array(8).fill(0), m.u32(30000), new Array(8).fill(0), m.u32(16), new Array(16).fill(0)))], protocol: "unknown" },
  { name: "SMB2 negotiate", steps: [C(m.bytes(m.u32(0x66), [0xfe, 0x53, 0x4d, 0x42], new Array(60).fill(0)))], protocol: "unknown" },
  { name: "MS-SQL TDS prelogin", steps: [C(m.bytes([0x12, 1, 0, 0x2f, 0, 0, 1, 0], new Array(39).fill(0)))], protocol: "unknown" },
  { name: "SOCKS5 greeting", steps: [C(m.bytes([5, 1, 0]))], protocol: "unknown" },
  { name: "SOCKS4 connect", steps: [C(m.bytes([4, 1, 0, 0x50, 198, 18, 0, 1, 0]))], protocol: "unknown" },
  { name: "RDP connection request", steps: [C(m.bytes([3, 0, 0, 0x13, 0x0e, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0]))], protocol: "unknown" },
  { name: "BitTorrent handshake", steps: [C(m.bytes([19], "BitTorrent protocol", new Array(48).fill(1)))], protocol: "unknown" },
  { name: "git protocol request", steps: [C(m.bytes("0032git-upload-pack /project.git\0host=example.com\0"))], protocol: "unknown" },
  { name: "XMPP stream", steps: [C("<?xml version='1.0'?><stream:stream to='example.com'>")], protocol: "unknown" },
  { name: "IRC registration", steps: [C("NICK egret\r\nUSER egret 0 * :Egret\r\n")], protocol: "unknown" },
  { name: "NNTP greeting", steps: [S("200 news.example.com InterNetNews server ready\r\n")], protocol: "unknown" },
  { name: "VNC greeting", steps: [S("RFB 003.008\n")], protocol: "unknown" },
  { name: "NATS client CONNECT", steps: [C('CONNECT {"verbose":false}\r\nPING\r\n')], protocol: "unknown" },
  { name: "binary noise", steps: [C(m.bytes([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]))], protocol: "unknown" },
];

for (const c of cases) {
  test(`detects ${c.name} (whole, byte at a time, random segments)`, () => {
    for (const mode of ["whole", "bytewise", 1, 2, 3] as Mode[]) {
      const r = run(c.steps, mode);
      assert.equal(r.protocol, c.protocol, `${c.name} [${mode}]`);
      for (const [k, v] of Object.entries(c.claims ?? {})) {
        assert.deepEqual(r.claims[k as keyof DetectedClaims], v, `${c.name} [${mode}] claim ${k}`);
      }
    }
  });
}

for (const c of nearMisses) {
  test(`does not label ${c.name}`, () => {
    for (const mode of ["whole", "bytewise", 7] as Mode[]) {
      assert.equal(run(c.steps, mode, true).protocol, c.protocol, `${c.name} [${mode}]`);
    }
  });
}

test("every protocol label is covered by a synthetic case", () => {
  const covered = new Set(cases.map((c) => c.protocol));
  for (const name of engine.protocolNames) if (name !== "unknown") assert.ok(covered.has(name), name);
});

test("a partial ClientHello is tls on expiry; a partial startup message is unknown", () => {
  const hello = m.clientHello({ sni: "partial.example" });
  assert.equal(run([C(hello.subarray(0, 40))], "whole").id, PROTO_NEED_MORE);
  assert.equal(run([C(hello.subarray(0, 40))], "whole", true).protocol, "tls");
  assert.equal(run([C(m.pgStartup().subarray(0, 12))], "whole", true).protocol, "unknown");
  assert.equal(run([], "whole", true).protocol, "unknown");
});

test("an HTTP head larger than the inspected bytes is http with the Host seen so far", () => {
  const big = m.httpRequest("GET", "/", [["Host", "big.example"], ["X-Fill", "a".repeat(20000)]]);
  const r = run([C(big)], "whole");
  assert.equal(r.protocol, "http");
  assert.equal(r.claims.httpHost, "big.example");
});

test("a request line longer than the inspected bytes is still http", () => {
  const r = run([C(m.bytes("GET /search?q=", "x".repeat(20000), " HTTP/1.1\r\nHost: long.example\r\n\r\n"))], "whole");
  assert.equal(r.protocol, "http");
  assert.equal(r.claims.httpHost, null);
});

test("a ClientHello larger than the inspected bytes keeps the SNI from its first part", () => {
  const r = run([C(m.clientHello({ sni: "huge.example", padding: 12000 }))], "whole");
  assert.equal(r.protocol, "tls");
  assert.equal(r.claims.sni, "huge.example");
});

test("the answer is final: later bytes do not change it, and a reopened session starts fresh", () => {
  const s = engine.open();
  assert.equal(engine.protocolName(s.feedClient(m.respCommand("PING"))), "redis");
  assert.equal(engine.protocolName(s.feedClient(m.clientHello({ sni: "x" }))), "redis");
  s.close();
  const t = engine.open();
  assert.equal(t.result, PROTO_NEED_MORE);
  assert.equal(engine.protocolName(t.feedClient(m.clientHello({ sni: "fresh.example" }))), "tls");
  assert.equal(t.claims().sni, "fresh.example");
  t.close();
});

test("midstream mode accepts continuation traffic that a fresh connection would not", () => {
  const records = m.bytes([0x17, 3, 3, 0, 4, 1, 2, 3, 4], [0x17, 3, 3, 0, 2, 9, 9]);
  const fresh = engine.open(false);
  fresh.feedClient(records);
  assert.equal(engine.protocolName(fresh.expire()), "unknown");
  fresh.close();
  const mid = engine.open(true);
  assert.equal(engine.protocolName(mid.feedClient(records)), "tls");
  mid.close();
  const query = m.bytes([4, 0], m.u16(3), [0x07], m.u32(6), [0, 0, 0, 2, 0x78, 0x79]);
  const cql = engine.open(true);
  assert.equal(engine.protocolName(cql.feedClient(m.bytes(query, query))), "cassandra");
  cql.close();
  const freshCql = engine.open(false);
  freshCql.feedClient(m.bytes(query, query));
  assert.equal(engine.protocolName(freshCql.expire()), "unknown", "a connection cannot start with QUERY");
  freshCql.close();
  const resp = engine.open(true);
  resp.feedServer(m.bytes("HTTP/1.1 200 OK\r\n"));
  assert.equal(engine.protocolName(resp.result), "http");
  resp.close();
});
