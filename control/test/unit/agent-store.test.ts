// Unit tests of the agent's replay store (bounds, expiry, eviction) and the observer's CIDR sets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ObservationStore, observationBytes } from "../../src/agent/store.js";
import { CidrSet } from "../../src/dns/cidr.js";
import type { DnsObservation } from "../../src/dns/observer.js";

function obs(podIp: string, qname: string, time: number, ttl: number, negative = false): DnsObservation {
  return {
    podIp, podPort: 40000, qname, qtype: 1, rcode: negative ? 3 : 0, cnameChain: [],
    answers: negative ? [] : [{ name: qname, type: "A", typeCode: 1, ttl, data: "198.18.0.1" }],
    negative, truncated: false, resolver: "198.18.0.53", resolverPort: 53, transport: "udp", time, id: 1,
  };
}

test("keeps observations until their TTL, negative ones for the negative TTL", () => {
  let now = 1_000_000;
  const store = new ObservationStore({ now: () => now, maxPerPod: 10, maxTotal: 100, negativeTtlSec: 5 });
  store.add(obs("198.18.1.1", "short.example", now, 2));
  store.add(obs("198.18.1.1", "long.example", now, 60));
  store.add(obs("198.18.1.1", "nx.example", now, 0, true));
  store.add(obs("198.18.1.1", "expired.example", now - 10_000, 1));
  assert.deepEqual(store.valid().map((o) => o.qname), ["short.example", "long.example", "nx.example"]);
  now += 3_000;
  assert.deepEqual(store.valid().map((o) => o.qname), ["long.example", "nx.example"]);
  now += 3_000;
  assert.deepEqual(store.valid().map((o) => o.qname), ["long.example"]);
  assert.equal(store.size, 1);
  assert.equal(store.stats.expired, 2);
});

test("caps per pod and in total, evicting the oldest", () => {
  const now = 1_000_000;
  const store = new ObservationStore({ now: () => now, maxPerPod: 3, maxTotal: 5, negativeTtlSec: 5 });
  for (let i = 0; i < 5; i++) store.add(obs("198.18.1.1", `a${i}.example`, now, 60));
  assert.deepEqual(store.valid().map((o) => o.qname), ["a2.example", "a3.example", "a4.example"]);
  for (let i = 0; i < 3; i++) store.add(obs("198.18.1.2", `b${i}.example`, now, 60));
  assert.equal(store.size, 5);
  assert.deepEqual(store.valid().map((o) => o.qname), ["a3.example", "a4.example", "b0.example", "b1.example", "b2.example"]);
  assert.equal(store.stats.evicted, 3);
});

test("stays bounded under a long stream from one pod", () => {
  let now = 0;
  const store = new ObservationStore({ now: () => now, maxPerPod: 100, maxTotal: 1000, negativeTtlSec: 5 });
  for (let i = 0; i < 100_000; i++) {
    now += 1;
    store.add(obs("198.18.1.1", `n${i}.example`, now, 30));
  }
  assert.equal(store.size, 100);
  assert.equal(store.valid().length, 100);
});

test("CIDR sets match IPv4 and IPv6 ranges and reject bad input with the field name", () => {
  const s = new CidrSet(["10.244.0.0/16", "198.18.0.53", "fd00:10::/32", "::ffff:192.0.2.0/120"], "pod CIDR");
  assert.ok(s.has("10.244.7.9"));
  assert.ok(!s.has("10.245.0.1"));
  assert.ok(s.has("198.18.0.53"));
  assert.ok(!s.has("198.18.0.54"));
  assert.ok(s.has("fd00:10:ffff::1"));
  assert.ok(!s.has("fd00:11::1"));
  assert.ok(s.has("::ffff:192.0.2.77"));
  assert.ok(!s.has("not-an-ip"));
  assert.ok(new CidrSet(["0.0.0.0/0"], "x").has("203.0.113.1"));
  assert.throws(() => new CidrSet(["10.0.0.0/40"], "pod CIDR"), /pod CIDR: "10.0.0.0\/40" has an invalid prefix/);
  assert.throws(() => new CidrSet(["example.com"], "trusted resolver"), /trusted resolver: "example.com" is not an IP/);
  assert.throws(() => new CidrSet(["10.0.0.0/x"], "pod CIDR"), /invalid prefix/);
});

test("finding 9: the replay store is bounded in bytes per pod and in total; a flooding pod loses its own, a quiet pod keeps its evidence", () => {
  const now = 1_000_000;
  const store = new ObservationStore({ now: () => now, maxPerPod: 100_000, maxTotal: 100_000, negativeTtlSec: 5, maxBytesPerPod: 256 << 10, maxBytesTotal: 600 << 10 });
  const big = (pod: string, i: number): DnsObservation => ({
    ...obs(pod, `big${i}.example`, now, 60),
    answers: Array.from({ length: 200 }, (_, k) => ({ name: `big${i}.example`, type: "A", typeCode: 1, ttl: 60, data: `198.18.${k >> 8}.${k & 0xff}` })),
  });
  store.add(obs("198.18.1.2", "quiet.example", now, 60));
  for (let i = 0; i < 2000; i++) store.add(big("198.18.1.1", i));
  for (let i = 0; i < 2000; i++) store.add(big("198.18.1.3", i));
  assert.ok(store.stats.bytes <= 600 << 10, `held ${store.stats.bytes} bytes`);
  assert.ok(store.valid().filter((o) => o.podIp === "198.18.1.1").reduce((n, o) => n + observationBytes(o), 0) <= 256 << 10);
  assert.ok(store.valid().some((o) => o.qname === "quiet.example"), "the quiet pod's observation survives both floods");
  // One observation larger than a pod's whole share is never stored.
  store.add({ ...big("198.18.1.4", 0), answers: Array.from({ length: 5000 }, () => ({ name: "x", type: "A", typeCode: 1, ttl: 60, data: "198.18.0.1" })) });
  assert.equal(store.stats.oversized, 1);
});
