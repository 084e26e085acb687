// The policy model after validation and normalization (what the compiler consumes).

export type Severity = "error" | "warning";

/** One problem found in a policy, located as precisely as the source allows. */
export interface Diagnostic {
  severity: Severity;
  /** Stable identifier of the kind of mistake (e.g. "domain-pattern"), for tests and tooling. */
  code: string;
  file?: string;
  /** 1-based. */
  line?: number;
  /** 1-based. */
  column?: number;
  /** Field path, e.g. "spec.rules[2].to.domains[0]" ("" for the whole document). */
  path: string;
  message: string;
  /** How to fix it. */
  hint: string;
}

export interface PodIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ips?: string[];
}

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Pass (ClusterEgressPolicy only): skip the rest of this tier and go on to the next one. */
export type Action = "Allow" | "Deny" | "Alert" | "Pass";
/** What a policy's `unattributed` field may say. */
export type UnattributedAction = "Allow" | "Deny" | "Alert";
export type Mode = "Enforce" | "Monitor";
export type Tier = "Admin" | "Namespace" | "Baseline";
export type PolicyKind = "ClusterEgressPolicy" | "EgressPolicy";

/** A domain pattern, normalized: lowercase, no trailing dot. */
export interface DomainPattern {
  /** As written after normalization, e.g. "*.example.com". */
  text: string;
  kind: "exact" | "one-label" | "multi-label";
  /** The exact name, or the suffix after the wildcard label ("example.com"). */
  suffix: string;
}

/** A parsed network: IPv4 networks are kept IPv4-mapped in the 128-bit space (prefix + 96). */
export interface Network {
  text: string;
  family: 4 | 6;
  /** The 16-byte address as a 128-bit integer. */
  address: bigint;
  /** Prefix length in the 128-bit space. */
  prefix: number;
}

export interface CidrEntry {
  network: Network;
  except: Network[];
}

export interface PortRange {
  first: number;
  last: number;
}

export interface Rule {
  name?: string;
  /** 0-based index in its policy. */
  index: number;
  action: Action;
  domains?: DomainPattern[];
  cidrs?: CidrEntry[];
  external?: boolean;
  ports?: PortRange[];
  protocols?: string[];
  /**
   * "Allow": a TLS ClientHello offering encrypted_client_hello may match this rule's domains when
   * every name the pod resolved to the IP is allowed by such a rule (default: ECH is unverifiable).
   */
  encryptedClientHello?: "Allow";
  /** Field path of the rule ("spec.rules[3]") and its source line, for explain. */
  path: string;
  line?: number;
}

export interface PolicySource {
  file?: string;
  /** 0-based index of the YAML document within its file. */
  document?: number;
  /** Position of metadata.name (1-based). */
  line?: number;
  column?: number;
}

/** A validated ClusterEgressPolicy or EgressPolicy. */
export interface Policy {
  kind: PolicyKind;
  name: string;
  namespace?: string;
  /** How verdicts name it: "name" (cluster) or "namespace/name". */
  ref: string;
  tier: Tier;
  priority: number;
  mode: Mode;
  resolutionGraceSeconds: number;
  unattributed?: UnattributedAction;
  /** Whether ServiceEntry addresses (mesh configuration) count as evidence for names; default Use. */
  meshConfigEvidence: "Use" | "Ignore";
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  rules: Rule[];
  source: PolicySource;
  /** The object as written. */
  raw: unknown;
}

export const DEFAULT_PRIORITY = 500;
export const DEFAULT_GRACE_SECONDS = 60;
export const API_GROUP = "egret.dev";
export const API_VERSION = "egret.dev/v1alpha1";
