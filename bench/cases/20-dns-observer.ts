// DNS observer throughput from a capture: the agent's full pipeline (frame decode, DNS parse,
// query/answer matching, evidence rules, observation) over a synthetic pcap of query/answer pairs
// from 1,000 pods, beside dns-packet decoding the same DNS messages, queries and answers (decode
// alone: no frames, no matching), counted per answer as the pipeline is. Rates are per second of
// this process's CPU time (user + system, GC threads included), not wall time: the machine is shared
// and wall time mostly measures the other processes. The baseline's messages sit in one buffer
// (offsets, not 400,000 retained Buffer objects) so neither side pays GC for the other's inputs.
import dnsPacket from "dns-packet";
import { analyzeCapture } from "../../control/src/dns/offline.js";
import { type BenchCase } from "../harness.js";

const RESOLVER = [198, 18, 0, 10];

function ipv4Udp(src: number[], dst: number[], sport: number, dport: number, payload: Uint8Array): Buffer {
  const udpLen = 8 + payload.length;
  const b = Buffer.alloc(14 + 20 + udpLen);
  b.writeUInt16BE(0x0800, 12); // Ethernet type IPv4 (MACs zero)
  const ip = 14;
  b[ip] = 0x45; b.writeUInt16BE(20 + udpLen, ip + 2); b[ip + 8] = 64; b[ip + 9] = 17;
  b.set(src, ip + 12); b.set(dst, ip + 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  b.writeUInt16BE(~sum & 0xffff, ip + 10);
  const u = ip + 20;
  b.writeUInt16BE(sport, u); b.writeUInt16BE(dport, u + 2); b.writeUInt16BE(udpLen, u + 4);
  b.set(payload, u + 8);
  return b;
}

/** A classic pcap (Ethernet) with `pairs` query/answer pairs; returns the file and the answers. */
export function syntheticDnsCapture(pairs: number): { pcap: Buffer; messages: Buffer[] } {
  const records: Buffer[] = [];
  const messages: Buffer[] = [];
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0); header.writeUInt16LE(2, 4); header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16); header.writeUInt32LE(1, 20);
  records.push(header);
  let usec = 0;
  const push = (frame: Buffer) => {
    const rh = Buffer.alloc(16);
    usec += 7;
    rh.writeUInt32LE(1_700_000_000 + Math.floor(usec / 1e6), 0); rh.writeUInt32LE(usec % 1e6, 4);
    rh.writeUInt32LE(frame.length, 8); rh.writeUInt32LE(frame.length, 12);
    records.push(rh, frame);
  };
  for (let i = 0; i < pairs; i++) {
    const pod = [198, 18, 1 + ((i >> 8) & 3), i & 0xff];
    const id = i & 0xffff;
    const port = 20000 + (i % 40000);
    const name = `svc${i % 5000}.ns${i % 7}.example.com`;
    const q = dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name }] });
    const cname = `edge${i % 300}.cdn.example.net`;
    const a = dnsPacket.encode({
      type: "response", id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: "A", name }],
      answers: [
        { type: "CNAME", name, ttl: 300, data: cname },
        { type: "A", name: cname, ttl: 60, data: `203.0.${(i >> 8) & 0xff}.${i & 0xff}` },
        { type: "A", name: cname, ttl: 60, data: `203.1.${(i >> 8) & 0xff}.${i & 0xff}` },
      ],
    });
    push(ipv4Udp(pod, RESOLVER, port, 53, q));
    push(ipv4Udp(RESOLVER, pod, 53, port, a));
    messages.push(q, a);
  }
  return { pcap: Buffer.concat(records), messages };
}

export const benchCase: BenchCase = {
  name: "DNS observer from a capture (one core)",
  async run(ctx) {
    const pairs = Math.max(20_000, Math.round(200_000 * ctx.scale));
    const built = syntheticDnsCapture(pairs);
    const pcap = built.pcap;
    const all = Buffer.concat(built.messages);
    const offsets = new Uint32Array(built.messages.length);
    for (let i = 0, off = 0; i < built.messages.length; off += built.messages[i]!.length, i++) offsets[i] = off;
    built.messages.length = 0;
    const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
    let accepted = 0;
    const pipeline = () => {
      const t0 = cpuSeconds();
      const r = analyzeCapture(pcap, { trustedResolvers: ["198.18.0.10"] });
      accepted = r.observer.stats.accepted;
      return accepted / (cpuSeconds() - t0);
    };
    const baseline = () => {
      const t0 = cpuSeconds();
      let n = 0;
      for (let i = 0; i < offsets.length; i++) {
        const d = dnsPacket.decode(all, offsets[i]);
        if (d.type === "response" && d.answers!.length > 0) n++;
      }
      return n / (cpuSeconds() - t0);
    };
    // Alternate the two, best of five each: both see the same machine at the same moments.
    let pipelineRate = 0, baselineRate = 0;
    for (let round = 0; round < 5; round++) {
      pipelineRate = Math.max(pipelineRate, pipeline());
      if (accepted !== pairs) throw new Error(`observer accepted ${accepted} of ${pairs} answers`);
      baselineRate = Math.max(baselineRate, baseline());
    }
    ctx.log(`${pairs} query/answer pairs, ${(pcap.length / 2 ** 20).toFixed(1)} MiB capture`);
    return [{
      name: "accepted answers per second: frame decode + parse + match + observe",
      value: pipelineRate / 1000, unit: "k/s", extra: { clock: "process CPU time, best of 5" },
      baseline: { name: "dns-packet decode alone (same queries + answers)", value: baselineRate / 1000, unit: "k/s" },
      target: "≥ 150 k/s and faster than the baseline", meetsTarget: pipelineRate >= 150_000 && pipelineRate > baselineRate,
      ...(pipelineRate > baselineRate ? {} : { note: "the pipeline does strictly more than the baseline here: it reads the pcap, decodes frames, matches each answer to its query and builds an observation; its per-message work allocates (packet, meta, observation objects; garbage collection is the largest single item of its profile). Tried this round: a bounded diagnosis walk for unmatched answers (it was the whole pod's pending list). What it would take: one reused packet/meta object per capture, observations built only for accepted answers from offsets into the message, and query identities hashed from bytes without address strings" }),
    }];
  },
};
