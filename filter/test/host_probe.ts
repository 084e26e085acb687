// Probe module for the Node host tests (control/test/host/): a proxy-wasm network filter built on
// the ABI layer whose behaviour is chosen by the plugin configuration, a space-separated list of
// words (e.g. "pause hold=5 tick=100"). Every callback is logged so tests can assert the exact
// sequence the host produces. Not part of egret.wasm.
export * from "../assembly/abi/exports";
import { registerRootContextFactory } from "../assembly/abi/registry";
import { RootContext, StreamContext } from "../assembly/abi/context";
import { Action, BufferType, LogLevel, MapType, PeerType, Status, StreamType } from "../assembly/abi/enums";
import {
  log, getBuffer, bufferLength, setBuffer, continueStream, closeStream, setEffectiveContext,
  setTickPeriod, currentTimeNanos, getHeaderMapPairs, getHeaderMapValue, lastStatus, logLevel,
} from "../assembly/abi/hostcalls";
import { HostBytes } from "../assembly/abi/memory";
import { Metric, counter, gauge, histogram } from "../assembly/abi/metrics";
import { PropertyPath, getProperty, setProperty, propertyString, propertyI64 } from "../assembly/abi/properties";
import { PairsReader, encodePairs } from "../assembly/abi/pairs";
import { GrpcMethod, encodeGrpcService, grpcSend, grpcClose, grpcCancel } from "../assembly/abi/grpc";
import { httpCall, lastHttpCallStatus } from "../assembly/abi/http";
import { getSharedData, setSharedData, lastCas, registerSharedQueue, resolveSharedQueue, enqueueSharedQueue, dequeueSharedQueue } from "../assembly/abi/shared";

let config = "";
function has(word: string): bool {
  const words = config.split(" ");
  for (let i = 0; i < words.length; i++) if (words[i] == word) return true;
  return false;
}
function value(key: string): string | null {
  const words = config.split(" ");
  for (let i = 0; i < words.length; i++) if (words[i].startsWith(key + "=")) return words[i].substring(key.length + 1);
  return null;
}
function info(s: string): void { log(LogLevel.Info, s); }
function st(s: Status): string { return (<u32>s).toString(); }

const bytes = new HostBytes();
const path = new PropertyPath(256);
const pairs = new PairsReader();

function prop(a: string, b: string = "", c: string = "", d: string = "", e: string = ""): string {
  path.reset().seg(a);
  if (b.length > 0) path.seg(b);
  if (c.length > 0) path.seg(c);
  if (d.length > 0) path.seg(d);
  if (e.length > 0) path.seg(e);
  const s = getProperty(path, bytes);
  if (s != Status.Ok) return "<" + st(s) + ">";
  if (bytes.len == 8 && (a == "destination" || a == "source") && b == "port") { const v = bytes.i64LE(); bytes.release(); return "i64:" + v.toString(); }
  const out = bytes.toString();
  bytes.release();
  return out;
}

/** The last stream context deleted (for "effective-deleted": is its id still registered?). */
let lastDeleted: u32 = 0;

class ProbeRoot extends RootContext {
  ticks: i32 = 0;
  holdAt: u32 = 0;
  connections: Metric | null = null;
  active: Metric | null = null;
  sizes: Metric | null = null;
  queueToken: u32 = 0;
  callMethod: GrpcMethod | null = null;
  streamMethod: GrpcMethod | null = null;
  streamToken: u32 = 0;
  callOwner: Map<u32, u32> = new Map<u32, u32>();
  httpCluster: ArrayBuffer | null = null;

  onVmStart(size: u32): bool {
    getBuffer(BufferType.VmConfiguration, 0, size, bytes);
    info("vm_start root=" + this.id.toString() + " vm_config=" + bytes.toString());
    bytes.release();
    return true;
  }

