// Property tests: the capture layer never throws past its boundary on arbitrary bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CaptureFormatError, decodeCapture, decodeFrame, readCapture, TcpReassembler } from "../../../src/pcap/index.js";
import { pcapFile, pcapngFile, tcp4Frame } from "./builders.js";

const linkTypes = [0, 1, 9, 10, 12, 14, 50, 51, 101, 108, 113, 228, 229, 239, 276];

test("decodeFrame never throws on random bytes for any link type", () => {
  fc.assert(fc.property(fc.constantFrom(...linkTypes), fc.uint8Array({ maxLength: 200 }), (lt, data) => {
    const p = decodeFrame(lt, data, {});
    if (p) assert.ok(p.payload.length <= data.length);
  }), { numRuns: 20000 });
});

test("decodeFrame never throws on mutated valid frames", () => {
  const base = tcp4Frame("198.18.0.1", 1234, "198.18.0.2", 80, new Array(40).fill(0x41));
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(base.length), (muts, cut) => {
    const f = base.slice(0, cut);
    for (const [i, v] of muts) if (i < f.length) f[i] = v;
    decodeFrame(1, f, {});
  }), { numRuns: 20000 });
});

test("readCapture either throws CaptureFormatError or yields packets with counted damage", () => {
  const frame = tcp4Frame("198.18.0.1", 1234, "198.18.0.2", 80, [1, 2, 3]);
  const seeds = [
    pcapFile(1, [{ time: 1, data: frame }, { time: 2, data: frame }]),
    pcapFile(113, [{ time: 1, data: frame }], { littleEndian: false, nanos: true }),
    pcapngFile([{ linkType: 1, tsresol: 9 }], [{ iface: 0, ticks: 5n, data: frame }, { iface: 0, ticks: 0n, data: frame, simple: true }]),
  ];
  fc.assert(fc.property(fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(400), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(400)).map(([s, muts, cut]) => {
      const b = s.slice(0, Math.max(4, cut));
      for (const [i, v] of muts) if (i < b.length) b[i] = v;
      return b;
    }),
  ), (bytes) => {
    let reader;
    try {
      reader = decodeCapture(bytes);
    } catch (e) {
      assert.ok(e instanceof CaptureFormatError, String(e));
      return;
    }
    const r = new TcpReassembler({}, { maxBufferedBytesPerConnection: 64, maxBufferedBytesTotal: 256, maxConnections: 4 });
    for (const { time, packet } of reader.packets) r.push(packet, time);
    r.flush();
    assert.equal(r.stats.bufferedBytes, 0);
    // A damaged capture is counted, never silent: an error count comes with the last error's text.
    assert.equal(reader.reader.errors > 0, reader.reader.lastError !== undefined, `errors ${reader.reader.errors}, lastError ${reader.reader.lastError}`);
    // iterating again gives the same result
    assert.equal([...readCapture(bytes)].length, [...readCapture(bytes)].length);
  }), { numRuns: 20000 });
});
