// Istio egress: ServiceEntry (networking.istio.io) under the mesh's outboundTrafficPolicy, Sidecar
// outboundTrafficPolicy, and the old EgressRule (config.istio.io/v1alpha2).
// Semantics (istio.io reference: MeshConfig.OutboundTrafficPolicy, ServiceEntry, Sidecar; Istio 0.x
// EgressRule docs): with REGISTRY_ONLY a sidecar forwards only to services in its registry —
// Kubernetes services and ServiceEntry hosts exported to the pod's namespace (exportTo, default
// all) — and drops the rest; with ALLOW_ANY (Istio's default) unknown destinations pass through, so
// ServiceEntries restrict nothing. A Sidecar's outboundTrafficPolicy overrides the mesh's for its
// workloads (a workloadSelector Sidecar over the namespace-wide one). HTTP ports are matched by the
// Host header, TLS/HTTPS by the SNI — claims the pod sends. Host `*.example.com` matches any name
// ending in `.example.com` (a suffix: Egret `**.`). EgressRule (Istio ≤ 0.7, when all external
// traffic was blocked by default) allowed destination.service (`*.` a suffix too) on the listed
// ports and protocols, mesh-wide.
// Egret: for each scope whose mode is known (workload Sidecar, namespace Sidecar, mesh), one Admin
// ClusterEgressPolicy that decides fully: the ServiceEntry/EgressRule allows, then REGISTRY_ONLY's
// "Deny everything external", then "Allow everything" (in-cluster services and ALLOW_ANY). More
// specific scopes come first (priorities 100, 200, 300).
import { parse as parseYaml } from "yaml";
import type { LabelSelector } from "../policy/index.js";
import {
  ALL_CIDRS, NAMES_VERIFIED_WHY, RuleList, egretRef, isObj, list, metaOf, namespaceNamed, objectName, ruleName,
  sourceName, str, type EgretPolicyObject, type EgretRuleObject, type ImportOutput, type Obj, type ReportEntry,
  type SourceDoc,
} from "./model.js";

type Mode = "REGISTRY_ONLY" | "ALLOW_ANY";

/** Istio port protocol → Egret detected protocols (undefined: any protocol on the port). */
export const ISTIO_PROTOCOLS: Record<string, string[] | undefined> = {
  HTTP: ["http"], HTTPS: ["tls"], TLS: ["tls"], HTTP2: ["http2"], GRPC: ["http2"], "GRPC-WEB": ["http", "http2"],
  MONGO: ["mongodb"], MYSQL: ["mysql"], REDIS: ["redis"], TCP: undefined,
};

export function istioDomain(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, "");
  return h.startsWith("*.") ? `**.${h.slice(2)}` : h;
}

export function isIstio(obj: Obj): boolean {
  const group = typeof obj.apiVersion === "string" ? obj.apiVersion.split("/")[0] : "";
  if (group === "networking.istio.io" && (obj.kind === "ServiceEntry" || obj.kind === "Sidecar")) return true;
  if (group === "config.istio.io" && obj.kind === "EgressRule") return true;
  return meshConfigOf(obj) !== undefined;
}

/** The mesh config inside a document: the `istio` ConfigMap, an IstioOperator, or bare MeshConfig. */
export function meshConfigOf(obj: Obj): Obj | undefined {
  if (obj.kind === "ConfigMap" && isObj(obj.data) && typeof obj.data.mesh === "string") {
    try { const m = parseYaml(obj.data.mesh) as unknown; return isObj(m) ? m : {}; } catch { return {}; }
  }
  if (obj.kind === "IstioOperator" && isObj(obj.spec) && isObj(obj.spec.meshConfig)) return obj.spec.meshConfig;
  if (obj.kind === undefined && isObj(obj.outboundTrafficPolicy)) return obj;
  return undefined;
}

interface Allow {
  /** Namespaces the entry is exported to; undefined = all. */
  exportTo?: string[];
  rule: EgretRuleObject;
  entry: ReportEntry;
}