  onConfigure(size: u32): bool {
    const s = getBuffer(BufferType.PluginConfiguration, 0, 0xffffffff, bytes);
    config = bytes.toString();
    bytes.release();
    info("configure root=" + this.id.toString() + " size=" + size.toString() + " status=" + st(s) + " config=" + config + " log_level=" + (<u32>logLevel()).toString());
    if (has("trap-configure")) unreachable();
    if (has("reject")) return false;
    const hold = value("hold");
    if (hold !== null) this.holdAt = <u32>I32.parseInt(hold);
    const tick = value("tick");
    if (tick !== null) info("set_tick status=" + st(setTickPeriod(<u32>I32.parseInt(tick))));
    if (has("metrics")) {
      this.connections = counter("probe_connections_total");
      this.active = gauge("probe_active");
      this.sizes = histogram("probe.chunk-size");
      info("metrics counter+0=" + st(this.connections!.increment(0)) + " histogram.inc=" + st(this.sizes!.increment(1)) + " histogram.get=" + this.sizes!.get().toString());
    }
    if (has("shared")) {
      const a = setSharedData("probe.key", changetype<usize>(String.UTF8.encode("v1")), 2, 12345);
      const g = getSharedData("probe.key", bytes);
      const cas1 = lastCas;
      const b = setSharedData("probe.key", changetype<usize>(String.UTF8.encode("v2")), 2, cas1 + 1000);
      const c = setSharedData("probe.key", changetype<usize>(String.UTF8.encode("v3")), 2, cas1);
      info("shared new=" + st(a) + " get=" + st(g) + ":" + bytes.toString() + " stale=" + st(b) + " cas=" + st(c) + " missing=" + st(getSharedData("probe.none", bytes)));
      bytes.release();
    }
    if (has("queue")) {
      this.queueToken = registerSharedQueue("probe_q");
      info("queue registered token=" + this.queueToken.toString() + " resolve=" + resolveSharedQueue("", "probe_q").toString() + " missing=" + resolveSharedQueue("", "nope").toString());
    }
    const call = value("grpc-call");
    if (call !== null) this.callMethod = new GrpcMethod(upstreamOf(call), "egret.test.Probe", "Check", encodePairs(["x-probe"], ["call"]));
    const plain = value("grpc-plain");
    if (plain !== null) this.callMethod = new GrpcMethod(String.UTF8.encode(plain), "egret.test.Probe", "Check");
    const hc = value("http-call");
    if (hc !== null) this.httpCluster = String.UTF8.encode(hc);
    const stream = value("grpc-stream");
    if (stream !== null) {
      this.streamMethod = new GrpcMethod(upstreamOf(stream), "egret.test.Probe", "Watch", encodePairs(["x-probe"], ["stream"]));
      this.streamToken = this.streamMethod!.openStream();
      info("stream open token=" + this.streamToken.toString() + " status=" + st(this.streamMethod!.lastStatus) + " send-on-call-kind=" + st(grpcSend(this.streamToken + 1000, 0, 0)));
    }
    if (has("props")) {
      info("root props plugin_name=" + prop("plugin_name") + " root_id=" + prop("plugin_root_id") + " vm_id=" + prop("plugin_vm_id") +
        " node.id=" + prop("xds", "node", "id") + " NAME=" + prop("xds", "node", "metadata", "NAME") + " NAMESPACE=" + prop("xds", "node", "metadata", "NAMESPACE") +
        " INSTANCE_IPS=" + prop("xds", "node", "metadata", "INSTANCE_IPS") + " label.app=" + prop("xds", "node", "metadata", "LABELS", "app") +
        " direction=" + propertyI64(-1, "xds", "listener_direction").toString() + " source=" + prop("source", "address") + " legacy=" + prop("node", "metadata", "NAME"));
      path.reset().seg("xds").seg("node").seg("metadata").seg("LABELS");
      if (getProperty(path, bytes) == Status.Ok && pairs.reset(bytes.ptr, bytes.len)) {
        let s = "labels";
        for (let i: u32 = 0; i < pairs.count; i++) s += " " + pairs.key(i) + "=" + pairs.value(i);
        info(s);
      }
      bytes.release();
      const dotted = propertyString("source.address");
      info("dotted-path=" + (dotted === null ? "null" : dotted));
    }
    return true;
  }

