// Unit tests of the DNS parser and renderer (control/src/dns/message.ts, render.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDnsMessage, skipName, type DnsMessage } from "../../src/dns/message.js";
import { readName, renderRdata } from "../../src/dns/render.js";
import { ipv6Text } from "../../src/dns/wire.js";
import { dnsMessage, T } from "./dns-fixtures.js";

function ok(bytes: Uint8Array): DnsMessage {
  const r = parseDnsMessage(bytes);
  if (!r.ok) assert.fail(`expected a message, got ${r.error} at ${r.offset}`);
  return r.message;
}

function err(bytes: Uint8Array): string {
  const r = parseDnsMessage(bytes);
  assert.equal(r.ok, false, "expected a parse error");
  return (r as { error: string }).error;
}

test("parses a compressed answer with a CNAME chain, A and AAAA", () => {
  const bytes = dnsMessage({
    id: 7, response: true, questions: [{ name: "www.Example.com", type: T.A }],
    answers: [
      { name: "www.Example.com", type: T.CNAME, ttl: 60, data: "edge.cdn.example.net" },
      { name: "edge.cdn.example.net", type: T.A, ttl: 30, data: "198.18.0.7" },
      { name: "edge.cdn.example.net", type: T.AAAA, ttl: 30, data: "2001:db8::7" },
    ],
  });
  const m = ok(bytes);
  assert.equal(m.id, 7);
  assert.equal(m.isResponse, true);
  assert.equal(m.questions.length, 1);
  assert.equal(readName(m.buf, m.questions[0]!.nameOffset), "www.Example.com");
  assert.equal(readName(m.buf, m.questions[0]!.nameOffset, true), "www.example.com");
  assert.deepEqual(m.answers.map((a) => a.type), [T.CNAME, T.A, T.AAAA]);
  assert.equal(renderRdata(m, m.answers[0]!), "edge.cdn.example.net");
  assert.equal(renderRdata(m, m.answers[1]!), "198.18.0.7");
  assert.equal(renderRdata(m, m.answers[2]!), "2001:db8::7");
  assert.ok(bytes.length < 120, "names were compressed");
});

test("parses a message inside a larger buffer without copying", () => {
  const msg = dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], answers: [{ name: "a.example", type: T.A, data: "198.18.1.1" }] });
  const frame = new Uint8Array(msg.length + 50);
  frame.set(msg, 42);
  const r = parseDnsMessage(frame, 42, 42 + msg.length);
  assert.ok(r.ok);
  assert.equal(r.message.buf.buffer, frame.buffer, "the message is a view of the frame");
  assert.equal(renderRdata(r.message, r.message.answers[0]!), "198.18.1.1");
});

test("reads EDNS0: payload size and the extended rcode", () => {
  const m = ok(dnsMessage({ response: true, rcode: 23 & 0xf, edns: { extRcode: 23 >> 4 }, questions: [{ name: ".", type: T.SOA }] }));
  assert.equal(m.edns?.udpPayloadSize, 1232);
  assert.equal(m.rcode, 23, "BADCOOKIE = 16 + 7");
  assert.equal(readName(m.buf, m.questions[0]!.nameOffset), ".");
});

test("reads the truncation flag", () => {
  assert.equal(ok(dnsMessage({ response: true, tc: true, questions: [{ name: "big.example", type: T.TXT }] })).truncated, true);
});

test("skips record types it does not read, by length", () => {
  const m = ok(dnsMessage({
    response: true, questions: [{ name: "svc.example", type: T.HTTPS }],
    answers: [{ name: "svc.example", type: T.HTTPS, data: Uint8Array.from([0, 1, 0, 0, 1, 0, 3, 2, 104, 50]) }, { name: "svc.example", type: 65280, data: new Uint8Array(0) }],
  }));
  assert.equal(m.answers.length, 2);
  assert.equal(renderRdata(m, m.answers[0]!), null);
});

test("rejects a compression pointer loop", () => {
  // Question name = pointer to itself (offset 12).
  const bytes = Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  assert.equal(err(bytes), "name-loop");
  // Two pointers pointing at each other.
  const two = Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
  assert.equal(err(two), "name-loop");
});

