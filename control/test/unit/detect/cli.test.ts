// `egret detect` end to end: a synthesized capture (pcapng, two link types, IPv4 and IPv6,
// out-of-order segments, server-first protocol) gives exactly the expected JSON lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ethernet, ipv4, ipv6, pcapngFile, tcpSegment, type NgPacket } from "../pcap/builders.js";
import * as m from "./messages.js";
import { CORPUS, corpusAvailable } from "./corpus-truth.js";

const bin = fileURLToPath(new URL("../../../../../bin/egret.js", import.meta.url));
const SYN = 0x02, ACK = 0x10, PSH = 0x08;

function egret(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
}

/** Packets of one TCP connection: handshake, then the given payloads in order. */
function connection(iface: number, v6: boolean, c: [string, number], s: [string, number], payloads: { fromClient: boolean; data: Uint8Array; seqOffset?: number }[], t0: bigint): NgPacket[] {
  const frame = (fromClient: boolean, data: Uint8Array, seq: number, flags: number) => {
    const [src, sport] = fromClient ? c : s;
    const [dst, dport] = fromClient ? s : c;
    const seg = tcpSegment(sport, dport, data, { seq, ack: 1, flags });
    return v6 ? ipv6(src, dst, 6, seg) : ethernet(ipv4(src, dst, 6, seg));
  };
  const out: NgPacket[] = [];
  let t = t0;
  out.push({ iface, ticks: t++, data: frame(true, new Uint8Array(0), 999, SYN) });
  out.push({ iface, ticks: t++, data: frame(false, new Uint8Array(0), 4999, SYN | ACK) });
  let cseq = 1000;
  let sseq = 5000;
  for (const p of payloads) {
    const base = p.fromClient ? cseq : sseq;
    out.push({ iface, ticks: t++, data: frame(p.fromClient, p.data, base + (p.seqOffset ?? 0), ACK | PSH) });
    if (p.seqOffset === undefined) {
      if (p.fromClient) cseq += p.data.length;
      else sseq += p.data.length;
    }
  }
  return out;
}

test("egret detect --json prints one exact object per connection", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-detect-"));
  try {
    const hello = m.clientHello({ sni: "Pay.Example.COM", alpn: ["h2", "http/1.1"], versions: [0x0304] });
    const first = hello.subarray(0, 60);
    const rest = hello.subarray(60);
    const connect = m.httpRequest("CONNECT", "db.example.org:5432", [["Host", "db.example.org:5432"]]);
    const packets = [
      // ClientHello delivered out of order: the second half first.
      ...connection(0, false, ["198.18.0.10", 40001], ["198.18.1.1", 443], [
        { fromClient: true, data: rest, seqOffset: 60 }, { fromClient: true, data: first }, { fromClient: false, data: m.bytes([0x16, 3, 3, 0, 1, 2]) },
      ], 1_700_000_000_000_000n),
      ...connection(1, true, ["2001:db8::10", 40002], ["2001:db8::3128", 3128], [{ fromClient: true, data: connect }], 1_700_000_001_000_000n),
      ...connection(0, false, ["198.18.0.10", 40003], ["198.18.1.2", 3306], [{ fromClient: false, data: m.mysqlGreeting() }], 1_700_000_002_000_000n),
    ];
    // The second connection rides a raw-IP interface; its packets were built without Ethernet.
    const file = join(dir, "mixed.pcapng");
    writeFileSync(file, pcapngFile([{ linkType: 1 }, { linkType: 101 }], packets));
    const r = egret("detect", "--pcap", file, "--json");
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { client: "198.18.0.10:40001", server: "198.18.1.1:443", protocol: "tls", sni: "pay.example.com", alpn: ["h2", "http/1.1"], http_host: null, connect_target: null },
      { client: "[2001:db8::10]:40002", server: "[2001:db8::3128]:3128", protocol: "http", sni: null, alpn: null, http_host: "db.example.org", connect_target: "db.example.org:5432" },
      { client: "198.18.0.10:40003", server: "198.18.1.2:3306", protocol: "mysql", sni: null, alpn: null, http_host: null, connect_target: null },
    ]);
    const table = egret("detect", "--pcap", file);
    assert.equal(table.status, 0);
    assert.match(table.stdout, /^CLIENT\s+SERVER\s+PROTOCOL\s+DETAILS\n/);
    assert.match(table.stdout, /198\.18\.0\.10:40001\s+198\.18\.1\.1:443\s+tls\s+sni=pay\.example\.com alpn=h2,http\/1\.1/);
    assert.match(table.stdout, /connect=db\.example\.org:5432/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("egret detect reports bad input clearly", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-detect-"));
  try {
    const noFlag = egret("detect");
    assert.equal(noFlag.status, 2);
    assert.match(noFlag.stderr, /--pcap FILE is required/);
    const unknownFlag = egret("detect", "--pcap", "x", "--bogus");
    assert.equal(unknownFlag.status, 2);
    const missing = egret("detect", "--pcap", join(dir, "nope.pcap"));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read .*nope\.pcap: ENOENT/);
    const text = join(dir, "notes.txt");
    writeFileSync(text, "hello, not a capture\n");
    const notCapture = egret("detect", "--pcap", text);
    assert.equal(notCapture.status, 1);
    assert.match(notCapture.stderr, /not a pcap or pcapng file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("egret detect on a real capture", { skip: !corpusAvailable && "no ../shared/corpus" }, () => {
  const r = egret("detect", "--pcap", CORPUS + "extra_l4/zeek__tls__tls13-ech.pcap", "--json");
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { protocol: string; sni: string | null });
  assert.equal(rows.length, 3);
  assert.ok(rows.every((x) => x.protocol === "tls"));
  assert.deepEqual(rows.filter((x) => x.sni).map((x) => x.sni), ["cloudflare-ech.com", "cloudflare-ech.com"]);
});
