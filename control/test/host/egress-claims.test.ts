// Attacks on the destination claim (issue #14 findings 2, 3, 5, 6) through the real egret.wasm in
// the Node host. Each attack has a benign twin that must still be allowed; most are also sent one
// byte at a time. The pod resolved api.example.com → 198.18.5.10 and never evil.example.net.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, sendByteByByte, mysqlGreeting, type World, type WorldOptions } from "./egress-fixture.js";
import type { Connection } from "../../src/host/index.js";
import { tlsHello } from "../support/attack-bytes.js";
import { H2_PREFACE, h2cRequest, h2Frame, hpackBlock, nghttp2Requests, requestBlock } from "../support/h2c.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: claims, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: [api.example.com]}}
    - {name: plain-block, action: Allow, to: {cidrs: [{cidr: 198.18.7.0/24}]}}
`;
const API = "198.18.5.10";
const RESOLVED: WorldOptions["resolutions"] = [[API, "api.example.com", 300]];

async function withWorld(o: Partial<WorldOptions>, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld({ policy: POLICY, resolutions: RESOLVED, ...o });
  try { await fn(w); } finally { await w.close(); }
}

/** Sends `bytes` (whole or one byte at a time) and waits for the verdict: true when allowed. */
async function judge(w: World, bytes: Buffer, byteByByte = false, dst = `${API}:443`): Promise<{ c: Connection; allowed: boolean }> {
  const c = await w.open(dst);
  if (byteByByte) sendByteByByte(c, bytes); else c.downstreamData(bytes);
  // A denied claim asks control once for the claimed name (real time, short), then closes.
  await eventually(async () => { await w.tick(1); return c.closed || c.sentUpstream.length === bytes.length; }, "a verdict");
  if (!c.closed) assert.deepEqual(c.sentUpstream, bytes, "every held byte forwarded once");
  else assert.equal(c.sentUpstream.length, 0, "a denied connection forwards nothing");
  return { c, allowed: !c.closed };
}

async function pair(w: World, attack: Buffer, twin: Buffer, reason: string): Promise<void> {
  await pairAt(w, attack, twin, reason, `${API}:443`);
}

async function pairAt(w: World, attack: Buffer, twin: Buffer, reason: string, dst: string): Promise<void> {
  for (const bbb of [false, true]) {
    const before = w.control.events.length;
    assert.equal((await judge(w, attack, bbb, dst)).allowed, false, `attack${bbb ? " (byte at a time)" : ""}`);
    assert.equal((await judge(w, twin, bbb, dst)).allowed, true, `benign twin${bbb ? " (byte at a time)" : ""}`);
    const ev = await w.events(before + 2);
    assert.deepEqual([ev[before]!.verdict, ev[before]!.reason], ["deny", reason]);
    assert.deepEqual([ev[before + 1]!.verdict, ev[before + 1]!.reason], ["allow", "allowed"]);
  }
}

const http = (head: string) => Buffer.from(head.replaceAll("\n", "\r\n"));

test("claims: an SNI behind 9 KiB of padding is read (the detector keeps maxInspectBytes)", () =>
  withWorld({}, (w) => pair(w,
    tlsHello({ names: ["evil.example.net"], padding: 9000 }),
    tlsHello({ names: ["api.example.com"], padding: 9000 }), "sni-unverified")));

test("claims: a ClientHello larger than maxInspectBytes is an unverifiable claim", () =>
  withWorld({ config: { maxInspectBytes: 4096 } }, (w) => pair(w,
    tlsHello({ names: ["api.example.com"], padding: 5000 }),
    tlsHello({ names: ["api.example.com"], padding: 1000 }), "sni-unverified")));

test("claims: two server_name extensions are an unverifiable claim", () =>
  withWorld({}, (w) => pair(w,
    tlsHello({ names: ["api.example.com", "evil.example.net"] }),
    tlsHello({ names: ["api.example.com"] }), "sni-unverified")));

test("claims: a ClientHello offering encrypted_client_hello is an unverifiable claim (outer SNI is the client's choice)", () =>
  withWorld({}, (w) => pair(w,
    tlsHello({ names: ["api.example.com"], ech: true }),
    tlsHello({ names: ["api.example.com"] }), "sni-unverified")));

test("claims: a ClientHello still incomplete at the detection deadline is never allowed", () =>
  withWorld({}, async (w) => {
    const hello = tlsHello({ names: ["api.example.com"] });
    const c = await w.open(`${API}:443`);
    c.downstreamData(hello.subarray(0, hello.length - 20));
    await w.tick(2100); // the filter's detectTimeoutMs (2 s)
    await eventually(async () => { await w.tick(1); return c.closed; }, "the deny at the deadline");
    assert.equal(c.sentUpstream.length, 0);
    assert.equal((await judge(w, hello)).allowed, true, "the whole hello is allowed");
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "sni-unverified"], ["allow", "allowed"]]);
  }));

test("claims: an HTTP head still incomplete at the detection deadline is never allowed", () =>
  withWorld({}, async (w) => {
    const c = await w.open(`${API}:80`);
    c.downstreamData(http("GET / HTTP/1.1\nHost: api.example.com\nX-Pad: 1\n"));
    await w.tick(2100);
    await eventually(async () => { await w.tick(1); return c.closed; }, "the deny at the deadline");
    assert.equal(c.sentUpstream.length, 0);
    const stalledTarget = await w.open(`${API}:80`);
    stalledTarget.downstreamData(Buffer.from("GET http://evil.example.net/ HTT"));
    await w.tick(2100);
    await eventually(async () => { await w.tick(1); return stalledTarget.closed; }, "the deny of a cut request line");
    assert.equal((await judge(w, http("GET / HTTP/1.1\nHost: api.example.com\nX-Pad: 1\n\n"), false, `${API}:80`)).allowed, true);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "host-unverified"], ["deny", "host-unverified"], ["allow", "allowed"]]);
  }));

test("claims: a Host after more header bytes than maxInspectBytes is an unverifiable claim; one after 9 KiB is read", () =>
  withWorld({}, (w) => pair(w,
    http(`GET / HTTP/1.1\nX-Pad: ${"a".repeat(17000)}\nHost: evil.example.net\n\n`),
    http(`GET / HTTP/1.1\nX-Pad: ${"a".repeat(9000)}\nHost: api.example.com\n\n`), "host-unverified")));

test("claims: an obs-folded Host line is an unverifiable claim", () =>
  withWorld({}, (w) => pair(w,
    http("GET / HTTP/1.1\nHost: api.example.com\n evil.example.net\nAccept: */*\n\n"),
    http("GET / HTTP/1.1\nHost: api.example.com\nAccept: */*\n\n"), "host-unverified")));

test("claims: 'Host :' (whitespace before the colon) and a malformed Host value are unverifiable claims", () =>
  withWorld({}, async (w) => {
    await pair(w, http("GET / HTTP/1.1\nHost : evil.example.net\n\n"), http("GET / HTTP/1.1\nHost: api.example.com\n\n"), "host-unverified");
    await pair(w, http("GET / HTTP/1.1\nHost: api.example.com@evil.example.net\n\n"), http("GET / HTTP/1.1\nHost: api.example.com:443\n\n"), "host-unverified");
  }));

test("claims: Content-Length together with Transfer-Encoding (request smuggling) is an unverifiable claim", () =>
  withWorld({}, (w) => pair(w,
    http("POST / HTTP/1.1\nHost: api.example.com\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n"),
    http("POST / HTTP/1.1\nHost: api.example.com\nTransfer-Encoding: chunked\n\n0\n\n"), "host-unverified")));

test("claims: h2c (prior knowledge) is judged by the first request's :authority (HPACK, Huffman); a twin naming the resolved host passes", () =>
  withWorld({}, async (w) => {
    const huffman = (name: string) => h2cRequest(hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }, { nameIndex: 1, huffman: name, indexing: "incremental" }]));
    await pairAt(w, huffman("evil.example.net"), huffman("api.example.com"), "host-unverified", `${API}:80`);
    await pairAt(w, h2cRequest(requestBlock("evil.example.net"), { fragment: 5, padding: 3 }), h2cRequest(requestBlock("API.example.com:80"), { fragment: 5, padding: 3 }),
      "host-unverified", `${API}:80`);
  }));

test("claims: an h2c first request that cannot be read exactly is an unverifiable claim, never 'no claim'", () =>
  withWorld({}, async (w) => {
    const twin = h2cRequest(requestBlock("api.example.com"));
    // A :authority the server might read as another host, one repeated, an HPACK error, a dynamic index beyond the table.
    await pairAt(w, h2cRequest(requestBlock("api.example.com@evil.example.net")), twin, "host-unverified", `${API}:80`);
    await pairAt(w, h2cRequest(requestBlock("api.example.com", [{ nameIndex: 1, value: "evil.example.net", indexing: "none" }])), twin, "host-unverified", `${API}:80`);
    await pairAt(w, h2cRequest(requestBlock("api.example.com", [{ nameIndex: 38, value: "evil.example.net", indexing: "none" }])), twin, "host-unverified", `${API}:80`);
    await pairAt(w, h2cRequest(hpackBlock([{ indexed: 2 }, { indexed: 70 }])), twin, "host-unverified", `${API}:80`);
  }));

test("claims: h2c whose first request is still incomplete at the deadline is denied; on a CIDR-judged IP h2c passes without a look", () =>
  withWorld({}, async (w) => {
    const preface = h2cRequest(requestBlock("api.example.com")).subarray(0, 33); // preface + SETTINGS, no HEADERS
    const c = await w.open(`${API}:80`);
    c.downstreamData(preface);
    w.tick(2100);
    await eventually(() => { w.tick(1); return c.closed; }, "the deny at the deadline");
    assert.equal(c.sentUpstream.length, 0);
    assert.equal((await judge(w, h2cRequest(requestBlock("evil.example.net")), true, "198.18.7.3:80")).allowed, true);
    const ev = await w.events(2);
    // The CIDR rule decides at connect time, before any byte: no protocol is reported.
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.protocol]), [["deny", "host-unverified", "http2"], ["allow", "allowed", ""]]);
  }));

test("claims: an h2c Upgrade request is judged by its Host like any HTTP/1 request", () =>
  withWorld({}, (w) => pairAt(w,
    http("GET / HTTP/1.1\nHost: evil.example.net\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n"),
    http("GET / HTTP/1.1\nHost: api.example.com\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n"),
    "host-unverified", `${API}:80`)));

test("absolute form: on a direct connection the absolute-form target is the claim, and one that disagrees with Host is unverifiable", () =>
  withWorld({}, async (w) => {
    await pair(w, http("GET http://evil.example.net/ HTTP/1.1\nHost: api.example.com\n\n"),
      http("GET http://api.example.com/x HTTP/1.1\nHost: api.example.com\n\n"), "host-unverified");
    await pair(w, http("GET http://evil.example.net/ HTTP/1.0\n\n"), http("GET http://API.example.com:80/ HTTP/1.0\n\n"), "host-unverified");
    await pair(w, http("CONNECT evil.example.net:443 HTTP/1.1\nHost: evil.example.net:443\n\n"),
      http("CONNECT api.example.com:443 HTTP/1.1\nHost: api.example.com:443\n\n"), "host-unverified");
  }));

const DOCS_EXAMPLE = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: analytics, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {action: Allow, to: {domains: [api.example.com]}, ports: [{port: 5432}], protocols: [postgresql]}
    - {action: Deny, protocols: [ssh]}
`;

