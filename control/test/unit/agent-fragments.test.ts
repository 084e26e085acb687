// A large EDNS answer split into IP fragments is evidence once reassembled (issue 18), through the
// agent's own frame path (Agent.ingestFrame, frames as the capture ring delivers them: from the IP
// header, with the kernel's packet type). Fragment attacks by a pod (issue 14 style) make none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import { silentLogger } from "../../src/common/log.js";
import type { DnsObservation } from "../../src/dns/observer.js";
import { LinkType } from "../../src/pcap/index.js";
import { agentCredentials } from "../../src/agent/credentials.js";
import { dnsMessage, T } from "./dns-fixtures.js";
import { ethernet, fragmentIpv4, fragmentIpv6, ipv4, ipv6, udpDatagram } from "./pcap/builders.js";

const POD = "198.18.1.10", RESOLVER = "198.18.0.53", POD6 = "2001:db8:1::10", RESOLVER6 = "2001:db8::53";
const HOST = 0, OUTGOING = 4;

function agent(): { agent: Agent; seen: DnsObservation[] } {
  const seen: DnsObservation[] = [];
  const opts: AgentOptions = {
    agentId: "node-a/fragments", log: silentLogger(),
    capture: { interfaces: [], bufferBytes: 1 << 20, rescanMs: 1000 },
    dns: { ports: [53], trustedResolvers: [RESOLVER, RESOLVER6], podCidrs: ["198.18.1.0/24", "2001:db8:1::/64"], minTtlSec: 0, maxTtlSec: 86400, queryTimeoutMs: 10_000, maxPendingPerPod: 1024, maxPendingTotal: 4096 },
    store: { maxPerPod: 1024, maxTotal: 4096, negativeTtlSec: 30 },
    control: { addresses: [], resolveEveryMs: 1000, maxBatch: 4, window: 1, maxQueue: 100, ackTimeoutMs: 5000, connectTimeoutMs: 2000, credentials: agentCredentials({}) },
    onObservation: (o) => seen.push(o),
  };
  return { agent: new Agent(opts), seen };
}

/** An answer with `n` A records (198.LAST.x.y): 16 bytes each, so 200 make a ~3.2 KB EDNS answer (3 fragments at MTU 1500). */
function bigAnswer(name: string, n: number, id: number, last = 1): Uint8Array {
  return dnsMessage({
    id, response: true, questions: [{ name, type: T.A }],
    answers: Array.from({ length: n }, (_, i) => ({ name, type: T.A, ttl: 300, data: `198.${last}.${i >> 8}.${i & 0xff}` })),
  });
}

function send(a: Agent, ip: Uint8Array, pktType: number, iface = "veth1"): void {
  a.ingestFrame({ linkType: LinkType.RAW, data: ip, iface, time: Date.now(), truncated: false, pktType });
}

test("a 3 KB answer in three IPv4 fragments (last first) is evidence; every address is kept", () => {
  const { agent: a, seen } = agent();
  send(a, ipv4(POD, RESOLVER, 17, udpDatagram(41000, 53, dnsMessage({ id: 5, questions: [{ name: "big.example.com", type: T.A }] }))), HOST);
  const frags = fragmentIpv4(ipv4(RESOLVER, POD, 17, udpDatagram(53, 41000, bigAnswer("big.example.com", 200, 5))), 1480);
  assert.equal(frags.length, 3);
  for (const f of [frags[2]!, frags[0]!, frags[1]!]) send(a, f, OUTGOING);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.answers.length, 200);
  assert.equal(a.fragments.stats.reassembled, 1);
  assert.equal(a.pipeline.stats.incompleteDatagrams, 0);
});

test("IPv6: a fragmented answer is evidence; on an Ethernet capture too", () => {
  const { agent: a, seen } = agent();
  send(a, ipv6(POD6, RESOLVER6, 17, udpDatagram(41000, 53, dnsMessage({ id: 6, questions: [{ name: "big6.example.com", type: T.A }] }))), HOST);
  for (const f of fragmentIpv6(ipv6(RESOLVER6, POD6, 17, udpDatagram(53, 41000, bigAnswer("big6.example.com", 150, 6))), 1232)) {
    a.ingestFrame({ linkType: LinkType.ETHERNET, data: ethernet(f), iface: "veth1", time: Date.now(), truncated: false, pktType: OUTGOING });
  }
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.answers.length, 150);
});

test("attack: a forged overlapping fragment toward the pod rewrites nothing — the datagram is dropped, as the pod's kernel drops it", () => {
  const { agent: a, seen } = agent();
  send(a, ipv4(POD, RESOLVER, 17, udpDatagram(41000, 53, dnsMessage({ id: 7, questions: [{ name: "victim.example.com", type: T.A }] }))), HOST);
  const frags = fragmentIpv4(ipv4(RESOLVER, POD, 17, udpDatagram(53, 41000, bigAnswer("victim.example.com", 200, 7))), 1480);
  // Same key (addresses, id, protocol), overlapping the first fragment's tail with other records.
  const evil = fragmentIpv4(ipv4(RESOLVER, POD, 17, udpDatagram(53, 41000, bigAnswer("victim.example.com", 200, 7, 66))), 1480)[1]!.slice();
  const fo = (1 << 13) | (1472 / 8);
  evil[6] = fo >> 8; evil[7] = fo & 0xff;
  for (const f of [frags[0]!, evil, frags[1]!, frags[2]!]) send(a, f, OUTGOING);
  assert.equal(seen.length, 0, "no evidence from a datagram with overlapping fragments");
  assert.equal(a.fragments.stats.overlaps, 1);
});

test("attack: fragments a pod sends (same addresses and id) cannot complete or poison an answer to it", () => {
  const { agent: a, seen } = agent();
  send(a, ipv4(POD, RESOLVER, 17, udpDatagram(41000, 53, dnsMessage({ id: 8, questions: [{ name: "mine.example.com", type: T.A }] }))), HOST);
  const real = fragmentIpv4(ipv4(RESOLVER, POD, 17, udpDatagram(53, 41000, bigAnswer("mine.example.com", 200, 8))), 1480);
  const forged = fragmentIpv4(ipv4(RESOLVER, POD, 17, udpDatagram(53, 41000, bigAnswer("mine.example.com", 200, 8, 66))), 1480);
  // The pod sends a forged copy of every fragment, and an overlapping one, leaving its veth.
  const overlap = forged[1]!.slice();
  overlap[6] = (1 << 5) | 0; overlap[7] = 1472 / 8;
  for (const f of [...forged, overlap]) send(a, f, HOST);
  assert.equal(seen.length, 0, "the pod's own fragments are never an answer to it");
  for (const f of real) send(a, f, OUTGOING);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.answers.length, 200);
  assert.ok(seen[0]!.answers.every((r) => String(r.data).startsWith("198.1.")), "no forged address");
});
