// `egret learn`: observed connections → one EgressPolicy per workload that allows what was seen —
// by the names the pod itself resolved, never by what it claimed. Observations come from a capture
// replayed through `egret simulate`'s pipeline (the same observer, detector and engine) and/or from
// control's verdict audit log. What is left out is counted with its reason.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { analyzeCapture } from "../dns/offline.js";
import { parsePodsFile, type PodsFile } from "../control/file-source.js";
import { canonicalPodsYaml, simulateCapture, SimulateInputError, type SimulatedConnection } from "../simulate/replay.js";
import { loadPolicyFiles } from "../policy/index.js";
import type { Logger } from "../common/log.js";
import { collapseNames } from "./collapse.js";
import { stableLabels, workloadKey, workloadName, workloadSelector, type Workload } from "./workloads.js";
import { tryParseHostPort } from "../common/host-port.js";

/** The policy the replay evaluates with: it selects every pod, decides nothing (Monitor), and makes
 *  every connection's verdict depend on the pod's names, so the filter looks them up and checks claims. */
export const OBSERVER_POLICY = "egret-learn-observer";

export type LeftOut =
  | "claim-unverified"      // SNI/Host/CONNECT target the pod's DNS evidence did not support
  | "unattributed"          // an address the pod never resolved (kept as a commented section)
  | "not-a-pod"             // no pod of the pods file made it
  | "resolution-expired"    // the pod's answer for the address had expired
  | "undecided"             // the capture ended before the filter could decide (no bytes)
  | "denied-by-existing"    // a --policy rule denies it
  | "denied-by-rule";       // an audit record of a Deny rule in force (not a default deny)

export const LEFT_OUT_TEXT: Record<LeftOut, string> = {
  "claim-unverified": "the SNI, Host or CONNECT target named something the pod's DNS answers did not map to the address (a claim, never learnt)",
  unattributed: "the address was never resolved by the pod (never learnt by name; listed in the policy's unattributed section)",
  "not-a-pod": "no pod of the pods file made the connection",
  "resolution-expired": "the pod's DNS answer for the address had expired",
  undecided: "the capture ended before the connection sent anything the filter could decide on",
  "denied-by-existing": "a policy given with --policy denies it",
  "denied-by-rule": "the audit log shows a Deny rule in force decided it",
};

/** One observed connection, normalised from either source. */
export interface Seen {
  /** The client's address:port ("ip:port"), to tell connections apart. */
  client: string;
  pod: string | null;
  ip: string;
  port: number;
  names: string[];
  protocol: string;
  /** Time in ms since the epoch. */
  time: number;
  outcome: "learn" | "covered" | LeftOut;
  source: "capture" | "audit";
}

export interface LearnOptions {
  pcap?: Uint8Array;
  podsFile: string;
  policyFiles: string[];
  auditLog?: string;
  minSiblings: number;
  mode: "Monitor" | "Enforce";
  allowUnattributedCidrs: boolean;
  log: Logger;
  wasm?: string;
}

export interface LearnResult {
  yaml: string;
  summary: string;
  seen: Seen[];
  rejectedEvidence: Record<string, number>;
}

/** An address with its port ("ip:port", "[v6]:port"); a bare address has port 0. */
function splitHostPort(text: string): { ip: string; port: number } {
  const m = tryParseHostPort(text);
  return m ? { ip: m.host, port: m.port } : { ip: text, port: 0 };
}

/** Names learnt for a connection: the name actually used when there is one, else every name the pod resolved. */
function learntNames(names: string[], used: string | null | undefined): string[] {
  const c = used?.toLowerCase().replace(/\.$/, "");
  return c && names.includes(c) ? [c] : names;
}

/**
 * The one name a replayed connection used, when a claim (SNI, Host, :authority, CONNECT target)
 * narrowed its candidates: the filter's own matched name from the replay, so the narrowing rules
 * are the filter's; else its SNI.
 */
function usedName(c: SimulatedConnection): string | null {
  const claimed = [...c.decisions].reverse().find((d) => d.matchedName && (d.sni || d.host));
  return claimed?.matchedName ?? c.sni;
}

/**
 * Where the connection went as the filter judged it: the server, or for a request through a
 * forward proxy, the proxy's target (its port, and its address when the target is an IP literal) —
 * a rule for the proxy's own port would never match what the filter evaluates.
 */
function destinationOf(c: SimulatedConnection): { ip: string; port: number } {
  const server = splitHostPort(c.server);
  if (!c.proxyTarget) return server;
  const host = c.proxyTarget.host.replace(/^\[(.*)\]$/, "$1");
  return { ip: isIP(host) ? host : server.ip, port: c.proxyTarget.port };
}

