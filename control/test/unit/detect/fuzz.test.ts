// Fuzzing the detectors compiled into egret.wasm: over a million random and mutated first-bytes
// deliveries (both directions, random segmentation, normal and midstream mode) must never trap
// and never grow wasm memory. Deterministic (seeded), so a failure names a reproducible input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { instantiateTools } from "../../../src/wasm/tools.js";
import * as m from "./messages.js";
import { h2cRequest, requestBlock } from "../../support/h2c.js";

const TOTAL_INPUTS = 1_000_000;

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const clientSeeds: Uint8Array[] = [
  m.clientHello({ sni: "a.example", alpn: ["h2", "http/1.1"], versions: [0x0304, 0x0303], ech: true }),
  m.clientHello({ sni: "b.example", recordSize: 50 }), m.sslv2Hello(), m.h2Preface(), h2cRequest(requestBlock("h2.example", [{ name: "x-a", value: "b", indexing: "incremental" }]), { fragment: 6 }),
  m.httpRequest("GET", "/", [["Host", "h.example:81"]]), m.httpRequest("CONNECT", "c.example:443"),
  m.httpRequest("GET", "http://[2001:db8::1]:8080/x", [["Host", "x"]]), m.pgStartup(), m.pgSslRequest(), m.pgCancelRequest(),
  m.respCommand("SET", "k", "v"), m.bytes("PING\r\n"), m.bytes("get k\r\n"), m.bytes("set k 0 0 1\r\nx\r\n"), m.memcachedBinaryGet(),
  m.mongoOpMsg(), m.mongoOpQuery(), m.mongoOpCompressed(), m.sshBanner(), m.kafkaRequest(), m.amqp091Header(), m.mqttConnect(4, "c", "u"),
  m.mqttConnect(5), m.ldapBind(), m.ldapSearchRootDse(), m.ldapStartTls(), m.dnsQuery("x.example", 28, true), m.cassandraOptions(),
  m.cassandraStartup(), m.bytes("EHLO x\r\n"), m.bytes("a1 CAPABILITY\r\n"), m.bytes("USER anonymous\r\n"),
];
const serverSeeds: Uint8Array[] = [
  m.mysqlGreeting(), m.mysqlError(), m.sshBanner("x"), m.bytes("220 mx ESMTP\r\n"), m.bytes("220-a\r\n220 b\r\n"),
  m.bytes("220 (vsFTPd)\r\n"), m.bytes("* OK IMAP ready\r\n"), m.bytes("+OK POP3\r\n"), m.bytes("+OK\r\n"), m.bytes("$1\r\nv\r\n"),
  m.bytes("VALUE k 0 1\r\nv\r\nEND\r\n"), m.bytes("HTTP/1.1 200 OK\r\n"), m.bytes([0x17, 3, 3, 0, 2, 1, 2, 0x17, 3, 3, 0, 1, 9]),
  m.bytes([1, 0, 1, 0, 0, 0, 4, 0, 10, 0, 40, 0xce]),
];

