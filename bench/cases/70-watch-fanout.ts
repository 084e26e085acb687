// Watch fan-out: 10,000 filters (real grpc-js Watch streams in this process, acking every response;
// EGRET_BENCH_FANOUT_STREAMS overrides) subscribed to a real control service running in a child
// process, which records observations at 1,000/s round-robin over the pods. Measured: control CPU
// (the child's process.cpuUsage, as % of one core), delivery latency from store.record to the
// upsert arriving at the client, and control's memory per stream (heap + external after a full GC,
// and RSS, before and after the streams open). Baseline: the same observation rate to a single
// watching stream, same child, same run.
import { fork, type ChildProcess } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import type * as grpc from "@grpc/grpc-js";
import { bytesToIp, createFilterClient, ipToBytes, type FilterServiceClient, type Outgoing, type WatchRequest, type WatchResponse } from "../../control/src/proto/index.js";
import { summarize, type BenchCase, type Figure } from "../harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const podIp = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
const seqOf = (ip: string) => { const p = ip.split(".").map(Number); return ((p[1]! - 200) << 16) | (p[2]! << 8) | p[3]!; };

interface Child { proc: ChildProcess; ask<T>(msg: object, key: string): Promise<T> }

function startChild(pods: number): Promise<{ child: Child; port: number }> {
  const proc = fork(join(here, "..", "child", "fanout-control.js"), [String(pods)], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: ["--expose-gc"] });
  const ask = <T>(msg: object, key: string) => new Promise<T>((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>) => { if (key in m) { proc.off("message", onMsg); resolve(m[key] as T); } };
    proc.on("message", onMsg);
    proc.once("exit", (code) => reject(new Error(`control child exited (${code})`)));
    if (Object.keys(msg).length) proc.send(msg);
  });
  return ask<number>({}, "port").then((port) => ({ child: { proc, ask }, port }));
}

class Watcher {
  snapshot = false;
  constructor(client: FilterServiceClient, i: number, onUpsert: (ip: string, at: number) => void) {
    const call: grpc.ClientDuplexStream<Outgoing<WatchRequest>, WatchResponse> = client.Watch();
    call.on("data", (r: WatchResponse) => {
      const at = performance.timeOrigin + performance.now();
      if (r.type === "WATCH_RESPONSE_TYPE_SNAPSHOT") this.snapshot = true;
      for (const u of r.upserts) onUpsert(bytesToIp(u.ip)!, at);
      call.write({ type: "WATCH_REQUEST_TYPE_ACK", response_version: r.version, response_nonce: r.nonce });
    });
    call.on("error", () => undefined); // cancelled at the end
    call.write({ type: "WATCH_REQUEST_TYPE_SUBSCRIBE", pod_name: `p${i}`, pod_namespace: "bench", pod_ips: [ipToBytes(podIp(i))], instance_id: `bench-${i}`, resume_epoch: "", resume_version: 0 });
    this.cancel = () => call.cancel();
  }
  cancel: () => void;
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export const benchCase: BenchCase = {
  name: "Watch fan-out: 10,000 streams, 1,000 deltas/s",
  async run(ctx) {
    const streams = Number(process.env.EGRET_BENCH_FANOUT_STREAMS ?? 10_000), rate = 1000;
    const seconds = Math.max(3, Math.round(10 * ctx.scale));
    const { child, port } = await startChild(streams);
    // 100 streams per HTTP/2 connection, as 100 sidecars' worth of connections would carry at most.
    const clients = Array.from({ length: Math.max(1, Math.ceil(streams / 100)) }, () => createFilterClient(`127.0.0.1:${port}`));
    const watchers: Watcher[] = [];
    try {
      let received = new Map<number, number>();
      const onUpsert = (ip: string, at: number) => { if (ip.startsWith("10.2")) received.set(seqOf(ip), at); };
      const phase = async (pods: number) => {
        received = new Map();
        const cpu0 = await child.ask<number>({ cmd: "cpu" }, "cpuMs");
        const t0 = performance.now();
        const sent = await child.ask<[number, number][]>({ cmd: "observe", rate, seconds, pods }, "sent");
        await until(() => received.size >= sent.length, 10_000);
        const cpuMs = (await child.ask<number>({ cmd: "cpu" }, "cpuMs")) - cpu0;
        const wallMs = performance.now() - t0;
        const lat: number[] = [];
        for (const [seq, t] of sent) { const at = received.get(seq); if (at !== undefined) lat.push(at - t); }
        return { cpuPct: (100 * cpuMs) / wallMs, lat: summarize(lat), sent: sent.length, lost: sent.length - lat.length };
      };
      // Baseline: one stream receives every delta.
      watchers.push(new Watcher(clients[0]!, 0, onUpsert));
      if (!(await until(() => watchers[0]!.snapshot, 30_000))) throw new Error("the baseline watcher got no snapshot");
      const one = await phase(1);
      type Mem = { rss: number; heap: number };
      const mem0 = await child.ask<Mem>({ cmd: "mem" }, "mem");
      for (let i = 1; i < streams; i++) watchers.push(new Watcher(clients[i % clients.length]!, i, onUpsert));
      if (!(await until(() => watchers.every((w) => w.snapshot), 300_000))) throw new Error(`only ${watchers.filter((w) => w.snapshot).length} of ${streams} watchers got a snapshot`);
      const mem1 = await child.ask<Mem>({ cmd: "mem" }, "mem");
      const many = await phase(streams);
      ctx.log(`${seconds} s at ${rate} observations/s per phase; ${many.sent} deltas over ${streams} streams, ${many.lost} not delivered in 10 s (baseline ${one.lost})`);
      const figures: Figure[] = [{
        name: `control CPU, ${streams} streams receiving ${rate} deltas/s`, value: many.cpuPct, unit: "% of a core",
        baseline: { name: `1 stream, same ${rate} deltas/s`, value: one.cpuPct, unit: "% of a core" },
      }, {
        name: "delta delivery latency p99 (record → client)", value: many.lat.p99, unit: "ms",
        baseline: { name: "1 stream, p99", value: one.lat.p99, unit: "ms" },
        extra: { p50ms: many.lat.p50, baselineP50ms: one.lat.p50, undelivered: many.lost },
      }, {
        name: `control memory per Watch stream (${streams} streams, heap + external after GC)`, value: (mem1.heap - mem0.heap) / (streams - 1) / 1024, unit: "KiB",
        extra: { rssPerStreamKiB: Number(((mem1.rss - mem0.rss) / (streams - 1) / 1024).toFixed(2)), rssMiB: Number((mem1.rss / 2 ** 20).toFixed(1)), heapMiB: Number((mem1.heap / 2 ** 20).toFixed(1)), streams },
      }];
      return figures;
    } finally {
      for (const w of watchers) w.cancel();
      for (const c of clients) c.close();
      child.proc.send({ cmd: "stop" });
      await new Promise((r) => { child.proc.once("exit", r); setTimeout(r, 5000); });
      if (child.proc.exitCode === null) child.proc.kill();
    }
  },
};
