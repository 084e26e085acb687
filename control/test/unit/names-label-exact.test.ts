// Names stay label-exact (issue #14): a wire label holding '.' or '\' is written with a backslash in
// presentation form (`allowed\.one.example` is the two labels [allowed.one][example]), and must never
// match a pattern's separator. Paired: control's resolution store refuses such names as evidence,
// and the policy engine (egret.wasm, as the filter and `egret explain` run it) never matches them —
// each with a benign twin of ordinary labels that still matches. The filter side through a declared
// proxy: control/test/host/egress-claims.test.ts "names stay label-exact…".
import { test } from "node:test";
import assert from "node:assert/strict";
import { ResolutionStore } from "../../src/control/store.js";
import { ipToBytes } from "../../src/proto/ip.js";
import { compilePodSnapshot, PolicyEngine, validatePolicyObject } from "../../src/policy/index.js";

const POD = { namespace: "shop", name: "web-1", labels: { app: "web" } };

/** [name, matched by one of *.one.example / **.many.example / exact.example]. */
const NAMES: [string, boolean][] = [
  ["allowed\\.one.example", false], // [allowed.one][example]: under "example", not "one.example"
  ["x.allowed\\046one.example", false], // \046 is '.' too
  ["a\\\\.one.example", false], // a label holding '\'
  ["a\\.b.many.example", false],
  ["a..b.many.example", false], // an empty label
  ["a b.one.example", false],
  ["exact\\.example", false],
  ["allowed.one.example", true],
  ["ALLOWED.one.example.", true],
  ["a.b.many.example", true],
  ["exact.example", true],
];

test("names stay label-exact in the policy engine: an escaped or empty label never matches a wildcard's separator", () => {
  const r = validatePolicyObject({ apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "p", namespace: "shop" },
    spec: { podSelector: {}, rules: [{ action: "Allow", to: { domains: ["*.one.example", "**.many.example", "exact.example"] } }] } });
  const engine = new PolicyEngine();
  engine.load(compilePodSnapshot([r.policy!], POD, {}).bytes);
  for (const [name, matched] of NAMES) {
    const got = engine.evaluate({ ip: "203.0.113.9", port: 443, names: [name], protocol: "tls" });
    assert.equal(got.verdict, matched ? "allow" : "deny", `${name}: ${got.verdict}/${got.reason}`);
  }
});

test("names stay label-exact in control: the store takes no escaped name as evidence (question or CNAME); the twin is stored", () => {
  const store = new ResolutionStore({ now: () => 1_000_000 });
  const record = (queryName: string, cnameChain: string[] = []) =>
    store.record(ipToBytes("198.18.0.7"), { queryName, cnameChain, answers: [{ ip: ipToBytes("198.18.5.10"), ttlSeconds: 60 }], observedUnixMs: 1_000_000 });
  for (const [name, matched] of NAMES.filter(([n]) => n.includes("\\"))) {
    assert.equal(matched, false);
    assert.equal(record(name), "invalid-name", name);
    assert.equal(record("plain.example", [name]), "invalid-name", `CNAME ${name}`);
  }
  assert.equal(record("allowed.one.example"), "stored");
  assert.deepEqual(store.get("198.18.0.7", ipToBytes("198.18.5.10"))!.names.map((n) => n.name), ["allowed.one.example"]);
});
