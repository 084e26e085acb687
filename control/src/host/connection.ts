// One downstream TCP connection through the wasm network filter and an emulated tcp_proxy
// (reference/proxy-wasm.md §3). The filter sees the connection exactly as in Envoy: context
// create + new_connection first; tcp_proxy keeps downstream reads disabled until the upstream is
// connected; StopIteration holds bytes in the read buffer and re-offers them accumulated;
// continue/close act after the VM call returns; the write (upstream→client) path cannot be held.
import { EventEmitter } from "node:events";
import { PeerType } from "./abi.js";
import { str, int, uint, lookup, serialize, type PropValue } from "./properties.js";
import type { StreamOwner, WasmVm } from "./vm.js";
import { parseHostPort, formatHostPort } from "../common/host-port.js";

export type ConnectionState = "new" | "paused" | "connecting" | "open" | "closed";
export type ClosedBy = "filter" | "downstream" | "upstream" | "vm-failed" | "host";
export interface CloseInfo { by: ClosedBy; detail: string }
/** §6.2: FAIL_CLOSED closes; FAIL_OPEN passes unfiltered; FAIL_RELOAD closes, and the worker's VM is reloaded for new connections. */
export type FailurePolicy = "FAIL_CLOSED" | "FAIL_OPEN" | "FAIL_RELOAD";

export interface ConnectionOptions {
  /** Client address, "ip:port" (IPv6 as "[::1]:port"). */
  source: string;
  /** Original destination, "ip:port". */
  destination: string;
  /** Worker VM index; default round-robin. */
  worker?: number;
  /**
   * Emulate the upstream connect when tcp_proxy asks (default true). As in Envoy, the connect
   * completes later, on a following event-loop turn (tcp_proxy's pool callback), never inside
   * the call that asked for it: until then downstream reads stay disabled. false: the driver
   * calls upstreamConnected() / upstreamConnectFailed() itself (egret sidecar does).
   */
  autoConnectUpstream?: boolean;
  /** Address the upstream connection comes from once connected (upstream.local_address). */
  upstreamLocalAddress?: string;
  /**
   * The cluster tcp_proxy routes this connection to: `xds.cluster_name` from the moment tcp_proxy
   * picks it (its onNewConnection, i.e. after the filter continued; never inside
   * on_new_connection). Istio: `outbound|PORT|SUBSET|HOST` for a service or ServiceEntry VIP,
   * `PassthroughCluster` (the default here) for any other destination.
   */
  cluster?: string;
}

export interface ConnectionEvents {
  "upstream-connect": [];
  "upstream-data": [Buffer];
  "upstream-end": [];
  "downstream-data": [Buffer];
  "downstream-end": [];
  close: [CloseInfo];
}

let nextConnectionId = 1n;


export class Connection extends EventEmitter<ConnectionEvents> implements StreamOwner {
  readonly connectionId = nextConnectionId++;
  state: ConnectionState = "new";
  upstreamConnectRequested = false;
  /** Resolves when tcp_proxy asks for the upstream connection. */
  readonly whenUpstreamRequested: Promise<void>;
  /** Resolves when tcp_proxy's upstream connection is established (never, if it closes first). */
  readonly whenUpstreamConnected: Promise<void>;
  /** Resolves when the connection is closed, with who closed it. */
  readonly whenClosed: Promise<CloseInfo>;
  closeInfo?: CloseInfo;
  /** Context id in the worker VM (0 when the VM had failed and the policy applied). */
  contextId = 0;

  private readonly sentUp: Buffer[] = [];
  private readonly sentDown: Buffer[] = [];
  private downstreamBuffer: Buffer = Buffer.alloc(0); // read buffer: received, not yet passed to tcp_proxy
  private downstreamEnd = false;
  private downstreamLive = false; // the filter may read/modify it (in callback or held)
  private upstreamBuffer: Buffer = Buffer.alloc(0);
  private upstreamEnd = false;
  private upstreamLive = false;
  private readEnabled = false; // tcp_proxy readDisable(true) at chain creation (§3.2)
  private upstreamFinSent = false;
  private downstreamFinSent = false;
  private filterAttached = false; // false: fail-open passthrough without the filter
  private readonly filterState = new Map<string, Buffer>();
  private readonly src: { host: string; port: number };
  private readonly dst: { host: string; port: number };
  private upstreamLocal?: string;
  private resolveRequested!: () => void;
  private resolveConnected!: () => void;
  private resolveClosed!: (c: CloseInfo) => void;

