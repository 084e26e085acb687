// gRPC callouts over real @grpc/grpc-js channels, made and answered on the root context
// (reference/proxy-wasm.md §5): serialized GrpcService or plain cluster name, token numbering per
// VM (calls ≡ 1, streams ≡ 2 mod 4), unary success = receive only, failure = close only, streams
// get initial metadata / messages / trailing metadata / close. Messages are raw bytes (the gRPC
// 5-byte framing is grpc-js's job, as it is Envoy's).
import * as grpc from "@grpc/grpc-js";
import { CalloutType, MapType, Status } from "./abi.js";
import type { WasmVm } from "./vm.js";
import { SourceBoundForwarder } from "./upstream-bind.js";

export interface Callout {
  readonly kind: "call" | "stream";
  cancel(): void;
  /** Streams only. */
  send?(message: Buffer, endStream: boolean): void;
  halfClose?(): void;
}

/** Cluster name → "host:port", and the grpc-js clients for them (one per address+authority). */
/**
 * Envoy opens an upstream connection on demand for each new gRPC stream (no channel-level
 * reconnect backoff: a failed connect fails that stream at once, the next stream tries again).
 * grpc-js defaults (1 s growing to 120 s) would keep a channel in TRANSIENT_FAILURE for seconds
 * after the server is back, failing every call meanwhile; keep its backoff short so the filter's
 * own retry schedule is what decides, as under Envoy.
 */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

export class GrpcChannels {
  private readonly clients = new Map<string, grpc.Client>();
  constructor(
    private readonly clusters: Record<string, string>,
    private readonly forwarders: SourceBoundForwarder[] = [],
  ) {}

  /** With `sourceAddress`, every cluster is reached from that address (upstream-bind.ts). */
  static async create(clusters: Record<string, string>, sourceAddress?: string): Promise<GrpcChannels> {
    if (!sourceAddress) return new GrpcChannels(clusters);
    const forwarders: SourceBoundForwarder[] = [];
    const bound: Record<string, string> = {};
    try {
      for (const [name, address] of Object.entries(clusters)) {
        const f = await SourceBoundForwarder.start(address, sourceAddress);
        forwarders.push(f);
        bound[name] = f.address;
      }
    } catch (err) {
      for (const f of forwarders) f.close();
      throw err;
    }
    return new GrpcChannels(bound, forwarders);
  }

  hasCluster(name: string): boolean { return Object.hasOwn(this.clusters, name); }
  address(cluster: string): string | undefined { return this.hasCluster(cluster) ? this.clusters[cluster] : undefined; }

