// Agent streams per control replica: every node's agent holds one Observe stream to every replica,
// so a 5,000-node cluster puts 5,000 agent streams on each replica. Here 5,000 agents (the real
// ReplicaStream of `egret agent`, each on its own HTTP/2 connection, each authenticated with its own
// bearer token against control's file-mode token check, observations only for pods on its own node)
// stream to a real control service in a child process (bench/child/fanout-control), whose CPU and
// memory are read over IPC. Observations leave at a steady total rate, round-robin over the agents.
// Measured: control CPU and memory with the 5,000 streams open (idle, then under the rate), and the
// per-observation latency the agent sees (batch sent → control's acknowledgement, after it recorded
// the batch). Baseline: one agent stream carrying the same total rate, same child, same run.
// EGRET_BENCH_AGENTS overrides the number of agents.
import { fork } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { ReplicaStream } from "../../control/src/agent/replica-stream.js";
import type { DnsObservation } from "../../control/src/dns/observer.js";
import { createAgentClient } from "../../control/src/proto/index.js";
import { silentLogger } from "../../control/src/common/log.js";
import { summarize, type BenchCase, type Figure } from "../harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const podIp = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
const answerIp = (seq: number) => `10.${200 + (seq >> 16)}.${(seq >> 8) & 0xff}.${seq & 0xff}`;

type Mem = { rss: number; heap: number };
// EGRET_BENCH_DEBUG=1: the agents' warnings and errors on stderr.
const debugLogger = { ...silentLogger(), warn: (o: object, m: string) => console.error("agent warn", m, o), error: (o: object, m: string) => console.error("agent error", m, o) } as ReturnType<typeof silentLogger>;

function startChild(pods: number, agents: number) {
  const proc = fork(join(here, "..", "child", "fanout-control.js"), [String(pods), String(agents)], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: ["--expose-gc"] });
  proc.setMaxListeners(0);
  const ask = <T>(msg: object, key: string) => new Promise<T>((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>) => { if (key in m) { proc.off("message", onMsg); resolve(m[key] as T); } };
    proc.on("message", onMsg);
    proc.once("exit", (code) => reject(new Error(`control child exited (${code})`)));
    if (Object.keys(msg).length) proc.send(msg);
  });
  return { proc, ask, port: ask<number>({}, "port") };
}