test("decide before connecting: no protocol can make a never-resolved IP pass, so no SYN leaves (docs' Deny protocols: [ssh] example)", () =>
  withWorld({ policy: DOCS_EXAMPLE }, async (w) => {
    const attack = w.connect("198.18.9.9:5432");
    await eventually(async () => { await w.tick(1); return attack.closed; }, "the deny");
    assert.equal(attack.upstreamConnectRequested, false, "decided before tcp_proxy connects");
    // Twin: the resolved name, where postgresql can pass, waits for the bytes and is allowed.
    const twin = w.connect(`${API}:5432`);
    assert.equal(twin.upstreamConnectRequested, true);
    await twin.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    const startup = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // SSLRequest
    twin.downstreamData(startup);
    assert.equal(twin.closed, false);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "unattributed"], ["allow", "allowed"]]);
  }));

test("decide before connecting: server bytes that arrive before a verdict are never passed", () =>
  withWorld({ policy: POLICY.replace("    - {name: plain-block", "    - {name: db, action: Allow, to: {domains: [db.example.com]}, protocols: [mysql]}\n    - {name: plain-block") ,
    resolutions: [...RESOLVED!, ["198.18.5.20", "db.example.com", 300]] }, async (w) => {
    const greeting = mysqlGreeting();
    const cut = await w.open("198.18.5.20:3306");
    cut.upstreamData(greeting.subarray(0, 6));
    assert.equal(cut.closed, true);
    assert.equal(cut.sentDownstream.length, 0, "a partial greeting is not passed");
    const whole = await w.open("198.18.5.20:3306");
    whole.upstreamData(greeting);
    assert.equal(whole.closed, false);
    assert.deepEqual(whole.sentDownstream, greeting);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "detection-timeout"], ["allow", "allowed"]]);
  }));

