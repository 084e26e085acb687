// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (cilium.io/v2), egress part.
// Semantics (docs.cilium.io "Layer 3/4 policy", "DNS based", "Deny policies"; cilium
// pkg/policy/api and pkg/fqdn/matchpattern): an endpoint selected by a policy with egress or
// egressDeny rules is in default-deny for egress (unless enableDefaultDeny.egress: false); what it
// may open is the union of all allow rules; deny rules win over every allow. In one rule the L3
// peers (toFQDNs, toCIDR, toCIDRSet, toEntities, toEndpoints, …) are alternatives and toPorts
// narrows them; a rule with only toPorts applies to any destination. matchName is exact;
// in matchPattern `*` stands for any run of DNS characters inside one label (so `*.x.com` is one
// label, `api-*.x.com` a partial label, `*` alone every name) and a leading `**.` is one or more
// labels. toEntities `world` is everything outside the cluster, `all` everything.
// Egret: Admin ClusterEgressPolicies (CiliumNetworkPolicy: namespaceSelector for its namespace):
// all deny rules (priority 100), all allows (priority 200), then, for default-deny endpoints, a
// Deny-everything policy (priority 900); endpoints not put in default deny get a Baseline
// Allow-everything, because Egret denies what nothing matched for a selected pod.
import type { LabelSelector, LabelSelectorRequirement } from "../policy/index.js";
import {
  ALL_CIDRS, NAMES_VERIFIED_WHY, PEER_PODS_INSTEAD, PEER_PODS_WHY, PortCollector, RuleList, UDP_INSTEAD, UDP_WHY,
  egretRef, isObj, list, metaOf, objectName, ruleName, shortHash, sourceName, str, NAMESPACE_NAME_LABEL,
  type EgretPolicyObject, type EgretRuleObject, type ImportOutput, type Obj, type ReportEntry, type SourceDoc,
} from "./model.js";

export function isCilium(obj: Obj): boolean {
  return String(obj.apiVersion).startsWith("cilium.io/") && (obj.kind === "CiliumNetworkPolicy" || obj.kind === "CiliumClusterwideNetworkPolicy");
}

const NS_LABEL = "io.kubernetes.pod.namespace";
const NS_LABELS_PREFIX = "io.cilium.k8s.namespace.labels.";

/** A Cilium label key without its source prefix (k8s:, any:). */
function plainKey(key: string): string {
  return key.replace(/^(k8s|any):/, "");
}

/** Cilium endpointSelector → Egret namespace and pod selectors (namespace labels are special keys). */
export function endpointSelectors(sel: unknown, namespace?: string): { namespaceSelector: LabelSelector; podSelector: LabelSelector; problem?: string } {
  const s = isObj(sel) ? sel : {};
  const ns: LabelSelector = namespace ? { matchLabels: { [NAMESPACE_NAME_LABEL]: namespace } } : {};
  const pod: LabelSelector = {};
  let problem: string | undefined;
  const put = (target: LabelSelector, k: string, v: string): void => { target.matchLabels = { ...(target.matchLabels ?? {}), [k]: v }; };
  const route = (key: string): { target: LabelSelector; key: string } | undefined => {
    const k = plainKey(key);
    if (key.startsWith("reserved:")) { problem = `reserved identity ${key}`; return undefined; }
    if (k === NS_LABEL) return { target: ns, key: NAMESPACE_NAME_LABEL };
    if (k.startsWith(NS_LABELS_PREFIX)) return { target: ns, key: k.slice(NS_LABELS_PREFIX.length) };
    return { target: pod, key: k };
  };
  if (isObj(s.matchLabels)) for (const [k, v] of Object.entries(s.matchLabels)) { const r = route(k); if (r) put(r.target, r.key, String(v)); }
  for (const e of list(s.matchExpressions).filter(isObj)) {
    const r = route(String(e.key));
    if (!r) continue;
    const req: LabelSelectorRequirement = { key: r.key, operator: e.operator as LabelSelectorRequirement["operator"], ...(Array.isArray(e.values) ? { values: e.values.map(String) } : {}) };
    r.target.matchExpressions = [...(r.target.matchExpressions ?? []), req];
  }
  return { namespaceSelector: ns, podSelector: pod, ...(problem ? { problem } : {}) };
}

/** matchPattern → Egret pattern, or why it cannot be one. */
export function ciliumPattern(pattern: string): { pattern?: string; problem?: string } {
  const p = pattern.trim().toLowerCase().replace(/\.$/, "");
  if (/^\*+$/.test(p)) return { problem: "`*` alone matches every name the pod resolves; Egret has no pattern for \"any name\"" };
  const multi = /^\*{2,}\./.exec(p);
  const rest = multi ? p.slice(multi[0].length) : p.startsWith("*.") ? p.slice(2) : p;
  if (rest.includes("*")) return { problem: `"${pattern}" has a wildcard inside or after a label (Egret wildcards are whole leftmost labels only)` };
  if (multi) return { pattern: `**.${rest}` };
  if (p.startsWith("*.")) return { pattern: `*.${rest}` };
  return { pattern: p };
}

