// Kubernetes NetworkPolicy (networking.k8s.io/v1), egress part.
// Semantics (kubernetes.io/docs/concepts/services-networking/network-policies, and the API's
// NetworkPolicySpec): a pod selected by a policy whose policyTypes include Egress is isolated for
// egress; it may then open only what the union of all such policies' egress rules allows. A rule
// matches when the destination matches any `to` peer (absent/empty: any destination) and any
// `ports` entry (absent/empty: any port; protocol defaults to TCP; endPort makes a range).
// policyTypes defaults to [Ingress] plus Egress when spec.egress is present.
// Egret: one EgressPolicy per NetworkPolicy holding its allows (priority 900), and one per
// NetworkPolicy holding the isolation (Deny everything, priority 1000), so every allow of every
// NetworkPolicy selecting a pod is tried before any isolation deny — the union.
import {
  ALL_CIDRS, NAMED_PORT_INSTEAD, NAMED_PORT_WHY, PEER_PODS_INSTEAD, PEER_PODS_WHY, PortCollector, RuleList,
  UDP_INSTEAD, UDP_WHY, egretRef, isObj, labelSelector, list, metaOf, objectName, ruleName, sourceName, str,
  type EgretPolicyObject, type ImportOutput, type Obj, type ReportEntry, type SourceDoc,
} from "./model.js";

export const NP_ALLOW_PRIORITY = 900;
export const NP_ISOLATION_PRIORITY = 1000;

export function importNetworkPolicy(doc: SourceDoc): ImportOutput {
  const obj = doc.obj;
  const source = sourceName(obj);
  const entry = (e: Omit<ReportEntry, "source" | "file">): ReportEntry => ({ source, ...(doc.file ? { file: doc.file } : {}), ...e });
  const spec = isObj(obj.spec) ? obj.spec : {};
  const { name, namespace = "default" } = metaOf(obj);
  const types = Array.isArray(spec.policyTypes) ? spec.policyTypes.map(String) : ["Ingress", ...(spec.egress !== undefined ? ["Egress"] : [])];
  if (!types.includes("Egress")) {
    return { policies: [], report: [entry({ path: "spec", status: "exact", why: "no Egress in policyTypes: this NetworkPolicy does not restrict egress, so there is nothing to import", egret: [] })] };
  }
  const podSelector = labelSelector(spec.podSelector);
  const allow: EgretPolicyObject = {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy",
    metadata: { name: objectName("np", name), namespace },
    spec: { priority: NP_ALLOW_PRIORITY, podSelector, rules: [] },
  };
  const rules = new RuleList();
  const report: ReportEntry[] = [];
  list(spec.egress).forEach((raw, i) => {
    const rule = isObj(raw) ? raw : {};
    const path = `spec.egress[${i}]`;
    const ports = new PortCollector();
    for (const p of list(rule.ports).filter(isObj)) ports.add(str(p.protocol), p.port, p.endPort);
    const split = ports.result();
    for (const o of split.other) {
      report.push(entry({ path: `${path}.ports`, status: "not-expressible", why: `${o.text}: ${o.kind === "named" ? NAMED_PORT_WHY : UDP_WHY}`, instead: o.kind === "named" ? NAMED_PORT_INSTEAD : UDP_INSTEAD, egret: [] }));
    }
    if (split.noTcp) return; // only UDP/SCTP/named ports: nothing of it applies to TCP
    const portsField = split.tcp ? { ports: split.tcp } : {};
    const peers = list(rule.to).filter(isObj);
    if (peers.length === 0) {
      const r = rules.add({ name: ruleName("egress", i), action: "Allow", to: { cidrs: ALL_CIDRS }, ...portsField });
      report.push(entry({ path, status: "exact", why: "no `to`: any destination" + (split.tcp ? " on the listed TCP ports" : ""), egret: [egretRef(allow, r)] }));
      return;
    }
    peers.forEach((peer, j) => {
      const ppath = `${path}.to[${j}]`;
      if (isObj(peer.ipBlock)) {
        const cidr = str(peer.ipBlock.cidr) ?? "";
        const except = list(peer.ipBlock.except).map(String);
        const r = rules.add({ name: ruleName("egress", i, "to", j), action: "Allow", to: { cidrs: [{ cidr, ...(except.length ? { except } : {}) }] }, ...portsField });
        report.push(entry({ path: ppath, status: "exact", why: `ipBlock ${cidr}${except.length ? ` except ${except.join(", ")}` : ""}`, egret: [egretRef(allow, r)] }));
      } else {
        report.push(entry({ path: ppath, status: "not-expressible", why: PEER_PODS_WHY, instead: PEER_PODS_INSTEAD, egret: [] }));
      }
    });
  });
  allow.spec.rules = rules.rules;
  const isolation: EgretPolicyObject = {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy",
    metadata: { name: objectName("np", name, "isolation"), namespace },
    spec: { priority: NP_ISOLATION_PRIORITY, podSelector, rules: [{ name: "isolated", action: "Deny", to: { cidrs: ALL_CIDRS } }] },
  };
  report.push(entry({
    path: "spec.podSelector", status: "exact",
    why: "the selected pods are isolated for egress: what no NetworkPolicy allows is denied (written as a Deny-everything rule evaluated after every NetworkPolicy's allows, so Baseline policies never apply to them — as in Kubernetes)",
    egret: [egretRef(isolation, "isolated")],
  }));
  if (list(spec.egress).length === 0) report.push(entry({ path: "spec.egress", status: "exact", why: "no egress rules: the selected pods may open no connection", egret: [egretRef(isolation, "isolated")] }));
  return { policies: [...(allow.spec.rules.length ? [allow] : []), isolation], report };
}

export function isNetworkPolicy(obj: Obj): boolean {
  return obj.kind === "NetworkPolicy" && typeof obj.apiVersion === "string" && obj.apiVersion.startsWith("networking.k8s.io/");
}
