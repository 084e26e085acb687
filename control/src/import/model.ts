// What every importer produces: Egret policy objects (plain, as they will be printed) and one report
// entry per source rule (or rule part), saying whether Egret enforces it exactly, more strictly, or
// not at all — and why. Plus the small translations every source shares (selectors, ports, names).
import { createHash } from "node:crypto";
import type { LabelSelector } from "../policy/index.js";

export type Status = "exact" | "stricter" | "not-expressible";

export interface ReportEntry {
  /** "NetworkPolicy shop/db-egress" — the source object. */
  source: string;
  file?: string;
  /** Field path of the source rule or rule part ("spec.egress[0].to[1]"); "" for the whole object. */
  path: string;
  status: Status;
  /** Why (always set for stricter / not-expressible; a short mapping note for exact). */
  why: string;
  /** What to do instead (not-expressible). */
  instead?: string;
  /** The Egret rules it became: "ClusterEgressPolicy name#rule" / "EgressPolicy ns/name#rule". */
  egret: string[];
}

export interface EgretRuleObject {
  name?: string;
  action: "Allow" | "Deny" | "Alert" | "Pass";
  to?: { domains?: string[]; cidrs?: { cidr: string; except?: string[] }[]; external?: true };
  ports?: { port: number; endPort?: number }[];
  protocols?: string[];
}

export interface EgretPolicyObject {
  apiVersion: "egret.dev/v1alpha1";
  kind: "EgressPolicy" | "ClusterEgressPolicy";
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec: {
    tier?: "Admin" | "Baseline";
    priority?: number;
    namespaceSelector?: LabelSelector;
    podSelector?: LabelSelector;
    rules: EgretRuleObject[];
  };
}

/** A source document with where it came from. */
export interface SourceDoc {
  obj: Record<string, unknown>;
  file?: string;
}

export interface ImportOutput {
  policies: EgretPolicyObject[];
  report: ReportEntry[];
}

export const ALL_CIDRS = [{ cidr: "0.0.0.0/0" }, { cidr: "::/0" }];
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** "Kind ns/name" or "Kind name". */
export function sourceName(obj: Obj): string {
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const ns = str(meta.namespace);
  return `${str(obj.kind) ?? "?"} ${ns ? `${ns}/` : ""}${str(meta.name) ?? "?"}`;
}

export function metaOf(obj: Obj): { name: string; namespace?: string } {
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const ns = str(meta.namespace);
  return { name: str(meta.name) ?? "unnamed", ...(ns ? { namespace: ns } : {}) };
}

/**
 * An Egret object name built from parts: lowercase DNS subdomain, ≤ 253 chars (a hash suffix keeps
 * long names unique).
 */
export function objectName(...parts: string[]): string {
  const raw = parts.filter(Boolean).join("-").toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/-+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  if (raw.length <= 200) return raw || "imported";
  return `${raw.slice(0, 190).replace(/[-.]+$/, "")}-${shortHash(raw)}`;
}

/** A rule name: DNS label, ≤ 63 chars. */
export function ruleName(...parts: (string | number)[]): string {
  const raw = parts.map(String).filter(Boolean).join("-").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-").replace(/^-+|-+$/g, "");
  if (raw.length <= 63) return raw || "rule";
  return `${raw.slice(0, 54).replace(/-+$/, "")}-${shortHash(raw)}`;
}

export function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

/** A Kubernetes LabelSelector as written (matchLabels / matchExpressions kept; anything else dropped). */
export function labelSelector(v: unknown): LabelSelector {
  if (!isObj(v)) return {};
  const out: LabelSelector = {};
  if (isObj(v.matchLabels) && Object.keys(v.matchLabels).length) out.matchLabels = Object.fromEntries(Object.entries(v.matchLabels).map(([k, x]) => [k, String(x)]));
  const exprs = list(v.matchExpressions).filter(isObj).map((e) => ({
    key: String(e.key), operator: e.operator as "In" | "NotIn" | "Exists" | "DoesNotExist",
    ...(Array.isArray(e.values) && e.values.length ? { values: e.values.map(String) } : {}),
  }));
  if (exprs.length) out.matchExpressions = exprs;
  return out;
}

