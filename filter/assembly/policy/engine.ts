// The policy engine: evaluates one connection against a decoded snapshot, first match wins
// (design.md "Policy"). The only evaluator in Egret — the filter, control and `egret explain` all
// run this compiled code. evaluate() never allocates and never traps.
import {
  PolicySnapshot, RULE_DOMAINS, RULE_CIDRS, RULE_EXTERNAL, RULE_PORTS, RULE_PROTOCOLS,
  ACTION_ALLOW, ACTION_DENY, ACTION_ALERT, MODE_MONITOR,
} from "./snapshot";
import { nameMatches, sameName, cidrContains, isV4Mapped } from "./match";

// Verdicts and reasons use the numbers of proto egret.v1.Verdict / egret.v1.Reason.
// @ts-ignore: decorator
@inline export const VERDICT_PENDING: u8 = 0; // a rule needs the protocol and it is not known yet
// @ts-ignore: decorator
@inline export const VERDICT_ALLOW: u8 = 1;
// @ts-ignore: decorator
@inline export const VERDICT_DENY: u8 = 2;
// @ts-ignore: decorator
@inline export const VERDICT_ALERT: u8 = 3;
// @ts-ignore: decorator
@inline export const VERDICT_WOULD_DENY: u8 = 4;

// @ts-ignore: decorator
@inline export const REASON_NONE: u8 = 0;
// @ts-ignore: decorator
@inline export const REASON_ALLOWED: u8 = 1;
// @ts-ignore: decorator
@inline export const REASON_DENIED_BY_RULE: u8 = 2;
// @ts-ignore: decorator
@inline export const REASON_ALERT_BY_RULE: u8 = 3;
// @ts-ignore: decorator
@inline export const REASON_DEFAULT_DENY: u8 = 4;
// @ts-ignore: decorator
@inline export const REASON_PROTOCOL_MISMATCH: u8 = 5;
// @ts-ignore: decorator
@inline export const REASON_SNI_UNVERIFIED: u8 = 6;
// @ts-ignore: decorator
@inline export const REASON_HOST_UNVERIFIED: u8 = 7;
// @ts-ignore: decorator
@inline export const REASON_UNATTRIBUTED: u8 = 8;
// @ts-ignore: decorator
@inline export const REASON_NOT_SELECTED: u8 = 11;

// @ts-ignore: decorator
@inline export const FLAG_DEPENDS_ON_NAMES: u32 = 1;
// @ts-ignore: decorator
@inline export const FLAG_DEPENDS_ON_PROTOCOL: u32 = 2;
// @ts-ignore: decorator
@inline export const FLAG_DEPENDS_ON_CLAIM: u32 = 4;

// @ts-ignore: decorator
@inline export const PROTOCOL_PENDING: i32 = -1;
// @ts-ignore: decorator
@inline export const CLAIM_NONE: i32 = 0;
// @ts-ignore: decorator
@inline export const CLAIM_SNI: i32 = 1;
// @ts-ignore: decorator
@inline export const CLAIM_HOST: i32 = 2;

/** Bytes per candidate entry: u32 namePtr, u32 nameLen, i32 staleSeconds. */
// @ts-ignore: decorator
@inline export const CANDIDATE_SIZE: usize = 12;

// Unattributed handling as encoded in the snapshot.
// @ts-ignore: decorator
@inline const UNATTRIBUTED_DENY: u8 = 1;
// @ts-ignore: decorator
@inline const UNATTRIBUTED_ALERT: u8 = 2;
// @ts-ignore: decorator
@inline const UNATTRIBUTED_ALLOW: u8 = 3;

// Trace outcomes, one per rule considered (explain path).
// @ts-ignore: decorator
@inline export const TRACE_MATCHED: i32 = 1;
// @ts-ignore: decorator
@inline export const TRACE_NO_CIDR: i32 = 2;
// @ts-ignore: decorator
@inline export const TRACE_CIDR_EXCEPT: i32 = 3;
// @ts-ignore: decorator
@inline export const TRACE_NOT_EXTERNAL: i32 = 4;
// @ts-ignore: decorator
@inline export const TRACE_NO_PORT: i32 = 5;
// @ts-ignore: decorator
@inline export const TRACE_NO_NAME: i32 = 6;
// @ts-ignore: decorator
@inline export const TRACE_CLAIM_UNVERIFIED: i32 = 7;
// @ts-ignore: decorator
@inline export const TRACE_NO_PROTOCOL: i32 = 8;
// @ts-ignore: decorator
@inline export const TRACE_PROTOCOL_PENDING: i32 = 9;
// @ts-ignore: decorator
@inline export const TRACE_NAMES_STALE: i32 = 10;

