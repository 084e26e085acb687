// Latency figures of a real ControlService over loopback gRPC, for the benchmark suite and the
// report: Lookup of a known resolution, and "observation lands → waiting Lookup answered".
// Real sockets, real grpc-js on both sides; one client, sequential calls (latency, not throughput).
import { Metadata } from "@grpc/grpc-js";
import { silentLogger } from "../common/log.js";
import { StaticAgentTokens } from "../auth/agent-tokens.js";
import { createAgentClient, createFilterClient, ipToBytes, lookup } from "../proto/index.js";
import { memoryControlSource } from "./memory-source.js";
import { defaultPolicyApi } from "./policy-api.js";
import { ControlService } from "./service.js";

export interface LatencySummary {
  samples: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

function summarize(ms: number[]): LatencySummary {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(s.length * p))];
  return { samples: s.length, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), maxMs: s[s.length - 1] };
}

// The pod is this process's loopback address: control serves a filter only from its pod's address.
const POD_IP = "127.0.0.1";
const AGENT_TOKEN = "measure-agent-token";

export async function measureLookupLatency(options: { samples?: number; warmup?: number } = {}): Promise<{ known: LatencySummary; afterWait: LatencySummary }> {
  const samples = options.samples ?? 2000;
  const warmup = options.warmup ?? 200;
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source: memoryControlSource({ pods: [{ namespace: "bench", name: "pod", labels: {}, ips: [POD_IP], node: "bench-node" }] }),
    agentAuth: new StaticAgentTokens({ [AGENT_TOKEN]: "bench-node" }),
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    audit: { write: () => undefined },
  });
  const { grpcPort } = await service.start();
  const address = `127.0.0.1:${grpcPort}`;
  const filter = createFilterClient(address);
  const agent = createAgentClient(address);
  const credential = new Metadata();
  credential.set("authorization", `Bearer ${AGENT_TOKEN}`);
  const observe = agent.Observe(credential);
  observe.on("data", () => undefined);
  observe.on("error", () => undefined);
  let sequence = 0;
  const send = (name: string, ip: string) =>
    observe.write({
      agent_id: "measure",
      sequence: ++sequence,
      observations: [{ pod_ip: ipToBytes(POD_IP), query_name: name, query_type: 1, answers: [{ ip: ipToBytes(ip), ttl_seconds: 600 }], observed_unix_ms: Date.now() }],
    });
  try {
    send("known.example.com", "192.0.2.1");
    const req = { source_ip: ipToBytes(POD_IP), destination_ip: ipToBytes("192.0.2.1"), wait_ms: 1000 };
    const known: number[] = [];
    for (let i = 0; i < warmup + samples; i++) {
      const t = process.hrtime.bigint();
      const r = await lookup(filter, req, 5000);
      if (r.result !== "LOOKUP_RESULT_FOUND") throw new Error(`measureLookupLatency: expected FOUND, got ${r.result}`);
      if (i >= warmup) known.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const afterWait: number[] = [];
    const waitSamples = Math.max(10, Math.floor(samples / 10));
    for (let i = 0; i < waitSamples; i++) {
      const ip = `198.51.${(i >> 8) & 255}.${i & 255}`;
      const pending = lookup(filter, { source_ip: ipToBytes(POD_IP), destination_ip: ipToBytes(ip), wait_ms: 5000 }, 10_000);
      while (service.lookups.pending === 0) await new Promise((r) => setImmediate(r));
      const t = process.hrtime.bigint();
      send(`w${i}.example.com`, ip);
      const r = await pending;
      if (r.result !== "LOOKUP_RESULT_FOUND") throw new Error(`measureLookupLatency: waiting Lookup got ${r.result}`);
      afterWait.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return { known: summarize(known), afterWait: summarize(afterWait) };
  } finally {
    observe.end();
    filter.close();
    agent.close();
    await service.stop();
  }
}
