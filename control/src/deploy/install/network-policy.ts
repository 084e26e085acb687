// NetworkPolicy for control's namespace: nothing reaches a pod in egret-system except control's two
// ports. The agent runs with hostNetwork, so no NetworkPolicy applies to it (it listens only on the
// node's address, for metrics).
import type { KubeObject } from "../objects.js";
import { GRPC_PORT, GRPC_TLS_PORT, HTTP_PORT, labels, NAMESPACE, selectorLabels } from "./settings.js";

export const NETWORK_POLICY_HEADER = `Ingress to the egret-system namespace: deny everything, then admit control's ports.
- gRPC ${GRPC_TLS_PORT} (TLS) and ${GRPC_PORT} (plaintext, FilterService only): every pod's sidecar filter (any
  namespace) and the agents (host network, node addresses), so it is open to any source; what
  protects it is authentication and binding (docs/security.md).
- HTTP ${HTTP_PORT}: istio-agent in every pod downloads the module; Prometheus and the kubelet's probes.
No other port of any pod in the namespace is reachable. Egress is not restricted (control needs the
Kubernetes API, whose address differs per cluster).`;

export function networkPolicyObjects(): KubeObject[] {
  const anywhere = [{ ipBlock: { cidr: "0.0.0.0/0" } }, { ipBlock: { cidr: "::/0" } }];
  return [
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "default-deny-ingress", namespace: NAMESPACE, labels: labels() },
      spec: { podSelector: {}, policyTypes: ["Ingress"] },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "egret-control-ingress", namespace: NAMESPACE, labels: labels("control") },
      spec: {
        podSelector: { matchLabels: selectorLabels("control") },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: anywhere,
            ports: [
              { protocol: "TCP", port: GRPC_PORT },
              { protocol: "TCP", port: GRPC_TLS_PORT },
              { protocol: "TCP", port: HTTP_PORT },
            ],
          },
        ],
      },
    },
  ];
}