const DENY_LIST = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: deny-list, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: no-evil, action: Deny, to: {domains: [evil.example.net]}}
    - {name: rest, action: Allow, to: {cidrs: [{cidr: 0.0.0.0/0}]}}
`;

test("failure mode closed: a Lookup timeout on a deny-list policy never turns into allow; a known IP still passes", () =>
  withWorld({ policy: DENY_LIST, config: { lookupTimeoutMs: 100 }, prepare: (c) => { c.lookupMode = "hang"; } }, async (w) => {
    const unknown = w.connect("198.18.9.10:443");
    assert.equal(unknown.upstreamConnectRequested, false);
    await eventually(async () => { await w.tick(50); return unknown.closed; }, "the lookup-timeout deny");
    assert.equal(unknown.upstreamConnectRequested, false);
    const known = w.connect(`${API}:443`);
    const hello = tlsHello({ names: ["api.example.com"] });
    known.downstreamData(hello);
    assert.equal(known.closed, false);
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["deny", "lookup-timeout"], ["allow", "allowed"]]);
  }));

// ---- every request on a claim-judged connection (findings 4 and 6) ------------------------------

const get = (host: string, path = "/") => http(`GET ${path} HTTP/1.1\nHost: ${host}\nAccept: */*\n\n`);

test("keep-alive: a pipelined request for another Host on a shared-IP connection closes it; the same Host passes", () =>
  withWorld({}, async (w) => {
    for (const bbb of [false, true]) {
      const attack = Buffer.concat([get("api.example.com"), get("evil.example.net", "/steal")]);
      const a = await w.open(`${API}:80`);
      if (bbb) sendByteByByte(a, attack); else a.downstreamData(attack);
      assert.equal(a.closed, true, "pipelined attack closes the connection");
      assert.ok(!a.sentUpstream.includes(Buffer.from("/steal")), "the second request never reaches the server");
      const twin = Buffer.concat([get("api.example.com"), get("API.example.com", "/two")]);
      const t = await w.open(`${API}:80`);
      if (bbb) sendByteByByte(t, twin); else t.downstreamData(twin);
      assert.equal(t.closed, false);
      assert.deepEqual(t.sentUpstream, twin);
    }
    const ev = await w.events(6);
    // Each attack: the first request's allow, then the revised deny (every decision is reported).
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.host]), [
      ["allow", "allowed", "api.example.com"], ["deny", "host-unverified", "evil.example.net"], ["allow", "allowed", "api.example.com"],
      ["allow", "allowed", "api.example.com"], ["deny", "host-unverified", "evil.example.net"], ["allow", "allowed", "api.example.com"],
    ]);
  }));

test("keep-alive: a later request in its own segments is judged too; bodies (Content-Length, chunked) are skipped, not judged", () =>
  withWorld({}, async (w) => {
    const smuggledText = "GET / HTTP/1.1\r\nHost: evil.example.net\r\n\r\n";
    const post = Buffer.from(`POST /up HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: ${smuggledText.length}\r\n\r\n${smuggledText}`);
    const chunk = Buffer.from(`POST /c HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n${smuggledText.length.toString(16)};x=1\r\n${smuggledText}\r\n0\r\nX-Trailer: 1\r\n\r\n`);
    const c = await w.open(`${API}:80`);
    c.downstreamData(get("api.example.com"));
    c.downstreamData(post.subarray(0, 30));
    c.downstreamData(post.subarray(30));
    sendByteByByte(c, chunk);
    c.downstreamData(get("api.example.com", "/after"));
    assert.equal(c.closed, false, "bodies that look like requests are bodies");
    assert.deepEqual(c.sentUpstream, Buffer.concat([get("api.example.com"), post, chunk, get("api.example.com", "/after")]));
    const before = c.sentUpstream.length;
    c.downstreamData(get("evil.example.net"));
    assert.equal(c.closed, true);
    assert.equal(c.sentUpstream.length, before, "the denied request is not forwarded");
    const ev = await w.events(2);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason]), [["allow", "allowed"], ["deny", "host-unverified"]]);
  }));

const PROXY = "198.18.6.1:3128";

test("forward proxy: a pipelined CONNECT or absolute-form request to a denied target closes the connection; allowed ones pass", () =>
  withWorld({ config: { forwardProxies: [PROXY] } }, async (w) => {
    const first = http("GET http://api.example.com/a HTTP/1.1\nHost: api.example.com\n\n");
    const a = await w.open(PROXY);
    a.downstreamData(Buffer.concat([first, http("CONNECT evil.example.net:443 HTTP/1.1\nHost: evil.example.net:443\n\n")]));
    assert.equal(a.closed, true);
    const b = await w.open(PROXY);
    b.downstreamData(first);
    sendByteByByte(b, http("GET http://evil.example.net/b HTTP/1.1\nHost: evil.example.net\n\n"));
    assert.equal(b.closed, true);
    assert.deepEqual(b.sentUpstream, first);
    const twin = Buffer.concat([first, http("GET http://api.example.com/b HTTP/1.1\nHost: api.example.com\n\n")]);
    const t = await w.open(PROXY);
    t.downstreamData(twin);
    assert.equal(t.closed, false);
    assert.deepEqual(t.sentUpstream, twin);
    const ev = await w.events(5);
    assert.deepEqual(ev.map((e) => [e.verdict, e.names.join()]), [
      ["allow", "api.example.com"], ["deny", "evil.example.net"], ["allow", "api.example.com"], ["deny", "evil.example.net"], ["allow", "api.example.com"],
    ]);
  }));

test("forward proxy: after an allowed CONNECT answered 200 the bytes are the tunnel's; a refused CONNECT goes back to judging heads", () =>
  withWorld({ config: { forwardProxies: [PROXY] } }, async (w) => {
    const connect = http("CONNECT api.example.com:443 HTTP/1.1\nHost: api.example.com:443\n\n");
    const hello = tlsHello({ names: ["api.example.com"] });
    const t = await w.open(PROXY);
    t.downstreamData(connect);
    t.upstreamData(Buffer.from("HTTP/1.1 200 Connection established\r\n\r\n"));
    t.downstreamData(hello);
    assert.equal(t.closed, false);
    assert.deepEqual(t.sentUpstream, Buffer.concat([connect, hello]));
    const r = await w.open(PROXY);
    r.downstreamData(connect);
    r.upstreamData(Buffer.from("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"));
    r.downstreamData(http("CONNECT evil.example.net:443 HTTP/1.1\nHost: evil.example.net:443\n\n"));
    assert.equal(r.closed, true);
    assert.deepEqual(r.sentUpstream, connect);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => e.verdict), ["allow", "allow", "deny"]);
  }));

// ---- TLS started inside another protocol (finding 2: in-band upgrades) ----------------------------

const UPGRADES = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: upgrades, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: db, action: Allow, to: {domains: [api.example.com]}, protocols: [postgresql, smtp]}
`;

test("in-band TLS: after a PostgreSQL SSLRequest answered 'S', the inner ClientHello's SNI is judged", () =>
  withWorld({ policy: UPGRADES }, async (w) => {
    const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    for (const bbb of [false, true]) {
      const run = async (sni: string) => {
        const c = await w.open(`${API}:5432`);
        c.downstreamData(sslRequest);
        c.upstreamData(Buffer.from("S"));
        const hello = tlsHello({ names: [sni] });
        if (bbb) sendByteByByte(c, hello); else c.downstreamData(hello);
        return { c, hello };
      };
      const attack = await run("evil.example.net");
      assert.equal(attack.c.closed, true, "the inner SNI is not the name resolved to this IP");
      assert.deepEqual(attack.c.sentUpstream, sslRequest, "the ClientHello never reaches the server");
      const twin = await run("api.example.com");
      assert.equal(twin.c.closed, false);
      assert.deepEqual(twin.c.sentUpstream, Buffer.concat([sslRequest, twin.hello]));
    }
    // SSLRequest and ClientHello in one segment.
    const both = await w.open(`${API}:5432`);
    both.downstreamData(Buffer.concat([sslRequest, tlsHello({ names: ["evil.example.net"] })]));
    assert.equal(both.closed, true);
    const ev = await w.events(6);
    assert.deepEqual(ev.slice(0, 3).map((e) => [e.verdict, e.reason, e.protocol, e.sni]), [
      ["allow", "allowed", "postgresql", ""], ["deny", "sni-unverified", "tls", "evil.example.net"], ["allow", "allowed", "postgresql", ""],
    ]);
  }));

test("in-band TLS: after SMTP STARTTLS, the inner ClientHello's SNI is judged", () =>
  withWorld({ policy: UPGRADES }, async (w) => {
    const run = async (sni: string) => {
      const c = await w.open(`${API}:25`);
      c.upstreamData(Buffer.from("220 mx.example ESMTP ready\r\n"));
      c.downstreamData(Buffer.from("EHLO client\r\n"));
      c.upstreamData(Buffer.from("250-mx.example\r\n250 STARTTLS\r\n"));
      c.downstreamData(Buffer.from("STARTTLS\r\n"));
      c.upstreamData(Buffer.from("220 go ahead\r\n"));
      const hello = tlsHello({ names: [sni] });
      c.downstreamData(hello);
      return c;
    };
    const attack = await run("evil.example.net");
    assert.equal(attack.closed, true);
    assert.equal(attack.sentUpstream.toString("latin1"), "EHLO client\r\nSTARTTLS\r\n");
    const twin = await run("api.example.com");
    assert.equal(twin.closed, false);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.protocol]), [["allow", "smtp"], ["deny", "tls"], ["allow", "smtp"]]);
  }));

// ---- ECH opt-in (encryptedClientHello: Allow) -----------------------------------------------------

const ECH_POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: ech, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: browsers, action: Allow, to: {domains: [api.example.com, www.example.com]}, encryptedClientHello: Allow}
    - {name: other, action: Allow, to: {domains: [other.example.com]}}
`;

test("ECH opt-in: an ECH ClientHello passes only when every name the pod resolved to the IP is allowed by a rule that accepts ECH", () =>
  withWorld({ policy: ECH_POLICY, resolutions: [[API, "api.example.com", 300], [API, "www.example.com", 300], ["198.18.5.11", "api.example.com", 300], ["198.18.5.11", "other.example.com", 300]] }, async (w) => {
    const ech = tlsHello({ names: ["cloudflare-ech.com"], ech: true });
    // Twin: both names of 198.18.5.10 accept ECH.
    assert.equal((await judge(w, ech)).allowed, true);
    // Attack: 198.18.5.11 is also other.example.com, allowed only without ECH — the hidden name may be it.
    assert.equal((await judge(w, ech, true, "198.18.5.11:443")).allowed, false);
    // Without ECH the same IP is judged by the (verifiable) SNI as usual.
    assert.equal((await judge(w, tlsHello({ names: ["other.example.com"] }), false, "198.18.5.11:443")).allowed, true);
    const ev = await w.events(3);
    assert.deepEqual(ev.map((e) => [e.verdict, e.reason, e.rule]), [["allow", "allowed", "browsers"], ["deny", "sni-unverified", "browsers"], ["allow", "allowed", "other"]]);
  }));

const WILDCARD = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: wildcard, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: one, action: Allow, to: {domains: ["*.one.example", "**.many.example"]}}
`;

test("names stay label-exact: a proxy target with an escaped dot ('allowed\\.one.example' = [allowed.one][example]) is not under *.one.example; the plain twin is", () =>
  withWorld({ policy: WILDCARD, config: { forwardProxies: [PROXY] } }, async (w) => {
    const cases: [string, boolean][] = [
      ["allowed\\.one.example", false], ["x.allowed\\046one.example", false], ["a\\.b.many.example", false], ["a..b.many.example", false],
      ["allowed.one.example", true], ["a.b.many.example", true],
    ];
    for (const [target, allowed] of cases) {
      const c = await w.open(PROXY);
      c.downstreamData(http(`CONNECT ${target}:443 HTTP/1.1\nHost: ${target}:443\n\n`));
      assert.equal(!c.closed, allowed, target);
    }
    const ev = await w.events(cases.length);
    assert.deepEqual(ev.map((e) => e.verdict), cases.map(([, a]) => (a ? "allow" : "deny")));
  }));

test("h2c: every later request on a claim-judged connection is judged by its :authority (indexed or literal); a stream naming another host closes the connection", () =>
  withWorld({}, async (w) => {
    const first = h2cRequest(requestBlock("api.example.com"));
    // The first block indexed its :authority (dynamic index 62): later requests refer to it.
    const sameIndexed = h2Frame(1, 0x05, 3, hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }, { indexed: 62 }]));
    const sameLiteral = h2Frame(1, 0x04, 5, hpackBlock([{ indexed: 3 }, { indexed: 6 }, { indexed: 4 }, { nameIndex: 1, huffman: "API.example.com", indexing: "none" }]));
    const data = h2Frame(0, 0x01, 5, Buffer.from("body"));
    const evil = hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }, { nameIndex: 1, huffman: "evil.example.net", indexing: "incremental" }]);
    const evilSplit = Buffer.concat([h2Frame(1, 0x01, 7, evil.subarray(0, 4)), h2Frame(9, 0x04, 7, evil.subarray(4))]);
    for (const bbb of [false, true]) {
      const before = w.control.events.length;
      const send = (c: Connection, b: Buffer) => (bbb ? sendByteByByte(c, b) : c.downstreamData(b));
      // Twin: the same authority, indexed and literal, with a body: everything passes.
      const twin = w.connect(`${API}:80`);
      send(twin, first);
      await eventually(() => { w.tick(1); return twin.sentUpstream.length === first.length; }, "the first request");
      send(twin, sameIndexed);
      send(twin, Buffer.concat([sameLiteral, data]));
      assert.equal(twin.closed, false);
      assert.deepEqual(twin.sentUpstream, Buffer.concat([first, sameIndexed, sameLiteral, data]));
      // Attack: a later stream (HEADERS + CONTINUATION) naming a host the pod never resolved.
      const attack = w.connect(`${API}:80`);
      send(attack, first);
      await eventually(() => { w.tick(1); return attack.sentUpstream.length === first.length; }, "the first request");
      send(attack, sameIndexed);
      send(attack, evilSplit);
      assert.equal(attack.closed, true, `attack${bbb ? " (byte at a time)" : ""}`);
      const passed = attack.sentUpstream.subarray(first.length + sameIndexed.length);
      assert.ok(passed.length < evilSplit.length, "the block's END_HEADERS frame is never forwarded");
      const ev = await w.events(before + 3);
      assert.deepEqual(ev.slice(before).map((e) => [e.verdict, e.reason]), [["allow", "allowed"], ["allow", "allowed"], ["deny", "host-unverified"]]);
    }
    // Pipelined with the first request, in the held bytes: judged before anything passes.
    const pipelined = await w.open(`${API}:80`);
    pipelined.downstreamData(Buffer.concat([first, h2Frame(1, 0x05, 3, evil)]));
    await eventually(() => { w.tick(1); return pipelined.closed; }, "the pipelined deny");
    assert.equal(pipelined.sentUpstream.length, 0);
  }));

test("h2c: two requests from a real client (nghttp2 via node:http2) — a second :authority the pod never resolved closes the connection; the same one twice passes", () =>
  withWorld({}, async (w) => {
    const req = (authority: string) => ({ ":path": "/", ":authority": authority, "user-agent": "nghttp2-test" });
    const twin = await nghttp2Requests([req("api.example.com"), req("api.example.com")]);
    const attack = await nghttp2Requests([req("api.example.com"), req("evil.example.net")]);
    for (const bbb of [false, true]) {
      assert.equal((await judge(w, twin, bbb, `${API}:80`)).allowed, true, "the twin");
      const c = await w.open(`${API}:80`);
      if (bbb) sendByteByByte(c, attack); else c.downstreamData(attack);
      await eventually(() => { w.tick(1); return c.closed; }, "the deny of the second stream");
    }
  }));

test("h2c Upgrade: after a 101, the HTTP/2 streams of a claim-judged connection are judged like prior-knowledge ones; a websocket Upgrade stays a tunnel", () =>
  withWorld({}, async (w) => {
    const upgrade = http("GET / HTTP/1.1\nHost: api.example.com\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n");
    const switching = Buffer.from("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    const settings = h2Frame(4, 0, 0, Buffer.alloc(0));
    const stream3 = (authority: string) => h2Frame(1, 5, 3, hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }, { nameIndex: 1, huffman: authority, indexing: "incremental" }]));
    const run = async (authority: string, bbb: boolean) => {
      const c = await w.open(`${API}:80`);
      c.downstreamData(upgrade);
      await eventually(() => { w.tick(1); return c.sentUpstream.length === upgrade.length; }, "the upgrade request");
      c.upstreamData(switching);
      const rest = Buffer.concat([H2_PREFACE, settings, stream3(authority)]);
      if (bbb) sendByteByByte(c, rest); else c.downstreamData(rest);
      return c;
    };
    for (const bbb of [false, true]) {
      const twin = await run("api.example.com", bbb);
      assert.equal(twin.closed, false, "twin");
      assert.equal(twin.sentUpstream.length, upgrade.length + H2_PREFACE.length + settings.length + stream3("api.example.com").length);
      const attack = await run("evil.example.net", bbb);
      assert.equal(attack.closed, true, `attack${bbb ? " (byte at a time)" : ""}`);
    }
    // A websocket upgrade is a tunnel after its 101: its bytes are not HTTP/2 and are not judged.
    const ws = w.connect(`${API}:80`);
    const wsReq = http("GET /chat HTTP/1.1\nHost: api.example.com\nConnection: Upgrade\nUpgrade: websocket\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n");
    ws.downstreamData(wsReq);
    await eventually(() => { w.tick(1); return ws.sentUpstream.length === wsReq.length; }, "the websocket upgrade");
    ws.upstreamData(Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
    ws.downstreamData(Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x49, 0x6b]));
    assert.equal(ws.closed, false);
  }));
