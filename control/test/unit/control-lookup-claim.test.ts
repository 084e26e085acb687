// Lookup with a claimed name (TLS SNI / HTTP Host the filter could not verify): the IP being known
// under other names does not answer it; the name's observation does, or the wait's end does (with
// what is known), so the filter never denies a claim control was about to learn.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LookupService } from "../../src/control/lookup.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import { PodRegistry } from "../../src/control/pods.js";
import { ResolutionStore } from "../../src/control/store.js";
import { ipToBytes } from "../../src/proto/index.js";

const POD = "198.18.1.10";
const DEST = "198.18.9.9";

function world() {
  const store = new ResolutionStore({});
  const registry = new PodRegistry();
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: {}, ips: [POD] });
  const lookups = new LookupService(store, registry, createControlMetrics());
  const observe = (name: string) =>
    store.record(ipToBytes(POD), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(DEST), ttlSeconds: 60 }], observedUnixMs: Date.now() });
  return { store, lookups, observe };
}

const names = (a: { resolution?: { names: { name: string }[] } }) => (a.resolution?.names ?? []).map((n) => n.name).sort();

test("a claimed name waits for its own observation even though the IP is already known", async () => {
  const { lookups, observe } = world();
  try {
    assert.equal(observe("a.example.com"), "stored");
    const pending = lookups.lookup(ipToBytes(POD), ipToBytes(DEST), 30_000, undefined, "B.Example.com.");
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "known under another name only: still waiting");
    assert.equal(lookups.pending, 1);
    assert.equal(observe("b.example.com"), "stored");
    const answer = await pending;
    assert.equal(answer.result, "LOOKUP_RESULT_FOUND");
    assert.deepEqual(names(answer), ["a.example.com", "b.example.com"]);
    assert.equal(lookups.pending, 0);
  } finally {
    lookups.close();
  }
});

test("a claimed name already known answers at once; one that never comes answers with the known names when the wait ends", async () => {
  const { lookups, observe } = world();
  try {
    observe("a.example.com");
    const now = await lookups.lookup(ipToBytes(POD), ipToBytes(DEST), 30_000, undefined, "a.example.com");
    assert.deepEqual([now.result, names(now)], ["LOOKUP_RESULT_FOUND", ["a.example.com"]]);
    const later = await lookups.lookup(ipToBytes(POD), ipToBytes(DEST), 20, undefined, "never.example.com");
    assert.deepEqual([later.result, names(later)], ["LOOKUP_RESULT_FOUND", ["a.example.com"]]);
    const unknownIp = await lookups.lookup(ipToBytes(POD), ipToBytes("198.18.9.10"), 20, undefined, "a.example.com");
    assert.equal(unknownIp.result, "LOOKUP_RESULT_NOT_FOUND");
  } finally {
    lookups.close();
  }
});
