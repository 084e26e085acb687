// HTTP callouts (reference/proxy-wasm.md §5): made on the root context; the answer arrives in
// RootContext.onHttpCallResponse with the body in buffer HttpCallResponseBody and headers in map
// HttpCallResponseHeaders. Headers must include :method, :path and :authority.
import { proxy_http_call } from "./imports";
import { Status } from "./enums";
import { OUT_U32 } from "./memory";

/** Status of the last httpCall (BadArgument: missing pseudo-header or unknown cluster). */
export let lastHttpCallStatus: Status = Status.Ok;

/** Starts a call; `headers` is encodePairs output. Returns the token (≡ 0 mod 4) or 0. */
export function httpCall(cluster: ArrayBuffer, headers: ArrayBuffer, body: usize, bodyLen: u32, timeoutMs: u32): u32 {
  const st = <Status>proxy_http_call(changetype<usize>(cluster), cluster.byteLength, changetype<usize>(headers), headers.byteLength, body, bodyLen, 0, 0, timeoutMs, OUT_U32);
  lastHttpCallStatus = st;
  return st == Status.Ok ? load<u32>(OUT_U32) : 0;
}