test("rejects a pointer past the end, reserved label types and over-long names", () => {
  assert.equal(err(Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 200, 0, 1, 0, 1])), "bad-pointer");
  assert.equal(err(Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 1, 0, 0, 1, 0, 1])), "bad-label-type");
  const long = Array.from({ length: 5 }, () => "x".repeat(63)).join(".");
  assert.equal(err(dnsMessage({ questions: [{ name: long, type: T.A }] })), "name-too-long");
  // Exactly 255 octets is allowed: 3 labels of 63 + one of 61 = 4*1 + 250 + 1.
  const max = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
  assert.equal(ok(dnsMessage({ questions: [{ name: max, type: T.A }] })).questions.length, 1);
});

test("a pointer loop built from compressed suffixes is bounded by the name length", () => {
  // "a" + pointer back to the label itself: grows by 2 octets per hop until 255.
  const bytes = Uint8Array.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0xc0, 12, 0, 1, 0, 1]);
  assert.equal(err(bytes), "name-too-long");
});

test("rejects records that overrun the message and rdata of the wrong shape", () => {
  const good = dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], answers: [{ name: "a.example", type: T.A, data: "198.18.0.1" }] });
  assert.equal(err(good.subarray(0, good.length - 1)), "truncated-record");
  assert.equal(err(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], answers: [{ name: "a.example", type: T.A, data: Uint8Array.from([1, 2, 3]) }] })), "bad-rdata");
  assert.equal(err(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.AAAA }], answers: [{ name: "a.example", type: T.AAAA, data: new Uint8Array(4) }] })), "bad-rdata");
  // A CNAME whose target does not fill its rdata.
  assert.equal(err(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], answers: [{ name: "a.example", type: T.CNAME, data: Uint8Array.from([1, 0x62, 0, 9]) }] })), "bad-rdata");
  assert.equal(err(new Uint8Array(11)), "short-header");
});

test("rejects a second OPT record and an OPT not owned by the root", () => {
  const opt = (owner: string) => ({ name: owner, type: T.OPT, data: new Uint8Array(0) });
  assert.equal(err(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], additional: [opt("."), opt(".")] })), "bad-edns");
  assert.equal(err(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], additional: [opt("a.example")] })), "bad-edns");
  // An OPT misplaced in the answer section is skipped like any opaque record.
  assert.equal(ok(dnsMessage({ response: true, questions: [{ name: "a.example", type: T.A }], answers: [opt(".")] })).edns, null);
});

test("rejects absurd record counts before allocating anything", () => {
  const bytes = Uint8Array.from([0, 1, 0x81, 0x80, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  assert.equal(err(bytes), "too-many-records");
});

test("every prefix of a valid message is an error, never an exception", () => {
  const m = dnsMessage({
    response: true, questions: [{ name: "www.example.com", type: T.A }], edns: {},
    answers: [{ name: "www.example.com", type: T.CNAME, data: "x.example.net" }, { name: "x.example.net", type: T.A, data: "198.18.0.9" }],
  });
  for (let n = 0; n < m.length; n++) assert.equal(parseDnsMessage(m.subarray(0, n)).ok, false, `prefix ${n}`);
  assert.ok(parseDnsMessage(m).ok);
});

test("names render in presentation format with escapes", () => {
  const bytes = Uint8Array.from([3, 0x61, 0x2e, 0x20, 2, 0x5c, 0xff, 0]);
  assert.equal(readName(bytes, 0), "a\\.\\032.\\\\\\255");
  assert.equal(skipName(bytes, 0, bytes.length), bytes.length);
});

test("IPv6 text follows RFC 5952", () => {
  const b = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  assert.equal(ipv6Text(b("20010db8000000000000000000000001"), 0), "2001:db8::1");
  assert.equal(ipv6Text(b("20010db8000000010000000000000001"), 0), "2001:db8:0:1::1");
  assert.equal(ipv6Text(b("20010db8000000010001000100010001"), 0), "2001:db8:0:1:1:1:1:1");
  assert.equal(ipv6Text(b("00000000000000000000ffffc6120001"), 0), "::ffff:198.18.0.1");
  assert.equal(ipv6Text(b("00000000000000000000000000000000"), 0), "::");
});
