// The snapshot format at the boundary: the engine rejects corrupt bytes with a reason and never
// traps (fuzzed, with checksums recomputed so mutations reach the structural checks), and the
// protocol labels agree across the TS validator, the CRD schema and the compiled engine.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { compilePodSnapshot, crdSchema, encodeSnapshot, PolicyEngine, PROTOCOL_LABELS, SnapshotRejected, validatePolicyObject, type Policy } from "../../src/policy/index.js";
import { fnv1a32 } from "../../src/policy/compile.js";

const POD = { namespace: "shop", name: "web-1", labels: { app: "web" } };

function samplePolicies(): Policy[] {
  const obj = (name: string, spec: Record<string, unknown>) => validatePolicyObject({ apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name, namespace: "shop" }, spec: { podSelector: {}, ...spec } }).policy!;
  return [
    obj("a", { priority: 1, mode: "Monitor", unattributed: "Alert", rules: [
      { name: "db", action: "Allow", to: { domains: ["db.example.com", "*.pg.example.com"] }, ports: [{ port: 5432 }], protocols: ["postgresql"] },
      { action: "Deny", to: { cidrs: [{ cidr: "10.0.0.0/8", except: ["10.1.0.0/16", "10.2.0.0/16"] }, { cidr: "2001:db8::/32" }] } },
    ] }),
    obj("b", { priority: 2, resolutionGraceSeconds: 300, rules: [{ action: "Alert", to: { external: true, domains: ["**.example.org"] }, ports: [{ port: 8000, endPort: 9000 }], protocols: ["tls", "http2", "unknown"] }] }),
  ];
}

function withChecksum(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  new DataView(out.buffer).setUint32(12, fnv1a32(out, 16, out.length), true);
  return out;
}

test("a compiled snapshot loads and keeps its metadata", () => {
  const snap = compilePodSnapshot(samplePolicies(), POD, {});
  const engine = new PolicyEngine();
  engine.load(snap.bytes);
  assert.equal(snap.selected, true);
  assert.equal(snap.maxGraceSeconds, 300);
  assert.match(snap.hash, /^[0-9a-f]{64}$/);
  assert.equal(engine.policyRef(0), "shop/a");
  assert.equal(engine.ruleLabel(0), "db");
  assert.equal(engine.ruleLabel(1), "#1");
  assert.equal(engine.ruleLabel(2), "#0");
  assert.equal(engine.rulePolicy(2), 1);
});

test("corrupt snapshots are rejected with the reason", () => {
  const good = compilePodSnapshot(samplePolicies(), POD, {}).bytes;
  const engine = new PolicyEngine();
  const cases: [string, Uint8Array, number][] = [
    ["empty", new Uint8Array(0), 1],
    ["truncated header", good.slice(0, 20), 1],
    ["truncated body", good.slice(0, good.length - 1), 4],
    ["bad magic", withChecksum(Object.assign(new Uint8Array(good), { 0: 0x58 })), 2],
    ["future format", (() => { const b = new Uint8Array(good); b[4] = 2; return b; })(), 3],
    ["flipped bit", (() => { const b = new Uint8Array(good); b[b.length - 3]! ^= 1; return b; })(), 5],
    ["rule range outside its table", (() => { const b = new Uint8Array(good); const v = new DataView(b.buffer); const rules = 44 + v.getUint16(18, true) * 8 + v.getUint16(16, true) * 24; v.setUint32(rules + 16, 9999, true); return withChecksum(b); })(), 11],
    // A Pass rule (action 4) in a namespaced policy: only cluster tiers can be passed on from.
    ["pass in a namespaced policy", (() => { const b = new Uint8Array(good); const v = new DataView(b.buffer); const rules = 44 + v.getUint16(18, true) * 8 + v.getUint16(16, true) * 24; b[rules] = 4; return withChecksum(b); })(), 11],
    ["unknown protocol label", (() => { const b = new Uint8Array(good); const v = new DataView(b.buffer); const strings = b.length - v.getUint32(36, true); b[strings + v.getUint32(44, true)] = 0x7a; return withChecksum(b); })(), 9],
  ];
  for (const [name, bytes, code] of cases) {
    assert.throws(() => engine.load(bytes), (e: unknown) => e instanceof SnapshotRejected && e.code === code, name);
  }
  // The last good snapshot stays loaded after a rejection.
  engine.load(good);
  assert.throws(() => engine.load(good.slice(0, 10)), SnapshotRejected);
  assert.equal(engine.evaluate({ ip: "10.9.0.1", port: 1, names: [], protocol: "unknown" }).verdict, "would-deny");
});

test("fuzzed snapshots never trap the engine (checksums fixed so mutations reach every check)", () => {
  const good = compilePodSnapshot(samplePolicies(), POD, {}).bytes;
  const engine = new PolicyEngine();
  let accepted = 0;
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(good.length - 17), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.nat(good.length), fc.boolean(),
    (edits, cut, truncate) => {
      let b: Uint8Array = new Uint8Array(good);
      for (const [at, value] of edits) b[16 + at] = value;
      if (truncate) { b = b.slice(0, Math.max(44, cut)); new DataView(b.buffer).setUint32(8, b.length, true); }
      b = withChecksum(b);
      const code = engine.tryLoad(b);
      if (code === 0) {
        accepted++;
        for (const ip of ["10.1.2.3", "2001:db8::5", "203.0.113.9"]) {
          const r = engine.evaluate({ ip, port: 5432, names: ["db.example.com", "x.pg.example.com"], protocol: "postgresql", claim: { kind: "sni", name: "db.example.com" }, trace: true });
          assert.ok(["allow", "deny", "alert", "would-deny", "pending"].includes(r.verdict));
        }
      } else {
        assert.ok(code >= 1 && code <= 15, `code ${code}`);
      }
    }), { numRuns: 3000 });
  assert.ok(accepted > 0, "some mutations (e.g. inside strings or addresses) still decode");
});

test("an empty snapshot (pod selected by nothing) allows everything as not-selected", () => {
  const engine = new PolicyEngine();
  engine.load(encodeSnapshot([], false, []));
  const r = engine.evaluate({ ip: "203.0.113.1", port: 443, names: [] });
  assert.equal(r.verdict, "allow");
  assert.equal(r.reason, "not-selected");
});

test("protocol labels agree: validator list, CRD enums and the compiled engine", () => {
  const engine = new PolicyEngine();
  assert.deepEqual(engine.protocolLabels(), [...PROTOCOL_LABELS]);
  for (const kind of ["EgressPolicy", "ClusterEgressPolicy"] as const) {
    const schema = crdSchema(kind) as any;  
    const items = schema.properties.spec.properties.rules.items.properties.protocols.items;
    assert.deepEqual([...items.enum].sort(), [...PROTOCOL_LABELS].sort(), kind);
  }
  assert.equal(engine.protocolId("postgresql"), PROTOCOL_LABELS.indexOf("postgresql"));
  assert.equal(engine.protocolId("postgres"), -1);
});

test("a bad cluster CIDR is a clear error naming it", () => {
  assert.throws(() => compilePodSnapshot(samplePolicies(), POD, {}, { clusterCidrs: ["10.0.0.0/8", "10.0.0.1/33"] }), /cluster CIDR "10\.0\.0\.1\/33": .*invalid prefix length/);
});
