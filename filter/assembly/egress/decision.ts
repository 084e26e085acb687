// Reporting one decided connection: a VerdictEvent appended to the root's Report batch (sent on
// the next tick or when the batch is full) and, when `logDecisions` is on, one log line.
// Encoding writes bytes into the preallocated batch; nothing is allocated unless logging is on.
import { LogLevel } from "../abi/enums";
import { log } from "../abi/hostcalls";
import { protocolLabel } from "../policy/protocols";
import { formatIp } from "../resolve/ip";
import { MAX_CANDIDATES } from "../resolve/table";
import {
  EV_TIME, EV_POD_NAME, EV_POD_NAMESPACE, EV_SOURCE_IP, EV_SOURCE_PORT, EV_DESTINATION_IP,
  EV_DESTINATION_PORT, EV_NAMES, EV_PROTOCOL, EV_SNI, EV_HOST, EV_VERDICT, EV_REASON, EV_POLICY,
  EV_RULE, EV_MODE, EV_MATCHED_NAME, EV_INSTANCE_ID, EV_DETAIL, EV_EVIDENCE, EV_CLUSTER,
  OPENED_SOURCE_IP, OPENED_DESTINATION_IP, OPENED_DESTINATION_PORT, OPENED_TIME,
} from "../pb/egret";
import { Status } from "../abi/enums";
import { HostBytes } from "../abi/memory";
import { getProperty } from "../abi/properties";
import { CANDIDATE_SIZE, CAND_MESH_CONFIG } from "../policy/engine";
import { PbWriter } from "../pb/writer";
import { EgressRoot, ipToBytes } from "./root";
import { EgressStream, CLUSTER_PATH, REASON_REVOKED } from "./stream";
import { ConnectionFacts } from "./facts";
import { CLAIM_SNI, CLAIM_HOST } from "../policy/engine";
import { PolicySnapshot } from "../policy/snapshot";
import { REASON_DEFAULT_DENY, REASON_UNATTRIBUTED, VERDICT_DENY, VERDICT_WOULD_DENY } from "../policy/engine";
import { REASON_NAMES } from "./metrics";

const IP_SCRATCH = memory.data(32);
const LABEL_SCRATCH = memory.data(16);
const DETAIL_SCRATCH = memory.data(64);
const VERDICT_LABELS: string[] = ["pending", "allow", "deny", "alert", "would-deny"];
// egret.v1.NameSource values.
const NAME_SOURCE_POD_DNS: u32 = 1;
const NAME_SOURCE_MESH_CONFIG: u32 = 2;
const CLUSTER_VALUE = new HostBytes();

/**
 * The sidecar may open an upstream connection for `s` now (it goes upstream before its verdict,
 * or carries new client bytes long after it): one OpenedConnection in the Report batch, so the
 * node agent does not take that SYN for a bypass. Bytes only, into the preallocated batch.
 */
export function reportOpened(root: EgressRoot, s: EgressStream, now: i64): void {
  s.coveredAtMs = now;
  const rep = root.report;
  if (rep === null) return;
  const w = rep.beginOpened();
  if (s.srcHi != 0 || s.srcLo != 0) w.bytes(OPENED_SOURCE_IP, IP_SCRATCH, ipToBytes(s.srcHi, s.srcLo, IP_SCRATCH));
  w.bytes(OPENED_DESTINATION_IP, IP_SCRATCH, ipToBytes(s.dstHi, s.dstLo, IP_SCRATCH));
  w.uint32(OPENED_DESTINATION_PORT, s.dstPort);
  w.int64(OPENED_TIME, now);
  if (rep.endOpened(now)) root.metrics!.openedReported.increment(1);
  else root.metrics!.openedDropped.increment(1);
}