/** Trace capacity (entries of 4 × i32: policy, rule, outcome, detail). */
// @ts-ignore: decorator
@inline export const TRACE_CAPACITY: i32 = 4096;

/** The outcome of one evaluation. Preallocate one and reuse it; evaluate() overwrites every field. */
export class EvalResult {
  verdict: u8 = VERDICT_PENDING;
  reason: u8 = REASON_NONE;
  /** Deciding policy index (evaluation order), -1 when none (default deny, not selected). */
  policy: i32 = -1;
  /** Deciding global rule index, -1 when none. */
  rule: i32 = -1;
  /** Candidate (index into the candidates given) the decision used, -1 when none. */
  matchedCandidate: i32 = -1;
  /** FLAG_DEPENDS_ON_* bits. */
  flags: u32 = 0;
}

// Trace buffer, written only when tracing is on (tools/explain path).
const traceBuffer = new StaticArray<i32>(TRACE_CAPACITY * 4);
let traceOn = false;
let traceCount: i32 = 0;

/** Turns the trace on (cleared at each evaluate) or off. */
export function setTracing(on: bool): void { traceOn = on; traceCount = 0; }
export function tracedCount(): i32 { return traceCount; }
export function traceAddress(): usize { return changetype<usize>(traceBuffer); }

// @ts-ignore: decorator
@inline function trace(policy: i32, rule: i32, outcome: i32, detail: i32): void {
  if (traceOn && traceCount < TRACE_CAPACITY) {
    const i = traceCount * 4;
    unchecked(traceBuffer[i] = policy);
    unchecked(traceBuffer[i + 1] = rule);
    unchecked(traceBuffer[i + 2] = outcome);
    unchecked(traceBuffer[i + 3] = detail);
    traceCount++;
  }
}

// Per-evaluation scratch kept in globals (the engine is single-threaded per VM).
let matchedCandidate: i32 = -1;

function decide(out: EvalResult, snap: PolicySnapshot, action: u8, policy: i32, rule: i32, denyReason: u8): void {
  out.policy = policy;
  out.rule = rule;
  if (action == ACTION_ALLOW) { out.verdict = VERDICT_ALLOW; out.reason = REASON_ALLOWED; return; }
  if (action == ACTION_ALERT) { out.verdict = VERDICT_ALERT; out.reason = REASON_ALERT_BY_RULE; return; }
  const monitor = policy >= 0 ? snap.policyMode(policy) == MODE_MONITOR : snap.allMonitor;
  out.verdict = monitor ? VERDICT_WOULD_DENY : VERDICT_DENY;
  out.reason = denyReason;
}

/** Whether (hi, lo) is in the rule's CIDR list: 1 in, 0 not in any include, -1 in an except. */
function ruleCidrOutcome(snap: PolicySnapshot, r: i32, hi: u64, lo: u64, isV4: bool): i32 {
  const start = snap.ruleCidrStart(r);
  const end = start + snap.ruleCidrCount(r);
  let inInclude = false;
  let excepted = false;
  for (let c = start; c < end; c++) {
    const e = snap.cidrAddr(c);
    if (load<u8>(e, 2) == 0) {
      if (inInclude) return 1;
      inInclude = cidrContains(e, hi, lo, isV4);
    } else if (inInclude && cidrContains(e, hi, lo, isV4)) {
      inInclude = false;
      excepted = true;
    }
  }
  return inInclude ? 1 : (excepted ? -1 : 0);
}

function isExternal(snap: PolicySnapshot, hi: u64, lo: u64, isV4: bool): bool {
  for (let c = 0; c < snap.clusterCidrCount; c++) {
    if (cidrContains(snap.clusterCidrAddr(c), hi, lo, isV4)) return false;
  }
  return true;
}

