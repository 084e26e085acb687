// Workloads from pod labels: pods of one namespace with the same stable labels behave alike and get
// one policy. Labels that differ per pod or per rollout (pod-template-hash, …) are never used, and
// neither is the pod name.
import type { LabelSelector, LabelSelectorRequirement } from "../policy/index.js";

/** Labels set per pod or per revision by controllers: never part of a workload's identity. */
export const VOLATILE_LABELS = new Set([
  "pod-template-hash", "controller-revision-hash", "pod-template-generation",
  "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index",
  "controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name",
  "batch.kubernetes.io/job-completion-index", "security.istio.io/tlsMode", "service.istio.io/canonical-revision",
]);

export function stableLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([k]) => !VOLATILE_LABELS.has(k)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface Workload {
  namespace: string;
  labels: Record<string, string>;
  /** "ns/name" of its pods (for comments). */
  pods: Set<string>;
  key: string;
}

export function workloadKey(namespace: string, labels: Record<string, string>): string {
  return `${namespace}/${JSON.stringify(stableLabels(labels))}`;
}

/**
 * The selector of a workload that selects none of the other workloads of its namespace: its stable
 * labels, plus DoesNotExist for label keys other workloads have and it lacks (so {app: web} does
 * not also select {app: web, track: canary}).
 */
export function workloadSelector(w: Workload, all: Workload[]): LabelSelector {
  const own = Object.keys(w.labels);
  const missing = new Set<string>();
  for (const o of all) {
    if (o === w || o.namespace !== w.namespace) continue;
    const selectsOther = own.every((k) => o.labels[k] === w.labels[k]);
    if (selectsOther) for (const k of Object.keys(o.labels)) if (!(k in w.labels)) missing.add(k);
  }
  const exprs: LabelSelectorRequirement[] = [...missing].sort().map((key) => ({ key, operator: "DoesNotExist" }));
  return { ...(own.length ? { matchLabels: w.labels } : {}), ...(exprs.length ? { matchExpressions: exprs } : {}) };
}

/** A policy name from the workload's most telling labels. */
export function workloadName(w: Workload): string {
  const l = w.labels;
  const main = l["app.kubernetes.io/name"] ?? l.app ?? l["k8s-app"] ?? l.name ?? Object.values(l).join("-");
  const extra = ["app.kubernetes.io/component", "component", "tier", "track", "version"].map((k) => l[k]).filter((v): v is string => !!v && v !== main);
  return [main || "all-pods", ...extra].join("-");
}
