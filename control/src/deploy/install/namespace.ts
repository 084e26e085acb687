// The namespace Egret's own workloads run in, and the quota that admits critical pods there.
import type { KubeObject } from "../objects.js";
import { labels, NAMESPACE } from "./settings.js";

export const NAMESPACE_HEADER = `The namespace Egret's own workloads run in.
- No sidecar: the agent uses hostNetwork (never injected) and the control service must stay
  reachable by istio-agent's plain-HTTP module download and by hostNetwork agents.
- Pod Security "privileged" is required only by the agent DaemonSet (hostNetwork + NET_RAW);
  the control Deployment itself satisfies the "restricted" profile (checked by istio-tests/unit).
- The ResourceQuota lets control and agent use the system-*-critical priority classes outside
  kube-system: clusters that limit those classes (GKE, among others) admit such pods only in
  namespaces with a quota for them. The count is not meant to constrain anything.`;

export function namespaceObjects(): KubeObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: NAMESPACE,
        labels: {
          ...labels(),
          "istio-injection": "disabled",
          "pod-security.kubernetes.io/enforce": "privileged",
          "pod-security.kubernetes.io/warn": "baseline",
          "pod-security.kubernetes.io/audit": "baseline",
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "egret-critical-pods", namespace: NAMESPACE, labels: labels() },
      spec: {
        hard: { pods: "100000" },
        scopeSelector: {
          matchExpressions: [{ scopeName: "PriorityClass", operator: "In", values: ["system-node-critical", "system-cluster-critical"] }],
        },
      },
    },
  ];
}
