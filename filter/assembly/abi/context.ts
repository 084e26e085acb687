// The classes filter code subclasses (like the Rust SDK's traits). One RootContext per VM (per
// plugin); one StreamContext per TCP connection, created by the root. Defaults are pass-through.
import { Action, PeerType } from "./enums";

/** Per-VM context: configuration, timers, callouts (every callout answer is delivered here). */
export class RootContext {
  constructor(readonly id: u32) {}

  /** VM configuration (buffer VmConfiguration) is readable here; false fails the VM. */
  onVmStart(vmConfigurationSize: u32): bool { return true; }
  /** Plugin configuration (buffer PluginConfiguration) is readable only here; false rejects it. */
  onConfigure(pluginConfigurationSize: u32): bool { return true; }
  onTick(): void {}
  onQueueReady(queueToken: u32): void {}
  onGrpcReceiveInitialMetadata(token: u32, elements: u32): void {}
  /** A gRPC message (buffer GrpcReceiveBuffer, without the 5-byte frame). */
  onGrpcReceive(token: u32, messageSize: u32): void {}
  onGrpcReceiveTrailingMetadata(token: u32, elements: u32): void {}
  /** The call/stream ended; the message is available through lastStatus(). */
  onGrpcClose(token: u32, grpcStatus: u32): void {}
  onHttpCallResponse(token: u32, headers: u32, bodySize: u32, trailers: u32): void {}
  /** Return false to finish later with done(). */
  onDone(): bool { return true; }
  onLog(): void {}
  onDelete(): void {}

  /**
   * Creates the context of a new connection. Override to return your StreamContext subclass —
   * either new, or one handed back to recycleStream earlier (set its `id`), so that a filter can
   * avoid allocating per connection.
   */
  newStream(id: u32): StreamContext { return new StreamContext(id, this); }

  /** Called after a stream's onDelete; keep it in a free list to reuse it in newStream. */
  recycleStream(stream: StreamContext): void {}
}

/** Per-connection context of a network filter (reference/proxy-wasm.md §3.2). */
export class StreamContext {
  /** Writable only so recycled contexts can be re-armed in newStream. */
  constructor(public id: u32, readonly root: RootContext) {}

  /** Return StopIteration to delay tcp_proxy's upstream connect until continueStream/closeStream. */
  onNewConnection(): Action { return Action.Continue; }
  /** Client bytes (buffer DownstreamData). StopIteration holds them; they are re-offered accumulated. */
  onDownstreamData(size: u32, endOfStream: bool): Action { return Action.Continue; }
  /** Server bytes (buffer UpstreamData). They cannot be held: return Continue or close the stream. */
  onUpstreamData(size: u32, endOfStream: bool): Action { return Action.Continue; }
  onDownstreamClose(peer: PeerType): void {}
  /** Only called after the upstream's end of stream passed the filter (peer Unknown in Envoy). */
  onUpstreamClose(peer: PeerType): void {}
  /** Envoy ignores the result for TCP stream contexts. */
  onDone(): bool { return true; }
  onLog(): void {}
  onDelete(): void {}
}

/** Creates the root context for a VM; registered once at module start (top-level code). */
export type RootContextFactory = (id: u32) => RootContext;