export function reportDecision(root: EgressRoot, s: EgressStream, now: i64): void {
  s.coveredAtMs = now;
  const rep = root.report;
  const snap = root.snapshot;
  const t = root.table;
  if (rep === null || t === null) return;
  const w = rep.beginEvent();
  w.int64(EV_TIME, now);
  w.string(EV_POD_NAME, root.podName);
  w.string(EV_POD_NAMESPACE, root.podNamespace);
  if (s.srcHi != 0 || s.srcLo != 0) {
    w.bytes(EV_SOURCE_IP, IP_SCRATCH, ipToBytes(s.srcHi, s.srcLo, IP_SCRATCH));
    w.uint32(EV_SOURCE_PORT, s.srcPort);
  }
  w.bytes(EV_DESTINATION_IP, IP_SCRATCH, ipToBytes(s.dstHi, s.dstLo, IP_SCRATCH));
  w.uint32(EV_DESTINATION_PORT, s.dstPort);
  const insp = s.inspector;
  let matchedPtr: usize = 0;
  let matchedLen: u32 = 0;
  let evidence: u32 = 0;
  const facts = s.facts;
  if (s.reason == REASON_REVOKED && facts !== null) {
    writeRecordedFacts(w, s, facts);
  } else if (s.viaProxy && insp !== null && insp.targetLen > 0) {
    if (!insp.targetIsIp) w.bytes(EV_NAMES, insp.targetPtr, insp.targetLen);
  } else {
    // The candidate view is recomputed: another connection may have used the table since.
    let n = t.lookup(s.dstHi, s.dstLo, now, root.graceMs());
    // An ECH hello judged on the names its outer SNI narrowed to reports those names.
    if (s.echNarrowed && insp !== null && insp.sniLen > 0) {
      const narrowed = t.narrowToEchPublicName(insp.sniPtr, insp.sniLen);
      if (narrowed > 0) n = narrowed;
    }
    const cands = changetype<usize>(t.candBuf);
    for (let i = 0; i < n && i < MAX_CANDIDATES; i++) {
      const p = <usize>load<u32>(cands + <usize>i * CANDIDATE_SIZE);
      const l = load<u32>(cands + <usize>i * CANDIDATE_SIZE + 4);
      w.bytes(EV_NAMES, p, l);
      if (i == s.matchedCandidate) {
        matchedPtr = p;
        matchedLen = l;
        evidence = t.candMeshOnly(i) ? NAME_SOURCE_MESH_CONFIG : NAME_SOURCE_POD_DNS;
      }
    }
  }
  if (insp !== null && insp.protocol >= 0) w.string(EV_PROTOCOL, protocolLabel(insp.protocol));
  if (insp !== null && insp.sniLen > 0) w.bytes(EV_SNI, insp.sniPtr, insp.sniLen);
  if (insp !== null && insp.hostLen > 0) w.bytes(EV_HOST, insp.hostPtr, insp.hostLen);
  w.uint32(EV_VERDICT, s.verdict);
  w.uint32(EV_REASON, s.reason);
  const policy = snap !== null ? attributedPolicy(snap, s) : -1;
  if (snap !== null && policy >= 0 && policy < snap.policyCount) {
    w.bytes(EV_POLICY, snap.policyRefPtr(policy), <u32>snap.policyRefLen(policy));
    w.uint32(EV_MODE, snap.policyMode(policy));
  }
  if (snap !== null && s.rule >= 0 && s.rule < snap.ruleCount) {
    const nl = snap.ruleNameLen(s.rule);
    if (nl > 0) w.bytes(EV_RULE, snap.ruleNamePtr(s.rule), <u32>nl);
    else w.bytes(EV_RULE, LABEL_SCRATCH, ruleIndexLabel(snap.ruleIndexInPolicy(s.rule)));
  }
  if (matchedLen > 0) w.bytes(EV_MATCHED_NAME, matchedPtr, matchedLen);
  if (evidence != 0) w.uint32(EV_EVIDENCE, evidence);
  if (s.clusterChecked && getProperty(CLUSTER_PATH, CLUSTER_VALUE) == Status.Ok) {
    w.bytes(EV_CLUSTER, CLUSTER_VALUE.ptr, CLUSTER_VALUE.len);
    CLUSTER_VALUE.release();
  }
  w.string(EV_INSTANCE_ID, root.instanceId);
  if (s.reason == REASON_REVOKED) w.bytes(EV_DETAIL, DETAIL_SCRATCH, revokedDetail(s.revokedBy));
  else if (s.lookupHeldMs >= 0) w.bytes(EV_DETAIL, DETAIL_SCRATCH, heldDetail(s.lookupHeldMs));
  if (!rep.endEvent(now)) root.metrics!.reportEventsDropped.increment(1);
  const cfg = root.config;
  if (cfg !== null && cfg.logDecisions) logDecision(root, s);
}

/**
 * The policy a decision is reported under: the deciding one, or for a deny no policy decided
 * (default-deny / unattributed) the policy whose mode made it a deny or a would-deny, so
 * operators can tell which (Monitor) policy produced it.
 */
function attributedPolicy(snap: PolicySnapshot, s: EgressStream): i32 {
  if (s.policy >= 0) return s.policy;
  const why = s.reason == REASON_REVOKED ? s.revokedBy : s.reason; // revoked: what the new policy said
  if ((why == REASON_DEFAULT_DENY || why == REASON_UNATTRIBUTED) && (s.verdict == VERDICT_DENY || s.verdict == VERDICT_WOULD_DENY)) return snap.defaultDenyPolicy;
  return -1;
}

/**
 * A revoked connection is reported with what it was judged on: the recorded names (the matched
 * one), protocol and claim — the table and the inspector have moved on since.
 */
