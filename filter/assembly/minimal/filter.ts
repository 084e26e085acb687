// The minimal filter: proves the ABI layer end to end until the enforcement filter
// (../egress/) replaces it in egret.wasm. Per connection it counts, reads destination.address
// and logs it, counts bytes each way, and reports the destination on a gRPC stream when the
// plugin configuration names a cluster:
//   {"grpc_cluster": "outbound|9000||egret-control.egret-system.svc.cluster.local",
//    "grpc_authority": "egret-control.egret-system.svc.cluster.local:9000"}
// The stream is opened by every VM's root context (§6.1); answers are logged and counted.
// Nothing is allocated per connection: messages are assembled in a static buffer.
import { RootContext, StreamContext } from "../abi/context";
import { Action, BufferType, LogLevel, Status } from "../abi/enums";
import { getBuffer, logBytes, log, bufferLength } from "../abi/hostcalls";
import { HostBytes } from "../abi/memory";
import { Metric, counter, gauge } from "../abi/metrics";
import { PropertyPath, getProperty } from "../abi/properties";
import { GrpcMethod, encodeGrpcService, grpcSend } from "../abi/grpc";
import { jsonStringField } from "./json";

const LINE_CAP: u32 = 512;
const LINE: usize = memory.data(512);
const PREFIX = "minimal: connection to ";

class Stats {
  connections: Metric = counter("minimal_connections_total");
  active: Metric = gauge("minimal_connections_active");
  bytesUp: Metric = counter("minimal_downstream_bytes_total");
  bytesDown: Metric = counter("minimal_upstream_bytes_total");
  grpcMessages: Metric = counter("minimal_grpc_messages_total");
}

export class MinimalRoot extends RootContext {
  stats: Stats | null = null;
  streamMethod: GrpcMethod | null = null;
  streamToken: u32 = 0;
  destinationPath: PropertyPath = new PropertyPath(64);
  scratch: HostBytes = new HostBytes();

  onConfigure(size: u32): bool {
    // Metrics are defined here, not at top level: _start may not call the host (§1.5).
    if (this.stats === null) this.stats = new Stats();
    this.destinationPath.reset().seg("destination").seg("address");
    const config = new HostBytes();
    if (getBuffer(BufferType.PluginConfiguration, 0, size, config) != Status.Ok) return false;
    const text = config.toString();
    config.release();
    const cluster = jsonStringField(text, "grpc_cluster");
    if (cluster !== null && cluster.length > 0) {
      const authority = jsonStringField(text, "grpc_authority");
      this.streamMethod = new GrpcMethod(encodeGrpcService(cluster, authority !== null ? authority : ""), "egret.minimal.Reporter", "Connections");
      this.streamToken = this.streamMethod!.openStream();
      if (this.streamToken == 0) log(LogLevel.Error, "minimal: cannot open gRPC stream to " + cluster + " (status " + (<u32>this.streamMethod!.lastStatus).toString() + ")");
    }
    log(LogLevel.Info, "minimal: configured" + (cluster !== null ? ", reporting to " + cluster : ""));
    return true;
  }

  onGrpcReceive(token: u32, size: u32): void {
    if (this.stats !== null) this.stats!.grpcMessages.increment(1);
    if (getBuffer(BufferType.GrpcReceiveBuffer, 0, size, this.scratch) == Status.Ok) {
      const n = appendLine(0, "minimal: control says ");
      const m = this.scratch.copyTo(LINE + n, LINE_CAP - n);
      logBytes(LogLevel.Info, LINE, n + m);
      this.scratch.release();
    }
  }

  onGrpcClose(token: u32, status: u32): void {
    if (token == this.streamToken) this.streamToken = 0;
    log(LogLevel.Warn, "minimal: gRPC stream closed with status " + status.toString());
  }

  newStream(id: u32): StreamContext { return new MinimalStream(id, this); }
}

class MinimalStream extends StreamContext {
  onNewConnection(): Action {
    const root = changetype<MinimalRoot>(this.root);
    const stats = root.stats;
    if (stats !== null) { stats.connections.increment(1); stats.active.increment(1); }
    let n = appendLine(0, PREFIX);
    if (getProperty(root.destinationPath, root.scratch) == Status.Ok) {
      n += root.scratch.copyTo(LINE + n, LINE_CAP - n);
      if (root.streamToken != 0) grpcSend(root.streamToken, root.scratch.ptr, root.scratch.len);
      root.scratch.release();
    } else {
      n = appendLine(n, "(unknown)");
    }
    logBytes(LogLevel.Info, LINE, n);
    return Action.Continue;
  }

  onDownstreamData(size: u32, endOfStream: bool): Action {
    const stats = changetype<MinimalRoot>(this.root).stats;
    if (stats !== null && size > 0) stats.bytesUp.increment(size);
    return Action.Continue;
  }

  onUpstreamData(size: u32, endOfStream: bool): Action {
    const stats = changetype<MinimalRoot>(this.root).stats;
    if (stats !== null && size > 0) stats.bytesDown.increment(size);
    return Action.Continue;
  }

  onDone(): bool {
    const stats = changetype<MinimalRoot>(this.root).stats;
    if (stats !== null) stats.active.increment(-1);
    return true;
  }
}

/** Appends ASCII `s` to LINE at `at`; returns the new length. */
function appendLine(at: u32, s: string): u32 {
  let n = at;
  for (let i = 0; i < s.length && n < LINE_CAP; i++) store<u8>(LINE + n++, <u8>s.charCodeAt(i));
  return n;
}

export function createMinimalRoot(id: u32): RootContext { return new MinimalRoot(id); }
