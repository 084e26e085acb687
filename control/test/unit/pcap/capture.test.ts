import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CaptureFormatError, decodeCapture, readAllPackets, readCapture } from "../../../src/pcap/index.js";
import { concat, pcapFile, pcapngFile, tcp4Frame } from "./builders.js";

const frameA = tcp4Frame("198.18.0.1", 40000, "198.18.0.2", 80, [1, 2, 3]);
const frameB = tcp4Frame("198.18.0.2", 80, "198.18.0.1", 40000, [4, 5]);

test("reads libpcap in both byte orders, micro- and nanosecond", () => {
  for (const littleEndian of [true, false]) {
    for (const nanos of [false, true]) {
      const file = pcapFile(1, [{ time: 1700000000.25, data: frameA }, { time: 1700000001.5, data: frameB, origLen: 1500 }], { littleEndian, nanos });
      const r = readAllPackets(file);
      assert.equal(r.format, "pcap");
      assert.equal(r.errors, 0);
      assert.equal(r.packets.length, 2);
      assert.equal(r.packets[0]!.linkType, 1);
      assert.ok(Math.abs(r.packets[0]!.time - 1700000000.25) < 1e-6);
      assert.ok(Math.abs(r.packets[1]!.time - 1700000001.5) < 1e-6);
      assert.deepEqual([...r.packets[1]!.data], [...frameB]);
      assert.equal(r.packets[1]!.origLen, 1500);
      // zero-copy: the data is a view into the file
      assert.equal(r.packets[0]!.data.buffer, file.buffer);
    }
  }
});

test("strips FCS flag bits from the libpcap link type", () => {
  const file = pcapFile(1 | 0x1000_0000 | (4 << 28), [{ time: 1, data: frameA }]);
  assert.equal(readAllPackets(file).packets[0]!.linkType, 1);
});

test("a truncated libpcap file yields the complete packets, then reports one error", () => {
  const file = pcapFile(1, [{ time: 1, data: frameA }, { time: 2, data: frameB }]);
  for (const cut of [file.length - 1, file.length - frameB.length - 5]) {
    const r = readAllPackets(file.subarray(0, cut));
    assert.equal(r.packets.length, 1);
    assert.equal(r.errors, 1);
    assert.match(r.lastError!, /truncated pcap record/);
  }
});

test("a record with an impossible length stops reading with an error naming the offset", () => {
  const file = pcapFile(1, [{ time: 1, data: frameA }, { time: 2, data: frameB }]);
  const bad = file.slice();
  new DataView(bad.buffer).setUint32(24 + 16 + frameA.length + 8, 0x7fffffff, true);
  const r = readAllPackets(bad);
  assert.equal(r.packets.length, 1);
  assert.match(r.lastError!, /corrupt pcap record at offset \d+: captured length/);
});

test("non-capture bytes throw one clear CaptureFormatError", () => {
  assert.throws(() => readCapture(new TextEncoder().encode("GET / HTTP/1.1\r\n")), (e: unknown) => e instanceof CaptureFormatError && /not a pcap or pcapng file/.test(e.message));
  assert.throws(() => readCapture(new Uint8Array(2)), CaptureFormatError);
  assert.throws(() => readCapture(pcapFile(1, []).subarray(0, 20)), /truncated pcap global header/);
});

test("reads pcapng: per-interface link types, timestamp resolution, both byte orders, SPB", () => {
  for (const littleEndian of [true, false]) {
    const file = pcapngFile(
      [{ linkType: 1 }, { linkType: 101, tsresol: 9 }, { linkType: 113, tsresol: 0x80 | 10 }],
      [
        { iface: 0, ticks: 1700000000_250000n, data: frameA },
        { iface: 1, ticks: 1700000001_500000000n, data: frameB.subarray(14) },
        { iface: 2, ticks: 1024n * 3n + 512n, data: frameB },
      ],
      { littleEndian },
    );
    const r = readAllPackets(file);
    assert.equal(r.format, "pcapng");
    assert.equal(r.errors, 0, r.lastError);
    assert.deepEqual(r.packets.map((p) => p.linkType), [1, 101, 113]);
    assert.deepEqual(r.packets.map((p) => p.interfaceId), [0, 1, 2]);
    assert.ok(Math.abs(r.packets[0]!.time - 1700000000.25) < 1e-6);
    assert.ok(Math.abs(r.packets[1]!.time - 1700000001.5) < 1e-6);
    assert.equal(r.packets[2]!.time, 3.5);
    assert.deepEqual([...r.packets[1]!.data], [...frameB.subarray(14)]);
  }
  const spb = readAllPackets(pcapngFile([{ linkType: 1 }], [{ iface: 0, ticks: 0n, data: frameA, simple: true }]));
  assert.equal(spb.errors, 0);
  assert.deepEqual([...spb.packets[0]!.data], [...frameA]);
});

test("pcapng damage: undeclared interface and truncated block are counted, not thrown", () => {
  const file = pcapngFile([{ linkType: 1 }], [{ iface: 0, ticks: 1n, data: frameA }, { iface: 5, ticks: 2n, data: frameA }, { iface: 0, ticks: 3n, data: frameB }]);
  const r = readAllPackets(file);
  assert.equal(r.packets.length, 2);
  assert.equal(r.errors, 1);
  assert.match(r.lastError!, /undeclared interface 5/);
  const cut = readAllPackets(file.subarray(0, file.length - 3));
  assert.equal(cut.packets.length, 1);
  assert.match(cut.lastError!, /truncated pcapng block/);
});

test("pcapng with a second section switching byte order", () => {
  const a = pcapngFile([{ linkType: 1 }], [{ iface: 0, ticks: 1n, data: frameA }], { littleEndian: true });
  const b = pcapngFile([{ linkType: 101 }], [{ iface: 0, ticks: 2n, data: frameB.subarray(14) }], { littleEndian: false });
  const r = readAllPackets(concat(a, b));
  assert.equal(r.errors, 0, r.lastError);
  assert.deepEqual(r.packets.map((p) => p.linkType), [1, 101]);
});

const corpus = fileURLToPath(new URL("../../../../../../shared/corpus/", import.meta.url));
test("every capture of the shared corpus reads without damage and decodes", { skip: !existsSync(corpus) && `no corpus at ${corpus}` }, () => {
  let files = 0;
  let packets = 0;
  for (const dir of ["ndpi", "extra_l4", "dns"]) {
    for (const f of readdirSync(corpus + dir).filter((n) => /\.(pcap|pcapng)$/.test(n))) {
      const drops = {};
      const { reader, packets: it } = decodeCapture(readFileSync(corpus + dir + "/" + f), drops);
      for (const _ of it) packets++;
      assert.equal(reader.errors, 0, `${dir}/${f}: ${reader.lastError}`);
      assert.equal((drops as Record<string, number>)["unsupported-link-type"], undefined, `${dir}/${f}`);
      files++;
    }
  }
  assert.ok(files > 100 && packets > 10000, `${files} files, ${packets} packets`);
});
