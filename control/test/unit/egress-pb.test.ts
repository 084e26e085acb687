// Tests of the filter's hand-written protobuf codec (filter/assembly/pb), cross-checked against
// protobufjs, the encoder grpc-js itself uses, and fed hostile bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import protobuf from "protobufjs";
import fc from "fast-check";
import { loadHarness } from "./egress-harness.js";

const h = loadHarness("egress_pb");
const inPtr = h.exports.inputPtr() as number;
const outPtr = h.exports.outputPtr() as number;

interface Field { field: number; wire: number; value?: bigint; bytes?: Uint8Array }

function decode(bytes: Uint8Array): Field[] | null {
  h.write(inPtr, bytes);
  const n = h.exports.decodeFlat(bytes.length) as number;
  if (n < 0) return null;
  const dv = new DataView(h.memory.buffer);
  const out: Field[] = [];
  for (let i = 0; i < n; i++) {
    const rec = outPtr + i * 24;
    const field = dv.getUint32(rec, true);
    const wire = dv.getUint32(rec + 4, true);
    if (wire === 2) {
      const off = dv.getUint32(rec + 8, true);
      const len = dv.getUint32(rec + 12, true);
      out.push({ field, wire, bytes: bytes.slice(off, off + len) });
    } else out.push({ field, wire, value: dv.getBigUint64(rec + 8, true) });
  }
  return out;
}

const Sample = protobuf.parse(`
syntax = "proto3";
message Inner { bytes data = 1; }
message Nested { uint32 k = 1; Inner inner = 2; }
message Sample {
  uint64 u = 1; sint64 s = 2; int32 i = 3; fixed32 f32 = 4; fixed64 f64 = 5;
  bytes b = 6; string text = 7; repeated Nested nested = 8; bool flag = 9;
}`).root.lookupType("Sample");

test("decodes what protobufjs encodes: every wire type, 64-bit varints, nested messages", () => {
  const msg = Sample.create({
    u: (protobuf.util.Long as any).fromString("18446744073709551615", true), s: -1234567890123, i: -7,
    f32: 0xdeadbeef, f64: (protobuf.util.Long as any).fromString("81985529216486895", true),
    b: new Uint8Array(300).fill(7), text: "héllo", nested: [{ k: 3, inner: { data: new Uint8Array([1, 2]) } }], flag: true,
  });
  const bytes = Sample.encode(msg).finish();
  const fields = decode(bytes);
  assert.ok(fields, "valid protobuf must decode");
  const byField = new Map(fields!.map((f) => [f.field, f]));
  assert.equal(byField.get(1)!.value, 18446744073709551615n);
  assert.equal(byField.get(3)!.value, BigInt.asUintN(64, -7n), "negative int32 is a ten-byte varint");
  assert.equal(byField.get(4)!.value, 0xdeadbeefn);
  assert.equal(byField.get(5)!.value, 81985529216486895n);
  assert.equal(byField.get(6)!.bytes!.length, 300);
  assert.equal(Buffer.from(byField.get(7)!.bytes!).toString(), "héllo");
  // zigzag: re-read field 2's varint bytes through the sint64 decoder
  const sVarint = bytes.slice(bytes.indexOf(0x10) + 1);
  h.write(inPtr, sVarint);
  assert.equal(h.exports.decodeSint64(sVarint.length), -1234567890123n);
});

test("encodes what protobufjs decodes, including nested lengths that need two varint bytes", () => {
  h.write(inPtr, new Uint8Array(200).map((_, i) => i));
  for (const [bytesLen, repeat] of [[0, 0], [5, 1], [200, 3]] as const) {
    const len = h.exports.encodeSample(65536, 300n, -9n, -2, 0xcafebabe, 1n << 60n, bytesLen, repeat) as number;
    assert.ok(len > 0);
    const m = Sample.toObject(Sample.decode(h.read(outPtr, len)), { longs: String, bytes: Array }) as any;
    assert.equal(m.u, "300");
    assert.equal(m.s, "-9");
    assert.equal(m.i, -2);
    assert.equal(m.f32, 0xcafebabe);
    assert.equal(m.f64, String(1n << 60n));
    assert.equal(m.text, "héllo");
    assert.equal(m.flag, true);
    assert.equal((m.nested ?? []).length, repeat);
    for (const [k, n] of (m.nested ?? []).entries()) {
      assert.equal(n.k ?? 0, k);
      assert.deepEqual(n.inner?.data ?? [], Array.from({ length: bytesLen }, (_, i) => i));
    }
  }
});

test("reports overflow instead of writing past the buffer", () => {
  assert.equal(h.exports.encodeSample(40, 1n, 1n, 1, 1, 1n, 100, 2), -1);
  const full = h.exports.encodeSample(65536, 1n, 1n, 1, 1, 1n, 10, 1) as number;
  assert.equal(h.exports.encodeSample(full, 1n, 1n, 1, 1, 1n, 10, 1), full, "exact capacity fits");
  assert.equal(h.exports.encodeSample(full - 1, 1n, 1n, 1, 1, 1n, 10, 1), -1);
});

test("rejects malformed input: truncated varint, overlong varint, length past end, field 0, groups", () => {
  const bad: Array<[string, number[]]> = [
    ["truncated varint", [0x08, 0x80]],
    ["eleven-byte varint", [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
    ["length past end", [0x0a, 0x05, 1, 2]],
    ["huge length", [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]],
    ["field number 0", [0x00, 0x01]],
    ["start group", [0x0b]],
    ["wire type 7", [0x0f, 0x00]],
    ["truncated fixed32", [0x25, 1, 2]],
    ["truncated fixed64", [0x29, 1, 2, 3, 4, 5, 6, 7]],
  ];
  for (const [what, bytes] of bad) assert.equal(decode(new Uint8Array(bytes)), null, what);
  assert.deepEqual(decode(new Uint8Array([])), [], "empty message is valid");
});

test("never traps on random or mutated bytes (100k inputs)", () => {
  const seed = Sample.encode(Sample.create({ u: 5, b: new Uint8Array([1, 2, 3]), nested: [{ k: 1, inner: { data: new Uint8Array(20) } }] })).finish();
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, b]) => { const c = seed.slice(); c[i] = b; return c; }),
        fc.nat(seed.length).map((n) => seed.slice(0, n)),
      ),
      (bytes) => {
        const r = decode(bytes);
        if (r) for (const f of r) if (f.bytes) assert.ok(f.bytes.length <= bytes.length);
      },
    ),
    { numRuns: 100_000 },
  );
});
