import { test } from "node:test";
import assert from "node:assert/strict";
import { ResolutionStore, normalizeName, type StoreObservation } from "../../src/control/store.js";
import { bytesToIp, ipToBytes } from "../../src/proto/ip.js";
import { measureStoreMemory } from "../../src/control/store-memory.js";

const T0 = 1_800_000_000_000;
const POD = "198.18.1.10";

function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

function obs(name: string, ips: string[], ttl = 60, extra: Partial<StoreObservation> = {}): StoreObservation {
  return { queryName: name, cnameChain: [], answers: ips.map((ip) => ({ ip: ipToBytes(ip), ttlSeconds: ttl })), observedUnixMs: T0, ...extra };
}

test("names are normalized to lowercase without the trailing dot; junk is refused", () => {
  assert.equal(normalizeName("API.Example.COM."), "api.example.com");
  assert.equal(normalizeName(""), undefined);
  assert.equal(normalizeName("a..b"), undefined);
  assert.equal(normalizeName("a b.com"), undefined);
  assert.equal(normalizeName("x".repeat(64) + ".com"), undefined);
});

test("an observation becomes an entry with the CNAME chain and expiry = observed + clamped TTL (grace is retention, never added)", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now, limits: { minTtlSeconds: 10, maxTtlSeconds: 100, graceSeconds: 5 } });
  assert.equal(store.record(ipToBytes(POD), obs("WWW.Example.com.", ["203.0.113.7"], 1, { cnameChain: ["Edge.CDN.example.net."] })), "stored");
  const r = store.get(POD, ipToBytes("203.0.113.7"));
  assert.ok(r);
  assert.deepEqual(r.names, [{ name: "www.example.com", cname_chain: ["edge.cdn.example.net"], expires_unix_ms: T0 + 10 * 1000, source: "NAME_SOURCE_POD_DNS", config_ref: "", ech_public_names: [] }]);
  assert.equal(r.expires_unix_ms, T0 + 10_000);
  store.record(ipToBytes(POD), obs("big.example.com", ["203.0.113.8"], 100_000));
  assert.equal(store.get(POD, ipToBytes("203.0.113.8"))!.expires_unix_ms, T0 + 100_000, "TTL clamped to the maximum");
  assert.equal(store.get("198.18.1.11", ipToBytes("203.0.113.7")), undefined, "other pods see nothing");
});

test("grace counts once: kept (with its TTL expiry) until expiry + the pod's grace, then swept; filters apply the policy's grace", () => {
  const c = clock();
  const graces = new Map<string, number>([[POD, 20]]);
  const store = new ResolutionStore({ now: c.now, limits: { minTtlSeconds: 1, graceSeconds: 5 }, graceFor: (p) => graces.get(p) });
  const ip = ipToBytes("203.0.113.9");
  store.record(ipToBytes(POD), obs("a.example.com", ["203.0.113.9"], 10));
  store.record(ipToBytes("198.18.1.11"), obs("a.example.com", ["203.0.113.9"], 10));
  c.t = T0 + 10_000; // TTL over: still served (for the filter's grace), expiry unchanged
  assert.equal(store.get(POD, ip)!.names[0]!.expires_unix_ms, T0 + 10_000);
  assert.equal(store.get("198.18.1.11", ip)!.names[0]!.expires_unix_ms, T0 + 10_000);
  c.t = T0 + 15_000; // the global grace (5 s) is over; the policy grace (20 s) of POD is not
  assert.equal(store.sweep(), 1);
  assert.equal(store.get("198.18.1.11", ip), undefined);
  assert.ok(store.get(POD, ip));
  c.t = T0 + 30_000;
  assert.equal(store.sweep(), 1);
  assert.equal(store.get(POD, ip), undefined);
  // An answer observed longer ago than TTL + grace is stale on arrival.
  assert.equal(store.record(ipToBytes("198.18.1.11"), obs("b.example.com", ["203.0.113.9"], 10)), "stale");
  c.t = T0;
  assert.equal(store.record(ipToBytes("198.18.1.11"), obs("b.example.com", ["203.0.113.9"], 10, { observedUnixMs: T0 - 12_000 })), "stored", "TTL over, within grace");
});

test("the latest expiry wins, a newer chain replaces the old one, and shared IPs keep every name sorted", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now, limits: { minTtlSeconds: 1, graceSeconds: 0 } });
  const pod = ipToBytes(POD);
  store.record(pod, obs("b.example.com", ["192.0.2.1"], 300));
  store.record(pod, obs("b.example.com", ["192.0.2.1"], 30, { cnameChain: ["x.example.net"] }));
  store.record(pod, obs("a.example.com", ["192.0.2.1"], 60));
  const r = store.get(POD, ipToBytes("192.0.2.1"))!;
  assert.deepEqual(r.names.map((n) => [n.name, n.cname_chain, n.expires_unix_ms]), [
    ["a.example.com", [], T0 + 60_000],
    ["b.example.com", ["x.example.net"], T0 + 300_000],
  ]);
  assert.equal(store.size.entries, 2);
});

