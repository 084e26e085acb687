// Bypass detection's extra cost in the agent: the user-space work per outbound SYN (frame decode,
// classification, the candidate table, covered connections from control) at 10,000 SYNs/s from
// 100 pods for 10 s of simulated time (a fake clock; 90 % of the SYNs are the sidecars' own,
// covered by a verdict, 10 % bypasses), beside decoding the same frames alone (what any capture
// costs). CPU is this process's user + system time. What the bounds drop is counted: a pod above
// its rate (50 new destinations/s, burst 200) loses the excess, counted, never queued. Kernel ring
// drops are not part of this figure (the capture engineer's drop counters).
import { decodeFrame, LinkType } from "../../control/src/pcap/index.js";
import { EgressWatch } from "../../control/src/agent/egress-watch.js";
import { type BenchCase } from "../harness.js";

function synFrame(src: number[], sport: number, dst: number[], dport: number): Buffer {
  const b = Buffer.alloc(14 + 20 + 20);
  b.writeUInt16BE(0x0800, 12);
  const ip = 14;
  b[ip] = 0x45; b.writeUInt16BE(40, ip + 2); b[ip + 8] = 64; b[ip + 9] = 6;
  b.set(src, ip + 12); b.set(dst, ip + 16);
  const t = ip + 20;
  b.writeUInt16BE(sport, t); b.writeUInt16BE(dport, t + 2); b.writeUInt32BE(1000, t + 4);
  b[t + 12] = 0x50; b[t + 13] = 0x02; b.writeUInt16BE(64240, t + 14);
  return b;
}

const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

export const benchCase: BenchCase = {
  name: "Bypass detection in the agent: 10k SYNs/s",
  async run(ctx) {
    const rate = 10_000;
    const seconds = Math.max(2, Math.round(10 * ctx.scale));
    const total = rate * seconds;
    const frames: Buffer[] = [];
    const meta: { pod: string; dst: string; port: number; covered: boolean }[] = [];
    for (let i = 0; i < total; i++) {
      const pod = [198, 18, 1, i % 100];
      // Each pod talks to 20 destinations, one new one (a bypass) every 10th SYN.
      const bypass = i % 10 === 9;
      const d = bypass ? [203, 0, (i >> 8) & 0xff, i & 0xff] : [203, 1, 0, (i >> 7) % 20];
      frames.push(synFrame(pod, 20000 + (i % 40000), d, 443));
      meta.push({ pod: pod.join("."), dst: d.join("."), port: 443, covered: !bypass });
    }
    // Baseline: decoding alone.
    let t0 = cpuSeconds();
    let decoded = 0;
    for (const f of frames) if (decodeFrame(LinkType.ETHERNET, f)) decoded++;
    const decodeCpu = cpuSeconds() - t0;
    // The watch: SYNs at 10k/s on a fake clock, covered connections 50 ms later, ticks every 100 ms.
    let now = 1_000_000;
    let reports = 0;
    const watch = new EgressWatch({ now: () => now, classify: { isTrustedResolver: () => false, dnsPorts: new Set([53]) }, onBypass: (r) => { reports += r.length; } });
    const pendingCover: { at: number; i: number }[] = [];
    t0 = cpuSeconds();
    for (let i = 0; i < total; i++) {
      now = 1_000_000 + (i * 1000) / rate;
      const pkt = decodeFrame(LinkType.ETHERNET, frames[i]!);
      if (pkt) watch.ingest(pkt, now, "bench");
      if (meta[i]!.covered) pendingCover.push({ at: now + 50, i });
      while (pendingCover.length && pendingCover[0]!.at <= now) {
        const c = meta[pendingCover.shift()!.i]!;
        watch.coveredConnection(c.pod, c.dst, c.port, now);
      }
      if (i % (rate / 10) === 0) watch.tick();
    }
    now += 10_000;
    watch.tick();
    const watchCpu = cpuSeconds() - t0;
    const perSynUs = (watchCpu / total) * 1e6;
    const decodeUs = (decodeCpu / decoded) * 1e6;
    const c = watch.counters;
    ctx.log(`bypass: ${total} SYNs, ${c.synsCovered} covered, ${reports} reported, ${c.rateLimited} rate-limited, ${c.evicted} evicted`);
    return [{
      name: "agent CPU per outbound SYN (decode, classify, correlate)",
      value: perSynUs,
      unit: "µs",
      baseline: { name: "decoding the frame alone", value: decodeUs, unit: "µs" },
      target: "10k SYNs/s within 20 % of one core",
      meetsTarget: perSynUs * rate / 1e6 <= 0.2,
      extra: {
        "CPU share of one core at 10k SYNs/s": `${((perSynUs * rate) / 1e4).toFixed(1)} %`,
        syns: total,
        covered: c.synsCovered,
        "bypasses reported": reports,
        "dropped: rate-limited (pods above 50 new destinations/s)": c.rateLimited,
        "dropped: evicted by bounds": c.evicted,
      },
    }];
  },
};
