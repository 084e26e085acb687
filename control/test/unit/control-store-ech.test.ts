// ECH public names in control's store (issue #14: ECH narrowing): kept per (pod, queried name),
// attached to that name's ResolvedNames whichever answer came first, expired, dropped and bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ResolutionStore } from "../../src/control/store.js";
import { EchNameTable } from "../../src/control/ech-names.js";
import { ipToBytes } from "../../src/proto/ip.js";

const T0 = 1_800_000_000_000;
const POD = "198.18.1.10";
const OTHER = "198.18.1.11";

function setup() {
  const c = { t: T0 };
  const store = new ResolutionStore({ now: () => c.t, limits: { minTtlSeconds: 5, maxTtlSeconds: 3600, graceSeconds: 10 } });
  const changes: string[] = [];
  store.subscribe((pod, ip) => changes.push(`${pod} ${ip.join(".")}`));
  const a = (pod: string, name: string, ip: string, ttl = 300) =>
    store.record(ipToBytes(pod), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(ip), ttlSeconds: ttl }], observedUnixMs: c.t });
  const https = (pod: string, name: string, publicNames: string[], ttl = 60) =>
    store.recordEch(ipToBytes(pod), { queryName: name, publicNames, ttlSeconds: ttl, observedUnixMs: c.t });
  const echOf = (pod: string, ip: string) => Object.fromEntries(store.get(pod, ipToBytes(ip))!.names.map((n) => [n.name, n.ech_public_names]));
  return { c, store, changes, a, https, echOf };
}

test("store: an HTTPS answer's public names reach the ResolvedNames of that name, for that pod only, in either order", () => {
  const { store, changes, a, https, echOf } = setup();
  a(POD, "shop.example", "198.18.9.1");
  a(POD, "other.example", "198.18.9.1");
  changes.length = 0;
  assert.equal(https(POD, "Shop.Example.", ["Front.Example"]), "stored");
  assert.deepEqual(changes, [`${POD} 198.18.9.1`], "the IP resolved from the name is re-sent");
  assert.deepEqual(echOf(POD, "198.18.9.1"), { "other.example": [], "shop.example": ["front.example"] });
  // HTTPS before A: the A answer's entry carries it at once.
  https(POD, "late.example", ["front.example"]);
  a(POD, "late.example", "198.18.9.2");
  assert.deepEqual(echOf(POD, "198.18.9.2"), { "late.example": ["front.example"] });
  // Another pod's answers name nothing for this pod.
  a(OTHER, "shop.example", "198.18.9.1");
  assert.deepEqual(echOf(OTHER, "198.18.9.1"), { "shop.example": [] });
  // The same answer again changes nothing.
  changes.length = 0;
  const again = store.recordEch(ipToBytes(POD), { queryName: "shop.example", publicNames: ["front.example"], ttlSeconds: 60, observedUnixMs: T0 });
  assert.equal(again, "stored");
  assert.deepEqual(changes, []);
});

test("store: public names expire with their TTL + grace (re-sent), go with the pod, and refuse junk", () => {
  const { c, store, changes, a, https, echOf } = setup();
  a(POD, "shop.example", "198.18.9.1", 3600);
  https(POD, "shop.example", ["front.example"], 60);
  c.t += 69_000;
  assert.deepEqual(echOf(POD, "198.18.9.1"), { "shop.example": ["front.example"] }, "within TTL + grace");
  c.t += 2_000;
  assert.deepEqual(echOf(POD, "198.18.9.1"), { "shop.example": [] }, "past TTL + grace: not shown");
  changes.length = 0;
  store.sweep();
  assert.deepEqual(changes, [`${POD} 198.18.9.1`], "the sweep re-sends the entry without them");
  assert.equal(store.ech.size, 0);
  https(POD, "shop.example", ["front.example"]);
  store.dropPod(POD);
  assert.equal(store.ech.size, 0);
  assert.equal(https(POD, "bad name", ["front.example"]), "invalid-name");
  assert.equal(https(POD, "shop.example", ["not a name"]), "invalid-name");
  assert.equal(https(POD, "shop.example", []), "no-answers");
  assert.equal(store.recordEch(Uint8Array.of(1, 2), { queryName: "x.example", publicNames: ["p.example"], ttlSeconds: 5, observedUnixMs: T0 }), "invalid-pod-ip");
});

test("ech-names (attack): one pod flooding HTTPS answers stays within its bound and never evicts a quiet pod's names", () => {
  const t = new EchNameTable({ maxNamesPerPod: 8, maxNamesTotal: 12 });
  t.set("quiet", "shop.example", ["front.example"], T0 + 60_000);
  for (let i = 0; i < 1000; i++) t.set("loud", `n${i}.attacker.example`, ["p.example"], T0 + i);
  assert.deepEqual(t.get("quiet", "shop.example", T0), ["front.example"]);
  assert.equal(t.size, 9);
  assert.ok(t.evicted >= 992);
  for (let i = 0; i < 6; i++) t.set(`p${i}`, "x.example", ["p.example"], T0 + 10);
  assert.ok(t.size <= 12);
  assert.deepEqual(t.get("quiet", "shop.example", T0), ["front.example"], "the total bound takes from the largest pod");
});

test("Observe → store → Watch: an HTTPS observation's public names arrive on the ResolvedName of the pod's Watch", async (t) => {
  const { ControlFixture, WatchClient, egressPolicy, eventually, observation, observe } = await import("../support/control-harness.js");
  const WEB = { name: "web-1", namespace: "shop", ips: [POD], labels: { app: "web" } };
  const f = new ControlFixture([WEB], { "web.yaml": egressPolicy("web-egress", "shop", { app: "web" }, ["shop.example"]) });
  t.after(async () => {
    await f.stop();
    f.cleanup();
  });
  await f.start();
  const w = new WatchClient(await f.filterAddress(WEB), WEB);
  t.after(() => w.close());
  const echOn = (ip: string) => {
    for (let i = w.responses.length - 1; i >= 0; i--) {
      const u = w.responses[i]!.upserts.find((x) => x.ip.length === 4 && x.ip.join(".") === ip);
      if (u) return u.names.map((n) => `${n.name}:${n.ech_public_names.join(",")}`);
    }
    return undefined;
  };
  await eventually(() => w.responses.length >= 1, "the snapshot");
  await observe(f.address, [observation(POD, "shop.example", ["198.18.9.1"])], 1);
  await eventually(() => echOn("198.18.9.1")?.[0] === "shop.example:", "the A answer");
  const https = observation(POD, "shop.example", [], 300, { query_type: 65, ech_public_names: ["front.example"], ech_ttl_seconds: 300 });
  const ack = await observe(f.address, [https], 2);
  assert.equal(ack.accepted_observations, 1);
  await eventually(() => echOn("198.18.9.1")?.[0] === "shop.example:front.example", "the delta carrying the public name");
});
