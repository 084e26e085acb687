// The detector allocates nothing per connection: counted exactly with the runtime's rtrace hooks
// in the detect_alloc harness (filter/test/detect_alloc.ts, same detector sources), for every
// protocol's first bytes, whole and byte at a time, after reset() (object-pool reuse).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as m from "./messages.js";
import { h2cRequest, hpackBlock } from "../../support/h2c.js";

const HARNESS = fileURLToPath(new URL("../../../../../filter/build/test/detect_alloc.wasm", import.meta.url));

function load() {
  const mod = new WebAssembly.Module(readFileSync(HARNESS));
  let allocations = 0;
  const imports: Record<string, Record<string, (...a: number[]) => number | void>> = {
    rtrace: { oninit: () => {}, onalloc: () => { allocations++; }, onfree: () => {}, onresize: () => { allocations++; }, onmove: () => { allocations++; },
      onvisit: () => 1, oncollect: () => {}, oninterrupt: () => {}, onyield: () => {}, onstore: (ptr) => ptr, onload: (ptr) => ptr },
    env: { proxy_log: () => 0 }, wasi_snapshot_preview1: { random_get: () => 0 },
  };
  for (const imp of WebAssembly.Module.imports(mod)) assert.ok(imports[imp.module]?.[imp.name], `harness import ${imp.module}.${imp.name} not provided`);
  const inst = new WebAssembly.Instance(mod, imports as WebAssembly.Imports);
  const x = inst.exports as Record<string, (...a: number[]) => number>;
  if (typeof x._start === "function") x._start();
  return { x, memory: inst.exports.memory as WebAssembly.Memory, allocations: () => allocations };
}

const workloads: [string, Uint8Array, Uint8Array, boolean][] = [
  ["tls", m.clientHello({ sni: "a.example", alpn: ["h2", "http/1.1"], versions: [0x0304], ech: true, recordSize: 200, padding: 500 }), new Uint8Array(0), false],
  ["http", m.httpRequest("CONNECT", "db.example:5432", [["Host", "db.example:5432"]]), new Uint8Array(0), false],
  ["h2c (HPACK, Huffman, CONTINUATION)", h2cRequest(hpackBlock([{ indexed: 2 }, { nameIndex: 1, huffman: "api.example.com", indexing: "incremental" },
    { name: "x-a", huffman: "b".repeat(30), indexing: "incremental" }, { indexed: 62 }]), { fragment: 6, padding: 2 }), new Uint8Array(0), false],
  ["postgresql", m.pgStartup(), new Uint8Array(0), false],
  ["redis ambiguous", m.bytes("get k\r\n"), m.bytes("$1\r\nv\r\n"), false],
  ["memcached", m.bytes("set k 0 0 1\r\nv\r\n"), new Uint8Array(0), false],
  ["mongodb", m.mongoOpMsg(), new Uint8Array(0), false],
  ["kafka", m.kafkaRequest(), new Uint8Array(0), false],
  ["ldap", m.ldapSearchRootDse(), new Uint8Array(0), false],
  ["dns", m.dnsQuery(), new Uint8Array(0), false],
  ["cassandra", m.cassandraStartup(), new Uint8Array(0), false],
  ["mqtt", m.mqttConnect(), new Uint8Array(0), false],
  ["mysql", new Uint8Array(0), m.mysqlGreeting(), true],
  ["smtp/ftp", m.bytes("USER x\r\n"), m.bytes("220 hello\r\n"), true],
  ["ssh", m.sshBanner(), m.sshBanner("srv"), true],
  ["noise", m.bytes(new Array(300).fill(0).map((_, i) => (i * 37) & 0xff)), m.bytes("garbage\r\n"), false],
];

test("detecting every protocol allocates nothing (rtrace count), whole and byte at a time", () => {
  const h = load();
  for (const [name, client, server, serverFirst] of workloads) {
    new Uint8Array(h.memory.buffer).set(client, h.x.client_area!());
    new Uint8Array(h.memory.buffer).set(server, h.x.server_area!());
    for (const chunk of [65536, 7, 1]) {
      for (const midstream of [0, 1]) {
        const before = h.allocations();
        const memoryBefore = h.memory.buffer.byteLength;
        const r = h.x.run_many!(chunk === 1 ? 50 : 500, client.length, server.length, serverFirst ? 1 : 0, chunk, midstream);
        assert.ok(r >= 0, `${name}: result ${r}`);
        assert.equal(h.allocations() - before, 0, `${name} chunk ${chunk} midstream ${midstream}: allocations`);
        assert.equal(h.memory.buffer.byteLength, memoryBefore, `${name}: memory grew`);
      }
    }
  }
  assert.ok(h.allocations() > 0, "the counter saw the detector's one-time allocations");
});
