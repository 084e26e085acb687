// Several replicas side by side: the agent streams every observation to each replica; a filter
// can use any replica, and when its replica goes away it resumes on another with the same view.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { ReplicaStream } from "../../src/agent/replica-stream.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { createFilterClient, ipToBytes, lookup } from "../../src/proto/index.js";
import { ControlFixture, WatchClient, egressPolicy, eventually } from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };

function obs(name: string, ip: string): DnsObservation {
  return {
    podIp: "198.18.1.10", podPort: 40000, qname: name, qtype: 1, rcode: 0, cnameChain: [],
    answers: [{ name, type: "A", typeCode: 1, ttl: 600, data: ip }],
    negative: false, truncated: false, resolver: "198.19.0.53", resolverPort: 53, transport: "udp", time: Date.now(), id: 7,
  };
}

test("every replica gets every observation; a filter moves to another replica and keeps its view", async (t) => {
  const policies = { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) };
  const a = await new ControlFixture([WEB], policies).start();
  const b = await new ControlFixture([WEB], policies).start();
  t.after(async () => {
    for (const f of [a, b]) {
      await f.stop();
      f.cleanup();
    }
  });
  const held: DnsObservation[] = [];
  const streams = [a, b].map(
    (f) =>
      new ReplicaStream({
        address: f.address, agentId: "node-1/test", log: silentLogger(), replaySource: () => held,
        maxBatch: 100, window: 4, maxQueue: 1000, ackTimeoutMs: 5_000, connectTimeoutMs: 2_000, now: Date.now,
        credentials: agentCredentials({ tokenFile: f.agentTokenFile() }),
      }),
  );
  t.after(() => streams.forEach((s) => s.close()));
  streams.forEach((s) => s.start());
  await eventually(() => streams.every((s) => s.stats.connected), "both agent streams");
  const push = (o: DnsObservation) => {
    held.push(o);
    streams.forEach((s) => s.push(o));
  };

  const filter = new WatchClient(await a.filterAddress(WEB), WEB);
  await eventually(() => filter.responses.length >= 1, "the snapshot from replica A");
  push(obs("one.example.com", "203.0.113.1"));
  await eventually(() => filter.names("203.0.113.1"), "the delta from replica A");

  // Replica B knows it too: any replica can answer any filter.
  const clientB = createFilterClient(await b.filterAddress(WEB));
  t.after(() => clientB.close());
  const viaB = await lookup(clientB, { source_ip: ipToBytes("198.18.1.10"), destination_ip: ipToBytes("203.0.113.1"), wait_ms: 5_000 }, 10_000);
  assert.equal(viaB.result, "LOOKUP_RESULT_FOUND");

  // Replica A goes away; the filter resumes on B with its last epoch/version.
  const resumeFrom = { epoch: filter.epoch, version: filter.version };
  const view = [...filter.entries.keys()].sort();
  await a.stop();
  await eventually(() => filter.error !== undefined || filter.ended, "the stream to A to end");
  filter.close();
  const moved = new WatchClient(await b.filterAddress(WEB), WEB, resumeFrom);
  t.after(() => moved.close());
  await eventually(() => moved.responses.length >= 1, "B's answer to the resume");
  assert.equal(moved.responses[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT", "another replica's history is unknown: full snapshot");
  assert.deepEqual([...moved.entries.keys()].sort(), view);
  // And it keeps flowing from B.
  push(obs("two.example.com", "203.0.113.2"));
  await eventually(() => moved.names("203.0.113.2"), "a delta from replica B");
});
