// What an open connection was judged on (destination, candidate names, protocol, claim), kept so
// that a policy change can judge it again (issue #15 "revoked"). Names and the claim are copied
// out of the resolution table and the inspector at decision time: the table changes and expires,
// the inspector goes back to its pool, but the connection's facts stay what they were.
//
// The evaluation inputs of the connection's deciding evaluation are noted by the stream in
// LAST (evaluateInputs), copied by record(); nothing here touches the ABI. A ConnectionFacts
// comes from the root's pool (allocation only when the pool is empty or a buffer must grow), so
// recording costs a copy per decided connection and nothing per data callback.
import {
  evaluate, EvalResult, EvalQuery, CANDIDATE_SIZE, CLAIM_NONE, CLAIM_SNI, PROTOCOL_PENDING,
  VERDICT_ALLOW, VERDICT_ALERT, VERDICT_WOULD_DENY, VERDICT_PENDING,
} from "../policy/engine";
import { PolicySnapshot, RULE_ECH_ALLOWED } from "../policy/snapshot";
import { PROTOCOL_COUNT, PROTO_TLS, PROTO_HTTP, PROTO_UNKNOWN } from "../detect/protocols";

// @ts-ignore: decorator
@inline export function passes(verdict: u8): bool {
  return verdict == VERDICT_ALLOW || verdict == VERDICT_ALERT || verdict == VERDICT_WOULD_DENY;
}

/** The inputs of the last evaluation a stream ran (pointers valid until the table or inspector changes). One per VM: a VM runs one callback at a time. */
export const LAST = new EvalQuery();

/** Runs the engine and notes its inputs in LAST (what a decision rests on). */
export function evaluateNoted(snap: PolicySnapshot, q: EvalQuery, out: EvalResult): void {
  LAST.destination(q.ipHi, q.ipLo, q.port).names(q.candidates, q.candidateCount).detected(q.protocol).claim(q.claimKind, q.claimPtr, q.claimLen);
  evaluate(snap, q, out);
}

/**
 * ECH opt-in (`encryptedClientHello: Allow` on a rule): the real server name is hidden, so the
 * connection passes only when each name the pod resolved to the IP (q's candidates), taken as the
 * SNI, passes by a rule that accepts ECH. Changes q's claim; leaves `out` at the first name's result.
 */
export function echPassesForEveryName(snap: PolicySnapshot, q: EvalQuery, out: EvalResult): bool {
  const n = q.candidateCount;
  if (n == 0) return false;
  for (let i = n - 1; i >= 0; i--) {
    const e = q.candidates + <usize>i * CANDIDATE_SIZE;
    evaluate(snap, q.claim(CLAIM_SNI, <usize>load<u32>(e), <i32>load<u32>(e, 4)), out);
    if (!passes(out.verdict) || out.rule < 0 || (snap.ruleFields(out.rule) & RULE_ECH_ALLOWED) == 0) return false;
  }
  return true;
}

/** A claim that matches no name (a NUL byte is never part of a stored DNS name). */
export const UNVERIFIABLE_CLAIM = memory.data(1);

/** Room for the candidate entries, their names and the claim of a typical connection. */
const INITIAL_BYTES: i32 = 512;

export class ConnectionFacts {
  hi: u64 = 0;
  lo: u64 = 0;
  port: u32 = 0;
  candCount: i32 = 0;
  protocol: i32 = PROTOCOL_PENDING;
  claimKind: i32 = CLAIM_NONE;
  claimLen: i32 = 0;
  /** Judged with the ECH opt-in (every name as the SNI). */
  ech: bool = false;
  private buf: StaticArray<u8> = new StaticArray<u8>(INITIAL_BYTES);
  private claimOffset: i32 = 0;

  /** Candidate entries in the engine's layout, their name pointers into this object's buffer. */
  get cands(): usize { return changetype<usize>(this.buf); }
  get claimPtr(): usize { return this.claimLen > 0 ? changetype<usize>(this.buf) + <usize>this.claimOffset : 0; }

  /** Copies the inputs in `from` (the protocol is the detector's when it ran, else pending). */
  record(from: EvalQuery, ech: bool): void {
    const n = from.candidateCount;
    let need = n * <i32>CANDIDATE_SIZE + (from.claimKind != CLAIM_NONE ? from.claimLen : 0);
    for (let i = 0; i < n; i++) need += <i32>load<u32>(from.candidates + <usize>i * CANDIDATE_SIZE, 4);
    if (need > this.buf.length) this.buf = new StaticArray<u8>(need);
    const base = changetype<usize>(this.buf);
    let at = <usize>n * CANDIDATE_SIZE;
    for (let i = 0; i < n; i++) {
      const src = from.candidates + <usize>i * CANDIDATE_SIZE;
      const dst = base + <usize>i * CANDIDATE_SIZE;
      const len = load<u32>(src, 4);
      memory.copy(base + at, <usize>load<u32>(src), <usize>len);
      store<u32>(dst, <u32>(base + at));
      store<u32>(dst, len, 4);
      store<i32>(dst, load<i32>(src, 8), 8); // staleness when judged: the facts of that moment
      store<u32>(dst, load<u32>(src, 12), 12);
      at += <usize>len;
    }
    this.claimKind = from.claimKind;
    this.claimLen = from.claimKind != CLAIM_NONE ? from.claimLen : 0;
    this.claimOffset = <i32>at;
    if (this.claimLen > 0) memory.copy(base + at, from.claimPtr, <usize>this.claimLen);
    this.hi = from.ipHi;
    this.lo = from.ipLo;
    this.port = from.port;
    this.candCount = n;
    this.protocol = from.protocol;
    this.ech = ech;
    if (ech) {
      this.claimKind = CLAIM_SNI; // without the opt-in, an ECH hello's SNI supports no name
      this.claimLen = 0;
    }
  }

  /**
   * Judges the recorded facts under `snap` into `out`. Returns false when the verdict cannot be
   * known: the connection was decided before its protocol was detected, the new policy needs a
   * protocol, and some protocol would pass (the bytes that would tell are gone: it is kept).
   */
  judge(snap: PolicySnapshot, out: EvalResult): bool {
    const q = JUDGE.destination(this.hi, this.lo, this.port).names(this.cands, this.candCount).detected(this.protocol);
    if (this.ech) {
      if (echPassesForEveryName(snap, q, out)) return true;
      evaluate(snap, q.claim(CLAIM_SNI, UNVERIFIABLE_CLAIM, 1), out);
      return out.verdict != VERDICT_PENDING;
    }
    const unverifiable = this.claimKind != CLAIM_NONE && this.claimLen == 0;
    q.claim(this.claimKind, unverifiable ? UNVERIFIABLE_CLAIM : this.claimPtr, unverifiable ? 1 : this.claimLen);
    evaluate(snap, q, out);
    if (out.verdict != VERDICT_PENDING) return true;
    for (let k = 0; k < PROTOCOL_COUNT; k++) {
      evaluate(snap, q.detected(k == 0 ? PROTO_TLS : (k == 1 ? PROTO_HTTP : (k <= PROTO_HTTP ? k - 2 : k))), out);
      if (passes(out.verdict)) return false;
    }
    // No protocol passes: the verdict for an undetected protocol is the one to apply.
    evaluate(snap, q.detected(PROTO_UNKNOWN), out);
    return out.verdict != VERDICT_PENDING;
  }
}

/** Scratch query for judge() (one callback at a time per VM). */
const JUDGE = new EvalQuery();
