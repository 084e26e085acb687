// Kubernetes network-policy-api: ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2) and the
// older AdminNetworkPolicy / BaselineAdminNetworkPolicy (v1alpha1).
// Semantics (github.com/kubernetes-sigs/network-policy-api, apis/v1alpha2/clusternetworkpolicy_types.go
// and apis/v1alpha1/*): tiers Admin → NetworkPolicy → Baseline; within a tier by priority (0–1000,
// lower first); rules in the order written, first match; Accept/Allow and Deny are final; Pass skips
// the rest of the tier; a connection no tier decided gets the Kubernetes default: allowed. A rule
// matches when any `to` peer matches and any protocol/port entry matches. domainNames: `*.` matches
// one or more labels (Egret `**.`). BaselineAdminNetworkPolicy is the Baseline tier (no Pass).
// Egret: one ClusterEgressPolicy per source object in the same tier and priority (Pass → Pass in
// the Admin tier; in the Baseline tier the next "tier" is the Kubernetes default, so Pass → Allow),
// plus, per distinct subject, a Baseline policy allowing everything last, because Egret denies what
// nothing matched for a selected pod while Kubernetes allows it.
import type { LabelSelector } from "../policy/index.js";
import {
  ALL_CIDRS, NAMED_PORT_INSTEAD, NAMED_PORT_WHY, NAMES_VERIFIED_WHY, PEER_PODS_INSTEAD, PEER_PODS_WHY, PortCollector,
  RuleList, UDP_INSTEAD, UDP_WHY, egretRef, isObj, labelSelector, list, metaOf, objectName, ruleName, shortHash,
  sourceName, str, type EgretPolicyObject, type EgretRuleObject, type ImportOutput, type Obj, type ReportEntry,
  type SourceDoc,
} from "./model.js";

export function isNetworkPolicyApi(obj: Obj): boolean {
  const group = typeof obj.apiVersion === "string" ? obj.apiVersion.split("/")[0] : "";
  return group === "policy.networking.k8s.io" && ["ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"].includes(String(obj.kind));
}

/** The subject as Egret selectors. */
function subjectSelectors(subject: unknown): { namespaceSelector: LabelSelector; podSelector?: LabelSelector } {
  const s = isObj(subject) ? subject : {};
  if (isObj(s.pods)) return { namespaceSelector: labelSelector(s.pods.namespaceSelector), podSelector: labelSelector(s.pods.podSelector) };
  return { namespaceSelector: labelSelector(s.namespaces) };
}

/** Domain name of network-policy-api → Egret pattern (`*.` is one or more labels there). */
export function npapiDomain(d: string): string {
  const name = d.toLowerCase().replace(/\.$/, "");
  return name.startsWith("*.") ? `**.${name.slice(2)}` : name;
}

function collectPorts(rule: Obj, v2: boolean): PortCollector {
  const ports = new PortCollector();
  if (v2) {
    for (const p of list(rule.protocols).filter(isObj)) {
      if (typeof p.destinationNamedPort === "string") { ports.add("TCP", p.destinationNamedPort); continue; }
      for (const proto of ["tcp", "udp", "sctp"]) {
        const x = p[proto];
        if (!isObj(x)) continue;
        const dp = isObj(x.destinationPort) ? x.destinationPort : {};
        if (isObj(dp.range)) ports.add(proto, dp.range.start, dp.range.end);
        else ports.add(proto, dp.number);
      }
    }
  } else {
    for (const p of list(rule.ports).filter(isObj)) {
      if (isObj(p.portNumber)) ports.add(str(p.portNumber.protocol), p.portNumber.port);
      else if (isObj(p.portRange)) ports.add(str(p.portRange.protocol), p.portRange.start, p.portRange.end);
      else if (typeof p.namedPort === "string") ports.add("TCP", p.namedPort);
    }
  }
  return ports;
}

