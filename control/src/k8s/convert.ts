// Kubernetes objects → the control service's records.
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import type { PodRecord } from "../control/pods.js";

/**
 * The pod as egret sees it, or undefined when it has no IP of its own that could send traffic:
 * host-network pods share the node's IP (attributing DNS by that IP would mix pods), and pods
 * that finished (Succeeded/Failed) have released their IPs.
 */
export function podRecordOf(pod: V1Pod): PodRecord | undefined {
  const name = pod.metadata?.name;
  const namespace = pod.metadata?.namespace;
  if (!name || !namespace) return undefined;
  if (pod.spec?.hostNetwork) return undefined;
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return undefined;
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => !!ip);
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  const node = pod.spec?.nodeName ? { node: pod.spec.nodeName } : {};
  return { namespace, name, labels: { ...(pod.metadata?.labels ?? {}) }, ips, uid: pod.metadata?.uid, ...node };
}

export function namespaceLabelsOf(ns: V1Namespace): Record<string, string> {
  const labels = { ...(ns.metadata?.labels ?? {}) };
  // Kubernetes sets this on every namespace (1.21+); set it here too so selectors can rely on it.
  if (ns.metadata?.name) labels["kubernetes.io/metadata.name"] ??= ns.metadata.name;
  return labels;
}
