// `egret manifests --companion-network-policy` (control/src/deploy/install/companion.ts): the
// NetworkPolicy it renders, judged by a small evaluator of NetworkPolicy egress semantics
// (allow-only; a selected pod may send what some rule's peers and ports allow). Attacks: QUIC on
// UDP 443, DNS to another resolver, any UDP tunnel — denied; twins: DNS to the cluster resolver
// and TCP anywhere — allowed. And what it cannot close: TCP that skips the sidecar stays allowed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { companionNetworkPolicies, COMPANION_POLICY_NAME } from "../../src/deploy/install/companion.js";
import { CidrSet } from "../../src/dns/cidr.js";

const bin = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));

interface Peer { ipBlock?: { cidr: string }; namespaceSelector?: { matchLabels: Record<string, string> }; podSelector?: { matchLabels: Record<string, string> } }
interface Rule { to?: Peer[]; ports?: { protocol: string; port?: number }[] }
interface NetPol { metadata: { name: string; namespace: string }; spec: { podSelector: object; policyTypes: string[]; egress: Rule[] } }
interface Destination { ip: string; protocol: "TCP" | "UDP"; port: number; pod?: { namespace: string; labels: Record<string, string> } }

/** NetworkPolicy egress: allowed when some rule's peers (absent = all) and ports (absent = all) match. */
function allows(policy: NetPol, d: Destination): boolean {
  const labelsMatch = (want: Record<string, string>, have: Record<string, string>) => Object.entries(want).every(([k, v]) => have[k] === v);
  const peerMatches = (p: Peer) => {
    if (p.ipBlock) return new CidrSet([p.ipBlock.cidr], "test").has(d.ip);
    if (!d.pod) return false;
    const nsLabels = { "kubernetes.io/metadata.name": d.pod.namespace };
    return (!p.namespaceSelector || labelsMatch(p.namespaceSelector.matchLabels, nsLabels)) && (!p.podSelector || labelsMatch(p.podSelector.matchLabels, d.pod.labels));
  };
  return policy.spec.egress.some((r) =>
    (!r.to || r.to.some(peerMatches)) && (!r.ports || r.ports.some((p) => p.protocol === d.protocol && (p.port === undefined || p.port === d.port))));
}

const KUBE_DNS_POD = { namespace: "kube-system", labels: { "k8s-app": "kube-dns" } };

test("companion NetworkPolicy: UDP egress denied except DNS to the cluster resolver; all TCP allowed (and what it cannot close)", () => {
  const [p] = companionNetworkPolicies({ namespaces: ["shop"], trustedResolvers: ["10.96.0.10"], dnsNamespace: "kube-system", dnsPodLabels: { "k8s-app": "kube-dns" } }) as unknown as NetPol[];
  assert.deepEqual([p.metadata.name, p.metadata.namespace, p.spec.policyTypes], [COMPANION_POLICY_NAME, "shop", ["Egress"]]);
  assert.deepEqual(p.spec.podSelector, {}, "every pod of the namespace");
  // Attacks: denied.
  assert.equal(allows(p, { ip: "198.51.100.7", protocol: "UDP", port: 443 }), false, "QUIC / HTTP/3");
  assert.equal(allows(p, { ip: "8.8.8.8", protocol: "UDP", port: 53 }), false, "DNS to another resolver");
  assert.equal(allows(p, { ip: "10.244.3.9", protocol: "UDP", port: 53, pod: { namespace: "shop", labels: { app: "my-resolver" } } }), false, "DNS to a resolver pod of the tenant's own");
  assert.equal(allows(p, { ip: "198.51.100.7", protocol: "UDP", port: 4789 }), false, "a UDP tunnel");
  // Twins: allowed.
  assert.equal(allows(p, { ip: "10.96.0.10", protocol: "UDP", port: 53 }), true, "DNS to the kube-dns Service IP");
  assert.equal(allows(p, { ip: "10.244.0.5", protocol: "UDP", port: 53, pod: KUBE_DNS_POD }), true, "DNS to a kube-dns pod (after DNAT)");
  assert.equal(allows(p, { ip: "10.244.0.5", protocol: "TCP", port: 53, pod: KUBE_DNS_POD }), true, "DNS over TCP");
  assert.equal(allows(p, { ip: "198.51.100.7", protocol: "TCP", port: 443 }), true, "TCP is Egret's filter's to judge");
  // What it cannot close: a TCP bypass (proxy UID, excluded port) looks like any TCP.
  assert.equal(allows(p, { ip: "198.51.100.7", protocol: "TCP", port: 5432 }), true);
});

test("companion NetworkPolicy: one per namespace, through egret manifests; clear errors", () => {
  const r = spawnSync(process.execPath, [bin, "manifests", "--companion-network-policy", "--namespace", "shop", "--namespace", "lab", "--trusted-resolver", "10.96.0.10", "--trusted-resolver", "169.254.20.10"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as NetPol);
  assert.deepEqual(docs.map((d) => `${d.metadata.namespace}/${d.metadata.name}`), [`shop/${COMPANION_POLICY_NAME}`, `lab/${COMPANION_POLICY_NAME}`]);
  assert.equal(allows(docs[1]!, { ip: "169.254.20.10", protocol: "UDP", port: 53 }), true, "NodeLocal DNSCache");
  assert.match(r.stdout, /^# Companion NetworkPolicy/);
  assert.match(r.stdout, /does not\n# close TCP that skips the sidecar/);
  const none = spawnSync(process.execPath, [bin, "manifests", "--companion-network-policy"], { encoding: "utf8" });
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /needs --namespace NS/);
  const bad = spawnSync(process.execPath, [bin, "manifests", "--companion-network-policy", "--namespace", "Shop!"], { encoding: "utf8" });
  assert.match(bad.stderr, /--namespace must be a namespace name/);
  const stray = spawnSync(process.execPath, [bin, "manifests", "--namespace", "shop"], { encoding: "utf8" });
  assert.match(stray.stderr, /--namespace is for --companion-network-policy/);
});
