// Command-line values of `egret observe` → an ObserveVerdictsRequest: verdicts and reasons in the
// audit log's spelling ("would-deny", "denied-by-rule"), pods as NAME or NAMESPACE/NAME, --since
// as a duration ("90s", "5m", "1h30m") or a time (RFC 3339).
import { packageDefinition, PROTO_PACKAGE, type ObserveVerdictsRequest, type Reason, type Verdict } from "../proto/index.js";
import { enumLabel } from "../control/reports.js";

/** The values of an egret.v1 enum, from the proto files (one source of truth). */
function enumValues(name: string): string[] {
  const def = packageDefinition()[`${PROTO_PACKAGE}.${name}`] as unknown as { type: { value: { name: string }[] } };
  return def.type.value.map((v) => v.name).filter((v) => !v.endsWith("_UNSPECIFIED"));
}

export class FlagError extends Error {}

/** Each value may itself be a comma-separated list. */
function split(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

function enumFlag<T extends string>(flag: string, values: string[] | undefined, enumName: string, prefix: string): T[] {
  const known = enumValues(enumName);
  const byLabel = new Map(known.map((v) => [enumLabel(v, prefix), v]));
  return split(values).map((v) => {
    const found = byLabel.get(v.toLowerCase());
    if (!found) throw new FlagError(`--${flag} ${v}: not one of ${[...byLabel.keys()].join(", ")}`);
    return found as T;
  });
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "5m", "1h30m", "2d" → milliseconds; undefined if it is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

/** --since: a duration back from `now`, or an RFC 3339 time. */
export function parseSince(text: string, now: number): number {
  const d = parseDuration(text);
  if (d !== undefined) return Math.max(1, now - d);
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const t = Date.parse(text);
    if (Number.isFinite(t)) return Math.max(1, t);
  }
  throw new FlagError(`--since ${text}: give a duration (30s, 5m, 1h30m) or a time (2026-12-07T23:00:00Z)`);
}

export interface ObserveFlags {
  namespace?: string[];
  pod?: string[];
  verdict?: string[];
  reason?: string[];
  policy?: string[];
  since?: string;
  follow?: boolean;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function observeRequest(f: ObserveFlags, now: number): ObserveVerdictsRequest {
  const namespaces = split(f.namespace);
  const bad = namespaces.find((n) => !NAMESPACE.test(n));
  if (bad !== undefined) throw new FlagError(`--namespace ${bad}: not a namespace name`);
  const pods = split(f.pod);
  const badPod = pods.find((p) => p.split("/").length > 2 || p.split("/").some((x) => x === ""));
  if (badPod !== undefined) throw new FlagError(`--pod ${badPod}: give NAME or NAMESPACE/NAME`);
  return {
    namespaces,
    pods,
    verdicts: enumFlag<Verdict>("verdict", f.verdict, "Verdict", "VERDICT_"),
    reasons: enumFlag<Reason>("reason", f.reason, "Reason", "REASON_"),
    policies: split(f.policy),
    since_unix_ms: f.since === undefined ? 0 : parseSince(f.since, now),
    follow: f.follow === true,
  };
}

/** The verdict and reason labels (help text). */
export function verdictLabels(): string[] {
  return enumValues("Verdict").map((v) => enumLabel(v, "VERDICT_"));
}

export function reasonLabels(): string[] {
  return enumValues("Reason").map((v) => enumLabel(v, "REASON_"));
}
