// The ABI layer's codecs (filter/assembly/abi/pairs.ts, grpc.ts) agree with the Node host that
// plays Envoy: pairs are accepted/rejected by the same rules (reference/proxy-wasm.md §2.3) and the
// serialized GrpcService parses to the cluster and authority it was built from (§5).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { encodePairs, decodePairs, parseGrpcService } from "../../src/host/index.js";

function load(): { e: Record<string, (...a: number[]) => number>; mem: () => Uint8Array } {
  const path = fileURLToPath(new URL("../../../../filter/build/test/abi_codecs.wasm", import.meta.url));
  const mod = new WebAssembly.Module(readFileSync(path));
  const imports: Record<string, Record<string, () => number>> = {};
  for (const imp of WebAssembly.Module.imports(mod)) if (imp.kind === "function") (imports[imp.module] ??= {})[imp.name] = () => 0;
  const inst = new WebAssembly.Instance(mod, imports as WebAssembly.Imports);
  const e = inst.exports as unknown as Record<string, (...a: number[]) => number>;
  (e._start as unknown as () => void)?.();
  const memory = inst.exports.memory as WebAssembly.Memory;
  return { e, mem: () => new Uint8Array(memory.buffer) };
}

const h = load();
const input = (bytes: Uint8Array): number => { h.mem().set(bytes, h.e.input_ptr()); return bytes.length; };

function asPairs(bytes: Uint8Array): [Buffer, Buffer][] | undefined {
  const n = h.e.pairs_check(input(bytes));
  if (n < 0) return undefined;
  const out: [Buffer, Buffer][] = [];
  const base = h.e.input_ptr(), o = h.e.output_ptr();
  for (let i = 0; i < n; i++) {
    h.e.pairs_entry(i);
    const v = new DataView(h.mem().buffer, o, 16);
    const [kp, kl, vp, vl] = [0, 4, 8, 12].map((k) => v.getUint32(k, true));
    out.push([Buffer.from(h.mem().subarray(base + kp, base + kp + kl)), Buffer.from(h.mem().subarray(base + vp, base + vp + vl))]);
  }
  return out;
}

const pairsArb = fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })), { maxLength: 12 });

// Test that every well-formed pairs buffer reads back identically in the module (§2.3).
test("PairsReader reads what the host encodes", () => {
  fc.assert(fc.property(pairsArb, (pairs) => {
    const got = asPairs(encodePairs(pairs));
    assert.ok(got, "rejected a valid buffer");
    assert.deepEqual(got.map(([k, v]) => [k.toString(), v.toString()]), pairs);
  }), { numRuns: 300 });
});

// Test that mutated buffers are accepted or rejected exactly as the host decides (never read out of bounds).
test("PairsReader accepts/rejects mutated buffers like the host (fuzz)", () => {
  fc.assert(fc.property(pairsArb.filter((p) => p.length > 0), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: -3, max: 3 }), (pairs, at, byte, cut) => {
    const buf = Buffer.from(encodePairs(pairs));
    buf[at % buf.length] = byte;
    const bytes = cut >= 0 ? buf : buf.subarray(0, Math.max(0, buf.length + cut));
    const host = decodePairs(bytes);
    const mine = asPairs(bytes);
    // The host treats invalid input as an empty map, so a rejection compares as [].
    assert.deepEqual(mine ?? [], host);
  }), { numRuns: 2000 });
});

// Test the named edge cases: empty, header-only, missing NUL, trailing garbage, absurd count.
test("PairsReader edge cases", () => {
  assert.deepEqual(asPairs(new Uint8Array(0)), []);
  assert.equal(asPairs(Uint8Array.of(1, 0)), undefined, "shorter than the count");
  const good = encodePairs([["a", "1"], ["b", "22"]]);
  // The spec example, with the erratum fixed ('1' = 0x31, '2' = 0x32).
  assert.deepEqual([...good], [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0x61, 0, 0x31, 0, 0x62, 0, 0x32, 0x32, 0]);
  assert.equal(asPairs(Buffer.concat([good, Buffer.of(0)])), undefined, "trailing byte");
  const noNul = Buffer.from(good); noNul[noNul.length - 1] = 0x33;
  assert.equal(asPairs(noNul), undefined, "value not NUL-terminated");
  assert.equal(asPairs(Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0)), undefined, "count larger than the buffer");
});

// Test that the serialized GrpcService parses back to its cluster and authority (§5), including
// long names (2-byte varints) and non-ASCII.
test("encodeGrpcService round-trips through the host's GrpcService parser", () => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 300 }), fc.string({ maxLength: 200 }), (cluster, authority) => {
    const c = Buffer.from(cluster), a = Buffer.from(authority);
    input(Buffer.concat([c, a]));
    const n = h.e.grpc_service(c.length, a.length);
    assert.ok(n > 0);
    const bytes = h.mem().slice(h.e.output_ptr(), h.e.output_ptr() + n);
    assert.deepEqual(parseGrpcService(bytes), { cluster, authority });
  }), { numRuns: 300 });
  const istio = "outbound|9090||egret-control.egret-system.svc.cluster.local";
  input(Buffer.from(istio + "egret-control.egret-system.svc.cluster.local:9090"));
  const n = h.e.grpc_service(istio.length, "egret-control.egret-system.svc.cluster.local:9090".length);
  const bytes = Buffer.from(h.mem().slice(h.e.output_ptr(), h.e.output_ptr() + n));
  assert.equal(bytes[0], 0x0a, "field 1 (envoy_grpc), length-delimited");
  // A plain Istio cluster name is NOT a valid GrpcService ('o' = field 13, wire type 7).
  assert.equal(parseGrpcService(Buffer.from(istio)), undefined);
});