  constructor(
    readonly vm: WasmVm,
    readonly options: ConnectionOptions,
    private readonly failurePolicy: FailurePolicy,
    private readonly onFinished: (c: Connection) => void,
  ) {
    super();
    this.src = parseHostPort(options.source, "connection source", { allowPortZero: true });
    this.dst = parseHostPort(options.destination, "connection destination", { allowPortZero: true });
    this.whenUpstreamRequested = new Promise((r) => (this.resolveRequested = r));
    this.whenUpstreamConnected = new Promise((r) => (this.resolveConnected = r));
    this.whenClosed = new Promise((r) => (this.resolveClosed = r));
  }

  get source(): string { return this.options.source; }
  get destination(): string { return this.options.destination; }
  /** Every byte tcp_proxy wrote to the upstream so far. */
  get sentUpstream(): Buffer { return Buffer.concat(this.sentUp); }
  /** Every byte written back to the client so far. */
  get sentDownstream(): Buffer { return Buffer.concat(this.sentDown); }
  /** Bytes held in the downstream read buffer (StopIteration or reads disabled). */
  get heldDownstreamBytes(): number { return this.downstreamBuffer.length; }
  get closed(): boolean { return this.state === "closed"; }
  // A VM call may close the connection through a deferred action; re-read the state after it.
  private isClosed(): boolean { return this.state === "closed"; }

  /** Filter chain creation: context create + new_connection (§3.2 steps 1–3). Called by the host. */
  open(): void {
    if (this.vm.failed) { this.applyFailurePolicy(); return; }
    this.filterAttached = true;
    this.contextId = this.vm.newStreamContext(this);
    this.vm.call("proxy_on_context_create", this.contextId, this.contextId, this.vm.rootContextId);
    if (this.vm.failed) { this.applyFailurePolicy(); return; }
    const action = this.vm.call("proxy_on_new_connection", this.contextId, this.contextId);
    if (action === undefined) { this.applyFailurePolicy(); return; }
    if (this.state === "closed") return;
    if (action === 0) this.startTcpProxy();
    else if (!this.upstreamConnectRequested) this.state = "paused"; // §3.3: no upstream connect
  }

  // --- driver API: bytes and events from the sockets ----------------------------------------

  /** Bytes from the client (any chunking); `endOfStream` = client sent FIN. */
  downstreamData(bytes: Uint8Array, endOfStream = false): void {
    if (this.state === "closed" || this.downstreamEnd) return;
    this.downstreamBuffer = Buffer.concat([this.downstreamBuffer, bytes]);
    if (endOfStream) this.downstreamEnd = true;
    if (this.readEnabled) this.readDownstream();
  }

  /** Bytes from the upstream server; `endOfStream` = server sent FIN. */
  upstreamData(bytes: Uint8Array, endOfStream = false): void {
    if (this.state !== "open" || this.upstreamEnd) return;
    this.upstreamBuffer = Buffer.concat([this.upstreamBuffer, bytes]);
    if (endOfStream) this.upstreamEnd = true;
    if (!this.filterAttached) { this.forwardToClient(); return; }
    if (this.vm.failed) { this.applyFailurePolicy(); return; }
    this.upstreamLive = true;
    const action = this.vm.call("proxy_on_upstream_data", this.contextId, this.contextId, this.upstreamBuffer.length, endOfStream ? 1 : 0);
    if (action === undefined) { this.applyFailurePolicy(); return; }
    if (this.isClosed()) return;
    // StopIteration leaves the bytes in the upstream read buffer; they come back accumulated with
    // the next read, and nothing can release them earlier (§3.5).
    if (action === 0) this.forwardToClient();
    if (endOfStream) {
      // The only upstream-close signal Envoy gives a network filter (§3.2 step 7).
      this.vm.call("proxy_on_upstream_connection_close", this.contextId, this.contextId, PeerType.Unknown);
      if (this.vm.failed) { this.applyFailurePolicy(); return; }
    }
    this.maybeBothHalfClosed();
  }

