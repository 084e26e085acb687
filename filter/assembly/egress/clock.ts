// Time for the enforcement filter: wall-clock milliseconds from the host (the same clock Envoy
// uses for proxy_get_current_time_nanoseconds), and a small non-cryptographic PRNG for backoff
// jitter (no Math.random: it would need env.seed).
import { currentTimeNanos } from "../abi/hostcalls";

export function nowMs(): i64 {
  return <i64>(currentTimeNanos() / 1000000);
}

let rngState: u64 = 0x9e3779b97f4a7c15;

/** Seeds the jitter PRNG (root context, once). */
export function seedJitter(seed: u64): void {
  rngState = seed | 1;
}

/** Uniform-ish value in [0, bound). */
export function jitter(bound: u32): u32 {
  if (bound == 0) return 0;
  let x = rngState;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  rngState = x;
  return <u32>(x % <u64>bound);
}
