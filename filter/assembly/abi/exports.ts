// The module's proxy-wasm exports (reference/proxy-wasm.md §1.4): the dispatcher. Each callback
// looks up its context in the maps of registry.ts and delegates. filter/assembly/index.ts
// re-exports this file (only proxy-wasm exports live here) and registers a root context factory.
import "./abort";
import { Action, LogLevel, StreamType, PeerType } from "./enums";
import { RootContext } from "./context";
import { roots, streams, rootFactory } from "./registry";
import { log, closeStream } from "./hostcalls";

export { malloc, proxy_on_memory_allocate } from "./memory";

// Unknown context ids mean host and module disagree. Never trap (it would fail the VM, §6.6):
// log, and close the connection so a broken filter fails closed.
function unknownStream(id: u32, callback: string): Action {
  log(LogLevel.Error, "proxy-wasm: " + callback + " for unknown context " + id.toString());
  closeStream(StreamType.Downstream);
  return Action.StopIteration;
}

function unknownRoot(id: u32, callback: string): void {
  log(LogLevel.Error, "proxy-wasm: " + callback + " for unknown root context " + id.toString());
}

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_context_create(id: u32, parentId: u32): void {
  if (parentId == 0) {
    const factory = rootFactory();
    roots.set(id, factory !== null ? factory(id) : new RootContext(id));
    return;
  }
  if (!roots.has(parentId)) { unknownRoot(parentId, "context_create"); return; }
  streams.set(id, roots.get(parentId).newStream(id));
}

export function proxy_on_vm_start(rootId: u32, vmConfigurationSize: u32): bool {
  if (!roots.has(rootId)) { unknownRoot(rootId, "vm_start"); return false; }
  return roots.get(rootId).onVmStart(vmConfigurationSize);
}

export function proxy_on_configure(rootId: u32, pluginConfigurationSize: u32): bool {
  if (!roots.has(rootId)) { unknownRoot(rootId, "configure"); return false; }
  return roots.get(rootId).onConfigure(pluginConfigurationSize);
}

export function proxy_on_tick(rootId: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onTick(); else unknownRoot(rootId, "tick");
}

export function proxy_on_queue_ready(rootId: u32, token: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onQueueReady(token); else unknownRoot(rootId, "queue_ready");
}

export function proxy_on_new_connection(id: u32): u32 {
  if (!streams.has(id)) return unknownStream(id, "new_connection");
  return streams.get(id).onNewConnection();
}

export function proxy_on_downstream_data(id: u32, size: u32, endOfStream: u32): u32 {
  if (!streams.has(id)) return unknownStream(id, "downstream_data");
  return streams.get(id).onDownstreamData(size, endOfStream != 0);
}

export function proxy_on_upstream_data(id: u32, size: u32, endOfStream: u32): u32 {
  if (!streams.has(id)) return unknownStream(id, "upstream_data");
  return streams.get(id).onUpstreamData(size, endOfStream != 0);
}

export function proxy_on_downstream_connection_close(id: u32, peer: u32): void {
  if (streams.has(id)) streams.get(id).onDownstreamClose(<PeerType>peer);
}

export function proxy_on_upstream_connection_close(id: u32, peer: u32): void {
  if (streams.has(id)) streams.get(id).onUpstreamClose(<PeerType>peer);
}

export function proxy_on_grpc_receive_initial_metadata(rootId: u32, token: u32, elements: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onGrpcReceiveInitialMetadata(token, elements); else unknownRoot(rootId, "grpc_receive_initial_metadata");
}

export function proxy_on_grpc_receive(rootId: u32, token: u32, size: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onGrpcReceive(token, size); else unknownRoot(rootId, "grpc_receive");
}

export function proxy_on_grpc_receive_trailing_metadata(rootId: u32, token: u32, elements: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onGrpcReceiveTrailingMetadata(token, elements); else unknownRoot(rootId, "grpc_receive_trailing_metadata");
}

export function proxy_on_grpc_close(rootId: u32, token: u32, status: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onGrpcClose(token, status); else unknownRoot(rootId, "grpc_close");
}

export function proxy_on_http_call_response(rootId: u32, token: u32, headers: u32, bodySize: u32, trailers: u32): void {
  if (roots.has(rootId)) roots.get(rootId).onHttpCallResponse(token, headers, bodySize, trailers); else unknownRoot(rootId, "http_call_response");
}

export function proxy_on_done(id: u32): bool {
  if (streams.has(id)) return streams.get(id).onDone();
  if (roots.has(id)) return roots.get(id).onDone();
  return true;
}

export function proxy_on_log(id: u32): void {
  if (streams.has(id)) streams.get(id).onLog();
  else if (roots.has(id)) roots.get(id).onLog();
}

export function proxy_on_delete(id: u32): void {
  if (streams.has(id)) {
    const s = streams.get(id);
    s.onDelete();
    streams.delete(id);
    s.root.recycleStream(s);
    return;
  }
  if (roots.has(id)) { roots.get(id).onDelete(); roots.delete(id); }
}