  onTick(): void {
    this.ticks++;
    info("tick " + this.ticks.toString() + " now_ms=" + (currentTimeNanos() / 1000000).toString());
    // From the root, close_stream has no connection to act on: proves the effective context of an
    // earlier callback did not leak into this one.
    if (has("close-on-tick")) info("tick close=" + st(closeStream(StreamType.Downstream)));
    if (has("effective-deleted") && lastDeleted != 0) info("tick effective-deleted id=" + lastDeleted.toString() + " status=" + st(setEffectiveContext(lastDeleted)));
    const stop = value("tick-stop");
    if (stop !== null && this.ticks >= I32.parseInt(stop)) setTickPeriod(0);
  }

  onQueueReady(token: u32): void {
    let s = "queue_ready token=" + token.toString();
    while (dequeueSharedQueue(token, bytes) == Status.Ok) { s += " item=" + bytes.toString(); }
    bytes.release();
    info(s + " then=" + st(dequeueSharedQueue(token, bytes)));
  }

  onGrpcReceiveInitialMetadata(token: u32, n: u32): void {
    const s = getHeaderMapValue(MapType.GrpcReceiveInitialMetadata, "x-server", bytes);
    info("grpc initial_metadata token=" + token.toString() + " n=" + n.toString() + " x-server=" + (s == Status.Ok ? bytes.toString() : "<" + st(s) + ">"));
    bytes.release();
  }

  onGrpcReceive(token: u32, size: u32): void {
    getBuffer(BufferType.GrpcReceiveBuffer, 0, size, bytes);
    const msg = bytes.toString();
    bytes.release();
    info("grpc receive token=" + token.toString() + " size=" + size.toString() + " msg=" + msg);
    if (this.callOwner.has(token)) {
      const conn = this.callOwner.get(token);
      this.callOwner.delete(token);
      const e = setEffectiveContext(conn);
      if (msg == "allow") info("effective=" + st(e) + " continue=" + st(continueStream(StreamType.Downstream)));
      else info("effective=" + st(e) + " close=" + st(closeStream(StreamType.Downstream)));
    }
    if (msg == "cancel-stream") info("cancel=" + st(grpcCancel(token)) + " again=" + st(grpcCancel(token)));
    if (msg == "half-close") info("half-close=" + st(grpcClose(token)));
  }

  onGrpcReceiveTrailingMetadata(token: u32, n: u32): void {
    getHeaderMapPairs(MapType.GrpcReceiveTrailingMetadata, bytes);
    let s = "grpc trailing_metadata token=" + token.toString() + " n=" + n.toString();
    if (pairs.reset(bytes.ptr, bytes.len)) { const i = pairs.find("x-trailer"); if (i >= 0) s += " x-trailer=" + pairs.value(<u32>i); }
    bytes.release();
    info(s);
  }

  onGrpcClose(token: u32, status: u32): void {
    const code = lastStatus(bytes);
    info("grpc close token=" + token.toString() + " status=" + status.toString() + " get_status=" + code.toString() + ":" + bytes.toString());
    bytes.release();
    if (this.callOwner.has(token)) {
      const conn = this.callOwner.get(token);
      this.callOwner.delete(token);
      setEffectiveContext(conn);
      closeStream(StreamType.Downstream);
    }
  }