export function importNetworkPolicyApi(doc: SourceDoc): ImportOutput & { subjects: { namespaceSelector: LabelSelector; podSelector?: LabelSelector }[] } {
  const obj = doc.obj;
  const source = sourceName(obj);
  const entry = (e: Omit<ReportEntry, "source" | "file">): ReportEntry => ({ source, ...(doc.file ? { file: doc.file } : {}), ...e });
  const spec = isObj(obj.spec) ? obj.spec : {};
  const kind = String(obj.kind);
  const v2 = kind === "ClusterNetworkPolicy";
  const tier: "Admin" | "Baseline" = kind === "BaselineAdminNetworkPolicy" ? "Baseline" : kind === "AdminNetworkPolicy" ? "Admin" : spec.tier === "Baseline" ? "Baseline" : "Admin";
  const priority = kind === "BaselineAdminNetworkPolicy" ? 1000 : typeof spec.priority === "number" ? Math.min(1000, Math.max(0, spec.priority)) : 500;
  const { name } = metaOf(obj);
  const selectors = subjectSelectors(spec.subject);
  const policy: EgretPolicyObject = {
    apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy",
    metadata: { name: objectName(v2 ? "cnp" : kind === "AdminNetworkPolicy" ? "anp" : "banp", name) },
    spec: { tier, priority, ...selectors, rules: [] },
  };
  const rules = new RuleList();
  const report: ReportEntry[] = [];
  const egress = list(spec.egress);
  if (egress.length === 0) {
    report.push(entry({ path: "spec", status: "exact", why: "no egress rules: this policy does not affect egress", egret: [] }));
    return { policies: [], report, subjects: [] };
  }
  egress.forEach((raw, i) => {
    const rule = isObj(raw) ? raw : {};
    const path = `spec.egress[${i}]`;
    const srcAction = String(rule.action);
    const action: EgretRuleObject["action"] = srcAction === "Deny" ? "Deny" : srcAction === "Pass" ? (tier === "Admin" ? "Pass" : "Allow") : "Allow";
    const passNote = srcAction === "Pass" ? (tier === "Admin" ? "Pass: skips the rest of the Admin tier (Egret action Pass)" : "Pass in the Baseline tier: the next tier is the Kubernetes default (allow), written as Allow") : `${srcAction} → ${action}`;
    const ports = collectPorts(rule, v2).result();
    for (const o of ports.other) {
      report.push(entry({ path: `${path}.${v2 ? "protocols" : "ports"}`, status: "not-expressible", why: `${o.text}: ${o.kind === "named" ? NAMED_PORT_WHY : UDP_WHY}`, instead: o.kind === "named" ? NAMED_PORT_INSTEAD : UDP_INSTEAD, egret: [] }));
    }
    if (ports.noTcp) return;
    const portsField = ports.tcp ? { ports: ports.tcp } : {};
    const base = str(rule.name) ?? `egress-${i}`;
    list(rule.to).forEach((rawPeer, j) => {
      const peer = isObj(rawPeer) ? rawPeer : {};
      const ppath = `${path}.to[${j}]`;
      if (Array.isArray(peer.networks)) {
        const r = rules.add({ name: ruleName(base, j), action, to: { cidrs: peer.networks.map((c) => ({ cidr: String(c) })) }, ...portsField });
        report.push(entry({ path: ppath, status: "exact", why: `${passNote}; networks ${peer.networks.join(", ")}`, egret: [egretRef(policy, r)] }));
      } else if (Array.isArray(peer.domainNames)) {
        const r = rules.add({ name: ruleName(base, j), action, to: { domains: peer.domainNames.map((d) => npapiDomain(String(d))) }, ...portsField });
        report.push(entry({ path: ppath, status: "stricter", why: `${passNote}; domainNames (\`*.\` = one or more labels → \`**.\`): ${NAMES_VERIFIED_WHY}`, egret: [egretRef(policy, r)] }));
      } else {
        const what = isObj(peer.nodes) ? "nodes selected by labels (node IPs)" : PEER_PODS_WHY;
        const effect = action === "Allow" ? "Egret does not allow these connections here (later rules decide)" : `Egret does not ${action === "Deny" ? "deny" : "pass on"} these connections here (later rules decide)`;
        report.push(entry({ path: ppath, status: "not-expressible", why: `${what}; ${effect}`, instead: PEER_PODS_INSTEAD, egret: [] }));
      }
    });
  });
  policy.spec.rules = rules.rules;
  return { policies: policy.spec.rules.length ? [policy] : [], report, subjects: [selectors] };
}

/**
 * The Kubernetes default for pods a network-policy-api object selects: what no tier decided is
 * allowed. One Baseline policy per distinct subject, after every other Baseline policy.
 */
export function kubernetesDefaultAllow(subjects: { namespaceSelector: LabelSelector; podSelector?: LabelSelector }[]): EgretPolicyObject[] {
  const seen = new Map<string, EgretPolicyObject>();
  for (const s of subjects) {
    const key = JSON.stringify(s);
    if (seen.has(key)) continue;
    seen.set(key, {
      apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy",
      metadata: { name: `zz-kubernetes-default-allow-${shortHash(key)}` },
      spec: { tier: "Baseline", priority: 1000, ...s, rules: [{ name: "kubernetes-default", action: "Allow", to: { cidrs: ALL_CIDRS } }] },
    });
  }
  return [...seen.values()];
}
