// Kubernetes objects → the control service's records.
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import { outboundExclusions, type PodRecord } from "../control/pods.js";

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
  return { namespace, name, labels: { ...(pod.metadata?.labels ?? {}) }, ips, uid: pod.metadata?.uid, ...node, sidecar: hasIstioSidecar(pod), ...outboundExclusions(pod.metadata?.annotations) };
}

/** Istio's injected proxy container: a regular container, or a native sidecar (restartable init container). */
export const ISTIO_PROXY_CONTAINER = "istio-proxy";
/** Istio's injector records what it injected here. */
export const ISTIO_SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status";

/**
 * Whether the pod runs an Istio sidecar: an `istio-proxy` container (regular, or a native sidecar
 * among the init containers), or the injector's status annotation.
 */
export function hasIstioSidecar(pod: V1Pod): boolean {
  const named = (list: { name?: string }[] | undefined) => (list ?? []).some((c) => c.name === ISTIO_PROXY_CONTAINER);
  return named(pod.spec?.containers) || named(pod.spec?.initContainers) || pod.metadata?.annotations?.[ISTIO_SIDECAR_STATUS_ANNOTATION] !== undefined;
}

export function namespaceLabelsOf(ns: V1Namespace): Record<string, string> {
  const labels = { ...(ns.metadata?.labels ?? {}) };
  // Kubernetes sets this on every namespace (1.21+); set it here too so selectors can rely on it.
  if (ns.metadata?.name) labels["kubernetes.io/metadata.name"] ??= ns.metadata.name;
  return labels;
}
