// Replacements for the imports AssemblyScript emits by default (env.abort, env.seed,
// env.trace): Envoy provides none of them (reference/proxy-wasm.md §1.5).
@external("env", "proxy_log")
declare function proxy_log_raw(level: i32, ptr: usize, len: usize): i32;
@external("wasi_snapshot_preview1", "random_get")
declare function wasi_random_get(buf: usize, len: usize): i32;

function logUtf16(level: i32, s: string): void {
  const buf = String.UTF8.encode(s);
  proxy_log_raw(level, changetype<usize>(buf), buf.byteLength);
}

export function egretAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  logUtf16(5, "egret abort: " + (message !== null ? message : "") + " at " + (fileName !== null ? fileName : "") + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

export function egretSeed(): f64 {
  const tmp = memory.data(8);
  wasi_random_get(tmp, 8);
  return reinterpret<f64>((load<u64>(tmp) >> 12) | 0x3ff0000000000000);
}

export function egretTrace(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  logUtf16(1, "trace: " + message);
}
