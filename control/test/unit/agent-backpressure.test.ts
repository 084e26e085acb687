// Test that a replica that stops acknowledging holds the agent to its window of in-flight batches,
// that the send queue is bounded (oldest dropped, counted), and that the ack timeout forces a
// reconnect that replays the store.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { ReplicaStream } from "../../src/agent/replica-stream.js";
import { silentLogger } from "../../src/common/log.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { agentServiceDefinition, type AgentServiceHandlers, type ObserveRequest } from "../../src/proto/index.js";

function obs(i: number): DnsObservation {
  return {
    podIp: "198.18.1.10", podPort: 40000, qname: `n${i}.example`, qtype: 1, rcode: 0, cnameChain: [],
    answers: [{ name: `n${i}.example`, type: "A", typeCode: 1, ttl: 60, data: "198.18.0.1" }],
    negative: false, truncated: false, resolver: "198.18.0.53", resolverPort: 53, transport: "udp", time: Date.now(), id: i,
  };
}

async function eventually(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("window, bounded queue and ack timeout with a replica that stops acknowledging", { timeout: 60_000 }, async (t) => {
  let acking = true;
  const streams: ObserveRequest[][] = [];
  const server = new grpc.Server();
  const handlers: AgentServiceHandlers = {
    Observe(call) {
      const got: ObserveRequest[] = [];
      streams.push(got);
      call.on("data", (req: ObserveRequest) => {
        got.push(req);
        if (acking) call.write({ acked_sequence: req.sequence });
      });
      call.on("error", () => {});
    },
  };
  server.addService(agentServiceDefinition(), handlers);
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  let stored = [obs(-1)];
  const stream = new ReplicaStream({
    address: `127.0.0.1:${port}`, agentId: "t", log: silentLogger(), replaySource: () => stored,
    maxBatch: 2, window: 3, maxQueue: 10, ackTimeoutMs: 1500, connectTimeoutMs: 2000, now: Date.now,
  });
  t.after(() => {
    stream.close();
    server.forceShutdown();
  });
  stream.start();
  await eventually("connected and replayed", () => stream.stats.connected && streams[0]?.length === 1);
  assert.equal(streams[0]![0]!.replay, true);
  assert.equal(streams[0]![0]!.observations[0]!.query_name, "n-1.example");
  await eventually("replay acknowledged", () => stream.stats.acked === 1);

  acking = false;
  for (let i = 0; i < 30; i++) stream.push(obs(i));
  await eventually("three batches in flight", () => streams[0]!.length === 4);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(streams[0]!.length, 4, "no batch beyond the window of 3 while unacknowledged");
  assert.equal(stream.stats.inFlightBatches, 3);
  // 30 pushed in one turn: the queue (cap 10) kept the newest 10; 6 of them left in 3 batches.
  assert.equal(stream.stats.queued, 4);
  // Pushed in one event-loop turn: batched (maxBatch 2), three batches fill the window.
  assert.deepEqual(streams[0]!.slice(1).map((b) => b.observations.length), [2, 2, 2]);
  assert.equal(stream.stats.dropped, 20);
  assert.deepEqual(streams[0]![1]!.observations.map((o) => o.query_name), ["n20.example", "n21.example"], "the oldest were dropped");

  // Unacknowledged past the timeout: reconnect, and replay what the store holds — all of it, even
  // beyond the live queue's cap.
  stored = Array.from({ length: 25 }, (_, i) => obs(100 + i));
  acking = true;
  await eventually("reconnected with a replay", () => streams.length >= 2 && (streams[1]?.length ?? 0) >= 1);
  assert.equal(streams[1]![0]!.replay, true);
  assert.equal(streams[1]![0]!.sequence, 1);
  assert.ok(stream.stats.connects >= 2);
  await eventually("the whole replay", () => streams.at(-1)!.filter((b) => b.replay).flatMap((b) => b.observations).length === 25);
});

function bigObs(i: number, addresses: number): DnsObservation {
  const o = obs(i);
  o.answers = Array.from({ length: addresses }, (_, k) => ({ name: o.qname, type: "A", typeCode: 1, ttl: 60, data: `198.18.${(k >> 8) & 0xff}.${k & 0xff}` }));
  return o;
}

test("finding 8: batches are sized in bytes; a replica that refuses a message as too large (RESOURCE_EXHAUSTED) gets smaller batches, never the same one forever", { timeout: 60_000 }, async (t) => {
  const received: string[] = [];
  const server = new grpc.Server({ "grpc.max_receive_message_length": 48 * 1024 });
  server.addService(agentServiceDefinition(), {
    Observe(call) {
      call.on("data", (req: ObserveRequest) => {
        for (const o of req.observations) received.push(o.query_name);
        call.write({ acked_sequence: req.sequence });
      });
      call.on("error", () => {});
    },
  } satisfies AgentServiceHandlers);
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  // 60 observations of 400 addresses (~8 KiB each on the wire, ~500 KiB together), one of 5,000
  // addresses (~100 KiB: more than control accepts in one message, on its own).
  const stored = [...Array.from({ length: 60 }, (_, i) => bigObs(i, 400)), bigObs(999, 5000)];
  const stream = new ReplicaStream({
    address: `127.0.0.1:${port}`, agentId: "t", log: silentLogger(), replaySource: () => stored,
    maxBatch: 256, maxBatchBytes: 1 << 20, window: 2, maxQueue: 100, ackTimeoutMs: 5000, connectTimeoutMs: 2000, now: Date.now,
  });
  t.after(() => {
    stream.close();
    server.forceShutdown();
  });
  stream.start();
  await eventually("every observation that fits delivered", () => new Set(received).size === 60, 40_000);
  assert.ok(stream.stats.refusedBatches >= 1, "control refused the first, too large batch");
  assert.ok(stream.stats.batchBytes < 1 << 20, `batch limit halved, now ${stream.stats.batchBytes}`);
  assert.ok(!received.includes("n999.example"), "an observation larger than the limit alone is never sent");
  assert.ok(stream.stats.oversized >= 1);
  // Benign twin: live observations keep flowing afterwards.
  stream.push(obs(5000));
  await eventually("a live observation after the refusals", () => received.includes("n5000.example"));
});