function classifySimulated(c: SimulatedConnection): Seen {
  const { ip, port } = destinationOf(c);
  const base = { client: c.client, pod: c.pod, ip, port, names: learntNames(c.names, usedName(c)), protocol: c.protocol, time: Math.round(c.time * 1000), source: "capture" as const };
  if (c.pod === null) return { ...base, outcome: "not-a-pod" };
  if (c.reason === "undecided") return { ...base, outcome: "undecided" };
  if (c.policy !== OBSERVER_POLICY) {
    const allowed = c.reason === "allowed" || c.reason === "alert-by-rule";
    return { ...base, outcome: allowed ? "covered" : "denied-by-existing" };
  }
  if (c.reason === "alert-by-rule") return { ...base, outcome: "learn" };
  const why = /Enforce would deny: (\S+)/.exec(c.detail ?? "")?.[1] ?? c.reason;
  if (why === "sni-unverified" || why === "host-unverified") return { ...base, outcome: "claim-unverified" };
  if (why === "unattributed" || c.names.length === 0) return { ...base, names: [], outcome: "unattributed" };
  return { ...base, outcome: "resolution-expired" };
}

/** Parses control's audit log (JSON lines of kind egret.verdict); bad lines are counted. */
export function readAuditLog(text: string, pods: Set<string>, existingRefs: Set<string>): { seen: Seen[]; badLines: number } {
  const seen: Seen[] = [];
  let badLines = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try { r = JSON.parse(line) as Record<string, unknown>; } catch { badLines++; continue; }
    if (r.kind !== "egret.verdict" || typeof r.dst !== "string") { badLines++; continue; }
    const { ip, port } = splitHostPort(r.dst);
    const names = Array.isArray(r.names) ? r.names.map(String) : [];
    const claim = (typeof r.matched_name === "string" && r.matched_name) || (typeof r.sni === "string" && r.sni) || (typeof r.host === "string" && r.host) || null;
    const pod = typeof r.pod === "string" && r.pod ? r.pod : null;
    const time = typeof r.time === "string" ? Date.parse(r.time) : NaN;
    const base = { client: typeof r.src === "string" ? r.src : "", pod, ip, port, names: learntNames(names, claim), protocol: typeof r.protocol === "string" && r.protocol ? r.protocol : "unknown", time: Number.isFinite(time) ? time : 0, source: "audit" as const };
    const reason = String(r.reason ?? "");
    const verdict = String(r.verdict ?? "");
    let outcome: Seen["outcome"];
    if (!pod || !pods.has(pod)) outcome = "not-a-pod";
    else if (reason === "sni-unverified" || reason === "host-unverified") outcome = "claim-unverified";
    else if ((verdict === "allow" || verdict === "alert") && existingRefs.has(String(r.policy ?? ""))) outcome = "covered";
    else if (reason === "denied-by-rule") outcome = "denied-by-rule";
    else if (names.length === 0) outcome = "unattributed";
    else outcome = "learn";
    seen.push({ ...base, ...(outcome === "unattributed" ? { names: [] } : {}), outcome });
  }
  return { seen, badLines };
}

/** The observer policy: Alert on every name under the top-level domains the capture's DNS evidence mentions. */
function observerPolicy(tlds: string[]): unknown {
  return {
    apiVersion: "egret.dev/v1alpha1", kind: "ClusterEgressPolicy", metadata: { name: OBSERVER_POLICY },
    spec: {
      tier: "Baseline", priority: 1000, mode: "Monitor", namespaceSelector: {},
      rules: tlds.length ? [{ name: "any-resolved-name", action: "Alert", to: { domains: tlds.flatMap((t) => [t, `**.${t}`]) } }] : [],
    },
  };
}

function loadPods(podsFile: string): PodsFile {
  let text: string;
  try { text = readFileSync(podsFile, "utf8"); } catch (e) { throw new SimulateInputError(`cannot read the pods file ${podsFile}: ${(e as Error).message}`); }
  try { return parsePodsFile(canonicalPodsYaml(text) ?? text, podsFile); } catch (e) { throw new SimulateInputError((e as Error).message); }
}

