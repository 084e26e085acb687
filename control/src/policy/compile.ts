// Compiles the policies selecting one pod into the binary snapshot the engine decodes
// (layout: filter/assembly/policy/layout.ts, shared with the decoder). Deterministic: the same
// policies, pod and options always give the same bytes.
import { createHash } from "node:crypto";
import { ALWAYS_INTERNAL, effectiveClusterCidrs, isProblem, parseCidr } from "./network.js";
import { PROTOCOL_LABELS } from "./protocols.js";
import { orderPolicies, policySelectsPod } from "./select.js";
import type { Network, Policy, PodIdentity, Rule } from "./types.js";
// The one snapshot layout, shared with the AssemblyScript decoder.
import * as L from "../../../filter/assembly/policy/layout.js";

export { SNAPSHOT_MAGIC, FORMAT_VERSION as SNAPSHOT_FORMAT_VERSION } from "../../../filter/assembly/policy/layout.js";
const TIER_CODE = { Admin: L.TIER_ADMIN, Namespace: L.TIER_NAMESPACE, Baseline: L.TIER_BASELINE } as const;
const ACTION_CODE = { Allow: L.ACTION_ALLOW, Deny: L.ACTION_DENY, Alert: L.ACTION_ALERT, Pass: L.ACTION_PASS } as const;
const PATTERN_CODE = { exact: L.PATTERN_EXACT, "one-label": L.PATTERN_ONE_LABEL, "multi-label": L.PATTERN_MULTI_LABEL } as const;
const UNATTRIBUTED_CODE = { Deny: L.UNATTRIBUTED_DENY, Alert: L.UNATTRIBUTED_ALERT, Allow: L.UNATTRIBUTED_ALLOW } as const;

export interface CompileOptions {
  /**
   * Pod/service networks; `external` means outside all of them. They add to DEFAULT_CLUSTER_CIDRS
   * unless replaceDefaultClusterCidrs; ALWAYS_INTERNAL is never external either way.
   */
  clusterCidrs?: string[];
  replaceDefaultClusterCidrs?: boolean;
}

export interface CompiledSnapshot {
  bytes: Uint8Array;
  /** sha256 of bytes, hex. */
  hash: string;
  /** Whether any policy selects the pod (else nothing is enforced). */
  selected: boolean;
  /** Refs of the compiled policies, in evaluation order (engine policy index = array index). */
  policies: string[];
  /** The compiled policies themselves, same order. */
  compiled: Policy[];
  /** Largest resolutionGraceSeconds among them. */
  maxGraceSeconds: number;
}