function writeRecordedFacts(w: PbWriter, s: EgressStream, f: ConnectionFacts): void {
  const cands = f.cands;
  for (let i = 0; i < f.candCount && i < MAX_CANDIDATES; i++) {
    const p = <usize>load<u32>(cands + <usize>i * CANDIDATE_SIZE);
    const l = load<u32>(cands + <usize>i * CANDIDATE_SIZE + 4);
    w.bytes(EV_NAMES, p, l);
    if (i == s.matchedCandidate) {
      w.bytes(EV_MATCHED_NAME, p, l);
      const mesh = (load<u32>(cands + <usize>i * CANDIDATE_SIZE + 12) & CAND_MESH_CONFIG) != 0;
      w.uint32(EV_EVIDENCE, mesh ? NAME_SOURCE_MESH_CONFIG : NAME_SOURCE_POD_DNS);
    }
  }
  if (f.protocol >= 0) w.string(EV_PROTOCOL, protocolLabel(f.protocol));
  // The unverifiable marker (one NUL byte) is not a name to report.
  if (f.claimLen > 0 && load<u8>(f.claimPtr) != 0) {
    if (f.claimKind == CLAIM_SNI) w.bytes(EV_SNI, f.claimPtr, <u32>f.claimLen);
    else if (f.claimKind == CLAIM_HOST) w.bytes(EV_HOST, f.claimPtr, <u32>f.claimLen);
  }
}

/** "policy changed: <reason the new policy gives>" into DETAIL_SCRATCH. */
function revokedDetail(reason: u8): u32 {
  let n = copyAscii(DETAIL_SCRATCH, "policy changed: ");
  const label = reason < <u8>REASON_NAMES.length ? REASON_NAMES[reason] : "?";
  for (let i = 0; i < label.length && n < 64; i++) {
    const c = label.charCodeAt(i);
    store<u8>(DETAIL_SCRATCH + n++, <u8>(c == 0x5f ? 0x2d : c)); // metric names use "_", reasons "-"
  }
  return n;
}

function copyAscii(p: usize, text: string): u32 {
  for (let i = 0; i < text.length; i++) store<u8>(p + <usize>i, <u8>text.charCodeAt(i));
  return <u32>text.length;
}

/** "#N" into LABEL_SCRATCH; returns its length. */
function ruleIndexLabel(i: i32): u32 {
  store<u8>(LABEL_SCRATCH, 0x23);
  return 1 + writeDecimal(LABEL_SCRATCH + 1, <u64>i);
}

/** "lookup held N ms" into DETAIL_SCRATCH. */
function heldDetail(ms: i64): u32 {
  const prefix = "lookup held ";
  for (let i = 0; i < prefix.length; i++) store<u8>(DETAIL_SCRATCH + <usize>i, <u8>prefix.charCodeAt(i));
  let n = <u32>prefix.length;
  n += writeDecimal(DETAIL_SCRATCH + n, <u64>(ms < 0 ? 0 : ms));
  store<u8>(DETAIL_SCRATCH + n++, 0x20);
  store<u8>(DETAIL_SCRATCH + n++, 0x6d);
  store<u8>(DETAIL_SCRATCH + n++, 0x73);
  return n;
}

function writeDecimal(p: usize, v: u64): u32 {
  let digits: u32 = 1;
  let x = v;
  while (x >= 10) {
    x /= 10;
    digits++;
  }
  for (let i = digits; i > 0; i--) {
    store<u8>(p + i - 1, <u8>(0x30 + v % 10));
    v /= 10;
  }
  return digits;
}

/** Debug log line (allocates; only with logDecisions). */
function logDecision(root: EgressRoot, s: EgressStream): void {
  const snap = root.snapshot;
  const n = formatIp(s.dstHi, s.dstLo, IP_SCRATCH);
  const dst = String.UTF8.decodeUnsafe(IP_SCRATCH, n);
  const verdict = s.verdict < <u8>VERDICT_LABELS.length ? VERDICT_LABELS[s.verdict] : "?";
  const reason = s.reason < <u8>REASON_NAMES.length ? REASON_NAMES[s.reason] : "?";
  let line = "egret: " + verdict + " " + dst + ":" + s.dstPort.toString() + " reason=" + reason;
  const policy = snap !== null ? attributedPolicy(snap, s) : -1;
  if (snap !== null && policy >= 0) line += " policy=" + snap.policyName(policy) + (s.rule >= 0 ? " rule=" + snap.ruleLabel(s.rule) : "");
  const insp = s.inspector;
  if (insp !== null && insp.protocol >= 0) line += " protocol=" + protocolLabel(insp.protocol);
  log(LogLevel.Info, line);
}

