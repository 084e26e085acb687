// OpenShift egress firewalls: EgressNetworkPolicy (network.openshift.io/v1, OpenShift SDN) and
// EgressFirewall (k8s.ovn.org/v1, OVN-Kubernetes).
// Semantics (OpenShift docs "Configuring an egress firewall for a project"; ovn-kubernetes
// go-controller/pkg/crd/egressfirewall/v1/types.go): one object per namespace, applying to every pod
// of it; spec.egress rules are tried in order and the first match decides (Allow / Deny); traffic no
// rule matches is allowed; only traffic leaving the cluster is affected (pod-to-pod and services are
// not). `to` is exactly one of cidrSelector, dnsName (EgressFirewall: `*.` = exactly one label;
// EgressNetworkPolicy: exact names only) or nodeSelector; EgressFirewall rules may list ports
// (protocol TCP/UDP/SCTP; none = all ports).
// Egret: one EgressPolicy (podSelector {}) with the rules in the same order, each restricted to
// `external: true`, and a final Allow-everything rule (unmatched and in-cluster traffic is allowed).
import {
  ALL_CIDRS, NAMES_VERIFIED_WHY, PortCollector, RuleList, UDP_INSTEAD, UDP_WHY, egretRef, isObj, list, metaOf,
  objectName, ruleName, sourceName, str, type EgretPolicyObject, type ImportOutput, type Obj, type ReportEntry,
  type SourceDoc,
} from "./model.js";

export function isOpenShiftFirewall(obj: Obj): boolean {
  return (obj.kind === "EgressNetworkPolicy" && String(obj.apiVersion).startsWith("network.openshift.io/"))
    || (obj.kind === "EgressFirewall" && String(obj.apiVersion).startsWith("k8s.ovn.org/"));
}

export function importOpenShift(doc: SourceDoc): ImportOutput {
  const obj = doc.obj;
  const source = sourceName(obj);
  const entry = (e: Omit<ReportEntry, "source" | "file">): ReportEntry => ({ source, ...(doc.file ? { file: doc.file } : {}), ...e });
  const spec = isObj(obj.spec) ? obj.spec : {};
  const { name, namespace = "default" } = metaOf(obj);
  const ovn = obj.kind === "EgressFirewall";
  const policy: EgretPolicyObject = {
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy",
    metadata: { name: objectName(ovn ? "egressfirewall" : "egressnetworkpolicy", name), namespace },
    spec: { podSelector: {}, rules: [] },
  };
  const rules = new RuleList();
  const report: ReportEntry[] = [];
  list(spec.egress).forEach((raw, i) => {
    const rule = isObj(raw) ? raw : {};
    const path = `spec.egress[${i}]`;
    const action = rule.type === "Deny" ? "Deny" : "Allow";
    const to = isObj(rule.to) ? rule.to : {};
    const ports = new PortCollector();
    for (const p of list(rule.ports).filter(isObj)) ports.add(str(p.protocol), p.port);
    const split = ports.result();
    for (const o of split.other) report.push(entry({ path: `${path}.ports`, status: "not-expressible", why: `${o.text}: ${UDP_WHY}`, instead: UDP_INSTEAD, egret: [] }));
    if (split.noTcp) return;
    const portsField = split.tcp ? { ports: split.tcp } : {};
    const cidr = str(to.cidrSelector);
    const dns = str(to.dnsName);
    if (cidr) {
      const r = rules.add({ name: ruleName(action.toLowerCase(), i), action, to: { cidrs: [{ cidr }], external: true }, ...portsField });
      report.push(entry({ path, status: "exact", why: `${action} ${cidr} (outside the cluster), in order`, egret: [egretRef(policy, r)] }));
    } else if (dns) {
      const pattern = dns.toLowerCase().replace(/\.$/, ""); // `*.` is one label in both systems
      const r = rules.add({ name: ruleName(action.toLowerCase(), i), action, to: { domains: [pattern], external: true }, ...portsField });
      const why = action === "Allow"
        ? `Allow ${dns}, in order: ${NAMES_VERIFIED_WHY}; OpenShift resolved the name in its controller and allowed the addresses for every pod`
        : `Deny ${dns}, in order: Egret denies the connection when the pod resolved this name to the address; OpenShift denied the addresses its controller resolved (another name on a shared address is judged by the later rules in Egret)`;
      report.push(entry({ path, status: action === "Allow" ? "stricter" : "exact", why, egret: [egretRef(policy, r)] }));
    } else {
      report.push(entry({ path, status: "not-expressible", why: "nodeSelector peers (the IPs of nodes chosen by label): Egret does not know node labels; this rule is left out and the later rules decide", instead: "list the nodes' addresses as a cidrSelector rule", egret: [] }));
    }
  });
  const last = rules.add({ name: "openshift-default-allow", action: "Allow", to: { cidrs: ALL_CIDRS } });
  policy.spec.rules = rules.rules;
  report.push(entry({ path: "spec.egress", status: "exact", why: "traffic no rule matches, and traffic inside the cluster, is allowed (final Allow-everything rule)", egret: [egretRef(policy, last)] }));
  return { policies: [policy], report };
}