  onHttpCallResponse(token: u32, headers: u32, bodySize: u32, trailers: u32): void {
    getBuffer(BufferType.HttpCallResponseBody, 0, bodySize, bytes);
    const body = bytes.toString();
    const st = getHeaderMapValue(MapType.HttpCallResponseHeaders, ":status", bytes);
    const status = st == Status.Ok ? bytes.toString() : "<" + (<u32>st).toString() + ">";
    const code = lastStatus(bytes);
    bytes.release();
    info("http response token=" + token.toString() + " headers=" + headers.toString() + " status=" + status + " body=" + body + " trailers=" + trailers.toString() + " get_status=" + code.toString());
    if (this.callOwner.has(token)) {
      const conn = this.callOwner.get(token);
      this.callOwner.delete(token);
      setEffectiveContext(conn);
      if (body == "allow") continueStream(StreamType.Downstream); else closeStream(StreamType.Downstream);
    }
  }

  onDone(): bool { info("root done " + this.id.toString()); return !has("defer-done"); }
  onDelete(): void { info("root delete " + this.id.toString()); }

  newStream(id: u32): StreamContext { return new ProbeStream(id, this); }
}

function upstreamOf(spec: string): ArrayBuffer {
  const bar = spec.lastIndexOf("|");
  return bar < 0 ? encodeGrpcService(spec, "") : encodeGrpcService(spec.substring(0, bar), spec.substring(bar + 1));
}

class ProbeStream extends StreamContext {
  dataCalls: i32 = 0;

  get probe(): ProbeRoot { return changetype<ProbeRoot>(this.root); }

  onNewConnection(): Action {
    const quiet = has("quiet");
    if (!quiet) info("new id=" + this.id.toString() + " root=" + this.root.id.toString() + " down_len=" + bufferLength(BufferType.DownstreamData).toString());
    const r = this.probe;
    if (r.connections !== null) { r.connections!.increment(1); r.active!.increment(1); }
    if (has("props")) {
      info("props source=" + prop("source", "address") + " source.port=" + prop("source", "port") + " destination=" + prop("destination", "address") +
        " destination.port=" + prop("destination", "port") + " upstream=" + prop("upstream", "address") + " NAME=" + prop("xds", "node", "metadata", "NAME"));
      path.reset().seg("probe_state");
      info("set_property=" + st(setProperty(path, changetype<usize>(String.UTF8.encode("abc")), 3)) + " get=" + prop("probe_state") + " wasm.=" + prop("wasm.probe_state"));
      path.reset().seg("connection_id");
      if (getProperty(path, bytes) == Status.Ok) info("connection_id bytes=" + bytes.len.toString());
      bytes.release();
    }
    if (has("effective-bad")) info("effective-bad=" + st(setEffectiveContext(99999)));
    if (has("continue-upstream")) info("continue-upstream=" + st(continueStream(StreamType.Upstream)) + " bad-stream=" + st(continueStream(<StreamType>7)));
    if (has("close-in-new")) { info("close=" + st(closeStream(StreamType.Downstream))); return Action.StopIteration; }
    if (has("continue-in-new")) { info("continue=" + st(continueStream(StreamType.Downstream))); return Action.StopIteration; }
    if (r.callMethod !== null) {
      path.reset().seg("destination").seg("address");
      getProperty(path, bytes);
      const token = r.callMethod!.call(bytes.ptr, bytes.len, 5000);
      bytes.release();
      info("grpc call token=" + token.toString() + " status=" + st(r.callMethod!.lastStatus));
      if (token != 0) { r.callOwner.set(token, this.id); return Action.StopIteration; }
      closeStream(StreamType.Downstream);
      return Action.StopIteration;
    }
    if (r.httpCluster !== null) {
      const hdrs = encodePairs([":method", ":path", ":authority", "x-dst"], ["GET", "/check", "policy.local", prop("destination", "address")]);
      const token = httpCall(r.httpCluster!, hdrs, 0, 0, 5000);
      const tokenStatus = lastHttpCallStatus;
      const bad = httpCall(r.httpCluster!, encodePairs([":method"], ["GET"]), 0, 0, 5000);
      info("http call token=" + token.toString() + " status=" + st(tokenStatus) + " missing-headers=" + bad.toString() + ":" + st(lastHttpCallStatus));
      if (token != 0) { r.callOwner.set(token, this.id); return Action.StopIteration; }
    }
    if (r.streamToken != 0) {
      path.reset().seg("destination").seg("address");
      getProperty(path, bytes);
      info("stream send=" + st(grpcSend(r.streamToken, bytes.ptr, bytes.len)));
      bytes.release();
    }
    if (has("pause")) return Action.StopIteration;
    return Action.Continue;
  }

