// Tests of the filter's plugin configuration parser (filter/assembly/egress/config.ts, json.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadHarness } from "./egress-harness.js";

const h = loadHarness("egress_config");
const io = h.exports.ioPtr() as number;
const out = h.exports.outPtr() as number;

function parse(text: string): { ok: boolean; error: string } {
  const b = Buffer.from(text);
  h.write(io, b);
  const ok = h.exports.parse(b.length) === 1;
  return { ok, error: Buffer.from(h.read(out, h.exports.error())).toString() };
}
const field = (i: number) => h.exports.field(i) as number;
const CLUSTER = "outbound|9090||egret-control.egret-system.svc.cluster.local";

test("defaults: only controlCluster is required; authority derives from the Istio cluster name", () => {
  assert.equal(parse(JSON.stringify({ controlCluster: CLUSTER })).ok, true);
  assert.deepEqual([field(0), field(1), field(2), field(3), field(4), field(5), field(7), field(8)], [250, 2000, 16384, 0, 0, 50, 0, 5000]);
  assert.equal(Buffer.from(h.read(out, h.exports.authority())).toString(), "egret-control.egret-system.svc.cluster.local:9090");
});

test("every field is read, with JSON escapes, and the tick never exceeds the Lookup deadline", () => {
  const r = parse(`{
    "controlCluster": "${CLUSTER}", "controlAuthority": "ctl\\u002eexample:9090",
    "lookupTimeoutMs": 20, "detectTimeoutMs": 900, "maxInspectBytes": 4096, "startupWaitMs": 0,
    "failureMode": "OPEN", "forwardProxies": ["10.0.0.5:3128", "[2001:db8::5]:8080"],
    "reportBatchSize": 10, "reportIntervalMs": 100, "reportBufferBytes": 8192,
    "watchBackoffInitialMs": 100, "watchBackoffMaxMs": 1000, "maxResolutions": 1000,
    "resolutionNameBytes": 65536, "tickMs": 50, "logDecisions": true }`);
  assert.equal(r.ok, true, r.error);
  assert.deepEqual([field(0), field(1), field(2), field(3), field(4), field(5), field(6), field(7), field(8)], [20, 900, 4096, 1, 2, 20, 1000, 1, 0]);
  assert.equal(Buffer.from(h.read(out, h.exports.authority())).toString(), "ctl.example:9090");
  assert.equal(h.exports.isProxy(0n, 0xffff0a000005n, 3128), 1);
  assert.equal(h.exports.isProxy(0n, 0xffff0a000005n, 3129), 0);
  assert.equal(h.exports.isProxy(0x20010db800000000n, 5n, 8080), 1);
});

test("rejects each mistake with a message naming the field", () => {
  const base = { controlCluster: CLUSTER };
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["[]", /JSON object/],
    ["{\"controlCluster\": 5}", /controlCluster/],
    [JSON.stringify({ ...base, lookupTimeoutMs: 0 }), /"lookupTimeoutMs" must be an integer from 1 to 60000/],
    [JSON.stringify({ ...base, lookupTimeoutMs: 1.5 }), /lookupTimeoutMs/],
    [JSON.stringify({ ...base, detectTimeoutMs: "2s" }), /detectTimeoutMs/],
    [JSON.stringify({ ...base, maxInspectBytes: 10 }), /maxInspectBytes/],
    [JSON.stringify({ ...base, failureMode: "maybe" }), /failureMode.*"maybe"/],
    [JSON.stringify({ ...base, forwardProxies: "10.0.0.1:3128" }), /forwardProxies/],
    [JSON.stringify({ ...base, forwardProxies: ["10.0.0.1"] }), /forwardProxies\[0\]/],
    [JSON.stringify({ ...base, forwardProxies: ["10.0.0.1:0"] }), /forwardProxies\[0\]/],
    [JSON.stringify({ ...base, watchBackoffInitialMs: 5000, watchBackoffMaxMs: 1000 }), /watchBackoffMaxMs/],
    [JSON.stringify({ ...base, logDecisions: "yes" }), /logDecisions/],
    [JSON.stringify({ ...base, controlAuthority: "" }), /controlAuthority/],
    [JSON.stringify({ ...base, lookuptimeoutms: 5 }), /unknown field "lookuptimeoutms"/],
    ["{\"controlCluster\": \"a\", \"controlCluster\": \"b\"}", /duplicate key/],
    ["{\"controlCluster\": \"a\",}", /invalid JSON/],
    ["{\"controlCluster\": \"a\"} x", /invalid JSON.*after/],
  ];
  for (const [text, re] of cases) {
    const r = parse(text);
    assert.equal(r.ok, false, text);
    assert.match(r.error, /^egret configuration: /, text);
    assert.match(r.error, re, `${text} → ${r.error}`);
  }
});

test("never traps on arbitrary bytes or mutated configurations", () => {
  const good = JSON.stringify({ controlCluster: CLUSTER, forwardProxies: ["10.0.0.5:3128"], lookupTimeoutMs: 250 });
  fc.assert(fc.property(
    fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 4 }), fc.tuple(fc.nat(good.length - 1), fc.string({ minLength: 1, maxLength: 1 })).map(([i, c]) => good.slice(0, i) + c + good.slice(i + 1))),
    (text) => { parse(text.slice(0, 4000)); },
  ), { numRuns: 20_000 });
  assert.equal(parse(good).ok, true, "still works after the fuzzing");
});
