// Which policies select a pod, and in which order they are evaluated (design.md "Policy").
import type { LabelSelector, Policy, PodIdentity } from "./types.js";

/** Kubernetes label-selector semantics; an empty selector ({}) matches everything. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case "In": if (!has || !(e.values ?? []).includes(value!)) return false; break;
      case "NotIn": if (has && (e.values ?? []).includes(value!)) return false; break;
      case "Exists": if (!has) return false; break;
      case "DoesNotExist": if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

/**
 * Whether `policy` selects `pod`. EgressPolicy: same namespace and podSelector. ClusterEgressPolicy:
 * namespaceSelector over the namespace's labels (kubernetes.io/metadata.name is always present, as
 * the API server sets it) and podSelector; an absent selector matches all.
 */
export function policySelectsPod(policy: Policy, pod: PodIdentity, namespaceLabels: Record<string, string>): boolean {
  if (policy.kind === "EgressPolicy") {
    return policy.namespace === pod.namespace && selectorMatches(policy.podSelector ?? {}, pod.labels);
  }
  const nsLabels = { ...namespaceLabels, "kubernetes.io/metadata.name": pod.namespace };
  if (policy.namespaceSelector && !selectorMatches(policy.namespaceSelector, nsLabels)) return false;
  if (policy.podSelector && !selectorMatches(policy.podSelector, pod.labels)) return false;
  return true;
}

const TIER_ORDER = { Admin: 0, Namespace: 1, Baseline: 2 } as const;

/** Evaluation order: Admin cluster policies, namespaced policies, Baseline; then priority, then ref. */
export function comparePolicies(a: Policy, b: Policy): number {
  return TIER_ORDER[a.tier] - TIER_ORDER[b.tier] || a.priority - b.priority || (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0);
}

export function orderPolicies(policies: readonly Policy[]): Policy[] {
  return [...policies].sort(comparePolicies);
}
