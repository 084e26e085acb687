// How `egret observe` and `egret status` print: a readable table by default (colour only on a
// terminal, never with NO_COLOR), or JSON — for observe one audit record per line, the same
// object control writes to its audit log (control/src/control/README.md "Audit lines").
import { auditRecordOf, enumLabel, type AuditRecord } from "../control/reports.js";
import type { GetStatusResponse, VerdictEvent } from "../proto/messages.js";

export interface Style {
  colour: boolean;
}

/** Colour when writing to a terminal, unless NO_COLOR is set (https://no-color.org). */
export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return { colour: stream.isTTY === true && !env.NO_COLOR };
}

const SGR = { red: "31", green: "32", yellow: "33", dim: "2", bold: "1" } as const;
function paint(style: Style, colour: keyof typeof SGR, text: string): string {
  return style.colour ? `\u001b[${SGR[colour]}m${text}\u001b[0m` : text;
}

const VERDICT_COLOUR: Record<string, keyof typeof SGR> = { allow: "green", deny: "red", "would-deny": "yellow", alert: "yellow" };

// ---- observe ---------------------------------------------------------------------------------

export const OBSERVE_COLUMNS = ["TIME", "POD", "DESTINATION", "NAME", "PROTOCOL", "VERDICT", "REASON", "POLICY#RULE"] as const;
const WIDTHS = [12, 24, 21, 30, 10, 10, 17, 0];

function clock(iso: string): string {
  return iso.slice(11, 23);
}

/** The name the verdict was about, and the client's claim when it differs ("evil.net (sni api.com)"). */
export function nameCell(r: AuditRecord): string {
  const name = r.matched_name || r.names.slice(0, 2).join(",") + (r.names.length > 2 ? ",…" : "");
  const claimed = r.sni || r.host;
  if (!claimed || claimed === name) return name || "-";
  const claim = r.sni ? `sni ${r.sni}` : `host ${r.host}`;
  return name ? `${name} (${claim})` : `(${claim})`;
}

export function observeCells(r: AuditRecord): string[] {
  const rule = r.policy ? `${r.policy}${r.rule ? `#${r.rule}` : ""}` : "";
  return [clock(r.time), r.pod || "-", r.dst, nameCell(r), r.protocol || "-", r.verdict, r.reason, rule];
}

function row(cells: string[], style: Style, verdictAt?: number): string {
  return cells
    .map((c, i) => {
      const padded = WIDTHS[i] ? c.padEnd(WIDTHS[i]!) : c;
      return i === verdictAt ? paint(style, VERDICT_COLOUR[c] ?? "bold", padded) : padded;
    })
    .join(" ")
    .trimEnd();
}

export function observeHeader(style: Style): string {
  return paint(style, "bold", row([...OBSERVE_COLUMNS], { colour: false }));
}

/** One table line for an event. */
export function observeLine(e: VerdictEvent, style: Style): string {
  return row(observeCells(auditRecordOf(e)), style, 5);
}

/** One JSON line for an event: the audit record. */
export function observeJson(e: VerdictEvent): string {
  return JSON.stringify(auditRecordOf(e));
}

// ---- status ----------------------------------------------------------------------------------

/** `egret status` from one or more replicas, merged: what a person (or --json) reads. */
export interface StatusView {
  replicas: { name: string; ready: boolean | null; leader: "leader" | "follower" | "unknown"; detail: string; answered: boolean }[];
  agents: { node: string; agentId: string; captureDrops: number; replicas: number; lastBatchUnixMs: number; acceptedObservations: number; rejectedObservations: number }[];
  filters: { namespace: string; connectedPods: number; selectedPods: number; knownPods: number; policySelectedPods: number }[];
  /** Selected pods no replica has a filter for (each answering replica lists them). */
  notEnforced: { pod: string; reason: string; sinceUnixMs: number }[];
  policies: { kind: string; namespace: string; name: string; mode: string; ready: boolean; inForce: boolean; messages: string[] }[];
  denies: { namespace: string; verdict: string; reason: string; count: number; lastUnixMs: number }[];
  deniesSinceUnixMs: number;
  clusterVisible: boolean;
  /** Replicas that could not be asked, with why. */
  unreachable: { address: string; error: string }[];
}