/**
 * Domain matching for rule r against the candidates that are fresh for the policy's grace (or only
 * the claimed one). Sets matchedCandidate. Returns 1 matched, 0 no match, -1 every candidate stale.
 */
function ruleNamesOutcome(snap: PolicySnapshot, r: i32, grace: i32, cands: usize, candCount: i32, claimIndex: i32): i32 {
  const pStart = snap.rulePatternStart(r);
  const pEnd = pStart + snap.rulePatternCount(r);
  const first = claimIndex >= 0 ? claimIndex : 0;
  const last = claimIndex >= 0 ? claimIndex + 1 : candCount;
  let fresh = 0;
  for (let i = first; i < last; i++) {
    const e = cands + <usize>i * CANDIDATE_SIZE;
    if (load<i32>(e, 8) > grace) continue;
    fresh++;
    const name = <usize>load<u32>(e);
    const nameLen = <i32>load<u32>(e, 4);
    for (let p = pStart; p < pEnd; p++) {
      if (nameMatches(name, nameLen, snap.patternKind(p), snap.patternPtr(p), snap.patternLen(p))) {
        matchedCandidate = i;
        return 1;
      }
    }
  }
  return fresh == 0 && last > first ? -1 : 0;
}

function rulePortMatches(snap: PolicySnapshot, r: i32, port: u32): bool {
  const start = snap.rulePortStart(r);
  const end = start + snap.rulePortCount(r);
  for (let o = start; o < end; o++) {
    if (port >= snap.portFirst(o) && port <= snap.portLast(o)) return true;
  }
  return false;
}

/**
 * Evaluates one connection. `cands` holds `candCount` entries of CANDIDATE_SIZE bytes
 * (u32 namePtr, u32 nameLen, i32 staleSeconds). `protocol` is a detector id or PROTOCOL_PENDING.
 * `claimKind` CLAIM_NONE/SNI/HOST with the claimed name at [claimPtr, claimPtr+claimLen).
 * Writes every field of `out`. See README.md for the semantics of each outcome and flag.
 */
