// The policy engine: evaluates one connection against a decoded snapshot, first match wins
// (design.md "Policy"). The only evaluator in Egret — the filter, control and `egret explain` all
// run this compiled code. evaluate() never allocates and never traps.
import {
  PolicySnapshot, RULE_DOMAINS, RULE_CIDRS, RULE_EXTERNAL, RULE_PORTS, RULE_PROTOCOLS,
  ACTION_ALLOW, ACTION_DENY, ACTION_ALERT, ACTION_PASS, MODE_MONITOR, PATTERN_EXACT, PATTERN_MULTI_LABEL,
  findSuffix, slotHead, slotHasLonger,
} from "./snapshot";
import { sameName, cidrContains, isV4Mapped, trimmedLength } from "./match";
import { CIDR_EXCEPT } from "./layout";

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

/** Bytes per candidate entry: u32 namePtr, u32 nameLen, i32 staleSeconds, u32 flags (CAND_*). */
// @ts-ignore: decorator
@inline export const CANDIDATE_SIZE: usize = 16;
/** Candidate flag: the name's only evidence is mesh configuration (a ServiceEntry address), not pod DNS. */
// @ts-ignore: decorator
@inline export const CAND_MESH_CONFIG: u32 = 1;

// Unattributed handling as encoded in the snapshot (1 = Deny, the default when unset).
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
// @ts-ignore: decorator
@inline export const TRACE_PASSED: i32 = 11; // a Pass rule matched: the rest of its tier is skipped

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
    if (load<u8>(e, CIDR_EXCEPT) == 0) {
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

// Longest name considered (DNS names are at most 253 bytes); longer candidates match nothing.
// @ts-ignore: decorator
@inline const MAX_NAME_LENGTH: i32 = 253;

// Records that candidate c (staleness `stale`) matches rule r's domains.
// @ts-ignore: decorator
@inline function recordMatch(snap: PolicySnapshot, r: i32, c: i32, stale: i32, stamp: u32): void {
  if (unchecked(snap.ruleStamp[r]) != stamp) {
    unchecked(snap.ruleStamp[r] = stamp);
    unchecked(snap.ruleBestStale[r] = stale);
    unchecked(snap.ruleBestCandidate[r] = c);
  } else if (stale < unchecked(snap.ruleBestStale[r])) {
    unchecked(snap.ruleBestStale[r] = stale);
    unchecked(snap.ruleBestCandidate[r] = c);
  }
}

/**
 * Records a match for every pattern of the index slot whose kind fits where the suffix starts in
 * the name: `dot` is the position of the '.' before it (-1: the suffix is the whole name).
 */
function matchSlot(snap: PolicySnapshot, slot: usize, name: usize, dot: i32, c: i32, stale: i32, stamp: u32): void {
  let p = slotHead(slot);
  if (p < 0) return;
  let left = LEFT_UNKNOWN; // the labels a wildcard would cover (computed once, if a wildcard is there)
  while (p >= 0) {
    const kind = snap.patternKind(p);
    let fits = false;
    if (kind == PATTERN_EXACT) fits = dot < 0;
    else {
      if (left == LEFT_UNKNOWN) left = wildcardLabels(name, dot);
      fits = kind == PATTERN_MULTI_LABEL ? left != LEFT_INVALID : left == LEFT_ONE;
    }
    if (fits) recordMatch(snap, unchecked(snap.patternRule[p]), c, stale, stamp);
    p = unchecked(snap.patternNext[p]);
  }
}

// wildcardLabels outcomes.
// @ts-ignore: decorator
@inline const LEFT_UNKNOWN: i32 = -1;
// @ts-ignore: decorator
@inline const LEFT_INVALID: i32 = 0;
// @ts-ignore: decorator
@inline const LEFT_ONE: i32 = 1;
// @ts-ignore: decorator
@inline const LEFT_MANY: i32 = 2;

/**
 * The labels in name bytes [0, end) that a wildcard would cover: LEFT_ONE, LEFT_MANY, or
 * LEFT_INVALID when none (end < 1) or any is not an ordinary label. Names are compared label by
 * label: an empty label ("a..b.com"), or a byte that is not visible ASCII, never matches — and a
 * backslash means an escaped presentation label (`\.` is a '.' inside a wire label, `\046` too), so
 * "[allowed.one][example]" (written `allowed\.one.example`) is never under "*.one.example".
 */
function wildcardLabels(name: usize, end: i32): i32 {
  if (end < 1) return LEFT_INVALID;
  let dots = 0;
  let previous: u32 = 0x2e; // a leading '.' is an empty label
  for (let i = 0; i < end; i++) {
    const ch = <u32>load<u8>(name + <usize>i);
    if (ch == 0x2e) {
      if (previous == 0x2e) return LEFT_INVALID;
      dots++;
    } else if (ch == 0x5c || ch < 0x21 || ch > 0x7e) {
      return LEFT_INVALID;
    }
    previous = ch;
  }
  if (previous == 0x2e) return LEFT_INVALID;
  return dots == 0 ? LEFT_ONE : LEFT_MANY;
}

/**
 * Matches every candidate (or only the claimed one) against every domain pattern at once: the
 * name's label suffixes, shortest first, are looked up in the snapshot's suffix index until one is
 * missing (no pattern ends with it, so none ends with a longer one) or no pattern extends it.
 * Cost per name: the labels it shares with some pattern, plus one, whatever the number of rules.
 * Results are in snap.ruleStamp / ruleBestStale / ruleBestCandidate for the returned stamp.
 */
function indexCandidates(snap: PolicySnapshot, cands: usize, candCount: i32, claimIndex: i32, skipMesh: bool): u32 {
  const stamp = snap.nextStamp();
  const first = claimIndex >= 0 ? claimIndex : 0;
  const last = claimIndex >= 0 ? claimIndex + 1 : candCount;
  const slots = snap.suffixSlotsAddr;
  const mask = snap.suffixMask;
  for (let c = first; c < last; c++) {
    const e = cands + <usize>c * CANDIDATE_SIZE;
    // A policy that opts out of mesh-configuration evidence sees only the pod's own DNS names.
    if (skipMesh && (load<u32>(e, 12) & CAND_MESH_CONFIG) != 0) continue;
    const name = <usize>load<u32>(e);
    const len = trimmedLength(name, <i32>load<u32>(e, 4));
    if (len <= 0 || len > MAX_NAME_LENGTH) continue;
    matchName(snap, slots, mask, name, len, c, load<i32>(e, 8), stamp);
  }
  return stamp;
}

// Walks one candidate name's label suffixes from the right through the suffix index (inlined
// into the candidate loop: no call, and no managed reference, per name).
// @ts-ignore: decorator
@inline function matchName(snap: PolicySnapshot, slots: usize, mask: u32, name: usize, len: i32, c: i32, stale: i32, stamp: u32): void {
  let h: u32 = 0x811c9dc5;
  let i = len - 1;
  for (; i >= 0; i--) {
    const ch = <u32>load<u8>(name + <usize>i);
    if (ch == 0x2e && i < len - 1) {
      const slot = findSuffix(slots, mask, h, name + <usize>(i + 1), len - i - 1);
      if (slot == 0) break;
      if (slotHead(slot) >= 0) matchSlot(snap, slot, name, i, c, stale, stamp);
      if (!slotHasLonger(slot)) break;
    }
    h = (h ^ (ch | 0x20)) * 0x01000193;
  }
  if (i < 0) {
    const whole = findSuffix(slots, mask, h, name, len);
    if (whole != 0 && slotHead(whole) >= 0) matchSlot(snap, whole, name, -1, c, stale, stamp);
  }
}

/**
 * Domain matching for rule r from the candidate index: 1 a candidate fresh for this policy's grace
 * matches (sets matchedCandidate), -1 one matches but is stale beyond the grace, 0 none matches.
 */
function ruleNamesOutcome(snap: PolicySnapshot, r: i32, grace: i32, stamp: u32): i32 {
  if (unchecked(snap.ruleStamp[r]) != stamp) return 0;
  if (unchecked(snap.ruleBestStale[r]) > grace) return -1;
  matchedCandidate = unchecked(snap.ruleBestCandidate[r]);
  return 1;
}

// Whether a rule's action lets traffic through (what protocol-mismatch / *-unverified report).
// @ts-ignore: decorator
@inline function allowsTraffic(action: u8): bool {
  return action == ACTION_ALLOW || action == ACTION_ALERT;
}

/** The index of the last policy of p's tier (policies are in evaluation order, tiers contiguous). */
function lastPolicyOfTier(snap: PolicySnapshot, p: i32): i32 {
  const tier = snap.policyTier(p);
  while (p + 1 < snap.policyCount && snap.policyTier(p + 1) == tier) p++;
  return p;
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
 * One connection's facts for evaluate(): the destination, the names this pod resolved to it, the
 * detected protocol and the destination claim. Preallocate one and reuse it; set every part before
 * each evaluation (the setters return the query, so a call reads as one sentence).
 */
export class EvalQuery {
  /** Destination: two big-endian u64 halves of the 16-byte address (IPv4 as ::ffff:a.b.c.d). */
  ipHi: u64 = 0;
  ipLo: u64 = 0;
  port: u32 = 0;
  /** `candidateCount` entries of CANDIDATE_SIZE bytes (see README "Candidates"). */
  candidates: usize = 0;
  candidateCount: i32 = 0;
  /** Detector protocol id, or PROTOCOL_PENDING. */
  protocol: i32 = PROTOCOL_PENDING;
  /** CLAIM_NONE / CLAIM_SNI / CLAIM_HOST and the claimed name's bytes. */
  claimKind: i32 = CLAIM_NONE;
  claimPtr: usize = 0;
  claimLen: i32 = 0;

  destination(hi: u64, lo: u64, port: u32): EvalQuery {
    this.ipHi = hi;
    this.ipLo = lo;
    this.port = port;
    return this;
  }

  names(candidates: usize, count: i32): EvalQuery {
    this.candidates = candidates;
    this.candidateCount = count < 0 ? 0 : count;
    return this;
  }

  detected(protocol: i32): EvalQuery {
    this.protocol = protocol;
    return this;
  }

  claim(kind: i32, ptr: usize, len: i32): EvalQuery {
    this.claimKind = kind;
    this.claimPtr = ptr;
    this.claimLen = len;
    return this;
  }

  noClaim(): EvalQuery {
    return this.claim(CLAIM_NONE, 0, 0);
  }
}

/** What the rule walk learned for the fallthrough when no rule matched. */
class Walk {
  /** Some rule's CIDRs contain the destination. */
  cidrCovered: bool = false;
  /** First Allow/Alert rule that failed only on the protocol. */
  mismatchRule: i32 = -1;
  /** First Allow/Alert domain rule passed over because the claim is not among the names. */
  unverifiedRule: i32 = -1;
  /** Lazily computed: 1 external, 0 inside the cluster, -1 not yet known. */
  external: i32 = -1;
  /** Candidates indexed (lazily, at the first rule with domains), with or without mesh names. */
  stamp: u32 = 0;
  stampSkipsMesh: bool = false;
  /** Index of the candidate the claim names, -1 none; the claim names no candidate at all. */
  claimIndex: i32 = -1;
  claimUnsupported: bool = false;
  isV4: bool = false;

  reset(q: EvalQuery): void {
    this.cidrCovered = false;
    this.mismatchRule = -1;
    this.unverifiedRule = -1;
    this.external = -1;
    this.stamp = 0;
    this.stampSkipsMesh = false;
    this.claimIndex = claimedCandidate(q);
    this.claimUnsupported = q.claimKind != CLAIM_NONE && this.claimIndex < 0;
    this.isV4 = isV4Mapped(q.ipHi, q.ipLo);
  }
}

const WALK = new Walk();

// Rule-walk outcomes.
// @ts-ignore: decorator
@inline const WALK_NO_MATCH: i32 = 0;
// @ts-ignore: decorator
@inline const WALK_DECIDED: i32 = 1;

/**
 * Evaluates one connection (first matching rule wins, then the fallthrough described in README).
 * Never allocates, never traps; `out` is overwritten.
 */
export function evaluate(snap: PolicySnapshot, q: EvalQuery, out: EvalResult): void {
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
  const walk = WALK;
  walk.reset(q);
  if (walkRules(snap, q, walk, out) == WALK_DECIDED) return;
  fallThrough(snap, q, walk, out);
}

/**
 * A claim (SNI/Host) found among the candidates narrows them to that one name: its index, or -1
 * (none, or no claim).
 */
function claimedCandidate(q: EvalQuery): i32 {
  if (q.claimKind == CLAIM_NONE) return -1;
  for (let i = 0; i < q.candidateCount; i++) {
    const e = q.candidates + <usize>i * CANDIDATE_SIZE;
    if (sameName(<usize>load<u32>(e), <i32>load<u32>(e, 4), q.claimPtr, q.claimLen)) return i;
  }
  return -1;
}

/**
 * Any candidate within the largest grace that some policy may use (mesh-configuration names count
 * only when at least one policy accepts that evidence).
 */
function hasFreshNames(snap: PolicySnapshot, q: EvalQuery): bool {
  for (let i = 0; i < q.candidateCount; i++) {
    const e = q.candidates + <usize>i * CANDIDATE_SIZE;
    if (load<i32>(e, 8) > snap.maxGraceSeconds) continue;
    if ((load<u32>(e, 12) & CAND_MESH_CONFIG) != 0 && !snap.anyPolicyUsesMeshConfig) continue;
    return true;
  }
  return false;
}

/** Walks the rules in evaluation order; decides `out` at the first matching one (WALK_DECIDED). */
function walkRules(snap: PolicySnapshot, q: EvalQuery, walk: Walk, out: EvalResult): i32 {
  for (let p = 0; p < snap.policyCount; p++) {
    const rEnd = snap.policyFirstRule(p) + snap.policyRuleCount(p);
    for (let r = snap.policyFirstRule(p); r < rEnd; r++) {
      if (!ruleMatchesDestination(snap, q, walk, p, r)) continue;
      matchedCandidate = -1;
      if ((snap.ruleFields(r) & RULE_DOMAINS) != 0 && !ruleMatchesNames(snap, q, walk, p, r, out)) continue;
      if ((snap.ruleFields(r) & RULE_PROTOCOLS) != 0) {
        out.flags |= FLAG_DEPENDS_ON_PROTOCOL;
        if (q.protocol == PROTOCOL_PENDING) {
          trace(p, r, TRACE_PROTOCOL_PENDING, 0);
          out.policy = p;
          out.rule = r;
          out.matchedCandidate = matchedCandidate;
          return WALK_DECIDED; // VERDICT_PENDING: hold until the detector answers
        }
        if (q.protocol < 0 || q.protocol >= 64 || ((snap.ruleProtocolMask(r) >> <u64>q.protocol) & 1) == 0) {
          if (walk.mismatchRule < 0 && allowsTraffic(snap.ruleAction(r))) walk.mismatchRule = r;
          trace(p, r, TRACE_NO_PROTOCOL, q.protocol);
          continue;
        }
      }
      if (snap.ruleAction(r) == ACTION_PASS) {
        trace(p, r, TRACE_PASSED, matchedCandidate);
        p = lastPolicyOfTier(snap, p);
        break; // the outer loop goes on with the next tier's first policy
      }
      trace(p, r, TRACE_MATCHED, matchedCandidate);
      out.matchedCandidate = matchedCandidate;
      decide(out, snap, snap.ruleAction(r), p, r, REASON_DENIED_BY_RULE);
      return WALK_DECIDED;
    }
  }
  return WALK_NO_MATCH;
}

/** The rule's CIDRs, `external` and ports against the destination (traced when they fail). */
function ruleMatchesDestination(snap: PolicySnapshot, q: EvalQuery, walk: Walk, p: i32, r: i32): bool {
  const fields = snap.ruleFields(r);
  if (fields & RULE_CIDRS) {
    const c = ruleCidrOutcome(snap, r, q.ipHi, q.ipLo, walk.isV4);
    if (c != 1) { trace(p, r, c < 0 ? TRACE_CIDR_EXCEPT : TRACE_NO_CIDR, 0); return false; }
    walk.cidrCovered = true;
  }
  if (fields & RULE_EXTERNAL) {
    if (walk.external < 0) walk.external = isExternal(snap, q.ipHi, q.ipLo, walk.isV4) ? 1 : 0;
    if (walk.external == 0) { trace(p, r, TRACE_NOT_EXTERNAL, 0); return false; }
  }
  if ((fields & RULE_PORTS) && !rulePortMatches(snap, r, q.port)) { trace(p, r, TRACE_NO_PORT, <i32>q.port); return false; }
  return true;
}

/** The rule's domains against the candidate names (narrowed by a supported claim). */
function ruleMatchesNames(snap: PolicySnapshot, q: EvalQuery, walk: Walk, p: i32, r: i32, out: EvalResult): bool {
  if (walk.claimUnsupported) {
    // Remember the first rule the claim might have been aiming at (not a Deny: failing to match a
    // Deny rule is not why a connection ends up denied).
    if (walk.unverifiedRule < 0 && allowsTraffic(snap.ruleAction(r))) walk.unverifiedRule = r;
    out.flags |= FLAG_DEPENDS_ON_NAMES;
    trace(p, r, TRACE_CLAIM_UNVERIFIED, 0);
    return false;
  }
  const skipMesh = snap.policyIgnoresMeshConfig(p);
  if (walk.stamp == 0 || walk.stampSkipsMesh != skipMesh) {
    walk.stamp = indexCandidates(snap, q.candidates, q.candidateCount, walk.claimIndex, skipMesh);
    walk.stampSkipsMesh = skipMesh;
  }
  const n = ruleNamesOutcome(snap, r, snap.policyGrace(p), walk.stamp);
  if (q.claimKind == CLAIM_NONE && q.candidateCount > 0) out.flags |= FLAG_DEPENDS_ON_CLAIM;
  if (n != 1) {
    out.flags |= FLAG_DEPENDS_ON_NAMES;
    trace(p, r, n < 0 ? TRACE_NAMES_STALE : TRACE_NO_NAME, 0);
    return false;
  }
  return true;
}

/**
 * Nothing matched. Unattributed: the pod resolved no (fresh) name to this IP and no CIDR rule covers
 * it. A policy that says what to do with such connections decides first (the first in evaluation
 * order) — they are commonly hard-coded IPs or /etc/hosts names, which carry an SNI/Host that no DNS
 * answer can support. Then *-unverified, protocol-mismatch, unattributed, default-deny.
 */
function fallThrough(snap: PolicySnapshot, q: EvalQuery, walk: Walk, out: EvalResult): void {
  const unattributed = !walk.cidrCovered && !hasFreshNames(snap, q);
  if (unattributed) {
    for (let p = 0; p < snap.policyCount; p++) {
      const u = snap.policyUnattributed(p);
      if (u == 0) continue;
      const action = u == UNATTRIBUTED_ALLOW ? ACTION_ALLOW : (u == UNATTRIBUTED_ALERT ? ACTION_ALERT : ACTION_DENY);
      out.flags |= FLAG_DEPENDS_ON_NAMES;
      decide(out, snap, action, p, -1, REASON_UNATTRIBUTED);
      out.reason = REASON_UNATTRIBUTED;
      return;
    }
  }
  if (walk.unverifiedRule >= 0) {
    decide(out, snap, ACTION_DENY, snap.rulePolicy(walk.unverifiedRule), walk.unverifiedRule,
      q.claimKind == CLAIM_HOST ? REASON_HOST_UNVERIFIED : REASON_SNI_UNVERIFIED);
    return;
  }
  if (walk.mismatchRule >= 0) {
    decide(out, snap, ACTION_DENY, snap.rulePolicy(walk.mismatchRule), walk.mismatchRule, REASON_PROTOCOL_MISMATCH);
    return;
  }
  if (unattributed) {
    out.flags |= FLAG_DEPENDS_ON_NAMES;
    decide(out, snap, ACTION_DENY, -1, -1, REASON_UNATTRIBUTED);
    return;
  }
  decide(out, snap, ACTION_DENY, -1, -1, REASON_DEFAULT_DENY);
}