const LEADER = { LEADER_STATE_LEADER: "leader", LEADER_STATE_FOLLOWER: "follower", LEADER_STATE_UNSPECIFIED: "unknown" } as const;

/**
 * Merges the answers of several replicas: each filter streams to one replica and reports its
 * verdicts there, so connected filters and denies add up; agents stream to every replica, so they
 * are listed once per node and agent (the largest drop count); policies are the same everywhere.
 */
export function mergeStatus(answers: GetStatusResponse[], unreachable: { address: string; error: string }[] = []): StatusView {
  const replicas = new Map<string, StatusView["replicas"][number]>();
  const agents = new Map<string, StatusView["agents"][number]>();
  const filters = new Map<string, StatusView["filters"][number]>();
  const denies = new Map<string, StatusView["denies"][number]>();
  const policies = new Map<string, StatusView["policies"][number]>();
  for (const a of answers) {
    for (const r of a.replicas) {
      const view = { name: r.name, ready: r.answering ? r.ready : null, leader: LEADER[r.leader] ?? "unknown", detail: r.detail, answered: r.answering };
      if (r.answering || !replicas.has(r.name)) replicas.set(r.name, view);
    }
    for (const g of a.agents) {
      const key = `${g.node}\u0000${g.agent_id}`;
      const prev = agents.get(key);
      agents.set(key, {
        node: g.node,
        agentId: g.agent_id,
        captureDrops: Math.max(prev?.captureDrops ?? 0, g.capture_drops),
        replicas: (prev?.replicas ?? 0) + 1,
        lastBatchUnixMs: Math.max(prev?.lastBatchUnixMs ?? 0, g.last_batch_unix_ms),
        acceptedObservations: Math.max(prev?.acceptedObservations ?? 0, g.accepted_observations),
        rejectedObservations: Math.max(prev?.rejectedObservations ?? 0, g.rejected_observations),
      });
    }
    for (const f of a.filters) {
      const prev = filters.get(f.namespace);
      filters.set(f.namespace, {
        namespace: f.namespace,
        connectedPods: (prev?.connectedPods ?? 0) + f.connected_pods,
        selectedPods: (prev?.selectedPods ?? 0) + f.selected_pods,
        knownPods: Math.max(prev?.knownPods ?? 0, f.known_pods),
        policySelectedPods: Math.max(prev?.policySelectedPods ?? 0, f.policy_selected_pods),
      });
    }
    for (const p of a.policies) {
      policies.set(`${p.kind}/${p.namespace}/${p.name}`, {
        kind: p.kind, namespace: p.namespace, name: p.name, mode: enumLabel(p.mode, "POLICY_MODE_"), ready: p.ready, inForce: p.in_force, messages: p.messages,
      });
    }
    for (const d of a.denies) {
      const key = `${d.namespace}\u0000${d.verdict}\u0000${d.reason}`;
      const prev = denies.get(key);
      denies.set(key, {
        namespace: d.namespace,
        verdict: enumLabel(d.verdict, "VERDICT_"),
        reason: enumLabel(d.reason, "REASON_"),
        count: (prev?.count ?? 0) + d.count,
        lastUnixMs: Math.max(prev?.lastUnixMs ?? 0, d.last_unix_ms),
      });
    }
  }
  const since = answers.map((a) => a.denies_since_unix_ms).filter((t) => t > 0);
  // A filter holds its Watch on one replica: a pod is unenforced only if no replica has it.
  const listed = new Map<string, { pod: string; reason: string; sinceUnixMs: number; count: number }>();
  for (const a of answers) {
    for (const p of a.not_enforced_pods) {
      const pod = `${p.namespace}/${p.name}`;
      const prev = listed.get(pod);
      listed.set(pod, { pod, reason: prev?.reason ?? p.reason, sinceUnixMs: Math.max(prev?.sinceUnixMs ?? 0, p.since_unix_ms), count: (prev?.count ?? 0) + 1 });
    }
  }
  return {
    replicas: [...replicas.values()],
    agents: [...agents.values()].sort((a, b) => a.node.localeCompare(b.node)),
    filters: [...filters.values()].sort((a, b) => a.namespace.localeCompare(b.namespace)),
    policies: [...policies.values()],
    denies: [...denies.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || b.count - a.count),
    notEnforced: [...listed.values()].filter((p) => p.count === answers.length).map(({ pod, reason, sinceUnixMs }) => ({ pod, reason, sinceUnixMs })).sort((a, b) => a.pod.localeCompare(b.pod)),
    deniesSinceUnixMs: since.length ? Math.min(...since) : 0,
    clusterVisible: answers.length > 0 && answers.every((a) => a.cluster_visible),
    unreachable,
  };
}