interface Part { rule: EgretRuleObject; entry: ReportEntry }

export function importCilium(doc: SourceDoc): ImportOutput & { defaultAllow: EgretPolicyObject[] } {
  const obj = doc.obj;
  const source = sourceName(obj);
  const mk = (e: Omit<ReportEntry, "source" | "file">): ReportEntry => ({ source, ...(doc.file ? { file: doc.file } : {}), ...e });
  const { name, namespace } = metaOf(obj);
  const clusterwide = obj.kind === "CiliumClusterwideNetworkPolicy";
  const specs = [...(isObj(obj.spec) ? [obj.spec] : []), ...list(obj.specs).filter(isObj)];
  const policies: EgretPolicyObject[] = [];
  const report: ReportEntry[] = [];
  const defaultAllow: EgretPolicyObject[] = [];
  specs.forEach((spec, si) => {
    const prefix = isObj(obj.spec) && si === 0 ? "spec" : `specs[${isObj(obj.spec) ? si - 1 : si}]`;
    const sel = endpointSelectors(spec.endpointSelector, clusterwide ? undefined : namespace ?? "default");
    if (sel.problem) {
      report.push(mk({ path: `${prefix}.endpointSelector`, status: "not-expressible", why: `${sel.problem}: Egret selects pods by labels only`, instead: "select the pods by their labels", egret: [] }));
      return;
    }
    const base = objectName("cilium", clusterwide ? "" : namespace ?? "default", name, si ? String(si) : "");
    const scope = { namespaceSelector: sel.namespaceSelector, podSelector: sel.podSelector };
    const mkPolicy = (suffix: string, priority: number, tier: "Admin" | "Baseline" = "Admin"): EgretPolicyObject => ({
      apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy", metadata: { name: objectName(base, suffix) },
      spec: { tier, priority, ...scope, rules: [] },
    });
    const denyPolicy = mkPolicy("deny", 100);
    const allowPolicy = mkPolicy("allow", 200);
    const denies = rulesOf(spec.egressDeny, `${prefix}.egressDeny`, "Deny", mk, report);
    const allows = rulesOf(spec.egress, `${prefix}.egress`, "Allow", mk, report);
    for (const [policy, parts] of [[denyPolicy, denies], [allowPolicy, allows]] as const) {
      const rl = new RuleList();
      for (const part of parts) part.entry.egret.push(egretRef(policy, rl.add(part.rule)));
      policy.spec.rules = rl.rules;
      if (rl.rules.length) policies.push(policy);
      report.push(...parts.map((p) => p.entry));
    }
    const hasEgress = spec.egress !== undefined || spec.egressDeny !== undefined;
    const defaultDeny = isObj(spec.enableDefaultDeny) && typeof spec.enableDefaultDeny.egress === "boolean" ? spec.enableDefaultDeny.egress : hasEgress;
    if (!hasEgress) {
      report.push(mk({ path: prefix, status: "exact", why: "no egress or egressDeny rules: this policy does not affect egress", egret: [] }));
    } else if (defaultDeny) {
      const iso = mkPolicy("default-deny", 900);
      iso.spec.rules = [{ name: "default-deny", action: "Deny", to: { cidrs: ALL_CIDRS } }];
      policies.push(iso);
      report.push(mk({ path: `${prefix}.endpointSelector`, status: "exact", why: "the selected endpoints are in default deny for egress: what no allow rule of any Cilium policy allows is denied", egret: [egretRef(iso, "default-deny")] }));
    } else {
      const allow: EgretPolicyObject = {
        apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy", metadata: { name: `zz-cilium-default-allow-${shortHash(JSON.stringify(scope))}` },
        spec: { tier: "Baseline", priority: 1000, ...scope, rules: [{ name: "no-default-deny", action: "Allow", to: { cidrs: ALL_CIDRS } }] },
      };
      defaultAllow.push(allow);
      report.push(mk({ path: `${prefix}.enableDefaultDeny`, status: "exact", why: "enableDefaultDeny.egress is false: what nothing denies stays allowed", egret: [egretRef(allow, "no-default-deny")] }));
    }
  });
  return { policies, report, defaultAllow };
}

