// Compiles the policies selecting one pod into the binary snapshot the engine decodes
// (format: filter/assembly/policy/snapshot.ts — keep both in step). Deterministic: the same
// policies, pod and options always give the same bytes.
import { createHash } from "node:crypto";
import { ALWAYS_INTERNAL, effectiveClusterCidrs, isProblem, parseCidr } from "./network.js";
import { PROTOCOL_LABELS } from "./protocols.js";
import { orderPolicies, policySelectsPod } from "./select.js";
import type { Network, Policy, PodIdentity } from "./types.js";

export const SNAPSHOT_MAGIC = 0x31504745; // "EGP1"
export const SNAPSHOT_FORMAT_VERSION = 1;
const HEADER = 44, PROTOCOL = 8, POLICY = 24, RULE = 44, PATTERN = 8, CIDR = 20, PORT = 4;
const TIER_CODE = { Admin: 0, Namespace: 1, Baseline: 2 } as const;
const ACTION_CODE = { Allow: 1, Deny: 2, Alert: 3, Pass: 4 } as const;
const PATTERN_CODE = { exact: 0, "one-label": 1, "multi-label": 2 } as const;
const UNATTRIBUTED_CODE = { Deny: 1, Alert: 2, Allow: 3 } as const;
const RULE_DOMAINS = 1, RULE_CIDRS = 2, RULE_EXTERNAL = 4, RULE_PORTS = 8, RULE_PROTOCOLS = 16, RULE_ECH_ALLOWED = 32;

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
  view.setUint8(at, n.family);
  view.setUint8(at + 1, n.prefix);
  view.setUint8(at + 2, isExcept ? 1 : 0);
  view.setUint8(at + 3, 0);
  view.setBigUint64(at + 4, (n.address >> 64n) & 0xffffffffffffffffn, true);
  view.setBigUint64(at + 12, n.address & 0xffffffffffffffffn, true);
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

