// Raw proxy-wasm ABI v0.2.1 host functions (module "env"), exactly as Envoy registers them
// (reference/proxy-wasm.md §1.2; signatures checked by control/test/host/conformance.test.ts).
// Only this folder may declare them; filter code uses the safe wrappers in hostcalls.ts.
// Every pointer, size, enum and bool is i32 (usize/u32 on wasm32); metric values are i64.

// @ts-ignore: decorator
@external("env", "proxy_log") export declare function proxy_log(level: u32, msg: usize, msgLen: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_log_level") export declare function proxy_get_log_level(retLevel: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_status") export declare function proxy_get_status(code: usize, msgPtrPtr: usize, msgLenPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_current_time_nanoseconds") export declare function proxy_get_current_time_nanoseconds(retTime: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_tick_period_milliseconds") export declare function proxy_set_tick_period_milliseconds(periodMs: u32): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_property") export declare function proxy_get_property(path: usize, pathLen: usize, valPtrPtr: usize, valLenPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_property") export declare function proxy_set_property(path: usize, pathLen: usize, val: usize, valLen: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_buffer_status") export declare function proxy_get_buffer_status(type: u32, lenPtr: usize, flagsPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_buffer_bytes") export declare function proxy_get_buffer_bytes(type: u32, start: u32, maxLen: u32, dataPtrPtr: usize, dataLenPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes") export declare function proxy_set_buffer_bytes(type: u32, start: u32, size: u32, data: usize, dataLen: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_header_map_value") export declare function proxy_get_header_map_value(type: u32, key: usize, keyLen: usize, valPtrPtr: usize, valLenPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_header_map_pairs") export declare function proxy_get_header_map_pairs(type: u32, pairsPtrPtr: usize, pairsLenPtr: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_continue_stream") export declare function proxy_continue_stream(stream: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_close_stream") export declare function proxy_close_stream(stream: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_effective_context") export declare function proxy_set_effective_context(contextId: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_done") export declare function proxy_done(): u32;

// @ts-ignore: decorator
@external("env", "proxy_define_metric") export declare function proxy_define_metric(type: u32, name: usize, nameLen: usize, retId: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_increment_metric") export declare function proxy_increment_metric(id: u32, delta: i64): u32;
// @ts-ignore: decorator
@external("env", "proxy_record_metric") export declare function proxy_record_metric(id: u32, value: i64): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_metric") export declare function proxy_get_metric(id: u32, retValue: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_shared_data") export declare function proxy_get_shared_data(key: usize, keyLen: usize, valPtrPtr: usize, valLenPtr: usize, casPtr: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_set_shared_data") export declare function proxy_set_shared_data(key: usize, keyLen: usize, val: usize, valLen: usize, cas: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_register_shared_queue") export declare function proxy_register_shared_queue(name: usize, nameLen: usize, retToken: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_resolve_shared_queue") export declare function proxy_resolve_shared_queue(vmId: usize, vmIdLen: usize, name: usize, nameLen: usize, retToken: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_enqueue_shared_queue") export declare function proxy_enqueue_shared_queue(token: u32, data: usize, dataLen: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_dequeue_shared_queue") export declare function proxy_dequeue_shared_queue(token: u32, dataPtrPtr: usize, dataLenPtr: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_grpc_call") export declare function proxy_grpc_call(upstream: usize, upstreamLen: usize, service: usize, serviceLen: usize, method: usize, methodLen: usize, metadata: usize, metadataLen: usize, message: usize, messageLen: usize, timeoutMs: u32, retToken: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_stream") export declare function proxy_grpc_stream(upstream: usize, upstreamLen: usize, service: usize, serviceLen: usize, method: usize, methodLen: usize, metadata: usize, metadataLen: usize, retToken: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_send") export declare function proxy_grpc_send(token: u32, message: usize, messageLen: usize, endStream: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_close") export declare function proxy_grpc_close(token: u32): u32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_cancel") export declare function proxy_grpc_cancel(token: u32): u32;

// @ts-ignore: decorator
@external("env", "proxy_http_call") export declare function proxy_http_call(upstream: usize, upstreamLen: usize, headers: usize, headersLen: usize, body: usize, bodyLen: usize, trailers: usize, trailersLen: usize, timeoutMs: u32, retToken: usize): u32;
