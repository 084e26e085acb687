// gRPC callouts over real @grpc/grpc-js channels, made and answered on the root context
// (reference/proxy-wasm.md §5): serialized GrpcService or plain cluster name, token numbering per
// VM (calls ≡ 1, streams ≡ 2 mod 4), unary success = receive only, failure = close only, streams
// get initial metadata / messages / trailing metadata / close. Messages are raw bytes (the gRPC
// 5-byte framing is grpc-js's job, as it is Envoy's).
import * as grpc from "@grpc/grpc-js";
import { CalloutType, MapType, Status } from "./abi.js";
import type { WasmVm } from "./vm.js";
import { SourceBoundForwarder } from "./upstream-bind.js";
import type { TimerHandle } from "./clock.js";

export interface Callout {
  readonly kind: "call" | "stream";
  /** The root context that made it: its answers go there (§5), and it ends with that root. */
  readonly rootId: number;
  cancel(): void;
  /** Streams only. */
  send?(message: Buffer, endStream: boolean): void;
  halfClose?(): void;
}

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

/** A cluster: one endpoint ("host:port") or several (the replicas behind a Service). */
export type ClusterEndpoints = string | readonly string[];

/** The endpoint one call or stream went to; `release()` when it is over (least-request counts). */
export interface PickedEndpoint { readonly address: string; release(): void }

/** Envoy's LeastRequestLbConfig.choice_count default. */
const LEAST_REQUEST_CHOICES = 2;

/**
 * The "cluster manager" of the host: cluster name → endpoints, and the grpc-js clients.
 *
 * Like Envoy (docs/reference/envoy-grpc.md): every worker thread has its own connections to a
 * cluster, so each VM gets its own grpc-js client per endpoint; each new call or stream is load
 * balanced on its own, so one sidecar's Watch and Lookup can land on different replicas. Istio's
 * default policy is LEAST_REQUEST; with equal weights Envoy samples `choice_count` (2) hosts at
 * random, with replacement, and takes the one with the fewest active requests.
 */
export class GrpcChannels {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly active = new Map<string, number>();
  constructor(
    private readonly clusters: Record<string, readonly string[]>,
    private readonly forwarders: SourceBoundForwarder[] = [],
    private readonly random: () => number = Math.random,
  ) {}

  /** With `sourceAddress`, every endpoint is reached from that address (upstream-bind.ts). */
  static async create(clusters: Record<string, ClusterEndpoints>, sourceAddress?: string, random?: () => number): Promise<GrpcChannels> {
    const lists: Record<string, readonly string[]> = {};
    for (const [name, endpoints] of Object.entries(clusters)) {
      const list = typeof endpoints === "string" ? [endpoints] : [...endpoints];
      if (list.length === 0) throw new Error(`grpcClusters["${name}"]: no endpoints; give "host:port" or a list of them`);
      lists[name] = list;
    }
    if (!sourceAddress) return new GrpcChannels(lists, [], random);
    const forwarders: SourceBoundForwarder[] = [];
    const bound: Record<string, string[]> = {};
    try {
      for (const [name, list] of Object.entries(lists)) {
        bound[name] = [];
        for (const address of list) {
          const f = await SourceBoundForwarder.start(address, sourceAddress);
          forwarders.push(f);
          bound[name].push(f.address);
        }
      }
    } catch (err) {
      for (const f of forwarders) f.close();
      throw err;
    }
    return new GrpcChannels(bound, forwarders, random);
  }

  hasCluster(name: string): boolean { return Object.hasOwn(this.clusters, name); }

  /** Least-request pick (power of two choices) among the cluster's endpoints; undefined = no such cluster. */
  pick(cluster: string): PickedEndpoint | undefined {
    if (!this.hasCluster(cluster)) return undefined;
    const list = this.clusters[cluster];
    let chosen = list[0];
    if (list.length > 1) {
      let best = Infinity;
      for (let i = 0; i < LEAST_REQUEST_CHOICES; i++) {
        const candidate = list[Math.min(list.length - 1, Math.floor(this.random() * list.length))];
        const load = this.active.get(candidate) ?? 0;
        if (load < best) { best = load; chosen = candidate; }
      }
    }
    this.active.set(chosen, (this.active.get(chosen) ?? 0) + 1);
    let released = false;
    return {
      address: chosen,
      release: () => {
        if (released) return;
        released = true;
        this.active.set(chosen, (this.active.get(chosen) ?? 1) - 1);
      },
    };
  }

