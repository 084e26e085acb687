// h2c (HTTP/2 with prior knowledge): the detector in egret.wasm decodes the first request's header
// block (HPACK: static and dynamic table, Huffman) and reports its :authority as the claim; any
// block it cannot read exactly as a server would is flagged (the filter then treats the claim as
// unverifiable). Checked against the RFC 7541 examples, against real nghttp2 encoder output
// (node:http2), field by field for each rule, and by fuzzing (no trap, no memory growth).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DetectorEngine } from "../../../src/detect/wasm-detector.js";
import { h2cRequest, h2Frame, hpackBlock, hpackHuffman, nghttp2Requests, requestBlock, H2_PREFACE, type HpackRep } from "../../support/h2c.js";

const engine = new DetectorEngine();
const MALFORMED = 1, INCOMPLETE = 2, CONFLICT = 4, AUTHORITY_BAD = 8;

interface H2Result { protocol: string; authority: string | null; flags: number }

function detect(bytes: Buffer, mode: "whole" | "bytewise" = "whole"): H2Result {
  const s = engine.open(false);
  try {
    if (mode === "whole") s.feedClient(bytes);
    else for (let i = 0; i < bytes.length && !s.done; i++) s.feedClient(bytes.subarray(i, i + 1));
    const id = s.done ? s.result : s.expire();
    const c = s.claims();
    return { protocol: engine.protocolName(id), authority: c.h2Authority, flags: c.h2Flags };
  } finally {
    s.close();
  }
}

function expectClaim(bytes: Buffer, authority: string | null, flags = 0, what = ""): void {
  for (const mode of ["whole", "bytewise"] as const) {
    assert.deepEqual(detect(bytes, mode), { protocol: "http2", authority, flags }, `${what} [${mode}]`);
  }
}

const block = (reps: HpackRep[]) => h2cRequest(hpackBlock(reps));
const GET = [{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }] satisfies HpackRep[];

test("h2c: RFC 7541 C.3.1 (raw) and C.4.1 (Huffman) request blocks give www.example.com", () => {
  expectClaim(h2cRequest(Buffer.from("828684410f7777772e6578616d706c652e636f6d", "hex")), "www.example.com");
  expectClaim(h2cRequest(Buffer.from("828684418cf1e3c2e5f23a6ba0ab90f4ff", "hex")), "www.example.com");
});

test("h2c: frames before HEADERS, padding, priority and CONTINUATION fragments are all read", () => {
  const before = [h2Frame(8, 0, 0, Buffer.from([0, 0x0f, 0, 1])), h2Frame(2, 0, 3, Buffer.from([0, 0, 0, 0, 7])), h2Frame(0xf0, 0, 0, Buffer.alloc(3))];
  expectClaim(h2cRequest(requestBlock("Api.Example.com:8080"), { before, padding: 7, priority: true, fragment: 3 }), "api.example.com");
  expectClaim(h2cRequest(requestBlock("[2001:DB8::1]:443"), { stream: 5 }), "2001:db8::1");
});

test("h2c: host stands in for a missing :authority; neither is no claim; both must agree", () => {
  expectClaim(block([...GET, { name: "host", value: "api.example.com", indexing: "none" }]), "api.example.com");
  expectClaim(block([...GET, { nameIndex: 38, value: "api.example.com:80", indexing: "never" }]), "api.example.com");
  expectClaim(block([...GET, { name: "user-agent", value: "t", indexing: "none" }]), null, 0, "no authority at all");
  expectClaim(h2cRequest(requestBlock("api.example.com", [{ nameIndex: 38, value: "API.example.com", indexing: "none" }])), "api.example.com");
  expectClaim(h2cRequest(requestBlock("api.example.com", [{ nameIndex: 38, value: "evil.example.net", indexing: "none" }])), null, CONFLICT, "host ≠ :authority");
});

test("h2c: a repeated :authority, a pseudo-header after a regular field, or a dynamic copy is a conflict", () => {
  expectClaim(block([...GET, { nameIndex: 1, value: "api.example.com", indexing: "none" }, { nameIndex: 1, value: "evil.example.net", indexing: "none" }]), null, CONFLICT);
  expectClaim(block([{ indexed: 2 }, { name: "x-a", value: "1", indexing: "none" }, { nameIndex: 1, value: "api.example.com", indexing: "none" }]), null, CONFLICT);
  // The authority indexed once (62 = newest dynamic entry), then referenced: the field twice.
  expectClaim(block([...GET, { nameIndex: 1, value: "api.example.com", indexing: "incremental" }, { indexed: 62 }]), null, CONFLICT);
  expectClaim(block([...GET, { name: "host", value: "api.example.com", indexing: "none" }, { name: "host", value: "evil.example.net", indexing: "none" }]), null, CONFLICT);
});