  client(address: string, authority: string): grpc.Client {
    const key = `${address}\0${authority}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new grpc.Client(address, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, ...(authority ? { "grpc.default_authority": authority } : {}) });
      this.clients.set(key, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const f of this.forwarders) f.close();
  }
}

interface Target { cluster: string; authority: string }

/**
 * Envoy first tries to parse `upstream` as a serialized envoy.config.core.v3.GrpcService, then
 * falls back to a plain cluster name (envoy PR #15208). Returns undefined when it is not a valid
 * protobuf message.
 */
export function parseGrpcService(bytes: Uint8Array): Target | undefined {
  const fields = parseMessage(bytes);
  if (!fields) return undefined;
  const envoyGrpc = fields.find((f) => f.no === 1 && f.bytes);
  if (!envoyGrpc) return { cluster: "", authority: "" };
  const inner = parseMessage(envoyGrpc.bytes!);
  if (!inner) return undefined;
  const text = (no: number): string => Buffer.from(inner.find((f) => f.no === no && f.bytes)?.bytes ?? []).toString("utf8");
  return { cluster: text(1), authority: text(2) };
}

function parseMessage(b: Uint8Array): { no: number; bytes?: Uint8Array }[] | undefined {
  const out: { no: number; bytes?: Uint8Array }[] = [];
  let p = 0;
  const varint = (): number | undefined => {
    let r = 0, s = 0;
    for (;;) {
      if (p >= b.length || s > 35) return undefined;
      const x = b[p++];
      r += (x & 0x7f) * 2 ** s; s += 7;
      if (!(x & 0x80)) return r;
    }
  };
  while (p < b.length) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const no = Math.floor(tag / 8), wt = tag & 7;
    if (no === 0) return undefined;
    if (wt === 0) { if (varint() === undefined) return undefined; out.push({ no }); }
    else if (wt === 1) { p += 8; out.push({ no }); }
    else if (wt === 5) { p += 4; out.push({ no }); }
    else if (wt === 2) {
      const len = varint();
      if (len === undefined || p + len > b.length) return undefined;
      out.push({ no, bytes: b.subarray(p, p + len) }); p += len;
    } else return undefined;
    if (p > b.length) return undefined;
  }
  return out;
}

interface Resolved { status: number; address?: string; authority?: string; cluster?: string }

function resolveUpstream(vm: WasmVm, upstream: Uint8Array): Resolved {
  const parsed = parseGrpcService(upstream);
  if (parsed) {
    // Parsed form: the cluster is not checked up front; a missing one fails asynchronously.
    return { status: Status.Ok, cluster: parsed.cluster, address: vm.services.grpc.address(parsed.cluster), authority: parsed.authority || parsed.cluster };
  }
  const cluster = Buffer.from(upstream).toString("utf8");
  if (!vm.services.grpc.hasCluster(cluster)) return { status: Status.ParseFailure };
  // Plain name: :authority defaults to the cluster name (invalid for Istio names, istio#27918).
  return { status: Status.Ok, cluster, address: vm.services.grpc.address(cluster), authority: cluster };
}

function toMetadata(pairs: [Buffer, Buffer][]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of pairs) {
    const key = k.toString("utf8").toLowerCase();
    try {
      if (key.endsWith("-bin")) md.add(key, Buffer.from(v)); else md.add(key, v.toString("utf8"));
    } catch { /* invalid header names are dropped, as Envoy's header map would reject them */ }
  }
  return md;
}

function fromMetadata(md: grpc.Metadata | undefined): [Buffer, Buffer][] {
  if (!md) return [];
  const out: [Buffer, Buffer][] = [];
  for (const [k, values] of Object.entries(md.toJSON())) {
    for (const v of values as (string | Buffer)[]) out.push([Buffer.from(k), typeof v === "string" ? Buffer.from(v) : Buffer.from(v)]);
  }
  return out;
}

/** Delivers a root callback, honouring failure, cancellation and deferral. */
function deliver(vm: WasmVm, token: number, fn: () => void): void {
  setImmediate(() => {
    if (vm.failed || !vm.contexts.has(vm.rootContextId)) return;
    vm.defer(fn);
  });
}

function onReceive(vm: WasmVm, token: number, message: Buffer): void {
  vm.grpcReceiveBuffer = message;
  try { vm.call("proxy_on_grpc_receive", vm.rootContextId, vm.rootContextId, token, message.length); } finally { vm.grpcReceiveBuffer = undefined; }
}

function onClose(vm: WasmVm, token: number, code: number, message: string): void {
  vm.status = { code, message };
  vm.call("proxy_on_grpc_close", vm.rootContextId, vm.rootContextId, token, code);
}

function onMetadata(vm: WasmVm, token: number, type: number, pairs: [Buffer, Buffer][], callback: string): void {
  vm.grpcMetadata = { type, pairs };
  try { vm.call(callback, vm.rootContextId, vm.rootContextId, token, pairs.length); } finally { vm.grpcMetadata = undefined; }
}

export function startGrpcCall(vm: WasmVm, req: { upstream: Buffer; service: string; method: string; metadata: [Buffer, Buffer][]; message: Buffer; timeoutMs: number }): { status: number; token?: number } {
  const r = resolveUpstream(vm, req.upstream);
  if (r.status !== Status.Ok) return { status: r.status };
  const token = vm.nextCalloutToken(CalloutType.GrpcCall);
  let finished = false;
  const fail = (code: number, message: string): void => {
    if (finished) return; finished = true;
    vm.callouts.delete(token);
    deliver(vm, token, () => onClose(vm, token, code, message));
  };
  if (!r.address) { vm.callouts.set(token, { kind: "call", cancel: () => { finished = true; } }); fail(grpc.status.UNAVAILABLE, `cluster ${r.cluster} not found`); return { status: Status.Ok, token }; }
  let call: grpc.ClientUnaryCall | undefined;
  const options: grpc.CallOptions = req.timeoutMs > 0 ? { deadline: new Date(Date.now() + req.timeoutMs) } : {};
  vm.callouts.set(token, { kind: "call", cancel: () => { finished = true; call?.cancel(); } });
  try {
    call = vm.services.grpc.client(r.address, r.authority ?? "").makeUnaryRequest(
      `/${req.service}/${req.method}`, (b: Buffer) => b, (b: Buffer) => b, req.message, toMetadata(req.metadata), options,
      (err: grpc.ServiceError | null, value?: Buffer) => {
        if (finished) return;
        if (err) { fail(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message); return; }
        finished = true;
        vm.callouts.delete(token);
        deliver(vm, token, () => onReceive(vm, token, value ?? Buffer.alloc(0)));
      });
  } catch (e) {
    fail(grpc.status.INTERNAL, (e as Error).message);
  }
  return { status: Status.Ok, token };
}

export function startGrpcStream(vm: WasmVm, req: { upstream: Buffer; service: string; method: string; metadata: [Buffer, Buffer][] }): { status: number; token?: number } {
  const r = resolveUpstream(vm, req.upstream);
  if (r.status !== Status.Ok) return { status: r.status };
  const token = vm.nextCalloutToken(CalloutType.GrpcStream);
  let closed = false;
  let closedByServer = false;
  const finish = (code: number, message: string, trailers?: grpc.Metadata): void => {
    if (closed) return; closed = true; closedByServer = true;
    vm.callouts.delete(token);
    deliver(vm, token, () => {
      if (trailers) onMetadata(vm, token, MapType.GrpcReceiveTrailingMetadata, fromMetadata(trailers), "proxy_on_grpc_receive_trailing_metadata");
      onClose(vm, token, code, message);
    });
  };
  if (!r.address) {
    vm.callouts.set(token, { kind: "stream", cancel: () => { closed = true; }, send: () => undefined, halfClose: () => undefined });
    finish(grpc.status.UNAVAILABLE, `cluster ${r.cluster} not found`);
    return { status: Status.Ok, token };
  }
  let stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  try {
    stream = vm.services.grpc.client(r.address, r.authority ?? "").makeBidiStreamRequest(`/${req.service}/${req.method}`, (b: Buffer) => b, (b: Buffer) => b, toMetadata(req.metadata), {});
  } catch (e) {
    vm.callouts.set(token, { kind: "stream", cancel: () => { closed = true; } });
    finish(grpc.status.INTERNAL, (e as Error).message);
    return { status: Status.Ok, token };
  }
  // Events queued before a cancel are dropped at delivery: a cancelled token is forgotten.
  const live = (): boolean => vm.callouts.has(token);
  stream.on("metadata", (md: grpc.Metadata) => {
    if (!closed) deliver(vm, token, () => { if (live()) onMetadata(vm, token, MapType.GrpcReceiveInitialMetadata, fromMetadata(md), "proxy_on_grpc_receive_initial_metadata"); });
  });
  stream.on("data", (msg: Buffer) => { if (!closed) deliver(vm, token, () => { if (live() || closedByServer) onReceive(vm, token, msg); }); });
  stream.on("error", () => { /* reported through "status" */ });
  stream.on("status", (st: grpc.StatusObject) => finish(st.code, st.details, st.metadata));
  vm.callouts.set(token, {
    kind: "stream",
    cancel: () => { closed = true; stream.cancel(); },
    send: (message, endStream) => { stream.write(message); if (endStream) stream.end(); },
    halfClose: () => stream.end(),
  });
  return { status: Status.Ok, token };
}

export function grpcSend(vm: WasmVm, token: number, message: Buffer, endStream: boolean): number {
  const c = vm.callouts.get(token);
  if (!c) return Status.NotFound;
  if (c.kind !== "stream" || !c.send) return Status.BadArgument;
  c.send(message, endStream);
  return Status.Ok;
}

/** Calls: cancel and forget. Streams: local half-close, kept until the server closes (§5). */
export function grpcClose(vm: WasmVm, token: number): number {
  const c = vm.callouts.get(token);
  if (!c) return Status.NotFound;
  if (c.kind === "call") { c.cancel(); vm.callouts.delete(token); return Status.Ok; }
  c.halfClose?.();
  return Status.Ok;
}

/** Cancels (resets) and forgets the token; no close callback follows. */
export function grpcCancel(vm: WasmVm, token: number): number {
  const c = vm.callouts.get(token);
  if (!c) return Status.NotFound;
  c.cancel();
  vm.callouts.delete(token);
  return Status.Ok;
}
