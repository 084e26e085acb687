// Test that the agent turns captured frames into observations, streams them to every control
// replica over gRPC, and replays still-valid observations to a replica that restarts. The control
// replicas are in-process gRPC servers on loopback; frames are injected (no libpcap needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import { createAgentMetrics, serveMetrics } from "../../src/agent/metrics.js";
import { silentLogger } from "../../src/common/log.js";
import { LinkType } from "../../src/pcap/index.js";
import { agentServiceDefinition, bytesToIp, type AgentServiceHandlers, type ObserveRequest } from "../../src/proto/index.js";
import { queryAndAnswer, udpFrame } from "./dns-fixtures.js";

const POD = "198.18.1.10";
const RESOLVER = "198.18.0.53";

interface FakeReplica {
  server: grpc.Server;
  port: number;
  batches: ObserveRequest[];
}

async function startReplica(port = 0): Promise<FakeReplica> {
  const server = new grpc.Server();
  const batches: ObserveRequest[] = [];
  const handlers: AgentServiceHandlers = {
    Observe(call) {
      call.on("data", (req: ObserveRequest) => {
        batches.push(req);
        call.write({ acked_sequence: req.sequence, accepted_observations: req.observations.length, server_id: "fake" });
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  };
  server.addService(agentServiceDefinition(), handlers);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port: bound, batches };
}

/** Stops a replica at once, cancelling open streams (as a crash or restart would). */
function stopReplica(r: FakeReplica): void {
  r.server.forceShutdown();
}

async function eventually<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function agentOptions(addresses: string[]): AgentOptions {
  return {
    agentId: "test-node/1",
    log: silentLogger(),
    capture: { interfaces: [], bufferBytes: 1 << 20, rescanMs: 1000 },
    dns: { ports: [53], trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"], minTtlSec: 0, maxTtlSec: 86400, queryTimeoutMs: 10_000, maxPendingPerPod: 64, maxPendingTotal: 1024 },
    store: { maxPerPod: 64, maxTotal: 1024, negativeTtlSec: 30 },
    control: { addresses, resolveEveryMs: 1000, maxBatch: 16, window: 2, maxQueue: 1000, ackTimeoutMs: 5000, connectTimeoutMs: 2000 },
  };
}

function resolve(agent: Agent, name: string, ips: string[], id: number, port = 40000): void {
  const { query, answer } = queryAndAnswer(name, ips, { id, ttl: 300 });
  agent.ingestFrame({ linkType: LinkType.ETHERNET, data: udpFrame(POD, RESOLVER, port, 53, query), iface: "veth-test", time: Date.now(), truncated: false });
  agent.ingestFrame({ linkType: LinkType.ETHERNET, data: udpFrame(RESOLVER, POD, 53, port, answer), iface: "veth-test", time: Date.now(), truncated: false });
}

test("streams observations to every replica and replays them to a restarted replica", { timeout: 60_000 }, async (t) => {
  const a = await startReplica();
  let b = await startReplica();
  const agent = new Agent(agentOptions([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]));
  t.after(() => {
    agent.stop();
    stopReplica(a);
    stopReplica(b);
  });
  await agent.start();
  await eventually("both streams up", () => agent.replicas().every((r) => r.stats.connected) || undefined);

  resolve(agent, "api.example.com", ["198.18.5.1", "198.18.5.2"], 1);
  const got = await eventually("observation at replica A", () => a.batches.flatMap((x) => x.observations)[0]);
  assert.equal(bytesToIp(got.pod_ip), POD);
  assert.equal(got.query_name, "api.example.com");
  assert.equal(got.query_type, 1);
  assert.deepEqual(got.answers.map((x) => [bytesToIp(x.ip), x.ttl_seconds]), [["198.18.5.1", 300], ["198.18.5.2", 300]]);
  assert.equal(bytesToIp(got.resolver_ip), RESOLVER);
  assert.equal(got.transport, "DNS_TRANSPORT_UDP");
  assert.equal(got.interface_name, "veth-test");
  await eventually("observation at replica B", () => b.batches.flatMap((x) => x.observations).length === 1 || undefined);
  assert.equal(a.batches[0]!.agent_id, "test-node/1");

  // Replica B restarts (same port): the agent reconnects and replays what is still valid.
  const port = b.port;
  stopReplica(b);
  resolve(agent, "while-down.example.com", ["198.18.5.3"], 2, 40001);
  b = await startReplica(port);
  const replayed = await eventually("replay at restarted replica B", () => {
    const names = b.batches.filter((x) => x.replay).flatMap((x) => x.observations.map((o) => o.query_name));
    return names.length >= 2 ? names : undefined;
  });
  assert.deepEqual(replayed.sort(), ["api.example.com", "while-down.example.com"]);
  assert.equal(b.batches[0]!.sequence, 1, "sequence numbers restart on a new stream");

  // Live observations keep flowing after the replay.
  resolve(agent, "after.example.com", ["198.18.5.4"], 3, 40002);
  await eventually("live observation after replay", () => b.batches.some((x) => !x.replay && x.observations.some((o) => o.query_name === "after.example.com")) || undefined);
});

test("exposes Prometheus metrics and health", { timeout: 30_000 }, async (t) => {
  const replica = await startReplica();
  const agent = new Agent(agentOptions([`127.0.0.1:${replica.port}`]));
  const { registry, batchLatency } = createAgentMetrics(agent);
  agent.onBatchAcked = (r, s) => batchLatency.labels(r).observe(s);
  await agent.start();
  const { server, port } = await serveMetrics(agent, registry, "127.0.0.1", 0);
  t.after(async () => {
    agent.stop();
    await new Promise((r) => server.close(r));
    stopReplica(replica);
  });
  resolve(agent, "m.example.com", ["198.18.5.9"], 9);
  // An unsolicited answer, to see a rejection counted.
  agent.ingestFrame({ linkType: LinkType.ETHERNET, data: udpFrame(RESOLVER, POD, 53, 41234, queryAndAnswer("x.example", ["198.18.0.1"], { id: 77 }).answer), iface: "veth-test", time: Date.now(), truncated: false });
  await eventually("ack", () => replica.batches.length > 0 || undefined);
  await eventually("latency observed", () => agent.replicas()[0]!.stats.acked > 0 || undefined);
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(text, /^egret_agent_answers_accepted_total 1$/m);
  assert.match(text, /^egret_agent_rejected_total\{reason="unsolicited"\} 1$/m);
  assert.match(text, /^egret_agent_frames_captured_total 3$/m);
  assert.match(text, /^egret_agent_batch_latency_seconds_count\{replica="127\.0\.0\.1:\d+"\} 1$/m);
  assert.match(text, /^egret_agent_replica_connected\{replica="127\.0\.0\.1:\d+"\} 1$/m);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { ok: boolean }).ok, true);
});