export async function learn(o: LearnOptions): Promise<LearnResult> {
  const pods = loadPods(o.podsFile);
  const existing = loadPolicyFiles(o.policyFiles);
  const errors = existing.diagnostics.filter((d) => d.severity === "error");
  if (errors.length) throw new SimulateInputError(`--policy: ${errors.length} error(s); run egret validate ${o.policyFiles.join(" ")}`);
  const seen: Seen[] = [];
  const rejectedEvidence: Record<string, number> = {};
  if (o.pcap) {
    const tlds = new Set<string>();
    analyzeCapture(o.pcap, {
      trustedResolvers: null,
      onObservation: (obs) => { for (const n of [obs.qname, ...obs.cnameChain]) { const t = n.split(".").pop(); if (t && n !== ".") tlds.add(t.toLowerCase()); } },
      onReject: (reason) => { rejectedEvidence[reason] = (rejectedEvidence[reason] ?? 0) + 1; },
    });
    const dir = mkdtempSync(join(tmpdir(), "egret-learn-"));
    try {
      const observer = join(dir, "observer.yaml");
      writeFileSync(observer, stringify(observerPolicy([...tlds].sort())));
      const results = await simulateCapture({ policyPaths: [...o.policyFiles, observer], podsFile: o.podsFile, capture: o.pcap, log: o.log, ...(o.wasm ? { wasm: o.wasm } : {}) });
      seen.push(...results.map(classifySimulated));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  let badLines = 0;
  if (o.auditLog) {
    let text: string;
    try { text = readFileSync(o.auditLog, "utf8"); } catch (e) { throw new SimulateInputError(`cannot read --audit-log ${o.auditLog}: ${(e as Error).message}`); }
    const r = readAuditLog(text, new Set(pods.pods.map((p) => `${p.namespace}/${p.name}`)), new Set(existing.policies.map((p) => p.ref)));
    seen.push(...r.seen);
    badLines = r.badLines;
  }
  const { yaml, workloads } = propose(seen, pods, o);
  return { yaml, summary: summarize(seen, rejectedEvidence, badLines, workloads, o), seen, rejectedEvidence };
}

interface RuleDraft { patterns: Map<string, string[]>; ports: Set<number>; protocol: string; conns: Seen[] }

/** Builds the policies (YAML with comments) from the classified connections. */
export function propose(seen: Seen[], pods: PodsFile, o: Pick<LearnOptions, "minSiblings" | "mode" | "allowUnattributedCidrs" | "policyFiles">): { yaml: string; workloads: number } {
  const podInfo = new Map(pods.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  const workloads = new Map<string, Workload>();
  const byWorkload = new Map<string, Seen[]>();
  for (const s of seen) {
    if (!s.pod || (s.outcome !== "learn" && s.outcome !== "unattributed" && s.outcome !== "covered" && s.outcome !== "claim-unverified" && s.outcome !== "resolution-expired" && s.outcome !== "denied-by-existing" && s.outcome !== "denied-by-rule")) continue;
    const p = podInfo.get(s.pod);
    if (!p) continue;
    const key = workloadKey(p.namespace, p.labels);
    const w = workloads.get(key) ?? { namespace: p.namespace, labels: stableLabels(p.labels), pods: new Set<string>(), key };
    w.pods.add(s.pod);
    workloads.set(key, w);
    byWorkload.set(key, [...(byWorkload.get(key) ?? []), s]);
  }
  const all = [...workloads.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  const usedNames = new Set<string>();
  const docs: string[] = [];
  for (const w of all) {
    const conns = byWorkload.get(w.key) ?? [];
    let name = policyName(workloadName(w));
    for (let i = 2; usedNames.has(`${w.namespace}/${name}`); i++) name = policyName(`${workloadName(w)}-${i}`);
    usedNames.add(`${w.namespace}/${name}`);
    docs.push(renderPolicy(w, name, workloadSelector(w, all), conns, o));
  }
  const header = [
    `# Egret policies learnt by \`egret learn\` (${o.mode} mode) — one EgressPolicy per workload that connected.`,
    "# Names are those the pods themselves resolved; claimed SNI/Host/CONNECT targets the DNS evidence",
    "# did not support, never-resolved addresses and rejected DNS evidence were never learnt as allowed.",
    ...(o.policyFiles.length ? [`# Only what ${o.policyFiles.join(", ")} do not already allow is proposed here.`] : []),
  ].join("\n");
  return { yaml: `${header}\n${docs.join("")}`, workloads: all.length };
}

function policyName(text: string): string {
  const n = `learned-${text}`.toLowerCase().replace(/[^a-z0-9.-]+/g, "-").replace(/-+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  return n.slice(0, 200).replace(/[-.]+$/, "");
}

function isoRange(conns: Seen[]): string {
  const times = conns.map((c) => c.time).filter((t) => t > 0).sort((a, b) => a - b);
  if (!times.length) return "time unknown";
  const f = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
  return `first ${f(times[0]!)}, last ${f(times[times.length - 1]!)}`;
}

function podsOf(conns: Seen[]): string {
  const pods = [...new Set(conns.map((c) => c.pod!))].sort();
  return pods.length > 5 ? `${pods.slice(0, 5).join(", ")} and ${pods.length - 5} more` : pods.join(", ");
}

function renderPolicy(w: Workload, name: string, selector: unknown, conns: Seen[], o: Pick<LearnOptions, "minSiblings" | "mode" | "allowUnattributedCidrs">): string {
  const learnt = conns.filter((c) => c.outcome === "learn");
  // One draft per (protocol, port set) after collapsing the names seen with that protocol.
  const byProto = new Map<string, Seen[]>();
  for (const c of learnt) {
    const proto = c.protocol && c.protocol !== "unknown" ? c.protocol : "";
    byProto.set(proto, [...(byProto.get(proto) ?? []), c]);
  }
  const drafts: RuleDraft[] = [];
  for (const [protocol, list] of [...byProto.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const patterns = collapseNames(new Set(list.flatMap((c) => c.names)), o.minSiblings);
    // Ports per pattern, then patterns sharing the same port set share a rule.
    const portsOf = new Map<string, Set<number>>();
    for (const [pattern, covered] of patterns) {
      const ports = new Set(list.filter((c) => c.names.some((n) => covered.includes(n))).map((c) => c.port));
      portsOf.set(pattern, ports);
    }
    const groups = new Map<string, RuleDraft>();
    for (const [pattern, covered] of patterns) {
      const ports = portsOf.get(pattern)!;
      const key = [...ports].sort((a, b) => a - b).join(",");
      const d: RuleDraft = groups.get(key) ?? { patterns: new Map(), ports, protocol, conns: [] };
      d.patterns.set(pattern, covered);
      d.conns.push(...list.filter((c) => c.names.some((n) => covered.includes(n)) && !d.conns.includes(c)));
      groups.set(key, d);
    }
    drafts.push(...groups.values());
  }
  const unattributed = conns.filter((c) => c.outcome === "unattributed");
  const byDest = new Map<string, Seen[]>();
  for (const c of unattributed) byDest.set(`${c.ip}|${c.port}`, [...(byDest.get(`${c.ip}|${c.port}`) ?? []), c]);

  const lines: string[] = ["---"];
  lines.push(`# workload ${w.namespace} ${JSON.stringify(w.labels)}: ${w.pods.size} pod(s) (${[...w.pods].sort().slice(0, 5).join(", ")}${w.pods.size > 5 ? ", …" : ""}); ${conns.length} connection(s) seen, ${learnt.length} learnt.`);
  const leftOut = countBy(conns.filter((c) => c.outcome !== "learn" && c.outcome !== "unattributed" && c.outcome !== "covered"), (c) => c.outcome);
  for (const [why, n] of leftOut) lines.push(`# left out: ${n} connection(s): ${LEFT_OUT_TEXT[why as LeftOut]}`);
  const covered = conns.filter((c) => c.outcome === "covered").length;
  if (covered) lines.push(`# ${covered} connection(s) already allowed by the --policy files: not repeated here.`);
  lines.push("apiVersion: egret.dev/v1alpha1", "kind: EgressPolicy", "metadata:", `  name: ${name}`, `  namespace: ${w.namespace}`, "spec:", `  mode: ${o.mode}`);
  lines.push(indent(stringify({ podSelector: selector }, { lineWidth: 0 }).trimEnd(), 2));
  const ruleTexts: string[] = [];
  const ruleNames = new Set<string>();
  drafts.forEach((d) => {
    const patterns = [...d.patterns.keys()];
    const ports = [...d.ports].sort((a, b) => a - b);
    let rn = ruleNameFor(patterns[0]!, d.protocol, ports);
    for (let i = 2; ruleNames.has(rn); i++) rn = `${ruleNameFor(patterns[0]!, d.protocol, ports).slice(0, 58)}-${i}`;
    ruleNames.add(rn);
    const comment = [
      `# ${d.conns.length} connection(s), ${isoRange(d.conns)}; pods: ${podsOf(d.conns)}`,
      ...[...d.patterns].filter(([p]) => p.startsWith("*")).map(([p, covered]) => `# ${p} stands for ${covered.length} names seen: ${covered.slice(0, 6).join(", ")}${covered.length > 6 ? ", …" : ""}`),
    ];
    const rule = { name: rn, action: "Allow", to: { domains: patterns }, ports: ports.map((port) => ({ port })), ...(d.protocol ? { protocols: [d.protocol] } : {}) };
    ruleTexts.push(`${comment.join("\n")}\n${listItem(rule)}`);
  });
  if (o.allowUnattributedCidrs) {
    for (const [key, list] of [...byDest.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [ip, port] = key.split("|");
      const cidr = ip!.includes(":") ? `${ip}/128` : `${ip}/32`;
      const protos = [...new Set(list.map((c) => c.protocol).filter((p) => p && p !== "unknown"))];
      let rn = ruleNameFor(ip!, protos.length === 1 ? protos[0]! : "", [Number(port)]);
      for (let i = 2; ruleNames.has(rn); i++) rn = `${rn.slice(0, 58)}-${i}`;
      ruleNames.add(rn);
      const rule = { name: rn, action: "Allow", to: { cidrs: [{ cidr }] }, ports: [{ port: Number(port) }], ...(protos.length === 1 ? { protocols: protos } : {}) };
      ruleTexts.push(`# unattributed (--allow-unattributed-cidrs): ${list.length} connection(s) to an address the pods never resolved, ${isoRange(list)}; pods: ${podsOf(list)}\n${listItem(rule)}`);
    }
  }
  if (ruleTexts.length === 0) {
    lines.push("  # nothing to allow: every connection seen was left out (see above); in Enforce mode they stay denied");
    lines.push("  rules: []");
  } else {
    lines.push("  rules:");
    for (const t of ruleTexts) lines.push(indent(t, 2));
  }
  if (byDest.size && !o.allowUnattributedCidrs) {
    lines.push("# unattributed: connections to addresses the pods never resolved (not learnt; --allow-unattributed-cidrs makes CIDR rules of them):");
    for (const [key, list] of [...byDest.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [ip, port] = key.split("|");
      lines.push(`#   ${ip}:${port}  ${list.length} connection(s), ${isoRange(list)}; pods: ${podsOf(list)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function ruleNameFor(pattern: string, protocol: string, ports: number[]): string {
  const base = pattern.replace(/^\*\*\./, "any-").replace(/^\*\./, "all-");
  const n = [base, protocol, ports.length === 1 ? String(ports[0]) : ""].filter(Boolean).join("-").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-").replace(/^-+|-+$/g, "");
  return n.slice(0, 60).replace(/-+$/, "") || "rule";
}

function listItem(obj: unknown): string {
  return stringify([obj], { lineWidth: 0 }).trimEnd();
}

function indent(text: string, n: number): string {
  const pad = " ".repeat(n);
  return text.split("\n").map((l) => (l ? pad + l : l)).join("\n");
}

function countBy<T>(items: T[], key: (t: T) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

function summarize(seen: Seen[], rejected: Record<string, number>, badLines: number, workloads: number, o: Pick<LearnOptions, "mode" | "allowUnattributedCidrs" | "policyFiles">): string {
  const learnt = seen.filter((s) => s.outcome === "learn").length;
  const out = [`egret learn: ${seen.length} connection(s) seen, ${learnt} learnt into ${workloads} policy(ies) (mode ${o.mode}).`];
  const covered = seen.filter((s) => s.outcome === "covered").length;
  if (covered) out.push(`  ${covered} already allowed by ${o.policyFiles.join(", ")}: not repeated.`);
  const left = countBy(seen.filter((s) => s.outcome !== "learn" && s.outcome !== "covered" && !(s.outcome === "unattributed" && o.allowUnattributedCidrs)), (s) => s.outcome);
  if (left.length) out.push("left out (never learnt as allowed):");
  for (const [why, n] of left) out.push(`  ${String(n).padStart(5)} ${why}: ${LEFT_OUT_TEXT[why as LeftOut]}`);
  if (o.allowUnattributedCidrs) {
    const n = seen.filter((s) => s.outcome === "unattributed").length;
    if (n) out.push(`  ${n} unattributed connection(s) became CIDR rules (--allow-unattributed-cidrs).`);
  }
  const rej = Object.entries(rejected).sort(([a], [b]) => (a < b ? -1 : 1));
  if (rej.length) out.push(`DNS evidence the observer rejected (never used): ${rej.map(([k, v]) => `${v} ${k}`).join(", ")}`);
  if (badLines) out.push(`audit log: ${badLines} line(s) that are not egret.verdict records were skipped.`);
  return `${out.join("\n")}\n`;
}
