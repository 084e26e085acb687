// ECH public names from HTTPS/SVCB answers (control/src/dns/svcb.ts) and the observer that keeps
// them (issue #14: ECH narrowing). The parser is evidence parsing: every length checked, bounded,
// total; a forged answer never gets through the observer's rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { echPublicNames, hostName, MAX_ECH_PUBLIC_NAMES } from "../../src/dns/svcb.js";
import { DnsObserver, type DnsObservation } from "../../src/dns/observer.js";
import { dnsMessage, echConfig, httpsRdata, T } from "./dns-fixtures.js";

const POD = "198.18.1.10";
const RESOLVER = "198.18.0.53";

function names(rdata: Uint8Array): string[] | null {
  const out: string[] = [];
  return echPublicNames(rdata, 0, rdata.length, out) ? out : null;
}

test("svcb: the public_name of each ECHConfig in the ech SvcParam, lowercased and deduplicated", () => {
  assert.deepEqual(names(httpsRdata([echConfig("Cloudflare-ECH.com")])), ["cloudflare-ech.com"]);
  assert.deepEqual(names(httpsRdata([echConfig("a.example"), echConfig("b.example"), echConfig("a.example")])), ["a.example", "b.example"]);
  // A config of another version is skipped by its length; the list stays well-formed.
  assert.deepEqual(names(httpsRdata([echConfig("old.example", 0xfe0a), echConfig("new.example")])), ["new.example"]);
  // AliasMode (priority 0) carries no parameters: no names, not malformed.
  assert.deepEqual(names(httpsRdata([], { priority: 0, target: "svc.example" })), []);
  // Bounded: at most MAX_ECH_PUBLIC_NAMES per call.
  const many = Array.from({ length: 9 }, (_, i) => echConfig(`p${i}.example`));
  assert.equal(names(httpsRdata(many))!.length, MAX_ECH_PUBLIC_NAMES);
});

test("svcb: malformed rdata or ECHConfigList yields no names at all", () => {
  const good = httpsRdata([echConfig("pub.example")]);
  // A strict prefix never yields the name: it is malformed, or (cut between parameters) names nothing.
  for (let n = 0; n < good.length; n++) {
    const got = names(good.subarray(0, n));
    if (n === 3 || n === 10) assert.deepEqual(got, [], `prefix of ${n} bytes ends between parameters`);
    else assert.equal(got, null, `prefix of ${n} bytes`);
  }
  // Keys out of order.
  assert.equal(names(Uint8Array.from([0, 1, 0, 0, 5, 0, 0, 0, 1, 0, 0])), null);
  // A public name that is not a host name (an IP literal, a bad byte, an empty label).
  for (const bad of ["192.0.2.1", "a_b.example", "a..example", "x.example.", ".x"]) {
    assert.equal(names(httpsRdata([echConfig(bad)])), null, bad);
  }
  // A length that overruns its container, anywhere.
  const overrun = Uint8Array.from(good);
  overrun[overrun.length - 3] = 0xff; // the public_name length byte... of the last config's name area
  assert.equal(names(overrun), null);
  // An empty ECHConfigList.
  assert.equal(names(Uint8Array.from([0, 1, 0, 0, 5, 0, 2, 0, 0])), null);
  // `out` is left as it was on failure.
  const out = ["kept.example"];
  assert.equal(echPublicNames(overrun, 0, overrun.length, out), false);
  assert.deepEqual(out, ["kept.example"]);
});

test("svcb: hostName accepts only LDH labels with a non-numeric last label", () => {
  const b = (s: string) => Buffer.from(s, "latin1");
  assert.equal(hostName(b("Pub.Example"), 0, 11), "pub.example");
  assert.equal(hostName(b("1.2.3.4"), 0, 7), null);
  assert.equal(hostName(b("a".repeat(64) + ".x"), 0, 66), null);
  assert.equal(hostName(b("a.b\\c"), 0, 5), null);
});

/** xorshift32, seeded: a failure reproduces. */
function prng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

