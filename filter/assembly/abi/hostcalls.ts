// Safe wrappers over the raw host functions (imports.ts). They return Status instead of throwing
// (a trap would fail the whole VM, reference/proxy-wasm.md §6.6), use static out-parameters and
// reusable HostBytes, and never allocate on their own.
import {
  proxy_log, proxy_get_log_level, proxy_get_status, proxy_get_current_time_nanoseconds,
  proxy_set_tick_period_milliseconds, proxy_get_buffer_status, proxy_get_buffer_bytes,
  proxy_set_buffer_bytes, proxy_get_header_map_value, proxy_get_header_map_pairs,
  proxy_continue_stream, proxy_close_stream, proxy_set_effective_context, proxy_done,
} from "./imports";
import { Status, LogLevel, BufferType, MapType, StreamType } from "./enums";
import { HostBytes, OUT_PTR, OUT_LEN, OUT_U32, OUT_U64, SCRATCH, toScratch } from "./memory";

/** Logs a message (truncated to 4 KiB of UTF-8). */
export function log(level: LogLevel, message: string): void {
  const n = toScratch(message);
  proxy_log(<u32>level, SCRATCH, n);
}

/** Logs raw UTF-8 bytes without any copy. */
export function logBytes(level: LogLevel, ptr: usize, len: u32): void {
  proxy_log(<u32>level, ptr, len);
}

/** The host's current log level for wasm (Envoy's `wasm` logger); Info if unavailable. */
export function logLevel(): LogLevel {
  return proxy_get_log_level(OUT_U32) == Status.Ok ? <LogLevel>load<u32>(OUT_U32) : LogLevel.Info;
}

/**
 * Reports a host status the caller did not expect: logged once per call site at error level.
 * Filter code then applies its failure mode; it never traps.
 */
export function hostBug(call: string, status: Status): void {
  log(LogLevel.Error, "unexpected host status " + (<u32>status).toString() + " from " + call);
}

/** Wall-clock time in nanoseconds since the epoch (0 if unavailable). */
export function currentTimeNanos(): u64 {
  return proxy_get_current_time_nanoseconds(OUT_U64) == Status.Ok ? load<u64>(OUT_U64) : 0;
}

/** Sets the tick period of the calling VM's root context; 0 disables ticks (§6.5). */
export function setTickPeriod(ms: u32): Status {
  return <Status>proxy_set_tick_period_milliseconds(ms);
}

/** Length of a buffer, or 0 when absent. */
export function bufferLength(type: BufferType): u32 {
  return proxy_get_buffer_status(<u32>type, OUT_LEN, OUT_U32) == Status.Ok ? load<u32>(OUT_LEN) : 0;
}

/**
 * Copies bytes [start, start+maxLen) of a buffer into `out` (host-allocated; released on reuse).
 * Network buffers outside their callback read as Ok/empty (§3.6).
 */
export function getBuffer(type: BufferType, start: u32, maxLen: u32, out: HostBytes): Status {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = <Status>proxy_get_buffer_bytes(<u32>type, start, maxLen, OUT_PTR, OUT_LEN);
  if (st == Status.Ok) out.takeOut(); else out.release();
  return st;
}

/**
 * Copies up to `cap` bytes of a buffer from `start` into `dst` (e.g. a static scratch array) and
 * frees the host copy at once. Returns the number of bytes copied, or -(status) on failure.
 */
export function readBuffer(type: BufferType, start: u32, dst: usize, cap: u32): i32 {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = proxy_get_buffer_bytes(<u32>type, start, cap, OUT_PTR, OUT_LEN);
  if (st != Status.Ok) return -<i32>st;
  const p = load<u32>(OUT_PTR);
  let n = load<u32>(OUT_LEN);
  if (n > cap) n = cap;
  if (n > 0) memory.copy(dst, p, n);
  if (p != 0) heap.free(p);
  return <i32>n;
}

/**
 * Changes a network buffer as Envoy allows (§3.6): start 0 drains `size` bytes then prepends
 * `data`; start >= length appends; anything else is BadArgument.
 */
export function setBuffer(type: BufferType, start: u32, size: u32, data: usize, dataLen: u32): Status {
  return <Status>proxy_set_buffer_bytes(<u32>type, start, size, data, dataLen);
}

/** Serialized pairs of a header/metadata map (types 4–7 in a network filter, §1.2). */
export function getHeaderMapPairs(type: MapType, out: HostBytes): Status {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = <Status>proxy_get_header_map_pairs(<u32>type, OUT_PTR, OUT_LEN);
  if (st == Status.Ok) out.takeOut(); else out.release();
  return st;
}

/** One value of a header/metadata map. */
export function getHeaderMapValue(type: MapType, key: string, out: HostBytes): Status {
  const n = toScratch(key);
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  const st = <Status>proxy_get_header_map_value(<u32>type, SCRATCH, n, OUT_PTR, OUT_LEN);
  if (st == Status.Ok) out.takeOut(); else out.release();
  return st;
}

/** Resumes a paused stream; takes effect after the current callback returns (§3.7). */
export function continueStream(stream: StreamType): Status {
  return <Status>proxy_continue_stream(<u32>stream);
}

/** Closes the connection (either stream type closes the downstream, §3.5); deferred like continue. */
export function closeStream(stream: StreamType): Status {
  return <Status>proxy_close_stream(<u32>stream);
}

/** Makes later host calls in this callback act on `contextId` (reset when the callback returns). */
export function setEffectiveContext(contextId: u32): Status {
  return <Status>proxy_set_effective_context(contextId);
}

/** Tells the host a root context that deferred its deletion (onDone false) is finished. */
export function done(): Status {
  return <Status>proxy_done();
}

/** Status code and message of the last callout (meaningful in onGrpcClose / HTTP responses). */
export function lastStatus(message: HostBytes): u32 {
  store<u32>(OUT_PTR, 0);
  store<u32>(OUT_LEN, 0);
  if (proxy_get_status(OUT_U32, OUT_PTR, OUT_LEN) != Status.Ok) { message.release(); return <u32>GrpcUnknown; }
  message.takeOut();
  return load<u32>(OUT_U32);
}

// @ts-ignore: decorator
@inline const GrpcUnknown: u32 = 2;
