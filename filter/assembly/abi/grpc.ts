// gRPC callouts (reference/proxy-wasm.md §5). They run on the root context whatever context calls
// them, and every answer arrives at the root with the token, so callers keep token → connection
// maps and use setEffectiveContext before acting on a connection.
import { proxy_grpc_call, proxy_grpc_stream, proxy_grpc_send, proxy_grpc_close, proxy_grpc_cancel } from "./imports";
import { Status } from "./enums";
import { OUT_U32 } from "./memory";

/**
 * Serialized envoy.config.core.v3.GrpcService{ envoy_grpc(1): { cluster_name(1), authority(2) } }.
 * Passing this instead of a bare Istio cluster name gives the request a valid :authority
 * (istio#27918, istio#39355).
 */
export function encodeGrpcService(cluster: string, authority: string): ArrayBuffer {
  const c = String.UTF8.encode(cluster);
  const a = String.UTF8.encode(authority);
  const innerLen = 1 + varintSize(c.byteLength) + c.byteLength + (a.byteLength > 0 ? 1 + varintSize(a.byteLength) + a.byteLength : 0);
  const out = new ArrayBuffer(1 + varintSize(innerLen) + innerLen);
  let p = changetype<usize>(out);
  store<u8>(p++, 0x0a);
  p = putVarint(p, innerLen);
  store<u8>(p++, 0x0a);
  p = putVarint(p, c.byteLength);
  memory.copy(p, changetype<usize>(c), c.byteLength);
  p += c.byteLength;
  if (a.byteLength > 0) {
    store<u8>(p++, 0x12);
    p = putVarint(p, a.byteLength);
    memory.copy(p, changetype<usize>(a), a.byteLength);
  }
  return out;
}

function varintSize(v: i32): i32 {
  let n = 1;
  let u = <u32>v;
  while (u >= 0x80) { u >>= 7; n++; }
  return n;
}

function putVarint(p: usize, v: i32): usize {
  let u = <u32>v;
  while (u >= 0x80) { store<u8>(p++, <u8>((u & 0x7f) | 0x80)); u >>= 7; }
  store<u8>(p++, <u8>u);
  return p;
}

/**
 * One gRPC method on one upstream, encoded once (configuration time) so that calls and streams
 * opened per connection allocate nothing.
 */
export class GrpcMethod {
  readonly upstream: ArrayBuffer;
  readonly service: ArrayBuffer;
  readonly method: ArrayBuffer;
  readonly metadata: ArrayBuffer | null;
  /** Status of the last call/stream attempt (e.g. ParseFailure for an unknown plain cluster). */
  lastStatus: Status = Status.Ok;

  /** `upstream` is encodeGrpcService(...) output or a plain cluster name's bytes. */
  constructor(upstream: ArrayBuffer, service: string, method: string, metadata: ArrayBuffer | null = null) {
    this.upstream = upstream;
    this.service = String.UTF8.encode(service);
    this.method = String.UTF8.encode(method);
    this.metadata = metadata;
  }

  /** Starts a unary call; returns its token (≡ 1 mod 4 in Envoy) or 0 on failure (see lastStatus). */
  call(message: usize, messageLen: u32, timeoutMs: u32): u32 {
    const md = this.metadata;
    const st = <Status>proxy_grpc_call(
      changetype<usize>(this.upstream), this.upstream.byteLength,
      changetype<usize>(this.service), this.service.byteLength,
      changetype<usize>(this.method), this.method.byteLength,
      md !== null ? changetype<usize>(md) : 0, md !== null ? <usize>md.byteLength : 0,
      message, messageLen, timeoutMs, OUT_U32);
    this.lastStatus = st;
    return st == Status.Ok ? load<u32>(OUT_U32) : 0;
  }

  /** Opens a bidirectional stream; returns its token (≡ 2 mod 4 in Envoy) or 0 on failure. */
  openStream(): u32 {
    const md = this.metadata;
    const st = <Status>proxy_grpc_stream(
      changetype<usize>(this.upstream), this.upstream.byteLength,
      changetype<usize>(this.service), this.service.byteLength,
      changetype<usize>(this.method), this.method.byteLength,
      md !== null ? changetype<usize>(md) : 0, md !== null ? <usize>md.byteLength : 0,
      OUT_U32);
    this.lastStatus = st;
    return st == Status.Ok ? load<u32>(OUT_U32) : 0;
  }
}

/** Sends one message on a stream; `endStream` half-closes after it. */
export function grpcSend(token: u32, message: usize, messageLen: u32, endStream: bool = false): Status {
  return <Status>proxy_grpc_send(token, message, messageLen, endStream ? 1 : 0);
}

/** Calls: cancel. Streams: local half-close, kept until the server closes. */
export function grpcClose(token: u32): Status { return <Status>proxy_grpc_close(token); }

/** Cancels (resets) a call or stream and forgets the token. */
export function grpcCancel(token: u32): Status { return <Status>proxy_grpc_cancel(token); }
