// Test the whole evidence path with the real control service: captured frames → egret agent
// (observer, store, stream) → egret control (store, hub) → a filter's Watch view. A forged answer
// on the same path never reaches the filter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "../../src/agent/agent.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import { silentLogger } from "../../src/common/log.js";
import { LinkType } from "../../src/pcap/index.js";
import { ControlFixture, WatchClient, egressPolicy, eventually } from "../support/control-harness.js";
import { dnsMessage, T, udpFrame } from "./dns-fixtures.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };
const RESOLVER = "198.18.0.53";

test("frames captured by the agent become the filter's resolutions; forged ones do not", { timeout: 60_000 }, async (t) => {
  const control = await new ControlFixture([WEB], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) }).start();
  const agent = new Agent({
    agentId: "node-a/test",
    log: silentLogger(),
    capture: { interfaces: [], bufferBytes: 1 << 20, rescanMs: 1000 },
    dns: { ports: [53], trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"], minTtlSec: 0, maxTtlSec: 86400, queryTimeoutMs: 10_000, maxPendingPerPod: 64, maxPendingTotal: 1024 },
    store: { maxPerPod: 64, maxTotal: 1024, negativeTtlSec: 30 },
    control: {
      addresses: [control.address], resolveEveryMs: 1000, maxBatch: 64, window: 4, maxQueue: 1000, ackTimeoutMs: 5000, connectTimeoutMs: 2000,
      credentials: agentCredentials({ tokenFile: control.agentTokenFile() }),
    },
  });
  const watch = new WatchClient(await control.filterAddress(WEB), WEB);
  t.after(async () => {
    watch.close();
    agent.stop();
    await control.stop();
    control.cleanup();
  });
  await agent.start();
  await eventually(() => agent.replicas()[0]?.stats.connected, "agent connected");
  await eventually(() => watch.responses.length >= 1, "filter snapshot");

  const frame = (src: string, dst: string, sport: number, dport: number, msg: Uint8Array) =>
    agent.ingestFrame({ linkType: LinkType.ETHERNET, data: udpFrame(src, dst, sport, dport, msg), iface: "veth1", time: Date.now(), truncated: false });
  // The pod asks; the resolver answers through a CNAME chain.
  frame(WEB.ips[0]!, RESOLVER, 41000, 53, dnsMessage({ id: 7, questions: [{ name: "www.example.com", type: T.A }] }));
  frame(RESOLVER, WEB.ips[0]!, 53, 41000, dnsMessage({
    id: 7, response: true, questions: [{ name: "www.example.com", type: T.A }],
    answers: [
      { name: "www.example.com", type: T.CNAME, data: "edge.cdn.example.net" },
      { name: "edge.cdn.example.net", type: T.A, ttl: 120, data: "203.0.113.7" },
    ],
  }));
  // Forged: an answer nobody asked for, and one from an untrusted address.
  frame(RESOLVER, WEB.ips[0]!, 53, 41001, dnsMessage({ id: 8, response: true, questions: [{ name: "bank.example.com", type: T.A }], answers: [{ name: "bank.example.com", type: T.A, data: "203.0.113.66" }] }));
  frame(WEB.ips[0]!, RESOLVER, 41002, 53, dnsMessage({ id: 9, questions: [{ name: "pay.example.com", type: T.A }] }));
  frame("198.18.0.99", WEB.ips[0]!, 53, 41002, dnsMessage({ id: 9, response: true, questions: [{ name: "pay.example.com", type: T.A }], answers: [{ name: "pay.example.com", type: T.A, data: "203.0.113.67" }] }));
  // A later, genuine resolution proves the forged ones were processed before it.
  frame(WEB.ips[0]!, RESOLVER, 41003, 53, dnsMessage({ id: 10, questions: [{ name: "later.example.com", type: T.A }] }));
  frame(RESOLVER, WEB.ips[0]!, 53, 41003, dnsMessage({ id: 10, response: true, questions: [{ name: "later.example.com", type: T.A }], answers: [{ name: "later.example.com", type: T.A, data: "203.0.113.8" }] }));

  await eventually(() => watch.names("203.0.113.8"), "the later resolution at the filter");
  const names = watch.names("203.0.113.7") ?? [];
  assert.ok(names.includes("www.example.com"), `www.example.com attributed to 203.0.113.7 (got ${JSON.stringify(names)})`);
  assert.equal(watch.entries.has("203.0.113.66"), false, "unsolicited answer not attributed");
  assert.equal(watch.entries.has("203.0.113.67"), false, "untrusted resolver not attributed");
  assert.equal(agent.observer.stats.rejected.unsolicited, 1);
  assert.equal(agent.observer.stats.rejected["untrusted-resolver"], 1);
});
