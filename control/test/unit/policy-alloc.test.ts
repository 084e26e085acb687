// The engine evaluates a connection against 100 rules and 1,000 candidate names without
// allocating: counted exactly with the runtime's allocation hooks in the policy_alloc harness
// (filter/test/policy_alloc.ts, same engine sources), and checked on the release egret.wasm
// through its heap probe and memory size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compilePodSnapshot, PolicyEngine, validatePolicyObject, parseAddress, type Policy } from "../../src/policy/index.js";

const HARNESS = fileURLToPath(new URL("../../../../filter/build/test/policy_alloc.wasm", import.meta.url));
const POD = { namespace: "shop", name: "web-1", labels: { app: "web" } };
const RULES = 100;
const CANDIDATES = 1000;
/** filter/assembly/policy/engine.ts CANDIDATE_SIZE: u32 namePtr, u32 nameLen, i32 staleSeconds, u32 flags. */
const CANDIDATE_SIZE = 16;
const EVALUATIONS = 10_000;

/** 100 rules over 4 policies, each rule with domains, ports and (every third) protocols and CIDRs. */
function bigPolicies(): Policy[] {
  const policies: Policy[] = [];
  for (let p = 0; p < 4; p++) {
    const rules = [];
    for (let r = 0; r < RULES / 4; r++) {
      const n = p * 25 + r;
      const last = n === RULES - 1;
      rules.push({
        action: last ? "Allow" : n % 2 ? "Deny" : "Alert",
        to: {
          domains: [`svc-${n}.example.com`, `*.zone-${n}.example.net`, `**.deep-${n}.example.org`, ...(last ? ["**.target.example.org"] : [])],
          ...(n % 3 === 0 && !last ? { cidrs: [{ cidr: "0.0.0.0/0", except: [`10.${n}.0.0/16`] }] } : {}),
        },
        ports: [{ port: 443 }, { port: 8000, endPort: 8100 }],
        ...(n % 3 === 1 ? { protocols: ["tls", "http2"] } : {}),
      });
    }
    const obj = { apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: `p${p}`, namespace: "shop" }, spec: { podSelector: {}, priority: p, rules } };
    const r = validatePolicyObject(obj);
    assert.deepEqual(r.diagnostics.filter((d) => d.severity === "error"), []);
    policies.push(r.policy!);
  }
  return policies;
}

/** 1,000 names that no rule matches, then (optionally) one that only the last rule matches. */
function candidateNames(withMatch: boolean): string[] {
  const names = Array.from({ length: CANDIDATES - 1 }, (_, i) => `host-${i}.unrelated-${i % 17}.example.org`);
  names.push(withMatch ? "a.b.target.example.org" : "host-last.unrelated.example.org");
  return names;
}

interface Harness { exports: Record<string, (...a: never[]) => unknown>; memory: WebAssembly.Memory; allocations: () => number }

function loadHarness(): Harness {
  const mod = new WebAssembly.Module(readFileSync(HARNESS));
  let allocations = 0;
  const imports: Record<string, Record<string, (...a: number[]) => number | void>> = {
    rtrace: { oninit: () => {}, onalloc: () => { allocations++; }, onfree: () => {}, onresize: () => { allocations++; }, onmove: () => { allocations++; },
      onvisit: () => 1, oncollect: () => {}, oninterrupt: () => {}, onyield: () => {}, onstore: (ptr) => ptr, onload: (ptr) => ptr },
    env: { proxy_log: () => 0 }, wasi_snapshot_preview1: { random_get: () => 0 },
  };
  for (const imp of WebAssembly.Module.imports(mod)) {
    assert.ok(imports[imp.module]?.[imp.name], `harness import ${imp.module}.${imp.name} not provided`);
  }
  const inst = new WebAssembly.Instance(mod, imports as WebAssembly.Imports);
  const exports = inst.exports as Record<string, (...a: never[]) => unknown>;
  if (typeof exports._start === "function") (exports._start as () => void)();
  return { exports, memory: inst.exports.memory as WebAssembly.Memory, allocations: () => allocations };
}

/** Writes candidate entries + names at `base`; returns the claim's address after them. */
function writeCandidates(mem: Uint8Array, base: number, names: string[]): number {
  const view = new DataView(mem.buffer);
  let cursor = base + names.length * CANDIDATE_SIZE;
  names.forEach((n, i) => {
    const b = Buffer.from(n, "latin1");
    const at = base + i * CANDIDATE_SIZE;
    mem.set(b, cursor);
    view.setUint32(at, cursor, true);
    view.setUint32(at + 4, b.length, true);
    view.setInt32(at + 8, 0, true);
    view.setUint32(at + 12, 0, true);
    cursor += b.length;
  });
  return cursor;
}

