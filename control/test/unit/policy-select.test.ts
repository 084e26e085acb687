// Selection: Kubernetes label-selector semantics, namespace selection, evaluation order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { orderPolicies, policySelectsPod, selectorMatches, validatePolicyObject, type Policy } from "../../src/policy/index.js";

function policy(kind: "EgressPolicy" | "ClusterEgressPolicy", name: string, spec: Record<string, unknown>, namespace?: string): Policy {
  const r = validatePolicyObject({ apiVersion: "egret.dev/v1alpha1", kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec: { rules: [], ...spec } });
  assert.deepEqual(r.diagnostics, []);
  return r.policy!;
}

test("label selectors: matchLabels and each matchExpressions operator", () => {
  const labels = { app: "web", tier: "front" };
  assert.equal(selectorMatches({}, labels), true);
  assert.equal(selectorMatches({ matchLabels: { app: "web" } }, labels), true);
  assert.equal(selectorMatches({ matchLabels: { app: "web", tier: "back" } }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "app", operator: "In", values: ["api", "web"] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "missing", operator: "NotIn", values: ["x"] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "tier", operator: "Exists" }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "tier", operator: "DoesNotExist" }] }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: "missing", operator: "In", values: ["x"] }] }, labels), false);
});

test("who selects a pod: namespaces, the implicit namespace-name label, absent selectors", () => {
  const pod = { namespace: "shop", name: "web-1", labels: { app: "web" } };
  assert.equal(policySelectsPod(policy("EgressPolicy", "a", { podSelector: {} }, "shop"), pod, {}), true);
  assert.equal(policySelectsPod(policy("EgressPolicy", "b", { podSelector: {} }, "other"), pod, {}), false);
  assert.equal(policySelectsPod(policy("ClusterEgressPolicy", "c", { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "shop" } } }), pod, {}), true);
  assert.equal(policySelectsPod(policy("ClusterEgressPolicy", "d", { namespaceSelector: { matchLabels: { env: "prod" } } }), pod, { env: "dev" }), false);
  assert.equal(policySelectsPod(policy("ClusterEgressPolicy", "e", { podSelector: { matchLabels: { app: "web" } } }), pod, {}), true);
  assert.equal(policySelectsPod(policy("ClusterEgressPolicy", "f", { namespaceSelector: {}, podSelector: { matchLabels: { app: "db" } } }), pod, {}), false);
});

test("evaluation order: Admin, namespaced, Baseline; then priority; then ref", () => {
  const ps = [
    policy("ClusterEgressPolicy", "base", { tier: "Baseline", priority: 0, namespaceSelector: {} }),
    policy("EgressPolicy", "b", { podSelector: {}, priority: 1 }, "shop"),
    policy("EgressPolicy", "a", { podSelector: {}, priority: 1 }, "shop"),
    policy("ClusterEgressPolicy", "admin-late", { priority: 900, namespaceSelector: {} }),
    policy("EgressPolicy", "first-ns", { podSelector: {}, priority: 0 }, "shop"),
    policy("ClusterEgressPolicy", "admin-early", { priority: 5, namespaceSelector: {} }),
  ];
  assert.deepEqual(orderPolicies(ps).map((p) => p.ref), ["admin-early", "admin-late", "shop/first-ns", "shop/a", "shop/b", "base"]);
});
