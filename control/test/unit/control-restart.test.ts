// Killing and restarting control loses no unexpired resolution: the real agent client
// (control/src/agent/replica-stream.ts) reconnects and replays what it still holds; the filter's
// Watch client resumes with its epoch and version and ends with the same view.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { ReplicaStream } from "../../src/agent/replica-stream.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { ControlFixture, WatchClient, egressPolicy, eventually } from "../support/control-harness.js";

const WEB = { name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } };

function dnsObservation(name: string, ip: string, ttl: number, time = Date.now()): DnsObservation {
  return {
    podIp: "198.18.1.10",
    podPort: 40000,
    qname: name,
    qtype: 1,
    rcode: 0,
    cnameChain: [],
    answers: [{ name, type: "A", typeCode: 1, ttl, data: ip }],
    negative: false,
    truncated: false,
    resolver: "198.19.0.53",
    resolverPort: 53,
    transport: "udp",
    time,
    id: 1,
  };
}

test("a restarted control gets every unexpired resolution back from the agent, and the filter resumes", async (t) => {
  const policies = { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["**.example.com"]) };
  let control = await new ControlFixture([WEB], policies).start();
  const port = Number(control.address.split(":")[1]);
  const fixtures = [control];
  t.after(async () => {
    for (const f of fixtures) {
      await f.stop();
      f.cleanup();
    }
  });

  // What the agent holds: its replay store (everything still valid), oldest first.
  const held = [dnsObservation("a.example.com", "203.0.113.1", 600), dnsObservation("b.example.com", "203.0.113.2", 600)];
  const agent = new ReplicaStream({
    address: control.address,
    agentId: "node-1/test",
    log: silentLogger(),
    replaySource: () => held,
    maxBatch: 100,
    window: 4,
    maxQueue: 1000,
    ackTimeoutMs: 5_000,
    connectTimeoutMs: 2_000,
    now: Date.now,
    credentials: agentCredentials({ tokenFile: control.agentTokenFile() }),
  });
  t.after(() => agent.close());
  agent.start();

  const filter = new WatchClient(await control.filterAddress(WEB), WEB);
  await eventually(() => filter.entries.size === 2 && filter, "the filter to see both replayed resolutions");
  // A live observation after the connect.
  const live = dnsObservation("c.example.com", "203.0.113.3", 600);
  held.push(live);
  agent.push(live);
  await eventually(() => filter.names("203.0.113.3"), "the live resolution");
  const viewBefore = JSON.stringify([...filter.entries.keys()].sort());
  const resumeFrom = { epoch: filter.epoch, version: filter.version };

  // Kill control; start a new one on the same port with the same files.
  await control.stop();
  await eventually(() => filter.error !== undefined || filter.ended, "the filter's stream to end");
  filter.close();
  const restarted = new ControlFixture([WEB], policies, {}, {});
  fixtures.push(restarted);
  await restarted.start(port);
  control = restarted;

  // The agent reconnects by itself and replays; the new store has everything again.
  await eventually(() => restarted.service.store.size.entries === 3 && true, "the agent's replay", 20_000);
  assert.equal(restarted.service.store.entriesOf("198.18.1.10").length, 3);

  // The filter resumes with its old epoch/version: another process cannot know that history, so
  // it answers with a SNAPSHOT — whose content equals what the filter had.
  const resumed = new WatchClient(await restarted.filterAddress(WEB), WEB, resumeFrom);
  t.after(() => resumed.close());
  await eventually(() => resumed.responses.length >= 1, "the resume answer");
  assert.equal(resumed.responses[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  assert.notEqual(resumed.epoch, resumeFrom.epoch);
  assert.equal(JSON.stringify([...resumed.entries.keys()].sort()), viewBefore);
  assert.ok(agent.stats.connects >= 2 && agent.stats.replayed >= 5, `agent stats ${JSON.stringify(agent.stats)}`);
});