test("evaluate() makes no allocation over 10,000 evaluations of 100 rules × 1,000 names (rtrace count)", () => {
  const snapshot = compilePodSnapshot(bigPolicies(), POD, {});
  const h = loadHarness();
  const input = h.exports.input_area as (n: number) => number;
  const load = h.exports.load as (p: number, n: number) => number;
  const many = h.exports.evaluate_many as (...a: (number | bigint)[]) => number;
  const lastRule = h.exports.last_rule as () => number;

  const before = h.allocations();
  let ptr = input(snapshot.bytes.length);
  new Uint8Array(h.memory.buffer).set(snapshot.bytes, ptr);
  assert.equal(load(ptr, snapshot.bytes.length), 1, "harness accepts the snapshot");
  assert.ok(h.allocations() > before, "the counter sees allocations (decode allocates)");

  const addr = parseAddress("203.0.113.77")!.address;
  const hi = addr >> 64n, lo = addr & 0xffffffffffffffffn;
  for (const withMatch of [false, true]) {
    const names = candidateNames(withMatch);
    const size = names.length * CANDIDATE_SIZE + names.reduce((n, s) => n + s.length, 0) + 64;
    ptr = input(size);
    const claimPtr = writeCandidates(new Uint8Array(h.memory.buffer), ptr, names);
    new Uint8Array(h.memory.buffer).set(Buffer.from("a.b.target.example.org"), claimPtr);
    const tlsId = new PolicyEngine().protocolId("tls");
    const memoryBefore = h.memory.buffer.byteLength;
    const allocsBefore = h.allocations();
    // 4 × 2,500 = 10,000 evaluations in this debug build (every store is reported to JS: slow).
    const noClaim = many(EVALUATIONS / 4, hi, lo, 443, ptr, names.length, tlsId, 0, 0, 0);
    const withClaim = many(EVALUATIONS / 4, hi, lo, 8080, ptr, names.length, tlsId, 1, claimPtr, 22);
    assert.equal(h.allocations() - allocsBefore, 0, "allocations during evaluation");
    assert.equal(h.memory.buffer.byteLength, memoryBefore, "memory did not grow");
    if (withMatch) {
      assert.equal(noClaim, (1 << 8) | 1, "allow/allowed by the last rule");
      assert.equal(lastRule(), RULES - 1);
      assert.equal(withClaim, (1 << 8) | 1);
    } else {
      assert.equal(noClaim, (2 << 8) | 4, "deny/default-deny after walking every rule");
      assert.equal(withClaim, (2 << 8) | 6, "deny/sni-unverified: the claim is not among the names");
    }
  }
});

test("the release egret.wasm engine leaves its heap untouched across 10,000 evaluations", () => {
  const snapshot = compilePodSnapshot(bigPolicies(), POD, {});
  const engine = new PolicyEngine();
  engine.load(snapshot.bytes);
  const run = engine.prepare({ ip: "2001:db8::77", port: 443, names: candidateNames(true), protocol: "tls" });
  run(); // first call: nothing lazy may remain
  const probe = engine.heapProbe();
  const memoryBefore = engine.tools.memory.buffer.byteLength;
  for (let i = 0; i < EVALUATIONS; i++) run();
  assert.equal(engine.heapProbe(), probe, "the allocator hands out the same block: nothing was allocated");
  assert.equal(engine.tools.memory.buffer.byteLength, memoryBefore);
  const r = engine.evaluate({ ip: "2001:db8::77", port: 443, names: candidateNames(true), protocol: "tls" });
  assert.equal(r.verdict, "allow");
  // The in-wasm loop used by benchmarks gives the same verdict, and allocates nothing either.
  // (The first round sizes the tool's input area; only the second round is measured.)
  for (const round of [0, 1]) {
    const probeBefore = engine.heapProbe();
    assert.deepEqual(engine.repeat({ ip: "2001:db8::77", port: 443, names: candidateNames(true), protocol: "tls" }, 1000), { verdict: "allow", reason: "allowed" });
    assert.deepEqual(engine.repeat({ ip: "2001:db8::77", port: 443, names: candidateNames(false), protocol: "tls" }, 1000), { verdict: "deny", reason: "default-deny" });
    if (round === 1) assert.equal(engine.heapProbe(), probeBefore);
  }
  assert.equal(engine.ruleLabel(r.rule), "#24");
  assert.equal(engine.policyRef(r.policy), "shop/p3");
});