  /** The client closed or reset the connection (RemoteClose). */
  downstreamClose(): void { this.finish(PeerType.Remote, { by: "downstream", detail: "downstream_remote_close" }); }

  /** The upstream reset/closed without a FIN through the write path: tcp_proxy closes downstream. */
  upstreamClose(detail = "upstream_reset"): void { this.finish(PeerType.Local, { by: "upstream", detail }); }

  /** tcp_proxy's upstream connection is established (driver mode). */
  upstreamConnected(localAddress?: string): void {
    if (this.state !== "connecting") return;
    this.upstreamLocal = localAddress ?? this.options.upstreamLocalAddress;
    this.state = "open";
    this.resolveConnected();
    this.readEnabled = true; // tcp_proxy re-enables reads on connect (§3.2 step 4)
    if (this.downstreamBuffer.length > 0 || this.downstreamEnd) this.readDownstream();
  }

  /** The upstream connection could not be established: tcp_proxy closes the downstream. */
  upstreamConnectFailed(reason = "upstream_connect_failed"): void {
    this.finish(PeerType.Local, { by: "upstream", detail: reason });
  }

  /** Host shutdown. */
  abort(): void { this.finish(PeerType.Local, { by: "host", detail: "host_shutdown" }); }

  // --- StreamOwner (hostcalls) -------------------------------------------------------------

  liveBuffer(type: 2 | 3): Buffer | undefined {
    if (type === 2) return this.downstreamLive ? this.downstreamBuffer : undefined;
    return this.upstreamLive ? this.upstreamBuffer : undefined;
  }

  replaceBuffer(type: 2 | 3, data: Buffer): void {
    if (type === 2) this.downstreamBuffer = data; else this.upstreamBuffer = data;
  }

  property(segments: string[]): Buffer | undefined {
    const v = lookup(this.properties(), segments);
    if (v !== undefined) return serialize(v);
    if (segments.length === 1) {
      const fs = this.filterState.get(`wasm.${segments[0]}`) ?? this.filterState.get(segments[0]);
      if (fs) return fs;
    }
    return undefined;
  }

  setFilterState(path: string, value: Buffer): void { this.filterState.set(`wasm.${path}`, value); }

  /** proxy_continue_stream(DOWNSTREAM), run after the VM call (§3.3, §3.4, §3.7). */
  requestContinue(): void {
    if (this.state === "closed") return;
    if (!this.upstreamConnectRequested) { this.startTcpProxy(); return; }
    // Iteration resumes after the wasm filter: tcp_proxy drains the held buffer without the
    // filter seeing those bytes again.
    if (this.readEnabled && (this.downstreamBuffer.length > 0 || this.downstreamEnd)) this.forwardToUpstream();
  }

  /** proxy_close_stream: FlushWrite close of the downstream, run after the VM call (§3.5). */
  requestClose(detail: string): void {
    this.finish(PeerType.Local, { by: "filter", detail });
  }

  // --- internals ------------------------------------------------------------------------------

  private properties(): Map<string, PropValue> {
    const m = new Map<string, PropValue>();
    const addr = (h: { host: string; port: number }): string => formatHostPort(h.host, h.port);
    m.set("source", { t: "map", v: new Map([["address", str(addr(this.src))], ["port", int(this.src.port)]]) });
    m.set("destination", { t: "map", v: new Map([["address", str(addr(this.dst))], ["port", int(this.dst.port)]]) });
    m.set("connection", { t: "map", v: new Map<string, PropValue>([["id", uint(this.connectionId)], ["requested_server_name", str("")], ["mtls", { t: "bool", v: false }]]) });
    m.set("connection_id", uint(this.connectionId));
    if (this.upstreamConnectRequested) {
      // tcp_proxy's initializeUpstreamConnection sets the upstream cluster info before connecting.
      m.set("xds", { t: "map", v: new Map([["cluster_name", str(this.options.cluster ?? "PassthroughCluster")]]) });
    }
    if (this.state === "open") {
      // upstream.* exists once tcp_proxy connected; PassthroughCluster → the original destination.
      const up = new Map<string, PropValue>([["address", str(addr(this.dst))], ["port", int(this.dst.port)]]);
      if (this.upstreamLocal) up.set("local_address", str(this.upstreamLocal));
      m.set("upstream", { t: "map", v: up });
    }
    return m;
  }

