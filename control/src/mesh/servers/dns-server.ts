// A small authoritative DNS server for machines without unbound (the demo on a fresh machine):
//   node dns-server.js --listen IP:PORT --records FILE.json
// FILE.json is the world's records ([{name, ttl, type: "A"|"CNAME", value}]). Answers A queries
// over UDP and TCP, following CNAME chains and "*." wildcards, with NXDOMAIN for unknown names
// and NODATA for other types. Real packets on the wire: the agent observes them like unbound's.
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { readFlags } from "../../common/flags.js";
import { parseHostPort } from "../../common/host-port.js";

interface Rec { name: string; ttl: number; type: "A" | "CNAME"; value: string }

const { values } = readFlags({ options: { listen: { type: "string" }, records: { type: "string" } } });
if (!values.listen || !values.records) {
  process.stderr.write("usage: dns-server --listen IP:PORT --records FILE.json\n");
  process.exit(2);
}
const records = JSON.parse(readFileSync(values.records, "utf8")) as Rec[];
const { host, port: listenPort } = parseHostPort(values.listen, "dns-server --listen");

const TYPE_A = 1, TYPE_CNAME = 5, CLASS_IN = 1;
const MAX_CHAIN = 8;

function find(name: string): Rec | undefined {
  const exact = records.find((r) => r.name === name);
  if (exact) return exact;
  const dot = name.indexOf(".");
  return dot > 0 ? records.find((r) => r.name === `*${name.slice(dot)}`) : undefined;
}

function encodeName(name: string): Buffer {
  const parts = name.split(".").filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/** Reads the question; undefined for anything malformed (dropped, as a server would). */
function parseQuestion(q: Buffer): { id: number; rd: boolean; name: string; type: number; end: number } | undefined {
  if (q.length < 17 || (q[2]! & 0x80) !== 0 || q.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let i = 12;
  for (;;) {
    if (i >= q.length) return undefined;
    const len = q[i]!;
    if (len === 0) { i++; break; }
    if (len > 63 || i + 1 + len > q.length) return undefined;
    labels.push(q.subarray(i + 1, i + 1 + len).toString("ascii").toLowerCase());
    i += 1 + len;
  }
  if (i + 4 > q.length) return undefined;
  return { id: q.readUInt16BE(0), rd: (q[2]! & 1) === 1, name: labels.join("."), type: q.readUInt16BE(i), end: i + 4 };
}

function answer(q: Buffer): Buffer | undefined {
  const p = parseQuestion(q);
  if (!p) return undefined;
  const rrs: Buffer[] = [];
  let name = p.name;
  let found = false;
  for (let hop = 0; hop < MAX_CHAIN; hop++) {
    const r = find(name);
    if (!r) break;
    found = true;
    if (r.type === "CNAME") {
      const target = encodeName(r.value);
      rrs.push(rr(name, TYPE_CNAME, r.ttl, target));
      name = r.value;
      continue;
    }
    if (p.type === TYPE_A) rrs.push(rr(name, TYPE_A, r.ttl, Buffer.from(r.value.split(".").map(Number))));
    break;
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(p.id, 0);
  header[2] = 0x84 | (p.rd ? 1 : 0); // QR, AA, RD copied
  header[3] = 0x80 | (found ? 0 : 3); // RA, NOERROR or NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rrs.length, 6);
  return Buffer.concat([header, q.subarray(12, p.end), ...rrs]);
}

function rr(name: string, type: number, ttl: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([encodeName(name), fixed, data]);
}

const udp = createSocket("udp4");
udp.on("message", (msg, rinfo) => {
  const a = answer(msg);
  if (a) udp.send(a, rinfo.port, rinfo.address);
});
udp.bind(listenPort, host);

createServer((sock) => {
  let buf = Buffer.alloc(0);
  sock.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const a = answer(Buffer.from(msg));
      if (a) { const len = Buffer.alloc(2); len.writeUInt16BE(a.length); sock.write(Buffer.concat([len, a])); }
    }
    if (buf.length > 65537) sock.destroy();
  });
  sock.on("error", () => sock.destroy());
}).listen(listenPort, host);

for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