test("svcb: property — 200,000 mutated records never throw, stay bounded, and yield only host names", () => {
  const rand = prng(0x5eccb);
  const seeds = [
    httpsRdata([echConfig("pub.example")]),
    httpsRdata([echConfig("a.example"), echConfig("b.example", 0xfe0a), echConfig("c.example")]),
    httpsRdata([], { priority: 0, target: "alias.example" }),
  ];
  let withNames = 0;
  for (let i = 0; i < 200_000; i++) {
    const b = Uint8Array.from(seeds[rand(seeds.length)]!);
    for (let m = 1 + rand(4); m > 0; m--) {
      const at = rand(b.length);
      const kind = rand(3);
      if (kind === 0) b[at] = rand(256);
      else if (kind === 1) b[at] ^= 1 << rand(8);
      else b[at] = [0, 1, 0xff, 0x3f, 0x40][rand(5)]!;
    }
    const cut = rand(4) === 0 ? rand(b.length + 1) : b.length;
    const out: string[] = [];
    const ok = echPublicNames(b, 0, cut, out);
    assert.ok(out.length <= MAX_ECH_PUBLIC_NAMES);
    if (!ok) assert.equal(out.length, 0);
    for (const n of out) {
      assert.match(n, /^[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$/);
      assert.ok(n.length <= 253);
      withNames++;
    }
  }
  assert.ok(withNames > 1000, "the mutations still reach the public_name often");
});

function observer() {
  const seen: DnsObservation[] = [];
  const o = new DnsObserver({
    now: () => 1_000_000, trustedResolvers: [RESOLVER], podCidrs: ["198.18.1.0/24"],
    addressRecordsOnly: true, onObservation: (x) => seen.push(x),
  });
  const meta = (from: string, to: string, fromPod = false) => ({
    time: 1_000_000, src: from, dst: to, srcPort: from === POD ? 40000 : 53, dstPort: from === POD ? 53 : 40000, transport: "udp" as const,
    ...(fromPod ? { fromPod: true } : {}),
  });
  return { o, seen, meta };
}

function httpsAnswer(name: string, rdata: Uint8Array, ttl = 600, id = 0x77) {
  return dnsMessage({ id, response: true, questions: [{ name, type: T.HTTPS }], answers: [{ name, type: T.HTTPS, ttl, data: rdata }] });
}

test("observer: an HTTPS answer to the pod's own query carries its ECH public names and TTL", () => {
  const { o, seen, meta } = observer();
  o.observe(meta(POD, RESOLVER), dnsMessage({ id: 0x77, questions: [{ name: "shop.example", type: T.HTTPS }] }));
  const obs = o.observe(meta(RESOLVER, POD), httpsAnswer("shop.example", httpsRdata([echConfig("front.example")]), 120)) as DnsObservation;
  assert.equal(typeof obs, "object");
  assert.deepEqual(obs.echPublicNames, ["front.example"]);
  assert.equal(obs.echTtlSec, 120);
  assert.equal(obs.negative, false);
  assert.equal(seen.length, 1);
  // An A answer has none.
  o.observe(meta(POD, RESOLVER), dnsMessage({ id: 0x78, questions: [{ name: "shop.example", type: T.A }] }));
  const a = o.observe(meta(RESOLVER, POD), dnsMessage({ id: 0x78, response: true, questions: [{ name: "shop.example", type: T.A }], answers: [{ name: "shop.example", type: T.A, data: "198.18.7.1" }] })) as DnsObservation;
  assert.equal(a.echPublicNames, undefined);
});

test("observer (attack): a forged HTTPS answer naming a public name is rejected, a malformed one names nothing", () => {
  const { o, seen, meta } = observer();
  const forged = httpsAnswer("shop.example", httpsRdata([echConfig("evil-front.example")]));
  // Unsolicited: the pod never asked.
  assert.equal(o.observe(meta(RESOLVER, POD), forged), "unsolicited");
  o.observe(meta(POD, RESOLVER), dnsMessage({ id: 0x77, questions: [{ name: "shop.example", type: T.HTTPS }] }));
  // Sent by the pod itself with the resolver's address.
  assert.equal(o.observe(meta(RESOLVER, POD, true), forged), "sent-by-pod");
  // From a server that is not a trusted resolver.
  assert.equal(o.observe({ ...meta(RESOLVER, POD), src: "198.18.0.99" }, forged), "untrusted-resolver");
  assert.equal(seen.length, 0);
  // The real answer, malformed ECHConfigList: accepted as an answer, but no public names.
  const broken = httpsRdata([echConfig("front.example")]).subarray(0, 40);
  const obs = o.observe(meta(RESOLVER, POD), httpsAnswer("shop.example", broken)) as DnsObservation;
  assert.equal(typeof obs, "object");
  assert.equal(obs.echPublicNames, undefined);
  assert.equal(o.stats.badSvcbRecords, 1);
});

test("agent: the public names travel in Observation.ech_public_names and keep the observation for their TTL", async () => {
  const { toProto, observationWireBytes } = await import("../../src/agent/replica-stream.js");
  const { ObservationStore } = await import("../../src/agent/store.js");
  const { o, meta } = observer();
  o.observe(meta(POD, RESOLVER), dnsMessage({ id: 0x77, questions: [{ name: "shop.example", type: T.HTTPS }] }));
  const obs = o.observe(meta(RESOLVER, POD), httpsAnswer("shop.example", httpsRdata([echConfig("front.example")]), 120)) as DnsObservation;
  const wire = toProto(obs);
  assert.deepEqual(wire.ech_public_names, ["front.example"]);
  assert.equal(wire.ech_ttl_seconds, 120);
  assert.deepEqual(wire.answers, []);
  assert.ok(observationWireBytes(obs) >= 96 + "front.example".length);
  const store = new ObservationStore({ now: () => 1_000_000, maxPerPod: 10, maxTotal: 10, negativeTtlSec: 5 });
  assert.equal(store.expiryOf(obs), 1_000_000 + 120_000, "replayed while the public names are valid");
});