test("sweep drops expired names, notifies, and keeps the unexpired ones", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now, limits: { minTtlSeconds: 1, graceSeconds: 0 } });
  const changes: string[] = [];
  store.subscribe((pod, ip) => changes.push(`${pod}>${bytesToIp(ip)}`));
  store.record(ipToBytes(POD), obs("short.example.com", ["192.0.2.1", "2001:db8::1"], 10));
  store.record(ipToBytes(POD), obs("long.example.com", ["192.0.2.1"], 100));
  assert.deepEqual(changes, [`${POD}>192.0.2.1`, `${POD}>2001:db8::1`, `${POD}>192.0.2.1`]);
  changes.length = 0;
  c.t = T0 + 10_000;
  assert.equal(store.get(POD, ipToBytes("2001:db8::1")), undefined, "expired entries are invisible even before a sweep");
  assert.equal(store.sweep(), 2);
  assert.deepEqual(changes.sort(), [`${POD}>192.0.2.1`, `${POD}>2001:db8::1`]);
  assert.deepEqual(store.get(POD, ipToBytes("192.0.2.1"))!.names.map((n) => n.name), ["long.example.com"]);
  assert.equal(store.size.entries, 1);
  c.t = T0 + 100_000;
  store.sweep();
  assert.deepEqual(store.size, { entries: 0, ips: 0, pods: 0, names: 0, chains: 0 }, "nothing leaks once everything expired");
});

test("bounds evict and count: names per IP, IPs per name, entries per pod, total", () => {
  const c = clock();
  const store = new ResolutionStore({
    now: c.now,
    limits: { maxNamesPerIp: 2, maxIpsPerName: 3, maxEntriesPerPod: 4, maxEntriesTotal: 6, minTtlSeconds: 1, graceSeconds: 0 },
  });
  const pod = ipToBytes(POD);
  store.record(pod, obs("n1.example.com", ["192.0.2.9"], 10));
  store.record(pod, obs("n2.example.com", ["192.0.2.9"], 20));
  store.record(pod, obs("n3.example.com", ["192.0.2.9"], 30));
  assert.deepEqual(store.get(POD, ipToBytes("192.0.2.9"))!.names.map((n) => n.name), ["n2.example.com", "n3.example.com"]);
  assert.equal(store.counters.evictedNamesPerIp, 1);

  store.record(pod, obs("many.example.com", ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]));
  assert.equal(store.counters.evictedIpsPerName, 2);
  // 2 (192.0.2.9) + 3 = 5 > 4 per pod: the least recently updated IP (192.0.2.9, two names) goes.
  assert.equal(store.get(POD, ipToBytes("192.0.2.9")), undefined);
  assert.equal(store.counters.evictedPerPod, 2);
  assert.equal(store.size.entries, 3);

  const other = ipToBytes("198.18.1.11");
  store.record(other, obs("o.example.com", ["192.0.2.20", "192.0.2.21", "192.0.2.22"]));
  store.record(other, obs("p.example.com", ["192.0.2.23"]));
  // Total 7 > 6: the globally least recently updated (the first pod's 192.0.2.1) is evicted.
  assert.equal(store.counters.evictedTotal, 1);
  assert.equal(store.get(POD, ipToBytes("192.0.2.1")), undefined);
  assert.equal(store.size.entries, 6);
});

test("refused observations are counted by reason, never thrown", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now });
  assert.equal(store.record(new Uint8Array(3), obs("a.example.com", ["192.0.2.1"])), "invalid-pod-ip");
  assert.equal(store.record(ipToBytes(POD), obs("bad name", ["192.0.2.1"])), "invalid-name");
  assert.equal(store.record(ipToBytes(POD), obs("a.example.com", [])), "no-answers");
  assert.equal(store.record(ipToBytes(POD), obs("a.example.com", ["192.0.2.1"], 1, { observedUnixMs: T0 - 3_600_000 })), "stale");
  assert.deepEqual(store.counters.rejected, { "invalid-pod-ip": 1, "invalid-name": 1, "no-answers": 1, stale: 1 });
  assert.deepEqual(store.size.pods, 0);
});

test("dropPod forgets a pod's resolutions and notifies for each IP", () => {
  const store = new ResolutionStore({ now: clock().now });
  store.record(ipToBytes(POD), obs("a.example.com", ["192.0.2.1", "192.0.2.2"]));
  store.record(ipToBytes("198.18.1.11"), obs("a.example.com", ["192.0.2.1"]));
  const changes: string[] = [];
  store.subscribe((pod, ip) => changes.push(`${pod}>${bytesToIp(ip)}`));
  assert.equal(store.dropPod(POD), 2);
  assert.deepEqual(changes, [`${POD}>192.0.2.1`, `${POD}>192.0.2.2`]);
  assert.equal(store.entriesOf(POD).length, 0);
  assert.equal(store.entriesOf("198.18.1.11").length, 1);
});