test("h2c: an :authority that is not host[:port] is malformed (userinfo, empty, too long, bad port)", () => {
  for (const bad of ["api.example.com@evil.example.net", "", "a".repeat(300), "api.example.com:99999", "api example", "[::1", ":80"]) {
    expectClaim(h2cRequest(requestBlock(bad)), null, AUTHORITY_BAD, JSON.stringify(bad.slice(0, 20)));
  }
  expectClaim(block([...GET, { indexed: 1 }]), null, AUTHORITY_BAD, "the static :authority entry (empty value)");
});

test("h2c: HPACK errors are malformed, never 'no claim'", () => {
  const cases: [string, Buffer][] = [
    ["index 0", block([...GET, { indexed: 0 }])],
    ["dynamic index beyond the table", block([...GET, { indexed: 62 }])],
    ["table size update above 4096", block([{ sizeUpdate: 4097 }, ...GET])],
    ["table size update after a field", block([...GET, { sizeUpdate: 100 }])],
    ["integer overflow", block([...GET, { raw: Buffer.from([0x41, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]) }])],
    ["string longer than the block", block([...GET, { raw: Buffer.from([0x41, 0x20, 0x61]) }])],
    ["Huffman padding of zeros", block([...GET, { raw: Buffer.from([0x41, 0x81, 0x00]) }])],
    ["Huffman padding longer than 7 bits", block([...GET, { raw: Buffer.from([0x41, 0x82, 0x1f, 0xff]) }])],
    ["EOS inside a Huffman string", block([...GET, { raw: Buffer.from([0x41, 0x84, 0xff, 0xff, 0xff, 0xff]) }])],
    ["uppercase field name", block([...GET, { name: "Host", value: "api.example.com", indexing: "none" }])],
    ["empty field name", block([...GET, { name: "", value: "x", indexing: "none" }])],
  ];
  for (const [what, bytes] of cases) expectClaim(bytes, null, MALFORMED, what);
});

test("h2c: frame sequences a server rejects are malformed", () => {
  const settings = h2Frame(4, 0, 0, Buffer.alloc(0));
  const req = requestBlock("api.example.com");
  const cases: [string, Buffer][] = [
    ["no SETTINGS first", Buffer.concat([H2_PREFACE, h2Frame(1, 5, 1, req)])],
    ["HEADERS on stream 0", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 5, 0, req)])],
    ["HEADERS on an even stream", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 5, 2, req)])],
    ["DATA before HEADERS", Buffer.concat([H2_PREFACE, settings, h2Frame(0, 0, 1, Buffer.from("x")), h2Frame(1, 5, 1, req)])],
    ["a frame larger than 16384", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 5, 1, Buffer.concat([req, Buffer.alloc(16385 - req.length)]))])],
    ["padding longer than the frame", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 0x0d, 1, Buffer.concat([Buffer.from([200]), req]))])],
    ["CONTINUATION on another stream", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 1, 1, req.subarray(0, 3)), h2Frame(9, 4, 3, req.subarray(3))])],
    ["another frame inside the header block", Buffer.concat([H2_PREFACE, settings, h2Frame(1, 1, 1, req.subarray(0, 3)), h2Frame(8, 0, 0, Buffer.from([0, 0, 0, 1]))])],
    ["SETTINGS of a length not a multiple of 6", Buffer.concat([H2_PREFACE, h2Frame(4, 0, 0, Buffer.alloc(5)), h2Frame(1, 5, 1, req)])],
  ];
  for (const [what, bytes] of cases) expectClaim(bytes, null, MALFORMED, what);
});

test("h2c: a first request still incomplete when the bytes end is flagged incomplete", () => {
  const whole = h2cRequest(requestBlock("api.example.com"), { fragment: 4 });
  for (const cut of [24, 33, 40, whole.length - 1]) {
    assert.deepEqual(detect(whole.subarray(0, cut)), { protocol: "http2", authority: null, flags: INCOMPLETE }, `cut at ${cut}`);
  }
});

