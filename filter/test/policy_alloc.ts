// Allocation harness for the policy engine: built with the runtime's allocation hooks (rtrace
// imports, see ASC_RTRACE below) so a test can count every heap allocation made by evaluate().
// Pure logic, no proxy-wasm ABI. Driven by control/test/unit/policy-alloc.test.ts.
import { decodeSnapshot, PolicySnapshot } from "../assembly/policy/snapshot";
import { evaluate, EvalQuery, EvalResult } from "../assembly/policy/engine";

// Turns on the runtime's rtrace hooks (rtrace.onalloc, onfree, …) for this module only.
// @ts-ignore: decorator
@global const ASC_RTRACE = true;

let snapshot: PolicySnapshot | null = null;
let input = new StaticArray<u8>(0);
const result = new EvalResult();
const query = new EvalQuery();

export function input_area(size: i32): usize {
  if (input.length < size) input = new StaticArray<u8>(size);
  return changetype<usize>(input);
}

export function load(ptr: usize, len: u32): i32 {
  snapshot = decodeSnapshot(ptr, len);
  return snapshot === null ? 0 : 1;
}

/** Runs `times` evaluations; returns the last verdict * 256 + reason. */
export function evaluate_many(times: i32, hi: u64, lo: u64, port: u32, cands: usize, count: i32, protocol: i32,
  claimKind: i32, claimPtr: usize, claimLen: i32): i32 {
  const snap = snapshot;
  if (snap === null) return -1;
  const q = query.destination(hi, lo, port).names(cands, count).detected(protocol).claim(claimKind, claimPtr, claimLen);
  for (let i = 0; i < times; i++) evaluate(snap, q, result);
  return (<i32>result.verdict << 8) | <i32>result.reason;
}

export function last_rule(): i32 { return result.rule; }