test("a store under random churn (IPv4 and IPv6, expiry, dropped pods) stays consistent with a simple model", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now, limits: { minTtlSeconds: 1, graceSeconds: 0, maxEntriesPerPod: 1_000_000, maxEntriesTotal: 1_000_000 } });
  const model = new Map<string, number>(); // pod|ip|name -> expiry
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const check = () => {
    for (const [key, expiry] of model) {
      const [pod, ip, name] = key.split("|");
      const got = store.get(pod, ipToBytes(ip))?.names.find((n) => n.name === name);
      if (expiry <= c.t) assert.equal(got, undefined, key);
      else assert.equal(got?.expires_unix_ms, expiry, key);
    }
  };
  for (let step = 0; step < 30_000; step++) {
    c.t += rnd(4) * 250;
    const pod = `198.18.1.${rnd(8)}`;
    const n = rnd(3000);
    const ip = n % 5 === 0 ? `2001:db8::${n.toString(16)}` : `192.0.${n >> 8}.${n & 255}`;
    const name = `n${rnd(8)}.example.com`;
    const ttl = 1 + rnd(20);
    store.record(ipToBytes(pod), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(ip), ttlSeconds: ttl }], observedUnixMs: c.t });
    const key = `${pod}|${ip}|${name}`;
    model.set(key, Math.max(model.get(key) ?? 0, c.t + ttl * 1000));
    if (step % 50 === 0) store.sweep();
    if (step % 997 === 0) {
      const victim = `198.18.1.${rnd(8)}`;
      store.dropPod(victim);
      for (const k of [...model.keys()]) if (k.startsWith(victim + "|")) model.delete(k);
    }
    if (step % 5000 === 0) check();
  }
  check();
  c.t += 3_600_000;
  store.sweep();
  assert.deepEqual(store.size, { entries: 0, ips: 0, pods: 0, names: 0, chains: 0 });
});

test("measureStoreMemory reports a per-entry figure for a stated workload", () => {
  const r = measureStoreMemory(20_000);
  assert.equal(r.entries, 20_000);
  assert.equal(r.pods, 20);
  assert.ok(r.bytesPerEntry > 0 && Number.isFinite(r.bytesPerEntry));
});

test("re-recording what the store already holds (an agent's replay) notifies nobody", () => {
  const c = clock();
  const store = new ResolutionStore({ now: c.now });
  const changes: string[] = [];
  store.subscribe((pod, ip) => changes.push(`${pod}>${bytesToIp(ip)}`));
  const o = obs("a.example.com", ["192.0.2.1", "192.0.2.2"], 60, { cnameChain: ["x.example.net"] });
  assert.equal(store.record(ipToBytes(POD), o), "stored");
  assert.equal(changes.length, 2);
  assert.equal(store.record(ipToBytes(POD), o), "stored");
  assert.equal(changes.length, 2, "same expiry, same chain: no change");
  assert.equal(store.record(ipToBytes(POD), { ...o, observedUnixMs: T0 - 1000 }), "stored");
  assert.equal(changes.length, 2, "an older observation does not shorten the expiry");
  store.record(ipToBytes(POD), { ...o, cnameChain: ["y.example.net"] });
  assert.equal(changes.length, 4, "a new chain is a change");
  c.t += 1000;
  store.record(ipToBytes(POD), { ...o, observedUnixMs: c.t, answers: [o.answers[0]] });
  assert.deepEqual(changes.slice(4), [`${POD}>192.0.2.1`], "a later expiry is a change, for that IP only");
});

test("record never throws and never stores an entry that cannot expire, whatever it is given", async () => {
  const fc = (await import("fast-check")).default;
  const c = clock();
  const store = new ResolutionStore({ now: c.now, limits: { maxEntriesTotal: 500, maxEntriesPerPod: 100 } });
  const bytes = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 20 }));
  const name = fc.oneof(fc.string(), fc.constantFrom("a.example.com", "A.EXAMPLE.COM.", "x", "", "..", "é.example"));
  fc.assert(
    fc.property(
      bytes,
      name,
      fc.array(name, { maxLength: 3 }),
      fc.array(fc.record({ ip: bytes, ttlSeconds: fc.oneof(fc.integer({ min: -5, max: 10_000_000 }), fc.constantFrom(NaN, Infinity, -Infinity, 0.5)) }), { maxLength: 5 }),
      fc.oneof(fc.integer({ min: -1, max: 4_000_000_000_000 }), fc.constantFrom(NaN, Infinity)),
      (pod, queryName, cnameChain, answers, observedUnixMs) => {
        const outcome = store.record(pod, { queryName, cnameChain, answers, observedUnixMs });
        assert.ok(["stored", "invalid-pod-ip", "invalid-name", "no-answers", "stale"].includes(outcome));
      },
    ),
    { numRuns: 2000 },
  );
  // Everything stored expires: far in the future, a sweep leaves nothing.
  c.t += 400 * 86_400_000;
  store.sweep();
  assert.equal(store.size.entries, 0);
});
