// Table-driven tests of the policy engine: control/test/fixtures/policy/cases.json, each case run
// through the compiled egret.wasm engine (the filter's own code) after validation and compilation.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compilePodSnapshot, PolicyEngine, validatePolicyObject, type Candidate, type Policy, type PodIdentity } from "../../src/policy/index.js";

interface Case {
  name: string; ip: string; port: number; names: (string | Candidate)[]; protocol?: string; sni?: string; host?: string;
  expect: { verdict?: string; reason?: string; policy?: string | null; rule?: string | null; matchedName?: string;
    dependsOnNames?: boolean; dependsOnProtocol?: boolean; dependsOnClaim?: boolean };
}
interface Suite {
  name: string; policies: unknown[]; pod?: PodIdentity; namespaceLabels?: Record<string, string>;
  clusterCidrs?: string[]; expectPolicies?: string[]; cases: Case[];
}

const CASES = fileURLToPath(new URL("../../../../control/test/fixtures/policy/cases.json", import.meta.url));
const suites = (JSON.parse(readFileSync(CASES, "utf8")) as { suites: Suite[] }).suites;
const DEFAULT_POD: PodIdentity = { namespace: "shop", name: "web-1", labels: { app: "web" } };

test("the case file covers every area the issue names", () => {
  const names = suites.map((s) => s.name).join(" | ");
  for (const area of ["domain patterns", "ordering", "shared IP", "monitor", "IPv6", "except"]) assert.match(names, new RegExp(area));
  assert.ok(suites.reduce((n, s) => n + s.cases.length, 0) >= 50);
});

for (const suite of suites) {
  describe(`engine cases: ${suite.name}`, () => {
    const policies: Policy[] = suite.policies.map((obj, i) => {
      const r = validatePolicyObject(obj, { file: `cases.json#${suite.name}[${i}]` });
      assert.deepEqual(r.diagnostics.filter((d) => d.severity === "error"), [], `policy ${i} of "${suite.name}" must be valid`);
      return r.policy!;
    });
    const snapshot = compilePodSnapshot(policies, suite.pod ?? DEFAULT_POD, suite.namespaceLabels ?? {}, suite.clusterCidrs ? { clusterCidrs: suite.clusterCidrs } : {});
    const engine = new PolicyEngine();
    engine.load(snapshot.bytes);

    if (suite.expectPolicies) {
      test("selects and orders the policies", () => assert.deepEqual(snapshot.policies, suite.expectPolicies));
    }
    for (const c of suite.cases) {
      test(c.name, () => {
        const claim = c.sni ? { kind: "sni" as const, name: c.sni } : c.host ? { kind: "host" as const, name: c.host } : undefined;
        const r = engine.evaluate({ ip: c.ip, port: c.port, names: c.names, ...(c.protocol ? { protocol: c.protocol } : {}), ...(claim ? { claim } : {}), trace: true });
        const got = {
          verdict: r.verdict, reason: r.reason,
          policy: r.policy >= 0 ? engine.policyRef(r.policy) : null,
          rule: r.rule >= 0 ? engine.ruleLabel(r.rule) : null,
          matchedName: r.matchedName, dependsOnNames: r.dependsOnNames, dependsOnProtocol: r.dependsOnProtocol, dependsOnClaim: r.dependsOnClaim,
        };
        const want = c.expect;
        const picked = Object.fromEntries(Object.keys(want).map((k) => [k, got[k as keyof typeof got]]));
        const trace = r.trace.map((t) => `${engine.policyRef(t.policy)} ${engine.ruleLabel(t.rule)}: ${t.outcomeText}`).join("\n  ");
        assert.deepEqual(picked, want, `trace:\n  ${trace}`);
        // The trace ends at the deciding rule when a rule decided.
        if (r.rule >= 0 && r.reason !== "protocol-mismatch" && !r.reason.endsWith("unverified") && r.trace.length > 0) {
          assert.equal(r.trace[r.trace.length - 1]!.rule, r.rule);
        }
      });
    }
  });
}
