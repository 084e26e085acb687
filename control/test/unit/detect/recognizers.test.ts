// Each recognizer of filter/assembly/detect on its own (AssemblyScript harness
// filter/build/test/detect_recognizers.wasm): every prefix of a valid first message is "need more"
// or better and the whole message is YES; once a recognizer says NO, longer inputs stay NO.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadHarness } from "../egress-harness.js";
import * as m from "./messages.js";
import { h2cRequest, requestBlock } from "../../support/h2c.js";

const NO = 0, MAYBE = 1, LIKELY = 2, YES = 3;
const h = loadHarness("detect_recognizers");
const x = h.exports as Record<string, (...a: number[]) => number>;
const ptr = x.inputPtr!();

function verdict(which: number, data: Uint8Array, final = false): number {
  h.write(ptr, data);
  return x.recognize!(which, data.length, final ? 1 : 0);
}

const R = {
  tlsRecord: 0, sslv2: 1, h2: 2, http: 3, postgres: 4, sshClient: 5, amqp: 6, mqtt: 7, mongo: 8, cassandra: 9, ldap: 10,
  dns: 11, memcachedBinary: 12, resp: 13, kafka: 14, mysql: 15, sshServer: 16, greeting: 17, recordRun: 18,
  httpResponse: 19, amqpFrame: 20, clientHello: 21, cacheReply: 22,
};

const hello = m.clientHello({ sni: "x.example", alpn: ["h2"] });
const valid: [string, number, Uint8Array][] = [
  ["tls record", R.tlsRecord, hello.subarray(0, 11)], ["sslv2", R.sslv2, m.sslv2Hello()], ["h2", R.h2, h2cRequest(requestBlock("x.example"), { fragment: 4, padding: 2 })],
  ["http", R.http, m.httpRequest("GET", "/", [["Host", "a"]])], ["pg startup", R.postgres, m.pgStartup()], ["pg ssl", R.postgres, m.pgSslRequest()],
  ["pg cancel", R.postgres, m.pgCancelRequest()], ["ssh", R.sshClient, m.sshBanner()], ["amqp", R.amqp, m.amqp091Header()],
  ["mqtt", R.mqtt, m.mqttConnect()], ["mongo msg", R.mongo, m.mongoOpMsg()], ["mongo query", R.mongo, m.mongoOpQuery()],
  ["mongo compressed", R.mongo, m.mongoOpCompressed()], ["cql options", R.cassandra, m.cassandraOptions()],
  ["cql startup", R.cassandra, m.cassandraStartup()], ["ldap bind", R.ldap, m.ldapBind()], ["ldap search", R.ldap, m.ldapSearchRootDse()],
  ["ldap starttls", R.ldap, m.ldapStartTls()], ["dns", R.dns, m.dnsQuery()], ["memcached binary", R.memcachedBinary, m.memcachedBinaryGet()],
  ["resp", R.resp, m.respCommand("GET", "k")], ["kafka", R.kafka, m.kafkaRequest()], ["mysql", R.mysql, m.mysqlGreeting()],
  ["mysql error", R.mysql, m.mysqlError()], ["ssh server", R.sshServer, m.bytes("hello\r\n", m.sshBanner())],
  ["smtp greeting", R.greeting, m.bytes("220 mx ESMTP\r\n")], ["imap greeting", R.greeting, m.bytes("* OK ready\r\n")],
  ["pop3 greeting", R.greeting, m.bytes("+OK ready\r\n")], ["client hello", R.clientHello, hello.subarray(5)],
  ["cache reply", R.cacheReply, m.bytes("END\r\n")],
];

for (const [name, which, data] of valid) {
  test(`${name}: no prefix is ruled out, a confirmation sticks, the whole message is YES`, () => {
    let confirmedAt = -1;
    for (let k = 0; k < data.length; k++) {
      const v = verdict(which, data.subarray(0, k));
      assert.ok(v === MAYBE || v === LIKELY || v === YES, `${name}: prefix ${k}/${data.length} gave ${v}`);
      if (v === YES && confirmedAt < 0) confirmedAt = k;
      if (confirmedAt >= 0) assert.equal(v, YES, `${name}: YES at ${confirmedAt}, then ${v} at ${k}`);
    }
    assert.equal(verdict(which, data), YES, name);
  });
}

test("once a recognizer rules itself out, more bytes never bring it back", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 22 }), fc.uint8Array({ minLength: 1, maxLength: 120 }), (which, data) => {
    let ruledOut = -1;
    for (let k = 0; k <= data.length; k++) {
      const v = verdict(which, data.subarray(0, k));
      assert.ok(v >= NO && v <= YES, `verdict ${v}`);
      if (v === NO && ruledOut < 0) ruledOut = k;
      if (ruledOut >= 0) assert.equal(v, NO, `recognizer ${which}: NO at ${ruledOut} but ${v} at ${k}`);
    }
  }), { numRuns: 3000 });
});

test("mutated valid messages never trap any recognizer", () => {
  fc.assert(fc.property(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.boolean(), ([, , data], muts, final) => {
    const copy = data.slice();
    for (const [i, v] of muts) copy[i % copy.length] = v;
    for (let which = 0; which <= 22; which++) verdict(which, copy, final);
  }), { numRuns: 2000 });
});

test("the ClientHello parser records the SNI and rejects a broken extension block", () => {
  const body = hello.subarray(5);
  assert.equal(verdict(R.clientHello, body), YES);
  assert.equal(x.lastSniLen!(), "x.example".length);
  const broken = body.slice();
  broken[broken.length - 1] = 0xff; // last ALPN byte stays, but shorten the extensions total
  const extTotalAt = 4 + 2 + 32 + 1 + 32 + 2 + 6 + 1 + 1;
  broken[extTotalAt + 1] = (broken[extTotalAt + 1]! + 1) & 0xff;
  assert.equal(verdict(R.clientHello, broken), NO);
});

test("a detector with tiny buffers finalizes when they fill", () => {
  x.newSmallDetector!(64, 64);
  x.smallReset!();
  const req = m.httpRequest("GET", "/", [["Host", "tiny.example"], ["X-Long", "y".repeat(200)]]);
  h.write(ptr, req);
  const id = x.smallFeed!(0, req.length);
  assert.equal(id, 2, "http once the 64-byte buffer is full");
  assert.equal(x.smallClientBytes!(), 64);
  x.smallReset!();
  h.write(ptr, m.bytes("\x00\x01garbage"));
  assert.equal(x.smallFeed!(0, 9), 0);
  x.smallReset!();
  assert.equal(x.smallExpire!(), 0, "nothing seen: unknown");
});

test("protocol ids and names round-trip", () => {
  assert.equal(x.protocolNamesRoundTrip!(), 20);
});