  private startTcpProxy(): void {
    if (this.upstreamConnectRequested || this.state === "closed") return;
    this.upstreamConnectRequested = true;
    this.state = "connecting";
    this.resolveRequested();
    this.emit("upstream-connect");
    if (this.options.autoConnectUpstream === false) return;
    setImmediate(() => this.upstreamConnected());
  }

  private readDownstream(): void {
    if (this.state !== "open") return;
    if (!this.filterAttached) { this.forwardToUpstream(); return; }
    if (this.vm.failed) { this.applyFailurePolicy(); return; }
    this.downstreamLive = true;
    const action = this.vm.call("proxy_on_downstream_data", this.contextId, this.contextId, this.downstreamBuffer.length, this.downstreamEnd ? 1 : 0);
    if (action === undefined) { this.applyFailurePolicy(); return; }
    if (this.isClosed()) return;
    // Continue: tcp_proxy writes the whole buffer upstream. StopIteration: it stays (held).
    if (action === 0) this.forwardToUpstream();
  }

  private forwardToUpstream(): void {
    this.downstreamLive = false;
    const bytes = this.downstreamBuffer;
    this.downstreamBuffer = Buffer.alloc(0);
    if (bytes.length > 0) { this.sentUp.push(bytes); this.emit("upstream-data", bytes); }
    if (this.downstreamEnd && !this.upstreamFinSent && this.state !== "closed") { this.upstreamFinSent = true; this.emit("upstream-end"); }
    this.maybeBothHalfClosed();
  }

  private forwardToClient(): void {
    this.upstreamLive = false;
    const bytes = this.upstreamBuffer;
    this.upstreamBuffer = Buffer.alloc(0);
    if (bytes.length > 0) { this.sentDown.push(bytes); this.emit("downstream-data", bytes); }
    if (this.upstreamEnd && !this.downstreamFinSent && this.state !== "closed") { this.downstreamFinSent = true; this.emit("downstream-end"); }
  }

  /** Both directions finished: the downstream connection closes (RemoteClose). */
  private maybeBothHalfClosed(): void {
    if (this.upstreamFinSent && this.downstreamFinSent && this.state !== "closed") {
      this.finish(PeerType.Remote, { by: "downstream", detail: "both_half_closed" });
    }
  }

  /** The VM failed: fail closed (close now) or fail open (continue without the filter), §6.2. */
  private applyFailurePolicy(): void {
    if (this.state === "closed") return;
    if (this.failurePolicy === "FAIL_OPEN") {
      this.filterAttached = false;
      this.downstreamLive = false;
      if (!this.upstreamConnectRequested) { this.startTcpProxy(); return; }
      if (this.state === "open") {
        if (this.downstreamBuffer.length > 0 || this.downstreamEnd) this.forwardToUpstream();
        if (this.upstreamBuffer.length > 0 || this.upstreamEnd) this.forwardToClient();
      }
      return;
    }
    this.finish(PeerType.Local, { by: "vm-failed", detail: `wasm VM ${this.vm.name} failed` });
  }

  /** Downstream close event → close callback, then done/log/delete once (§3.2 step 8). */
  private finish(peer: number, info: CloseInfo): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.closeInfo = info;
    this.downstreamLive = this.upstreamLive = false;
    if (this.filterAttached && this.contextId !== 0 && !this.vm.failed) {
      this.vm.call("proxy_on_downstream_connection_close", this.contextId, this.contextId, peer);
    }
    if (this.contextId !== 0) this.vm.finishStream(this.contextId);
    this.resolveRequested(); // never leave a waiter hanging
    this.emit("close", info);
    this.resolveClosed(info);
    this.onFinished(this);
  }
}