/** Printed width: colour escapes take no room. */
const visible = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "").length;

function table(header: string[], rows: string[][], style: Style, indent = "  "): string[] {
  if (rows.length === 0) return [`${indent}(none)`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i]!))));
  const pad = (c: string, w: number) => c + " ".repeat(Math.max(0, w - visible(c)));
  const line = (cells: string[]) => indent + cells.map((c, i) => (i < cells.length - 1 ? pad(c, widths[i]!) : c)).join("  ").trimEnd();
  return [paint(style, "bold", line(header)), ...rows.map(line)];
}

function ago(now: number, t: number): string {
  if (t <= 0) return "never";
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function statusText(v: StatusView, style: Style, now: number): string {
  const out: string[] = [];
  const section = (title: string) => out.push("", paint(style, "bold", title));
  if (!v.clusterVisible) out.push(paint(style, "dim", "cluster-wide rows (replicas, agents, cluster policies) hidden: you may not list clusteregresspolicies.egret.dev"));
  for (const u of v.unreachable) out.push(paint(style, "red", `not answering: ${u.error}`));
  if (v.clusterVisible) {
    section("Control replicas");
    out.push(...table(["NAME", "READY", "LEADER", "DETAIL"], v.replicas.map((r) => [r.name, r.ready === null ? "?" : r.ready ? "yes" : "no", r.leader, r.detail]), style));
    section("Agents");
    out.push(...table(
      ["NODE", "AGENT", "CAPTURE DROPS", "LAST BATCH", "OBSERVATIONS (ACCEPTED/REJECTED)", "REPLICAS"],
      v.agents.map((a) => [a.node, a.agentId || "-", String(a.captureDrops), ago(now, a.lastBatchUnixMs), `${a.acceptedObservations}/${a.rejectedObservations}`, String(a.replicas)]),
      style,
    ));
  }
  section("Filters connected, per namespace");
  out.push(...table(
    ["NAMESPACE", "CONNECTED", "ENFORCED", "SELECTED BY A POLICY", "PODS KNOWN"],
    v.filters.map((f) => [f.namespace, String(f.connectedPods), String(f.selectedPods), String(f.policySelectedPods), String(f.knownPods)]),
    style,
  ));
  if (v.notEnforced.length > 0) {
    section("Selected pods no filter enforces");
    out.push(...table(["POD", "REASON", "SINCE"], v.notEnforced.map((p) => [p.pod, paint(style, "red", p.reason), ago(now, p.sinceUnixMs)]), style));
  }
  section("Policies");
  out.push(...table(
    ["KIND", "NAMESPACE", "NAME", "MODE", "READY", "IN FORCE", "MESSAGE"],
    v.policies.map((p) => [p.kind, p.namespace || "-", p.name, p.mode || "-", p.ready ? "yes" : paint(style, "red", "no"), p.inForce ? "yes" : "no", p.messages[0] ?? ""]),
    style,
  ));
  section(`Recent denies by reason${v.deniesSinceUnixMs > 0 ? ` (since ${ago(now, v.deniesSinceUnixMs)})` : ""}`);
  out.push(...table(
    ["NAMESPACE", "VERDICT", "REASON", "COUNT", "LAST"],
    v.denies.map((d) => [d.namespace, paint(style, VERDICT_COLOUR[d.verdict] ?? "bold", d.verdict), d.reason, String(d.count), ago(now, d.lastUnixMs)]),
    style,
  ));
  return out.join("\n").replace(/^\n/, "") + "\n";
}