/** Encodes already-selected, ordered policies (exported for tests of the format itself). */
export function encodeSnapshot(ordered: readonly Policy[], selected: boolean, clusterCidrs: readonly string[]): Uint8Array {
  const cluster = clusterNetworks(clusterCidrs);
  const usedProtocols = PROTOCOL_LABELS.filter((p) => ordered.some((pol) => pol.rules.some((r) => r.protocols?.includes(p))));
  const strings = new Strings();
  const rules = ordered.flatMap((p) => p.rules);
  const patternCount = rules.reduce((n, r) => n + (r.domains?.length ?? 0), 0);
  const cidrCount = rules.reduce((n, r) => n + (r.cidrs ?? []).reduce((m, c) => m + 1 + c.except.length, 0), 0);
  const portCount = rules.reduce((n, r) => n + (r.ports?.length ?? 0), 0);
  if (ordered.length > 4096 || rules.length > 65535) throw new Error(`too many policies (${ordered.length}) or rules (${rules.length}) for one pod`);

  // Strings first so their total length is known (offsets are stable in insertion order).
  const protocolRefs = usedProtocols.map((p) => strings.add(p));
  const policyRefs = ordered.map((p) => strings.add(p.ref));
  const ruleNames = rules.map((r) => (r.name ? strings.add(r.name) : { off: 0, len: 0 }));
  const patternRefs = rules.flatMap((r) => (r.domains ?? []).map((d) => ({ kind: PATTERN_CODE[d.kind], ...strings.add(d.suffix) })));
  const stringBytes = strings.bytes();

  const offProtocols = HEADER;
  const offPolicies = offProtocols + usedProtocols.length * PROTOCOL;
  const offRules = offPolicies + ordered.length * POLICY;
  const offPatterns = offRules + rules.length * RULE;
  const offCidrs = offPatterns + patternCount * PATTERN;
  const offCluster = offCidrs + cidrCount * CIDR;
  const offPorts = offCluster + cluster.length * CIDR;
  const offStrings = offPorts + portCount * PORT;
  const total = offStrings + stringBytes.length;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);

  view.setUint32(0, SNAPSHOT_MAGIC, true);
  view.setUint16(4, SNAPSHOT_FORMAT_VERSION, true);
  view.setUint16(6, selected ? 1 : 0, true);
  view.setUint32(8, total, true);
  view.setUint16(16, ordered.length, true);
  view.setUint16(18, usedProtocols.length, true);
  view.setUint32(20, rules.length, true);
  view.setUint32(24, patternCount, true);
  view.setUint32(28, cidrCount, true);
  view.setUint32(32, portCount, true);
  view.setUint32(36, stringBytes.length, true);
  view.setUint16(40, cluster.length, true);

  protocolRefs.forEach((s, i) => {
    view.setUint32(offProtocols + i * PROTOCOL, s.off, true);
    view.setUint16(offProtocols + i * PROTOCOL + 4, s.len, true);
  });
  let ruleIndex = 0, patternIndex = 0, cidrIndex = 0, portIndex = 0;
  ordered.forEach((p, pi) => {
    const at = offPolicies + pi * POLICY;
    view.setUint32(at, policyRefs[pi]!.off, true);
    view.setUint16(at + 4, policyRefs[pi]!.len, true);
    view.setUint8(at + 6, TIER_CODE[p.tier]);
    view.setUint8(at + 7, p.mode === "Monitor" ? 2 : 1);
    view.setUint32(at + 8, ruleIndex, true);
    view.setUint32(at + 12, p.rules.length, true);
    view.setUint32(at + 16, p.resolutionGraceSeconds, true);
    view.setUint8(at + 20, p.unattributed ? UNATTRIBUTED_CODE[p.unattributed] : 0);
    view.setUint8(at + 21, p.kind === "EgressPolicy" ? 1 : 0);
    view.setUint8(at + 22, p.meshConfigEvidence === "Ignore" ? 1 : 0);
    p.rules.forEach((r, ri) => {
      const ra = offRules + ruleIndex * RULE;
      let fields = 0;
      if (r.domains?.length) fields |= RULE_DOMAINS;
      if (r.cidrs?.length) fields |= RULE_CIDRS;
      if (r.external) fields |= RULE_EXTERNAL;
      if (r.ports?.length) fields |= RULE_PORTS;
      if (r.protocols?.length) fields |= RULE_PROTOCOLS;
      if (r.encryptedClientHello === "Allow" && r.domains?.length) fields |= RULE_ECH_ALLOWED;
      view.setUint8(ra, ACTION_CODE[r.action]);
      view.setUint8(ra + 1, fields);
      view.setUint16(ra + 2, pi, true);
      view.setUint32(ra + 4, ruleNames[ruleIndex]!.off, true);
      view.setUint16(ra + 8, ruleNames[ruleIndex]!.len, true);
      view.setUint16(ra + 10, ri, true);
      view.setUint32(ra + 12, r.domains?.length ? patternIndex : 0, true);
      view.setUint32(ra + 16, r.domains?.length ?? 0, true);
      for (const _ of r.domains ?? []) {
        const pr = patternRefs[patternIndex]!;
        const pa = offPatterns + patternIndex * PATTERN;
        view.setUint8(pa, pr.kind);
        view.setUint16(pa + 2, pr.len, true);
        view.setUint32(pa + 4, pr.off, true);
        patternIndex++;
      }
      const cidrStart = cidrIndex;
      for (const c of r.cidrs ?? []) {
        writeNetwork(view, offCidrs + cidrIndex++ * CIDR, c.network, false);
        for (const e of c.except) writeNetwork(view, offCidrs + cidrIndex++ * CIDR, e, true);
      }
      view.setUint32(ra + 20, r.cidrs?.length ? cidrStart : 0, true);
      view.setUint32(ra + 24, cidrIndex - cidrStart, true);
      view.setUint32(ra + 28, r.ports?.length ? portIndex : 0, true);
      view.setUint32(ra + 32, r.ports?.length ?? 0, true);
      for (const o of r.ports ?? []) {
        view.setUint16(offPorts + portIndex * PORT, o.first, true);
        view.setUint16(offPorts + portIndex * PORT + 2, o.last, true);
        portIndex++;
      }
      let mask = 0n;
      for (const proto of r.protocols ?? []) mask |= 1n << BigInt(usedProtocols.indexOf(proto));
      view.setBigUint64(ra + 36, mask, true);
      ruleIndex++;
    });
  });
  cluster.forEach((n, i) => writeNetwork(view, offCluster + i * CIDR, n, false));
  bytes.set(stringBytes, offStrings);
  view.setUint32(12, fnv1a32(bytes, 16, total), true);
  return bytes;
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