test(`${TOTAL_INPUTS.toLocaleString("en")} random and mutated inputs: no trap, no memory growth`, { timeout: 600_000 }, () => {
  const tools = instantiateTools();
  const f = {
    scratch: tools.fn<() => number>("detect_scratch")(),
    size: tools.fn<() => number>("detect_scratch_size")(),
    open: tools.fn<(mid: number) => number>("detect_open"),
    close: tools.fn<(h: number) => void>("detect_close"),
    feed: tools.fn<(h: number, fromServer: number, len: number) => number>("detect_feed"),
    expire: tools.fn<(h: number) => number>("detect_expire"),
    claimLen: tools.fn<(h: number, w: number) => number>("detect_claim_len"),
    claimPtr: tools.fn<(h: number, w: number) => number>("detect_claim_ptr"),
    info: tools.fn<(h: number, w: number) => number>("detect_info"),
  };
  const next = rng(0xe9e7);
  const pick = <T>(a: T[]) => a[next() % a.length]!;
  const input = new Uint8Array(4096);
  let memoryAfterWarmup = 0;
  const counts = new Map<number, number>();

  /** Builds one direction's bytes into `input`; returns the length. */
  function generate(server: boolean): number {
    const kind = next() % 8;
    if (kind === 0) {
      const n = next() % 300;
      for (let i = 0; i < n; i++) input[i] = next() & 0xff;
      return n;
    }
    const seed = kind === 1 ? pick(server ? clientSeeds : serverSeeds) : pick(server ? serverSeeds : clientSeeds);
    let n = Math.min(seed.length, input.length);
    input.set(seed.subarray(0, n));
    const mutations = next() % 6;
    for (let k = 0; k < mutations; k++) {
      const op = next() % 6;
      const at = n > 0 ? next() % n : 0;
      if (op === 0 && n > 0) input[at] = next() & 0xff; // overwrite a byte
      else if (op === 1 && n > 0) input[at] ^= 1 << (next() % 8); // flip a bit
      else if (op === 2) n = at; // truncate
      else if (op === 3 && n + 8 < input.length) { // insert random bytes
        input.copyWithin(at + 8, at, n);
        for (let i = 0; i < 8; i++) input[at + i] = next() & 0xff;
        n += 8;
      } else if (op === 4 && n > 1) { // extreme values into what may be a length field
        input[at] = pick([0x00, 0xff, 0x7f, 0x80]);
        if (at + 1 < n) input[at + 1] = pick([0x00, 0xff, 0x7f, 0x80]);
      } else if (op === 5) { // append another seed
        const other = pick(clientSeeds);
        const take = Math.min(other.length, input.length - n);
        input.set(other.subarray(0, take), n);
        n += take;
      }
    }
    return n;
  }

  function feed(h: number, server: boolean, len: number): number {
    let r = -1;
    let off = 0;
    while (off < len) {
      const chunk = Math.min(len - off, 1 + (next() % 64), f.size);
      new Uint8Array(tools.memory.buffer).set(input.subarray(off, off + chunk), f.scratch);
      r = f.feed(h, server ? 1 : 0, chunk);
      off += chunk;
    }
    return r;
  }

  for (let i = 0; i < TOTAL_INPUTS; i++) {
    if (i === 2000) memoryAfterWarmup = tools.memory.buffer.byteLength;
    const h = f.open(next() % 8 === 0 ? 1 : 0);
    assert.ok(h >= 0);
    try {
      const serverFirst = next() % 3 === 0;
      feed(h, serverFirst, generate(serverFirst));
      if (next() % 2 === 0) feed(h, !serverFirst, generate(!serverFirst));
      const id = f.expire(h);
      assert.ok(id >= 0 && id < 20, `protocol id ${id}`);
      counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const w of [0, 1, 2, 10, 11]) {
        const len = f.claimLen(h, w);
        assert.ok(len >= 0 && len <= 8192, `claim length ${len}`);
        if (len > 0) assert.ok(f.claimPtr(h, w) + len <= tools.memory.buffer.byteLength);
      }
      for (let w = 0; w < 10; w++) f.info(h, w);
    } catch (e) {
      throw new Error(`input #${i} (last bytes ${Buffer.from(input.subarray(0, 64)).toString("hex")}): ${(e as Error).message}`, { cause: e });
    } finally {
      f.close(h);
    }
  }
  assert.equal(tools.memory.buffer.byteLength, memoryAfterWarmup, "wasm memory grew while fuzzing");
  // The mutated seeds must still reach most protocols, or the fuzzer is not exercising them.
  assert.ok(counts.size >= 15, `only ${counts.size} distinct results: ${[...counts.keys()].join(",")}`);
});

test("oversized and hostile calls through the tool exports are rejected, not trapped", () => {
  const tools = instantiateTools();
  const feed = tools.fn<(h: number, s: number, len: number) => number>("detect_feed");
  const expire = tools.fn<(h: number) => number>("detect_expire");
  const close = tools.fn<(h: number) => void>("detect_close");
  assert.equal(feed(-1, 0, 10), -2);
  assert.equal(feed(12345, 0, 10), -2);
  assert.equal(expire(99), -2);
  close(-5);
  const open = tools.fn<(mid: number) => number>("detect_open");
  const h = open(0);
  assert.notEqual(feed(h, 0, 1 << 30), -2); // clamped to the scratch size
  close(h);
  close(h); // double close is ignored
  const h2 = open(0);
  assert.equal(h2, h, "a closed handle is reused");
  close(h2);
});
