// The companion NetworkPolicy (`egret manifests --companion-network-policy`): for each namespace
// under Egret, a Kubernetes NetworkPolicy that closes what the platform can close and the sidecar
// cannot see — UDP egress (QUIC / HTTP/3, DNS to other resolvers, any UDP tunnel) — except DNS to
// the cluster's resolver. TCP stays open to every destination: Egret's filter judges it.
//
// What it cannot close (docs/operations.md "Coverage and bypass reports"): TCP that skips the
// sidecar (a process running as the proxy's UID, ports or ranges excluded by annotation) — a
// NetworkPolicy cannot tell the sidecar's connections from the app's; and it needs a CNI that
// enforces NetworkPolicy egress (Calico, Cilium, Antrea, …; not flannel alone, not kindnet before
// its network-policy support). Egret's agent still reports every bypass, enforced or not.
import type { KubeObject } from "../objects.js";
import { labels } from "./settings.js";

export const COMPANION_POLICY_NAME = "egret-companion-deny-udp";

export interface CompanionOptions {
  /** Namespaces under Egret (one NetworkPolicy each). */
  namespaces: string[];
  /** Cluster DNS addresses as pods see them (the kube-dns Service IP, NodeLocal DNSCache's address). */
  trustedResolvers: string[];
  /** Where the cluster DNS pods run and their labels: most CNIs judge a Service's traffic after DNAT, by the backend pod. */
  dnsNamespace: string;
  dnsPodLabels: Record<string, string>;
}

export const COMPANION_HEADER = `Companion NetworkPolicy for namespaces under Egret (egret manifests --companion-network-policy).
Denies UDP egress except DNS (UDP and TCP 53) to the cluster's resolver; every TCP destination stays
open, for Egret's filter to judge. Needs a CNI that enforces NetworkPolicy egress. It does not
close TCP that skips the sidecar (a process running as the proxy's UID 1337, ports or ranges
excluded by traffic.sidecar.istio.io annotations): Egret's agent reports those as bypasses.
Other protocols (SCTP, and ICMP where the CNI applies policy to it) are denied too.`;

function hostCidr(ip: string): string {
  return ip.includes("/") ? ip : ip.includes(":") ? `${ip}/128` : `${ip}/32`;
}

/** One NetworkPolicy per namespace. */
export function companionNetworkPolicies(o: CompanionOptions): KubeObject[] {
  const dnsPorts = [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }];
  const dnsPeers = [
    { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": o.dnsNamespace } }, podSelector: { matchLabels: { ...o.dnsPodLabels } } },
    ...o.trustedResolvers.map((ip) => ({ ipBlock: { cidr: hostCidr(ip) } })),
  ];
  return [...new Set(o.namespaces)].map((namespace) => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: COMPANION_POLICY_NAME, namespace, labels: labels("companion") },
    spec: {
      podSelector: {},
      policyTypes: ["Egress"],
      egress: [
        // All TCP, to anywhere: Egret's filter in the sidecar judges it.
        { ports: [{ protocol: "TCP" }] },
        // DNS only to the cluster resolver: the answers the agent trusts.
        { to: dnsPeers, ports: dnsPorts },
      ],
    },
  }));
}