function observation(pod: number, seq: number): DnsObservation {
  return {
    podIp: podIp(pod), podPort: 40000, qname: `n${seq}.example.com`, qtype: 1, rcode: 0, cnameChain: [],
    answers: [{ name: `n${seq}.example.com`, type: "A", typeCode: 1, ttl: 300, data: answerIp(seq) }],
    negative: false, truncated: false, resolver: "10.96.0.10", resolverPort: 53, transport: "udp", time: Date.now(), id: seq & 0xffff,
  };
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export const benchCase: BenchCase = {
  name: "Agent streams per control replica: 5,000 agents",
  async run(ctx) {
    const agents = Number(process.env.EGRET_BENCH_AGENTS ?? 5000), rate = 1000;
    const seconds = Math.max(3, Math.round(10 * ctx.scale));
    const child = startChild(agents, agents);
    const port = await child.port;
    const streams: ReplicaStream[] = [];
    let acked: number[] = [];
    const open = (k: number) => {
      const s = new ReplicaStream({
        address: `127.0.0.1:${port}`, agentId: `n${k}/bench`, log: process.env.EGRET_BENCH_DEBUG ? debugLogger : silentLogger(), replaySource: () => [],
        maxBatch: 500, window: 4, maxQueue: 10_000, ackTimeoutMs: 60_000, connectTimeoutMs: 120_000, now: () => performance.timeOrigin + performance.now(),
        // Each agent its own connection, as separate nodes have (grpc-js would share one otherwise).
        createClient: (address) => createAgentClient(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
        credentials: {
          channel: grpc.credentials.createInsecure(), options: {},
          callMetadata: () => { const md = new grpc.Metadata(); md.set("authorization", `Bearer bench-agent-${k}`); return md; },
        },
        onBatchAcked: (_a, sec, n, replay) => { if (!replay) for (let i = 0; i < n; i++) acked.push(sec * 1000); },
      });
      s.start();
      streams.push(s);
      return s;
    };
    const phase = async (senders: ReplicaStream[], firstAgent: (s: number) => number) => {
      acked = [];
      const cpu0 = await child.ask<number>({ cmd: "cpu" }, "cpuMs");
      const t0 = performance.now();
      const total = rate * seconds;
      let seq = 0;
      await new Promise<void>((resolve) => {
        const tick = () => {
          const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * rate));
          for (; seq < due; seq++) senders[seq % senders.length]!.push(observation(firstAgent(seq), seq));
          if (seq < total) setTimeout(tick, 1); else resolve();
        };
        tick();
      });
      await until(() => acked.length >= total, 15_000);
      const cpuMs = (await child.ask<number>({ cmd: "cpu" }, "cpuMs")) - cpu0;
      return { cpuPct: (100 * cpuMs) / (performance.now() - t0), lat: summarize(acked), lost: total - acked.length };
    };
    try {
      // Baseline: agent 0 alone carries the whole rate (its node's pod, pod 0).
      const first = open(0);
      if (!(await until(() => first.stats.connected, 30_000))) throw new Error("the baseline agent did not connect");
      const one = await phase([first], () => 0);
      const mem0 = await child.ask<Mem>({ cmd: "mem" }, "mem");
      const cpuIdle0 = await child.ask<number>({ cmd: "cpu" }, "cpuMs");
      const tOpen = performance.now();
      for (let k = 1; k < agents; k++) {
        open(k);
        if (k % 250 === 0) await new Promise((r) => setImmediate(r));
      }
      if (!(await until(() => streams.every((s) => s.stats.connected), 300_000))) {
        throw new Error(`only ${streams.filter((s) => s.stats.connected).length} of ${agents} agents connected`);
      }
      const openSeconds = (performance.now() - tOpen) / 1000;
      // Idle: the streams open, nothing to send.
      await new Promise((r) => setTimeout(r, 1000));
      const cpuIdle1 = await child.ask<number>({ cmd: "cpu" }, "cpuMs");
      const tIdle = performance.now();
      await new Promise((r) => setTimeout(r, 3000));
      const idlePct = (100 * ((await child.ask<number>({ cmd: "cpu" }, "cpuMs")) - cpuIdle1)) / (performance.now() - tIdle);
      const mem1 = await child.ask<Mem>({ cmd: "mem" }, "mem");
      // Every agent sends for its own node's pod (pod k on node n{k}).
      const many = await phase(streams, (seq) => seq % agents);
      ctx.log(`${agents} agents connected in ${openSeconds.toFixed(1)} s (auth + stream each; ${((cpuIdle1 - cpuIdle0) / agents).toFixed(2)} ms of control CPU per agent incl. the 1 s settle); ${seconds} s at ${rate} observations/s per phase; unacknowledged after 15 s: ${many.lost} (baseline ${one.lost})`);
      const perObsUs = (p: { cpuPct: number }) => (p.cpuPct / 100) * 1e6 / rate;
      const figures: Figure[] = [{
        name: `control CPU, ${agents} agent streams sending ${rate} observations/s in total`, value: many.cpuPct, unit: "% of a core",
        baseline: { name: `1 agent stream, same ${rate} observations/s`, value: one.cpuPct, unit: "% of a core" },
        extra: { cpuPerObservationUs: Number(perObsUs(many).toFixed(1)), baselineCpuPerObservationUs: Number(perObsUs(one).toFixed(1)), idleCpuPct: Number(idlePct.toFixed(2)) },
      }, {
        name: `per-observation latency p99, ${agents} agent streams (agent send → control ack)`, value: many.lat.p99, unit: "ms",
        baseline: { name: "1 agent stream, p99", value: one.lat.p99, unit: "ms" },
        extra: { p50ms: Number(many.lat.p50.toFixed(2)), baselineP50ms: Number(one.lat.p50.toFixed(2)), unacknowledged: many.lost },
      }, {
        name: `control memory per agent stream (${agents} streams, heap + external after GC)`, value: (mem1.heap - mem0.heap) / (agents - 1) / 1024, unit: "KiB",
        extra: { rssPerStreamKiB: Number(((mem1.rss - mem0.rss) / (agents - 1) / 1024).toFixed(2)), rssMiB: Number((mem1.rss / 2 ** 20).toFixed(1)), heapMiB: Number((mem1.heap / 2 ** 20).toFixed(1)), agents },
      }];
      return figures;
    } finally {
      for (const s of streams) s.close();
      child.proc.send({ cmd: "stop" });
      await new Promise((r) => { child.proc.once("exit", r); setTimeout(r, 5000); });
      if (child.proc.exitCode === null) child.proc.kill();
    }
  },
};