export function evaluate(
  snap: PolicySnapshot, hi: u64, lo: u64, port: u32, cands: usize, candCount: i32,
  protocol: i32, claimKind: i32, claimPtr: usize, claimLen: i32, out: EvalResult,
): void {
  traceCount = 0;
  out.verdict = VERDICT_PENDING;
  out.reason = REASON_NONE;
  out.policy = -1;
  out.rule = -1;
  out.matchedCandidate = -1;
  out.flags = 0;
  if (!snap.selected) {
    out.verdict = VERDICT_ALLOW;
    out.reason = REASON_NOT_SELECTED;
    return;
  }
  if (candCount < 0) candCount = 0;
  const isV4 = isV4Mapped(hi, lo);

  // A claim (SNI/Host) found among the candidates narrows them to that one name; a claim the
  // evidence does not support leaves no name for domain rules to match.
  let claimIndex: i32 = -1;
  let claimUnsupported = false;
  if (claimKind != CLAIM_NONE) {
    for (let i = 0; i < candCount; i++) {
      const e = cands + <usize>i * CANDIDATE_SIZE;
      if (sameName(<usize>load<u32>(e), <i32>load<u32>(e, 4), claimPtr, claimLen)) { claimIndex = i; break; }
    }
    claimUnsupported = claimIndex < 0;
  }

  let freshNames = false; // any candidate within the largest grace
  for (let i = 0; i < candCount; i++) {
    if (load<i32>(cands + <usize>i * CANDIDATE_SIZE, 8) <= snap.maxGraceSeconds) { freshNames = true; break; }
  }

  let cidrCovered = false;       // some rule's CIDRs contain the destination
  let mismatchRule: i32 = -1;    // first Allow/Alert rule that failed only on the protocol
  let unverifiedRule: i32 = -1;  // first Allow/Alert domain rule passed over: unsupported claim
  let external: i32 = -1;        // lazily computed: 1 external, 0 inside the cluster

  for (let p = 0; p < snap.policyCount; p++) {
    const grace = snap.policyGrace(p);
    const rEnd = snap.policyFirstRule(p) + snap.policyRuleCount(p);
    for (let r = snap.policyFirstRule(p); r < rEnd; r++) {
      const fields = snap.ruleFields(r);
      if (fields & RULE_CIDRS) {
        const c = ruleCidrOutcome(snap, r, hi, lo, isV4);
        if (c != 1) { trace(p, r, c < 0 ? TRACE_CIDR_EXCEPT : TRACE_NO_CIDR, 0); continue; }
        cidrCovered = true;
      }
      if (fields & RULE_EXTERNAL) {
        if (external < 0) external = isExternal(snap, hi, lo, isV4) ? 1 : 0;
        if (external == 0) { trace(p, r, TRACE_NOT_EXTERNAL, 0); continue; }
      }
      if ((fields & RULE_PORTS) && !rulePortMatches(snap, r, port)) { trace(p, r, TRACE_NO_PORT, <i32>port); continue; }
      matchedCandidate = -1;
      if (fields & RULE_DOMAINS) {
        if (claimUnsupported) {
          // Remember the first rule the claim might have been aiming at (not a Deny: failing to
          // match a Deny rule is not why a connection ends up denied).
          if (unverifiedRule < 0 && snap.ruleAction(r) != ACTION_DENY) unverifiedRule = r;
          out.flags |= FLAG_DEPENDS_ON_NAMES;
          trace(p, r, TRACE_CLAIM_UNVERIFIED, 0);
          continue;
        }
        const n = ruleNamesOutcome(snap, r, grace, cands, candCount, claimIndex);
        if (claimKind == CLAIM_NONE && candCount > 0) out.flags |= FLAG_DEPENDS_ON_CLAIM;
        if (n != 1) {
          out.flags |= FLAG_DEPENDS_ON_NAMES;
          trace(p, r, n < 0 ? TRACE_NAMES_STALE : TRACE_NO_NAME, 0);
          continue;
        }
      }
      if (fields & RULE_PROTOCOLS) {
        out.flags |= FLAG_DEPENDS_ON_PROTOCOL;
        if (protocol == PROTOCOL_PENDING) {
          trace(p, r, TRACE_PROTOCOL_PENDING, 0);
          out.policy = p;
          out.rule = r;
          out.matchedCandidate = matchedCandidate;
          return; // VERDICT_PENDING: hold until the detector answers
        }
        if (protocol < 0 || protocol >= 64 || ((snap.ruleProtocolMask(r) >> <u64>protocol) & 1) == 0) {
          if (mismatchRule < 0 && snap.ruleAction(r) != ACTION_DENY) mismatchRule = r;
          trace(p, r, TRACE_NO_PROTOCOL, protocol);
          continue;
        }
      }
      trace(p, r, TRACE_MATCHED, matchedCandidate);
      out.matchedCandidate = matchedCandidate;
      decide(out, snap, snap.ruleAction(r), p, r, REASON_DENIED_BY_RULE);
      return;
    }
  }

  // Nothing matched.
  if (unverifiedRule >= 0) {
    decide(out, snap, ACTION_DENY, snap.rulePolicy(unverifiedRule), unverifiedRule,
      claimKind == CLAIM_HOST ? REASON_HOST_UNVERIFIED : REASON_SNI_UNVERIFIED);
    return;
  }
  if (mismatchRule >= 0) {
    decide(out, snap, ACTION_DENY, snap.rulePolicy(mismatchRule), mismatchRule, REASON_PROTOCOL_MISMATCH);
    return;
  }
  if (!freshNames && !cidrCovered) {
    // Unattributed: the pod resolved no name to this IP and no CIDR rule covers it. The first
    // policy (in evaluation order) that says what to do decides; otherwise deny.
    out.flags |= FLAG_DEPENDS_ON_NAMES;
    for (let p = 0; p < snap.policyCount; p++) {
      const u = snap.policyUnattributed(p);
      if (u == 0) continue;
      const action = u == UNATTRIBUTED_ALLOW ? ACTION_ALLOW : (u == UNATTRIBUTED_ALERT ? ACTION_ALERT : ACTION_DENY);
      decide(out, snap, action, p, -1, REASON_UNATTRIBUTED);
      out.reason = REASON_UNATTRIBUTED;
      return;
    }
    decide(out, snap, ACTION_DENY, -1, -1, REASON_UNATTRIBUTED);
    return;
  }
  decide(out, snap, ACTION_DENY, -1, -1, REASON_DEFAULT_DENY);
}
