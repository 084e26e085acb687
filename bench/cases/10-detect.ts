// Detector cost per first flight, run through the very detector compiled into egret.wasm.
// Baseline: copying the same bytes into wasm memory and calling a no-op export of the same
// module (the fixed JS→wasm transfer cost every detector call pays).
import { DetectorEngine } from "../../control/src/detect/wasm-detector.js";
import { instantiateTools } from "../../control/src/wasm/tools.js";
import { clientHello, pgStartup } from "../../control/test/host/egress-fixture.js";
import { h2cRequest, hpackBlock } from "../../control/test/support/h2c.js";
import { timePerCall, type BenchCase, type Figure } from "../harness.js";

/** A ClientHello grown to `size` bytes with a padding extension (21), as browsers send. */
function paddedClientHello(sni: string, alpn: string[], size: number): Buffer {
  const base = clientHello(sni, alpn);
  const pad = Math.max(0, size - base.length - 4);
  const ext = Buffer.concat([Buffer.from([0, 21, pad >> 8, pad & 0xff]), Buffer.alloc(pad)]);
  const out = Buffer.concat([base, ext]);
  // Patch the record, handshake and extensions lengths for the added bytes.
  const add = ext.length;
  out.writeUInt16BE(out.readUInt16BE(3) + add, 3);
  const hsLen = (out[6] << 16) | (out[7] << 8) | out[8];
  const nl = hsLen + add; out[6] = nl >> 16; out[7] = (nl >> 8) & 0xff; out[8] = nl & 0xff;
  // extensions length sits after: 9 + version(2) + random(32) + sid(1+0) + suites(2+4) + comp(1+1)
  const extOff = 9 + 2 + 32 + 1 + 2 + 4 + 2;
  out.writeUInt16BE(out.readUInt16BE(extOff) + add, extOff);
  return out;
}

export const benchCase: BenchCase = {
  name: "detector per first flight (egret.wasm)",
  async run(ctx) {
    const tools = instantiateTools();
    const engine = new DetectorEngine(tools);
    const scratch = tools.fn<() => number>("detect_scratch")();
    const noop = tools.fn<() => number>("detect_scratch_size");
    const hello = paddedClientHello("api.payments.example.com", ["h2", "http/1.1"], 512);
    const pg = pgStartup("app", "orders");
    // h2c prior knowledge: preface, SETTINGS and a first request as browsers and curl encode it
    // (indexed pseudo-headers, Huffman-coded :authority, user-agent and accept).
    const h2c = h2cRequest(hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 },
      { nameIndex: 1, huffman: "api.payments.example.com", indexing: "incremental" },
      { nameIndex: 58, huffman: "curl/8.5.0", indexing: "incremental" }, { nameIndex: 19, huffman: "*/*", indexing: "incremental" }]));
    const copyBaseline = (bytes: Uint8Array) => () => { tools.u8().set(bytes, scratch); noop(); };
    const detectOnce = (bytes: Uint8Array, expect: string) => {
      const s = engine.open();
      const proto = s.feedClient(bytes);
      s.close();
      if (engine.protocolName(proto) !== expect) throw new Error(`detector said ${engine.protocolName(proto)} for ${expect}`);
    };
    const figures: Figure[] = [];
    const batch = Math.max(1000, Math.round(20000 * ctx.scale));
    for (const [label, bytes, expect] of [["TLS ClientHello", hello, "tls"], ["PostgreSQL startup", pg, "postgresql"], ["h2c first request (HPACK, Huffman)", h2c, "http2"]] as const) {
      const t = timePerCall(() => detectOnce(bytes, expect), batch);
      const b = timePerCall(copyBaseline(bytes), batch);
      figures.push({
        name: `${label} (${bytes.length} B): open + feed + verdict + close`, value: t / 1000, unit: "µs",
        baseline: { name: "copy into wasm + no-op call", value: b / 1000, unit: "µs" },
        target: "≤ 1 µs", meetsTarget: t / 1000 <= 1,
      });
    }
    // Throughput over random bytes: many sessions fed 4 KiB of noise each (must answer unknown fast).
    const noise = new Uint8Array(4096);
    for (let i = 0; i < noise.length; i++) noise[i] = (Math.imul(i + 1, 2654435761) >>> 13) & 0xff;
    const rounds = Math.max(200, Math.round(5000 * ctx.scale));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) { const s = engine.open(); s.feedClient(noise); s.close(); }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c0 = process.hrtime.bigint();
    const copy = copyBaseline(noise);
    for (let i = 0; i < rounds; i++) copy();
    const csecs = Number(process.hrtime.bigint() - c0) / 1e9;
    figures.push({
      name: "random bytes through every detector", value: (rounds * noise.length) / secs / 2 ** 20, unit: "MiB/s",
      baseline: { name: "copy into wasm only", value: (rounds * noise.length) / csecs / 2 ** 20, unit: "MiB/s" },
      extra: { wasmMemoryBytes: engine.memoryBytes },
    });
    return figures;
  },
};