/** A namespace selector for one namespace by name. */
export function namespaceNamed(ns: string): LabelSelector {
  return { matchLabels: { [NAMESPACE_NAME_LABEL]: ns } };
}

export interface PortSplit {
  /** TCP ports/ranges Egret enforces; undefined = any port. */
  tcp?: { port: number; endPort?: number }[];
  /** Descriptions of the parts Egret cannot enforce ("UDP 53", "named port http"). */
  other: { text: string; kind: "udp" | "named" }[];
  /** True when the source listed ports and none of them is TCP: the rule never matches TCP. */
  noTcp: boolean;
}

export function portRange(first: number, last?: number): { port: number; endPort?: number } {
  return last !== undefined && last !== first ? { port: first, endPort: last } : { port: first };
}

/** Accumulates a port list: TCP numbers/ranges kept, other protocols and named ports described. */
export class PortCollector {
  private readonly tcp: { port: number; endPort?: number }[] = [];
  private readonly other: PortSplit["other"] = [];
  private any = false;
  private seen = false;

  add(protocol: string | undefined, port: unknown, endPort?: unknown): void {
    this.seen = true;
    const proto = (protocol ?? "TCP").toUpperCase();
    const isTcp = proto === "TCP" || proto === "ANY";
    if (proto === "ANY") this.other.push({ text: `UDP ${port ?? "any port"}${endPort ? `-${endPort}` : ""}`, kind: "udp" });
    if (!isTcp) { this.other.push({ text: `${proto} ${port ?? "any port"}${endPort ? `-${endPort}` : ""}`, kind: "udp" }); return; }
    if (port === undefined || port === null || port === 0 || port === "0") { this.any = true; return; }
    const n = typeof port === "number" ? port : /^\d+$/.test(String(port)) ? Number(port) : NaN;
    if (!Number.isInteger(n)) { this.other.push({ text: `named port "${String(port)}"`, kind: "named" }); return; }
    const e = typeof endPort === "number" ? endPort : typeof endPort === "string" && /^\d+$/.test(endPort) ? Number(endPort) : undefined;
    this.tcp.push(portRange(n, e));
  }

  result(): PortSplit {
    if (!this.seen || this.any) return { other: this.other, noTcp: false }; // any TCP port
    return { tcp: this.tcp, other: this.other, noTcp: this.tcp.length === 0 };
  }
}

export const UDP_WHY = "Egret controls TCP connections only (the sidecar never sees UDP/SCTP); this part is neither allowed nor denied by Egret";
export const UDP_INSTEAD = "keep the source policy (or a Kubernetes NetworkPolicy) for the UDP/SCTP part; Egret and NetworkPolicy enforce side by side";
export const NAMED_PORT_WHY = "named ports refer to the destination pod's container port names, which Egret does not know";
export const NAMED_PORT_INSTEAD = "write the port number instead";
export const PEER_PODS_WHY = "in-cluster peers selected by pod/namespace labels: Egret matches destinations by DNS name, address, port and detected protocol, not by the labels of the destination pod";
export const PEER_PODS_INSTEAD = "allow the peers by address (to.cidrs: the pod or Service CIDRs) or by their cluster DNS names (to.domains: \"**.svc.cluster.local\"), or keep this source policy for in-cluster traffic";
export const NAMES_VERIFIED_WHY = "names are verified: the pod itself must have resolved the name to the address (per-pod DNS evidence), and a TLS SNI / HTTP Host naming something else is denied (sni-unverified / host-unverified)";

/** Policy ref as the report prints it. */
export function egretRef(p: EgretPolicyObject, rule?: string): string {
  const ref = p.kind === "EgressPolicy" ? `${p.metadata.namespace}/${p.metadata.name}` : p.metadata.name;
  return `${p.kind} ${ref}${rule !== undefined ? `#${rule}` : ""}`;
}

/** Builds rules into a policy, keeping rule names unique. */
export class RuleList {
  readonly rules: EgretRuleObject[] = [];
  private readonly names = new Set<string>();
  add(rule: EgretRuleObject): string {
    let name = rule.name ?? `rule-${this.rules.length}`;
    for (let i = 2; this.names.has(name); i++) name = ruleName(rule.name ?? "rule", i);
    this.names.add(name);
    this.rules.push({ ...rule, name });
    return name;
  }
}