interface Scope {
  name: string;
  priority: number;
  mode: Mode;
  namespace?: string;
  podSelector?: LabelSelector;
  entry: ReportEntry;
}

/** Imports all Istio documents together (a ServiceEntry means nothing without the mode). */
export function importIstio(docs: SourceDoc[]): ImportOutput {
  const report: ReportEntry[] = [];
  const allows: Allow[] = [];
  const scopes: Scope[] = [];
  let meshMode: Mode | undefined;
  let meshEntry: ReportEntry | undefined;
  let sawEgressRule = false;
  for (const doc of docs) {
    const obj = doc.obj;
    const source = sourceName(obj);
    const mk = (e: Omit<ReportEntry, "source" | "file">): ReportEntry => ({ source, ...(doc.file ? { file: doc.file } : {}), ...e });
    const mesh = meshConfigOf(obj);
    const { name, namespace } = metaOf(obj);
    if (mesh) {
      const mode = isObj(mesh.outboundTrafficPolicy) && mesh.outboundTrafficPolicy.mode === "REGISTRY_ONLY" ? "REGISTRY_ONLY" : "ALLOW_ANY";
      meshMode = mode;
      meshEntry = mk({ path: "outboundTrafficPolicy", status: "exact", why: `mesh outboundTrafficPolicy ${mode}`, egret: [] });
      report.push(meshEntry);
    } else if (obj.kind === "Sidecar") {
      const spec = isObj(obj.spec) ? obj.spec : {};
      const otp = isObj(spec.outboundTrafficPolicy) ? spec.outboundTrafficPolicy : undefined;
      const labels = isObj(spec.workloadSelector) && isObj(spec.workloadSelector.labels) ? spec.workloadSelector.labels : undefined;
      if (Array.isArray(spec.egress)) {
        report.push(mk({ path: "spec.egress", status: "not-expressible", why: "Sidecar egress listeners/hosts shape what the sidecar's registry contains (namespace/host visibility), which Egret does not model; the registry is taken as all ServiceEntries exported to the namespace", instead: "write the allowed hosts as ServiceEntries, or as Egret rules directly", egret: [] }));
      }
      if (!otp || (otp.mode !== "REGISTRY_ONLY" && otp.mode !== "ALLOW_ANY")) {
        report.push(mk({ path: "spec.outboundTrafficPolicy", status: "exact", why: "no outboundTrafficPolicy: the mesh's mode applies", egret: [] }));
        continue;
      }
      const ns = namespace ?? "default";
      const e = mk({ path: "spec.outboundTrafficPolicy", status: "exact", why: `outboundTrafficPolicy ${otp.mode} for ${labels ? "the selected workloads" : "the whole namespace"} of ${ns}`, egret: [] });
      report.push(e);
      scopes.push({ name: objectName("istio-sidecar", ns, name), priority: labels ? 100 : 200, mode: otp.mode as Mode, namespace: ns, ...(labels ? { podSelector: { matchLabels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])) } } : {}), entry: e });
    } else if (obj.kind === "ServiceEntry") {
      const spec = isObj(obj.spec) ? obj.spec : {};
      const exportTo = Array.isArray(spec.exportTo) ? spec.exportTo.map(String) : ["*"];
      const exported = exportTo.includes("*") ? undefined : exportTo.map((x) => (x === "." ? namespace ?? "default" : x)).filter((x) => x !== "~");
      const hosts = list(spec.hosts).map(String);
      const addresses = list(spec.addresses).map(String);
      const ports = list(spec.ports).filter(isObj);
      const byProto = new Map<string, number[]>();
      for (const p of ports) {
        const proto = String(p.protocol ?? "TCP").toUpperCase();
        const arr = byProto.get(proto) ?? [];
        if (typeof p.number === "number") arr.push(p.number);
        byProto.set(proto, arr);
      }
      if (byProto.size === 0) byProto.set("ANY", []);
      for (const [proto, nums] of byProto) {
        const known = proto === "ANY" || proto in ISTIO_PROTOCOLS;
        if (!known) {
          report.push(mk({ path: "spec.ports", status: "not-expressible", why: `port protocol ${proto} is not one Egret detects (UDP is not seen by the sidecar)`, instead: "keep the ServiceEntry for it, or write an Egret rule by port", egret: [] }));
          continue;
        }
        const protocols = proto === "ANY" ? undefined : ISTIO_PROTOCOLS[proto];
        const portsField = nums.length ? { ports: nums.map((n) => ({ port: n })) } : {};
        const claimed = protocols?.some((p) => p === "http" || p === "tls" || p === "http2");
        if (hosts.length && !(addresses.length && !claimed)) {
          const rule: EgretRuleObject = { name: ruleName("se", name, proto), action: "Allow", to: { domains: [...new Set(hosts.map(istioDomain))] }, ...portsField, ...(protocols ? { protocols } : {}) };
          const why = claimed
            ? `hosts ${hosts.join(", ")} (\`*.\` is a suffix → \`**.\`), ${proto} → protocols ${protocols!.join(", ")}: Istio matched the ${proto.startsWith("HTTP") || proto === "GRPC" ? "Host header" : "SNI"} the pod sent; ${NAMES_VERIFIED_WHY}`
            : `hosts ${hosts.join(", ")}, ${proto}: ${NAMES_VERIFIED_WHY}${protocols ? `; the protocol is detected from the bytes (${protocols.join(", ")}), not assumed from the port` : ""}`;
          allows.push({ ...(exported ? { exportTo: exported } : {}), rule, entry: mk({ path: `spec.ports (${proto})`, status: "stricter", why, egret: [] }) });
        }
        if (addresses.length) {
          const rule: EgretRuleObject = { name: ruleName("se", name, proto, "addresses"), action: "Allow", to: { cidrs: addresses.map((a) => ({ cidr: a })) }, ...portsField, ...(protocols ? { protocols } : {}) };
          allows.push({ ...(exported ? { exportTo: exported } : {}), rule, entry: mk({ path: `spec.addresses (${proto})`, status: protocols ? "stricter" : "exact", why: `addresses ${addresses.join(", ")}${protocols ? `; the protocol is now detected (${protocols.join(", ")})` : ""}`, egret: [] }) });
        }
      }
      if (spec.location === "MESH_INTERNAL") report.push(mk({ path: "spec.location", status: "exact", why: "MESH_INTERNAL entries are registry entries like any other for outbound traffic", egret: [] }));
    } else if (obj.kind === "EgressRule") {
      sawEgressRule = true;
      const spec = isObj(obj.spec) ? obj.spec : {};
      const dest = isObj(spec.destination) ? str(spec.destination.service) ?? "" : "";
      const ports = list(spec.ports).filter(isObj);
      const groups = new Map<string, number[]>();
      for (const p of ports) {
        const proto = String(p.protocol ?? "http").toUpperCase();
        groups.set(proto, [...(groups.get(proto) ?? []), ...(typeof p.port === "number" ? [p.port] : [])]);
      }
      if (groups.size === 0) groups.set("HTTP", [80]);
      for (const [proto, nums] of groups) {
        const protocols = ISTIO_PROTOCOLS[proto];
        const isCidr = /^[0-9a-f:.]+\/\d+$/i.test(dest);
        const rule: EgretRuleObject = { name: ruleName("egressrule", name, proto), action: "Allow", to: isCidr ? { cidrs: [{ cidr: dest }] } : { domains: [istioDomain(dest)] }, ...(nums.length ? { ports: nums.map((n) => ({ port: n })) } : {}), ...(protocols ? { protocols } : {}) };
        allows.push({ rule, entry: mk({ path: `spec.ports (${proto.toLowerCase()})`, status: "stricter", why: `${dest} (\`*.\` is a suffix → \`**.\`), ${proto.toLowerCase()} → ${protocols ? `protocols ${protocols.join(", ")}` : "any protocol"}: ${isCidr ? "by address" : NAMES_VERIFIED_WHY}`, egret: [] }) });
      }
    }
  }
  // EgressRule-era meshes blocked every external destination that no rule opened.
  if (!meshMode && sawEgressRule) meshMode = "REGISTRY_ONLY";
  const effectiveMesh: Mode = meshMode ?? "ALLOW_ANY";
  if (!meshEntry && allows.length) {
    report.push({ source: "mesh config", path: "outboundTrafficPolicy", status: "exact", why: sawEgressRule ? "no mesh config given: EgressRules come from Istio ≤ 0.7, which blocked external traffic no rule opened (REGISTRY_ONLY)" : "no mesh config given: Istio's default ALLOW_ANY, so ServiceEntries restrict nothing (pass the istio ConfigMap or IstioOperator to import REGISTRY_ONLY)", egret: [] });
  }
  scopes.push({ name: "istio-mesh", priority: 300, mode: effectiveMesh, entry: meshEntry ?? { source: "mesh config", path: "outboundTrafficPolicy", status: "exact", why: effectiveMesh, egret: [] } });

  const policies: EgretPolicyObject[] = [];
  for (const scope of scopes) {
    if (scope.mode === "ALLOW_ANY" && !scope.namespace) continue; // mesh-wide ALLOW_ANY: Egret need not select anyone
    // The mesh scope: one policy for all namespaces, plus one per namespace some ServiceEntry is
    // exported to by name (it gets those entries too, and comes first).
    const nsSets = scope.namespace ? [[scope.namespace]] : [undefined, ...namespacesNamed(allows.map((a) => a.exportTo)).map((ns) => [ns])];
    for (const set of nsSets) {
      const applicable = allows.filter((a) => !a.exportTo || (set ? set.every((ns) => a.exportTo!.includes(ns)) : false));
      const policy: EgretPolicyObject = {
        apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy",
        metadata: { name: set && !scope.namespace ? objectName(scope.name, ...set) : scope.name },
        spec: {
          tier: "Admin", priority: set && !scope.namespace ? scope.priority - 50 : scope.priority,
          namespaceSelector: set ? namespaceNamed(set[0]!) : {},
          ...(scope.podSelector ? { podSelector: scope.podSelector } : {}),
          rules: [],
        },
      };
      const rules = new RuleList();
      if (scope.mode === "REGISTRY_ONLY") {
        for (const a of applicable) {
          const r = rules.add(a.rule);
          a.entry.egret.push(egretRef(policy, r));
        }
        const d = rules.add({ name: "registry-only", action: "Deny", to: { external: true } });
        scope.entry.egret.push(egretRef(policy, d));
      }
      const all = rules.add({ name: scope.mode === "REGISTRY_ONLY" ? "in-cluster-services" : "allow-any", action: "Allow", to: { cidrs: ALL_CIDRS } });
      scope.entry.egret.push(egretRef(policy, all));
      policy.spec.rules = rules.rules;
      policies.push(policy);
    }
  }
  if (scopes.some((s) => s.mode === "REGISTRY_ONLY")) {
    report.push({ source: "mesh config", path: "REGISTRY_ONLY", status: "stricter", why: "Kubernetes services are in every sidecar's registry; Egret cannot list them, so every destination inside the cluster networks (control's cluster CIDRs) is allowed, and every external one not listed is denied", egret: [] });
  }
  for (const a of allows) {
    if (a.entry.egret.length === 0) a.entry.why += "; the mesh is ALLOW_ANY for these pods, so nothing is restricted (no rule needed)";
    report.push(a.entry);
  }
  return { policies, report };
}

function namespacesNamed(sets: (string[] | undefined)[]): string[] {
  return [...new Set(sets.flatMap((s) => s ?? []))].sort();
}
