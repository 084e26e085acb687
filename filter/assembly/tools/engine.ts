// Tool exports of the policy engine for Node (control/src/policy/engine.ts via
// control/src/wasm/tools.ts): the same decoder and evaluate() the filter runs, driven through raw
// pointers. Not used by the filter itself. Tool calls may allocate (never per connection in Envoy).
import { decodeSnapshot, lastDecodeError, lastDecodeErrorOffset, PolicySnapshot } from "../policy/snapshot";
import { evaluate, EvalQuery, EvalResult, setTracing, tracedCount, traceAddress } from "../policy/engine";
import { protocolIdOfLabel, protocolLabel, protocolLabelCount } from "../policy/protocols";

let toolSnapshot: PolicySnapshot | null = null;
let inputBuffer: StaticArray<u8> = new StaticArray<u8>(0);
const toolResult = new EvalResult();
const toolQuery = new EvalQuery();
// verdict, reason, policy, rule, matchedCandidate, flags, traceCount
const resultBlock = memory.data(7 * 4);
const textBlock = memory.data(256);

/** A writable input area of at least `size` bytes (reused; valid until the next call). */
export function engine_input(size: u32): usize {
  if (<u32>inputBuffer.length < size) inputBuffer = new StaticArray<u8>(<i32>size);
  return changetype<usize>(inputBuffer);
}

/** Decodes a snapshot from [ptr, ptr+len) and makes it current. 0 on success, else DecodeError. */
export function engine_load(ptr: usize, len: u32): i32 {
  const snap = decodeSnapshot(ptr, len);
  if (snap === null) return lastDecodeError();
  toolSnapshot = snap;
  return 0;
}

export function engine_error_offset(): i32 { return lastDecodeErrorOffset(); }
export function engine_loaded(): i32 { return toolSnapshot === null ? 0 : 1; }

/**
 * Evaluates one connection against the current snapshot; returns the address of the result block
 * (i32 × 7: verdict, reason, policy, rule, matchedCandidate, flags, traceCount), or 0 if no
 * snapshot is loaded. With `trace` != 0 the considered rules are recorded (engine_trace()).
 */
export function engine_eval(hi: u64, lo: u64, port: u32, cands: usize, candCount: i32, protocol: i32,
  claimKind: i32, claimPtr: usize, claimLen: i32, trace: i32): usize {
  const snap = toolSnapshot;
  if (snap === null) return 0;
  setTracing(trace != 0);
  evaluate(snap, toolQuery.destination(hi, lo, port).names(cands, candCount).detected(protocol).claim(claimKind, claimPtr, claimLen), toolResult);
  const traced = tracedCount();
  setTracing(false);
  store<i32>(resultBlock, <i32>toolResult.verdict);
  store<i32>(resultBlock, <i32>toolResult.reason, 4);
  store<i32>(resultBlock, toolResult.policy, 8);
  store<i32>(resultBlock, toolResult.rule, 12);
  store<i32>(resultBlock, toolResult.matchedCandidate, 16);
  store<i32>(resultBlock, <i32>toolResult.flags, 20);
  store<i32>(resultBlock, traced, 24);
  return resultBlock;
}

/**
 * Runs `times` evaluations inside wasm (no JS boundary per call) for benchmarks; returns the last
 * verdict * 256 + reason, or -1 without a snapshot. Same arguments as engine_eval, no trace.
 */
export function engine_eval_many(times: i32, hi: u64, lo: u64, port: u32, cands: usize, candCount: i32, protocol: i32,
  claimKind: i32, claimPtr: usize, claimLen: i32): i32 {
  const snap = toolSnapshot;
  if (snap === null) return -1;
  setTracing(false);
  const q = toolQuery.destination(hi, lo, port).names(cands, candCount).detected(protocol).claim(claimKind, claimPtr, claimLen);
  for (let i = 0; i < times; i++) evaluate(snap, q, toolResult);
  return (<i32>toolResult.verdict << 8) | <i32>toolResult.reason;
}

/** Address of the trace: entries of i32 × 4 (policy, rule, outcome, detail). */
export function engine_trace(): usize { return traceAddress(); }

export function engine_selected(): i32 { const s = toolSnapshot; return s !== null && s.selected ? 1 : 0; }
export function engine_policy_count(): i32 { const s = toolSnapshot; return s !== null ? s.policyCount : 0; }
export function engine_rule_count(): i32 { const s = toolSnapshot; return s !== null ? s.ruleCount : 0; }
export function engine_max_grace(): i32 { const s = toolSnapshot; return s !== null ? s.maxGraceSeconds : 0; }
export function engine_policy_mode(i: i32): i32 {
  const s = toolSnapshot;
  return s !== null && i >= 0 && i < s.policyCount ? <i32>s.policyMode(i) : 0;
}
export function engine_rule_policy(r: i32): i32 {
  const s = toolSnapshot;
  return s !== null && r >= 0 && r < s.ruleCount ? s.rulePolicy(r) : -1;
}
export function engine_rule_index(r: i32): i32 {
  const s = toolSnapshot;
  return s !== null && r >= 0 && r < s.ruleCount ? s.ruleIndexInPolicy(r) : -1;
}

function copyText(ptr: usize, len: i32): i32 {
  const n = len < 256 ? len : 256;
  memory.copy(textBlock, ptr, <usize>n);
  return n;
}

/** The text block (engine_policy_ref / engine_rule_name / engine_protocol_label write there). */
export function engine_text(): usize { return textBlock; }

/** Writes policy i's reference to the text block; returns its length (-1 out of range). */
export function engine_policy_ref(i: i32): i32 {
  const s = toolSnapshot;
  if (s === null || i < 0 || i >= s.policyCount) return -1;
  return copyText(s.policyRefPtr(i), s.policyRefLen(i));
}

/** Writes rule r's name (empty when unnamed) to the text block; returns its length. */
export function engine_rule_name(r: i32): i32 {
  const s = toolSnapshot;
  if (s === null || r < 0 || r >= s.ruleCount) return -1;
  return copyText(s.ruleNamePtr(r), s.ruleNameLen(r));
}

export function engine_protocol_count(): i32 { return protocolLabelCount(); }

/** Writes protocol id's label (ASCII) to the text block; returns its length (0 if unknown id). */
export function engine_protocol_label(id: i32): i32 {
  const label = protocolLabel(id);
  for (let i = 0; i < label.length; i++) store<u8>(textBlock + <usize>i, <u8>label.charCodeAt(i));
  return label.length;
}

export function engine_protocol_id(ptr: usize, len: i32): i32 { return protocolIdOfLabel(ptr, len); }

/**
 * Allocation probe for tests: the address the allocator hands out for a fresh 64-byte block
 * (freed at once). Unchanged across a run of evaluations means they left nothing allocated.
 */
export function engine_heap_probe(): usize {
  const p = heap.alloc(64);
  heap.free(p);
  return p;
}
