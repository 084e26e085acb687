// Reading verdicts back from egret control's JSON audit log (one object per line), to check a
// scenario step's expected verdict, reason, policy and rule.
import { existsSync, readFileSync } from "node:fs";
import type { AuditExpectation } from "./scenario.js";
import { tryParseHostPort } from "../common/host-port.js";

export interface AuditEntry {
  time?: number;
  pod?: string;
  sourceIp?: string;
  destinationIp?: string;
  destinationPort?: number;
  verdict?: string;
  reason?: string;
  policy?: string;
  rule?: string;
  names?: string[];
  protocol?: string;
  sni?: string;
  host?: string;
  /** "pod-dns", "mesh-config", or "none" when no name decided. */
  evidence?: string;
  cluster?: string;
  raw: Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined);

function splitHostPort(v: unknown): { ip?: string; port?: number } {
  const s = str(v);
  if (!s) return {};
  const m = tryParseHostPort(s);
  return m ? { ip: m.host, port: m.port } : { ip: s };
}

/** Normalises one audit object; field names follow the Report message, with common spellings. */
export function toAuditEntry(o: Record<string, unknown>): AuditEntry {
  const dst = splitHostPort(o.destination ?? o.dst ?? o.server ?? o.destination_address);
  const src = splitHostPort(o.source ?? o.src ?? o.client ?? o.source_address);
  const pod = str(o.pod) ?? (str(o.pod_namespace ?? o.podNamespace) && str(o.pod_name ?? o.podName) ? `${str(o.pod_namespace ?? o.podNamespace)}/${str(o.pod_name ?? o.podName)}` : undefined);
  const verdict = str(o.verdict)?.toLowerCase().replace(/^verdict_/, "").replace(/_/g, "-");
  const reason = str(o.reason)?.toLowerCase().replace(/^reason_/, "").replace(/_/g, "-");
  const t = o.time ?? o.ts ?? o.timestamp;
  return {
    time: typeof t === "number" ? t : typeof t === "string" ? Date.parse(t) : undefined,
    pod,
    sourceIp: src.ip ?? str(o.source_ip ?? o.src_ip),
    destinationIp: dst.ip ?? str(o.destination_ip ?? o.dst_ip),
    destinationPort: dst.port ?? (typeof (o.destination_port ?? o.dst_port) === "number" ? Number(o.destination_port ?? o.dst_port) : undefined),
    verdict, reason,
    policy: str(o.policy),
    rule: str(o.rule ?? o.rule_name ?? o.ruleName),
    names: Array.isArray(o.names) ? o.names.filter((n): n is string => typeof n === "string") : undefined,
    protocol: str(o.protocol), sni: str(o.sni), host: str(o.host),
    evidence: str(o.evidence) ?? "none", cluster: str(o.cluster),
    raw: o,
  };
}

/** Parses the audit log from byte `offset`; lines that are not JSON objects are skipped. */
export function readAudit(file: string, offset = 0): AuditEntry[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file).subarray(offset).toString("utf8");
  const out: AuditEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const o = JSON.parse(line) as unknown;
      // Bypass reports (kind egret.bypass) carry a would-be verdict: they are not verdicts.
      if (o && typeof o === "object" && !Array.isArray(o) && ("verdict" in o || "reason" in o) && (o as { kind?: unknown }).kind !== "egret.bypass") {
        out.push(toAuditEntry(o as Record<string, unknown>));
      }
    } catch { /* a partial last line: read again next poll */ }
  }
  return out;
}

/** Differences between an entry and what the step expects ("reason: want x, got y"), empty if none. */
export function auditMismatches(e: AuditEntry, want: AuditExpectation): string[] {
  const out: string[] = [];
  const cmp = (field: keyof AuditExpectation, got: string | undefined) => {
    const w = want[field];
    if (w === undefined) return;
    if (String(w) !== got) out.push(`${field}: want ${w}, got ${got ?? "(none)"}`);
  };
  cmp("verdict", e.verdict);
  cmp("reason", e.reason);
  cmp("policy", e.policy);
  cmp("rule", e.rule);
  cmp("evidence", e.evidence);
  cmp("cluster", e.cluster);
  return out;
}

export interface VerdictQuery {
  podKey: string;
  podIp: string;
  destinationIp?: string;
  destinationPort: number;
}

/** The first entry after `offset` for this pod and destination (by pod name or source address). */
export function findVerdict(entries: AuditEntry[], q: VerdictQuery): AuditEntry | undefined {
  return entries.find((e) =>
    (e.pod === q.podKey || e.sourceIp === q.podIp) &&
    (!q.destinationIp || e.destinationIp === q.destinationIp) &&
    (e.destinationPort === undefined || e.destinationPort === q.destinationPort));
}

/**
 * Polls the audit log until the verdict for `q` appears after `offset`, or `timeoutMs` passes.
 * With `accept`, keeps waiting for an entry it accepts: verdicts of earlier connections to the
 * same destination can arrive late (a filter resends what it decided while control was down), so
 * the first entry for a destination is not always this connection's. On timeout the first entry
 * found is returned, for the error message.
 */
export async function waitForVerdict(file: string, offset: number, q: VerdictQuery, timeoutMs: number,
  accept?: (e: AuditEntry) => boolean): Promise<{ entry?: AuditEntry; seen: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = readAudit(file, offset);
    const entry = findVerdict(seen, q);
    const accepted = entry && accept ? seen.find((e) => findVerdict([e], q) && accept(e)) : entry;
    if (accepted) return { entry: accepted, seen: seen.length };
    if (Date.now() >= deadline) return { entry, seen: seen.length };
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A bypass report (`egret.bypass` line): egress the agent saw leave a pod without a filter verdict. */
export interface BypassEntry {
  pod: string;
  destinationIp?: string;
  destinationPort?: number;
  protocol: string;
  cause: string;
  detail: string;
  raw: Record<string, unknown>;
}

/** The bypass reports after `offset`. */
export function readBypasses(file: string, offset = 0): BypassEntry[] {
  if (!existsSync(file)) return [];
  const out: BypassEntry[] = [];
  for (const line of readFileSync(file).subarray(offset).toString("utf8").split("\n")) {
    if (!line.startsWith("{") || !line.includes('"egret.bypass"')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.kind !== "egret.bypass") continue;
      const dst = splitHostPort(o.dst);
      out.push({ pod: str(o.pod) ?? "", destinationIp: dst.ip, destinationPort: dst.port, protocol: str(o.protocol) ?? "", cause: str(o.cause) ?? "", detail: str(o.detail) ?? "", raw: o });
    } catch { /* partial line */ }
  }
  return out;
}