function rulesOf(rawRules: unknown, path: string, action: "Allow" | "Deny", mk: (e: Omit<ReportEntry, "source" | "file">) => ReportEntry, report: ReportEntry[]): Part[] {
  const parts: Part[] = [];
  list(rawRules).forEach((raw, i) => {
    const rule = isObj(raw) ? raw : {};
    const rpath = `${path}[${i}]`;
    // Ports: toPorts entries are alternatives; L7 rules inside them cannot be kept.
    const ports = new PortCollector();
    let l7 = false;
    for (const tp of list(rule.toPorts).filter(isObj)) {
      for (const p of list(tp.ports).filter(isObj)) ports.add(str(p.protocol) ?? "ANY", p.port, p.endPort);
      if (isObj(tp.rules) && Object.keys(tp.rules).some((k) => k !== "dns")) l7 = true;
    }
    const split = ports.result();
    for (const o of split.other) report.push(mk({ path: `${rpath}.toPorts`, status: "not-expressible", why: `${o.text}: ${UDP_WHY}`, instead: UDP_INSTEAD, egret: [] }));
    if (l7 && action === "Allow") {
      report.push(mk({ path: `${rpath}.toPorts`, status: "not-expressible", why: "L7 rules (HTTP method/path, Kafka topics): Egret allows or denies whole connections; importing the rule without them would allow more, so it is left out (Egret denies these connections)", instead: "allow the destination and port with protocols: [http] if the whole service may be reached", egret: [] }));
      return;
    }
    if (split.noTcp) return;
    const portsField = split.tcp ? { ports: split.tcp } : {};
    const add = (suffix: string, to: EgretRuleObject["to"] | undefined, status: ReportEntry["status"], why: string): void => {
      parts.push({ rule: { name: ruleName(action === "Deny" ? "deny" : "egress", i, suffix), action, ...(to ? { to } : {}), ...portsField }, entry: mk({ path: `${rpath}${suffix ? `.${suffix}` : ""}`, status, why, egret: [] }) });
    };
    let peers = 0;
    const fqdns = list(rule.toFQDNs).filter(isObj);
    if (fqdns.length) {
      peers++;
      const domains: string[] = [];
      fqdns.forEach((f, j) => {
        if (typeof f.matchName === "string") domains.push(f.matchName.toLowerCase().replace(/\.$/, ""));
        else if (typeof f.matchPattern === "string") {
          const c = ciliumPattern(f.matchPattern);
          if (c.pattern) domains.push(c.pattern);
          else report.push(mk({ path: `${rpath}.toFQDNs[${j}]`, status: "not-expressible", why: `${c.problem}; left out, so Egret denies these names`, instead: "list the names, or a whole-label wildcard (*.example.com one label, **.example.com any depth)", egret: [] }));
        }
      });
      if (domains.length) add("toFQDNs", { domains: [...new Set(domains)] }, "stricter", `toFQDNs ${domains.join(", ")}: ${NAMES_VERIFIED_WHY}`);
    }
    const cidrs: { cidr: string; except?: string[] }[] = [
      ...list(rule.toCIDR).map((c) => ({ cidr: String(c) })),
      ...list(rule.toCIDRSet).filter(isObj).filter((c) => typeof c.cidr === "string").map((c) => ({ cidr: String(c.cidr), ...(Array.isArray(c.except) && c.except.length ? { except: c.except.map(String) } : {}) })),
    ];
    if (cidrs.length) { peers++; add("toCIDR", { cidrs }, "exact", `CIDRs ${cidrs.map((c) => c.cidr + (c.except ? ` except ${c.except.join(",")}` : "")).join(", ")}`); }
    list(rule.toCIDRSet).filter(isObj).filter((c) => typeof c.cidr !== "string").forEach(() => {
      peers++;
      report.push(mk({ path: `${rpath}.toCIDRSet`, status: "not-expressible", why: "cidrGroupRef/cidrSelector refer to CiliumCIDRGroup objects", instead: "write the CIDRs themselves", egret: [] }));
    });
    for (const ent of list(rule.toEntities).map(String)) {
      peers++;
      if (ent === "world" || ent === "world-ipv4" || ent === "world-ipv6") add(`entity-${ent}`, ent === "world" ? { external: true } : { cidrs: [ALL_CIDRS[ent === "world-ipv4" ? 0 : 1]!], external: true }, "exact", `toEntities ${ent}: outside the cluster (Egret external: control's cluster CIDRs)`);
      else if (ent === "all") add("entity-all", { cidrs: ALL_CIDRS }, "exact", "toEntities all: every destination");
      else report.push(mk({ path: `${rpath}.toEntities`, status: "not-expressible", why: `entity "${ent}" is an in-cluster identity (nodes, host, kube-apiserver, cluster, …) that Egret does not know`, instead: "list its addresses with to.cidrs", egret: [] }));
    }
    for (const key of ["toEndpoints", "toServices", "toGroups", "toNodes", "toRequires"]) {
      if (rule[key] === undefined) continue;
      peers++;
      report.push(mk({ path: `${rpath}.${key}`, status: "not-expressible", why: key === "toEndpoints" ? PEER_PODS_WHY : `${key}: peers Egret cannot resolve from the policy alone`, instead: PEER_PODS_INSTEAD, egret: [] }));
    }
    if (rule.icmps !== undefined) report.push(mk({ path: `${rpath}.icmps`, status: "not-expressible", why: "ICMP: Egret controls TCP connections only", instead: "keep the Cilium policy for ICMP", egret: [] }));
    if (peers === 0 && (split.tcp || list(rule.toPorts).length)) add("", { cidrs: ALL_CIDRS }, "exact", "toPorts only: any destination on these ports");
  });
  return parts;
}