test("h2c: entries evicted from the dynamic table cannot be referenced; live ones can", () => {
  // Three 1,400-byte entries in a 4,096-byte table: adding the third evicts the first.
  const big = (n: string): HpackRep => ({ name: `x-${n}`, value: "v".repeat(1400 - 32 - 3), indexing: "incremental" });
  const live = block([...GET, big("a"), big("b"), big("c"), { indexed: 63 }, { indexed: 62 }, { nameIndex: 1, value: "api.example.com", indexing: "none" }]);
  assert.deepEqual(detect(live), { protocol: "http2", authority: null, flags: CONFLICT }, "(pseudo-header after regular fields)");
  const ordered = block([...GET, { nameIndex: 1, value: "api.example.com", indexing: "none" }, big("a"), big("b"), big("c"), { indexed: 63 }, { indexed: 62 }]);
  expectClaim(ordered, "api.example.com", 0, "references to live entries");
  const evicted = block([...GET, { nameIndex: 1, value: "api.example.com", indexing: "none" }, big("a"), big("b"), big("c"), { indexed: 64 }]);
  expectClaim(evicted, null, MALFORMED, "reference to the evicted entry");
  const shrunk = block([{ sizeUpdate: 0 }, ...GET, { nameIndex: 1, value: "api.example.com", indexing: "incremental" }, { indexed: 62 }]);
  expectClaim(shrunk, null, MALFORMED, "nothing fits in a 0-byte table");
});

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("h2c: the authority nghttp2 encodes is the one decoded (random names and header values, Huffman)", { timeout: 120_000 }, async () => {
  const next = rng(0x2c2c);
  const pick = (s: string) => s[Math.floor(next() * s.length)]!;
  const word = (alphabet: string, min: number, max: number) => Array.from({ length: min + Math.floor(next() * (max - min + 1)) }, () => pick(alphabet)).join("");
  for (let i = 0; i < 60; i++) {
    const labels = Array.from({ length: 1 + Math.floor(next() * 4) }, () => word("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", 1, 20));
    const name = labels.join(".");
    const port = next() < 0.5 ? `:${1 + Math.floor(next() * 65535)}` : "";
    // Values over all visible latin1 bytes exercise the long Huffman codes as well as the short ones.
    const printable = Array.from({ length: 0x7e - 0x20 + 1 }, (_, k) => String.fromCharCode(0x20 + k)).join("") +
      Array.from({ length: 0xff - 0xa0 + 1 }, (_, k) => String.fromCharCode(0xa0 + k)).join("");
    const bytes = await nghttp2Requests([{
      ":path": `/${word("abcxyz/", 0, 30)}`, ":authority": name + port,
      "user-agent": word(printable, 1, 80), "x-fuzz": word(printable, 0, 200), cookie: `a=${word("0123456789abcdef", 10, 64)}`,
    }]);
    const r = detect(bytes);
    assert.deepEqual(r, { protocol: "http2", authority: name.toLowerCase(), flags: 0 }, `request ${i}: ${name}${port}`);
  }
});

test("h2c: a million mutated first requests never trap and never grow memory", { timeout: 600_000 }, () => {
  const next = rng(0x4c2);
  const seeds = [
    h2cRequest(requestBlock("api.example.com", [{ name: "x-a", value: "b".repeat(40), indexing: "incremental" }, { indexed: 62 }]), { fragment: 7, padding: 3 }),
    h2cRequest(Buffer.from("828684418cf1e3c2e5f23a6ba0ab90f4ff", "hex")),
    h2cRequest(hpackBlock([{ sizeUpdate: 100 }, ...GET, { nameIndex: 38, value: "h.example", indexing: "never" }])),
  ];
  const buf = Buffer.alloc(2048);
  let memory = 0;
  const outcomes = new Map<number, number>();
  for (let i = 0; i < 1_000_000; i++) {
    const seed = seeds[i % seeds.length]!;
    let n: number;
    if (next() < 0.2) {
      // Random frames and blocks after a valid preface and SETTINGS.
      seed.copy(buf, 0, 0, 24 + 9);
      n = 33 + Math.floor(next() * 200);
      for (let k = 33; k < n; k++) buf[k] = Math.floor(next() * 256);
    } else {
      n = Math.min(buf.length, seed.length);
      seed.copy(buf, 0, 0, n);
      const flips = 1 + Math.floor(next() * 4);
      for (let f = 0; f < flips; f++) buf[24 + Math.floor(next() * (n - 24))] = Math.floor(next() * 256);
      if (next() < 0.3) n = 24 + Math.floor(next() * (n - 24));
    }
    const r = detect(buf.subarray(0, n));
    outcomes.set(r.flags, (outcomes.get(r.flags) ?? 0) + 1);
    if (i === 1000) memory = engine.memoryBytes;
  }
  assert.equal(engine.memoryBytes, memory, "wasm memory grew");
  assert.ok((outcomes.get(0) ?? 0) > 0 && (outcomes.get(MALFORMED) ?? 0) > 0, `outcomes ${JSON.stringify([...outcomes])}`);
});

test("h2c: the test encoder's Huffman strings match RFC 7541 C.4.1 (so attack captures use the real code)", () => {
  assert.equal(hpackHuffman("www.example.com").toString("hex"), "8cf1e3c2e5f23a6ba0ab90f4ff");
  assert.equal(hpackHuffman("no-cache").toString("hex"), "86a8eb10649cbf");
});