  /** Active calls + streams per endpoint address (tests, diagnostics). */
  activeRequests(): Map<string, number> { return new Map(this.active); }

  /** The grpc-js client of one VM ("worker thread") for one endpoint and authority. */
  client(vmName: string, address: string, authority: string): grpc.Client {
    const key = `${vmName}\0${address}\0${authority}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new grpc.Client(address, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, ...(authority ? { "grpc.default_authority": authority } : {}) });
      this.clients.set(key, c);
    }
    return c;
  }

  /** Separate client connections so far (one per VM × endpoint × authority). */
  get clientCount(): number { return this.clients.size; }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const f of this.forwarders) f.close();
  }
}

/**
 * What Envoy's async gRPC client reports when a unary call's timeout fires: the router's
 * response timeout sends a local 504 "upstream request timeout", which a gRPC request receives as
 * grpc-status httpToGrpcStatus(504) = UNAVAILABLE (docs/reference/envoy-grpc.md). Not
 * DEADLINE_EXCEEDED: that only comes from a server that enforced grpc-timeout itself.
 */
export const CALL_TIMEOUT = { code: grpc.status.UNAVAILABLE, message: "upstream request timeout" } as const;

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

interface Resolved { status: number; cluster?: string; authority?: string }

function resolveUpstream(vm: WasmVm, upstream: Uint8Array): Resolved {
  const parsed = parseGrpcService(upstream);
  if (parsed) {
    // Parsed form: the cluster is not checked up front; a missing one fails asynchronously.
    return { status: Status.Ok, cluster: parsed.cluster, authority: parsed.authority || parsed.cluster };
  }
  const cluster = Buffer.from(upstream).toString("utf8");
  if (!vm.services.grpc.hasCluster(cluster)) return { status: Status.ParseFailure };
  // Plain name: :authority defaults to the cluster name (invalid for Istio names, istio#27918).
  return { status: Status.Ok, cluster, authority: cluster };
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

/** Delivers a root callback from the network (next event-loop turn), honouring failure, cancellation and deferral. */
function deliver(vm: WasmVm, rootId: number, fn: () => void): void {
  setImmediate(() => deliverNow(vm, rootId, fn));
}

/** Delivers a root callback now (a timer of the injected clock fired), or after the current VM call. */
function deliverNow(vm: WasmVm, rootId: number, fn: () => void): void {
  if (vm.failed || !vm.hasRoot(rootId)) return;
  vm.defer(fn);
}

function onReceive(vm: WasmVm, rootId: number, token: number, message: Buffer): void {
  vm.grpcReceiveBuffer = message;
  try { vm.call("proxy_on_grpc_receive", rootId, rootId, token, message.length); } finally { vm.grpcReceiveBuffer = undefined; }
}

function onClose(vm: WasmVm, rootId: number, token: number, code: number, message: string): void {
  vm.status = { code, message };
  vm.call("proxy_on_grpc_close", rootId, rootId, token, code);
}

function onMetadata(vm: WasmVm, rootId: number, token: number, type: number, pairs: [Buffer, Buffer][], callback: string): void {
  vm.grpcMetadata = { type, pairs };
  try { vm.call(callback, rootId, rootId, token, pairs.length); } finally { vm.grpcMetadata = undefined; }
}

export function startGrpcCall(vm: WasmVm, req: { upstream: Buffer; service: string; method: string; metadata: [Buffer, Buffer][]; message: Buffer; timeoutMs: number }): { status: number; token?: number } {
  const r = resolveUpstream(vm, req.upstream);
  if (r.status !== Status.Ok) return { status: r.status };
  const token = vm.nextCalloutToken(CalloutType.GrpcCall);
  const rootId = vm.activeRootId();
  const endpoint = vm.services.grpc.pick(r.cluster!);
  const clock = vm.services.clock;
  let finished = false;
  let call: grpc.ClientUnaryCall | undefined;
  let deadline: TimerHandle | undefined;
  const settle = (): void => {
    finished = true;
    vm.callouts.delete(token);
    endpoint?.release();
    if (deadline) { clock.clearTimer(deadline); deadline = undefined; }
  };
  const fail = (code: number, message: string): void => {
    if (finished) return;
    settle();
    deliver(vm, rootId, () => onClose(vm, rootId, token, code, message));
  };
  vm.callouts.set(token, { kind: "call", rootId, cancel: () => { if (!finished) { settle(); call?.cancel(); } } });
  if (!endpoint) { fail(grpc.status.UNAVAILABLE, `cluster ${r.cluster} not found`); return { status: Status.Ok, token }; }
  // The call's timeout runs on the host's clock, as Envoy's router timer runs on its dispatcher's
  // time source: an injected ManualClock decides when it fires, so tests reach that branch.
  if (req.timeoutMs > 0) {
    deadline = clock.setTimer(req.timeoutMs, () => {
      deadline = undefined;
      if (finished) return;
      settle();
      call?.cancel();
      deliverNow(vm, rootId, () => onClose(vm, rootId, token, CALL_TIMEOUT.code, CALL_TIMEOUT.message));
    });
  }
  try {
    call = vm.services.grpc.client(vm.name, endpoint.address, r.authority ?? "").makeUnaryRequest(
      `/${req.service}/${req.method}`, (b: Buffer) => b, (b: Buffer) => b, req.message, toMetadata(req.metadata), {},
      (err: grpc.ServiceError | null, value?: Buffer) => {
        if (finished) return;
        if (err) { fail(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message); return; }
        settle();
        deliver(vm, rootId, () => onReceive(vm, rootId, token, value ?? Buffer.alloc(0)));
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
  const rootId = vm.activeRootId();
  const endpoint = vm.services.grpc.pick(r.cluster!);
  let closed = false;
  let closedByServer = false;
  const finish = (code: number, message: string, trailers?: grpc.Metadata): void => {
    if (closed) return; closed = true; closedByServer = true;
    vm.callouts.delete(token);
    endpoint?.release();
    deliver(vm, rootId, () => {
      if (trailers) onMetadata(vm, rootId, token, MapType.GrpcReceiveTrailingMetadata, fromMetadata(trailers), "proxy_on_grpc_receive_trailing_metadata");
      onClose(vm, rootId, token, code, message);
    });
  };
  if (!endpoint) {
    vm.callouts.set(token, { kind: "stream", rootId, cancel: () => { closed = true; }, send: () => undefined, halfClose: () => undefined });
    finish(grpc.status.UNAVAILABLE, `cluster ${r.cluster} not found`);
    return { status: Status.Ok, token };
  }
  let stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  try {
    stream = vm.services.grpc.client(vm.name, endpoint.address, r.authority ?? "").makeBidiStreamRequest(`/${req.service}/${req.method}`, (b: Buffer) => b, (b: Buffer) => b, toMetadata(req.metadata), {});
  } catch (e) {
    vm.callouts.set(token, { kind: "stream", rootId, cancel: () => { closed = true; } });
    finish(grpc.status.INTERNAL, (e as Error).message);
    return { status: Status.Ok, token };
  }
  // Events queued before a cancel are dropped at delivery: a cancelled token is forgotten.
  const live = (): boolean => vm.callouts.has(token);
  stream.on("metadata", (md: grpc.Metadata) => {
    if (!closed) deliver(vm, rootId, () => { if (live()) onMetadata(vm, rootId, token, MapType.GrpcReceiveInitialMetadata, fromMetadata(md), "proxy_on_grpc_receive_initial_metadata"); });
  });
  stream.on("data", (msg: Buffer) => { if (!closed) deliver(vm, rootId, () => { if (live() || closedByServer) onReceive(vm, rootId, token, msg); }); });
  stream.on("error", () => { /* reported through "status" */ });
  stream.on("status", (st: grpc.StatusObject) => finish(st.code, st.details, st.metadata));
  vm.callouts.set(token, {
    kind: "stream",
    rootId,
    cancel: () => { closed = true; endpoint.release(); stream.cancel(); },
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
