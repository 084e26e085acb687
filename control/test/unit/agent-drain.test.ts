// Test the agent's SIGTERM drain: what it captured is acknowledged by control before it stops, and
// a drain that cannot deliver (control unreachable) ends at its deadline and says what was left.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import { silentLogger } from "../../src/common/log.js";
import { LinkType } from "../../src/pcap/index.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import { ControlFixture, WatchClient, egressPolicy, eventually } from "../support/control-harness.js";
import { dnsMessage, T, udpFrame } from "./dns-fixtures.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const RESOLVER = "198.18.0.53";

function agentFor(address: string, tokenFile?: string): Agent {
  const opts: AgentOptions = {
    agentId: "node-a/drain",
    log: silentLogger(),
    capture: { interfaces: [], bufferBytes: 1 << 20, rescanMs: 1000 },
    dns: { ports: [53], trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"], minTtlSec: 0, maxTtlSec: 86400, queryTimeoutMs: 10_000, maxPendingPerPod: 1024, maxPendingTotal: 4096 },
    store: { maxPerPod: 1024, maxTotal: 4096, negativeTtlSec: 30 },
    // A small window and batch: most of what is captured is still queued when the drain starts.
    control: { addresses: [address], resolveEveryMs: 1000, maxBatch: 4, window: 1, maxQueue: 10_000, ackTimeoutMs: 5000, connectTimeoutMs: 2000, credentials: agentCredentials(tokenFile ? { tokenFile } : {}) },
  };
  return new Agent(opts);
}

function resolveMany(agent: Agent, n: number): void {
  for (let i = 1; i <= n; i++) {
    const name = `n${i}.example.com`;
    const ip = `203.0.${113 + (i >> 8)}.${i & 0xff}`;
    const frame = (src: string, dst: string, sport: number, dport: number, msg: Uint8Array) =>
      agent.ingestFrame({ linkType: LinkType.ETHERNET, data: udpFrame(src, dst, sport, dport, msg), iface: "veth1", time: Date.now(), truncated: false });
    frame(WEB.ips[0]!, RESOLVER, 40000 + i, 53, dnsMessage({ id: i, questions: [{ name, type: T.A }] }));
    frame(RESOLVER, WEB.ips[0]!, 53, 40000 + i, dnsMessage({ id: i, response: true, questions: [{ name, type: T.A }], answers: [{ name, type: T.A, ttl: 300, data: ip }] }));
  }
}

test("drain: every observation captured before SIGTERM is acknowledged by control before the agent stops", { timeout: 60_000 }, async (t) => {
  const control = await new ControlFixture([WEB], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) }).start();
  const agent = agentFor(control.address, control.agentTokenFile());
  const watch = new WatchClient(await control.filterAddress(WEB), WEB);
  t.after(async () => {
    watch.close();
    agent.stop();
    await control.stop();
    control.cleanup();
  });
  await agent.start();
  await eventually(() => agent.replicas()[0]?.stats.connected, "agent connected");
  const N = 300;
  resolveMany(agent, N);
  assert.ok((agent.replicas()[0]!.unacknowledged() ?? 0) > 0, "observations are still queued when the drain starts");
  const left = await agent.drain({ captureTailMs: 0, timeoutMs: 30_000 });
  assert.deepEqual(left, {}, "nothing left unacknowledged");
  assert.equal(agent.replicas().length, 0, "the agent stopped after draining");
  // Control has every one of them: the filter's view receives each name.
  await eventually(() => watch.names(`203.0.114.${N & 0xff}`), "the last resolution at the filter");
  for (let i = 1; i <= N; i++) {
    const ip = `203.0.${113 + (i >> 8)}.${i & 0xff}`;
    assert.deepEqual(watch.names(ip), [`n${i}.example.com`], ip);
  }
});

test("drain: with control unreachable it ends at the deadline and names what was not delivered", { timeout: 30_000 }, async () => {
  const agent = agentFor("127.0.0.1:9"); // nothing listens on the discard port
  await agent.start();
  resolveMany(agent, 3);
  const started = Date.now();
  const left = await agent.drain({ captureTailMs: 0, timeoutMs: 300 });
  assert.deepEqual(left, { "127.0.0.1:9": "not connected" });
  assert.ok(Date.now() - started < 10_000, "the drain deadline bounds the stop");
  assert.equal(agent.store.valid().length, 3, "the observations were captured (they would be replayed, had the stream come up)");
});