  onDownstreamData(size: u32, eos: bool): Action {
    this.dataCalls++;
    const r = this.probe;
    if (r.sizes !== null) r.sizes!.record(size);
    if (has("quiet")) return Action.Continue;
    getBuffer(BufferType.DownstreamData, 0, size, bytes);
    const text = bytes.toString();
    bytes.release();
    info("down size=" + size.toString() + " eos=" + (eos ? "1" : "0") + " data=" + text + " len=" + bufferLength(BufferType.DownstreamData).toString() + " up_len=" + bufferLength(BufferType.UpstreamData).toString());
    if (has("props") && this.dataCalls == 1) info("props upstream=" + prop("upstream", "address"));
    if (text.startsWith("TRAP")) unreachable();
    if (has("queue")) {
      const t = resolveSharedQueue("", "probe_q");
      info("enqueue=" + st(enqueueSharedQueue(t, changetype<usize>(String.UTF8.encode(text)), <u32>String.UTF8.byteLength(text))) + " bad=" + st(enqueueSharedQueue(77777, 0, 0)));
    }
    if (has("rewrite")) {
      const open = String.UTF8.encode("<");
      const close = String.UTF8.encode(">");
      const a = setBuffer(BufferType.DownstreamData, 0, size, changetype<usize>(open), 1);
      const b = setBuffer(BufferType.DownstreamData, 0xffff, 0, changetype<usize>(close), 1);
      const c = setBuffer(BufferType.DownstreamData, 1, 0, changetype<usize>(close), 1);
      const d = setBuffer(BufferType.UpstreamData, 0, 0, changetype<usize>(close), 1);
      info("rewrite replace=" + st(a) + " append=" + st(b) + " middle=" + st(c) + " other=" + st(d) + " now=" + bufferLength(BufferType.DownstreamData).toString());
    }
    if (has("close-on-data")) { info("close=" + st(closeStream(StreamType.Downstream))); return Action.StopIteration; }
    if (has("continue-in-data")) { info("continue=" + st(continueStream(StreamType.Downstream))); return Action.StopIteration; }
    if (r.holdAt > 0 && size < r.holdAt && !eos) return Action.StopIteration;
    return Action.Continue;
  }

  onUpstreamData(size: u32, eos: bool): Action {
    if (has("quiet")) return Action.Continue;
    getBuffer(BufferType.UpstreamData, 0, size, bytes);
    info("up size=" + size.toString() + " eos=" + (eos ? "1" : "0") + " data=" + bytes.toString());
    bytes.release();
    if (has("close-upstream-on-data")) { info("close=" + st(closeStream(StreamType.Upstream))); return Action.StopIteration; }
    if (has("hold-up")) return Action.StopIteration;
    return Action.Continue;
  }

  onDownstreamClose(peer: PeerType): void { if (!has("quiet")) info("down-close id=" + this.id.toString() + " peer=" + (<u32>peer).toString()); }
  onUpstreamClose(peer: PeerType): void { if (!has("quiet")) info("up-close id=" + this.id.toString() + " peer=" + (<u32>peer).toString()); }
  onDone(): bool {
    const r = this.probe;
    if (r.active !== null) r.active!.increment(-1);
    if (!has("quiet")) info("done id=" + this.id.toString());
    return false; // ignored by Envoy for TCP streams
  }
  onLog(): void { if (!has("quiet")) info("log id=" + this.id.toString()); }
  onDelete(): void { lastDeleted = this.id; if (!has("quiet")) info("delete id=" + this.id.toString()); }
}

registerRootContextFactory((id: u32): RootContext => new ProbeRoot(id));
