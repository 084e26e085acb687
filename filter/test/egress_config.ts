// Unit-test harness for the enforcement filter's plugin configuration (filter/assembly/egress/config.ts).
import { parseConfig, configError, EgressConfig } from "../assembly/egress/config";

const io = memory.data(8192);
const out = memory.data(4096);
let last: EgressConfig | null = null;

export function ioPtr(): usize {
  return io;
}
export function outPtr(): usize {
  return out;
}

/** Parses io[0..len); 1 when accepted. */
export function parse(len: i32): i32 {
  last = parseConfig(io, <usize>len);
  return last !== null ? 1 : 0;
}

/** The error message (UTF-8) into out; returns its length. */
export function error(): i32 {
  return <i32>String.UTF8.encodeUnsafe(changetype<usize>(configError), configError.length < 1300 ? configError.length : 1300, out);
}

/** A numeric field of the last accepted configuration, by index (see the test for the order). */
export function field(i: i32): f64 {
  const c = last;
  if (c === null) return -1;
  switch (i) {
    case 0: return <f64>c.lookupTimeoutMs;
    case 1: return <f64>c.detectTimeoutMs;
    case 2: return <f64>c.maxInspectBytes;
    case 3: return <f64>c.failureMode;
    case 4: return <f64>c.proxyPort.length;
    case 5: return <f64>c.tickMs;
    case 6: return <f64>c.maxResolutions;
    case 7: return c.logDecisions ? 1 : 0;
    case 8: return <f64>c.startupWaitMs;
    default: return -1;
  }
}

/** controlAuthority of the last accepted configuration into out; returns its length. */
export function authority(): i32 {
  const c = last;
  if (c === null) return 0;
  return <i32>String.UTF8.encodeUnsafe(changetype<usize>(c.controlAuthority), c.controlAuthority.length, out);
}

/** Whether the last configuration declares ip:port (given as text in io[0..len)) a forward proxy. */
export function isProxy(hi: u64, lo: u64, port: u32): i32 {
  const c = last;
  return c !== null && c.isForwardProxy(hi, lo, port) ? 1 : 0;
}