export function fnv1a32(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

class Strings {
  private readonly offsets = new Map<string, number>();
  private readonly chunks: Buffer[] = [];
  length = 0;
  add(s: string): { off: number; len: number } {
    let off = this.offsets.get(s);
    const bytes = Buffer.from(s, "latin1");
    if (off === undefined) {
      off = this.length;
      this.offsets.set(s, off);
      this.chunks.push(bytes);
      this.length += bytes.length;
    }
    return { off, len: bytes.length };
  }
  bytes(): Buffer { return Buffer.concat(this.chunks); }
}

function writeNetwork(view: DataView, at: number, n: Network, isExcept: boolean): void {
  view.setUint8(at + L.CIDR_FAMILY, n.family);
  view.setUint8(at + L.CIDR_PREFIX, n.prefix);
  view.setUint8(at + L.CIDR_EXCEPT, isExcept ? 1 : 0);
  view.setUint8(at + L.CIDR_RESERVED, 0);
  view.setBigUint64(at + L.CIDR_HI, (n.address >> 64n) & 0xffffffffffffffffn, true);
  view.setBigUint64(at + L.CIDR_LO, n.address & 0xffffffffffffffffn, true);
}

// Parsed cluster CIDR lists, by their text (control compiles every pod with the same list).
const clusterCache = new Map<string, Network[]>();

function clusterNetworks(clusterCidrs: readonly string[]): Network[] {
  const key = clusterCidrs.join(",");
  let nets = clusterCache.get(key);
  if (!nets) {
    // Whatever the caller passes, these stay inside (loopback, link-local, metadata services).
    const all = [...new Set([...ALWAYS_INTERNAL.map((e) => e.cidr), ...clusterCidrs])];
    nets = all.map((c) => {
      const n = parseCidr(c);
      if (isProblem(n)) throw new Error(`cluster CIDR "${c}": ${n.message} (${n.hint})`);
      return n;
    });
    if (clusterCache.size > 16) clusterCache.clear();
    clusterCache.set(key, nets);
  }
  return nets;
}

type StringRef = { off: number; len: number };

/** Where each section starts, and the table cursors the rule writer advances. */
interface Writer {
  view: DataView;
  offProtocols: number; offPolicies: number; offRules: number; offPatterns: number;
  offCidrs: number; offCluster: number; offPorts: number; offStrings: number;
  usedProtocols: readonly string[];
  ruleNames: readonly StringRef[];
  patternRefs: readonly (StringRef & { kind: number })[];
  rule: number; pattern: number; cidr: number; port: number;
}

/** Encodes already-selected, ordered policies (exported for tests of the format itself). */
export function encodeSnapshot(ordered: readonly Policy[], selected: boolean, clusterCidrs: readonly string[]): Uint8Array {
  const cluster = clusterNetworks(clusterCidrs);
  const usedProtocols = PROTOCOL_LABELS.filter((p) => ordered.some((pol) => pol.rules.some((r) => r.protocols?.includes(p))));
  const rules = ordered.flatMap((p) => p.rules);
  const counts = {
    policies: ordered.length,
    protocols: usedProtocols.length,
    rules: rules.length,
    patterns: rules.reduce((n, r) => n + (r.domains?.length ?? 0), 0),
    cidrs: rules.reduce((n, r) => n + (r.cidrs ?? []).reduce((m, c) => m + 1 + c.except.length, 0), 0),
    ports: rules.reduce((n, r) => n + (r.ports?.length ?? 0), 0),
    cluster: cluster.length,
  };
  if (ordered.length > 4096 || rules.length > 65535) throw new Error(`too many policies (${ordered.length}) or rules (${rules.length}) for one pod`);

  // Strings first so their total length is known (offsets are stable in insertion order).
  const strings = new Strings();
  const protocolRefs = usedProtocols.map((p) => strings.add(p));
  const policyRefs = ordered.map((p) => strings.add(p.ref));
  const ruleNames = rules.map((r) => (r.name ? strings.add(r.name) : { off: 0, len: 0 }));
  const patternRefs = rules.flatMap((r) => (r.domains ?? []).map((d) => ({ kind: PATTERN_CODE[d.kind], ...strings.add(d.suffix) })));
  const stringBytes = strings.bytes();

  const w = sectionWriter(counts, usedProtocols, ruleNames, patternRefs);
  const total = w.offStrings + stringBytes.length;
  const bytes = new Uint8Array(total);
  w.view = new DataView(bytes.buffer);
  writeHeader(w.view, total, selected, counts, stringBytes.length);
  protocolRefs.forEach((s, i) => {
    const at = w.offProtocols + i * L.PROTOCOL_ENTRY_SIZE;
    w.view.setUint32(at + L.PROTO_OFF, s.off, true);
    w.view.setUint16(at + L.PROTO_LEN, s.len, true);
  });
  ordered.forEach((p, pi) => {
    writePolicy(w.view, w.offPolicies + pi * L.POLICY_ENTRY_SIZE, p, policyRefs[pi]!, w.rule);
    p.rules.forEach((r, ri) => writeRule(w, r, pi, ri));
  });
  cluster.forEach((n, i) => writeNetwork(w.view, w.offCluster + i * L.CIDR_ENTRY_SIZE, n, false));
  bytes.set(stringBytes, w.offStrings);
  w.view.setUint32(L.HDR_CHECKSUM, fnv1a32(bytes, L.HDR_CHECKSUM_FROM, total), true);
  return bytes;
}

type Counts = { policies: number; protocols: number; rules: number; patterns: number; cidrs: number; ports: number; cluster: number };

function sectionWriter(c: Counts, usedProtocols: readonly string[], ruleNames: readonly StringRef[], patternRefs: Writer["patternRefs"]): Writer {
  const offProtocols = L.HEADER_SIZE;
  const offPolicies = offProtocols + c.protocols * L.PROTOCOL_ENTRY_SIZE;
  const offRules = offPolicies + c.policies * L.POLICY_ENTRY_SIZE;
  const offPatterns = offRules + c.rules * L.RULE_ENTRY_SIZE;
  const offCidrs = offPatterns + c.patterns * L.PATTERN_ENTRY_SIZE;
  const offCluster = offCidrs + c.cidrs * L.CIDR_ENTRY_SIZE;
  const offPorts = offCluster + c.cluster * L.CIDR_ENTRY_SIZE;
  const offStrings = offPorts + c.ports * L.PORT_ENTRY_SIZE;
  return {
    view: new DataView(new ArrayBuffer(0)),
    offProtocols, offPolicies, offRules, offPatterns, offCidrs, offCluster, offPorts, offStrings,
    usedProtocols, ruleNames, patternRefs, rule: 0, pattern: 0, cidr: 0, port: 0,
  };
}

function writeHeader(view: DataView, total: number, selected: boolean, c: Counts, stringsLength: number): void {
  view.setUint32(L.HDR_MAGIC, L.SNAPSHOT_MAGIC, true);
  view.setUint16(L.HDR_VERSION, L.FORMAT_VERSION, true);
  view.setUint16(L.HDR_FLAGS, selected ? 1 : 0, true);
  view.setUint32(L.HDR_TOTAL, total, true);
  view.setUint16(L.HDR_POLICY_COUNT, c.policies, true);
  view.setUint16(L.HDR_PROTOCOL_COUNT, c.protocols, true);
  view.setUint32(L.HDR_RULE_COUNT, c.rules, true);
  view.setUint32(L.HDR_PATTERN_COUNT, c.patterns, true);
  view.setUint32(L.HDR_CIDR_COUNT, c.cidrs, true);
  view.setUint32(L.HDR_PORT_COUNT, c.ports, true);
  view.setUint32(L.HDR_STRINGS_LENGTH, stringsLength, true);
  view.setUint16(L.HDR_CLUSTER_COUNT, c.cluster, true);
}

function writePolicy(view: DataView, at: number, p: Policy, ref: StringRef, firstRule: number): void {
  view.setUint32(at + L.POL_REF_OFF, ref.off, true);
  view.setUint16(at + L.POL_REF_LEN, ref.len, true);
  view.setUint8(at + L.POL_TIER, TIER_CODE[p.tier]);
  view.setUint8(at + L.POL_MODE, p.mode === "Monitor" ? L.MODE_MONITOR : L.MODE_ENFORCE);
  view.setUint32(at + L.POL_FIRST_RULE, firstRule, true);
  view.setUint32(at + L.POL_RULE_COUNT, p.rules.length, true);
  view.setUint32(at + L.POL_GRACE, p.resolutionGraceSeconds, true);
  view.setUint8(at + L.POL_UNATTRIBUTED, p.unattributed ? UNATTRIBUTED_CODE[p.unattributed] : 0);
  view.setUint8(at + L.POL_KIND, p.kind === "EgressPolicy" ? L.KIND_NAMESPACED : L.KIND_CLUSTER);
  view.setUint8(at + L.POL_MESH_CONFIG, p.meshConfigEvidence === "Ignore" ? L.MESH_CONFIG_IGNORE : L.MESH_CONFIG_USE);
}

function ruleFields(r: Rule): number {
  let fields = 0;
  if (r.domains?.length) fields |= L.RULE_DOMAINS;
  if (r.cidrs?.length) fields |= L.RULE_CIDRS;
  if (r.external) fields |= L.RULE_EXTERNAL;
  if (r.ports?.length) fields |= L.RULE_PORTS;
  if (r.protocols?.length) fields |= L.RULE_PROTOCOLS;
  if (r.encryptedClientHello === "Allow" && r.domains?.length) fields |= L.RULE_ECH_ALLOWED;
  return fields;
}

/** Rule `ri` of policy `pi`, with its patterns, CIDRs and ports at the writer's cursors. */
function writeRule(w: Writer, r: Rule, pi: number, ri: number): void {
  const { view } = w;
  const ra = w.offRules + w.rule * L.RULE_ENTRY_SIZE;
  view.setUint8(ra + L.RULE_ACTION, ACTION_CODE[r.action]);
  view.setUint8(ra + L.RULE_FIELDS, ruleFields(r));
  view.setUint16(ra + L.RULE_POLICY, pi, true);
  view.setUint32(ra + L.RULE_NAME_OFF, w.ruleNames[w.rule]!.off, true);
  view.setUint16(ra + L.RULE_NAME_LEN, w.ruleNames[w.rule]!.len, true);
  view.setUint16(ra + L.RULE_INDEX, ri, true);
  view.setUint32(ra + L.RULE_PATTERN_START, r.domains?.length ? w.pattern : 0, true);
  view.setUint32(ra + L.RULE_PATTERN_COUNT, r.domains?.length ?? 0, true);
  for (const _ of r.domains ?? []) {
    const pr = w.patternRefs[w.pattern]!;
    const pa = w.offPatterns + w.pattern++ * L.PATTERN_ENTRY_SIZE;
    view.setUint8(pa + L.PAT_KIND, pr.kind);
    view.setUint16(pa + L.PAT_LEN, pr.len, true);
    view.setUint32(pa + L.PAT_OFF, pr.off, true);
  }
  const cidrStart = w.cidr;
  for (const c of r.cidrs ?? []) {
    writeNetwork(view, w.offCidrs + w.cidr++ * L.CIDR_ENTRY_SIZE, c.network, false);
    for (const e of c.except) writeNetwork(view, w.offCidrs + w.cidr++ * L.CIDR_ENTRY_SIZE, e, true);
  }
  view.setUint32(ra + L.RULE_CIDR_START, r.cidrs?.length ? cidrStart : 0, true);
  view.setUint32(ra + L.RULE_CIDR_COUNT, w.cidr - cidrStart, true);
  view.setUint32(ra + L.RULE_PORT_START, r.ports?.length ? w.port : 0, true);
  view.setUint32(ra + L.RULE_PORT_COUNT, r.ports?.length ?? 0, true);
  for (const o of r.ports ?? []) {
    const pa = w.offPorts + w.port++ * L.PORT_ENTRY_SIZE;
    view.setUint16(pa + L.PORT_FIRST, o.first, true);
    view.setUint16(pa + L.PORT_LAST, o.last, true);
  }
  let mask = 0n;
  for (const proto of r.protocols ?? []) mask |= 1n << BigInt(w.usedProtocols.indexOf(proto));
  view.setBigUint64(ra + L.RULE_PROTOCOL_BITS, mask, true);
  w.rule++;
}

/** Compiles the snapshot for one pod: the policies selecting it, in evaluation order. */
export function compilePodSnapshot(policies: readonly Policy[], pod: PodIdentity, namespaceLabels: Record<string, string>, options: CompileOptions = {}): CompiledSnapshot {
  const compiled = orderPolicies(policies.filter((p) => policySelectsPod(p, pod, namespaceLabels)));
  const selected = compiled.length > 0;
  const bytes = encodeSnapshot(compiled, selected, effectiveClusterCidrs(options.clusterCidrs, options.replaceDefaultClusterCidrs));
  return {
    bytes,
    hash: createHash("sha256").update(bytes).digest("hex"),
    selected,
    policies: compiled.map((p) => p.ref),
    compiled,
    maxGraceSeconds: compiled.reduce((m, p) => Math.max(m, p.resolutionGraceSeconds), 0),
  };
}
